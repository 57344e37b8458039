//! What an outside review tried against running services: bad bodies,
//! ids of the wrong kind, oversized input, reflection, rate and stream
//! limits, tokens with bad times or subjects, control characters.

use std::time::Duration;

use baove_proto::v1::{
    self as p, audit_service_client::AuditServiceClient, case_service_client::CaseServiceClient,
    intake_service_client::IntakeServiceClient,
};
use baove_security::Role;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::{System, hotline};
use crate::{Service, auditor, province_officer};

/// Sends `body` as the raw protobuf request of `path`.
async fn raw_call(
    channel: crate::AuthChannel,
    path: &'static str,
    body: Vec<u8>,
) -> Result<(), tonic::Status> {
    #[derive(Clone, Default)]
    struct Raw(Vec<u8>);
    impl prost::Message for Raw {
        fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
            buf.put_slice(&self.0);
        }
        fn merge_field(
            &mut self,
            _tag: u32,
            wire_type: prost::encoding::WireType,
            buf: &mut impl bytes::Buf,
            ctx: prost::encoding::DecodeContext,
        ) -> Result<(), prost::DecodeError> {
            prost::encoding::skip_field(wire_type, 0, buf, ctx)
        }
        fn encoded_len(&self) -> usize {
            self.0.len()
        }
        fn clear(&mut self) {
            self.0.clear();
        }
    }
    impl std::fmt::Debug for Raw {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Raw({} bytes)", self.0.len())
        }
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<Raw, Raw>::default();
    grpc.unary(
        tonic::Request::new(Raw(body)),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_wrong_ids_and_huge_input_get_short_clear_errors() {
    let system = System::start().await;
    // A body that is not protobuf: the caller's fault, INVALID_ARGUMENT.
    let status = raw_call(
        system.intake.channel().await,
        "/baove.v1.IntakeService/SubmitHotlineReport",
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("not valid protobuf"),
        "{status:?}"
    );

    // 100,000 unknown forms of abuse: a short error that counts the rest.
    let mut huge = hotline("huge-1", "Lê Văn Tư");
    if let Some(facts) = huge
        .report
        .as_mut()
        .and_then(|r| r.facts.as_mut())
        .and_then(|f| f.concerns.as_mut())
    {
        facts.abuse_types = vec![99; 100_000];
    }
    let status = IntakeServiceClient::new(system.intake.channel().await)
        .submit_hotline_report(huge)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().len() < 10_000,
        "{}",
        status.message().len()
    );
    assert!(
        status.details().len() < 20_000,
        "{}",
        status.details().len()
    );
    assert!(status.message().contains("more violations"), "{status:?}");

    // A 10,000-character unit id is not echoed whole.
    let mut long_unit = hotline("long-unit-1", "Lê Văn Tư");
    if let Some(place) = long_unit
        .report
        .as_mut()
        .and_then(|r| r.facts.as_mut())
        .and_then(|f| f.incident_place.as_mut())
    {
        place.unit_id = "x".repeat(10_000);
    }
    let status = IntakeServiceClient::new(system.intake.channel().await)
        .submit_hotline_report(long_unit)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.details().len() < 2_000, "{}", status.details().len());

    // A number that is no value of its enum is refused as such, not stored
    // as "unknown" nor reported as missing.
    let mut bad_enum = hotline("enum-1", "Lê Văn Tư");
    if let Some(facts) = bad_enum.report.as_mut().and_then(|r| r.facts.as_mut()) {
        facts.setting = 55;
        if let Some(child) = facts.child.as_mut() {
            child.sex = 9;
        }
    }
    let status = IntakeServiceClient::new(system.intake.channel().await)
        .submit_hotline_report(bad_enum)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("report.facts.setting: 55 is not a valid AbuseSetting")
            && status
                .message()
                .contains("report.facts.child.sex: 9 is not a valid Sex")
            && !status.message().contains("sex: is required"),
        "{status:?}"
    );

    // A name with a bidi override or NUL is refused, naming the field.
    let status = IntakeServiceClient::new(system.intake.channel().await)
        .submit_hotline_report(hotline("bidi-1", "Bé \u{202E}ną"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("full_name") && status.message().contains("control"),
        "{status:?}"
    );

    // The checkpoint stream's id is no case: NOT_FOUND, not UNAVAILABLE.
    AuditServiceClient::new(system.casework.channel_as(&auditor()).await)
        .get_checkpoint(p::GetCheckpointRequest { fresh: true })
        .await
        .unwrap();
    let officer = province_officer("so-yt-1");
    for id in [
        "00000000-0000-7000-8000-00000000c4ec",
        "00000000-0000-7000-8000-00000000acce",
    ] {
        let status = CaseServiceClient::new(system.casework.channel_as(&officer).await)
            .get_case(p::GetCaseRequest { case_id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{id}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_only_what_each_process_serves() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let system = System::start().await;
    let list = |service: &Service| {
        let addr = service.addr.clone();
        async move {
            let channel = tonic::transport::Channel::from_shared(addr)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut answers = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter([request]))
                .await
                .unwrap()
                .into_inner();
            let answer = answers.message().await.unwrap().unwrap();
            match answer.message_response.unwrap() {
                MessageResponse::ListServicesResponse(list) => {
                    list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
                }
                other => panic!("{other:?}"),
            }
        }
    };
    let intake = list(&system.intake).await;
    assert!(
        intake.contains(&"baove.v1.IntakeService".to_owned()),
        "{intake:?}"
    );
    assert!(
        intake.contains(&"baove.v1.AuditService".to_owned()),
        "{intake:?}"
    );
    assert!(
        !intake
            .iter()
            .any(|s| s.contains("CaseService") || s.contains("ReferralService")),
        "{intake:?}"
    );
    let casework = list(&system.casework).await;
    assert!(
        casework.contains(&"baove.v1.CaseService".to_owned()),
        "{casework:?}"
    );
    assert!(
        !casework.iter().any(|s| s.contains("IntakeService")),
        "{casework:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_rate_or_stream_limit_is_told_to_back_off() {
    let nats = baove_testkit::NatsServer::start().unwrap();
    let intake = Service::start("intake", &nats.url());
    let casework = Service::start_with(
        "casework",
        &nats.url(),
        tempfile::tempdir().unwrap(),
        &[
            ("BAOVE_CALLS_PER_SEC", "1".into()),
            ("BAOVE_CALL_BURST", "5".into()),
            ("BAOVE_STREAMS_PER_CALLER", "2".into()),
        ],
    );
    casework.wait_health("", ServingStatus::Serving).await;
    let officer = province_officer("so-yt-1");
    let mut client = CaseServiceClient::new(casework.channel_as(&officer).await);
    let mut exhausted = 0;
    for _ in 0..10 {
        if let Err(status) = client.list_cases(p::ListCasesRequest::default()).await {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            assert!(status.message().contains("too many calls"), "{status:?}");
            exhausted += 1;
        }
    }
    assert!(exhausted >= 4, "{exhausted} of 10 calls refused");
    // Another user is not slowed by the first one.
    CaseServiceClient::new(casework.channel_as(&province_officer("so-yt-2")).await)
        .list_cases(p::ListCasesRequest::default())
        .await
        .unwrap();

    // Streams: two live WatchCase streams per caller; a third is refused
    // naming the limit; closing one frees its place.
    let receipt = IntakeServiceClient::new(intake.channel().await)
        .submit_hotline_report(hotline("limits-1", "Lê Văn Tư"))
        .await
        .unwrap()
        .into_inner();
    let case_id = crate::intake::case_of(&intake, &receipt.intake_id).await;
    let watcher = province_officer("so-yt-3");
    let mut watch = CaseServiceClient::new(casework.channel_as(&watcher).await);
    let request = || p::WatchCaseRequest {
        case_id: case_id.clone(),
        from_seq: 0,
    };
    let first = watch.watch_case(request()).await.unwrap();
    let _second = watch.watch_case(request()).await.unwrap();
    let refused = watch.watch_case(request()).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("limit per user"), "{refused:?}");
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match watch.watch_case(request()).await {
            Ok(_) => break,
            Err(status) => assert_eq!(status.code(), tonic::Code::ResourceExhausted),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream never freed its place"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_with_bad_times_or_subjects_are_unauthenticated() {
    let nats = baove_testkit::NatsServer::start().unwrap();
    let casework = Service::start("casework", &nats.url());
    casework.wait_health("", ServingStatus::Serving).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |sub: &str, iat: u64, nbf: Option<u64>, exp: u64| baove_security::token::Claims {
        sub: sub.into(),
        role: Role::ProvinceOfficer,
        agency: "vn:92/so-y-te".into(),
        units: Vec::new(),
        iat,
        nbf,
        exp,
    };
    for bad in [
        claims("so-yt-1", now, Some(now + 3600), now + 7200),
        claims("so-yt-1", now + 3600, None, now + 7200),
        claims("so-yt-1", now, None, 253_402_300_799),
        claims("", now, None, now + 600),
        claims(&"a".repeat(5000), now, None, now + 600),
    ] {
        let token = crate::keys().issuer.sign(&bad).unwrap();
        let status = CaseServiceClient::new(casework.channel_with_token(&token, "").await)
            .list_cases(p::ListCasesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{bad:?}: {status:?}"
        );
    }
}

#[test]
fn the_cli_ends_quietly_when_the_reader_of_its_output_went_away() {
    // `baove ... | head`: the reader closed before the CLI wrote.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let keys = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(crate::bin_dir().join("baove"))
        .args(["token", "keygen", "--private"])
        .arg(keys.path().join("k.pem"))
        .arg("--public")
        .arg(keys.path().join("k.pub.pem"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The work was done all the same.
    assert!(keys.path().join("k.pub.pem").is_file());
}

/// A refused call is answered once its request has been read, so the
/// refusal reaches the client as its own code. Answered while the client
/// was still sending, the server had to reset the stream, and a client
/// that lost that race (hyper's, under a flood of refusals) reported
/// "transport error: broken pipe" (UNKNOWN) instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_waits_for_the_request_and_does_not_reset_the_stream() {
    let nats = baove_testkit::NatsServer::start().unwrap();
    let intake = Service::start("intake", &nats.url());
    intake.wait_health("", ServingStatus::Serving).await;
    let tcp = tokio::net::TcpStream::connect(intake.addr.trim_start_matches("http://"))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    // No token: refused by the gate before any handler runs.
    let request = http::Request::post(format!("{}/baove.v1.IntakeService/GetIntake", intake.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (mut response, mut send) = client.send_request(request, false).unwrap();
    // Only the headers are sent: the server must not answer yet.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut response).await;
    assert!(
        early.is_err(),
        "answered before the request was sent: {early:?}"
    );
    // The request: one empty protobuf message, gRPC-framed.
    send.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let response = response.await.unwrap();
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(status.as_deref(), Some("16"), "{response:?}");
    // The stream ended without a reset: nothing the client sent was cut off.
    let reset = std::future::poll_fn(|cx| match send.poll_reset(cx) {
        std::task::Poll::Pending => std::task::Poll::Ready(None),
        std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
    })
    .await;
    assert!(reset.is_none(), "the stream was reset: {reset:?}");
}
