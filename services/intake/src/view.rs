//! The intake read model: every intake's summary (what lists, searches,
//! access checks and the duplicate check need; not the report, which
//! GetIntake reads from the log) and its hand-over state, folded from
//! intake's own log in global order and kept in memory (a province has tens
//! of thousands of intakes a year, not millions). Rebuilt from the log at
//! start-up; it follows new appends through the log's commit notifications.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use baove_domain::intake::{self as d, IntakeEvent, IntakeRecorded, Prior};
use baove_domain::packed::PackedMap;
use baove_eventlog::{Envelope, EventLog};
use baove_runtime::projection::Follower;
use baove_runtime::request::ListKey;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use baove_runtime::keys::{Erased, KeyStore, KeyUse};

/// One intake as the read model holds it: what lists, searches, access
/// checks and the duplicate check need, not the report. GetIntake reads
/// the report from the log ([`View::report`]), so memory does not grow
/// with the reports' text and the opened narratives, informants and
/// addresses are not held for every report (issue #15: with 100,000 reports, a
/// restarted intake's peak heap was 521 MiB with each row holding its
/// report opened, 252 MiB with this row).
#[derive(Clone, Debug)]
pub struct Row {
    /// The intake id.
    pub intake_id: Uuid,
    /// How it came in.
    pub channel: d::Channel,
    /// When the report was received, Unix ms.
    pub received_at_ms: i64,
    /// The child's name, opened (empty when unknown, erased or unreadable).
    pub child_name: String,
    /// Its search key (empty likewise).
    pub name_key: String,
    /// The child's age as reported (after an erasure only the years).
    pub child_age: d::Age,
    /// The child's age in years when received.
    pub child_age_years: u32,
    /// Where it happened.
    pub incident_unit_id: String,
    /// Where the child lives, if known.
    pub residence_unit_id: Option<String>,
    /// The commune responsible, when not the incident's.
    pub responsible_unit_id: Option<String>,
    /// Immediate danger reported.
    pub immediate_danger: bool,
    /// The child is 16 or 17.
    pub outside_child_law: bool,
    /// Cases the duplicate check flagged.
    pub possible_duplicate_case_ids: Vec<Uuid>,
    /// Reports not yet handed over the duplicate check flagged.
    pub possible_duplicate_intake_ids: Vec<Uuid>,
    /// When intake recorded it, Unix ms.
    pub recorded_at_ms: i64,
    /// Its global position in intake's log.
    pub position: u64,
    /// The intake stream's version.
    pub version: u64,
    /// The case and when casework's event came back, once handed over.
    pub handed_over: Option<(Uuid, i64)>,
    /// Whether the confidential fields of the report can be read.
    pub confidential: Confidentiality,
    /// Who recorded it: user, role and agency. Hotline operators and police
    /// read the reports they logged, and only the whole identity counts:
    /// the same user id in another role or agency is someone else.
    pub logged_by: baove_eventlog::Actor,
}

/// The state of a report's confidential fields in the read model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confidentiality {
    /// Opened with the report's data key (or never sealed).
    Readable,
    /// Erased: the data key was destroyed.
    Erased,
    /// The sealed fields do not open (wrong master key or altered bytes):
    /// an error is logged.
    Unreadable,
}

impl Row {
    /// The row of `recorded` (its confidential fields opened, or not, as
    /// `confidential` says), recorded by `logged_by`; not handed over, at
    /// position and version 0 until the caller sets them.
    #[must_use]
    pub fn new(
        recorded: &IntakeRecorded,
        confidential: Confidentiality,
        logged_by: baove_eventlog::Actor,
    ) -> Self {
        let facts = recorded.report.facts();
        Self {
            intake_id: recorded.intake_id,
            channel: recorded.report.channel(),
            received_at_ms: facts.received_at_ms,
            child_name: facts.child.full_name.clone(),
            name_key: facts.child.name_key.clone(),
            child_age: facts.child.age,
            child_age_years: facts.child.age_years,
            incident_unit_id: facts.incident_place.unit_id.clone(),
            residence_unit_id: facts.residence_place.as_ref().map(|p| p.unit_id.clone()),
            responsible_unit_id: facts.responsible_unit_id.clone(),
            immediate_danger: facts.immediate_danger,
            outside_child_law: recorded.outside_child_law,
            possible_duplicate_case_ids: recorded.possible_duplicate_case_ids.clone(),
            possible_duplicate_intake_ids: recorded.possible_duplicate_intake_ids.clone(),
            recorded_at_ms: 0,
            position: 0,
            version: 0,
            handed_over: None,
            confidential,
            logged_by,
        }
    }

    /// The commune responsible: where it happened, unless the report named
    /// another.
    #[must_use]
    pub fn responsible_unit(&self) -> &str {
        self.responsible_unit_id
            .as_deref()
            .unwrap_or(&self.incident_unit_id)
    }

    /// Whether the duplicate check flagged an earlier case or report.
    #[must_use]
    pub fn has_possible_duplicates(&self) -> bool {
        !self.possible_duplicate_case_ids.is_empty()
            || !self.possible_duplicate_intake_ids.is_empty()
    }

    /// Forgets the opened fields the row keeps (an erasure).
    fn erase(&mut self) {
        self.child_name.clear();
        self.name_key.clear();
        self.child_age = d::Age::EstimatedYears(self.child_age_years);
        self.confidential = Confidentiality::Erased;
    }
}

/// What ListIntakes asks for.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Received at or after.
    pub received_from_ms: Option<i64>,
    /// Received before.
    pub received_to_ms: Option<i64>,
    /// `Some(true)`: handed over only; `Some(false)`: not yet.
    pub handed_over: Option<bool>,
    /// Incident unit: the ids that name it (official id and aliases).
    pub incident_unit_id: Option<std::collections::HashSet<String>>,
    /// Channel.
    pub channel: Option<d::Channel>,
    /// Search key the child's name must contain.
    pub name_key: Option<String>,
    /// Only reports logged by this actor: user, role and agency (hotline
    /// operators, police).
    pub logged_by: Option<baove_eventlog::Actor>,
    /// Only reports where it happened, the child lives, or whose
    /// responsible commune is one of these units (the caller's scope,
    /// [`baove_domain::reference::Directory::scope_units`]).
    pub units: Option<std::collections::HashSet<String>>,
}

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        let received = row.received_at_ms;
        self.logged_by.as_ref().is_none_or(|a| *a == row.logged_by)
            && self.units.as_ref().is_none_or(|units| {
                units.contains(&row.incident_unit_id)
                    || units.contains(row.responsible_unit())
                    || row
                        .residence_unit_id
                        .as_ref()
                        .is_some_and(|u| units.contains(u))
            })
            && self.received_from_ms.is_none_or(|from| received >= from)
            && self.received_to_ms.is_none_or(|to| received < to)
            && self
                .handed_over
                .is_none_or(|h| h == row.handed_over.is_some())
            && self
                .incident_unit_id
                .as_ref()
                .is_none_or(|u| u.contains(&row.incident_unit_id))
            && self.channel.is_none_or(|c| c == row.channel)
            && self
                .name_key
                .as_ref()
                .is_none_or(|k| row.name_key.contains(k.as_str()))
    }
}

/// A position in the newest-first order: (received at, global position).
pub type Cursor = (i64, u64);

/// A referral asked on a case, as intake keeps it to decide who may read
/// the case's reports.
#[derive(Clone, Debug)]
struct NotedReferral {
    referral_id: Uuid,
    /// The agency asked.
    to_agency_id: String,
    /// The agency that received it, once offered (a merged agency's
    /// successor).
    receiving_agency_id: Option<String>,
    shares_identity: bool,
    shares_informant: bool,
    status: baove_domain::referral::Status,
    status_at_ms: Option<i64>,
}

/// What a receiving agency sees of a case's reports through its
/// referrals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shared {
    /// The child's identity (and family, addresses, narrative).
    pub identity: bool,
    /// The informant's details.
    pub informant: bool,
}

#[derive(Default)]
struct State {
    /// Every intake's row in the list's order: (received at, position,
    /// id). A page is read from its cursor, not by sorting every row.
    /// Packed ([`PackedMap`]): rows are added in this order, which would
    /// leave a plain map's nodes half empty.
    rows: PackedMap<ListKey, Row>,
    /// Each intake's key in `rows`.
    keys: HashMap<Uuid, ListKey>,
    /// The intakes not yet handed over, by position.
    waiting: BTreeMap<u64, Uuid>,
    /// The highest position of an intake handed over, and when the last
    /// hand-over came back (Unix ms), if any.
    handover_progress: (u64, Option<i64>),
    /// Referrals asked on each case.
    referrals: HashMap<Uuid, Vec<NotedReferral>>,
    /// Cases casework closed (and did not reopen).
    closed_cases: HashSet<Uuid>,
    /// The intakes of each (incident unit, child's name key) that the
    /// duplicate check may flag ([`Earlier`]).
    by_unit_and_name: HashMap<UnitAndName, Earlier>,
    /// The intakes handed over to each case, in the order handed over.
    by_case: HashMap<Uuid, Vec<Uuid>>,
}

/// A report's key in [`Earlier`]'s sets: (the time the duplicate check
/// compares, its id).
type ByTime = (i64, Uuid);

/// The key of one child's name in one commune: (incident unit, name key).
type UnitAndName = (String, String);

/// The intakes of one (incident unit, child's name key) that the duplicate
/// check may flag, by the time it compares ([`d::duplicate_window`]): once
/// handed over, when its hand-over came back (its case's opening, or, for
/// a follow-up attached to an open case, the attachment); else its receipt.
/// The check reads each set newest first from the end of its window and
/// stops once it has its answer ([`d::possible_duplicates`]); so its cost
/// grows neither with the log, nor with the years of reports about children
/// of one name in one commune, nor with a flood of calls about one child in
/// one month that each open a case.
#[derive(Default)]
struct Earlier {
    /// Handed over to a case that is open; those of closed cases are out
    /// until the case is reopened.
    handed_over: BTreeSet<ByTime>,
    /// Not handed over yet.
    waiting: BTreeSet<ByTime>,
}

impl State {
    fn row(&self, intake_id: &Uuid) -> Option<&Row> {
        self.keys.get(intake_id).and_then(|key| self.rows.get(key))
    }

    /// Where `row` stands in the duplicate check's index: its (unit, name
    /// key), its key there and whether it is handed over; `None` without a
    /// name.
    fn index_slot(row: &Row) -> Option<(UnitAndName, ByTime, bool)> {
        (!row.name_key.is_empty()).then(|| {
            (
                (row.incident_unit_id.clone(), row.name_key.clone()),
                (
                    d::compared_at(row.received_at_ms, row.handed_over),
                    row.intake_id,
                ),
                row.handed_over.is_some(),
            )
        })
    }

    /// Takes intake `intake_id` out of the duplicate check's index.
    fn unindex(&mut self, intake_id: &Uuid) {
        let Some((key, entry, handed_over)) = self.row(intake_id).and_then(Self::index_slot) else {
            return;
        };
        if let Some(earlier) = self.by_unit_and_name.get_mut(&key) {
            if handed_over {
                earlier.handed_over.remove(&entry);
            } else {
                earlier.waiting.remove(&entry);
            }
            if earlier.handed_over.is_empty() && earlier.waiting.is_empty() {
                self.by_unit_and_name.remove(&key);
            }
        }
    }

    /// Puts intake `intake_id` in the duplicate check's index, where it
    /// belongs: waiting, handed over to an open case, or (a closed case's)
    /// nowhere.
    fn index(&mut self, intake_id: &Uuid) {
        let Some(row) = self.row(intake_id) else {
            return;
        };
        let closed = row
            .handed_over
            .is_some_and(|(case, _)| self.closed_cases.contains(&case));
        let Some((key, entry, handed_over)) = Self::index_slot(row) else {
            return;
        };
        if closed {
            return;
        }
        let earlier = self.by_unit_and_name.entry(key).or_default();
        if handed_over {
            earlier.handed_over.insert(entry);
        } else {
            earlier.waiting.insert(entry);
        }
    }

    /// The reports of `set` whose time is in `window`, newest first, as
    /// the duplicate check reads them (lazily: it stops when it has its
    /// answer).
    fn newest_first<'s>(
        &'s self,
        set: &'s BTreeSet<ByTime>,
        window: &std::ops::RangeInclusive<i64>,
    ) -> impl Iterator<Item = Prior> + 's {
        set.range((*window.start(), Uuid::nil())..=(*window.end(), Uuid::max()))
            .rev()
            .filter_map(|(_, id)| self.row(id))
            .map(|row| self.prior(row))
    }

    /// What the duplicate check needs of `row`.
    fn prior(&self, row: &Row) -> Prior {
        Prior {
            intake_id: row.intake_id,
            name_key: row.name_key.clone(),
            age: row.child_age,
            age_years: row.child_age_years,
            incident_unit_id: row.incident_unit_id.clone(),
            received_at_ms: row.received_at_ms,
            case: row.handed_over,
            case_closed: row
                .handed_over
                .is_some_and(|(case, _)| self.closed_cases.contains(&case)),
        }
    }

    fn row_mut(&mut self, intake_id: &Uuid) -> Option<&mut Row> {
        self.keys
            .get(intake_id)
            .and_then(|key| self.rows.get_mut(key))
    }
}

/// The read model. It holds the confidential fields opened (in memory
/// only), so that searching by name and the duplicate check work.
pub struct View {
    state: RwLock<State>,
    follower: Follower,
    keys: Arc<KeyStore>,
}

impl View {
    /// An empty model at position 0, opening sealed fields with `keys`.
    #[must_use]
    pub fn new(keys: Arc<KeyStore>) -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::default(),
            follower: Follower::named("intakes"),
            keys,
        })
    }

    /// Opens the sealed fields of `recorded` in place.
    fn unseal(&self, recorded: &mut IntakeRecorded) -> Confidentiality {
        let Some(blob) = recorded.sealed.clone() else {
            return Confidentiality::Readable;
        };
        let stream = baove_eventlog::StreamId::from_uuid(recorded.intake_id);
        let opened = serde_json::from_value::<baove_security::seal::Sealed>(blob)
            .map_err(|e| Err(e.to_string()))
            .and_then(|sealed| self.keys.open_sealed(stream, &sealed))
            .and_then(|bytes| {
                serde_json::from_slice::<d::Confidential>(&bytes).map_err(|e| Err(e.to_string()))
            });
        match opened {
            Ok(confidential) => {
                recorded.restore_confidential(confidential);
                Confidentiality::Readable
            }
            Err(Ok(Erased)) => Confidentiality::Erased,
            Err(Err(e)) => {
                tracing::error!(intake_id = %recorded.intake_id, error = %e, "confidential fields do not open");
                Confidentiality::Unreadable
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still
        // consistent per row: keep serving rather than poison every reader.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply(&self, envelope: &Envelope) {
        if baove_audit::access::is_record_stream(envelope) {
            return;
        }
        let event = match IntakeEvent::decode(
            &envelope.event_type,
            envelope.schema_version,
            &envelope.payload,
        ) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(event_id = %envelope.event_id, error = %e, "undecodable event in intake's log");
                return;
            }
        };
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            IntakeEvent::Recorded(mut recorded) => {
                let confidential = self.unseal(&mut recorded);
                let mut row = Row::new(&recorded, confidential, envelope.actor.clone());
                drop(recorded);
                row.recorded_at_ms = envelope.recorded_at_ms;
                row.position = envelope.global_position;
                row.version = envelope.seq;
                let intake_id = row.intake_id;
                // Never in a log intake wrote (an intake's stream starts
                // with its one IntakeRecorded): the new row stands alone in
                // the list, the waiting and the duplicate check's index all
                // the same, whose order must be the rows' own.
                state.unindex(&intake_id);
                if let Some(old) = state.keys.remove(&row.intake_id) {
                    state.rows.remove(&old);
                    state.waiting.remove(&old.1);
                }
                let key = (row.received_at_ms, row.position, row.intake_id);
                state.keys.insert(row.intake_id, key);
                state.waiting.insert(row.position, row.intake_id);
                state.rows.insert(key, row);
                state.index(&intake_id);
            }
            IntakeEvent::HandedOver(handed) => {
                let intake_id = *envelope.stream_id.as_uuid();
                state.unindex(&intake_id);
                if let Some(row) = state.row_mut(&intake_id) {
                    let first = row.handed_over.is_none();
                    let position = row.position;
                    row.handed_over = Some((handed.case_id, envelope.recorded_at_ms));
                    row.version = envelope.seq;
                    state.index(&intake_id);
                    if first {
                        state
                            .by_case
                            .entry(handed.case_id)
                            .or_default()
                            .push(intake_id);
                        state.waiting.remove(&position);
                    }
                    let (furthest, last) = state.handover_progress;
                    state.handover_progress =
                        (
                            furthest.max(position),
                            Some(last.map_or(envelope.recorded_at_ms, |l| {
                                l.max(envelope.recorded_at_ms)
                            })),
                        );
                }
            }
            IntakeEvent::CaseStatusNoted(noted) => {
                // A closed case's reports leave the duplicate check's
                // index, and come back when it is reopened.
                let changed = if noted.closed {
                    state.closed_cases.insert(noted.case_id)
                } else {
                    state.closed_cases.remove(&noted.case_id)
                };
                if changed {
                    let handed: Vec<Uuid> = state
                        .by_case
                        .get(&noted.case_id)
                        .cloned()
                        .unwrap_or_default();
                    for intake_id in &handed {
                        if noted.closed {
                            state.unindex(intake_id);
                        } else {
                            state.index(intake_id);
                        }
                    }
                }
            }
            IntakeEvent::ConfidentialErased(_) => {
                // Without its name a report is no one's duplicate.
                state.unindex(envelope.stream_id.as_uuid());
                if let Some(row) = state.row_mut(envelope.stream_id.as_uuid()) {
                    row.erase();
                    row.version = envelope.seq;
                }
            }
            IntakeEvent::ReferralNoted(noted) => state
                .referrals
                .entry(noted.case_id)
                .or_default()
                .push(NotedReferral {
                    referral_id: noted.referral_id,
                    to_agency_id: noted.to_agency_id,
                    receiving_agency_id: None,
                    shares_identity: noted.shares_identifying_information,
                    shares_informant: noted.shares_informant,
                    status: baove_domain::referral::Status::Offered,
                    status_at_ms: None,
                }),
            IntakeEvent::ReferralStatusNoted(noted) => {
                let found = state
                    .referrals
                    .get_mut(&noted.case_id)
                    .into_iter()
                    .flatten()
                    .find(|r| r.referral_id == noted.referral_id);
                if let Some(referral) = found {
                    if let Some(status) = baove_domain::referral::status_after(&noted.step) {
                        referral.status = status;
                        referral.status_at_ms = noted.at_ms;
                    }
                    if noted.to_agency_id.is_some() {
                        referral.receiving_agency_id = noted.to_agency_id;
                    }
                }
            }
        }
    }

    /// Folds the log from where the model stands, then follows it until
    /// `cancel` fires.
    pub async fn follow(self: Arc<Self>, log: EventLog, cancel: CancellationToken) {
        // In a cluster the keys of reports this process has not sealed
        // itself (a standby's) come from the cluster before they are read.
        self.follower
            .follow_with_keys(&log, &cancel, &self.keys, key_use, |envelope| {
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

    /// The report of `row` as recorded, read from `log`
    /// (the read model keeps only what lists and checks need), with its
    /// confidential fields opened when they can be, and what became of
    /// them. `None` when the log holds no such report.
    ///
    /// # Errors
    /// When the log cannot be read, or the intake's first event is not a
    /// decodable `IntakeRecorded`.
    pub async fn report(
        &self,
        log: &EventLog,
        row: &Row,
    ) -> Result<Option<(IntakeRecorded, Confidentiality)>, String> {
        let intake_id = row.intake_id;
        let first = log
            .read_stream(baove_eventlog::StreamId::from_uuid(intake_id), 1, 1)
            .await
            .map_err(|e| e.to_string())?;
        let Some(envelope) = first.into_iter().next() else {
            return Ok(None);
        };
        let event = IntakeEvent::decode(
            &envelope.event_type,
            envelope.schema_version,
            &envelope.payload,
        )
        .map_err(|e| format!("intake {intake_id}'s first event does not decode: {e}"))?;
        let IntakeEvent::Recorded(mut recorded) = event else {
            return Err(format!(
                "intake {intake_id}'s first event is {}, not IntakeRecorded",
                envelope.event_type
            ));
        };
        let mut confidential = self.unseal(&mut recorded);
        // An erasure the model has applied counts even if the key were
        // still found: the fields read as erased everywhere at once.
        if row.confidential == Confidentiality::Erased {
            drop(recorded.take_confidential());
            confidential = Confidentiality::Erased;
        }
        recorded.sealed = None;
        Ok(Some((recorded, confidential)))
    }

    /// One intake.
    #[must_use]
    pub fn get(&self, intake_id: Uuid) -> Option<Row> {
        self.read().row(&intake_id).cloned()
    }

    /// Up to `limit` intakes matching `filter`, newest received first,
    /// strictly after `after`; and the cursor of the next page, if any.
    #[must_use]
    pub fn list(
        &self,
        filter: &Filter,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<Row>, Option<Cursor>) {
        let state = self.read();
        baove_runtime::request::newest_first(
            &state.rows,
            (filter.received_from_ms, filter.received_to_ms),
            after,
            limit,
            |row| filter.matches(row),
        )
    }

    /// The possible duplicates of a report with `facts` among the intakes
    /// recorded ([`d::possible_duplicates`]): (case ids, intake ids not
    /// handed over yet). Reads, newest first, only the intakes of its
    /// commune and child's name whose time is in its window, and of those
    /// only as many as the answer needs ([`Earlier`]).
    #[must_use]
    pub fn possible_duplicates(&self, facts: &d::ReportFacts) -> (Vec<Uuid>, Vec<Uuid>) {
        let none = || (Vec::new(), Vec::new());
        if facts.child.name_key.is_empty() {
            return none();
        }
        let window = d::duplicate_window(facts.received_at_ms);
        let state = self.read();
        let key = (
            facts.incident_place.unit_id.clone(),
            facts.child.name_key.clone(),
        );
        let Some(earlier) = state.by_unit_and_name.get(&key) else {
            return none();
        };
        d::possible_duplicates(
            facts,
            state.newest_first(&earlier.handed_over, &window),
            state.newest_first(&earlier.waiting, &window),
        )
    }

    /// What `agency_id` may see of `case_id`'s reports at `now_ms`
    /// through the case's referrals to it that still grant access
    /// ([`baove_domain::referral::grants_access`]): `None` when no referral
    /// does.
    #[must_use]
    pub fn referral_to(&self, case_id: Uuid, agency_id: &str, now_ms: i64) -> Option<Shared> {
        if agency_id.is_empty() {
            return None;
        }
        let state = self.read();
        state
            .referrals
            .get(&case_id)
            .into_iter()
            .flatten()
            .filter(|r| {
                (r.to_agency_id == agency_id || r.receiving_agency_id.as_deref() == Some(agency_id))
                    && baove_domain::referral::grants_access(r.status, r.status_at_ms, now_ms)
            })
            .fold(None, |shared: Option<Shared>, r| {
                let before = shared.unwrap_or(Shared {
                    identity: false,
                    informant: false,
                });
                Some(Shared {
                    identity: before.identity || r.shares_identity,
                    informant: before.informant || (r.shares_identity && r.shares_informant),
                })
            })
    }

    /// Whether intake noted referral `referral_id` of `case_id`.
    #[must_use]
    pub fn knows_referral(&self, case_id: Uuid, referral_id: Uuid) -> bool {
        self.read()
            .referrals
            .get(&case_id)
            .is_some_and(|list| list.iter().any(|r| r.referral_id == referral_id))
    }

    /// The intakes handed over to `case_id`.
    #[must_use]
    pub fn intakes_of_case(&self, case_id: Uuid) -> Vec<Uuid> {
        self.read()
            .by_case
            .get(&case_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether one of the reports handed over to `case_id` passes `check`,
    /// asked of each in the order handed over until one does. The rows are
    /// not copied; `check` runs under the model's read lock, so it must not
    /// call the view (a writer waiting for the lock would block it).
    pub fn any_report_of_case(&self, case_id: Uuid, check: impl FnMut(&Row) -> bool) -> bool {
        let state = self.read();
        state
            .by_case
            .get(&case_id)
            .into_iter()
            .flatten()
            .filter_map(|id| state.row(id))
            .any(check)
    }

    /// Whether one of intake's reports went to `case_id`.
    #[must_use]
    pub fn knows_case(&self, case_id: Uuid) -> bool {
        self.read().by_case.contains_key(&case_id)
    }

    /// Intakes not yet handed over: (intake id, global position), in the
    /// order of their positions.
    #[must_use]
    pub fn pending(&self) -> Vec<(Uuid, u64)> {
        self.read()
            .waiting
            .iter()
            .map(|(position, id)| (*id, *position))
            .collect()
    }

    /// How the hand-over moves: the highest position of an intake handed
    /// over, and when the last hand-over came back (Unix ms), if any.
    #[must_use]
    pub fn handover_progress(&self) -> (u64, Option<i64>) {
        self.read().handover_progress
    }
}

/// What a report's event means for its data key: a recorded report carries
/// sealed fields, an erasure destroys the key.
fn key_use(event: &Envelope) -> Option<KeyUse> {
    use baove_domain::intake::{CONFIDENTIAL_ERASED, INTAKE_RECORDED};
    match event.event_type.as_str() {
        INTAKE_RECORDED => Some(KeyUse::Needs),
        CONFIDENTIAL_ERASED => Some(KeyUse::Erases),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use baove_eventlog::{Actor, AppendRequest, ExpectedVersion, NewEvent, StreamId};
    use serde_json::{Value, json};

    use super::*;

    /// A hotline report as intake stores it (the stored-event fixture of
    /// the domain), unsealed, about `name` in `unit`, received at `at`.
    fn recorded(intake_id: Uuid, at: i64, unit: &str, name: &str) -> Value {
        let mut stored: Value = serde_json::from_str(include_str!(
            "../../../crates/domain/tests/stored/IntakeRecorded.hotline.v1.json"
        ))
        .unwrap();
        let payload = &mut stored["payload"];
        payload["intake_id"] = json!(intake_id);
        payload["sealed"] = Value::Null;
        let facts = &mut payload["report"]["facts"];
        facts["received_at_ms"] = json!(at);
        facts["incident_place"]["unit_id"] = json!(unit);
        facts["child"]["full_name"] = json!(name);
        facts["child"]["name_key"] = json!(name.to_lowercase());
        payload.take()
    }

    /// `recorded` with the child's age estimated at `years`.
    fn aged(mut recorded: Value, years: i64) -> Value {
        let child = &mut recorded["report"]["facts"]["child"];
        child["age"] = json!({ "estimated_years": years });
        child["age_years"] = json!(years);
        recorded
    }

    /// An empty log in `dir` and its read model.
    async fn empty(dir: &std::path::Path) -> (EventLog, Arc<View>) {
        let log = EventLog::open(dir).await.unwrap();
        let keys =
            baove_runtime::keys::KeyStore::open(&log, baove_security::seal::Key::generate(), None)
                .unwrap();
        (log, View::new(Arc::new(keys)))
    }

    async fn append(log: &EventLog, intake_id: Uuid, event_type: &str, payload: &Value) {
        log.append(AppendRequest {
            stream: StreamId::from_uuid(intake_id),
            expected: ExpectedVersion::Any,
            command_id: Uuid::now_v7().to_string(),
            actor: Actor::system("intake"),
            causation_id: String::new(),
            correlation_id: String::new(),
            events: vec![NewEvent::new(event_type, 1, payload).unwrap()],
            publish: false,
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn given_many_reports_when_listed_page_by_page_then_each_matching_one_comes_once_newest_first_and_the_waiting_ones_are_known()
     {
        let dir = tempfile::tempdir().unwrap();
        let (log, view) = empty(dir.path()).await;
        let units = ["vn:31135", "vn:31120", "vn:31186"];
        let names = ["An", "Binh", "Chi", "Dung", "Anh"];
        let start = 1_796_087_531_515;
        for i in 0..40_u128 {
            let id = Uuid::from_u128(1000 + i);
            // Three reports a second, so that times tie and the position
            // breaks the tie; and not in the order received.
            let at = start + i64::try_from((i * 7) % 40 / 3).unwrap() * 1000;
            let unit = units[usize::try_from(i % 3).unwrap()];
            let name = names[usize::try_from(i % 5).unwrap()];
            append(&log, id, "IntakeRecorded", &recorded(id, at, unit, name)).await;
        }
        // Every fourth report handed over, newest first (as a lagging
        // casework may), one of them twice.
        for i in (0..40_u128).rev().filter(|i| i % 4 == 1).chain([1]) {
            let handed = json!({
                "case_event_id": Uuid::now_v7(),
                "case_event_type": "CaseOpened",
                "case_id": Uuid::from_u128(5000 + i),
            });
            append(&log, Uuid::from_u128(1000 + i), "IntakeHandedOver", &handed).await;
        }
        for event in log.read_all(1, 1000).await.unwrap() {
            view.apply(&event);
        }
        let rows: Vec<Row> = view.read().rows.values().cloned().collect();
        assert_eq!(rows.len(), 40);

        // What the list must give: every matching row, newest received
        // first, ties by position.
        let expected = |filter: &Filter| {
            let mut matching: Vec<&Row> = rows.iter().filter(|r| filter.matches(r)).collect();
            matching.sort_by_key(|r| std::cmp::Reverse((r.received_at_ms, r.position)));
            matching.iter().map(|r| r.intake_id).collect::<Vec<_>>()
        };
        let mut times: Vec<i64> = rows.iter().map(|r| r.received_at_ms).collect();
        times.sort_unstable();
        let (first, middle, last) = (times[0], times[20], times[39]);
        let set = |units: &[&str]| Some(units.iter().map(|u| (*u).to_owned()).collect());
        let filters = [
            Filter::default(),
            Filter {
                incident_unit_id: set(&["vn:31120"]),
                ..Filter::default()
            },
            Filter {
                units: set(&["vn:31135", "vn:31186"]),
                ..Filter::default()
            },
            Filter {
                received_from_ms: Some(middle),
                ..Filter::default()
            },
            Filter {
                received_to_ms: Some(middle),
                ..Filter::default()
            },
            Filter {
                received_from_ms: Some(first),
                received_to_ms: Some(last + 1),
                incident_unit_id: set(&["vn:31135"]),
                ..Filter::default()
            },
            Filter {
                received_from_ms: Some(last + 1),
                ..Filter::default()
            },
            Filter {
                received_from_ms: Some(middle),
                received_to_ms: Some(middle),
                ..Filter::default()
            },
            Filter {
                handed_over: Some(false),
                name_key: Some("an".to_owned()),
                ..Filter::default()
            },
            Filter {
                handed_over: Some(true),
                received_to_ms: Some(middle + 1),
                ..Filter::default()
            },
        ];
        for filter in &filters {
            let want = expected(filter);
            for limit in [1, 3, 7, 40, 100] {
                assert_eq!(
                    baove_testkit::fixtures::all_pages(limit, |after, limit| {
                        let (page, next) = view.list(filter, after, limit);
                        (page.into_iter().map(|r| r.intake_id).collect(), next)
                    }),
                    want,
                    "{filter:?}, limit {limit}"
                );
            }
        }
        assert_eq!(expected(&filters[0]).len(), 40);
        assert!(!expected(&filters[3]).is_empty());
        assert!(!expected(&filters[8]).is_empty());
        assert!(!expected(&filters[9]).is_empty());

        // The reports still waiting for casework, in the order of their
        // positions, and how far the hand-over came.
        let mut waiting: Vec<(Uuid, u64)> = rows
            .iter()
            .filter(|r| r.handed_over.is_none())
            .map(|r| (r.intake_id, r.position))
            .collect();
        waiting.sort_by_key(|(_, position)| *position);
        assert_eq!(waiting.len(), 30);
        assert_eq!(view.pending(), waiting);
        let handed: Vec<&Row> = rows.iter().filter(|r| r.handed_over.is_some()).collect();
        let furthest = handed.iter().map(|r| r.position).max();
        let last_back = handed
            .iter()
            .filter_map(|r| r.handed_over)
            .map(|h| h.1)
            .max();
        assert_eq!(
            view.handover_progress(),
            (furthest.unwrap(), Some(last_back.unwrap()))
        );
    }

    #[tokio::test]
    async fn given_a_child_reported_hundreds_of_times_and_cases_closed_and_reopened_when_checked_then_the_index_answers_as_a_scan_of_every_report()
     {
        let dir = tempfile::tempdir().unwrap();
        let (log, view) = empty(dir.path()).await;
        let minute = 60_000;
        // A hand-over's time is when it was written: now.
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        // 300 reports about one child in one commune over 40 days (some
        // outside the window), and a few about others.
        for i in 0..300_i64 {
            let id = Uuid::from_u128(10_000 + u128::try_from(i).unwrap());
            let (unit, name) = match i % 10 {
                7 => ("vn:31120", "An"),
                8 => ("vn:31135", "Binh"),
                _ => ("vn:31135", "An"),
            };
            let at = now - (i * 191 % 300) * 192 * minute;
            // Ages 8 to 11: within a year of 9 or 10 or not.
            let report = aged(recorded(id, at, unit, name), 8 + i % 4);
            append(&log, id, "IntakeRecorded", &report).await;
        }
        // Two of every three handed over; every fifth case takes two
        // reports and case 50_002 takes a flood of them (follow-up reports
        // casework attached), of every age.
        for i in (0..300_u128).filter(|i| i % 3 != 0) {
            let case = 50_000
                + match i {
                    _ if i % 7 == 2 => 2,
                    _ if i % 5 == 0 => i - 1,
                    _ => i,
                };
            let handed = json!({
                "case_event_id": Uuid::now_v7(),
                "case_event_type": "CaseOpened",
                "case_id": Uuid::from_u128(case),
            });
            append(
                &log,
                Uuid::from_u128(10_000 + i),
                "IntakeHandedOver",
                &handed,
            )
            .await;
        }
        let status = |case: u128, closed: bool| {
            json!({
                "case_id": Uuid::from_u128(50_000 + case),
                "closed": closed,
                "case_event_id": Uuid::now_v7(),
            })
        };
        // Cases closed, some reopened, one closed twice.
        for case in (0..300_u128).filter(|c| c % 3 == 1 && c % 4 == 0) {
            append(
                &log,
                Uuid::from_u128(90_000),
                "CaseStatusNoted",
                &status(case, true),
            )
            .await;
        }
        for case in [4_u128, 16, 28, 160] {
            append(
                &log,
                Uuid::from_u128(90_000),
                "CaseStatusNoted",
                &status(case, false),
            )
            .await;
        }
        append(
            &log,
            Uuid::from_u128(90_000),
            "CaseStatusNoted",
            &status(40, true),
        )
        .await;
        // Some reports' names erased, among them some of the flooded case.
        let erased = json!({ "case_id": null, "reason": "deletion request" });
        for i in [2_u128, 16, 23, 299, 150] {
            append(
                &log,
                Uuid::from_u128(10_000 + i),
                "ConfidentialErased",
                &erased,
            )
            .await;
        }
        // The newest two cases: in one, the report of the highest id is of
        // another age (14); in the other it is erased.
        for (id, years, case) in [
            (20_001, 9, 60_000),
            (20_002, 14, 60_000),
            (20_003, 9, 60_001),
            (20_004, 9, 60_001),
        ] {
            let intake_id = Uuid::from_u128(id);
            let report = aged(
                recorded(intake_id, now - 60 * minute, "vn:31135", "An"),
                years,
            );
            append(&log, intake_id, "IntakeRecorded", &report).await;
            let handed = json!({
                "case_event_id": Uuid::now_v7(),
                "case_event_type": "IntakeAttached",
                "case_id": Uuid::from_u128(case),
            });
            append(&log, intake_id, "IntakeHandedOver", &handed).await;
        }
        append(&log, Uuid::from_u128(20_004), "ConfidentialErased", &erased).await;
        // A report recorded again (never in a log intake wrote): it stands
        // as recorded last, waiting, in the index too.
        let again = Uuid::from_u128(10_001);
        let report = aged(recorded(again, now - 5 * minute, "vn:31135", "An"), 9);
        append(&log, again, "IntakeRecorded", &report).await;
        for event in log.read_all(1, 10_000).await.unwrap() {
            view.apply(&event);
        }
        let state = view.read();
        let all: Vec<Prior> = state.rows.values().map(|row| state.prior(row)).collect();
        drop(state);
        assert_eq!(all.len(), 304);
        assert!(all.iter().any(|p| p.case_closed));
        assert!(all.iter().any(|p| p.case.is_some() && !p.case_closed));

        // A scan of every report, newest first, as the duplicate check's
        // own tests check it.
        let scan = |facts: &d::ReportFacts| {
            let mut newest_first: Vec<&Prior> = all.iter().collect();
            newest_first
                .sort_by_key(|p| std::cmp::Reverse(d::compared_at(p.received_at_ms, p.case)));
            d::possible_duplicates(
                facts,
                newest_first.iter().copied(),
                newest_first.iter().copied(),
            )
        };
        let mut named = 0;
        let flooded = Uuid::from_u128(50_002);
        let mut flooded_named = false;
        for (at, unit, name, years) in [
            (now, "vn:31135", "An", 9),
            (now, "vn:31135", "An", 11),
            (now, "vn:31135", "An", 13),
            (now - 10 * 24 * 60 * minute, "vn:31135", "An", 9),
            (now - 35 * 24 * 60 * minute, "vn:31135", "An", 10),
            (now, "vn:31120", "An", 9),
            (now, "vn:31135", "Binh", 8),
            (now, "vn:31135", "Chi", 9),
        ] {
            let report = aged(recorded(Uuid::nil(), at, unit, name), years);
            let report: IntakeRecorded = serde_json::from_value(report).unwrap();
            let facts = report.report.facts();
            let found = view.possible_duplicates(facts);
            assert_eq!(found, scan(facts), "{unit} {name} {years} at {at}");
            named += found.0.len() + found.1.len();
            flooded_named |= found.0.contains(&flooded);
            if (at, unit, name, years) == (now, "vn:31135", "An", 9) {
                assert!(found.0.contains(&Uuid::from_u128(60_000)));
                assert!(found.0.contains(&Uuid::from_u128(60_001)));
                assert!(found.1.contains(&again));
            }
        }
        assert!(named > 2 * d::MAX_POSSIBLE_DUPLICATES, "{named}");
        assert!(flooded_named);
    }
}
