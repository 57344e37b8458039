//! The log stream: every event of a service's log, in global order, on a
//! JetStream stream of its own (`BAOVE_<SERVICE>_LOG`, one subject
//! `baove.log.<service>.events`), one message per event: the envelope as
//! stored, `Nats-Msg-Id` its event id, header `Baove-Position` its global
//! position. With `stream_replicas = 3` it lives on three machines.
//!
//! It is the independent record of how far the log went: a service whose
//! sled log ends before its stream imports the missing events from it at
//! start (verifying every hash, [`baove_eventlog::EventLog::import`])
//! before it serves, and a data directory can be rebuilt from it alone
//! (`baove-<service> restore --from-stream`). Side trees (intake's data
//! keys) are not on it.
//!
//! The stream's sequence of the event at position `p` is `p`: the
//! [`LogRelay`] publishes position `p` only with
//! `Nats-Expected-Last-Sequence: p - 1` and, after the first message of a
//! pipeline, `Nats-Expected-Last-Msg-Id` = the event id at `p - 1`, so
//! JetStream stores it only right after this log's position `p - 1`. A
//! second writer of the same log (a deposed process, a copy started by
//! mistake) cannot extend it: its publishes are refused, and the relay
//! reports the log as diverged instead of publishing.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use baove_eventlog::{Envelope, EventLog};
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::{Bus, BusError, BusHealth, StreamSpec};

/// Checks of a log against its chain or its copy that failed, by `check`:
/// `follower` (a standby's log and the log stream disagree, or the stream
/// holds an event that does not continue the chain), `relay` (the active's
/// log and its stream disagree), `audit` (VerifyStream or VerifyAll found a
/// broken chain). Counted at each failed check: a standby that stays
/// diverged counts once per retry, every second.
pub const CHAIN_FAILURES: &str = "baove_chain_verification_failures_total";

/// Counts a failed check of `check` when `e` is one (the log and its
/// stream disagree, or an imported event breaks the chain).
fn count_chain_failure(check: &'static str, e: &BusError) {
    if matches!(
        e,
        BusError::Diverged { .. } | BusError::Log(baove_eventlog::Error::Corrupt(_))
    ) {
        metrics::counter!(CHAIN_FAILURES, "check" => check).increment(1);
    }
}

/// Header carrying the event's global position.
pub const HEADER_POSITION: &str = "Baove-Position";

/// Header (`1`) on a log stream message whose event was appended to be
/// handed on: published on the service's stream, for the other services.
/// A process that takes over the writes hands on what its predecessor
/// stored with the cluster but had not published
/// ([`requeue_unpublished`]).
pub const HEADER_FOR_BUS: &str = "Baove-For-Bus";

/// intake's log stream.
pub const INTAKE_LOG: StreamSpec = StreamSpec {
    name: "BAOVE_INTAKE_LOG",
    prefix: "baove.log.intake",
};
/// casework's log stream.
pub const CASE_LOG: StreamSpec = StreamSpec {
    name: "BAOVE_CASE_LOG",
    prefix: "baove.log.case",
};
/// referral's log stream.
pub const REFERRAL_LOG: StreamSpec = StreamSpec {
    name: "BAOVE_REFERRAL_LOG",
    prefix: "baove.log.referral",
};

/// Events per page read from the log or from the stream.
const PAGE: usize = 256;

/// The one subject of a log stream.
#[must_use]
pub fn log_subject(spec: StreamSpec) -> String {
    format!("{}.events", spec.prefix)
}

fn decode(message: &[u8], sequence: u64) -> Result<Envelope, BusError> {
    let envelope = Envelope::decode(message)?;
    if envelope.global_position != sequence {
        return Err(BusError::JetStream(format!(
            "the log stream holds position {} at sequence {sequence}: not a log stream",
            envelope.global_position
        )));
    }
    Ok(envelope)
}

/// The last event the log stream holds, or `None` when it holds none.
///
/// # Errors
/// [`BusError::JetStream`] when the stream cannot be read.
pub async fn stream_end(
    js: &jetstream::Context,
    spec: StreamSpec,
) -> Result<Option<Envelope>, BusError> {
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| BusError::JetStream(format!("get stream {}: {e}", spec.name)))?;
    match stream
        .get_last_raw_message_by_subject(&log_subject(spec))
        .await
    {
        Ok(message) => Ok(Some(decode(&message.payload, message.sequence)?)),
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
            Ok(None)
        }
        Err(e) => Err(BusError::JetStream(format!(
            "last message of {}: {e}",
            spec.name
        ))),
    }
}

/// On taking over the writes (a cluster's new active): puts back in
/// `log`'s outbox every event the log stream `spec` marks for the bus
/// ([`HEADER_FOR_BUS`]) that `events`, the service's stream for the other
/// services, does not hold yet: what the previous active stored with the
/// cluster but had not handed on when it died (its outbox relay hands on
/// only what the cluster holds, so there is always such a moment). Without
/// this an acknowledged report would never reach casework. The outbox relay
/// publishes them in order; the stream and every receiver drop a duplicate.
/// Returns how many.
///
/// # Errors
/// [`BusError::JetStream`] when a stream cannot be read; the log's own
/// errors.
pub async fn requeue_unpublished(
    log: &EventLog,
    js: &jetstream::Context,
    spec: StreamSpec,
    events: StreamSpec,
) -> Result<u64, BusError> {
    let handed_on = last_handed_on(js, events).await?;
    let stored = stream_end(js, spec).await?.map_or(0, |e| e.global_position);
    let end = log.last_position().min(stored);
    if handed_on >= end {
        return Ok(0);
    }
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| BusError::JetStream(format!("get stream {}: {e}", spec.name)))?;
    let mut positions = Vec::new();
    for position in handed_on + 1..=end {
        let message = stream.get_raw_message(position).await.map_err(|e| {
            BusError::JetStream(format!("message {position} of {}: {e}", spec.name))
        })?;
        if message.headers.get(HEADER_FOR_BUS).is_some() {
            positions.push(position);
        }
    }
    let count = positions.len() as u64;
    log.requeue(positions).await?;
    Ok(count)
}

/// The global position of the last event the service's stream `events`
/// holds (0: none).
async fn last_handed_on(js: &jetstream::Context, events: StreamSpec) -> Result<u64, BusError> {
    let mut stream = js
        .get_stream(events.name)
        .await
        .map_err(|e| BusError::JetStream(format!("get stream {}: {e}", events.name)))?;
    let last = stream
        .info()
        .await
        .map_err(|e| BusError::JetStream(format!("info of {}: {e}", events.name)))?
        .state
        .last_sequence;
    if last == 0 {
        return Ok(0);
    }
    let message = stream
        .get_raw_message(last)
        .await
        .map_err(|e| BusError::JetStream(format!("message {last} of {}: {e}", events.name)))?;
    Ok(Envelope::decode(&message.payload)?.global_position)
}

/// The events at positions `from..=to` of the log stream, in order, handed
/// to `page` a page at a time. Up to a page (256 events) is read one
/// message at a time from the stream's leader; more through an ordered
/// consumer. Making a consumer is a request to the JetStream cluster's meta
/// leader, which may be the NATS node that just died with the active's
/// machine: a standby taking over, with a few events to take, then waited
/// out two 10 s timeouts while the stream's leader already answered.
///
/// # Errors
/// [`BusError::JetStream`] when the stream cannot be read or a message is
/// not the event of its position; whatever `page` returns.
pub async fn read_stream<F, Fut>(
    js: &jetstream::Context,
    spec: StreamSpec,
    from: u64,
    to: u64,
    mut page: F,
) -> Result<(), BusError>
where
    F: FnMut(Vec<Envelope>) -> Fut,
    Fut: Future<Output = Result<(), BusError>>,
{
    if from > to {
        return Ok(());
    }
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| BusError::JetStream(format!("get stream {}: {e}", spec.name)))?;
    if to - from < PAGE as u64 {
        let mut batch = Vec::with_capacity(PAGE);
        for position in from..=to {
            let message = stream.get_raw_message(position).await.map_err(|e| {
                BusError::JetStream(format!("message {position} of {}: {e}", spec.name))
            })?;
            batch.push(decode(&message.payload, position)?);
        }
        return page(batch).await;
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: log_subject(spec),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::JetStream(format!("read {}: {e}", spec.name)))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| BusError::JetStream(format!("read {}: {e}", spec.name)))?;
    let mut next = from;
    let mut batch = Vec::with_capacity(PAGE);
    while next <= to {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| {
                BusError::JetStream(format!(
                    "{} did not deliver position {next} within 10 s",
                    spec.name
                ))
            })?
            .ok_or_else(|| BusError::JetStream(format!("{} ended early", spec.name)))?
            .map_err(|e| BusError::JetStream(format!("read {}: {e}", spec.name)))?;
        let sequence = message
            .info()
            .map_err(|e| BusError::JetStream(format!("read {}: {e}", spec.name)))?
            .stream_sequence;
        if sequence < next {
            // Delivered again from an earlier point: the ordered consumer
            // was made again (a NATS node died, heartbeats were missed)
            // before it had delivered anything, which starts it over from
            // the stream's first message. Already seen or before `from`.
            continue;
        }
        if sequence != next {
            return Err(BusError::JetStream(format!(
                "{} delivered sequence {sequence} where position {next} was expected",
                spec.name
            )));
        }
        batch.push(decode(&message.payload, sequence)?);
        next += 1;
        if batch.len() == PAGE || next > to {
            page(std::mem::take(&mut batch)).await?;
        }
    }
    Ok(())
}

/// Makes `log` reach the end of its log stream: imports the events the
/// stream holds beyond the log's last position (every hash and link
/// checked). Returns how many it imported.
///
/// # Errors
/// - [`BusError::Diverged`] when the log and the stream hold different
///   events at the same position (two writers, or a log changed on disk).
/// - [`BusError::JetStream`] when the stream cannot be read, and the
///   log's own errors.
pub async fn catch_up(
    log: &EventLog,
    js: &jetstream::Context,
    spec: StreamSpec,
) -> Result<u64, BusError> {
    let Some(end) = stream_end(js, spec).await? else {
        return Ok(0);
    };
    let last = log.last_position();
    let common = last.min(end.global_position);
    if common > 0 {
        check_same(log, js, spec, common).await?;
    }
    if end.global_position <= last {
        return Ok(0);
    }
    read_stream(js, spec, last + 1, end.global_position, |events| async {
        log.import(events).await.map_err(BusError::from)
    })
    .await?;
    Ok(end.global_position - last)
}

/// Checks that the log and the stream hold the same event at `position`.
async fn check_same(
    log: &EventLog,
    js: &jetstream::Context,
    spec: StreamSpec,
    position: u64,
) -> Result<(), BusError> {
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| BusError::JetStream(format!("get stream {}: {e}", spec.name)))?;
    if same_at(log, &stream, spec, position).await? {
        Ok(())
    } else {
        Err(BusError::Diverged {
            position,
            stream: spec.name,
        })
    }
}

/// Whether the log and the stream hold the same event at `position`.
async fn same_at(
    log: &EventLog,
    stream: &jetstream::stream::Stream,
    spec: StreamSpec,
    position: u64,
) -> Result<bool, BusError> {
    let message = stream
        .get_raw_message(position)
        .await
        .map_err(|e| BusError::JetStream(format!("message {position} of {}: {e}", spec.name)))?;
    let theirs = decode(&message.payload, message.sequence)?;
    let ours = log.read_all(position, 1).await?;
    Ok(
        matches!(ours.first(), Some(ours) if ours.hash == theirs.hash && ours.event_id == theirs.event_id),
    )
}

/// The first position at which `log` and its log stream hold different
/// events, or `None` when they agree up to where the shorter ends. Found by
/// bisection: once two copies hold different events at one position they
/// hold different events at every later one both hold (each event has an
/// id of its own, and a copy's later events chain to its earlier ones).
///
/// # Errors
/// [`BusError::JetStream`] when the stream cannot be read; the log's own
/// errors.
pub async fn fork_point(
    log: &EventLog,
    js: &jetstream::Context,
    spec: StreamSpec,
) -> Result<Option<u64>, BusError> {
    let Some(end) = stream_end(js, spec).await? else {
        return Ok(None);
    };
    let common = log.last_position().min(end.global_position);
    if common == 0 {
        return Ok(None);
    }
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| BusError::JetStream(format!("get stream {}: {e}", spec.name)))?;
    if same_at(log, &stream, spec, common).await? {
        return Ok(None);
    }
    // Every position before `low` agrees; `high` differs.
    let (mut low, mut high) = (1, common);
    while low < high {
        let middle = low + (high - low) / 2;
        if same_at(log, &stream, spec, middle).await? {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    Ok(Some(high))
}

/// Publishes every event of a log to its log stream, in order, from where
/// the stream ends; see the module docs.
pub struct LogRelay {
    log: EventLog,
    js: jetstream::Context,
    spec: StreamSpec,
    health: BusHealth,
    replicas: usize,
    reached: Option<tokio::sync::watch::Sender<u64>>,
    /// Where the stream ends, as this relay knows it without asking: the
    /// last position it published and had acknowledged at its sequence, or
    /// the end a full check found the same as the log. `None` until then,
    /// after any error, and at each idle wake-up: then the next step asks
    /// the stream (its last message, compared with the log).
    known_end: Option<u64>,
    /// Set when the last step's questions went unanswered for
    /// [`crate::ASK_WITHIN`]: that was the wait, so the next step asks
    /// again at once instead of after the backoff.
    unanswered: bool,
}

impl LogRelay {
    /// A relay of `log` to `spec`'s log stream.
    #[must_use]
    pub fn new(log: EventLog, bus: Bus, spec: StreamSpec) -> Self {
        Self {
            log,
            js: bus.js,
            spec,
            health: bus.health,
            replicas: bus.replicas,
            reached: None,
            known_end: None,
            unanswered: false,
        }
    }

    /// The same relay, telling `reached` the last position the stream is
    /// known to hold (what [`baove_eventlog::EventLog::gate_acks`] waits
    /// for in a cluster).
    #[must_use]
    pub fn telling(mut self, reached: tokio::sync::watch::Sender<u64>) -> Self {
        self.reached = Some(reached);
        self
    }

    fn part(&self) -> String {
        format!("log relay to {}", self.spec.name)
    }

    fn reached(&self, position: u64) {
        if let Some(reached) = &self.reached {
            reached.send_if_modified(|p| std::mem::replace(p, (*p).max(position)) != *p);
        }
    }

    /// Runs until `cancel` fires.
    ///
    /// # Errors
    /// In a cluster (`bus.replicas` above 1), [`BusError::Diverged`] as soon
    /// as the stream holds another event where this log has its own: the
    /// events from there on were never stored by the cluster, so never
    /// acknowledged, and only a restart sets them aside; and
    /// [`BusError::Behind`] when the stream went further than this log
    /// (another process writes it), which only a restart catches up. The
    /// caller stops the process. With one copy the relay says so in the bus
    /// health and tries again.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), BusError> {
        self.health.failing(&self.part(), "starting");
        let mut committed = self.log.subscribe();
        let mut backoff = Duration::from_millis(100);
        loop {
            committed.borrow_and_update();
            match self.step().await {
                Ok(true) => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(false) => {
                    backoff = Duration::from_millis(100);
                    self.health.ok(&self.part());
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        changed = committed.changed() => if changed.is_err() { return Ok(()) },
                        // Idle: look at the stream itself again (deleted,
                        // or extended by another writer, while idle).
                        () = tokio::time::sleep(Duration::from_secs(5)) => self.known_end = None,
                    }
                    continue;
                }
                Err(e) => {
                    self.known_end = None;
                    count_chain_failure("relay", &e);
                    self.health.failing(&self.part(), e.to_string());
                    match &e {
                        BusError::Diverged { .. } | BusError::Behind { .. }
                            if self.replicas > 1 =>
                        {
                            return Err(e);
                        }
                        BusError::Diverged { .. } => {
                            tracing::error!(error = %e, "the log and its log stream disagree; not publishing");
                        }
                        _ => tracing::warn!(error = %e, "log relay cannot publish; will retry"),
                    }
                }
            }
            if std::mem::take(&mut self.unanswered) {
                // The question already waited its bound: a stream electing
                // a leader answers nothing until it has one, and then at
                // once; asking again now keeps the acknowledgements that
                // wait for this relay from waiting out a backoff too.
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Publishes one page from where the stream ends; true when it
    /// published something.
    ///
    /// Where the stream ends is asked of the stream (two requests, then two
    /// more to compare its last event with the log's) only when the relay
    /// does not know it (after its own acknowledged publish it does, until an
    /// error or an idle wake-up). Skipping the asking
    /// costs no safety: every publish carries the position it expects the
    /// stream to end at (`Nats-Expected-Last-Sequence`), so if
    /// anything but this relay changed the stream since (another writer, a
    /// deleted stream), the publish is refused, and the next step asks and
    /// compares as before.
    async fn step(&mut self) -> Result<bool, BusError> {
        let last = self.log.last_position();
        if let Some(known) = self.known_end.filter(|known| *known <= last) {
            if known == last {
                return Ok(false);
            }
            return self.publish_from(known).await;
        }
        // Each question bounded and asked again ([`crate::ask`]): while the
        // stream elects a leader (its NATS node died) a request waits out
        // the client's 10 s timeout, though the leader may be there long
        // before. The search for a fork is not: it asks as many questions
        // as the log is long, and it only runs once the stream has
        // answered.
        let end = crate::ask(|| self.end_or_made())
            .await
            .ok_or_else(|| self.unanswered())??;
        let published = end.as_ref().map_or(0, |e| e.global_position);
        if published > last {
            // The stream went further than this log: another process wrote
            // it (in a cluster, the active that took the lease), or this
            // log started while NATS was away (at start it would have
            // caught up) and serves without events it once had. Say which;
            // never write over the stream.
            if self.replicas > 1
                && let Some(position) = fork_point(&self.log, &self.js, self.spec).await?
            {
                return Err(BusError::Diverged {
                    position,
                    stream: self.spec.name,
                });
            }
            return Err(BusError::Behind {
                last,
                published,
                stream: self.spec.name,
            });
        }
        if published > 0 {
            crate::ask(|| check_same(&self.log, &self.js, self.spec, published))
                .await
                .ok_or_else(|| self.unanswered())??;
            self.reached(published);
        }
        self.known_end = Some(published);
        if published == last {
            return Ok(false);
        }
        self.publish_from(published).await
    }

    /// The stream's last event, or none; the stream made again if it is
    /// gone (the bus lost its store), so that the whole log is published
    /// into it.
    async fn end_or_made(&self) -> Result<Option<Envelope>, BusError> {
        match stream_end(&self.js, self.spec).await {
            Ok(end) => Ok(end),
            Err(e) => {
                let ensured = crate::ensure_stream(&self.js, self.spec, self.replicas).await?;
                tracing::debug!(error = %e, ?ensured, "log stream made again if missing");
                Ok(None)
            }
        }
    }

    /// A question that went unanswered for [`crate::ASK_WITHIN`]: the next
    /// step asks again at once.
    fn unanswered(&mut self) -> BusError {
        self.unanswered = true;
        BusError::Unavailable(format!(
            "{} did not answer within {:?} (electing a leader?)",
            self.spec.name,
            crate::ASK_WITHIN
        ))
    }

    /// Publishes a page of the log after position `published`, where the
    /// stream is expected to end; true when it published something.
    ///
    /// Up to [`crate::relay::WINDOW`] messages are sent before their acks
    /// are awaited, in order (one quorum round trip per window in a
    /// cluster, not per event). Each is fenced twice, so that a pipeline can
    /// never put an event anywhere but right after its predecessor in this
    /// log:
    /// - `Nats-Expected-Last-Sequence: p - 1`: stored only if the stream
    ///   then ends at `p - 1`. JetStream checks it when it applies the
    ///   message, in order, so messages sent one after another pass it
    ///   without waiting for each other's acks (the per-subject variant is
    ///   checked against what is committed before the message is proposed,
    ///   and would refuse every message of a pipeline but the first);
    /// - every message after the page's first also carries
    ///   `Nats-Expected-Last-Msg-Id` = the event id of the one before it:
    ///   the position alone would let a deposed writer's second message land
    ///   right after a new writer's event at the first one's position. The
    ///   first carries only the position: the stream's last message id is
    ///   unknown to JetStream once it is older than the duplicate window.
    async fn publish_from(&mut self, published: u64) -> Result<bool, BusError> {
        let events = self.log.read_all(published + 1, PAGE).await?;
        if events.is_empty() {
            return Ok(false);
        }
        let for_bus = self
            .log
            .for_bus(events.iter().map(|e| e.global_position).collect())
            .await?;
        let subject = log_subject(self.spec);
        let mut after: Option<String> = None;
        for window in events.chunks(crate::relay::WINDOW) {
            let mut sent = Vec::with_capacity(window.len());
            for envelope in window {
                let position = envelope.global_position;
                let mut message = PublishMessage::build()
                    .payload(envelope.encode()?.into())
                    .message_id(envelope.event_id.to_string())
                    .expected_last_sequence(position - 1)
                    .header(HEADER_POSITION, position.to_string().as_str());
                if let Some(after) = &after {
                    message = message.expected_last_message_id(after);
                }
                if for_bus.contains(&position) {
                    message = message.header(HEADER_FOR_BUS, "1");
                }
                let ack = self
                    .js
                    .send_publish(subject.clone(), message)
                    .await
                    .map_err(|e| {
                        BusError::Unavailable(format!("publish to {}: {e}", self.spec.name))
                    })?;
                sent.push((position, ack));
                after = Some(envelope.event_id.to_string());
            }
            // In order: the first refused ends the page (what follows it
            // was refused too, or is found on the stream by the next step).
            for (position, ack) in sent {
                match ack.await {
                    Ok(ack) if ack.sequence == position => {
                        self.known_end = Some(position);
                        self.reached(position);
                    }
                    Ok(ack) => {
                        return Err(BusError::JetStream(format!(
                            "{} stored position {position} at sequence {}",
                            self.spec.name, ack.sequence
                        )));
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            PublishErrorKind::WrongLastSequence
                                | PublishErrorKind::WrongLastMessageId
                        ) =>
                    {
                        // Someone else extended the stream since we looked:
                        // the next step compares what they wrote with this
                        // log.
                        return Err(BusError::JetStream(format!(
                            "{} was extended by another writer before position {position}",
                            self.spec.name
                        )));
                    }
                    Err(e) => {
                        return Err(BusError::Unavailable(format!(
                            "ack from {} for position {position}: {e}",
                            self.spec.name
                        )));
                    }
                }
            }
        }
        Ok(true)
    }
}

/// How often a follower looks for new events on the log stream.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Follows the log stream into `log` (a standby's): imports each event the
/// active publishes, every hash and link checked, until `cancel`. Reports
/// as the bus part `log follower of <stream>`: failing while the stream
/// cannot be read, and when the log and the stream diverged (then it
/// imports nothing more).
///
/// # Errors
/// In a cluster (`bus.replicas` above 1), [`BusError::Diverged`] as soon as
/// the log and the stream hold different events: the log holds events the
/// cluster never stored, which only a restart can set aside (the read
/// models hold them too), so the caller stops the process. Outside a
/// cluster it keeps reporting the divergence instead.
pub async fn follow(
    log: EventLog,
    bus: Bus,
    spec: StreamSpec,
    cancel: CancellationToken,
) -> Result<(), BusError> {
    let part = format!("log follower of {}", spec.name);
    bus.health.failing(&part, "starting");
    loop {
        // Stopped at once, even with a request in flight: a standby that
        // took the lease stops its follower before it catches up itself,
        // and a request sent while a stream elects a leader waits out
        // its timeout (5 or 10 s). An import cut short here still
        // completes in the log's writer; the next catch-up reads the log's
        // end after it.
        let outcome = tokio::select! {
            () = cancel.cancelled() => {
                bus.health.gone(&part);
                return Ok(());
            }
            outcome = catch_up(&log, &bus.js, spec) => outcome,
        };
        let wait = match outcome {
            Ok(imported) => {
                bus.health.ok(&part);
                if imported > 0 {
                    tracing::debug!(
                        imported,
                        position = log.last_position(),
                        "followed the active's log"
                    );
                    continue;
                }
                FOLLOW_EVERY
            }
            Err(e) => {
                count_chain_failure("follower", &e);
                if matches!(e, BusError::Diverged { .. }) {
                    tracing::error!(error = %e, "this standby's log and the log stream disagree");
                    if bus.replicas > 1 {
                        bus.health.failing(&part, e.to_string());
                        return Err(e);
                    }
                } else {
                    tracing::warn!(error = %e, "cannot follow the log stream yet");
                }
                bus.health.failing(&part, e.to_string());
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = cancel.cancelled() => {
                // Stopped (the process took over): its last failure, if
                // any, must not keep the bus NOT_SERVING.
                bus.health.gone(&part);
                return Ok(());
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}
