//! The three services start, answer health and reflection, serve the audit
//! API, follow NATS, and stop cleanly.

use baove_proto::v1::{
    ReadAllRequest, ReadStreamRequest, VerifyStreamRequest,
    audit_service_client::AuditServiceClient,
};
use baove_testkit::NatsServer;
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};
use tonic_types::StatusExt;

use crate::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_nats_when_the_three_services_start_then_each_serves_health_reflection_and_audit() {
    let nats = NatsServer::start().unwrap();
    let services: Vec<Service> = ["intake", "casework", "referral"]
        .into_iter()
        .map(|name| Service::start(name, &nats.url()))
        .collect();
    for service in &services {
        service.wait_health("", ServingStatus::Serving).await;
        service
            .wait_health("baove.bus", ServingStatus::Serving)
            .await;
        service
            .wait_health("baove.v1.AuditService", ServingStatus::Serving)
            .await;

        // Reflection lists the services, as a generic client (grpcurl) sees them.
        let mut reflection = ServerReflectionClient::new(service.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            responses.next().await.unwrap().unwrap().message_response
        else {
            panic!("{}: no service list", service.name);
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for expected in ["baove.v1.AuditService", "grpc.health.v1.Health"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{}: {expected} not in {names:?}",
                service.name
            );
        }

        // The audit API answers over the service's own (empty) log.
        let mut audit = AuditServiceClient::new(service.channel_as(&crate::auditor()).await);
        let all = audit
            .read_all(ReadAllRequest {
                from_position: 0,
                limit: 0,
            })
            .await
            .unwrap()
            .into_inner();
        // Nothing: this very read is recorded in the access log, which is
        // a log of its own.
        assert!(all.events.is_empty(), "{:?}", all.events);
        let reads = audit
            .list_access(baove_proto::v1::ListAccessRequest {
                user_id: crate::auditor().user,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        assert_eq!(reads.len(), 1, "{reads:?}");
        assert_eq!(reads[0].rpc, "AuditService/ReadAll");
        let unknown = uuid::Uuid::now_v7().to_string();
        let missing = audit
            .read_stream(ReadStreamRequest {
                stream_id: unknown.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let missing = audit
            .verify_stream(VerifyStreamRequest { stream_id: unknown })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let bad = audit
            .read_stream(ReadStreamRequest {
                stream_id: "case-1".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        let violations = bad
            .get_details_bad_request()
            .expect("a BadRequest detail")
            .field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "stream_id");
        let too_many = audit
            .read_all(ReadAllRequest {
                from_position: 1,
                limit: 5000,
            })
            .await
            .unwrap_err();
        assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
        assert!(
            too_many.message().contains("limit"),
            "{}",
            too_many.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_no_nats_yet_when_a_service_starts_then_it_serves_and_joins_nats_when_it_appears() {
    let port = baove_testkit::free_port().unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    // Each service reads another's stream: the bus is whole with all three.
    let services = ["intake", "casework", "referral"].map(|name| Service::start(name, &url));
    for service in &services {
        // Up for requests at once (reports are stored and wait in the
        // outbox)...
        service.wait_health("", ServingStatus::Serving).await;
        // ...while the bus is honestly reported down.
        assert_eq!(
            service.health("baove.bus").await,
            Some(ServingStatus::NotServing)
        );
    }
    let mut nats = NatsServer::start_on(port).unwrap();
    for service in &services {
        service
            .wait_health("baove.bus", ServingStatus::Serving)
            .await;
    }
    // And it follows NATS going away and coming back.
    nats.stop();
    for service in &services {
        service
            .wait_health("baove.bus", ServingStatus::NotServing)
            .await;
    }
    nats.restart().unwrap();
    for service in &services {
        service
            .wait_health("baove.bus", ServingStatus::Serving)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_running_service_when_sigterm_then_health_goes_not_serving_and_it_exits_cleanly() {
    let nats = NatsServer::start().unwrap();
    let mut service = Service::start("casework", &nats.url());
    service.wait_health("", ServingStatus::Serving).await;
    let mut watch = HealthClient::new(service.channel().await)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    service.terminate();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    drop(watch); // the client goes away, as a load balancer's would
    let status = service.exit_status().await;
    assert!(status.success(), "exit status {status}");

    // The event log was closed (sled's lock released): a new process opens
    // the same data directory and serves.
    let again = Service::start_in("casework", &nats.url(), service.into_data());
    again.wait_health("", ServingStatus::Serving).await;
}
