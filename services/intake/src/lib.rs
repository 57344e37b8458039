//! The intake service: receives 111 hotline reports and police notifications (Mẫu 01), records each durably in its own log and hands it to casework over NATS.
//!
//! Today it runs the shared foundation only: its event log, gRPC health,
//! reflection and `baove.v1.AuditService` over that log, its JetStream
//! stream and outbox relay. Its own API comes with its issue.
//!
//! # Layout
//! - [`SPEC`]: its name, stream and gRPC services.
//! - [`run`]: runs it until shutdown (see `baove_runtime::node` for the
//!   start-up and shutdown order).

use baove_runtime::Config;
use baove_runtime::node::ServiceSpec;
use tokio_util::sync::CancellationToken;

/// What distinguishes intake at start-up.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "intake",
    stream: baove_bus::INTAKE,
    grpc_services: &[],
};

/// Runs the service until `shutdown` fires.
///
/// # Errors
/// When start-up fails (event log, port) or the server fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    baove_runtime::node::run(SPEC, config, shutdown, |_log| {
        tonic::service::Routes::default()
    })
    .await
}
