//! The outbox relay: publishes a log's outbox in global order, and fills
//! the stream again from the log when the bus lost its store.

use std::time::Duration;

use async_nats::jetstream;
use baove_eventlog::EventLog;
use tokio_util::sync::CancellationToken;

use crate::{Bus, BusHealth, StreamSpec, publish};

/// How long one publish to the service's stream took until JetStream's
/// ack, by stream (a histogram).
pub const RELAY_PUBLISH_SECONDS: &str = "baove_relay_publish_seconds";

/// How many outbox entries one pass reads.
const PAGE: usize = 256;

/// How often an idle relay checks that its stream still holds what it
/// delivered.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Publishes every event appended with an outbox mark, in global order, and
/// moves the mark to the log's published record (with the bus's sequence)
/// only after JetStream's ack. When NATS is away it waits and retries the
/// same event, so order holds and nothing is skipped; a re-publish after a
/// lost ack is dropped by JetStream's dedupe on `Nats-Msg-Id`.
///
/// While idle it checks every second that the stream exists and holds at
/// least as many messages as it delivered: a stream made again after the
/// bus lost its store holds fewer, and the relay then publishes every event
/// it ever published again (`EventLog::republish_all`), so that consumers
/// made again from the stream's start get the whole history; their inboxes
/// drop what they had already applied.
pub struct OutboxRelay {
    log: EventLog,
    js: jetstream::Context,
    spec: StreamSpec,
    health: BusHealth,
    replicas: usize,
}

impl OutboxRelay {
    /// A relay of `log`'s outbox to `spec`'s stream.
    #[must_use]
    pub fn new(log: EventLog, bus: Bus, spec: StreamSpec) -> Self {
        Self {
            log,
            js: bus.js,
            spec,
            health: bus.health,
            replicas: bus.replicas,
        }
    }

    fn part(&self) -> String {
        format!("relay to {}", self.spec.name)
    }

    /// Runs until `cancel` fires. Waits on the log's commit notifications
    /// (in a cluster, on the cluster's copy growing) rather than polling
    /// when nothing may leave.
    pub async fn run(self, cancel: CancellationToken) {
        self.health.failing(&self.part(), "starting");
        // In a cluster: woken as the cluster's copy grows, and handed only
        // what it holds (a report lost with a dying active must not have
        // opened a case).
        let mut committed = self.log.subscribe_publishable();
        let mut backoff = Duration::from_millis(100);
        loop {
            committed.borrow_and_update();
            let pending = match self.log.outbox_publishable(PAGE).await {
                Ok(pending) => pending,
                Err(e) => {
                    tracing::error!(error = %e, "relay cannot read the outbox");
                    self.health
                        .failing(&self.part(), format!("cannot read the outbox: {e}"));
                    if sleep_or_cancel(&cancel, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if pending.is_empty() {
                self.check_stream().await;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = committed.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                }
                continue;
            }
            for envelope in pending {
                if cancel.is_cancelled() {
                    return;
                }
                let started = std::time::Instant::now();
                let published = tokio::select! {
                    () = cancel.cancelled() => return,
                    result = publish(&self.js, self.spec, &envelope) => result,
                };
                match published {
                    Ok(ack) => {
                        metrics::histogram!(RELAY_PUBLISH_SECONDS, "stream" => self.spec.name)
                            .record(started.elapsed());
                        backoff = Duration::from_millis(100);
                        self.health.ok(&self.part());
                        tracing::debug!(event_id = %envelope.event_id, position = envelope.global_position, duplicate = ack.duplicate, "relayed");
                        if let Err(e) = self
                            .log
                            .outbox_done(envelope.global_position, ack.sequence)
                            .await
                        {
                            // Left in the outbox: published again later and
                            // dropped by the dedupe.
                            tracing::error!(error = %e, position = envelope.global_position, "cannot clear outbox entry");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, event_id = %envelope.event_id, retry_in_ms = backoff.as_millis() as u64, "relay publish failed; will retry");
                        self.health
                            .failing(&self.part(), format!("cannot publish: {e}"));
                        if sleep_or_cancel(&cancel, backoff).await {
                            return;
                        }
                        // The server may have come back without its store
                        // (JetStream lost it): make the stream again.
                        self.check_stream().await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        break; // re-read the outbox from its oldest entry
                    }
                }
            }
        }
    }

    /// Makes the stream again if it is gone, and puts the whole published
    /// history back in the outbox if the stream holds less than was
    /// delivered to it.
    async fn check_stream(&self) {
        let delivered = match self.log.last_published_sequence().await {
            Ok(sequence) => sequence,
            Err(e) => {
                tracing::error!(error = %e, "relay cannot read what it published");
                return;
            }
        };
        let held = match stream_last_sequence(&self.js, self.spec).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(stream = self.spec.name, error = %e, "stream not reachable; making it again");
                if let Err(e) = crate::ensure_stream(&self.js, self.spec, self.replicas).await {
                    self.health.failing(
                        &self.part(),
                        format!("stream {} missing: {e}", self.spec.name),
                    );
                    return;
                }
                0
            }
        };
        self.health.ok(&self.part());
        if held >= delivered {
            return;
        }
        match self.log.republish_all().await {
            Ok(count) => tracing::warn!(
                stream = self.spec.name,
                held,
                delivered,
                republishing = count,
                "the stream lost messages (the bus lost its store): publishing the log again"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot put the published events back in the outbox")
            }
        }
    }
}

/// The last sequence `spec`'s stream holds.
async fn stream_last_sequence(
    js: &jetstream::Context,
    spec: StreamSpec,
) -> Result<u64, crate::BusError> {
    let mut stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| crate::BusError::JetStream(format!("get stream {}: {e}", spec.name)))?;
    let info = stream
        .info()
        .await
        .map_err(|e| crate::BusError::JetStream(format!("stream info {}: {e}", spec.name)))?;
    Ok(info.state.last_sequence)
}

/// Sleeps; true when cancelled instead.
async fn sleep_or_cancel(cancel: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
