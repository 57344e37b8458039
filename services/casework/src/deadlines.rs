//! Deadlines in motion: the scheduler that appends `DeadlineWarned` and
//! `DeadlineMissed` (finding due cases through the read model), and the
//! alerter that publishes them to the people on duty on
//! `baove.alert.deadline.<commune unit id>`.
//!
//! Exactly once: the scheduler decides from the case as stored, appends at
//! the version it read (a racing tick or a second scheduler gets a conflict
//! and finds nothing left to do), and each deadline's `warned`/`missed`
//! flags are folded from the events themselves, so a restart cannot repeat
//! them.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use baove_bus::{HandleError, Handler};
use baove_domain::calendar::describe;
use baove_domain::case::CaseEvent;
use baove_domain::case::procedure::due_deadline_events;
use baove_eventlog::{Actor, AppendRequest, Envelope, Error, EventLog, ExpectedVersion, StreamId};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::model::Cases;
use crate::rules::Rules;
use baove_domain::case::CaseState;
use baove_runtime::command::load;

/// What "about to fall due" means for the metric: 2 hours.
const DUE_SOON_MS: i64 = 2 * 60 * 60 * 1000;

/// Appends due warnings and misses every `tick` until `cancel` fires, and
/// counts the deadlines falling due within 2 hours.
pub async fn scheduler(
    log: EventLog,
    cases: Arc<Cases>,
    rules: Rules,
    tick: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let now = (rules.clock)();
        for (kind, due) in cases.due_within(now, DUE_SOON_MS) {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(baove_runtime::metrics::DEADLINES_DUE_SOON, "kind" => kind_label(kind))
                .set(due as f64);
        }
        for case_id in cases.due(now) {
            if let Err(e) = check(&log, case_id, now).await {
                tracing::error!(case_id = %case_id, error = %e, "deadline check failed; will retry");
            }
        }
    }
}

/// Appends what is due on one case, deciding from the case as stored.
async fn check(log: &EventLog, case_id: Uuid, now: i64) -> Result<(), String> {
    let Some((state, version)) = load(log, case_id).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let events = due_deadline_events(&state, now);
    if events.is_empty() {
        return Ok(());
    }
    for event in &events {
        if let CaseEvent::DeadlineMissed(missed) = event {
            tracing::warn!(case_id = %case_id, kind = ?missed.kind, due = describe(missed.due_at_ms), unit = %state.opened.incident_unit_id, "deadline missed");
        }
    }
    let new_events = events
        .iter()
        .map(baove_runtime::command::stored)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let appended = log
        .append(AppendRequest {
            stream: StreamId::from_uuid(case_id),
            expected: ExpectedVersion::Exact(version),
            command_id: format!("deadlines:{case_id}:{version}"),
            actor: Actor::system("casework"),
            causation_id: String::new(),
            correlation_id: state.opened.intake_id.to_string(),
            events: new_events,
            publish: true,
        })
        .await;
    match appended {
        Ok(_) => {
            for event in &events {
                let (name, kind) = match event {
                    CaseEvent::DeadlineMissed(e) => {
                        (baove_runtime::metrics::DEADLINES_MISSED, e.kind)
                    }
                    CaseEvent::DeadlineWarned(e) => {
                        (baove_runtime::metrics::DEADLINES_WARNED, e.kind)
                    }
                    _ => continue,
                };
                metrics::counter!(name, "kind" => kind_label(kind)).increment(1);
            }
            Ok(())
        }
        // Someone else moved the case on: the next tick decides again.
        Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// A deadline kind as stored (`emergency`, `plan_drafted`...), for a label.
fn kind_label(kind: baove_domain::case::DeadlineKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Publishes each `DeadlineWarned` / `DeadlineMissed` as an alert to the
/// commune that handles the case.
pub struct Alerts {
    /// casework's log (to find the case's commune).
    pub log: EventLog,
    /// Where to publish.
    pub js: jetstream::Context,
    /// The alert stream: [`baove_bus::ALERT`], or the partition's.
    pub stream: baove_bus::StreamSpec,
    /// The reference data: the alert goes to the commune's official id
    /// (a case stored under an id of the early seed included).
    pub directory: std::sync::Arc<baove_domain::reference::Directory>,
}

/// The case events that make an alert; every other event of casework's
/// stream is acknowledged unread ([`Handler::wants`]).
pub const ALERTING: &[&str] = &["DeadlineWarned", "DeadlineMissed"];

impl Handler for Alerts {
    fn wants(&self, event_type: &str) -> bool {
        ALERTING.contains(&event_type)
    }

    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        let (kind, due_at_ms, missed) =
            match CaseEvent::decode(&event.event_type, event.schema_version, &event.payload) {
                Ok(CaseEvent::DeadlineMissed(e)) => (e.kind, e.due_at_ms, true),
                Ok(CaseEvent::DeadlineWarned(e)) => (e.kind, e.due_at_ms, false),
                _ => return Ok(()),
            };
        let case_id = *event.stream_id.as_uuid();
        let Some((state, _)) = load::<CaseState>(&self.log, case_id).await? else {
            return Err(HandleError::Missing(format!(
                "alert for unknown case {case_id}"
            )));
        };
        let unit = self.directory.canonical_unit(&state.responsible_unit_id);
        let alert = baove_bus::alert::DeadlineAlert {
            case_id,
            kind,
            missed,
            due_at_ms,
            due: describe(due_at_ms),
            satisfied_by: kind.satisfied_by().to_owned(),
            unit_id: unit.to_owned(),
            officer_id: state.officer_id.clone(),
            event_id: event.event_id,
        };
        baove_bus::alert::publish(&self.js, self.stream, unit, &alert)
            .await
            .map_err(HandleError::Retry)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use baove_domain::event::StoredEvent;

    use super::*;

    #[test]
    fn the_alerting_events_are_case_events_casework_stores() {
        for name in ALERTING {
            assert!(CaseEvent::EVENT_TYPES.contains(name), "{name}");
        }
    }
}
