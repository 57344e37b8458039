//! The access log: who read which case, when, through which RPC and for what
//! stated purpose, and every refusal.
//!
//! Entries are `AccessRecorded` events in one stream, [`ACCESS_STREAM`], of
//! a log of their own (`<data_dir>/accesslog`, a second sled database with
//! its own group commit, hash chain and signed checkpoints), apart from the
//! service's log: a read never changes a case's version or moves the log an
//! auditor reads (`ReadAll` reaches its end), and reads do not queue behind
//! the domain's writes. They are not published on NATS. Entries written
//! before the access log had its own database stay in the service's log
//! under the same stream id; read models skip that stream
//! ([`is_record_stream`]).
//!
//! A read is answered only once its entry is stored: if the entry cannot be
//! written the read is refused (UNAVAILABLE), so no read goes unrecorded.
//! Each entry's command id is new (`access:<UUIDv7>`), so the service opens
//! the access log keeping no answer per entry
//! ([`baove_eventlog::Options::keep_answers`] off).

use baove_eventlog::{
    Actor, AppendRequest, Envelope, EventLog, ExpectedVersion, NewEvent, StreamId,
};
use baove_security::Caller;
use serde::{Deserialize, Serialize};
use tonic::Status;
use uuid::Uuid;

/// The stream of the access log in every service's log.
pub const ACCESS_STREAM: StreamId =
    StreamId::from_uuid(Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_acce));

/// The stream of signed checkpoints in every service's log.
pub const CHECKPOINT_STREAM: StreamId =
    StreamId::from_uuid(Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_c4ec));

/// The event type of an access log entry.
pub const ACCESS_RECORDED: &str = "AccessRecorded";

/// True for the service's own record-keeping streams (access log,
/// checkpoints), which read models of cases, intakes and referrals skip.
#[must_use]
pub fn is_record_stream(envelope: &Envelope) -> bool {
    envelope.stream_id == ACCESS_STREAM || envelope.stream_id == CHECKPOINT_STREAM
}

/// One entry: the payload of `AccessRecorded`. The actor (who) and the time
/// (when) are the event's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// `read` or `refused`.
    pub outcome: String,
    /// The RPC, e.g. `CaseService/GetCase`.
    pub rpc: String,
    /// The case concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<Uuid>,
    /// What was read: `case:<id>`, `intake:<id>`, `referral:<id>`,
    /// `stream:<id>`, or a list (`list:cases`...).
    pub subject: String,
    /// The purpose the caller stated (`baove-purpose`), empty if none.
    pub purpose: String,
    /// For refusals: why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Writes the access log of one service.
#[derive(Clone)]
pub struct AccessLog {
    log: EventLog,
}

impl AccessLog {
    /// The access log kept in `log` (its own database: see the module
    /// docs).
    #[must_use]
    pub const fn new(log: EventLog) -> Self {
        Self { log }
    }

    /// The log the entries are kept in.
    #[must_use]
    pub const fn log(&self) -> &EventLog {
        &self.log
    }

    /// Records a read that is about to be answered.
    ///
    /// # Errors
    /// UNAVAILABLE when the entry cannot be stored: the read must not be
    /// answered then.
    pub async fn read(
        &self,
        caller: &Caller,
        rpc: &str,
        case_id: Option<Uuid>,
        subject: &str,
    ) -> Result<(), Status> {
        self.record(
            caller,
            AccessEntry {
                outcome: "read".into(),
                rpc: short(rpc),
                case_id,
                subject: subject.to_owned(),
                purpose: caller.purpose.clone(),
                reason: String::new(),
            },
        )
        .await
    }

    /// Records a refusal and returns the PERMISSION_DENIED to answer with.
    /// The refusal stands even if the entry cannot be stored (logged).
    pub async fn refuse(
        &self,
        caller: &Caller,
        rpc: &str,
        case_id: Option<Uuid>,
        subject: &str,
        reason: &str,
    ) -> Status {
        let entry = AccessEntry {
            outcome: "refused".into(),
            rpc: short(rpc),
            case_id,
            subject: subject.to_owned(),
            purpose: caller.purpose.clone(),
            reason: reason.to_owned(),
        };
        if let Err(e) = self.record(caller, entry).await {
            tracing::error!(error = %e, user = %caller.user_id, rpc, "a refusal could not be recorded");
        }
        Status::permission_denied(reason.to_owned())
    }

    async fn record(&self, caller: &Caller, entry: AccessEntry) -> Result<(), Status> {
        let event = NewEvent::new(ACCESS_RECORDED, 1, &entry)
            .map_err(|e| Status::internal(format!("the access entry cannot be encoded: {e}")))?;
        self.log
            .append(AppendRequest {
                stream: ACCESS_STREAM,
                expected: ExpectedVersion::Any,
                command_id: format!("access:{}", Uuid::now_v7()),
                actor: actor(caller),
                causation_id: String::new(),
                correlation_id: entry.case_id.map(|c| c.to_string()).unwrap_or_default(),
                events: vec![event],
                publish: false,
            })
            .await
            .map(|_| ())
            .map_err(|e| {
                Status::unavailable(format!(
                    "the access log cannot be written, so the read is not answered: {e}"
                ))
            })
    }
}

/// The event log actor of a caller.
#[must_use]
pub fn actor(caller: &Caller) -> Actor {
    Actor {
        user_id: caller.user_id.clone(),
        role: caller.role.as_str().to_owned(),
        agency_id: caller.agency_id.clone(),
    }
}

/// `CaseService/GetCase` of `/baove.v1.CaseService/GetCase`.
fn short(rpc: &str) -> String {
    rpc.trim_start_matches('/')
        .trim_start_matches("baove.v1.")
        .to_owned()
}

impl AccessLog {
    /// The identity a request names in `field` (an officer or user id, an
    /// agency id), checked against the caller's own `own`: empty means the
    /// caller's; another's is refused (PERMISSION_DENIED, recorded), since
    /// nobody acts in someone else's name.
    ///
    /// # Errors
    /// PERMISSION_DENIED when `given` is not the caller's.
    pub async fn own(
        &self,
        caller: &Caller,
        rpc: &str,
        field: &str,
        given: &str,
        own: &str,
    ) -> Result<String, Status> {
        let given = given.trim();
        if given.is_empty() || given == own {
            return Ok(own.to_owned());
        }
        Err(self
            .refuse(
                caller,
                rpc,
                None,
                field,
                &format!("{field} must be your own ({own:?}), not {given:?}: nobody acts in another's name"),
            )
            .await)
    }
}
