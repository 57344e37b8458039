//! The services' JetStream streams, created idempotently at start-up.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::BusError;

/// One service's stream: its name and the subjects it captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// JetStream stream name, e.g. `BAOVE_INTAKE`.
    pub name: &'static str,
    /// Subject prefix of the service's events, e.g. `baove.intake`; the
    /// stream captures `<prefix>.>`.
    pub prefix: &'static str,
}

/// intake's events: `baove.intake.<EventType>`.
pub const INTAKE: StreamSpec = StreamSpec {
    name: "BAOVE_INTAKE",
    prefix: "baove.intake",
};
/// casework's events: `baove.case.<EventType>`.
pub const CASE: StreamSpec = StreamSpec {
    name: "BAOVE_CASE",
    prefix: "baove.case",
};
/// referral's events: `baove.referral.<EventType>`.
pub const REFERRAL: StreamSpec = StreamSpec {
    name: "BAOVE_REFERRAL",
    prefix: "baove.referral",
};

/// Alerts for people on duty: `baove.alert.deadline.<commune unit id>`
/// (official ids such as `vn:31135`, one subject token) and
/// `baove.alert.referral.<agency id>` (`vn:92/cong-an`).
pub const ALERT: StreamSpec = StreamSpec {
    name: "BAOVE_ALERT",
    prefix: "baove.alert",
};

/// How long JetStream remembers a `Nats-Msg-Id` to drop a re-publish. The
/// relay re-publishes whatever it had not seen acknowledged, so this bounds
/// how long an outage can be without a duplicate reaching the stream;
/// receivers deduplicate by event id in any case.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Creates the stream, or updates it to this configuration: file storage,
/// limits retention (kept), a duplicate window of 24 hours, and `replicas`
/// copies (1 on a single server; 3 on a three-node JetStream cluster, so
/// that a publish is acknowledged only once a quorum of the nodes stored
/// it and any one node can be lost).
///
/// # Errors
/// [`BusError::JetStream`] when JetStream refuses (for example JetStream is
/// not enabled on the server).
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: StreamSpec,
    replicas: usize,
) -> Result<(), BusError> {
    let config = stream::Config {
        num_replicas: replicas.max(1),
        name: spec.name.to_owned(),
        subjects: vec![format!("{}.>", spec.prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|e| BusError::JetStream(format!("ensure stream {}: {e}", spec.name)))?;
    tracing::info!(stream = spec.name, "jetstream stream ready");
    Ok(())
}
