//! Durable pull consumers that apply each event once.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use baove_domain::text::clip;
use baove_eventlog::{Envelope, EventLog, StreamId};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{BusError, StreamSpec};

/// Messages of the stream the consumer has not been handed yet, by
/// consumer (its lag), as of its last message.
pub const CONSUMER_PENDING: &str = "baove_consumer_pending";
/// Messages handed to a consumer again, by consumer.
pub const CONSUMER_REDELIVERED: &str = "baove_consumer_redelivered_total";

/// Which stream to read, under which durable name.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// The stream to read.
    pub stream: StreamSpec,
    /// Durable consumer name (the reading service, e.g. `casework`); also
    /// the key of its inbox records.
    pub durable: String,
    /// Only these subjects (e.g. `baove.intake.IntakeRecorded`); empty = all.
    pub filter_subject: String,
}

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Try again (storage busy, a dependency down): the same event is
    /// retried with backoff before any later one, so order holds.
    #[error("retry: {0}")]
    Retry(String),
    /// This event can never be applied (it breaks a rule of the receiver):
    /// parked in the receiver's log, logged once, and not redelivered.
    #[error("rejected: {0}")]
    Reject(String),
    /// This event names a record the receiver's log does not hold, which
    /// it may hold soon: in a cluster, the process that wrote the record
    /// may have lost its lease with the record on its way to the cluster,
    /// and this process then stops to take it (docs/cluster.md). Retried in
    /// place like [`HandleError::Retry`] for [`MISSING_FOR`], then parked
    /// as [`HandleError::Reject`] is: never terminated at once, which would
    /// lose the hand-over it carries for the process that will hold the
    /// record.
    #[error("names a record not held (yet): {0}")]
    Missing(String),
}

/// How long an event naming a record the receiver does not hold is retried
/// before it is parked ([`HandleError::Missing`]): longer than a failover
/// with a restart takes.
pub const MISSING_FOR: Duration = Duration::from_secs(60);

/// Applies one incoming event.
///
/// Contract: return `Ok` only once the effect is durable (for example an
/// append to the receiver's own log has returned). The handler may be called
/// again for the same event if the process dies before the inbox record is
/// durable (it is written without a flush of its own and made durable by
/// the log's next append, [`EventLog::record_applied`]); appends it makes
/// must therefore use the incoming event id as (part of) their command id,
/// which makes them idempotent, and anything else it does must be safe to
/// repeat (an alert is published under the event's id, which JetStream
/// deduplicates). A handler may return `Ok` on finding its work already
/// done in its own log: in a cluster the message is acknowledged only once
/// the cluster holds the log's end ([`EventLog::wait_stored`]), so that
/// work is never something a lost lease sets aside.
pub trait Handler: Send + Sync + 'static {
    /// Whether events of `event_type` (the last token of the message's
    /// subject) can matter to this handler; by default all. A message of
    /// a type it does not want is acknowledged as it arrives: not decoded,
    /// not handed to [`Handler::handle`] or [`Handler::redelivered`], and
    /// not recorded in the inbox. On NATS 2.9 a consumer has one filter
    /// subject, so a handler that needs a few types of a stream reads all
    /// of it; this keeps the others from costing a decode and an inbox
    /// write each.
    fn wants(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }

    /// How many messages may be applied at once; by default 1: one after
    /// another, in the stream's order. More lets their appends share the
    /// receiver's flushes. Messages of one stream id are still applied one
    /// after another in order, but a message of another stream may overtake
    /// one being retried: answer more than 1 only where the messages of
    /// different streams commute (casework opening a case per report).
    fn at_once(&self) -> usize {
        1
    }

    /// Applies `event`.
    fn handle(&self, event: Envelope) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Called for an event the inbox says was already applied (a
    /// redelivery, or a sender publishing it again because it never heard
    /// back). By default nothing; a receiver whose answer the sender waits
    /// for publishes that answer again here, in case it was lost.
    fn redelivered(&self, event: Envelope) -> impl Future<Output = Result<(), HandleError>> + Send {
        let _ = event;
        async { Ok(()) }
    }
}

/// How long a consumer may retry one message before its health says it
/// cannot make progress.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// The health part of the consumer `durable` ([`crate::BusHealth`]).
#[must_use]
pub fn consumer_part(durable: &str) -> String {
    format!("consumer {durable}")
}

/// Reads `spec`'s stream through a durable pull consumer until `cancel`
/// fires. For each message: ack it at once if the handler does not want
/// its type ([`Handler::wants`]); skip (and ack) if `log`'s inbox has it; else
/// call the handler; on `Ok` record it in the inbox (durably) and ack; on
/// `Retry` call it again with backoff, before any later message (of its
/// stream id only, for a handler that applies several at once:
/// [`Handler::at_once`]); on
/// `Reject` or an undecodable message, park it ([`EventLog::park`]: kept
/// whole in the receiver's log, counted, logged once) and terminate it.
///
/// When NATS or JetStream fails (restart, a lost store), it pauses and
/// creates the stream and the consumer again (both idempotent) and goes on
/// from where the server says the consumer stands; the inbox makes any
/// replay harmless.
///
/// It reports to `bus.health` (part `consumer <durable>`): failing while
/// the stream or consumer cannot be had, or while one message has been
/// retried for more than 10 s; ok once it reads again.
pub async fn run_consumer<H: Handler>(
    bus: crate::Bus,
    log: EventLog,
    spec: ConsumerSpec,
    handler: H,
    cancel: CancellationToken,
) {
    let part = consumer_part(&spec.durable);
    // Not serving until it reads: a consumer that never started is no
    // consumer making progress.
    bus.health.failing(&part, "starting");
    loop {
        match consume(&bus, &part, &log, &spec, &handler, &cancel).await {
            Ok(()) => return,
            Err(e) => {
                bus.health.failing(&part, e.to_string());
                tracing::warn!(error = %e, durable = %spec.durable, "consumer interrupted; starting it again");
                if pause(&cancel).await {
                    return;
                }
            }
        }
    }
}

/// One life of the consumer: Ok when cancelled, Err when it must be made
/// again.
async fn consume<H: Handler>(
    bus: &crate::Bus,
    part: &str,
    log: &EventLog,
    spec: &ConsumerSpec,
    handler: &H,
    cancel: &CancellationToken,
) -> Result<(), BusError> {
    // The stream is its producer's: a consumer never creates or changes it
    // (NATS permissions forbid it: each service manages only its own
    // stream). While the producer has not created it yet this fails and
    // the caller retries.
    let stream = bus
        .js
        .get_stream(spec.stream.name)
        .await
        .map_err(|e| BusError::JetStream(format!("get stream {}: {e}", spec.stream.name)))?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        filter_subject: spec.filter_subject.clone(),
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    };
    let consumer = stream
        .get_or_create_consumer(&spec.durable, config)
        .await
        .map_err(|e| BusError::JetStream(format!("consumer {}: {e}", spec.durable)))?;
    tracing::info!(stream = spec.stream.name, durable = %spec.durable, "consumer started");
    let mut messages = tokio::select! {
        () = cancel.cancelled() => return Ok(()),
        messages = consumer.messages() => messages.map_err(|e| BusError::JetStream(format!("pull: {e}")))?,
    };
    bus.health.ok(part);
    let at_once = handler.at_once().max(1);
    // Messages being applied (at most `at_once`), each giving back its
    // stream id when done, and the stream ids they hold.
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut busy: Vec<StreamId> = Vec::new();
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            Some(done) = running.next(), if !running.is_empty() => {
                busy.retain(|s| *s != done);
                continue;
            }
            next = messages.next(), if running.len() < at_once => next,
        };
        match next {
            None => return Err(BusError::JetStream("message stream ended".into())),
            Some(Err(e)) => return Err(BusError::JetStream(format!("pull: {e}"))),
            Some(Ok(message)) => {
                // How far behind this consumer is, and whether this
                // message comes again (a consumer stuck on one message
                // redelivers it over and over).
                if let Ok(info) = message.info() {
                    #[allow(clippy::cast_precision_loss)]
                    metrics::gauge!(CONSUMER_PENDING, "consumer" => spec.durable.clone())
                        .set(info.pending as f64);
                    if info.delivered > 1 {
                        metrics::counter!(CONSUMER_REDELIVERED, "consumer" => spec.durable.clone())
                            .increment(1);
                    }
                }
                // One span per consumed message, carrying the flow's
                // correlation id (a header, so no decoding is needed) so
                // that one report can be followed through every service.
                let correlation = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(crate::HEADER_CORRELATION_ID))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                let span = tracing::info_span!(
                    "consume",
                    durable = %spec.durable,
                    subject = %clip(&message.subject, 200),
                    correlation_id = %clip(&correlation, 100)
                );
                // The subject is `<prefix>.<event type>` (publish.rs).
                let unwanted = message
                    .subject
                    .strip_prefix(spec.stream.prefix)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|event_type| !handler.wants(event_type));
                if unwanted {
                    ack(&message, AckKind::Ack).await;
                    continue;
                }
                let envelope = match Envelope::decode(&message.payload) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        park(log, &spec.durable, &message, &format!("undecodable: {e}")).await;
                        continue;
                    }
                };
                let stream = envelope.stream_id;
                let applying = tracing::Instrument::instrument(
                    apply(
                        log,
                        &spec.durable,
                        handler,
                        envelope,
                        message,
                        cancel,
                        &bus.health,
                        part,
                    ),
                    span,
                );
                if at_once == 1 {
                    applying.await;
                    continue;
                }
                // One stream's messages one after another: wait until the
                // one before of this stream is applied.
                while busy.contains(&stream) {
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        Some(done) = running.next() => busy.retain(|s| *s != done),
                    }
                }
                busy.push(stream);
                running.push(async move {
                    applying.await;
                    stream
                });
            }
        }
    }
}

async fn pause(cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(Duration::from_secs(1)) => false,
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply<H: Handler>(
    log: &EventLog,
    durable: &str,
    handler: &H,
    envelope: Envelope,
    message: jetstream::Message,
    cancel: &CancellationToken,
    health: &crate::BusHealth,
    part: &str,
) {
    let id = envelope.event_id.to_string();
    match log.is_applied(durable, &id).await {
        Ok(true) => {
            tracing::debug!(event_id = %id, "already applied; acking the redelivery");
            if let Err(e) = handler.redelivered(envelope).await {
                // The answer goes out again with the next repeat.
                tracing::warn!(event_id = %id, error = %clip(&e.to_string(), 300), "cannot answer a repeated message");
            }
            ack(&message, AckKind::Ack).await;
            return;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, event_id = %id, "cannot read the inbox; will retry");
            ack(&message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return;
        }
    }
    // Retried in place rather than NAK'd: a NAK would let later events of
    // the same stream overtake this one, and receivers rely on order.
    let mut delay = Duration::from_millis(200);
    let started = tokio::time::Instant::now();
    loop {
        let handled = match handler.handle(envelope.clone()).await {
            // A handler may find its work already done in what this log
            // holds (a hand-over already noted, a case already holding the
            // report): in a cluster that may be an event written here that
            // the cluster does not hold yet, set aside should this process
            // lose its lease. The message is acknowledged only once the
            // cluster holds everything the handler could have read; until
            // then it is retried in place like any other retry.
            Ok(()) => log
                .wait_stored(log.last_position())
                .await
                .map_err(|e| HandleError::Retry(e.to_string())),
            Err(e) => Err(e),
        };
        match handled {
            Ok(()) => {
                health.ok(part);
                match log.record_applied(durable, &id).await {
                    Ok(()) => ack(&message, AckKind::Ack).await,
                    Err(e) => {
                        // Not acked: redelivered after ack_wait, and the
                        // handler's own idempotency absorbs the repeat.
                        tracing::error!(error = %e, event_id = %id, "cannot record the inbox entry");
                        ack(&message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    }
                }
                return;
            }
            Err(HandleError::Missing(reason)) if started.elapsed() >= MISSING_FOR => {
                health.ok(part);
                park(
                    log,
                    durable,
                    &message,
                    &format!(
                        "event {id} still names a record not held after {} s: {reason}",
                        MISSING_FOR.as_secs()
                    ),
                )
                .await;
                return;
            }
            Err(HandleError::Retry(reason) | HandleError::Missing(reason)) => {
                tracing::warn!(event_id = %id, reason = %clip(&reason, 300), retry_in_ms = delay.as_millis() as u64, "handler asked to retry");
                if started.elapsed() > STUCK_AFTER {
                    health.failing(part, format!("stuck on event {id}: {}", clip(&reason, 200)));
                }
                // Keeps the message ours while we wait.
                ack(&message, AckKind::Progress).await;
                tokio::select! {
                    // Left unacked: redelivered to whoever runs next.
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(HandleError::Reject(reason)) => {
                health.ok(part);
                park(
                    log,
                    durable,
                    &message,
                    &format!("rejected event {id}: {reason}"),
                )
                .await;
                return;
            }
        }
    }
}

/// Sets `message` aside in the receiver's log (tree `parked`, whole, with
/// `reason`), logs it once and terminates it, so that one bad message never
/// stops the consumer. Should the log refuse to keep it, the message is
/// left to the bus for another try rather than dropped.
async fn park(log: &EventLog, durable: &str, message: &jetstream::Message, reason: &str) {
    match log
        .park(durable, &message.subject, &message.payload, reason)
        .await
    {
        Ok(count) => {
            tracing::error!(
                durable = %durable,
                subject = %clip(&message.subject, 200),
                bytes = message.payload.len(),
                reason = %clip(reason, 300),
                parked_so_far = count,
                "message cannot be applied; parked (kept in the log's `parked` tree) and terminated"
            );
            ack(message, AckKind::Term).await;
        }
        Err(e) => {
            tracing::error!(durable = %durable, error = %e, reason = %clip(reason, 300), "cannot park a message that cannot be applied; the bus keeps it");
            ack(message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
        }
    }
}

async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        // The server redelivers after ack_wait; the inbox makes that harmless.
        tracing::warn!(error = %e, subject = %message.subject, "ack not sent");
    }
}
