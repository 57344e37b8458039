//! The services' JetStream streams, created idempotently at start-up:
//! [`ensure_stream`] reads a stream's info first (answered by the stream's
//! leader) and writes its config (a request to the cluster's meta leader,
//! which may be the node just lost) only when it is missing or differs.

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

/// Makes the stream if it is missing, or updates it if its configuration
/// differs from this one: file storage, limits retention (kept), a
/// duplicate window of 24 hours, and `replicas` copies (1 on a single
/// server; 3 on a three-node JetStream cluster, so that a publish is
/// acknowledged only once a quorum of the nodes stored it and any one node
/// can be lost). It reads the stream's configuration first and writes
/// only when it is missing or differs (the module's docs say why).
///
/// # Errors
/// [`BusError::JetStream`] when JetStream refuses (for example JetStream is
/// not enabled on the server).
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: StreamSpec,
    replicas: usize,
) -> Result<Ensured, BusError> {
    let config = stream::Config {
        num_replicas: replicas.max(1),
        name: spec.name.to_owned(),
        subjects: vec![format!("{}.>", spec.prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    let ensured = ensure(js, config)
        .await
        .map_err(|e| BusError::JetStream(format!("ensure stream {}: {e}", spec.name)))?;
    if ensured != Ensured::AsWas {
        tracing::info!(stream = spec.name, ?ensured, "jetstream stream ready");
    }
    Ok(ensured)
}

/// What [`ensure_stream`] (or [`crate::kv::bucket`]) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The stream was missing: made.
    Made,
    /// Its configuration differed (say, `stream_replicas` was raised):
    /// updated.
    Updated,
    /// It was there as configured: nothing written.
    AsWas,
}

/// Makes or updates the stream of `want` only when it is missing or
/// differs. Reading its configuration is answered by the stream's own
/// leader; making or updating it goes through the JetStream cluster's
/// meta leader. Every process calls this often (at start, on taking a
/// lease, when a relay finds the stream unreachable), so when a node dies
/// with the meta leader only a stream that really is missing has to wait
/// for the next one to be elected, and a failover does not.
pub(crate) async fn ensure(
    js: &jetstream::Context,
    want: stream::Config,
) -> Result<Ensured, String> {
    match js.get_stream(&want.name).await {
        Ok(stream) => {
            if as_wanted(&stream.cached_info().config, &want) {
                return Ok(Ensured::AsWas);
            }
            js.update_stream(want)
                .await
                .map(|_| Ensured::Updated)
                .map_err(|e| e.to_string())
        }
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            // Another process may make it at the same moment: its
            // configuration is the same one, so either is fine.
            js.create_or_update_stream(want)
                .await
                .map(|_| Ensured::Made)
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `have` is `want` in every setting baove sets (the server fills
/// in the others, and some it normalises: an unset limit reads back as -1,
/// an unset duplicate window as the server's own).
fn as_wanted(have: &stream::Config, want: &stream::Config) -> bool {
    have.subjects == want.subjects
        && have.num_replicas == want.num_replicas.max(1)
        && have.storage == want.storage
        && have.retention == want.retention
        && have.discard == want.discard
        && have.max_age == want.max_age
        && have.allow_rollup == want.allow_rollup
        && have.deny_delete == want.deny_delete
        && have.allow_direct == want.allow_direct
        && (want.duplicate_window.is_zero() || have.duplicate_window == want.duplicate_window)
        && (want.max_messages_per_subject <= 0
            || have.max_messages_per_subject == want.max_messages_per_subject)
}
