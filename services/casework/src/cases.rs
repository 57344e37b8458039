//! Opening cases from intake reports, and reading a case's state.

use baove_bus::{HandleError, Handler};
use baove_domain::case::procedure::opening_events;
use baove_domain::case::{self as c, CaseState, Routing};
use baove_domain::intake::{INTAKE_RECORDED, IntakeRecorded};
use baove_eventlog::{Actor, AppendRequest, Envelope, Error, EventLog, ExpectedVersion, StreamId};
use baove_proto::v1 as p;
use tonic::Status;
use uuid::Uuid;

use std::sync::Arc;

use baove_runtime::command::{load, replay};
use baove_runtime::private::PrivateText;

/// The case `id` as it stood at the moment `as_of` names (now when
/// `None`), from its events up to then, with the hash of the last one.
///
/// # Errors
/// NOT_FOUND when the case did not exist then (or is no case); DATA_LOSS
/// when a stored event does not decode; UNAVAILABLE when the log cannot be
/// read.
pub async fn replay_as_of(
    log: &EventLog,
    private: &PrivateText,
    id: Uuid,
    as_of: Option<p::replay_case_request::AsOf>,
) -> Result<p::ReplayCaseResponse, Status> {
    let (upto, moment) =
        baove_runtime::audit::events_as_of(log, StreamId::from_uuid(id), as_of).await?;
    let not_yet = || Status::not_found(format!("case {id} did not exist at {moment}"));
    let last = upto.last().ok_or_else(not_yet)?;
    let hash = last.hash.0.to_vec();
    let recorded_at_ms = last.recorded_at_ms;
    // As it stood then, read now: text erased since reads as erased.
    let upto = private.open_all(upto).await?;
    let (state, version, opened_at) = replay::<CaseState>(&upto)?.ok_or_else(not_yet)?;
    Ok(p::ReplayCaseResponse {
        case: Some(crate::convert::case_to_proto(
            &state,
            version,
            opened_at,
            recorded_at_ms,
        )),
        hash,
    })
}

/// Erases a case's private text when intake erases one of its reports
/// (`ConfidentialErased` on intake's stream): destroys the case's data key
/// (in a cluster, in the cluster's bucket first), then records
/// [`c::PrivateTextErased`] in the case's log. A redelivery finds the key
/// gone and the event's command id recorded, and adds nothing.
pub struct EraseText {
    /// casework's log.
    pub log: EventLog,
    /// The case's keys.
    pub private: Arc<PrivateText>,
}

impl Handler for EraseText {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        use baove_domain::intake::{CONFIDENTIAL_ERASED, ConfidentialErased};
        if event.event_type != CONFIDENTIAL_ERASED {
            return Ok(());
        }
        let erased: ConfidentialErased = serde_json::from_str(&event.payload).map_err(|e| {
            HandleError::Reject(format!(
                "undecodable ConfidentialErased {}: {e}",
                event.event_id
            ))
        })?;
        let Some(case_id) = erased.case_id else {
            // A report erased before it reached a case: no case text.
            return Ok(());
        };
        let Some((state, _)) = load::<CaseState>(&self.log, case_id).await? else {
            return Err(HandleError::Missing(format!(
                "erasure {} names unknown case {case_id}",
                event.event_id
            )));
        };
        let stream = StreamId::from_uuid(case_id);
        // The referrals' keys first: their reasons and outcomes are the
        // case's text too, in the referral service's log as well.
        if let Some(referral_keys) = self.private.referral_keys() {
            for referral in state.referrals.keys() {
                referral_keys
                    .destroy(*referral)
                    .await
                    .map_err(HandleError::Retry)?;
            }
        }
        self.private
            .keys()
            .ok_or_else(|| HandleError::Reject("casework holds no case keys".into()))?
            .destroy(stream)
            .await
            .map_err(HandleError::Retry)?;
        let new_event = baove_runtime::command::stored(&c::CaseEvent::PrivateTextErased(
            c::PrivateTextErased {
                intake_id: *event.stream_id.as_uuid(),
                reason: erased.reason,
            },
        ))
        .map_err(|e| HandleError::Reject(e.to_string()))?;
        // The append's flush makes the key's removal durable too.
        self.log
            .append(AppendRequest {
                stream,
                expected: ExpectedVersion::Any,
                command_id: format!("text-erased:{}", event.event_id),
                actor: event.actor.clone(),
                causation_id: event.event_id.to_string(),
                correlation_id: event.correlation_id.clone(),
                events: vec![new_event],
                publish: true,
            })
            .await
            .map(|_| ())
            .map_err(|e| HandleError::Retry(e.to_string()))
    }
}

/// Opens a case for each new intake, or attaches a follow-up to its case.
pub struct OpenCases {
    /// casework's log.
    pub log: EventLog,
    /// Calendar, clock and warning share for the opening deadlines.
    pub rules: crate::rules::Rules,
}

/// How many times an attach is retried on a version conflict.
const ATTEMPTS: usize = 5;

/// Reports opened into cases at once ([`Handler::at_once`]): their appends
/// share casework's flushes. Two reports commute: each opens its own case,
/// or attaches to a case opened before intake could name it (a follow-up),
/// under an expected version that a concurrent attachment makes conflict
/// and try again.
pub const OPENING_AT_ONCE: usize = 16;

impl Handler for OpenCases {
    fn at_once(&self) -> usize {
        OPENING_AT_ONCE
    }

    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        if event.event_type != INTAKE_RECORDED {
            return Ok(());
        }
        let recorded: IntakeRecorded = serde_json::from_str(&event.payload)
            .map_err(|e| HandleError::Reject(format!("undecodable IntakeRecorded: {e}")))?;
        let command_id = format!("intake:{}", event.event_id);
        for _ in 0..ATTEMPTS {
            let follow_up = match recorded.report.facts().follow_up_case_id {
                Some(id) => load::<CaseState>(&self.log, id).await?,
                None => None,
            };
            let routing = c::route_intake(
                &recorded,
                event.event_id,
                follow_up.as_ref().map(|(s, v)| (s, *v)),
            );
            let (stream, expected, events) = match &routing {
                Routing::AlreadyIn { .. } => return self.resend_answer(&command_id).await,
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
                } => {
                    let Some((state, _)) = follow_up.as_ref() else {
                        return Err(HandleError::Retry("the case to attach to is gone".into()));
                    };
                    (
                        *case_id,
                        ExpectedVersion::Exact(*version),
                        self.rules.with_context(|ctx| {
                            baove_domain::case::procedure::attaching_events(
                                state,
                                event.clone(),
                                ctx,
                            )
                        }),
                    )
                }
            };
            let new_events = events
                .iter()
                .map(baove_runtime::command::stored)
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
                    if a.replayed {
                        return self.resend_answer(&command_id).await;
                    } else {
                        let what = if matches!(routing, Routing::Open(_)) {
                            "case opened"
                        } else {
                            "intake attached to case"
                        };
                        tracing::info!(case_id = %stream, intake_id = %recorded.intake_id, "{what}");
                    }
                    return Ok(());
                }
                // Applied before under another routing decision: answer
                // again.
                Err(Error::CommandIdReused { .. }) => {
                    return self.resend_answer(&command_id).await;
                }
                Err(Error::Conflict { .. }) if matches!(routing, Routing::Open(_)) => {
                    // The derived case exists: it can only have come from
                    // this intake.
                    return match load::<CaseState>(&self.log, stream).await? {
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

    async fn redelivered(&self, event: Envelope) -> Result<(), HandleError> {
        if event.event_type != INTAKE_RECORDED {
            return Ok(());
        }
        self.resend_answer(&format!("intake:{}", event.event_id))
            .await
    }
}

impl OpenCases {
    /// Publishes again the answer casework gave to a report (its
    /// `CaseOpened` or `IntakeAttached`, under the same event id). intake
    /// re-sends a report only while that answer has not reached it: the
    /// answer may have been lost with the bus's store, so repeating the
    /// report must repeat the answer (JetStream drops it if it still has
    /// it).
    async fn resend_answer(&self, command_id: &str) -> Result<(), HandleError> {
        let Some(answer) = self
            .log
            .command(command_id)
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?
        else {
            return Ok(());
        };
        let again = self
            .log
            .republish(answer.first_position)
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        tracing::info!(case_id = %answer.stream, position = answer.first_position, again, "repeated report: answer published again");
        Ok(())
    }
}

/// Copies each referral step from the referral service into the case's
/// log, so that one case log tells the whole story. The referral events
/// carry the case id as their correlation id.
pub struct RecordReferralSteps {
    /// casework's log.
    pub log: EventLog,
    /// Seals the step's detail (a decline's reason, an outcome) under the
    /// case's key.
    pub private: Arc<PrivateText>,
}

impl Handler for RecordReferralSteps {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        // The referral service's signed checkpoints travel on its stream
        // too; they are no referral step.
        if baove_audit::access::is_record_stream(&event) {
            return Ok(());
        }
        let referral_event =
            <baove_domain::referral::ReferralEvent as baove_domain::event::StoredEvent>::decode(
                &event.event_type,
                event.schema_version,
                &event.payload,
            )
            .map_err(|e| HandleError::Reject(format!("referral event {}: {e}", event.event_id)))?;
        // The case is in the step's payload; steps written before they
        // carried it name it only in their correlation id.
        let Some(case_id) = referral_event
            .case_id()
            .or_else(|| Uuid::parse_str(&event.correlation_id).ok())
        else {
            return Err(HandleError::Reject(format!(
                "referral event {} names no case",
                event.event_id
            )));
        };
        let Some((state, _)) = load::<CaseState>(&self.log, case_id).await? else {
            return Err(HandleError::Missing(format!(
                "referral event {} names unknown case {case_id}",
                event.event_id
            )));
        };
        let to_agency_id = match referral_event {
            baove_domain::referral::ReferralEvent::Offered { to_agency_id, .. } => {
                Some(to_agency_id)
            }
            _ => None,
        };
        let step = c::ReferralStepRecorded {
            referral_id: *event.stream_id.as_uuid(),
            step: event.event_type.clone(),
            by: event.actor.user_id.clone(),
            agency_id: event.actor.agency_id.clone(),
            detail: event.payload.clone(),
            referral_event_id: event.event_id,
            at_ms: Some(event.recorded_at_ms),
            to_agency_id,
        };
        let Some(case_event) = c::procedure::record_referral_step(&state, step) else {
            return Err(HandleError::Reject(format!(
                "case {case_id} did not request referral {}",
                event.stream_id
            )));
        };
        let new_events = baove_runtime::private::stored(
            Some(&self.private),
            StreamId::from_uuid(case_id),
            &[case_event],
        )
        .await
        .map_err(|e| HandleError::Retry(e.message().to_owned()))?;
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
                events: new_events,
                publish: true,
            })
            .await
            .map(|_| ())
            .map_err(|e| HandleError::Retry(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use baove_domain::calendar::Calendar;
    use baove_domain::case::CaseState;
    use baove_domain::case::procedure::{Command, Context, decide, opening_events};
    use baove_eventlog::{Actor, AppendRequest, EventLog, ExpectedVersion, Options, StreamId};
    use baove_proto::v1 as p;
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::test_support::opened;

    /// A case with `notes` notes, appended one command at a time with the
    /// clock moving `steps[i]` ms before each; and every event as stored.
    async fn stored_case(
        log: &EventLog,
        clock: &AtomicI64,
        steps: &[i64],
    ) -> (Uuid, Vec<Envelope>) {
        let calendar =
            Calendar::parse(include_str!("../../../deploy/calendar/vietnam.json")).unwrap();
        let ctx = Context {
            now_ms: 1_795_705_200_000,
            calendar: &calendar,
            warn_share: 0.75,
        };
        let case_id = Uuid::now_v7();
        let opened = opened(case_id, Uuid::now_v7(), "vn:31135", true, ctx.now_ms);
        let mut batches = vec![opening_events(opened, &ctx)];
        let mut state: Option<CaseState> = batches[0].iter().fold(None, c::apply);
        for (i, _) in steps.iter().enumerate().skip(1) {
            let events = decide(
                state.as_ref().unwrap(),
                Command::AddNote {
                    text: format!("ghi chú {i}"),
                },
                &ctx,
            )
            .unwrap();
            state = events.iter().fold(state, c::apply);
            batches.push(events);
        }
        let mut version = 0;
        for (batch, step) in batches.iter().zip(steps) {
            clock.fetch_add(*step, Ordering::SeqCst);
            version = log
                .append(AppendRequest {
                    stream: StreamId::from_uuid(case_id),
                    expected: ExpectedVersion::Exact(version),
                    command_id: format!("{case_id}:{version}"),
                    actor: Actor::system("test"),
                    causation_id: String::new(),
                    correlation_id: String::new(),
                    events: batch
                        .iter()
                        .map(|e| baove_runtime::command::stored(e).unwrap())
                        .collect(),
                    publish: false,
                })
                .await
                .unwrap()
                .last_seq;
        }
        let events = log
            .read_stream(StreamId::from_uuid(case_id), 1, 10_000)
            .await
            .unwrap();
        (case_id, events)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// ReplayCase at instant T equals folding only the events recorded
        /// up to T; at seq N, the events up to N.
        #[test]
        fn replay_at_an_instant_equals_folding_the_events_recorded_until_then(
            steps in prop::collection::vec(0i64..5_000, 1..8),
            probes in prop::collection::vec(0i64..40_000, 1..6),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let clock = Arc::new(AtomicI64::new(1_795_705_200_000));
                let ticking = clock.clone();
                let options = Options { clock: Arc::new(move || ticking.load(Ordering::SeqCst)), ..Options::default() };
                let log = EventLog::open_with(dir.path(), options).await.unwrap();
                let (case_id, events) = stored_case(&log, &clock, &steps).await;
                let keys = baove_runtime::keys::KeyStore::open(&log, baove_security::seal::Key::generate(), None).unwrap();
                let private = baove_runtime::private::PrivateText::new(Arc::new(keys));
                let start = events[0].recorded_at_ms;
                // Random instants, and each event's own instant (the edge).
                let instants: Vec<i64> = probes.iter().map(|p| start - 1_000 + p).chain(events.iter().map(|e| e.recorded_at_ms)).collect();
                for at in instants {
                    let expected: Vec<Envelope> = events.iter().filter(|e| e.recorded_at_ms <= at).cloned().collect();
                    let as_of = Some(p::replay_case_request::AsOf::AsOfTime(baove_runtime::timestamp(at)));
                    let answer = crate::cases::replay_as_of(&log, &private, case_id, as_of).await;
                    match replay::<CaseState>(&expected).unwrap() {
                        None => assert_eq!(answer.unwrap_err().code(), tonic::Code::NotFound),
                        Some((state, version, opened)) => {
                            let answer = answer.unwrap();
                            assert_eq!(answer.case.unwrap(), crate::convert::case_to_proto(&state, version, opened, expected.last().map_or(0, |e| e.recorded_at_ms)));
                            assert_eq!(answer.hash, expected.last().unwrap().hash.0.to_vec());
                        }
                    }
                }
                let seq = events.len() as u64 / 2 + 1;
                let as_of = Some(p::replay_case_request::AsOf::AsOfSeq(seq));
                let answer = crate::cases::replay_as_of(&log, &private, case_id, as_of).await.unwrap();
                assert_eq!(answer.case.unwrap().version, seq);
            });
        }
    }
}
