//! The case read model: every case's state, version and opening time,
//! folded from casework's log in global order and kept in memory. It
//! serves ListCases and tells the scheduler which cases have deadlines due.
//! Rebuilt from the log at start-up; folding the same log from scratch
//! gives the same model (see the tests).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use baove_domain::case::procedure::next_deadline_check;
use baove_domain::case::{self as c, CaseEvent, CaseState, CaseStatus, DeadlineState};
use baove_eventlog::{Envelope, EventLog};
use baove_runtime::keys::{KeyStore, KeyUse};
use baove_runtime::projection::Follower;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One case in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Its state.
    pub state: CaseState,
    /// Its version.
    pub version: u64,
    /// When casework opened it (its first event), Unix ms.
    pub opened_at_ms: i64,
    /// Global position of its first event (ties in the list order).
    pub position: u64,
}

impl Row {
    /// A deadline was missed and is not met yet.
    #[must_use]
    pub fn overdue(&self) -> bool {
        self.state.status == CaseStatus::Open
            && self
                .state
                .deadlines
                .values()
                .any(|d| d.missed && d.state == DeadlineState::Open)
    }

    /// The soonest open deadline.
    #[must_use]
    pub fn next_due_ms(&self) -> Option<i64> {
        self.state
            .deadlines
            .values()
            .filter(|d| d.state == DeadlineState::Open)
            .map(|d| d.due_at_ms)
            .min()
    }
}

/// What ListCases asks for.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Incident unit: the ids that name it (official id and aliases).
    pub incident_unit_id: Option<HashSet<String>>,
    /// Status.
    pub status: Option<CaseStatus>,
    /// Officer.
    pub officer_id: Option<String>,
    /// Overdue only.
    pub overdue: bool,
    /// Opened at or after.
    pub opened_from_ms: Option<i64>,
    /// Opened before.
    pub opened_to_ms: Option<i64>,
    /// Only cases where one of these units is the incident or the
    /// responsible unit (the caller's scope,
    /// [`baove_domain::reference::Directory::scope_units`]); `None`: all.
    pub units: Option<HashSet<String>>,
}

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        let s = &row.state;
        self.units.as_ref().is_none_or(|units| {
            units.contains(&s.opened.incident_unit_id) || units.contains(&s.responsible_unit_id)
        }) && self
            .incident_unit_id
            .as_ref()
            .is_none_or(|u| u.contains(&s.opened.incident_unit_id))
            && self.status.is_none_or(|st| st == s.status)
            && self
                .officer_id
                .as_ref()
                .is_none_or(|o| s.officer_id.as_ref() == Some(o))
            && (!self.overdue || row.overdue())
            && self
                .opened_from_ms
                .is_none_or(|from| row.opened_at_ms >= from)
            && self.opened_to_ms.is_none_or(|to| row.opened_at_ms < to)
    }
}

/// A position in the newest-first order: (opened at, global position).
pub type Cursor = (i64, u64);

/// The model.
pub struct Cases {
    rows: RwLock<HashMap<Uuid, Row>>,
    follower: Follower,
}

impl Cases {
    /// An empty model.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            rows: RwLock::default(),
            follower: Follower::named("cases"),
        })
    }

    fn apply(&self, envelope: &Envelope) {
        let event = match CaseEvent::decode(
            &envelope.event_type,
            envelope.schema_version,
            &envelope.payload,
        ) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(event_id = %envelope.event_id, error = %e, "undecodable case event");
                return;
            }
        };
        let mut rows = self
            .rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = *envelope.stream_id.as_uuid();
        let previous = rows.remove(&id);
        let (opened_at_ms, position) = previous
            .as_ref()
            .map_or((envelope.recorded_at_ms, envelope.global_position), |r| {
                (r.opened_at_ms, r.position)
            });
        if let Some(state) = c::apply(previous.map(|r| r.state), &event) {
            rows.insert(
                id,
                Row {
                    state,
                    version: envelope.seq,
                    opened_at_ms,
                    position,
                },
            );
        }
    }

    /// Folds the log from where the model stands, then follows it until
    /// `cancel` fires.
    ///
    /// In a cluster `keys` first takes from the cluster the key of each
    /// case with sealed text this process does not hold yet (a standby's),
    /// and drops the key of each case whose text was erased, so that a
    /// standby opens what the active opens and takes over.
    pub async fn follow(
        self: Arc<Self>,
        log: EventLog,
        keys: Arc<KeyStore>,
        cancel: CancellationToken,
    ) {
        self.follower
            .follow_with_keys(&log, &cancel, &keys, key_use, |envelope| {
                self.apply(envelope);
            })
            .await;
    }

    /// Waits until the model has applied the log up to `position`.
    ///
    /// # Errors
    /// When it does not catch up in time (see [`Follower::wait_for`]).
    pub async fn wait_for(&self, position: u64) -> Result<(), baove_runtime::projection::Behind> {
        self.follower.wait_for(position).await
    }

    /// The cases whose deadlines need a look at `now_ms`.
    #[must_use]
    pub fn due(&self, now_ms: i64) -> Vec<Uuid> {
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, row)| next_deadline_check(&row.state).is_some_and(|at| at <= now_ms))
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many open deadlines of each kind fall due in `now_ms ..
    /// now_ms + window_ms` (every kind named, 0 included), for the metric
    /// of deadlines about to be missed.
    #[must_use]
    pub fn due_within(&self, now_ms: i64, window_ms: i64) -> Vec<(c::DeadlineKind, usize)> {
        let rows = self
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        [
            c::DeadlineKind::Emergency,
            c::DeadlineKind::PlanDrafted,
            c::DeadlineKind::PlanApproved,
        ]
        .into_iter()
        .map(|kind| {
            let due = rows
                .values()
                .filter(|row| row.state.status != CaseStatus::Closed)
                .flat_map(|row| row.state.deadlines.values())
                .filter(|d| {
                    d.kind == kind
                        && d.state == DeadlineState::Open
                        && !d.missed
                        && d.due_at_ms >= now_ms
                        && d.due_at_ms < now_ms.saturating_add(window_ms)
                })
                .count();
            (kind, due)
        })
        .collect()
    }

    /// Up to `limit` cases matching `filter`, newest opened first, strictly
    /// after `after`; and the cursor of the next page, if any.
    #[must_use]
    pub fn list(
        &self,
        filter: &Filter,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<Row>, Option<Cursor>) {
        let rows = self
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut matching: Vec<&Row> = rows
            .values()
            .filter(|row| filter.matches(row))
            .filter(|row| after.is_none_or(|cursor| (row.opened_at_ms, row.position) < cursor))
            .collect();
        matching.sort_unstable_by_key(|row| std::cmp::Reverse((row.opened_at_ms, row.position)));
        let more = matching.len() > limit;
        let page: Vec<Row> = matching.into_iter().take(limit).cloned().collect();
        let next = if more {
            page.last().map(|r| (r.opened_at_ms, r.position))
        } else {
            None
        };
        (page, next)
    }

    /// `f` of the state of case `id`, if the model has it.
    pub fn with_state<T>(&self, id: Uuid, f: impl FnOnce(&CaseState) -> T) -> Option<T> {
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .map(|row| f(&row.state))
    }

    /// Every row, by case id: for comparing two models.
    #[cfg(test)]
    #[must_use]
    pub fn snapshot(&self) -> Vec<(Uuid, Row)> {
        let mut all: Vec<(Uuid, Row)> = self
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, row)| (*id, row.clone()))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }
}

/// What a case's event means for its data key: an event with sealed text
/// needs it, an erasure of the text destroys it.
fn key_use(event: &Envelope) -> Option<KeyUse> {
    use baove_domain::case::private::{is_sealed_version, private_paths};
    // A request sealed only under its referral's key needs no case key.
    if is_sealed_version(&event.event_type, event.schema_version)
        && !private_paths(&event.event_type).is_empty()
    {
        Some(KeyUse::Needs)
    } else if event.event_type == "PrivateTextErased" {
        Some(KeyUse::Erases)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baove_domain::calendar::Calendar;
    use baove_domain::case::CaseState;
    use baove_domain::case::procedure::{
        Command, Context, decide, due_deadline_events, opening_events,
    };
    use baove_eventlog::{Actor, AppendRequest, ExpectedVersion, StreamId};

    use crate::test_support::opened;

    async fn append(log: &EventLog, case: Uuid, version: u64, events: &[CaseEvent]) -> u64 {
        let appended = log
            .append(AppendRequest {
                stream: StreamId::from_uuid(case),
                expected: ExpectedVersion::Exact(version),
                command_id: format!("{case}:{version}"),
                actor: Actor::system("test"),
                causation_id: String::new(),
                correlation_id: String::new(),
                events: events
                    .iter()
                    .map(|e| baove_runtime::command::stored(e).unwrap())
                    .collect(),
                publish: false,
            })
            .await
            .unwrap();
        appended.last_seq
    }

    fn fold(events: &[CaseEvent]) -> CaseState {
        events.iter().fold(None, c::apply).unwrap()
    }

    #[tokio::test]
    async fn given_a_live_model_when_rebuilt_from_scratch_then_it_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let calendar =
            Calendar::parse(include_str!("../../../deploy/calendar/vietnam.json")).unwrap();
        let received = 1_795_705_200_000;
        let ctx = Context {
            now_ms: received,
            calendar: &calendar,
            warn_share: 0.75,
        };
        let cancel = CancellationToken::new();
        let keys =
            Arc::new(KeyStore::open(&log, baove_security::seal::Key::generate(), None).unwrap());
        let live = Cases::new();
        let follower = tokio::spawn(
            live.clone()
                .follow(log.clone(), keys.clone(), cancel.clone()),
        );

        for (i, unit) in ["vn:31135", "vn:31186", "vn:31135"].into_iter().enumerate() {
            let case = Uuid::from_u128(i as u128 + 1);
            let mut events = opening_events(
                opened(
                    case,
                    Uuid::from_u128(100 + i as u128),
                    unit,
                    i == 0,
                    received,
                ),
                &ctx,
            );
            let mut version = append(&log, case, 0, &events).await;
            let assign = decide(
                &fold(&events),
                Command::Assign {
                    officer_id: format!("cb-{i}"),
                },
                &ctx,
            )
            .unwrap();
            version = append(&log, case, version, &assign).await;
            events.extend(assign);
            if i == 0 {
                let missed = due_deadline_events(&fold(&events), received + 13 * 3_600_000);
                append(&log, case, version, &missed).await;
            }
        }
        live.wait_for(log.last_position()).await.unwrap();

        let rebuilt = Cases::new();
        let again = tokio::spawn(rebuilt.clone().follow(log.clone(), keys, cancel.clone()));
        rebuilt.wait_for(log.last_position()).await.unwrap();
        assert_eq!(rebuilt.snapshot(), live.snapshot());
        assert_eq!(live.snapshot().len(), 3);

        let overdue = Filter {
            overdue: true,
            ..Filter::default()
        };
        let (rows, _) = live.list(&overdue, None, 10);
        assert_eq!(
            rows.iter().map(|r| r.state.case_id).collect::<Vec<_>>(),
            [Uuid::from_u128(1)]
        );
        let ninh_kieu = Filter {
            incident_unit_id: Some(HashSet::from(["vn:31135".to_owned()])),
            ..Filter::default()
        };
        let (page, next) = live.list(&ninh_kieu, None, 1);
        assert_eq!(page.len(), 1);
        let (rest, end) = live.list(&ninh_kieu, next, 1);
        assert_eq!(rest.len(), 1);
        assert_ne!(page[0].state.case_id, rest[0].state.case_id);
        assert_eq!(end, None, "two cases in Ninh Kiều, two pages of one");
        assert_eq!(
            rebuilt.list(&ninh_kieu, None, 10).0,
            live.list(&ninh_kieu, None, 10).0
        );
        cancel.cancel();
        follower.await.unwrap();
        again.await.unwrap();
    }

    #[tokio::test]
    async fn given_a_child_in_danger_when_11_hours_have_passed_then_its_12_hour_deadline_is_due_within_2_hours()
     {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let calendar =
            Calendar::parse(include_str!("../../../deploy/calendar/vietnam.json")).unwrap();
        let received = 1_795_705_200_000;
        let ctx = Context {
            now_ms: received,
            calendar: &calendar,
            warn_share: 0.75,
        };
        let cancel = CancellationToken::new();
        let keys =
            Arc::new(KeyStore::open(&log, baove_security::seal::Key::generate(), None).unwrap());
        let live = Cases::new();
        let follower = tokio::spawn(live.clone().follow(log.clone(), keys, cancel.clone()));
        for (i, danger) in [true, false].into_iter().enumerate() {
            let case = Uuid::from_u128(i as u128 + 1);
            let events = opening_events(
                opened(
                    case,
                    Uuid::from_u128(100 + i as u128),
                    "vn:31135",
                    danger,
                    received,
                ),
                &ctx,
            );
            append(&log, case, 0, &events).await;
        }
        live.wait_for(log.last_position()).await.unwrap();
        let hour = 3_600_000;
        let emergency = |now| {
            live.due_within(now, 2 * hour)
                .into_iter()
                .find(|(kind, _)| *kind == c::DeadlineKind::Emergency)
                .map(|(_, n)| n)
        };
        // At the start the 12-hour clock is far; 11 hours in, it is due
        // within 2 hours; past it, no longer "about to fall due".
        assert_eq!(emergency(received), Some(0));
        assert_eq!(emergency(received + 11 * hour), Some(1));
        assert_eq!(emergency(received + 13 * hour), Some(0));
        // Every kind is named, with 0 where none is due.
        assert_eq!(live.due_within(received, 2 * hour).len(), 3);
        cancel.cancel();
        follower.await.unwrap();
    }
}
