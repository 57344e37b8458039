//! The referral service: carries interagency referrals and transfers, each step a durable event.
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

/// What distinguishes referral at start-up.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "referral",
    stream: baove_bus::REFERRAL,
    grpc_services: &[],
};

/// Runs the service until `shutdown` fires.
///
/// # Errors
/// When start-up fails (event log, port) or the server fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    baove_runtime::node::run(SPEC, config, shutdown, |_| {
        Ok(baove_runtime::node::Parts::default())
    })
    .await
}
