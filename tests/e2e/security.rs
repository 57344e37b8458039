//! Who may see what, end to end: tokens, the role table tried on every RPC
//! with a generic client, scope and redaction, the access log, erasure, and
//! an export bundle checked offline.

use baove_proto::v1::{
    self as p, audit_service_client::AuditServiceClient, case_service_client::CaseServiceClient,
    intake_service_client::IntakeServiceClient,
};
use baove_security::Role;
use baove_security::policy::POLICY;

use crate::casework::opened_case;

use crate::intake::System;
use crate::{Identity, Service, auditor, police, province_officer};

/// Calls `path` with an empty request as `channel`'s caller, whatever its
/// message types: the way a generic gRPC client probes an API.
async fn probe(channel: crate::AuthChannel, path: &'static str) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    // Server streaming works for unary methods too (one message); only the
    // answer's status matters, not the messages.
    grpc.server_streaming(
        tonic::Request::new(()),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(drop)
}

fn identity_of(role: Role) -> Identity {
    match role {
        Role::HotlineOperator => crate::hotline_operator("op-17"),
        Role::CommuneOfficer => Identity::new("cb-1", role, "vn:31135/ubnd", &["vn:31135"]),
        Role::ProvinceOfficer => province_officer("so-yt-1"),
        Role::Police => police("ca-301", "vn:31135/cong-an"),
        Role::AgencyStaff => Identity::new("yt-1", role, "vn:92/so-y-te", &[]),
        Role::Auditor => auditor(),
        Role::Administrator => Identity::new("admin-1", role, "vn:92/so-y-te", &[]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_what_the_table_forbids_and_records_the_refusal() {
    let system = System::start().await;
    let referral = Service::start("referral", &system.nats.url());
    referral
        .wait_health(
            "",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
    let service_of = |path: &str| -> &Service {
        if path.contains("IntakeService") {
            &system.intake
        } else if path.contains("ReferralService") {
            &referral
        } else {
            &system.casework
        }
    };
    let mut denied = 0;
    for (path, roles) in POLICY {
        for role in Role::ALL {
            let service = service_of(path);
            let answer = probe(service.channel_as(&identity_of(role)).await, path).await;
            if roles.contains(&role) {
                if let Err(status) = &answer {
                    assert!(
                        !matches!(status.code(), tonic::Code::Unauthenticated)
                            && !status.message().contains("may not call"),
                        "{role} on {path}: {status:?}"
                    );
                }
            } else {
                let status = answer.expect_err(&format!("{role} on {path} must be refused"));
                assert_eq!(
                    status.code(),
                    tonic::Code::PermissionDenied,
                    "{role} on {path}"
                );
                assert!(status.message().contains("may not call"), "{status:?}");
                denied += 1;
            }
        }
    }
    assert!(denied > 100, "{denied}");
    // An RPC the table does not know is refused to everyone.
    let unknown = probe(
        system
            .casework
            .channel_as(&province_officer("so-yt-1"))
            .await,
        "/baove.v1.CaseService/DeleteCase",
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::PermissionDenied);
    // Refusals are in the access log, with who and why.
    let entries = AuditServiceClient::new(system.casework.channel_as(&auditor()).await)
        .list_access(p::ListAccessRequest {
            user_id: "op-17".into(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(
        entries.iter().any(|e| e.outcome == "refused"
            && e.rpc == "CaseService/GetCase"
            && e.reason.contains("hotline_operator may not call")),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_malformed_foreign_and_expired_tokens_are_unauthenticated() {
    let system = System::start().await;
    let foreign = baove_security::Issuer::new(&baove_security::token::new_signing_key())
        .unwrap()
        .issue("x", Role::Auditor, "", &[], 600)
        .unwrap();
    for token in ["", "not-a-jwt", foreign.as_str()] {
        let status = CaseServiceClient::new(system.casework.channel_with_token(token, "").await)
            .list_cases(p::ListCasesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{token:?}: {status:?}"
        );
    }
    // Health stays open.
    system
        .casework
        .wait_health(
            "",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_fields_show_only_where_allowed_every_read_is_logged_and_erasure_keeps_the_chain()
 {
    let system = System::start().await;
    let referral = Service::start("referral", &system.nats.url());
    let mut o = opened_case(&system, "secret-1").await;
    let intake_id = o.case().await.intake_ids[0].clone();
    let get = |who: Identity| {
        let intake = &system.intake;
        let id = intake_id.clone();
        async move {
            IntakeServiceClient::new(intake.channel_as(&who).await)
                .get_intake(p::GetIntakeRequest { intake_id: id })
                .await
                .map(|r| r.map(|r| r.intake.unwrap()))
        }
    };
    let name = |i: &p::Intake| match &i.report {
        Some(p::intake::Report::Hotline(h)) => h
            .facts
            .as_ref()
            .and_then(|f| f.child.as_ref())
            .map(|c| c.full_name.clone())
            .unwrap_or_default(),
        _ => String::new(),
    };

    // The department and the commune see the child; the auditor does not.
    let shown = get(province_officer("so-yt-1")).await.unwrap().into_inner();
    assert_eq!(shown.confidential, p::Confidentiality::Shown as i32);
    assert_eq!(name(&shown), "Nguyễn Thị Bé");
    let commune = Identity::new("cb-1", Role::CommuneOfficer, "", &["vn:31135"]);
    assert_eq!(
        name(&get(commune).await.unwrap().into_inner()),
        "Nguyễn Thị Bé"
    );
    let audited = get(auditor()).await.unwrap().into_inner();
    assert_eq!(audited.confidential, p::Confidentiality::Redacted as i32);
    assert_eq!(name(&audited), "");
    // Another commune, and the police before any referral: refused.
    let elsewhere = Identity::new("cb-9", Role::CommuneOfficer, "", &["vn:31120"]);
    assert_eq!(
        get(elsewhere).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    let ca = police("ca-301", "vn:31135/cong-an");
    assert_eq!(
        get(ca.clone()).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );

    // A referral to the police under a legal basis shares the identity; one
    // to the health department without consent does not.
    refer(
        &mut o,
        p::RequestReferralRequest {
            service: p::RequestedService::PoliceInvestigation as i32,
            to_agency_id: "vn:31135/cong-an".into(),
            reason: "dấu hiệu tội phạm".into(),
            shares_identifying_information: true,
            legal_basis: p::LegalBasis::CriminalInvestigation as i32,
            ..Default::default()
        },
    )
    .await;
    refer(
        &mut o,
        p::RequestReferralRequest {
            service: p::RequestedService::MedicalExamination as i32,
            to_agency_id: "vn:92/so-y-te".into(),
            reason: "khám sức khỏe".into(),
            ..Default::default()
        },
    )
    .await;
    let health = Identity::new("yt-1", Role::AgencyStaff, "vn:92/so-y-te", &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (for_police, for_health) = loop {
        if let (Ok(a), Ok(b)) = (get(ca.clone()).await, get(health.clone()).await) {
            break (a.into_inner(), b.into_inner());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the referrals never reached intake"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(name(&for_police), "Nguyễn Thị Bé");
    assert_eq!(for_health.confidential, p::Confidentiality::Redacted as i32);
    assert_eq!(name(&for_health), "");

    // The stored event holds no name: it is sealed before hashing.
    let mut audit = AuditServiceClient::new(system.intake.channel_as(&auditor()).await);
    let stored = audit
        .read_stream(p::ReadStreamRequest {
            stream_id: intake_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!stored.events[0].payload_json.contains("Nguyễn Thị Bé"));
    assert!(stored.events[0].payload_json.contains("XChaCha20-Poly1305"));

    // Every read above is in the access log, the refusals too.
    let log = audit
        .list_access(p::ListAccessRequest {
            case_id: o.case_id.clone(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let by = |user: &str, outcome: &str| {
        log.iter()
            .filter(|e| e.actor.as_ref().is_some_and(|a| a.user_id == user) && e.outcome == outcome)
            .count()
    };
    assert!(by("so-yt-1", "read") >= 1, "{log:?}");
    assert!(by("kiem-tra-1", "read") >= 1, "{log:?}");
    assert!(by("ca-301", "refused") >= 1, "{log:?}");
    assert!(by("ca-301", "read") >= 1, "{log:?}");
    assert!(log.iter().all(|e| e.purpose == "e2e test"), "{log:?}");
    // Nobody else: the commune officer elsewhere was refused before the
    // intake was known to be of this case? No: refusals name the case.
    assert!(by("cb-9", "refused") >= 1, "{log:?}");

    // Erasure: the fields read as erased for everyone, the chain holds.
    let refused = IntakeServiceClient::new(system.intake.channel_as(&auditor()).await)
        .erase_case(p::EraseCaseRequest {
            request_id: "erase-1".into(),
            case_id: o.case_id.clone(),
            reason: "yêu cầu xóa của người giám hộ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let erased =
        IntakeServiceClient::new(system.intake.channel_as(&province_officer("so-yt-1")).await)
            .erase_case(p::EraseCaseRequest {
                request_id: "erase-1".into(),
                case_id: o.case_id.clone(),
                reason: "yêu cầu xóa của người giám hộ".into(),
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(erased.intake_ids, std::slice::from_ref(&intake_id));
    let after = get(province_officer("so-yt-1")).await.unwrap().into_inner();
    assert_eq!(after.confidential, p::Confidentiality::Erased as i32);
    assert_eq!(name(&after), "");
    crate::assert_chain_intact(&system.intake, &intake_id).await;
    let history = audit
        .read_stream(p::ReadStreamRequest {
            stream_id: intake_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let erasure = history
        .events
        .iter()
        .find(|e| e.event_type == "ConfidentialErased")
        .unwrap();
    assert_eq!(erasure.actor.as_ref().unwrap().user_id, "so-yt-1");
    assert!(erasure.payload_json.contains("người giám hộ"));
    drop(referral);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_case_verifies_offline_and_fails_after_any_edit() {
    let system = System::start().await;
    let o = opened_case(&system, "export-1").await;
    let bundle = AuditServiceClient::new(system.casework.channel_as(&auditor()).await)
        .export_case(p::ExportCaseRequest {
            case_id: o.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .bundle_json;
    let key = baove_security::token::read_verifying_key(
        &system.casework.data.path().join("checkpoint-key.pub.pem"),
    )
    .unwrap();
    let parse = |bytes: &[u8]| -> baove_audit::checkpoint::Bundle {
        serde_json::from_slice(bytes).unwrap()
    };
    let verified = parse(&bundle).verify(Some(&key), &[]).unwrap();
    assert_eq!(verified.stream_id, o.case_id);
    assert!(verified.events >= 1);
    // The auditor's other views of the same case agree with the bundle.
    let mut audit = AuditServiceClient::new(system.casework.channel_as(&auditor()).await);
    let mut history = audit
        .stream_history(p::StreamHistoryRequest {
            case_id: o.case_id.clone(),
            from_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    while let Some(item) = futures_util::StreamExt::next(&mut history).await {
        let item = item.unwrap();
        let event = item.event.unwrap();
        // Each event also comes typed, as the case's own model reads it.
        let typed = item.case_event.and_then(|e| e.event);
        assert!(typed.is_some(), "{} came untyped", event.event_type);
        if event.seq == 1 {
            assert!(
                matches!(&typed, Some(p::case_event::Event::CaseOpened(c)) if c.case_id == o.case_id),
                "{typed:?}"
            );
        }
        seqs.push(event.seq);
    }
    assert_eq!(seqs, (1..=verified.events).collect::<Vec<_>>());
    let chain = audit
        .verify_stream(p::VerifyStreamRequest {
            stream_id: o.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(chain.intact);
    assert_eq!(hex_of(&chain.head.unwrap().hash), verified.head_hash);
    // Any edit fails: an event's payload, its actor, the proof, the
    // checkpoint's root, another signing key.
    let mut edited = parse(&bundle);
    edited.events[0].payload = edited.events[0].payload.replacen("true", "false", 1);
    assert!(
        edited
            .verify(Some(&key), &[])
            .unwrap_err()
            .contains("seq 1")
    );
    let mut edited = parse(&bundle);
    edited.events[0].actor.user_id = "someone-else".into();
    assert!(edited.verify(Some(&key), &[]).is_err());
    let mut edited = parse(&bundle);
    edited.events.pop();
    assert!(edited.verify(Some(&key), &[]).is_err());
    let mut edited = parse(&bundle);
    edited.checkpoint.global_position += 1;
    assert!(
        edited
            .verify(Some(&key), &[])
            .unwrap_err()
            .contains("note says")
    );
    let mut edited = parse(&bundle);
    edited.checkpoint.root_hash = hex_of(&[7u8; 32]);
    assert!(edited.verify(Some(&key), &[]).is_err());
    let mut edited = parse(&bundle);
    edited.proofs[0].pop();
    assert!(
        edited
            .verify(Some(&key), &[])
            .unwrap_err()
            .contains("seq 1")
    );
    let other = baove_security::token::new_signing_key().verifying_key();
    assert!(parse(&bundle).verify(Some(&other), &[]).is_err());
}

/// The log up to `upto` (a kept checkpoint's position), as an auditor
/// reads it.
async fn whole_log(
    audit: &mut AuditServiceClient<crate::AuthChannel>,
    upto: u64,
) -> Vec<baove_eventlog::Envelope> {
    let mut events = Vec::new();
    let mut from = 1;
    while from <= upto {
        let page = audit
            .read_all(p::ReadAllRequest {
                from_position: from,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner();
        if page.events.is_empty() {
            break;
        }
        from = page.next_position;
        events.extend(
            page.events
                .iter()
                .map(|e| baove_audit::checkpoint::envelope_from_proto(e).unwrap()),
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rewritten_with_a_consistent_chain_no_longer_matches_an_earlier_checkpoint() {
    let mut system = System::start().await;
    let o = opened_case(&system, "rewrite-1").await;
    let mut audit = AuditServiceClient::new(system.casework.channel_as(&auditor()).await);
    let kept = baove_audit::checkpoint::checkpoint_from_proto(
        &audit
            .get_checkpoint(p::GetCheckpointRequest { fresh: true })
            .await
            .unwrap()
            .into_inner()
            .checkpoint
            .unwrap(),
    );
    let key = baove_security::token::read_verifying_key(
        &system.casework.data.path().join("checkpoint-key.pub.pem"),
    )
    .unwrap();
    kept.check_log(
        whole_log(&mut audit, kept.global_position).await,
        Some(&key),
    )
    .unwrap();

    // Someone with the disk rewrites the case's last event (who took the
    // step) and recomputes its hash and the head: the chain is consistent.
    system.casework.terminate();
    assert!(system.casework.exit_status().await.success());
    let stream = baove_eventlog::StreamId::parse("case", &o.case_id).unwrap();
    {
        use baove_eventlog::layout;
        let db = sled::open(system.casework.data.path().join("eventlog")).unwrap();
        let events = db.open_tree(layout::EVENTS).unwrap();
        let heads = db.open_tree(layout::HEADS).unwrap();
        let head =
            layout::decode_head(stream, &heads.get(stream.as_bytes()).unwrap().unwrap()).unwrap();
        let at = layout::event_key(stream, head.version);
        let mut event =
            baove_eventlog::Envelope::decode(&events.get(at).unwrap().unwrap()).unwrap();
        event.actor.user_id = "someone-else".into();
        event.hash = event.compute_hash();
        events.insert(at, event.encode().unwrap()).unwrap();
        heads
            .insert(
                stream.as_bytes(),
                layout::encode_head(head.version, event.hash).to_vec(),
            )
            .unwrap();
        db.flush().unwrap();
    }
    let nats_url = system.nats.url();
    let data = std::mem::replace(&mut system.casework.data, tempfile::tempdir().unwrap());
    // casework itself refuses the rewritten log: the case's last event is
    // not the one under the root of the checkpoint it kept outside the
    // sled files at its last stop.
    let (refused, data) = Service::try_start_in("casework", &nats_url, data)
        .err()
        .expect("a rewritten log must not be served");
    assert!(
        refused.contains("does not match") && refused.contains("it was changed"),
        "{refused}"
    );
    // Someone who deletes that file too is still refused: the log's own
    // Merkle tree holds the case's original last event...
    std::fs::remove_file(data.path().join("eventlog.checkpoint.json")).unwrap();
    let (refused, data) = Service::try_start_in("casework", &nats_url, data)
        .err()
        .expect("a log that no longer matches its own Merkle tree must not be served");
    assert!(
        refused.contains("its own Merkle tree") && refused.contains("it was changed"),
        "{refused}"
    );
    // ...someone who also drops the tree (it grows again from the rewritten
    // events) gets it served...
    {
        let db = sled::open(data.path().join("eventlog")).unwrap();
        assert!(db.drop_tree(baove_eventlog::layout::TREE).unwrap());
        db.flush().unwrap();
    }
    system.casework = Service::start_in("casework", &nats_url, data);
    system
        .casework
        .wait_health(
            "",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
    let mut audit = AuditServiceClient::new(system.casework.channel_as(&auditor()).await);
    // ...and the chain alone cannot tell...
    crate::assert_chain_intact(&system.casework, &o.case_id).await;
    // ...the kept checkpoint can.
    let err = kept
        .check_log(
            whole_log(&mut audit, kept.global_position).await,
            Some(&key),
        )
        .unwrap_err();
    assert!(err.contains("rewritten"), "{err}");
}

/// The NATS users and permissions of the deployment.
pub const AUTHORIZATION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/nats/authorization.conf.in"
);

/// Each service's user, password and password file (in `dir`), with
/// `config` (the users and permissions) made to hold those passwords.
pub fn with_passwords(
    mut config: String,
    dir: &std::path::Path,
) -> (
    String,
    std::collections::HashMap<&'static str, (String, std::path::PathBuf)>,
) {
    let mut users = std::collections::HashMap::new();
    for service in ["intake", "casework", "referral"] {
        let password = format!("{service}-{}", uuid::Uuid::now_v7().simple());
        config = config.replace(&format!("@{}_PASSWORD@", service.to_uppercase()), &password);
        let file = dir.join(service);
        std::fs::write(&file, &password).unwrap();
        users.insert(service, (password, file));
    }
    (config, users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_each_service_has_its_own_credentials_and_publishes_only_its_own_subjects() {
    let secrets = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(AUTHORIZATION).unwrap();
    let (config, env) = with_passwords(config, secrets.path());
    let nats = baove_testkit::NatsServer::start_with_config(&config).unwrap();
    let start = |name: &'static str| {
        let (_, file) = &env[name];
        Service::start_with(
            name,
            &nats.url(),
            tempfile::tempdir().unwrap(),
            &[
                ("BAOVE_NATS_USER", name.to_owned()),
                ("BAOVE_NATS_PASSWORD_FILE", file.display().to_string()),
            ],
        )
    };
    let (intake, casework, referral) = (start("intake"), start("casework"), start("referral"));
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving;
    for service in [&intake, &casework, &referral] {
        service.wait_health("baove.bus", serving).await;
    }
    // With intake's credentials: its own subject is accepted, casework's
    // is not; and the replies other services get (JetStream acks, pulled
    // messages) cannot be overheard.
    let client = async_nats::ConnectOptions::with_user_and_password(
        "intake".into(),
        env["intake"].0.clone(),
    )
    .custom_inbox_prefix(baove_bus::inbox_prefix("intake"))
    .connect(nats.url())
    .await
    .unwrap();
    let mut snooping = Vec::new();
    for subject in ["_INBOX.>", "_INBOX_casework.>", "_INBOX_referral.>", ">"] {
        snooping.push(client.subscribe(subject).await.unwrap());
    }
    client.flush().await.unwrap();

    // Under these permissions the flow still works: a report becomes a case
    // and a referral reaches the police (casework and referral pulling and
    // publishing all the while).
    let receipt = IntakeServiceClient::new(intake.channel().await)
        .submit_hotline_report(crate::intake::hotline("nats-perm-1", "Trần Văn Nam"))
        .await
        .unwrap()
        .into_inner();
    let case_id = crate::intake::case_of(&intake, &receipt.intake_id).await;
    assert!(!case_id.is_empty());
    let mut o = crate::casework::Officer::of(&casework, &case_id).await;
    refer(
        &mut o,
        p::RequestReferralRequest {
            service: p::RequestedService::PoliceInvestigation as i32,
            to_agency_id: "vn:31135/cong-an".into(),
            reason: "dấu hiệu tội phạm".into(),
            shares_identifying_information: true,
            legal_basis: p::LegalBasis::CriminalInvestigation as i32,
            ..Default::default()
        },
    )
    .await;
    let mut police =
        p::referral_service_client::ReferralServiceClient::new(referral.channel().await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while police
        .list_inbox(p::ListInboxRequest {
            agency_id: "vn:31135/cong-an".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .referrals
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the referral never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // An erasure at intake reaches casework's own consumer of it, which
    // erases the case's private text.
    IntakeServiceClient::new(intake.channel_as(&province_officer("so-yt-1")).await)
        .erase_case(p::EraseCaseRequest {
            request_id: "nats-perm-erase-1".into(),
            case_id: case_id.clone(),
            reason: "yêu cầu xóa của người giám hộ".into(),
        })
        .await
        .unwrap();
    loop {
        let events = crate::stored_events(&casework, &case_id).await;
        if events.iter().any(|e| e.event_type == "PrivateTextErased") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "casework never received the erasure"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for mut subscription in snooping {
        let overheard = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            futures_util::StreamExt::next(&mut subscription),
        )
        .await;
        assert!(
            !matches!(overheard, Ok(Some(_))),
            "intake's credentials overheard {:?}",
            overheard.ok().flatten().map(|m| m.subject)
        );
    }
    let js = async_nats::jetstream::new(client);
    js.publish("baove.intake.PermissionProbe", "{}".into())
        .await
        .unwrap()
        .await
        .expect("intake may publish on baove.intake.>");
    let forged = match js.publish("baove.case.CaseOpened", "{}".into()).await {
        Ok(ack) => ack.await.is_err(),
        Err(_) => true,
    };
    assert!(forged, "intake must not publish casework's events");
    // intake may ask the leader of its own streams and buckets to step
    // down (refused here only because this NATS is not a cluster), not
    // casework's.
    let asking = async_nats::jetstream::ContextBuilder::new()
        .timeout(std::time::Duration::from_secs(2))
        .build(js.client());
    for own in ["BAOVE_INTAKE", "BAOVE_INTAKE_LOG", "KV_BAOVE_LEASES"] {
        let answer = baove_bus::replicas::step_down(&asking, own).await;
        assert!(
            matches!(answer, Ok(()) | Err(baove_bus::BusError::JetStream(_))),
            "{own}: {answer:?}"
        );
    }
    let theirs = baove_bus::replicas::step_down(&asking, "BAOVE_CASE").await;
    assert!(
        matches!(theirs, Err(baove_bus::BusError::Unavailable(_))),
        "intake stepped casework's stream's leader down: {theirs:?}"
    );
    // A wrong password, or none, is refused.
    for options in [
        async_nats::ConnectOptions::with_user_and_password("intake".into(), "wrong".into()),
        async_nats::ConnectOptions::new(),
    ] {
        assert!(
            options
                .max_reconnects(Some(1))
                .connection_timeout(std::time::Duration::from_secs(2))
                .connect(nats.url())
                .await
                .is_err()
        );
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Requests a referral as an officer would: when a referral step landed on
/// the case meanwhile (ABORTED), reload the version and decide again.
pub async fn refer(o: &mut crate::casework::Officer, request: p::RequestReferralRequest) -> String {
    for _ in 0..10 {
        o.version = o.case().await.version;
        let header = o.header();
        match o
            .client
            .request_referral(p::RequestReferralRequest {
                header,
                ..request.clone()
            })
            .await
        {
            Ok(r) => return r.into_inner().referral_id,
            Err(status) if status.code() == tonic::Code::Aborted => {}
            Err(status) => panic!("{status:?}"),
        }
    }
    panic!("the case kept moving");
}

/// The events of `case_id` in casework's log as stored, and as a reader's
/// typed history (`CaseEvent`) gets them.
async fn stored_and_read(
    system: &System,
    case_id: &str,
) -> (Vec<p::EventEnvelope>, Vec<Option<p::CaseEvent>>) {
    let stored = crate::stored_events(&system.casework, case_id).await;
    let mut history = AuditServiceClient::new(system.casework.channel_as(&auditor()).await)
        .stream_history(p::StreamHistoryRequest {
            case_id: case_id.to_owned(),
            from_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut read = Vec::new();
    while let Some(item) = futures_util::StreamExt::next(&mut history).await {
        read.push(item.unwrap().case_event);
    }
    (stored, read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cases_private_text_is_sealed_at_rest_read_by_those_who_may_and_erased_with_its_reports()
{
    const NOTE: &str = "Cháu kể dượng đánh bằng roi mây, bầm ở lưng";
    const SUMMARY: &str = "Nguy cơ cao: dượng say rượu hằng đêm";
    const FACTOR: &str = "dượng nghiện rượu";
    let system = System::start().await;
    let mut o = opened_case(&system, "private-1").await;
    let h = o.header();
    let mut c = o.client.clone();
    o.took(
        c.record_initial_assessment(p::RecordInitialAssessmentRequest {
            header: h,
            ratings: vec![p::RiskRating {
                factor: FACTOR.into(),
                level: p::RiskLevel::High as i32,
            }],
            emergency_measures_apply: true,
            summary: SUMMARY.into(),
            ..Default::default()
        })
        .await,
    )
    .unwrap();
    let h = o.header();
    o.took(
        c.add_note(p::AddNoteRequest {
            header: h,
            text: NOTE.into(),
        })
        .await,
    )
    .unwrap();

    // Stored (and so published, backed up, exported): sealed, at schema
    // version 2; the chain verifies.
    let (stored, read) = stored_and_read(&system, &o.case_id).await;
    let note_at = stored
        .iter()
        .position(|e| e.event_type == "NoteAdded")
        .unwrap();
    let assessed_at = stored
        .iter()
        .position(|e| e.event_type == "InitialAssessmentRecorded")
        .unwrap();
    for event in &stored {
        for secret in [NOTE, SUMMARY, FACTOR, "roi mây", "rượu"] {
            assert!(
                !event.payload_json.contains(secret),
                "{} holds {secret:?} in clear: {}",
                event.event_type,
                event.payload_json
            );
        }
    }
    assert_eq!(stored[note_at].schema_version, 2);
    assert!(stored[note_at].payload_json.contains("sealed:"));
    crate::assert_chain_intact(&system.casework, &o.case_id).await;

    // Read: opened, in the case, its history and its replay.
    use p::case_event::Event as E;
    assert!(
        matches!(&read[note_at], Some(p::CaseEvent { event: Some(E::NoteAdded(n)) }) if n.text == NOTE),
        "{:?}",
        read[note_at]
    );
    assert!(
        matches!(&read[assessed_at], Some(p::CaseEvent { event: Some(E::InitialAssessmentRecorded(a)) })
            if a.summary == SUMMARY && a.ratings[0].factor == FACTOR),
        "{:?}",
        read[assessed_at]
    );
    assert_eq!(o.case().await.notes, [NOTE]);
    let replayed = CaseServiceClient::new(system.casework.channel_as(&auditor()).await)
        .replay_case(p::ReplayCaseRequest {
            case_id: o.case_id.clone(),
            as_of: Some(p::replay_case_request::AsOf::AsOfSeq(stored.len() as u64)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.case.unwrap().notes, [NOTE]);

    // Erasing the case's reports at intake erases its private text too:
    // casework destroys the case's key and records why.
    IntakeServiceClient::new(system.intake.channel_as(&province_officer("so-yt-1")).await)
        .erase_case(p::EraseCaseRequest {
            request_id: "erase-private-1".into(),
            case_id: o.case_id.clone(),
            reason: "yêu cầu xóa của người giám hộ".into(),
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (stored, read) = loop {
        let (stored, read) = stored_and_read(&system, &o.case_id).await;
        if stored.iter().any(|e| e.event_type == "PrivateTextErased") {
            break (stored, read);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "casework never erased the case's text"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let erasure = stored
        .iter()
        .find(|e| e.event_type == "PrivateTextErased")
        .unwrap();
    assert_eq!(erasure.actor.as_ref().unwrap().user_id, "so-yt-1");
    assert!(erasure.payload_json.contains("người giám hộ"));
    assert!(
        matches!(&read[note_at], Some(p::CaseEvent { event: Some(E::NoteAdded(n)) }) if n.text == "[erased]"),
        "{:?}",
        read[note_at]
    );
    let case = o.case().await;
    assert_eq!(case.notes, ["[erased]"]);
    // The procedure goes on: a note written after the erasure is sealed
    // under a new key and reads; the old one stays erased.
    o.version = case.version;
    let h = o.header();
    o.took(
        c.add_note(p::AddNoteRequest {
            header: h,
            text: "đã chuyển cháu đến nhà bà ngoại".into(),
        })
        .await,
    )
    .unwrap();
    assert_eq!(
        o.case().await.notes,
        ["[erased]", "đã chuyển cháu đến nhà bà ngoại"]
    );
    crate::assert_chain_intact(&system.casework, &o.case_id).await;
}

/// Every read is recorded in the access log, and no answer is kept per
/// record under its command id (each has a new one; nobody appends it
/// again): after a report and five reads of it, the stopped intake's
/// access log holds the five records and its `commands` tree nothing.
/// Before, it held one answer per record, about 250 of each record's 800
/// bytes (issue #15, disk per report).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_is_recorded_in_the_access_log_without_an_answer_kept_per_record() {
    let nats = baove_testkit::NatsServer::start().unwrap();
    let mut intake = Service::start("intake", &nats.url());
    intake
        .wait_health(
            "",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
    let mut client = crate::intake::intake_client(&intake).await;
    let receipt = client
        .submit_hotline_report(crate::intake::hotline("access-1", "Đặng Thị Thu"))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        client
            .get_intake(p::GetIntakeRequest {
                intake_id: receipt.intake_id.clone(),
            })
            .await
            .unwrap();
    }
    intake.terminate();
    assert!(intake.exit_status().await.success());

    let data = intake.into_data();
    let db = sled::open(data.path().join("accesslog")).unwrap();
    let reads = db
        .open_tree(baove_eventlog::layout::EVENTS)
        .unwrap()
        .iter()
        .map(|item| baove_eventlog::Envelope::decode(&item.unwrap().1).unwrap())
        .filter(|e| e.payload.contains("IntakeService/GetIntake"))
        .inspect(|e| assert!(e.command_id.starts_with("access:"), "{}", e.command_id))
        .count();
    assert_eq!(reads, 5, "each read recorded");
    let answers = db.open_tree(baove_eventlog::layout::COMMANDS).unwrap();
    assert_eq!(answers.len(), 0, "no answer kept per access record");
}
