//! The outbox relay: publishes a log's outbox in global order.

use std::time::Duration;

use async_nats::jetstream;
use baove_eventlog::EventLog;
use tokio_util::sync::CancellationToken;

use crate::{StreamSpec, publish};

/// How many outbox entries one pass reads.
const PAGE: usize = 256;

/// Publishes every event appended with an outbox mark, in global order, and
/// clears the mark only after JetStream's ack. When NATS is away it waits and
/// retries the same event, so order holds and nothing is skipped; a
/// re-publish after a lost ack is dropped by JetStream's dedupe on
/// `Nats-Msg-Id`.
pub struct OutboxRelay {
    log: EventLog,
    js: jetstream::Context,
    spec: StreamSpec,
}

impl OutboxRelay {
    /// A relay of `log`'s outbox to `spec`'s stream.
    #[must_use]
    pub fn new(log: EventLog, js: jetstream::Context, spec: StreamSpec) -> Self {
        Self { log, js, spec }
    }

    /// Runs until `cancel` fires. Waits on the log's commit notifications
    /// rather than polling when the outbox is empty.
    pub async fn run(self, cancel: CancellationToken) {
        let mut committed = self.log.subscribe();
        let mut backoff = Duration::from_millis(100);
        loop {
            committed.borrow_and_update();
            let pending = match self.log.outbox(PAGE).await {
                Ok(pending) => pending,
                Err(e) => {
                    tracing::error!(error = %e, "relay cannot read the outbox");
                    if sleep_or_cancel(&cancel, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if pending.is_empty() {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = committed.changed() => if changed.is_err() { return },
                }
                continue;
            }
            for envelope in pending {
                if cancel.is_cancelled() {
                    return;
                }
                let published = tokio::select! {
                    () = cancel.cancelled() => return,
                    result = publish(&self.js, self.spec, &envelope) => result,
                };
                match published {
                    Ok(duplicate) => {
                        backoff = Duration::from_millis(100);
                        tracing::debug!(event_id = %envelope.event_id, position = envelope.global_position, duplicate, "relayed");
                        if let Err(e) = self.log.outbox_done(envelope.global_position).await {
                            // Left in the outbox: published again later and
                            // dropped by the dedupe.
                            tracing::error!(error = %e, position = envelope.global_position, "cannot clear outbox entry");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, event_id = %envelope.event_id, retry_in_ms = backoff.as_millis() as u64, "relay publish failed; will retry");
                        if sleep_or_cancel(&cancel, backoff).await {
                            return;
                        }
                        // The server may have come back without its store
                        // (JetStream lost it): make the stream again.
                        if let Err(e) = crate::ensure_stream(&self.js, self.spec).await {
                            tracing::debug!(error = %e, "stream not ensured yet");
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        break; // re-read the outbox from its oldest entry
                    }
                }
            }
        }
    }
}

/// Sleeps; true when cancelled instead.
async fn sleep_or_cancel(cancel: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
