//! The hand-over to casework: a report counts as handed over only when
//! casework's own event naming it (`CaseOpened` or `IntakeAttached`) comes
//! back over NATS. Until then the report is re-published with backoff, in
//! case JetStream lost it (its file store syncs lazily); casework
//! deduplicates, so a re-publish never opens a second case.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use baove_bus::{HandleError, Handler};
use baove_domain::case::CaseEvent;
use baove_domain::intake::{
    self as d, CASE_STATUS_NOTED, CaseStatusNoted, INTAKE_HANDED_OVER, IntakeHandedOver,
};
use baove_eventlog::{
    Actor, AppendRequest, Envelope, EventLog, ExpectedVersion, NewEvent, StreamId,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::view::View;

/// Longest wait between two re-publishes of the same report.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Applies casework's events about intakes: appends `IntakeHandedOver`.
pub struct HandOver {
    /// Intake's log.
    pub log: EventLog,
    /// Intake's read model.
    pub view: Arc<View>,
}

/// The case events that tell intake something: where a report went, a
/// case's status, and the referrals that let an agency read a report.
/// Every other case event (deadlines, steps, notes, checkpoints) is
/// acknowledged unread ([`Handler::wants`]).
pub const WANTED: &[&str] = &[
    "CaseOpened",
    "IntakeAttached",
    "CaseClosed",
    "CaseReopened",
    "ReferralRequested",
    "ReferralStepRecorded",
];

/// Casework's events applied at once ([`Handler::at_once`]): their appends
/// share intake's flushes. Each is made with
/// [`EventLog::append_sharing_flush`]: nobody waits on it but NATS's ack,
/// so its fdatasync waits up to 10 ms for the next submitted report's and
/// shares it, instead of costing every report a second device wait. The consumer keeps one case's events one after
/// another, in order, and everything a handler reads or writes is its
/// case's: a hand-over names the case's own report (one case per report),
/// and the notes of a case's status and referrals follow its hand-over on
/// the same case stream.
pub const HANDING_OVER_AT_ONCE: usize = 16;

impl Handler for HandOver {
    fn wants(&self, event_type: &str) -> bool {
        WANTED.contains(&event_type)
    }

    fn at_once(&self) -> usize {
        HANDING_OVER_AT_ONCE
    }

    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        // Only the events that name an intake matter here; casework has
        // many others, and its signed checkpoints travel on its stream too.
        if baove_audit::access::is_record_stream(&event) {
            return Ok(());
        }
        let case_event =
            match CaseEvent::decode(&event.event_type, event.schema_version, &event.payload) {
                Ok(case_event) => case_event,
                // A type this build does not know is none of intake's.
                Err(baove_domain::event::DecodeError::UnknownType(_)) => return Ok(()),
                // One of its own types that does not decode (a newer schema,
                // a damaged payload) is set aside and counted, not taken as
                // handled: it may be the case a report was handed over to.
                Err(e) => {
                    return Err(HandleError::Reject(format!(
                        "case event {} ({} v{}) does not decode: {e}",
                        event.event_id, event.event_type, event.schema_version
                    )));
                }
            };
        let (intake_id, case_id) = match &case_event {
            CaseEvent::Opened(opened) => (opened.intake_id, opened.case_id),
            CaseEvent::Attached(attached) => (attached.intake_id, *event.stream_id.as_uuid()),
            CaseEvent::Closed(_) => return self.note_case_status(&event, true).await,
            CaseEvent::Reopened(_) => return self.note_case_status(&event, false).await,
            CaseEvent::ReferralRequested(requested) => {
                return self.note_referral(&event, requested).await;
            }
            CaseEvent::ReferralStepRecorded(step) => {
                return self.note_referral_step(&event, step).await;
            }
            _ => return Ok(()),
        };
        // The model must have read intake's own log before it can say
        // whether this intake exists or was already handed over.
        self.view
            .wait_for(self.log.last_position())
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        let Some(row) = self.view.get(intake_id) else {
            return Err(HandleError::Missing(format!(
                "casework names intake {intake_id}, which intake does not have"
            )));
        };
        if row.handed_over.is_some() {
            return Ok(());
        }
        let payload = IntakeHandedOver {
            case_id,
            case_event_id: event.event_id,
            case_event_type: case_event.event_type().to_owned(),
        };
        let new_event = NewEvent::new(INTAKE_HANDED_OVER, d::SCHEMA_VERSION, &payload)
            .map_err(|e| HandleError::Reject(e.to_string()))?;
        self.log
            .append_sharing_flush(AppendRequest {
                stream: StreamId::from_uuid(intake_id),
                expected: ExpectedVersion::Any,
                // One hand-over per intake, whatever arrives twice.
                command_id: format!("handover:{intake_id}"),
                actor: Actor::system("intake"),
                causation_id: event.event_id.to_string(),
                correlation_id: event.correlation_id.clone(),
                events: vec![new_event],
                publish: false,
            })
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        tracing::info!(intake_id = %intake_id, case_id = %case_id, "intake handed over");
        Ok(())
    }
}

impl HandOver {
    /// Records a referral asked on a case one of intake's reports went to:
    /// the receiving agency may then read the report (redacted unless the
    /// referral shares the child's identity).
    async fn note_referral(
        &self,
        event: &Envelope,
        requested: &baove_domain::case::ReferralRequested,
    ) -> Result<(), HandleError> {
        let case_id = *event.stream_id.as_uuid();
        self.view
            .wait_for(self.log.last_position())
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        if !self.view.knows_case(case_id) || requested.request.to_agency_id.is_empty() {
            return Ok(());
        }
        let payload = d::ReferralNoted {
            case_id,
            referral_id: requested.referral_id,
            to_agency_id: requested.request.to_agency_id.clone(),
            shares_identifying_information: requested.request.sharing.identifying,
            shares_informant: requested.request.sharing.informant,
            case_event_id: event.event_id,
        };
        self.note(event, d::REFERRAL_NOTED, "referral-noted", &payload)
            .await
    }

    /// Records a step of a referral intake noted, so that the receiving
    /// agency's access to the report follows the referral's life.
    async fn note_referral_step(
        &self,
        event: &Envelope,
        step: &baove_domain::case::ReferralStepRecorded,
    ) -> Result<(), HandleError> {
        let case_id = *event.stream_id.as_uuid();
        self.view
            .wait_for(self.log.last_position())
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        if !self.view.knows_referral(case_id, step.referral_id) {
            return Ok(());
        }
        let payload = d::ReferralStatusNoted {
            case_id,
            referral_id: step.referral_id,
            step: step.step.clone(),
            at_ms: step.at_ms,
            to_agency_id: step.to_agency_id.clone(),
            case_event_id: event.event_id,
        };
        self.note(event, d::REFERRAL_STATUS_NOTED, "referral-step", &payload)
            .await
    }

    /// Appends intake's own note `event_type` about casework's `event` to
    /// the case's stream of intake's log, once whatever is redelivered.
    async fn note(
        &self,
        event: &Envelope,
        event_type: &str,
        command: &str,
        payload: &impl serde::Serialize,
    ) -> Result<(), HandleError> {
        let new_event = NewEvent::new(event_type, d::SCHEMA_VERSION, payload)
            .map_err(|e| HandleError::Reject(e.to_string()))?;
        self.log
            .append_sharing_flush(AppendRequest {
                stream: event.stream_id,
                expected: ExpectedVersion::Any,
                command_id: format!("{command}:{}", event.event_id),
                actor: Actor::system("intake"),
                causation_id: event.event_id.to_string(),
                correlation_id: event.correlation_id.clone(),
                events: vec![new_event],
                publish: false,
            })
            .await
            .map(|_| ())
            .map_err(|e| HandleError::Retry(e.to_string()))
    }

    /// Records that a case intake knows was closed or reopened, so that the
    /// duplicate check leaves closed cases out.
    async fn note_case_status(&self, event: &Envelope, closed: bool) -> Result<(), HandleError> {
        let case_id = *event.stream_id.as_uuid();
        self.view
            .wait_for(self.log.last_position())
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        if !self.view.knows_case(case_id) {
            return Ok(());
        }
        let payload = CaseStatusNoted {
            case_id,
            closed,
            case_event_id: event.event_id,
        };
        self.note(event, CASE_STATUS_NOTED, "case-status", &payload)
            .await
    }
}

/// Whether a report at `position`, still waiting, should be published
/// again now: when casework handed over a later report (so it skipped
/// this one: lost), or when no hand-over came back for `base` (casework or
/// the bus stalled). While hand-overs still come back for reports before
/// it, casework is only behind: sending more would add to its queue.
#[must_use]
pub fn worth_resending(
    position: u64,
    progress: (u64, Option<i64>),
    now_ms: i64,
    base_ms: i64,
) -> bool {
    let (furthest_handed_over, last_handover_at) = progress;
    position < furthest_handed_over
        || last_handover_at.is_none_or(|at| now_ms.saturating_sub(at) >= base_ms)
}

/// Re-publishes each report still waiting for casework (to `stream`,
/// intake's own or its partition's): first after
/// `base`, then doubling up to 10 minutes, until `cancel` fires; but only
/// while [`worth_resending`] says so.
pub async fn republish(
    log: EventLog,
    view: Arc<View>,
    bus: baove_bus::Bus,
    stream: baove_bus::StreamSpec,
    base: Duration,
    cancel: CancellationToken,
) {
    let js = bus.js;
    let tick = (base / 2).clamp(Duration::from_millis(200), Duration::from_secs(30));
    let mut waiting: HashMap<Uuid, (u32, Instant)> = HashMap::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let now = Instant::now();
        let pending = view.pending();
        let still: HashSet<Uuid> = pending.iter().map(|(id, _)| *id).collect();
        waiting.retain(|id, _| still.contains(id));
        let progress = view.handover_progress();
        let wall_ms = baove_eventlog::Options::default().clock.as_ref()();
        let base_ms = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
        // Only what the cluster holds: a report this process wrote that
        // the cluster does not hold yet may be set aside when it loses its
        // lease, and casework must never open a case for it.
        let stored = log.stored_up_to();
        for (intake_id, position) in pending {
            if position > stored {
                continue;
            }
            let (attempts, due) = waiting.entry(intake_id).or_insert((0, now + base));
            if now < *due {
                continue;
            }
            if !worth_resending(position, progress, wall_ms, base_ms) {
                // casework is working through reports before this one.
                *due = now + base;
                continue;
            }
            let envelope = match log.read_stream(StreamId::from_uuid(intake_id), 1, 1).await {
                Ok(mut events) if !events.is_empty() => events.remove(0),
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, intake_id = %intake_id, "cannot read intake to re-publish");
                    continue;
                }
            };
            match baove_bus::publish(&js, stream, &envelope).await {
                Ok(ack) => {
                    *attempts += 1;
                    tracing::warn!(intake_id = %intake_id, attempts = *attempts, duplicate = ack.duplicate, "casework has not confirmed this intake; re-published");
                }
                Err(e) => {
                    tracing::warn!(intake_id = %intake_id, error = %e, "re-publish failed; will retry");
                    // NATS may have come back without its store.
                    if let Err(e) = baove_bus::ensure_stream(&js, stream, bus.replicas).await {
                        tracing::debug!(error = %e, "stream not ensured yet");
                    }
                }
            }
            let backoff = base
                .saturating_mul(2u32.saturating_pow(*attempts))
                .min(MAX_BACKOFF);
            *due = now + backoff;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use baove_testkit::fixtures::stored_event;

    use super::*;

    #[tokio::test]
    async fn given_a_case_event_of_intakes_types_that_does_not_decode_then_it_is_set_aside_and_an_unknown_type_is_let_go()
     {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let keys =
            baove_runtime::keys::KeyStore::open(&log, baove_security::seal::Key::generate(), None)
                .unwrap();
        let hand_over = HandOver {
            log: log.clone(),
            view: View::new(Arc::new(keys)),
        };
        let payload = serde_json::json!({"intake_id": Uuid::now_v7()});
        for (event_type, version) in [
            ("CaseOpened", 9),
            ("CaseOpened", 1),
            ("ReferralRequested", 1),
        ] {
            let event = stored_event(&log, event_type, version, &payload).await;
            let answer = hand_over.handle(event).await;
            assert!(
                matches!(&answer, Err(HandleError::Reject(m)) if m.contains("does not decode")),
                "{event_type} v{version}: {answer:?}"
            );
        }
        let newer = stored_event(&log, "SomethingCaseworkAddsLater", 1, &payload).await;
        assert!(hand_over.handle(newer).await.is_ok());
    }

    #[test]
    fn every_case_event_intake_wants_is_one_casework_stores() {
        use baove_domain::event::StoredEvent;
        for name in WANTED {
            assert!(CaseEvent::EVENT_TYPES.contains(name), "{name}");
        }
    }

    #[test]
    fn a_report_is_sent_again_when_overtaken_or_when_hand_overs_stall_not_while_casework_is_behind()
    {
        let base = 30_000;
        // Never any hand-over: stalled (or nothing yet): send again.
        assert!(worth_resending(5, (0, None), 100_000, base));
        // A later report came back: this one was lost.
        assert!(worth_resending(5, (9, Some(99_000)), 100_000, base));
        // Earlier ones still come back: casework is behind, wait.
        assert!(!worth_resending(5, (4, Some(99_000)), 100_000, base));
        // Nothing came back for longer than the base wait: send again.
        assert!(worth_resending(5, (4, Some(60_000)), 100_000, base));
    }
}
