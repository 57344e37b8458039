//! With the `otlp` feature (`cargo test -p baove-runtime --features otlp
//! --test otlp`, run by deploy/local/test.sh): the spans a service makes
//! reach an OpenTelemetry collector over OTLP/gRPC, as its resource, with
//! their fields and their parent, while the log lines still go to the log;
//! and they are flushed when the export is dropped (the process ends).
//! The collector here is a real gRPC server of the OTLP trace service.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

/// What the collector received: (service.name, span).
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .and_then(|v| match v {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    self.0.lock().unwrap().push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The string attribute `key` of `span`.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_otlp_endpoint_then_the_services_spans_reach_the_collector_with_their_fields_and_parent()
 {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let lines = Lines::default();
    let sink = lines.clone();
    let (subscriber, exporting) = baove_runtime::telemetry::subscriber_exporting(
        move || sink.clone(),
        false,
        baove_runtime::telemetry::LogFormat::Json,
        Some(&endpoint),
        "intake",
    )
    .unwrap();
    // As the services' spans are made: one per RPC (crate::auth) and an
    // event inside it.
    tracing::subscriber::with_default(subscriber, || {
        let rpc = tracing::info_span!(
            "rpc",
            rpc = "/baove.v1.IntakeService/SubmitHotlineReport",
            correlation_id = "0190c0de-0000-7000-8000-000000000001"
        );
        let _in_rpc = rpc.enter();
        let submit = tracing::info_span!("submit", request_id = "r-1");
        let _in_submit = submit.enter();
        tracing::info!(intake_id = "i-1", "report recorded");
    });
    // The process ends: what is batched is sent.
    tokio::task::spawn_blocking(move || drop(exporting))
        .await
        .unwrap();

    let spans = collector.0.lock().unwrap().clone();
    let named = |name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {:?}", spans))
    };
    let (service, rpc) = named("rpc");
    assert_eq!(service, "intake");
    assert_eq!(
        attribute(rpc, "rpc"),
        Some("/baove.v1.IntakeService/SubmitHotlineReport")
    );
    assert_eq!(
        attribute(rpc, "correlation_id"),
        Some("0190c0de-0000-7000-8000-000000000001")
    );
    let (_, submit) = named("submit");
    assert_eq!(attribute(submit, "request_id"), Some("r-1"));
    // One trace: the step inside the call is its child.
    assert_eq!(submit.trace_id, rpc.trace_id);
    assert_eq!(submit.parent_span_id, rpc.span_id);
    // The event rode on its span, and the log line was still written.
    assert!(submit.events.iter().any(|e| e.name == "report recorded"));
    let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("report recorded") && log.contains("\"intake_id\":\"i-1\""),
        "{log}"
    );
    server.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
}
