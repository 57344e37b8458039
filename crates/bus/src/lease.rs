//! Leases: which process of a service is the active, in a JetStream
//! key-value bucket (`BAOVE_LEASES`, key = the service's name, or
//! `<service>.<partition>` in a partition: [`crate::partition`]) whose
//! entries do not expire on the server: a lease ends when its holder
//! stops renewing it, as the other processes see it.
//!
//! A process takes the lease by creating the key when it is absent, or by
//! updating it (compare-and-set) on a revision it has itself seen unchanged
//! for the ttl ([`Candidate::look`]). The holder keeps it by updating it
//! on the revision it last wrote every quarter of the ttl. The revision is
//! the lease's term. A holder whose update is refused has lost it. One
//! that could not renew for two thirds of the ttl must stop writing, since
//! a candidate may take it a third later; its next renewal, once the bucket
//! answers, succeeds only if nobody wrote the key meanwhile, so nobody took
//! the lease, and then it writes again ([`Lease::regain`]). A process that
//! was paused past the ttl cannot know; the log stream's expected sequence
//! fences it ([`crate::logstream`]).
//!
//! Why not entries that expire with the bucket's max age (as until
//! 2026-12): while the bucket's stream elects a leader (the NATS node
//! leading it died) nobody can renew, and the election (4 to 9 s here)
//! outlasts the ttl (4 s), so every holder lost its lease at once,
//! whichever machine it ran on, and the leases all passed on after the
//! election. Counted by each process's own monotonic clock instead, an
//! election only pauses the holders: a candidate that got no answer waits
//! a quarter of the ttl of answers before it takes a lease, so a live
//! holder renews first. (Its reads are answered by the stream's leader
//! alone, as the holder's renewals are: the bucket allows no direct get,
//! which any replica answers, even during the election.)
//!
//! Why it is safe: a candidate counts the ttl from when an answer showed
//! it the revision, which is after the holder started the write that made
//! it; the holder stops two thirds of the ttl after it started that write.
//! So a candidate takes over at least a third of the ttl after the holder
//! stopped (clocks need only run at about the same rate), and only by
//! writing the key, which the holder's next renewal then finds.
//!
//! A holder that stops (SIGTERM) gives its lease back ([`Lease::release`]):
//! the key is deleted on its term, and a candidate takes it at its next
//! look.
//!
//! While the bucket's stream elects a leader a write can be stored and its
//! answer lost. The holder's value names one attempt alone, so a take or
//! renewal that finds its own value at a newer revision adopts that
//! revision as its term, counted from the first attempt that may have made
//! it ([`Candidate::look`], [`Lease::renew_in_time`]).
//!
//! The bucket's stream `KV_BAOVE_LEASES` is made by [`crate::kv::bucket`].

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};

use crate::BusError;

/// The bucket.
pub const BUCKET: &str = "BAOVE_LEASES";

/// The leases bucket, made if missing (or updated, if it still has the
/// max age leases once had), kept `replicas` times.
///
/// # Errors
/// [`BusError::JetStream`] when JetStream refuses.
pub async fn bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, BusError> {
    crate::kv::bucket(
        js,
        crate::kv::BucketSpec {
            name: BUCKET,
            ttl: None,
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
    /// When the write of the term started.
    renewed: Instant,
    /// When the first attempt since the last answered one started: an
    /// attempt given up may still be stored, and found later as this
    /// holder's own.
    unanswered_since: Option<Instant>,
    ttl: Duration,
}

/// What a candidate found: the lease, taken, or the value of whoever holds
/// it.
#[derive(Debug)]
pub enum Look {
    /// Taken: this process is the holder now.
    Taken(Box<Lease>),
    /// Held by another (its value; empty when a take raced another's).
    Held(String),
}

/// A process waiting for `key`'s lease: what it has seen of the key, by
/// its own clock.
#[derive(Debug)]
pub struct Candidate {
    store: kv::Store,
    key: String,
    holder: String,
    ttl: Duration,
    /// The holder's revision last seen, and when it was first seen.
    seen: Option<(u64, Instant)>,
    /// Since when every look was answered.
    answered_since: Option<Instant>,
    /// Set while a look runs: found set, the last look was given up
    /// unanswered.
    looking: bool,
}

impl Candidate {
    /// A candidate for `key`'s lease, as `holder`, which must name this
    /// attempt alone (the process's address and a fresh id): a lease found
    /// under it is this process's own, written by an earlier look whose
    /// answer never came.
    #[must_use]
    pub fn new(store: &kv::Store, key: &str, holder: &str, ttl: Duration) -> Self {
        Self {
            store: store.clone(),
            key: key.to_owned(),
            holder: holder.to_owned(),
            ttl,
            seen: None,
            answered_since: None,
            looking: false,
        }
    }

    /// One look at the key, taking the lease if it is free: absent (or
    /// deleted), this process's own (written by an earlier look whose
    /// answer never came: renewed and taken), or another's at a revision
    /// this candidate has seen unchanged for the ttl while the bucket
    /// answered it for at least a quarter of the ttl. The caller may give a
    /// look up (drop it); the next look counts that as no answer.
    ///
    /// # Errors
    /// [`BusError::JetStream`] when the bucket does not answer or refuses.
    pub async fn look(&mut self) -> Result<Look, BusError> {
        if std::mem::replace(&mut self.looking, true) {
            self.unanswered();
        }
        let looked = self.look_once().await;
        self.looking = false;
        if looked.is_err() {
            self.unanswered();
        }
        looked
    }

    /// No answer: the holder may not have been answered either, so it
    /// gets a quarter of the ttl of answers to renew. (What was seen still
    /// counts: a revision read again is the same write, unchanged since.)
    fn unanswered(&mut self) {
        self.answered_since = None;
    }

    fn lease(&self, term: u64, renewed: Instant) -> Lease {
        Lease {
            store: self.store.clone(),
            key: self.key.clone(),
            holder: self.holder.clone(),
            term,
            renewed,
            unanswered_since: None,
            ttl: self.ttl,
        }
    }

    async fn look_once(&mut self) -> Result<Look, BusError> {
        let entry = self
            .store
            .entry(&self.key)
            .await
            .map_err(|e| BusError::JetStream(format!("read lease {}: {e}", self.key)))?;
        // The revision read was written before now.
        let now = Instant::now();
        let answered = *self.answered_since.get_or_insert(now);
        let entry = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => entry,
            _ => return self.create().await,
        };
        if entry.value == self.holder.as_bytes() {
            // An earlier look's write whose answer never came. When it
            // was written is unknown: renewing it now says from when it
            // lasts.
            let mut lease = self.lease(entry.revision, now);
            lease.renew().await?;
            return Ok(Look::Taken(Box::new(lease)));
        }
        let by = String::from_utf8_lossy(&entry.value).into_owned();
        let since = match self.seen {
            Some((revision, since)) if revision == entry.revision => since,
            _ => {
                self.seen = Some((entry.revision, now));
                now
            }
        };
        if since.elapsed() < self.ttl || answered.elapsed() < self.ttl / 4 {
            return Ok(Look::Held(by));
        }
        let started = Instant::now();
        match self
            .store
            .update(&self.key, self.holder.clone().into(), entry.revision)
            .await
        {
            Ok(term) => Ok(Look::Taken(Box::new(self.lease(term, started)))),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // Renewed (or taken by another) since: count again.
                self.seen = None;
                Ok(Look::Held(by))
            }
            Err(e) => Err(BusError::JetStream(format!("take lease {}: {e}", self.key))),
        }
    }

    async fn create(&mut self) -> Result<Look, BusError> {
        let started = Instant::now();
        match self
            .store
            .create(&self.key, self.holder.clone().into())
            .await
        {
            Ok(term) => Ok(Look::Taken(Box::new(self.lease(term, started)))),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.seen = None;
                Ok(Look::Held(String::new()))
            }
            Err(e) => Err(BusError::JetStream(format!("take lease {}: {e}", self.key))),
        }
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
        self.attempt().await.map_err(|(_, e)| e)
    }

    /// One renewal. When the update is refused because the entry moved
    /// past the term, and the entry found is this holder's own, it is an
    /// earlier attempt's write whose answer never came: its revision
    /// becomes the term, renewed (conservatively) from when the first
    /// attempt since the last answered one started. The error says whether
    /// it is final (the lease is another's, or gone).
    async fn attempt(&mut self) -> Result<(), (bool, BusError)> {
        let started = Instant::now();
        let since = *self.unanswered_since.get_or_insert(started);
        match self
            .store
            .update(&self.key, self.holder.clone().into(), self.term)
            .await
        {
            Ok(term) => {
                // Attempts given up earlier were on the old term: none of
                // them can be stored now.
                self.term = term;
                self.renewed = started;
                self.unanswered_since = None;
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
                        if entry.operation == kv::Operation::Put
                            && entry.value == self.holder.as_bytes()
                            && entry.revision > self.term =>
                    {
                        self.term = entry.revision;
                        self.renewed = since;
                        self.unanswered_since = None;
                        Ok(())
                    }
                    _ => Err((
                        true,
                        BusError::JetStream(format!(
                            "renew lease {}: refused, another holds it: {e}",
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

    /// Whether the holder must stop writing now: the write of its term
    /// started more than two thirds of the ttl ago, so a candidate may
    /// take the lease a third of the ttl later.
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
    /// the lease); [`BusError::Unavailable`] when no attempt succeeded
    /// before the holder must stop: it may [`Lease::regain`] it.
    pub async fn renew_in_time(&mut self) -> Result<(), BusError> {
        let stop_at = self.stop_at();
        let mut last = None;
        while Instant::now() < stop_at {
            let until = (Instant::now() + self.ttl / 8).min(stop_at);
            match tokio::time::timeout_at(until.into(), self.attempt()).await {
                // An earlier write found may be too old to write on.
                Ok(Ok(())) if !self.must_stop() => return Ok(()),
                Ok(Ok(())) => last = Some("found a renewal stored too long ago".into()),
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

    /// Renews it after [`Lease::must_stop`], however long the bucket takes
    /// to answer: the update on the term is accepted only if nobody wrote
    /// the key since, so nobody took the lease, and the holder may write
    /// again. Each attempt waits a sixteenth of the ttl at most, so that
    /// the holder renews soon after the bucket's stream has a leader again
    /// (a candidate waits a quarter of the ttl of answers first). The
    /// caller stops it when the process stops.
    ///
    /// # Errors
    /// [`BusError::JetStream`] when the update is refused: another holds
    /// the lease.
    pub async fn regain(&mut self) -> Result<(), BusError> {
        loop {
            match tokio::time::timeout(self.ttl / 16, self.attempt()).await {
                Ok(Ok(())) if !self.must_stop() => return Ok(()),
                // An old write found: renewed on it at once.
                Ok(Ok(())) => continue,
                Ok(Err((true, e))) => return Err(e),
                Ok(Err((false, _))) | Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Gives the lease back (a delete on the term, so only if it is still
    /// this holder's): a candidate's next look takes it, without waiting
    /// out the ttl. Only once this process can no longer extend its log
    /// stream (its log relay has stopped).
    ///
    /// # Errors
    /// [`BusError::JetStream`] when the bucket refuses (another holds it)
    /// or does not answer; the lease then passes on as if unrenewed.
    pub async fn release(self) -> Result<(), BusError> {
        self.store
            .delete_expect_revision(&self.key, Some(self.term))
            .await
            .map_err(|e| BusError::JetStream(format!("give lease {} back: {e}", self.key)))
    }

    /// How often to renew: a quarter of the ttl.
    #[must_use]
    pub fn every(&self) -> Duration {
        self.ttl / 4
    }
}
