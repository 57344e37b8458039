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
//! While the bucket's stream elects a leader (a NATS node died) a write can
//! be stored and its answer lost. The holder's value names one attempt
//! alone, so a take or renewal that finds its own value at a newer revision
//! adopts that revision as its term ([`try_take`], [`Lease::renew_in_time`]).
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
/// somebody else does.
///
/// `holder` must name this attempt alone (the process's address and a
/// fresh id): a lease found under it is this process's own, written by an
/// earlier attempt whose answer never came (the caller gave up waiting
/// while the bucket's stream elected a leader, and the write was stored
/// all the same). That lease is renewed and returned, rather than waited
/// out as if another held it.
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
    let mut lease = Lease {
        store: store.clone(),
        key: key.to_owned(),
        holder: holder.to_owned(),
        term: 0,
        renewed: started,
        ttl,
    };
    match store.create(key, holder.to_owned().into()).await {
        Ok(term) => {
            lease.term = term;
            Ok(Some(lease))
        }
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            let entry = store
                .entry(key)
                .await
                .map_err(|e| BusError::JetStream(format!("read lease {key}: {e}")))?;
            match entry {
                Some(entry) if entry.value == holder.as_bytes() => {
                    // When it was written is unknown: renewing it now
                    // says from when it lasts.
                    lease.term = entry.revision;
                    lease.renew().await?;
                    Ok(Some(lease))
                }
                _ => Ok(None),
            }
        }
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
        self.attempt(started).await.map_err(|(_, e)| e)
    }

    /// One renewal, started at `started`; when the update is refused
    /// because the entry moved past the term, and the entry found is this
    /// holder's own, it is an earlier attempt's write whose answer never
    /// came: its revision becomes the term, renewed (conservatively) from
    /// `since`, when the first of those attempts started. The error says
    /// whether it is final (the lease is another's, or gone).
    async fn attempt_since(
        &mut self,
        started: Instant,
        since: Instant,
    ) -> Result<(), (bool, BusError)> {
        match self
            .store
            .update(&self.key, self.holder.clone().into(), self.term)
            .await
        {
            Ok(term) => {
                self.term = term;
                self.renewed = started;
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                let entry = self.store.entry(&self.key).await.map_err(|e| {
                    (
                        false,
                        BusError::JetStream(format!("read lease {}: {e}", self.key)),
                    )
                })?;
                match entry {
                    Some(entry)
                        if entry.value == self.holder.as_bytes() && entry.revision > self.term =>
                    {
                        self.term = entry.revision;
                        self.renewed = since;
                        Ok(())
                    }
                    _ => Err((
                        true,
                        BusError::JetStream(format!(
                            "renew lease {}: refused, another holds it or it expired: {e}",
                            self.key
                        )),
                    )),
                }
            }
            Err(e) => Err((
                false,
                BusError::JetStream(format!("renew lease {}: {e}", self.key)),
            )),
        }
    }

    async fn attempt(&mut self, started: Instant) -> Result<(), (bool, BusError)> {
        self.attempt_since(started, started).await
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

    /// Renews it, giving up at [`Lease::stop_at`]. Each attempt waits an
    /// eighth of the ttl at most and is then made again: while the bucket's
    /// stream elects a new leader a request goes unanswered until
    /// JetStream's own timeout, though the new leader may answer the next
    /// one long before. An attempt stored but unanswered is found again as
    /// this holder's own write.
    ///
    /// # Errors
    /// [`BusError::JetStream`] when the update is refused (another holds
    /// the lease, or it expired); [`BusError::Unavailable`] when no attempt
    /// succeeded before the holder must stop.
    pub async fn renew_in_time(&mut self) -> Result<(), BusError> {
        let since = Instant::now();
        let stop_at = self.stop_at();
        let mut last = None;
        while Instant::now() < stop_at {
            let started = Instant::now();
            let until = (started + self.ttl / 8).min(stop_at);
            match tokio::time::timeout_at(until.into(), self.attempt_since(started, since)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err((true, e))) => return Err(e),
                Ok(Err((false, e))) => last = Some(e.to_string()),
                Err(_) => last = Some(format!("no answer within {:?}", self.ttl / 8)),
            }
            // A refusal that comes at once (no responders while the stream
            // has no leader) is not retried in a busy loop.
            let pause = (Instant::now() + Duration::from_millis(50)).min(stop_at);
            tokio::time::sleep_until(pause.into()).await;
        }
        Err(BusError::Unavailable(format!(
            "renew lease {}: no answer before two thirds of the lease had passed (last: {})",
            self.key,
            last.unwrap_or_else(|| "no attempt".into())
        )))
    }

    /// How often to renew: a quarter of the ttl.
    #[must_use]
    pub fn every(&self) -> Duration {
        self.ttl / 4
    }
}
