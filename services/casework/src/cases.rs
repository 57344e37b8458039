//! Opening cases from intake reports, and reading a case's state.

use baove_bus::{HandleError, Handler};
use baove_domain::case::procedure::opening_events;
use baove_domain::case::{self as c, CaseEvent, CaseState, Routing};
use baove_domain::intake::{INTAKE_RECORDED, IntakeRecorded};
use baove_eventlog::{
    Actor, AppendRequest, Envelope, Error, EventLog, ExpectedVersion, NewEvent, StreamId,
};
use uuid::Uuid;

/// Loads a case: its state and version, or `None` if it has no events.
///
/// # Errors
/// A log error, or the reason a stored event does not decode.
pub async fn load(log: &EventLog, case_id: Uuid) -> Result<Option<(CaseState, u64)>, String> {
    let stream = StreamId::from_uuid(case_id);
    let mut state = None;
    let mut version = 0;
    let mut from = 1;
    loop {
        let events = log
            .read_stream(stream, from, 1000)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = events.last() else { break };
        from = last.seq + 1;
        for envelope in &events {
            let event = CaseEvent::decode(&envelope.event_type, &envelope.payload)?;
            state = c::apply(state, &event);
            version = envelope.seq;
        }
    }
    Ok(state.map(|s| (s, version)))
}

/// Opens a case for each new intake, or attaches a follow-up to its case.
pub struct OpenCases {
    /// casework's log.
    pub log: EventLog,
    /// Calendar, clock and warning share for the opening deadlines.
    pub rules: crate::api::Rules,
}

/// How many times an attach is retried on a version conflict.
const ATTEMPTS: usize = 5;

impl Handler for OpenCases {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        if event.event_type != INTAKE_RECORDED {
            return Ok(());
        }
        let recorded: IntakeRecorded = serde_json::from_str(&event.payload)
            .map_err(|e| HandleError::Reject(format!("undecodable IntakeRecorded: {e}")))?;
        let command_id = format!("intake:{}", event.event_id);
        for _ in 0..ATTEMPTS {
            let follow_up = match recorded.report.facts().follow_up_case_id {
                Some(id) => load(&self.log, id).await.map_err(HandleError::Retry)?,
                None => None,
            };
            let routing = c::route_intake(
                &recorded,
                event.event_id,
                follow_up.as_ref().map(|(s, v)| (s, *v)),
            );
            let (stream, expected, events) = match &routing {
                Routing::AlreadyIn { .. } => return Ok(()),
                Routing::Open(opened) => (
                    opened.case_id,
                    ExpectedVersion::NoStream,
                    self.rules
                        .with_context(|ctx| opening_events(opened.clone(), ctx)),
                ),
                Routing::Attach {
                    case_id,
                    version,
                    event,
                } => (
                    *case_id,
                    ExpectedVersion::Exact(*version),
                    vec![CaseEvent::Attached(event.clone())],
                ),
            };
            let new_events = events
                .iter()
                .map(|e| NewEvent::new(e.event_type(), c::SCHEMA_VERSION, &e.payload()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| HandleError::Reject(e.to_string()))?;
            let appended = self
                .log
                .append(AppendRequest {
                    stream: StreamId::from_uuid(stream),
                    expected,
                    command_id: command_id.clone(),
                    actor: Actor::system("casework"),
                    causation_id: event.event_id.to_string(),
                    correlation_id: event.correlation_id.clone(),
                    events: new_events,
                    publish: true,
                })
                .await;
            match appended {
                Ok(a) => {
                    if !a.replayed {
                        let what = if matches!(routing, Routing::Open(_)) {
                            "case opened"
                        } else {
                            "intake attached to case"
                        };
                        tracing::info!(case_id = %stream, intake_id = %recorded.intake_id, "{what}");
                    }
                    return Ok(());
                }
                // Applied before under another routing decision: done.
                Err(Error::CommandIdReused { .. }) => return Ok(()),
                Err(Error::Conflict { .. }) if matches!(routing, Routing::Open(_)) => {
                    // The derived case exists: it can only have come from
                    // this intake.
                    return match load(&self.log, stream).await.map_err(HandleError::Retry)? {
                        Some((state, _)) if state.intake_ids.contains(&recorded.intake_id) => {
                            Ok(())
                        }
                        _ => Err(HandleError::Reject(format!(
                            "case {stream} exists but is not from intake {}",
                            recorded.intake_id
                        ))),
                    };
                }
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(HandleError::Retry(e.to_string())),
            }
        }
        Err(HandleError::Retry(format!(
            "case kept changing while attaching intake {}",
            recorded.intake_id
        )))
    }
}

/// Copies each referral step from the referral service into the case's
/// log, so that one case log tells the whole story. The referral events
/// carry the case id as their correlation id.
pub struct RecordReferralSteps {
    /// casework's log.
    pub log: EventLog,
}

impl Handler for RecordReferralSteps {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        let Ok(case_id) = Uuid::parse_str(&event.correlation_id) else {
            return Err(HandleError::Reject(format!(
                "referral event {} names no case",
                event.event_id
            )));
        };
        let Some((state, _)) = load(&self.log, case_id).await.map_err(HandleError::Retry)? else {
            return Err(HandleError::Reject(format!(
                "referral event {} names unknown case {case_id}",
                event.event_id
            )));
        };
        let step = c::ReferralStepRecorded {
            referral_id: *event.stream_id.as_uuid(),
            step: event.event_type.clone(),
            by: event.actor.user_id.clone(),
            agency_id: event.actor.agency_id.clone(),
            detail: event.payload.clone(),
            referral_event_id: event.event_id,
        };
        let Some(case_event) = c::procedure::record_referral_step(&state, step) else {
            return Err(HandleError::Reject(format!(
                "case {case_id} did not request referral {}",
                event.stream_id
            )));
        };
        let new_event = NewEvent::new(
            case_event.event_type(),
            c::SCHEMA_VERSION,
            &case_event.payload(),
        )
        .map_err(|e| HandleError::Reject(e.to_string()))?;
        self.log
            .append(AppendRequest {
                stream: StreamId::from_uuid(case_id),
                // A step from another service decides nothing on the case's
                // state: it is recorded whatever the version. The command id
                // (the referral event's id) absorbs redeliveries.
                expected: ExpectedVersion::Any,
                command_id: format!("referral-step:{}", event.event_id),
                actor: event.actor.clone(),
                causation_id: event.event_id.to_string(),
                correlation_id: event.correlation_id.clone(),
                events: vec![new_event],
                publish: false,
            })
            .await
            .map(|_| ())
            .map_err(|e| HandleError::Retry(e.to_string()))
    }
}
