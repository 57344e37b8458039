//! Leases: which process of a service is the active, in a JetStream
//! key-value bucket (`BAOVE_LEASES`, key = the service's name) whose entries
//! expire `ttl` after they were written (the bucket's max age).
//!
//! A process takes the lease by creating the key when it is absent (the
//! previous holder's entry expired), and keeps it by updating it with the
//! revision it last wrote (compare-and-set) well inside the ttl. The
//! revision is the lease's term: a process whose update is refused, or that
//! could not renew for most of the ttl, has lost it and must stop writing
//! before another can take it. A process that was paused past the ttl
//! cannot know; the log stream's expected sequence fences it
//! ([`crate::logstream`]).
//!
//! The bucket's stream `KV_BAOVE_LEASES` is made by [`crate::kv::bucket`].

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};

use crate::BusError;

/// The bucket.
pub const BUCKET: &str = "BAOVE_LEASES";

/// The leases bucket, made if missing, with entries that expire after
/// `ttl`, kept `replicas` times.
///
/// # Errors
/// [`BusError::JetStream`] when JetStream refuses.
pub async fn bucket(
    js: &jetstream::Context,
    ttl: Duration,
    replicas: usize,
) -> Result<kv::Store, BusError> {
    crate::kv::bucket(
        js,
        crate::kv::BucketSpec {
            name: BUCKET,
            ttl: Some(ttl),
            deletes: false,
        },
        replicas,
    )
    .await
}

/// A lease held: what to renew it with.
#[derive(Debug)]
pub struct Lease {
    store: kv::Store,
    key: String,
    holder: String,
    /// The revision last written: the term.
    pub term: u64,
    renewed: Instant,
    ttl: Duration,
}

/// Takes `key`'s lease for `holder` if nobody holds it; `None` when
/// somebody does.
///
/// # Errors
/// [`BusError::JetStream`] when the bucket cannot be written.
pub async fn try_take(
    store: &kv::Store,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, BusError> {
    let started = Instant::now();
    match store.create(key, holder.to_owned().into()).await {
        Ok(term) => Ok(Some(Lease {
            store: store.clone(),
            key: key.to_owned(),
            holder: holder.to_owned(),
            term,
            renewed: started,
            ttl,
        })),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(BusError::JetStream(format!("take lease {key}: {e}"))),
    }
}

/// Who holds `key`'s lease, if anybody.
///
/// # Errors
/// [`BusError::JetStream`] when the bucket cannot be read.
pub async fn holder(store: &kv::Store, key: &str) -> Result<Option<String>, BusError> {
    store
        .get(key)
        .await
        .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .map_err(|e| BusError::JetStream(format!("read lease {key}: {e}")))
}

impl Lease {
    /// Renews it (compare-and-set on the term).
    ///
    /// # Errors
    /// [`BusError::JetStream`] when the update is refused (someone else
    /// holds it now) or cannot be made; the caller checks
    /// [`Lease::must_stop`].
    pub async fn renew(&mut self) -> Result<(), BusError> {
        let started = Instant::now();
        let term = self
            .store
            .update(&self.key, self.holder.clone().into(), self.term)
            .await
            .map_err(|e| BusError::JetStream(format!("renew lease {}: {e}", self.key)))?;
        self.term = term;
        self.renewed = started;
        Ok(())
    }

    /// Whether the holder must stop writing now: its last successful
    /// renewal was started more than two thirds of the ttl ago, so the
    /// entry may expire (and another take it) before it could renew.
    #[must_use]
    pub fn must_stop(&self) -> bool {
        self.renewed.elapsed() >= self.ttl * 2 / 3
    }

    /// When [`Lease::must_stop`] becomes true unless a renewal succeeds
    /// first: a renewal still unanswered then (a NATS node died with the
    /// bucket's leader, and the request waits for its timeout) must not
    /// keep the holder writing past it.
    #[must_use]
    pub fn stop_at(&self) -> Instant {
        self.renewed + self.ttl * 2 / 3
    }

    /// Renews it, giving up at [`Lease::stop_at`].
    ///
    /// # Errors
    /// As [`Lease::renew`]; [`BusError::Unavailable`] when no answer came
    /// before the holder must stop.
    pub async fn renew_in_time(&mut self) -> Result<(), BusError> {
        let stop_at = tokio::time::Instant::from_std(self.stop_at());
        match tokio::time::timeout_at(stop_at, self.renew()).await {
            Ok(renewed) => renewed,
            Err(_) => Err(BusError::Unavailable(format!(
                "renew lease {}: no answer before two thirds of the lease had passed",
                self.key
            ))),
        }
    }

    /// How often to renew: a quarter of the ttl.
    #[must_use]
    pub fn every(&self) -> Duration {
        self.ttl / 4
    }
}
