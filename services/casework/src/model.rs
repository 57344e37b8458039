//! The case read model: every case's summary ([`CaseSummary`]: status,
//! phase, units, officer, deadlines, referrals), version and opening time,
//! folded from casework's log in global order and kept in memory. It
//! serves ListCases, tells the scheduler which cases have deadlines due and
//! whom a deadline alert may reach. Rebuilt from the log at start-up;
//! folding the same log from scratch gives the same model (see the tests).
//!
//! It keeps the summary, not the whole [`baove_domain::case::CaseState`]:
//! the reports, assessments, plans and notes of every case would be held
//! in memory for nothing (at 100,000 cases, restarted with a 64 MiB sled
//! cache: peak heap 415 MiB with whole states, 285 MiB with summaries).
//! Its maps hold an entry per case and are kept packed
//! ([`baove_domain::packed::PackedMap`]).
//! GetCase folds the case's own log.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use baove_domain::case::summary::CaseSummary;
use baove_domain::case::{self as c, CaseEvent, CaseStatus, DeadlineState};
use baove_domain::packed::PackedMap;
use baove_eventlog::{Envelope, EventLog};
use baove_runtime::keys::{KeyStore, KeyUse};
use baove_runtime::projection::Follower;
use baove_runtime::referral_keys::ReferralKeys;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One case in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The case in brief.
    pub case: CaseSummary,
    /// Its version.
    pub version: u64,
    /// When casework opened it (its first event), Unix ms.
    pub opened_at_ms: i64,
    /// Global position of its first event (ties in the list order).
    pub position: u64,
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
        let s = &row.case;
        self.units.as_ref().is_none_or(|units| {
            units.contains(&s.incident_unit_id) || units.contains(&s.responsible_unit_id)
        }) && self
            .incident_unit_id
            .as_ref()
            .is_none_or(|u| u.contains(&s.incident_unit_id))
            && self.status.is_none_or(|st| st == s.status)
            && self
                .officer_id
                .as_ref()
                .is_none_or(|o| s.officer_id.as_ref() == Some(o))
            && (!self.overdue || s.overdue())
            && self
                .opened_from_ms
                .is_none_or(|from| row.opened_at_ms >= from)
            && self.opened_to_ms.is_none_or(|to| row.opened_at_ms < to)
    }
}

/// A position in the newest-first order: (opened at, global position).
pub type Cursor = (i64, u64);

/// The rows, and the two indexes the scheduler reads every tick, changed
/// together under one lock. Without them each tick scanned every case (at
/// 100,000 cases, 5% of a core with nothing happening).
#[derive(Default)]
struct Table {
    /// Every case's row, in the list's order: (opened at, position, case).
    /// A page is read from its cursor onwards, and a filter few cases
    /// match walks the rows in place, instead of sorting every case
    /// under the lock at each call.
    /// Packed ([`PackedMap`]): rows are added in this order, which would
    /// leave a plain map's nodes half empty.
    rows: PackedMap<baove_runtime::request::ListKey, Row>,
    /// Where each case's row is in `rows`.
    keys: HashMap<Uuid, (i64, u64)>,
    /// (when the scheduler must look at the case next, the case): what
    /// [`CaseSummary::next_deadline_check`] says, for [`Cases::due`].
    checks: PackedMap<(i64, Uuid), ()>,
    /// (kind, due at, case) of each open deadline not yet missed on a case
    /// not closed, and how many (a case may have two due at once): for
    /// [`Cases::due_within`].
    open: PackedMap<(c::DeadlineKind, i64, Uuid), u32>,
}

impl Table {
    /// Adds `case`'s entries to the indexes, or takes them out.
    fn index(&mut self, case: &CaseSummary, add: bool) {
        if let Some(at) = case.next_deadline_check() {
            if add {
                self.checks.insert((at, case.case_id), ());
            } else {
                self.checks.remove(&(at, case.case_id));
            }
        }
        if case.status == CaseStatus::Closed {
            return;
        }
        for d in &case.deadlines {
            if d.state != DeadlineState::Open || d.missed {
                continue;
            }
            let key = (d.kind, d.due_at_ms, case.case_id);
            if add {
                *self.open.get_or_default(key) += 1;
            } else if let Some(n) = self.open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.open.remove(&key);
                }
            }
        }
    }
}

/// The model.
pub struct Cases {
    table: RwLock<Table>,
    follower: Follower,
}

impl Cases {
    /// An empty model.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            table: RwLock::default(),
            follower: Follower::named("cases"),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let mut table = self.write();
        let id = *envelope.stream_id.as_uuid();
        let previous = table
            .keys
            .remove(&id)
            .and_then(|(at, position)| table.rows.remove(&(at, position, id)));
        if let Some(row) = &previous {
            table.index(&row.case, false);
        }
        let (opened_at_ms, position) = previous
            .as_ref()
            .map_or((envelope.recorded_at_ms, envelope.global_position), |r| {
                (r.opened_at_ms, r.position)
            });
        if let Some(case) = CaseSummary::apply(previous.map(|r| r.case), &event) {
            table.index(&case, true);
            table.keys.insert(id, (opened_at_ms, position));
            table.rows.insert(
                (opened_at_ms, position, id),
                Row {
                    case,
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
    ///
    /// `referral_keys` (casework's, with its local copy) keeps the copy of
    /// each referral's key in step with the log: a standby copies the key
    /// of each request it follows and marks those of an erased case as
    /// erased ([`ReferralKeys::follow_log`]), so that its backups carry
    /// them as the active's do.
    pub async fn follow(
        self: Arc<Self>,
        log: EventLog,
        keys: Arc<KeyStore>,
        referral_keys: Option<Arc<ReferralKeys>>,
        cancel: CancellationToken,
    ) {
        self.follower
            .follow_prepared(
                &log,
                &cancel,
                |events| {
                    let (requested, erased) = self.referral_key_work(&events);
                    let (keys, referral_keys) = (keys.clone(), referral_keys.clone());
                    async move {
                        keys.prepare(events, key_use).await?;
                        match referral_keys {
                            Some(referral_keys) => {
                                referral_keys.follow_log(requested, erased).await
                            }
                            None => Ok(()),
                        }
                    }
                },
                |envelope| self.apply(envelope),
            )
            .await;
    }

    /// The referrals whose key a page of the log asks for (each sealed
    /// request), and those whose key it erases (every referral of a case
    /// whose text is erased: those the model holds, and those requested
    /// earlier in the page).
    fn referral_key_work(&self, events: &[Envelope]) -> (Vec<Uuid>, Vec<Uuid>) {
        let (mut requested, mut erased) = (Vec::new(), Vec::new());
        let mut in_page: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for envelope in events {
            let case = *envelope.stream_id.as_uuid();
            match envelope.event_type.as_str() {
                "ReferralRequested"
                    if baove_domain::case::private::is_sealed_version(
                        &envelope.event_type,
                        envelope.schema_version,
                    ) =>
                {
                    // An undecodable one is the model's to report.
                    if let Ok(CaseEvent::ReferralRequested(r)) = CaseEvent::decode(
                        &envelope.event_type,
                        envelope.schema_version,
                        &envelope.payload,
                    ) {
                        requested.push(r.referral_id);
                        in_page.entry(case).or_default().push(r.referral_id);
                    }
                }
                "PrivateTextErased" => {
                    erased.extend(in_page.remove(&case).unwrap_or_default());
                    erased.extend(
                        self.with_case(case, |c| {
                            c.referrals
                                .iter()
                                .map(|r| r.referral_id)
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default(),
                    );
                }
                _ => {}
            }
        }
        (requested, erased)
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
        self.read()
            .checks
            .range(..=(now_ms, Uuid::max()))
            .map(|((_, id), ())| *id)
            .collect()
    }

    /// How many open deadlines of each kind fall due in `now_ms ..
    /// now_ms + window_ms` (every kind named, 0 included), for the metric
    /// of deadlines about to be missed. Deadlines already marked missed
    /// and those of closed cases do not count.
    #[must_use]
    pub fn due_within(&self, now_ms: i64, window_ms: i64) -> Vec<(c::DeadlineKind, usize)> {
        let table = self.read();
        let end = now_ms.saturating_add(window_ms);
        [
            c::DeadlineKind::Emergency,
            c::DeadlineKind::PlanDrafted,
            c::DeadlineKind::PlanApproved,
        ]
        .into_iter()
        .map(|kind| {
            let due = if end > now_ms {
                table
                    .open
                    .range((kind, now_ms, Uuid::nil())..(kind, end, Uuid::nil()))
                    .map(|(_, n)| *n as usize)
                    .sum()
            } else {
                0
            };
            (kind, due)
        })
        .collect()
    }

    /// Up to `limit` cases matching `filter`, newest opened first, strictly
    /// after `after`; and the cursor of the next page, if any.
    ///
    /// Read from the list's order backwards
    /// ([`baove_runtime::request::newest_first`]): a page costs the rows it
    /// looks at, not a sort of every case.
    #[must_use]
    pub fn list(
        &self,
        filter: &Filter,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<Row>, Option<Cursor>) {
        let table = self.read();
        baove_runtime::request::newest_first(
            &table.rows,
            (filter.opened_from_ms, filter.opened_to_ms),
            after,
            limit,
            |row| filter.matches(row),
        )
    }

    /// `f` of the summary of case `id`, if the model has it.
    pub fn with_case<T>(&self, id: Uuid, f: impl FnOnce(&CaseSummary) -> T) -> Option<T> {
        let table = self.read();
        let (at, position) = table.keys.get(&id)?;
        table
            .rows
            .get(&(*at, *position, id))
            .map(|row| f(&row.case))
    }

    /// Every row, by case id: for comparing two models.
    #[cfg(test)]
    #[must_use]
    pub fn snapshot(&self) -> Vec<(Uuid, Row)> {
        let mut all: Vec<(Uuid, Row)> = self
            .read()
            .rows
            .iter()
            .map(|((_, _, id), row)| (*id, row.clone()))
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

    const RECEIVED: i64 = 1_795_705_200_000;

    /// A log on a temporary directory, its keys, and a model following it.
    struct Kit {
        _dir: tempfile::TempDir,
        log: EventLog,
        calendar: Calendar,
        keys: Arc<KeyStore>,
        cancel: CancellationToken,
        live: Arc<Cases>,
        followers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    }

    impl Kit {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let log = EventLog::open(dir.path()).await.unwrap();
            let keys = Arc::new(
                KeyStore::open(&log, baove_security::seal::Key::generate(), None).unwrap(),
            );
            let kit = Self {
                _dir: dir,
                calendar: Calendar::parse(include_str!("../../../deploy/calendar/vietnam.json"))
                    .unwrap(),
                keys,
                cancel: CancellationToken::new(),
                live: Cases::new(),
                followers: std::sync::Mutex::default(),
                log,
            };
            kit.follow(kit.live.clone());
            kit
        }

        fn follow(&self, cases: Arc<Cases>) {
            let task = tokio::spawn(cases.follow(
                self.log.clone(),
                self.keys.clone(),
                None,
                self.cancel.clone(),
            ));
            self.followers.lock().unwrap().push(task);
        }

        /// The procedure's context at RECEIVED.
        fn ctx(&self) -> Context<'_> {
            Context {
                now_ms: RECEIVED,
                calendar: &self.calendar,
                warn_share: 0.75,
            }
        }

        /// Another model, folded from scratch up to the end of the log.
        async fn rebuilt(&self) -> Arc<Cases> {
            let rebuilt = Cases::new();
            self.follow(rebuilt.clone());
            rebuilt.wait_for(self.log.last_position()).await.unwrap();
            rebuilt
        }

        async fn stop(self) {
            self.cancel.cancel();
            let followers = std::mem::take(&mut *self.followers.lock().unwrap());
            for task in followers {
                task.await.unwrap();
            }
        }
    }

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
        let kit = Kit::new().await;
        let (log, live, ctx, received) = (&kit.log, &kit.live, kit.ctx(), RECEIVED);

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
            let mut version = append(log, case, 0, &events).await;
            let assign = decide(
                &fold(&events),
                Command::Assign {
                    officer_id: format!("cb-{i}"),
                },
                &ctx,
            )
            .unwrap();
            version = append(log, case, version, &assign).await;
            events.extend(assign);
            if i == 0 {
                let missed = due_deadline_events(&fold(&events), received + 13 * 3_600_000);
                append(log, case, version, &missed).await;
            }
        }
        live.wait_for(log.last_position()).await.unwrap();

        let rebuilt = kit.rebuilt().await;
        assert_eq!(rebuilt.snapshot(), live.snapshot());
        assert_eq!(live.snapshot().len(), 3);

        let overdue = Filter {
            overdue: true,
            ..Filter::default()
        };
        let (rows, _) = live.list(&overdue, None, 10);
        assert_eq!(
            rows.iter().map(|r| r.case.case_id).collect::<Vec<_>>(),
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
        assert_ne!(page[0].case.case_id, rest[0].case.case_id);
        assert_eq!(end, None, "two cases in Ninh Kiều, two pages of one");
        assert_eq!(
            rebuilt.list(&ninh_kieu, None, 10).0,
            live.list(&ninh_kieu, None, 10).0
        );
        kit.stop().await;
    }

    #[tokio::test]
    async fn given_many_cases_when_listed_page_by_page_then_each_matching_case_comes_once_newest_first()
     {
        let kit = Kit::new().await;
        let (log, live, ctx) = (&kit.log, &kit.live, kit.ctx());
        let units = ["vn:31135", "vn:31186", "vn:31153"];
        for i in 0..40_u128 {
            let case = Uuid::from_u128(1000 + i);
            let unit = units[(i % 3) as usize];
            let events = opening_events(
                opened(case, Uuid::from_u128(2000 + i), unit, i % 4 == 0, RECEIVED),
                &ctx,
            );
            append(log, case, 0, &events).await;
        }
        live.wait_for(log.last_position()).await.unwrap();
        let rows: Vec<Row> = live.snapshot().into_iter().map(|(_, r)| r).collect();
        assert_eq!(rows.len(), 40);
        // What the list must give: every matching row, newest opened first,
        // ties by position (many cases open in the same millisecond here).
        let expected = |filter: &Filter| {
            let mut matching: Vec<&Row> = rows.iter().filter(|r| filter.matches(r)).collect();
            matching.sort_by_key(|r| std::cmp::Reverse((r.opened_at_ms, r.position)));
            matching.iter().map(|r| r.case.case_id).collect::<Vec<_>>()
        };
        let mut times: Vec<i64> = rows.iter().map(|r| r.opened_at_ms).collect();
        times.sort_unstable();
        let (first, middle, last) = (times[0], times[20], times[39]);
        let filters = [
            Filter::default(),
            Filter {
                incident_unit_id: Some(HashSet::from(["vn:31186".to_owned()])),
                ..Filter::default()
            },
            Filter {
                units: Some(HashSet::from([
                    "vn:31135".to_owned(),
                    "vn:31153".to_owned(),
                ])),
                ..Filter::default()
            },
            Filter {
                opened_from_ms: Some(middle),
                ..Filter::default()
            },
            Filter {
                opened_to_ms: Some(middle),
                ..Filter::default()
            },
            Filter {
                opened_from_ms: Some(first),
                opened_to_ms: Some(last + 1),
                incident_unit_id: Some(HashSet::from(["vn:31135".to_owned()])),
                ..Filter::default()
            },
            Filter {
                opened_from_ms: Some(last + 1),
                ..Filter::default()
            },
            Filter {
                opened_from_ms: Some(middle),
                opened_to_ms: Some(middle),
                ..Filter::default()
            },
        ];
        for filter in &filters {
            let want = expected(filter);
            for limit in [1, 3, 7, 40, 100] {
                assert_eq!(
                    baove_testkit::fixtures::all_pages(limit, |after, limit| {
                        let (page, next) = live.list(filter, after, limit);
                        (page.into_iter().map(|r| r.case.case_id).collect(), next)
                    }),
                    want,
                    "{filter:?}, limit {limit}"
                );
            }
        }
        assert_eq!(expected(&filters[0]).len(), 40);
        assert!(!expected(&filters[3]).is_empty());
        kit.stop().await;
    }

    /// A referral to the police, not identifying the child.
    fn police(case: &CaseState, referral_id: Uuid, ctx: &Context<'_>) -> Vec<CaseEvent> {
        use baove_domain::referral as r;
        decide(
            case,
            Command::RequestReferral {
                referral_id,
                request: r::ReferralRequest {
                    kind: r::ReferralKind::Refer {
                        service: r::Service::PoliceInvestigation,
                    },
                    to_agency_id: "vn:31135/cong-an".into(),
                    reason: "dấu hiệu tội phạm".into(),
                    urgency: r::Urgency::Normal,
                    sharing: r::Sharing {
                        identifying: false,
                        child_consent: false,
                        guardian_consent: false,
                        legal_basis: None,
                        informant: false,
                    },
                },
            },
            ctx,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn given_referrals_requested_and_cases_erased_when_a_page_is_followed_then_it_names_the_keys_to_copy_and_to_erase()
     {
        let kit = Kit::new().await;
        let (log, ctx) = (&kit.log, kit.ctx());
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (r1, r2, r3) = (
            Uuid::from_u128(11),
            Uuid::from_u128(12),
            Uuid::from_u128(13),
        );
        let erased = CaseEvent::PrivateTextErased(c::PrivateTextErased {
            intake_id: Uuid::from_u128(100),
            reason: "yêu cầu xóa".into(),
        });
        // Case a and its referral r1: what the model holds before the page.
        let opened_a = opening_events(
            opened(a, Uuid::from_u128(100), "vn:31135", false, RECEIVED),
            &ctx,
        );
        let mut version_a = append(log, a, 0, &opened_a).await;
        version_a = append(log, a, version_a, &police(&fold(&opened_a), r1, &ctx)).await;
        let before = log.last_position();
        // The page: case b opened, r2 asked on it; a's text erased; b's
        // erased; then r3 asked on b, after its erasure.
        let opened_b = opening_events(
            opened(b, Uuid::from_u128(101), "vn:31135", false, RECEIVED),
            &ctx,
        );
        let mut version_b = append(log, b, 0, &opened_b).await;
        let asked = police(&fold(&opened_b), r2, &ctx);
        version_b = append(log, b, version_b, &asked).await;
        append(log, a, version_a, std::slice::from_ref(&erased)).await;
        version_b = append(log, b, version_b, std::slice::from_ref(&erased)).await;
        let state_b = fold(&[opened_b, asked].concat());
        append(log, b, version_b, &police(&state_b, r3, &ctx)).await;

        let all = log.read_all(1, 100).await.unwrap();
        let model = Cases::new();
        for envelope in all.iter().filter(|e| e.global_position <= before) {
            model.apply(envelope);
        }
        let page: Vec<Envelope> = all
            .into_iter()
            .filter(|e| e.global_position > before)
            .collect();
        // Requests in clear (schema 1) made no key.
        assert_eq!(model.referral_key_work(&page), (vec![], vec![r1]));
        // Sealed ones did.
        let sealed: Vec<Envelope> = page
            .into_iter()
            .map(|mut e| {
                if e.event_type == "ReferralRequested" {
                    e.schema_version = baove_domain::case::private::SEALED_SCHEMA_VERSION;
                }
                e
            })
            .collect();
        let (requested, mut erased) = model.referral_key_work(&sealed);
        erased.sort_unstable();
        assert_eq!(requested, [r2, r3]);
        assert_eq!(erased, [r1, r2], "r3 was asked after the erasure");
        kit.stop().await;
    }

    const HOUR: i64 = 3_600_000;

    /// The scheduler's answers, read from the indexes, equal a scan of
    /// every row at each instant of `nows`.
    fn assert_indexes_agree(cases: &Cases, nows: impl Iterator<Item = i64>) {
        let rows = cases.snapshot();
        for now in nows {
            let mut scanned: Vec<Uuid> = rows
                .iter()
                .filter(|(_, r)| r.case.next_deadline_check().is_some_and(|at| at <= now))
                .map(|(id, _)| *id)
                .collect();
            let mut due = cases.due(now);
            due.sort_unstable();
            scanned.sort_unstable();
            assert_eq!(due, scanned, "due at {now}");
            for (kind, n) in cases.due_within(now, 2 * HOUR) {
                let count = rows
                    .iter()
                    .filter(|(_, r)| r.case.status != CaseStatus::Closed)
                    .flat_map(|(_, r)| &r.case.deadlines)
                    .filter(|d| {
                        d.kind == kind
                            && d.state == DeadlineState::Open
                            && !d.missed
                            && (now..now + 2 * HOUR).contains(&d.due_at_ms)
                    })
                    .count();
                assert_eq!(n, count, "{kind:?} due within 2 hours of {now}");
            }
        }
    }

    #[tokio::test]
    async fn given_deadlines_warned_missed_met_and_a_case_closed_when_the_scheduler_asks_then_the_indexes_answer_as_a_scan()
     {
        let kit = Kit::new().await;
        let (log, live, ctx, received) = (&kit.log, &kit.live, kit.ctx(), RECEIVED);
        // Every hour over the ten days the plan deadlines run.
        let nows = || (0..240).map(|h| received - HOUR + h * HOUR);
        let mut cases = Vec::new();
        for i in 0..4u128 {
            let case = Uuid::from_u128(i + 1);
            let events = opening_events(
                opened(case, Uuid::from_u128(100 + i), "vn:31135", i < 2, received),
                &ctx,
            );
            let version = append(log, case, 0, &events).await;
            cases.push((case, version, events));
        }
        live.wait_for(log.last_position()).await.unwrap();
        assert_indexes_agree(live, nows());

        // Case 1: its 12-hour deadline warned, then missed.
        let (case, version, events) = &mut cases[0];
        for at in [received + 10 * HOUR, received + 13 * HOUR] {
            let due = due_deadline_events(&fold(events), at);
            assert!(!due.is_empty());
            *version = append(log, *case, *version, &due).await;
            events.extend(due);
        }
        // Case 2: its 12-hour deadline met.
        let (case, version, events) = &mut cases[1];
        let met = [CaseEvent::DeadlineMet(c::DeadlineMet {
            id: Some("emergency-1".into()),
            kind: c::DeadlineKind::Emergency,
            late: false,
        })];
        *version = append(log, *case, *version, &met).await;
        events.extend(met);
        // Case 3: closed with its deadlines open.
        let (case, version, _) = &mut cases[2];
        let closed = [CaseEvent::Closed(c::CaseClosed {
            reason: "chuyển cơ quan khác".into(),
            grounds: None,
            decision_ref: None,
        })];
        *version = append(log, *case, *version, &closed).await;
        live.wait_for(log.last_position()).await.unwrap();
        assert_indexes_agree(live, nows());
        assert!(
            !live
                .due(received + 300 * HOUR)
                .contains(&Uuid::from_u128(3)),
            "a closed case needs no look"
        );

        // Case 3 reopened: its open deadlines count again.
        let reopened = [CaseEvent::Reopened(c::CaseReopened {
            reason: "báo cáo mới".into(),
        })];
        append(log, Uuid::from_u128(3), cases[2].1, &reopened).await;
        live.wait_for(log.last_position()).await.unwrap();
        assert_indexes_agree(live, nows());

        // Rebuilt from scratch, the indexes are the same.
        let rebuilt = kit.rebuilt().await;
        assert_indexes_agree(&rebuilt, nows());
        for now in nows() {
            assert_eq!(rebuilt.due(now).len(), live.due(now).len());
            assert_eq!(
                rebuilt.due_within(now, 2 * HOUR),
                live.due_within(now, 2 * HOUR)
            );
        }
        kit.stop().await;
    }

    #[tokio::test]
    async fn given_a_child_in_danger_when_11_hours_have_passed_then_its_12_hour_deadline_is_due_within_2_hours()
     {
        let kit = Kit::new().await;
        let (log, live, ctx, received) = (&kit.log, &kit.live, kit.ctx(), RECEIVED);
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
            append(log, case, 0, &events).await;
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
        kit.stop().await;
    }
}
