//! WatchDeadlines: the deadline alerts (early warnings and misses) of the
//! cases a caller may read, as a live feed of casework's log, for a client
//! that is not on NATS (the console).

use std::sync::Arc;

use baove_domain::case::CaseEvent;
use baove_domain::case::procedure::DeadlineKind;
use baove_eventlog::{Envelope, EventLog};
use baove_proto::v1 as p;
use baove_runtime::history::{Feed, Page};
use baove_runtime::status::from_log;
use baove_security::Caller;
use tonic::Status;

use crate::model::Cases;
use crate::rules::Rules;
use crate::scope::can_read;

/// Log events read per page.
const PAGE: usize = 200;

/// One caller's alerts: each `DeadlineWarned` or `DeadlineMissed` of a
/// case the caller may read ([`can_read`]), by the log's position, once the
/// read model has it.
pub struct Alerts {
    /// The read model (who may read a case depends on its state).
    pub cases: Arc<Cases>,
    /// Who watches.
    pub caller: Caller,
    /// The clock and the directory.
    pub rules: Rules,
}

/// The alert `envelope` is, if it is one: its deadline, when that falls
/// due, and whether it was missed (else the early warning).
fn alert_of(envelope: &Envelope) -> Option<(DeadlineKind, i64, bool)> {
    match CaseEvent::decode(
        &envelope.event_type,
        envelope.schema_version,
        &envelope.payload,
    )
    .ok()?
    {
        CaseEvent::DeadlineWarned(d) => Some((d.kind, d.due_at_ms, false)),
        CaseEvent::DeadlineMissed(d) => Some((d.kind, d.due_at_ms, true)),
        _ => None,
    }
}

impl Feed for Alerts {
    type Item = p::WatchDeadlinesResponse;

    async fn page(
        &mut self,
        log: &EventLog,
        next: u64,
    ) -> Result<Page<p::WatchDeadlinesResponse>, Status> {
        // Only what a reader may be shown (in a cluster, what the cluster
        // stored): the model holds no more.
        let readable = log.readable_position();
        let mut events = log.read_all(next, PAGE).await.map_err(|e| from_log(&e))?;
        events.retain(|e| e.global_position <= readable);
        let Some(last) = events.last() else {
            return Ok(Page {
                items: Vec::new(),
                next,
            });
        };
        self.cases
            .wait_for(last.global_position)
            .await
            .map_err(|_| {
                Status::unavailable("the case read model is behind the log; watch again")
            })?;
        let now = (self.rules.clock)();
        let items = events
            .iter()
            .filter_map(|envelope| {
                let (kind, due_at_ms, missed) = alert_of(envelope)?;
                let case_id = *envelope.stream_id.as_uuid();
                let unit = self.cases.with_case(case_id, |case| {
                    can_read(&self.caller, case, now, &self.rules.directory)
                        .then(|| case.responsible_unit_id.clone())
                })??;
                Some(p::WatchDeadlinesResponse {
                    position: envelope.global_position,
                    case_id: case_id.to_string(),
                    responsible_unit_id: unit,
                    kind: baove_runtime::history::deadline_kind_to_proto(kind) as i32,
                    due_at: Some(baove_runtime::timestamp(due_at_ms)),
                    missed,
                })
            })
            .collect();
        Ok(Page {
            items,
            next: last.global_position + 1,
        })
    }
}
