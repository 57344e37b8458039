//! Following a service's log to keep an in-memory read model.

use baove_eventlog::{Envelope, EventLog};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// For live server streams (WatchCase, WatchInbox): waits for the log's
/// next commit. False when the stream should end: the client went away, or
/// the service is stopping (the client is then told to come back from where
/// it stopped).
pub async fn wait_for_commit<T>(
    committed: &mut watch::Receiver<u64>,
    client: &tokio::sync::mpsc::Sender<Result<T, tonic::Status>>,
    stopping: &CancellationToken,
    service: &str,
) -> bool {
    tokio::select! {
        () = client.closed() => false,
        () = stopping.cancelled() => {
            let goodbye = tonic::Status::unavailable(format!("{service} is shutting down: watch again from where you stopped"));
            let _ = client.send(Err(goodbye)).await;
            false
        }
        changed = committed.changed() => changed.is_ok(),
    }
}

/// How long a reader waits for a read model to catch up with the log.
pub const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(10);

/// A read model could not catch up with the log in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the read model is behind the log (at position {at}, needed {wanted}); try again, and see the service's log"
)]
pub struct Behind {
    /// Where the model stands.
    pub at: u64,
    /// Where it had to be.
    pub wanted: u64,
}

impl From<Behind> for tonic::Status {
    fn from(e: Behind) -> Self {
        Self::unavailable(e.to_string())
    }
}

/// How far a read model has applied the log, and the loop that moves it.
pub struct Follower {
    position: watch::Sender<u64>,
    /// The `model` label of [`crate::metrics::READ_MODEL_POSITION`].
    name: &'static str,
}

impl Follower {
    /// A model named `name` (its metric's label: `intakes`, `cases`...),
    /// at position 0.
    #[must_use]
    pub fn named(name: &'static str) -> Self {
        Self {
            position: watch::channel(0).0,
            name,
        }
    }

    /// Applies the log from where the model stands to its end with `apply`
    /// (skipping the access log and checkpoints, which are no model's
    /// business),
    /// then keeps following it (woken by the log's commit notifications, no
    /// polling) until `cancel` fires. Only what a reader may be shown
    /// ([`EventLog::readable_position`], woken by
    /// [`EventLog::subscribe_readable`]): in a cluster, what the cluster
    /// stored, so that no read shows an event its writer was refused.
    pub async fn follow(
        &self,
        log: &EventLog,
        cancel: &CancellationToken,
        apply: impl FnMut(&Envelope),
    ) {
        self.follow_prepared(log, cancel, |_| async { Ok(()) }, apply)
            .await;
    }

    /// As [`Follower::follow`], taking first, for each page, the data keys
    /// its events need that this process does not hold yet and dropping
    /// those of erased records ([`crate::keys::KeyStore::prepare`], `uses`
    /// saying what each event means for its key): in a cluster a standby
    /// reads what the active sealed.
    pub async fn follow_with_keys(
        &self,
        log: &EventLog,
        cancel: &CancellationToken,
        keys: &std::sync::Arc<crate::keys::KeyStore>,
        uses: fn(&Envelope) -> Option<crate::keys::KeyUse>,
        apply: impl FnMut(&Envelope),
    ) {
        self.follow_prepared(
            log,
            cancel,
            |events| {
                let keys = keys.clone();
                async move { keys.prepare(events, uses).await }
            },
            apply,
        )
        .await;
    }

    /// As [`Follower::follow`], with `prepare` run on each page of events
    /// before they are applied (intake fetches the data keys of reports a
    /// standby has not seen yet). A page `prepare` fails on is retried a
    /// second later, not skipped.
    pub async fn follow_prepared<P, F>(
        &self,
        log: &EventLog,
        cancel: &CancellationToken,
        mut prepare: P,
        mut apply: impl FnMut(&Envelope),
    ) where
        P: FnMut(Vec<Envelope>) -> F,
        F: Future<Output = Result<(), String>>,
    {
        let mut readable = log.subscribe_readable();
        loop {
            readable.borrow_and_update();
            let shown = log.readable_position();
            let from = *self.position.borrow() + 1;
            let page = if shown < from {
                Ok(Vec::new())
            } else {
                let limit = usize::try_from(shown - from + 1).map_or(1000, |n| n.min(1000));
                log.read_all(from, limit).await.map(|mut events| {
                    events.retain(|e| e.global_position <= shown);
                    events
                })
            };
            match page {
                Ok(events) if !events.is_empty() => {
                    if let Err(e) = prepare(events.clone()).await {
                        tracing::warn!(error = %e, position = from, "read model cannot prepare the next events; retrying in a second");
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                    for envelope in events
                        .iter()
                        .filter(|e| !baove_audit::access::is_record_stream(e))
                    {
                        apply(envelope);
                    }
                    if let Some(last) = events.last() {
                        self.position.send_replace(last.global_position);
                        #[allow(clippy::cast_precision_loss)]
                        metrics::gauge!(crate::metrics::READ_MODEL_POSITION, "model" => self.name)
                            .set(last.global_position as f64);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "read model cannot read the log; retrying on the next commit")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = readable.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Waits until the model has applied the log up to `position`, so that
    /// a reply can read back what was just written.
    ///
    /// # Errors
    /// [`Behind`] after [`CATCH_UP`] without getting there (the log cannot
    /// be read, or an event does not decode): the caller answers
    /// UNAVAILABLE instead of hanging.
    pub async fn wait_for(&self, position: u64) -> Result<(), Behind> {
        let mut rx = self.position.subscribe();
        match tokio::time::timeout(CATCH_UP, rx.wait_for(|p| *p >= position)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Behind {
                at: *self.position.borrow(),
                wanted: position,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn given_a_model_that_cannot_catch_up_then_readers_get_an_answer_not_a_hang() {
        let follower = Follower::named("test");
        follower.position.send_replace(3);
        assert!(follower.wait_for(3).await.is_ok());
        let behind = follower.wait_for(4).await.unwrap_err();
        assert_eq!((behind.at, behind.wanted), (3, 4));
        assert_eq!(tonic::Status::from(behind).code(), tonic::Code::Unavailable);
    }
}
