//! The one path a person's command to a record takes: load the record's
//! stream, check the caller's scope and the version she decided on, decide,
//! append at the version loaded; and the one way each failure answers.
//!
//! A record is any [`Aggregate`] (a case, a referral). [`load`] and
//! [`replay`] fold its stream; [`Commands::execute`] runs one command:
//!
//! - a `request_id` seen before answers with what it did then
//!   (`already_applied`), or INVALID_ARGUMENT when it was used for another
//!   record;
//! - the caller out of scope is refused (PERMISSION_DENIED) and the refusal
//!   recorded in the access log;
//! - a version other than the current one is ABORTED with the current
//!   version ([`stale`]), except that a version made stale only by
//!   bookkeeping ([`Aggregate::is_bookkeeping`]) is decided again on the
//!   current state;
//! - the domain's refusal is INVALID_ARGUMENT (every bad field) or
//!   FAILED_PRECONDITION (the rule) ([`refused`]);
//! - a stored event that does not decode is DATA_LOSS, a log that cannot
//!   be read UNAVAILABLE ([`LoadError`]).

use baove_domain::event::{Aggregate, Refusal, StoredEvent};
use baove_eventlog::{
    AppendRequest, Envelope, Error, EventLog, ExpectedVersion, NewEvent, StreamId,
};
use baove_security::Caller;
use tonic::Status;
use uuid::Uuid;

use std::sync::Arc;

use crate::private::PrivateText;
use crate::status::{CURRENT_VERSION_KEY, LoadError, from_log, invalid_argument};
use baove_audit::access::AccessLog;

/// The stored form of `event`, at the schema version this code writes.
///
/// # Errors
/// Only if the payload does not serialise, which for these types it does.
pub fn stored<E: StoredEvent>(event: &E) -> Result<NewEvent, Error> {
    NewEvent::new(event.event_type(), event.schema_version(), &event.payload())
}

/// The record its events make, oldest first: state, version (the last
/// seq) and when it was created (the first event's time), or `None` for
/// no events.
///
/// # Errors
/// [`LoadError::NotFound`] when the stream does not start with
/// [`Aggregate::FIRST_EVENT`] (it is another kind of stream);
/// [`LoadError::Undecodable`] naming the stored event that does not decode.
pub fn replay<A: Aggregate>(events: &[Envelope]) -> Result<Option<(A, u64, i64)>, LoadError> {
    let mut state = None;
    for envelope in events {
        if envelope.seq == 1 && envelope.event_type != A::FIRST_EVENT {
            return Err(LoadError::NotFound(A::KIND, *envelope.stream_id.as_uuid()));
        }
        let event = A::Event::decode(
            &envelope.event_type,
            envelope.schema_version,
            &envelope.payload,
        )
        .map_err(|reason| LoadError::undecodable(envelope, &reason.to_string()))?;
        state = A::apply(state, &event);
    }
    let (Some(state), Some(first), Some(last)) = (state, events.first(), events.last()) else {
        return Ok(None);
    };
    Ok(Some((state, last.seq, first.recorded_at_ms)))
}

/// Events read from the log per page while loading one stream.
const PAGE: usize = 1000;

/// Loads record `id`: its state and version, or `None` if its stream has
/// no events.
///
/// # Errors
/// [`LoadError`]: the log failed, the stream is not this kind of record,
/// or a stored event does not decode.
pub async fn load<A: Aggregate>(log: &EventLog, id: Uuid) -> Result<Option<(A, u64)>, LoadError> {
    let events = events_of(log, id).await?;
    Ok(replay::<A>(&events)?.map(|(state, version, _)| (state, version)))
}

/// Loads record `id` as a reader sees it: with its private text opened by
/// `private` when given ([`crate::private`]), else as [`load`]; and only
/// up to [`EventLog::readable_position`] (in a cluster, what the cluster
/// stored: never an event its writer was refused).
///
/// # Errors
/// As [`load`], as its status; those of [`PrivateText::open_all`].
pub async fn load_opened<A: Aggregate>(
    log: &EventLog,
    private: Option<&PrivateText>,
    id: Uuid,
) -> Result<Option<(A, u64)>, Status> {
    let readable = log.readable_position();
    let mut events = events_of(log, id).await?;
    events.retain(|e| e.global_position <= readable);
    if let Some(private) = private {
        events = private.open_all(events).await?;
    }
    Ok(replay::<A>(&events)?.map(|(state, version, _)| (state, version)))
}

/// Every event of record `id`'s stream, oldest first.
async fn events_of(log: &EventLog, id: Uuid) -> Result<Vec<Envelope>, LoadError> {
    let stream = StreamId::from_uuid(id);
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = log.read_stream(stream, from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        let full = page.len() == PAGE;
        events.extend(page);
        if !full {
            break;
        }
    }
    Ok(events)
}

/// Loads record `id` for a reader: NOT_FOUND ("no case …") when it has no
/// events.
///
/// # Errors
/// NOT_FOUND, or the [`LoadError`] as its status.
pub async fn load_existing<A: Aggregate>(log: &EventLog, id: Uuid) -> Result<(A, u64), Status> {
    load::<A>(log, id)
        .await?
        .ok_or_else(|| Status::not_found(format!("no {} {id}", A::KIND)))
}

/// ABORTED: record `id` is at `current`, not at `expected`; the current
/// version in words and in the `baove-current-version` metadata.
#[must_use]
pub fn stale(kind: &str, id: Uuid, expected: u64, current: u64) -> Status {
    let mut status = Status::aborted(format!(
        "{kind} {id} is at version {current}, not {expected}: reload it and decide again"
    ));
    if let Ok(value) = current.to_string().parse() {
        status.metadata_mut().insert(CURRENT_VERSION_KEY, value);
    }
    status
}

/// The domain's refusal as its status: bad fields INVALID_ARGUMENT (each
/// named), a step the procedure does not allow now FAILED_PRECONDITION.
#[must_use]
pub fn refused(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Invalid(v) => crate::status::violations(&v),
        Refusal::NotAllowed(rule) => Status::failed_precondition(rule),
    }
}

/// One person's command to one record, as its request header gave it
/// (already checked: a valid id, a request id, a version above 0).
pub struct Step<'a> {
    /// Who.
    pub caller: &'a Caller,
    /// The RPC (for the access log).
    pub rpc: &'a str,
    /// The record.
    pub id: Uuid,
    /// The version the caller decided on.
    pub expected: u64,
    /// The client's request id (its idempotency key).
    pub request_id: &'a str,
    /// The header field that carried the request id, for its errors.
    pub request_id_field: &'a str,
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The record's version after it.
    pub version: u64,
    /// The record after it (the current record when already applied).
    pub state: A,
    /// The events it appended; none when already applied.
    pub events: Vec<A::Event>,
    /// True when this request id was applied before: nothing was appended
    /// this time.
    pub already_applied: bool,
}

/// How many times a command is decided again while only bookkeeping lands
/// in between (other bookkeeping may land while it is decided).
const ROUNDS: usize = 5;

/// The log and access log a service runs commands on.
#[derive(Clone)]
pub struct Commands {
    log: EventLog,
    access: AccessLog,
    private: Option<Arc<PrivateText>>,
}

impl Commands {
    /// Commands on `log`, refusals recorded in `access`.
    #[must_use]
    pub const fn new(log: EventLog, access: AccessLog) -> Self {
        Self {
            log,
            access,
            private: None,
        }
    }

    /// The same, with the private text of each event sealed by `private`
    /// before it is appended (casework's cases).
    #[must_use]
    pub fn sealing(mut self, private: Arc<PrivateText>) -> Self {
        self.private = Some(private);
        self
    }

    /// Runs `step`: `scope` says whether the caller may change the record
    /// (`Err` with the reason, recorded in the access log, when not);
    /// `decide` turns the record into the events to append.
    ///
    /// # Errors
    /// As the module says: INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND,
    /// ABORTED (with the current version), FAILED_PRECONDITION,
    /// UNAVAILABLE, DATA_LOSS.
    pub async fn execute<A, S, D>(
        &self,
        step: &Step<'_>,
        scope: S,
        mut decide: D,
    ) -> Result<Executed<A>, Status>
    where
        A: Aggregate,
        S: Fn(&A) -> Result<(), String>,
        D: FnMut(&A) -> Result<Vec<A::Event>, Refusal>,
    {
        let command_id = crate::client_command_id(step.request_id);
        if let Some(first) = self
            .log
            .acknowledged_command(&command_id)
            .await
            .map_err(|e| from_log(&e))?
        {
            if *first.stream.as_uuid() != step.id {
                return Err(invalid_argument(
                    step.request_id_field,
                    &format!("was already used for another {}", A::KIND),
                ));
            }
            return self.already_applied(step, &scope, first.last_seq).await;
        }
        let mut current = step.expected;
        for _ in 0..ROUNDS {
            let (state, version) = load_existing::<A>(&self.log, step.id).await?;
            self.in_scope(step, &scope, &state).await?;
            if version < step.expected
                || (version > step.expected
                    && !self
                        .only_bookkeeping::<A>(step.id, step.expected, version)
                        .await?)
            {
                return Err(stale(A::KIND, step.id, step.expected, version));
            }
            let events = decide(&state).map_err(refused)?;
            let stored = self.stored(step.id, &events).await?;
            let appended = self
                .log
                .append(AppendRequest {
                    stream: StreamId::from_uuid(step.id),
                    expected: ExpectedVersion::Exact(version),
                    command_id: command_id.clone(),
                    actor: baove_audit::access::actor(step.caller),
                    causation_id: String::new(),
                    correlation_id: state.correlation_id(),
                    events: stored,
                    publish: true,
                })
                .await;
            match appended {
                Ok(a) if a.replayed => {
                    return self.already_applied(step, &scope, a.last_seq).await;
                }
                Ok(a) => {
                    let after = events
                        .iter()
                        .try_fold(state, |s, e| A::apply(Some(s), e))
                        .ok_or_else(|| {
                            Status::internal(format!("{} {} folded to nothing", A::KIND, step.id))
                        })?;
                    return Ok(Executed {
                        version: a.last_seq,
                        state: after,
                        events,
                        already_applied: false,
                    });
                }
                // Another step landed between the load and the append: the
                // next round sees it, and decides again only if it is
                // bookkeeping.
                Err(Error::Conflict { current: now, .. }) => current = now,
                Err(e) => return Err(from_log(&e)),
            }
        }
        Err(stale(A::KIND, step.id, step.expected, current))
    }

    /// The stored form of `events` of record `id`, private text sealed.
    async fn stored<E: StoredEvent>(
        &self,
        id: Uuid,
        events: &[E],
    ) -> Result<Vec<NewEvent>, Status> {
        crate::private::stored(self.private.as_deref(), StreamId::from_uuid(id), events).await
    }

    /// The answer to a request id applied before: the version it reached
    /// and the record as it is now, if the caller may still see it.
    async fn already_applied<A, S>(
        &self,
        step: &Step<'_>,
        scope: &S,
        version: u64,
    ) -> Result<Executed<A>, Status>
    where
        A: Aggregate,
        S: Fn(&A) -> Result<(), String>,
    {
        let (state, _) = load_existing::<A>(&self.log, step.id).await?;
        self.in_scope(step, scope, &state).await?;
        Ok(Executed {
            version,
            state,
            events: Vec::new(),
            already_applied: true,
        })
    }

    /// Refuses (and records the refusal of) a caller out of `scope`.
    async fn in_scope<A, S>(&self, step: &Step<'_>, scope: &S, state: &A) -> Result<(), Status>
    where
        A: Aggregate,
        S: Fn(&A) -> Result<(), String>,
    {
        match scope(state) {
            Ok(()) => Ok(()),
            Err(reason) => Err(self
                .access
                .refuse(
                    step.caller,
                    step.rpc,
                    Some(state.case_id()),
                    &format!("{}:{}", A::KIND, step.id),
                    &reason,
                )
                .await),
        }
    }

    /// Whether every event of record `id` after `from` up to `to` is
    /// bookkeeping ([`Aggregate::is_bookkeeping`]).
    async fn only_bookkeeping<A: Aggregate>(
        &self,
        id: Uuid,
        from: u64,
        to: u64,
    ) -> Result<bool, Status> {
        let Ok(count) = usize::try_from(to - from) else {
            return Ok(false);
        };
        if count > PAGE {
            return Ok(false);
        }
        let since = self
            .log
            .read_stream(StreamId::from_uuid(id), from + 1, count)
            .await
            .map_err(|e| from_log(&e))?;
        Ok(since.len() == count
            && since.iter().all(|e| {
                A::Event::decode(&e.event_type, e.schema_version, &e.payload)
                    .is_ok_and(|event| A::is_bookkeeping(&event))
            }))
    }
}

#[cfg(test)]
mod tests {
    //! The command path on real sled logs, with a small aggregate: a tally
    //! that counts up, may only grow to a limit, and takes notes
    //! (bookkeeping).

    use baove_domain::event::DecodeError;
    use baove_eventlog::Actor;
    use baove_security::Role;
    use serde::{Deserialize, Serialize};
    use tonic::Code;

    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Tally {
        id: Uuid,
        unit: String,
        total: u64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    enum TallyEvent {
        Started { id: Uuid, unit: String },
        Added { n: u64 },
        Noted { text: String },
    }

    impl StoredEvent for TallyEvent {
        const EVENT_TYPES: &'static [&'static str] = &["Started", "Added", "Noted"];

        fn event_type(&self) -> &'static str {
            match self {
                Self::Started { .. } => "Started",
                Self::Added { .. } => "Added",
                Self::Noted { .. } => "Noted",
            }
        }

        fn schema_version(&self) -> u32 {
            1
        }

        fn decode(event_type: &str, version: u32, payload: &str) -> Result<Self, DecodeError> {
            let event: Self = baove_domain::event::payload_as(event_type, version, payload)?;
            if event.event_type() == event_type {
                Ok(event)
            } else {
                Err(DecodeError::UnknownType(event_type.to_owned()))
            }
        }

        fn payload(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }

    impl Aggregate for Tally {
        type Event = TallyEvent;
        const KIND: &'static str = "tally";
        const FIRST_EVENT: &'static str = "Started";

        fn apply(state: Option<Self>, event: &TallyEvent) -> Option<Self> {
            match (state, event) {
                (None, TallyEvent::Started { id, unit }) => Some(Self {
                    id: *id,
                    unit: unit.clone(),
                    total: 0,
                }),
                (Some(mut s), TallyEvent::Added { n }) => {
                    s.total += n;
                    Some(s)
                }
                (state, _) => state,
            }
        }

        fn correlation_id(&self) -> String {
            format!("tally-of-{}", self.unit)
        }

        fn case_id(&self) -> Uuid {
            self.id
        }

        fn is_bookkeeping(event: &TallyEvent) -> bool {
            matches!(event, TallyEvent::Noted { .. })
        }
    }

    /// Adds `n`: refused past 10, and `n` must be above 0.
    fn add(n: u64) -> impl FnMut(&Tally) -> Result<Vec<TallyEvent>, Refusal> {
        move |state| {
            if n == 0 {
                return Err(baove_domain::Violations::one("n", "must be above 0").into());
            }
            if state.total + n > 10 {
                return Err(Refusal::NotAllowed(format!(
                    "a tally stops at 10; it is at {}",
                    state.total
                )));
            }
            Ok(vec![TallyEvent::Added { n }])
        }
    }

    fn in_unit(caller: &Caller) -> impl Fn(&Tally) -> Result<(), String> + '_ {
        |state| {
            if caller.units.contains(&state.unit) {
                Ok(())
            } else {
                Err(format!("tally {} is in {}", state.id, state.unit))
            }
        }
    }

    struct Kit {
        _dir: tempfile::TempDir,
        log: EventLog,
        access: EventLog,
        commands: Commands,
        caller: Caller,
    }

    async fn kit() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("log")).await.unwrap();
        let access = EventLog::open(dir.path().join("access")).await.unwrap();
        Kit {
            commands: Commands::new(log.clone(), AccessLog::new(access.clone())),
            log,
            access,
            caller: Caller {
                user_id: "officer-1".into(),
                role: Role::CommuneOfficer,
                agency_id: "vn:31135".into(),
                units: vec!["vn:31135".into()],
                purpose: String::new(),
            },
            _dir: dir,
        }
    }

    impl Kit {
        async fn append(&self, id: Uuid, events: &[TallyEvent]) {
            self.log
                .append(AppendRequest {
                    stream: StreamId::from_uuid(id),
                    expected: ExpectedVersion::Any,
                    command_id: format!("test:{}", Uuid::now_v7()),
                    actor: Actor::system("test"),
                    causation_id: String::new(),
                    correlation_id: String::new(),
                    events: events.iter().map(|e| stored(e).unwrap()).collect(),
                    publish: false,
                })
                .await
                .unwrap();
        }

        async fn started(&self, unit: &str) -> Uuid {
            let id = Uuid::now_v7();
            let started = TallyEvent::Started {
                id,
                unit: unit.into(),
            };
            self.append(id, &[started]).await;
            id
        }

        fn step<'a>(&'a self, id: Uuid, expected: u64, request_id: &'a str) -> Step<'a> {
            Step {
                caller: &self.caller,
                rpc: "/baove.v1.TallyService/Add",
                id,
                expected,
                request_id,
                request_id_field: "header.request_id",
            }
        }

        async fn version(&self, id: Uuid) -> u64 {
            load::<Tally>(&self.log, id)
                .await
                .unwrap()
                .map_or(0, |(_, v)| v)
        }

        async fn run(
            &self,
            id: Uuid,
            expected: u64,
            request_id: &str,
            n: u64,
        ) -> Result<Executed<Tally>, Status> {
            self.commands
                .execute(
                    &self.step(id, expected, request_id),
                    in_unit(&self.caller),
                    add(n),
                )
                .await
        }
    }

    #[tokio::test]
    async fn given_a_tally_when_a_step_is_decided_then_it_is_appended_with_its_actor_and_correlation()
     {
        let kit = kit().await;
        let id = kit.started("vn:31135").await;
        let done = kit.run(id, 1, "r-1", 3).await.unwrap();
        assert_eq!(
            (done.version, done.state.total, done.already_applied),
            (2, 3, false)
        );
        assert_eq!(done.events, vec![TallyEvent::Added { n: 3 }]);
        let stored = kit
            .log
            .read_stream(StreamId::from_uuid(id), 2, 10)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].actor.user_id, "officer-1");
        assert_eq!(stored[0].correlation_id, "tally-of-vn:31135");
        assert_eq!(stored[0].event_type, "Added");
    }

    #[tokio::test]
    async fn given_acks_gated_on_the_cluster_when_a_step_the_cluster_lacks_is_sent_again_then_it_is_refused_until_the_cluster_holds_it()
     {
        let kit = kit().await;
        let id = kit.started("vn:31135").await;
        // A cluster's active whose copy holds the log as it is now.
        let (stored, reached) = tokio::sync::watch::channel(kit.log.last_position());
        kit.log.gate_acks(baove_eventlog::AckGate {
            reached,
            wait: std::time::Duration::from_millis(200),
        });
        let first = kit.run(id, 1, "r-1", 3).await.unwrap_err();
        assert_eq!(first.code(), Code::Unavailable, "{first}");
        // The step is in this log, not in the cluster's: a retry must not
        // be acknowledged (the process may lose its lease and set it aside).
        let again = kit.run(id, 1, "r-1", 3).await;
        assert!(
            matches!(&again, Err(status) if status.code() == Code::Unavailable),
            "a retry was acknowledged on a step the cluster does not hold: {:?}",
            again.map(|done| (done.version, done.already_applied))
        );
        stored.send(kit.log.last_position()).unwrap();
        let held = kit.run(id, 1, "r-1", 3).await.unwrap();
        assert_eq!(
            (held.version, held.state.total, held.already_applied),
            (2, 3, true)
        );
    }

    #[tokio::test]
    async fn given_a_step_applied_when_its_request_id_comes_again_then_it_answers_the_same_and_appends_nothing()
     {
        let kit = kit().await;
        let id = kit.started("vn:31135").await;
        kit.run(id, 1, "r-1", 3).await.unwrap();
        // Sent again with the version it was decided on, as a client that
        // lost the answer does.
        let again = kit.run(id, 1, "r-1", 3).await.unwrap();
        assert_eq!(
            (again.version, again.state.total, again.already_applied),
            (2, 3, true)
        );
        assert!(again.events.is_empty());
        assert_eq!(kit.version(id).await, 2);
        // On another tally, the same request id is refused, naming the field.
        let other = kit.started("vn:31135").await;
        let reused = kit.run(other, 1, "r-1", 3).await.unwrap_err();
        assert_eq!(reused.code(), Code::InvalidArgument);
        assert!(
            reused.message().contains("header.request_id") && reused.message().contains("tally"),
            "{}",
            reused.message()
        );
        assert_eq!(kit.version(other).await, 1);
    }

    #[tokio::test]
    async fn given_another_step_since_the_version_decided_on_then_aborted_with_the_current_version()
    {
        let kit = kit().await;
        let id = kit.started("vn:31135").await;
        kit.append(id, &[TallyEvent::Added { n: 1 }]).await;
        let stale = kit.run(id, 1, "r-1", 3).await.unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        let current = stale.metadata().get(CURRENT_VERSION_KEY).unwrap();
        assert_eq!(current.to_str().unwrap(), "2");
        assert!(stale.message().contains("tally"), "{}", stale.message());
        assert_eq!(kit.version(id).await, 2);
        // A version from the future is as stale.
        let ahead = kit.run(id, 7, "r-2", 3).await.unwrap_err();
        assert_eq!(ahead.code(), Code::Aborted);
        assert_eq!(kit.version(id).await, 2);
    }

    #[tokio::test]
    async fn given_only_bookkeeping_since_the_version_decided_on_then_decided_again_on_the_current_state()
     {
        let kit = kit().await;
        let id = kit.started("vn:31135").await;
        let note = TallyEvent::Noted {
            text: "called the school".into(),
        };
        kit.append(id, &[note.clone(), note]).await;
        let done = kit.run(id, 1, "r-1", 3).await.unwrap();
        assert_eq!((done.version, done.state.total), (4, 3));
        // The decision rests on the current state: 3 + 8 is past the limit.
        kit.append(id, &[TallyEvent::Noted { text: "x".into() }])
            .await;
        let refused = kit.run(id, 4, "r-2", 8).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(refused.message().contains("at 3"), "{}", refused.message());
    }

    #[tokio::test]
    async fn given_a_refusal_then_the_field_or_the_rule_is_named_and_nothing_is_appended() {
        let kit = kit().await;
        let id = kit.started("vn:31135").await;
        let bad = kit.run(id, 1, "r-1", 0).await.unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(
            bad.message().contains("invalid n: must be above 0"),
            "{}",
            bad.message()
        );
        let not_now = kit.run(id, 1, "r-2", 11).await.unwrap_err();
        assert_eq!(not_now.code(), Code::FailedPrecondition);
        assert_eq!(kit.version(id).await, 1);
        // A refused request id is not spent: the corrected step goes through.
        assert_eq!(kit.run(id, 1, "r-1", 2).await.unwrap().version, 2);
    }

    #[tokio::test]
    async fn given_a_caller_out_of_scope_then_permission_denied_recorded_and_nothing_appended() {
        let kit = kit().await;
        let id = kit.started("vn:99999").await;
        let denied = kit.run(id, 1, "r-1", 1).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert!(
            denied.message().contains("vn:99999"),
            "{}",
            denied.message()
        );
        assert_eq!(kit.version(id).await, 1);
        let entries = kit.access.read_all(1, 10).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert!(
            entries[0].payload.contains("refused")
                && entries[0].payload.contains(&format!("tally:{id}")),
            "{}",
            entries[0].payload
        );
        assert_eq!(entries[0].correlation_id, id.to_string());
    }

    #[tokio::test]
    async fn given_a_stream_of_another_kind_or_an_undecodable_event_then_not_found_or_data_loss() {
        let kit = kit().await;
        let missing = load_existing::<Tally>(&kit.log, Uuid::now_v7())
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        assert!(
            missing.message().contains("no tally"),
            "{}",
            missing.message()
        );
        // A stream that starts with something else is not a tally.
        let other = Uuid::now_v7();
        kit.append(other, &[TallyEvent::Added { n: 1 }]).await;
        let status = load_existing::<Tally>(&kit.log, other).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        // A stored event this code cannot read is DATA_LOSS, never retryable.
        let id = kit.started("vn:31135").await;
        kit.log
            .append(AppendRequest {
                stream: StreamId::from_uuid(id),
                expected: ExpectedVersion::Any,
                command_id: "test:odd".into(),
                actor: Actor::system("test"),
                causation_id: String::new(),
                correlation_id: String::new(),
                events: vec![NewEvent::new("Added", 1, &serde_json::json!({"n": "two"})).unwrap()],
                publish: false,
            })
            .await
            .unwrap();
        let lost = load_existing::<Tally>(&kit.log, id).await.unwrap_err();
        assert_eq!(lost.code(), Code::DataLoss);
        assert!(lost.message().contains("seq 2"), "{}", lost.message());
        let step = kit.run(id, 2, "r-1", 1).await.unwrap_err();
        assert_eq!(step.code(), Code::DataLoss);
    }

    #[tokio::test]
    async fn given_a_stream_longer_than_a_page_then_load_folds_every_event() {
        let kit = kit().await;
        let id = kit.started("vn:31135").await;
        let ones: Vec<TallyEvent> = (0..500).map(|_| TallyEvent::Added { n: 1 }).collect();
        for _ in 0..3 {
            kit.append(id, &ones).await;
        }
        let (state, version) = load::<Tally>(&kit.log, id).await.unwrap().unwrap();
        assert_eq!((state.total, version), (1500, 1501));
    }
}
