//! What moves referrals without a person: offering what casework
//! requested, escalating unacknowledged referrals, and alerting the
//! supervising agency.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use baove_bus::{HandleError, Handler};
use baove_domain::calendar::{Calendar, describe};
use baove_domain::case::{CaseEvent, ReferralRequested};
use baove_domain::event::StoredEvent as _;
use baove_domain::referral::{self as r, ReferralEvent, ReferralState};
use baove_eventlog::{
    Actor, AppendRequest, Clock, Envelope, Error, EventLog, ExpectedVersion, NewEvent, StreamId,
};
use tokio_util::sync::CancellationToken;

use baove_runtime::command::{load, stored};

use crate::model::Referrals;

/// Offers each referral casework recorded (`ReferralRequested`) to the
/// receiving agency: the one asked, or its successor if it was merged.
pub struct Offer {
    /// referral's log.
    pub log: EventLog,
    /// The model (directory with its changes).
    pub referrals: Arc<Referrals>,
    /// Working days.
    pub calendar: Arc<Calendar>,
    /// The service clock.
    pub clock: Clock,
}

impl Handler for Offer {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        // casework's signed checkpoints travel on its stream too.
        if baove_audit::access::is_record_stream(&event) {
            return Ok(());
        }
        // A request that does not decode (a newer schema, a damaged
        // payload) is set aside and counted, never acknowledged as if
        // offered: a child's referral would be lost without a word.
        let decoded = CaseEvent::decode(&event.event_type, event.schema_version, &event.payload)
            .map_err(|e| {
                HandleError::Reject(format!(
                    "case event {} ({} v{}) does not decode: {e}; the referral it requests is not offered",
                    event.event_id, event.event_type, event.schema_version
                ))
            })?;
        let CaseEvent::ReferralRequested(ReferralRequested {
            referral_id,
            from_unit_id,
            request,
        }) = decoded
        else {
            return Ok(());
        };
        let now = (self.clock)();
        // The directory must include every change recorded so far.
        self.referrals
            .wait_for(self.log.last_position())
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        let receiving = self.referrals.with_directory(|d| {
            d.receiving_agency(&request.to_agency_id, baove_domain::time::vietnam_date(now))
                .map(|a| (a.id.clone(), a.supervisor.clone()))
        });
        let (to_agency_id, supervisor_agency_id) =
            receiving.map_err(|e| HandleError::Reject(format!("referral {referral_id}: {e}")))?;
        // The request's reason comes sealed under the referral's key when
        // casework sealed it (the case's event at the sealed version): it
        // is kept as it is, at the same path, and so is the version.
        let sealed = event.schema_version == r::private::SEALED_SCHEMA_VERSION;
        let offered = ReferralEvent::Offered {
            referral_id,
            case_id: *event.stream_id.as_uuid(),
            from_unit_id,
            to_agency_id: to_agency_id.clone(),
            ack_due_at_ms: r::ack_due(request.urgency, now, &self.calendar),
            request,
            supervisor_agency_id,
        };
        let appended = self
            .log
            .append(AppendRequest {
                stream: StreamId::from_uuid(referral_id),
                expected: ExpectedVersion::NoStream,
                command_id: format!("offer:{}", event.event_id),
                actor: Actor::system("referral"),
                causation_id: event.event_id.to_string(),
                // Every referral event carries its case id here: casework
                // files each step under that case.
                correlation_id: event.stream_id.to_string(),
                events: vec![
                    NewEvent::new(
                        offered.event_type(),
                        if sealed {
                            r::private::SEALED_SCHEMA_VERSION
                        } else {
                            r::SCHEMA_VERSION
                        },
                        &offered.payload(),
                    )
                    .map_err(|e| HandleError::Reject(e.to_string()))?,
                ],
                publish: true,
            })
            .await;
        match appended {
            Ok(_) | Err(Error::Conflict { .. }) => {
                tracing::info!(referral_id = %referral_id, to_agency_id, "referral offered");
                Ok(())
            }
            Err(e) => Err(HandleError::Retry(e.to_string())),
        }
    }
}

/// Escalates every referral whose acknowledgement deadline passed, once,
/// deciding from the stored referral at its version.
pub async fn escalate(
    log: EventLog,
    referrals: Arc<Referrals>,
    clock: Clock,
    tick: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let now = clock();
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(baove_runtime::metrics::REFERRALS_AWAITING_ACK)
            .set(referrals.awaiting_acknowledgement() as f64);
        for id in referrals.due_escalations(now) {
            let result = async {
                let Some((state, version)) = load::<ReferralState>(&log, id).await.map_err(|e| e.to_string())? else { return Ok(()) };
                let Some(event) = r::due_escalation(&state, now) else { return Ok(()) };
                tracing::warn!(referral_id = %id, due = describe(state.ack_due_at_ms), agency = state.to_agency_id, "referral not acknowledged in time: escalated");
                let appended = log
                    .append(AppendRequest {
                        stream: StreamId::from_uuid(id),
                        expected: ExpectedVersion::Exact(version),
                        command_id: format!("escalate:{id}"),
                        actor: Actor::system("referral"),
                        causation_id: String::new(),
                        correlation_id: state.case_id.to_string(),
                        events: vec![stored(&event).map_err(|e| e.to_string())?],
                        publish: true,
                    })
                    .await;
                match appended {
                    Ok(_) => {
                        metrics::counter!(baove_runtime::metrics::REFERRALS_ESCALATED).increment(1);
                        Ok(())
                    }
                    Err(Error::Conflict { .. }) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
            .await;
            if let Err(e) = result {
                tracing::error!(referral_id = %id, error = %e, "escalation failed; will retry");
            }
        }
    }
}

/// Publishes each escalation to the supervising agency (or the receiving
/// agency when it has no supervisor) on `baove.alert.referral.<agency id>`.
pub struct Alerts {
    /// referral's log.
    pub log: EventLog,
    /// Where to publish.
    pub js: jetstream::Context,
    /// The alert stream: [`baove_bus::ALERT`], or the partition's.
    pub stream: baove_bus::StreamSpec,
}

impl Handler for Alerts {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        let Ok(ReferralEvent::Escalated { ack_due_at_ms, .. }) =
            <ReferralEvent as baove_domain::event::StoredEvent>::decode(
                &event.event_type,
                event.schema_version,
                &event.payload,
            )
        else {
            return Ok(());
        };
        let id = *event.stream_id.as_uuid();
        let Some((state, _)) = load::<ReferralState>(&self.log, id).await? else {
            return Err(HandleError::Missing(format!(
                "escalation of unknown referral {id}"
            )));
        };
        let to = state
            .supervisor_agency_id
            .clone()
            .unwrap_or_else(|| state.to_agency_id.clone());
        let alert = baove_bus::alert::ReferralAlert {
            referral_id: id,
            case_id: state.case_id,
            not_acknowledged_by: state.to_agency_id.clone(),
            ack_due_at_ms,
            due: describe(ack_due_at_ms),
            from_unit_id: state.from_unit_id.clone(),
            urgent: state.request.urgency == r::Urgency::Urgent,
            event_id: event.event_id,
        };
        baove_bus::alert::publish(&self.js, self.stream, &to, &alert)
            .await
            .map_err(HandleError::Retry)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use baove_domain::reference::Directory;
    use baove_testkit::fixtures::stored_event;
    use uuid::Uuid;

    use super::*;

    #[tokio::test]
    async fn given_a_request_that_does_not_decode_when_offered_then_it_is_set_aside_not_acknowledged()
     {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let offer = Offer {
            log: log.clone(),
            referrals: Referrals::new(
                Directory::parse(r#"{"units":[]}"#, r#"{"agencies":[]}"#).unwrap(),
            ),
            calendar: Arc::new(
                Calendar::parse(include_str!("../../../deploy/calendar/vietnam.json")).unwrap(),
            ),
            clock: Arc::new(|| 0),
        };
        // A schema version this build does not know, and a payload that is
        // no request.
        for (version, payload) in [
            (9, serde_json::json!({"referral_id": Uuid::now_v7()})),
            (1, serde_json::json!({"not": "a request"})),
        ] {
            let event = stored_event(&log, "ReferralRequested", version, &payload).await;
            let answer = offer.handle(event).await;
            assert!(
                matches!(&answer, Err(HandleError::Reject(m)) if m.contains("does not decode")),
                "{answer:?}"
            );
        }
    }
}
