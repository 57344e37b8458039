//! The outbox relay: publishes a log's outbox in global order, and fills
//! the stream again from the log when the bus lost its store.

use std::time::Duration;

use async_nats::jetstream;
use baove_eventlog::EventLog;
use tokio_util::sync::CancellationToken;

use baove_eventlog::Envelope;

use crate::publish::{NotStored, send};
use crate::{Bus, BusHealth, StreamSpec};

/// How long one publish to the service's stream took until JetStream's
/// ack, by stream (a histogram).
pub const RELAY_PUBLISH_SECONDS: &str = "baove_relay_publish_seconds";

/// How many outbox entries one pass reads.
const PAGE: usize = 256;

/// How many messages the relay sends before waiting for their acks
/// ([`OutboxRelay::publish_in_order`]).
pub const WINDOW: usize = 64;

/// How a pass over the outbox ended.
enum Sent {
    /// Every event handed was stored.
    All,
    /// Told to stop.
    Cancelled,
    /// One was refused because another publisher's message came before it.
    Interleaved,
    /// One could not be sent or stored.
    Failed(crate::BusError),
}

/// How often an idle relay checks that its stream still holds what it
/// delivered.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Publishes every event appended with an outbox mark, in global order, and
/// moves the mark to the log's published record (with the bus's sequence)
/// only after JetStream's ack. It sends up to 64 messages (`WINDOW`) before
/// waiting for their acks (one round trip per window, not per event), each
/// but a window's first sent to be stored only right after the one before
/// it (`Nats-Expected-Last-Msg-Id`), so a lost message is never overtaken.
/// When NATS is away it waits and retries from the first event not
/// acknowledged, so order holds and nothing is skipped; a re-publish after
/// a lost ack is dropped by JetStream's dedupe on `Nats-Msg-Id`.
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
        // Checked at the first idle moment, then at most every CHECK_EVERY,
        // not each time the outbox empties (a stream info request to NATS
        // per published group), and at once after a failed publish.
        let mut checked: Option<std::time::Instant> = None;
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
                if checked.is_none_or(|at| at.elapsed() >= CHECK_EVERY) {
                    self.check_stream().await;
                    checked = Some(std::time::Instant::now());
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = committed.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                }
                continue;
            }
            match self.publish_in_order(pending, &cancel).await {
                Sent::Cancelled => return,
                Sent::All => backoff = Duration::from_millis(100),
                // Another publisher's message came between two of ours
                // (intake's re-publisher): nothing of ours after it was
                // stored; the outbox is read again and sent on at once.
                Sent::Interleaved => {}
                Sent::Failed(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay publish failed; will retry");
                    self.health
                        .failing(&self.part(), format!("cannot publish: {e}"));
                    if sleep_or_cancel(&cancel, backoff).await {
                        return;
                    }
                    // The server may have come back without its store
                    // (JetStream lost it): make the stream again.
                    self.check_stream().await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            // Then the outbox is read again from its oldest entry.
        }
    }

    /// Publishes `pending` (in global order) up to [`WINDOW`] at a time
    /// without waiting for each ack: all of a window are sent, then their
    /// acks awaited in order, each clearing its outbox entry. Each message
    /// after a window's first is sent to be stored only right after the
    /// one before it ([`crate::publish::send`]'s `after`), so a message
    /// lost in the pipeline is never overtaken: what follows it is refused
    /// too, and everything from the lost one on is sent again.
    async fn publish_in_order(&self, pending: Vec<Envelope>, cancel: &CancellationToken) -> Sent {
        for window in pending.chunks(WINDOW) {
            let mut sent = Vec::with_capacity(window.len());
            let mut failed = None;
            let mut after: Option<String> = None;
            for envelope in window {
                let started = std::time::Instant::now();
                let sending = tokio::select! {
                    () = cancel.cancelled() => return Sent::Cancelled,
                    sending = send(&self.js, self.spec, envelope, after.as_deref()) => sending,
                };
                match sending {
                    Ok(message) => sent.push((envelope, started, message)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                after = Some(envelope.event_id.to_string());
            }
            let mut done = Vec::with_capacity(sent.len());
            let mut ended = None;
            for (envelope, started, message) in sent {
                let stored = tokio::select! {
                    () = cancel.cancelled() => {
                        ended = Some(Sent::Cancelled);
                        break;
                    }
                    stored = message.stored() => stored,
                };
                match stored {
                    Ok(ack) => {
                        metrics::histogram!(RELAY_PUBLISH_SECONDS, "stream" => self.spec.name)
                            .record(started.elapsed());
                        tracing::debug!(event_id = %envelope.event_id, position = envelope.global_position, duplicate = ack.duplicate, "relayed");
                        done.push((envelope.global_position, ack.sequence));
                    }
                    Err(NotStored::NotAfter(why)) => {
                        tracing::debug!(reason = %why, "another message came between two of the relay's; sending on from here");
                        ended = Some(Sent::Interleaved);
                        break;
                    }
                    Err(NotStored::Failed(e)) => {
                        ended = Some(Sent::Failed(e));
                        break;
                    }
                }
            }
            if !done.is_empty() {
                self.health.ok(&self.part());
            }
            // What was acknowledged leaves the outbox, whatever came after.
            if let Err(e) = self.log.outbox_done_all(done).await {
                // Left in the outbox: published again later and dropped by
                // the dedupe.
                tracing::error!(error = %e, "cannot clear outbox entries");
            }
            if let Some(ended) = ended.or(failed.map(Sent::Failed)) {
                return ended;
            }
        }
        Sent::All
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
        // Bounded and asked again ([`crate::ask`]): an unanswered question
        // (the stream electing a leader) says nothing of whether the
        // stream exists.
        let asked = crate::ask(|| stream_last_sequence(&self.js, self.spec)).await;
        let held = match asked {
            None => {
                self.health.failing(
                    &self.part(),
                    format!(
                        "stream {} did not answer within {:?}",
                        self.spec.name,
                        crate::ASK_WITHIN
                    ),
                );
                return;
            }
            Some(Ok(held)) => held,
            Some(Err(e)) => {
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
