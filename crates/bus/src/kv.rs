//! JetStream key-value buckets baove keeps: the leases
//! ([`crate::lease`]), intake's data keys ([`DATA_KEYS`]), casework's
//! ([`CASE_KEYS`]) and the referrals' ([`REFERRAL_KEYS`]).
//!
//! On nats-server 2.9 `create_key_value` does not work, so each bucket's
//! stream (`KV_<name>`) is made here as a key-value bucket's stream: one
//! message per key, roll-ups allowed.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::BusError;

/// A bucket: its name and what it allows.
#[derive(Clone, Copy, Debug)]
pub struct BucketSpec {
    /// The bucket's name (its stream is `KV_<name>`).
    pub name: &'static str,
    /// Entries expire this long after they were written (none: never).
    pub ttl: Option<Duration>,
    /// Whether keys may be deleted and purged.
    pub deletes: bool,
}

/// intake's data keys, wrapped under its master key, replicated in a
/// cluster so that a standby can open the reports it follows and take
/// over: one entry per report (key = the report's id), purged on erasure.
/// Reads go through the stream's leader (no direct get from a replica that
/// may be behind), so a key written before its report was acknowledged is
/// there when the report reaches a standby.
pub const DATA_KEYS: BucketSpec = BucketSpec {
    name: "BAOVE_INTAKE_KEYS",
    ttl: None,
    deletes: true,
};

/// casework's data keys (one per case, key = the case's id), which seal the
/// free text of its assessments, plans and notes; kept as [`DATA_KEYS`].
pub const CASE_KEYS: BucketSpec = BucketSpec {
    name: "BAOVE_CASE_KEYS",
    ttl: None,
    deletes: true,
};

/// The referrals' data keys (one per referral, key = the referral's id),
/// which seal a referral's reasons and outcome in the case's log and in the
/// referral service's: made by casework, read by both services, purged
/// with the case's text on erasure. Unlike the others this bucket exists
/// outside a cluster too (one replica): it is how the two services share
/// the keys.
pub const REFERRAL_KEYS: BucketSpec = BucketSpec {
    name: "BAOVE_REFERRAL_KEYS",
    ttl: None,
    deletes: true,
};

/// The bucket of `spec`, made if missing (or updated if it differs),
/// kept `replicas` times; see [`crate::ensure_stream`].
///
/// # Errors
/// [`BusError::JetStream`] when JetStream refuses.
pub async fn bucket(
    js: &jetstream::Context,
    spec: BucketSpec,
    replicas: usize,
) -> Result<kv::Store, BusError> {
    let config = stream::Config {
        name: format!("KV_{}", spec.name),
        subjects: vec![format!("$KV.{}.>", spec.name)],
        max_messages_per_subject: 1,
        max_age: spec.ttl.unwrap_or_default(),
        allow_rollup: true,
        deny_delete: !spec.deletes,
        // Reads go through the stream's leader. A direct get may be
        // answered by a replica that is behind, which the data keys cannot
        // have; and by any replica while the stream elects a leader, so a
        // lease candidate would count answers the holder, whose renewal
        // needs the leader, cannot get ([`crate::lease`]).
        allow_direct: false,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    crate::streams::ensure(js, config)
        .await
        .map_err(|e| BusError::JetStream(format!("bucket {}: {e}", spec.name)))?;
    js.get_key_value(spec.name)
        .await
        .map_err(|e| BusError::JetStream(format!("bucket {}: {e}", spec.name)))
}
