//! Cases: the Decree 56/2017 procedure as events. A case is opened from an
//! intake (the hand-over, [`route_intake`]); officers' commands are decided
//! by [`procedure::decide`]; [`apply`] only folds events into [`CaseState`].
//! Every event has a stable stored name (see `event_names!` below) and
//! schema version [`SCHEMA_VERSION`].
//!
//! # Layout
//! - this module: events, state, `apply`, the hand-over.
//! - [`private`]: which strings of its events are private free text,
//!   stored sealed.
//! - [`procedure`]: commands, the rules that refuse a step out of order,
//!   deadlines (set, met, warned, missed).
//! - [`summary`]: a case in brief, folded from the same events, for read
//!   models that hold every case in memory.

pub mod private;
pub mod procedure;
pub mod summary;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::intake::{Channel, Concerns, IntakeRecorded};

pub use procedure::{
    CaseClosed, CaseReopened, Deadline, DeadlineCleared, DeadlineKind, DeadlineMet, DeadlineMissed,
    DeadlineSet, DeadlineState, DeadlineWarned, DetailedAssessmentRecorded,
    EmergencyMeasureRecorded, InitialAssessmentRecorded, InterventionRecorded, NoteAdded,
    OfficerAssigned, PlanApproved, PlanDrafted, PlanSentBack, ReviewRecorded,
};

/// Stored name of the event that opens a case. Never changes.
pub const CASE_OPENED: &str = "CaseOpened";
/// Stored name of the event that adds a follow-up report to a case.
pub const INTAKE_ATTACHED: &str = "IntakeAttached";
/// Schema version of every case event.
pub const SCHEMA_VERSION: u32 = 1;

/// Namespace of case ids derived from intake ids (UUIDv5).
const CASE_NAMESPACE: Uuid = Uuid::from_u128(0x6261_6f76_652d_6361_7365_2d69_6e74_616b);

/// The id of the case an intake opens: derived from the intake id, so that
/// however often the report is delivered, it can only ever open this one
/// case.
#[must_use]
pub fn case_id_for_intake(intake_id: Uuid) -> Uuid {
    Uuid::new_v5(&CASE_NAMESPACE, intake_id.as_bytes())
}

/// A case is opened from an intake (seq 1 of the case stream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseOpened {
    /// The case id.
    pub case_id: Uuid,
    /// The intake that opened it.
    pub intake_id: Uuid,
    /// Intake's `IntakeRecorded` event id.
    pub intake_event_id: Uuid,
    /// How the report came in.
    pub channel: Channel,
    /// When the report was received: the procedure's clocks start here.
    pub received_at_ms: i64,
    /// Where it happened: the commune that handles it first.
    pub incident_unit_id: String,
    /// Where the child lives, if known.
    pub residence_unit_id: Option<String>,
    /// The concerns reported.
    pub concerns: Concerns,
    /// Immediate danger reported.
    pub immediate_danger: bool,
    /// The caregiver is the alleged abuser.
    pub caregiver_is_alleged_abuser: bool,
    /// The child is 16 or 17.
    pub outside_child_law: bool,
    /// Cases flagged at intake as possibly about the same child.
    pub possible_duplicate_case_ids: Vec<Uuid>,
    /// The police case number, when a police notification opened it.
    pub police_case_number: Option<String>,
    /// The report named this case as the one it follows up, but that case
    /// does not exist or is not open: a new case was opened instead.
    pub follow_up_case_not_found: Option<Uuid>,
    /// The child's age in years when reported (for the consent rule of
    /// referrals). Absent in events written before it existed.
    #[serde(default)]
    pub child_age_years: Option<u32>,
    /// The child's sex as reported (for the statistics). Absent in events
    /// written before it existed.
    #[serde(default)]
    pub child_sex: Option<crate::intake::Sex>,
    /// Where the abuse happened, as reported. Absent in events written
    /// before it existed.
    #[serde(default)]
    pub setting: Option<crate::intake::Setting>,
    /// When the 12-hour clock starts, when not at `received_at_ms`: when
    /// the police received the information, for a notification. Absent:
    /// `received_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_start_ms: Option<i64>,
    /// The commune responsible when the case opened, when it is not the
    /// incident unit (which had ended: its successor). Absent: the incident
    /// unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_unit_id: Option<String>,
    /// The province the case belongs to (of the responsible commune).
    /// Absent in events written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province_id: Option<String>,
    /// What the opening report said the child is (Mẫu 01). Absent in
    /// events written before it existed: unknown.
    #[serde(
        default,
        skip_serializing_if = "crate::intake::ReportStatus::is_unknown"
    )]
    pub report_status: crate::intake::ReportStatus,
    /// The first day the child may be old enough to consent herself
    /// ([`crate::intake::Age::consent_possible_from`]): from then a
    /// referral sharing her identity needs her consent too. Absent: the age
    /// on the report decides.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::optional_date_serde"
    )]
    pub consent_possible_from: Option<::time::Date>,
}

/// A referral to another agency was requested on the case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralRequested {
    /// The referral's id (its stream in the referral service).
    pub referral_id: Uuid,
    /// The commune responsible for the case when it asked.
    pub from_unit_id: String,
    /// What is asked, of whom, sharing what.
    pub request: crate::referral::ReferralRequest,
}

/// A step of a referral, copied from the referral service so that the
/// case's log tells the whole story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralStepRecorded {
    /// The referral.
    pub referral_id: Uuid,
    /// The referral event's stored name (`ReferralAccepted`...).
    pub step: String,
    /// Who took it.
    pub by: String,
    /// Their agency.
    pub agency_id: String,
    /// The step's details (reason, outcome...), as JSON text.
    pub detail: String,
    /// The referral service's event id.
    pub referral_event_id: Uuid,
    /// When the referral service recorded the step, Unix ms. Absent in
    /// events written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    /// For `ReferralOffered`: the agency that received it (a merged
    /// agency's successor when the one asked no longer exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_agency_id: Option<String>,
}

/// The case's private text ([`private`]) was erased: its data key was
/// destroyed because intake erased a report of the case (`EraseCase`, on a
/// legal ground). What it sealed reads as [`private::ERASED`] from then on;
/// text recorded later is sealed under a new key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateTextErased {
    /// The report whose erasure it follows.
    pub intake_id: Uuid,
    /// The legal ground given for the erasure.
    pub reason: String,
}

/// A referral as the case sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseReferral {
    /// The request.
    pub request: crate::referral::ReferralRequest,
    /// The last step recorded (`ReferralRequested` until the first one).
    pub last_step: String,
    /// Where it stands (offered until a step says otherwise).
    pub status: crate::referral::Status,
    /// When it reached that status, if known.
    pub status_at_ms: Option<i64>,
    /// The agency it was offered to, once offered (the successor of a
    /// merged agency).
    pub receiving_agency_id: Option<String>,
}

impl CaseReferral {
    /// Whether staff of `agency_id` may read the case through this
    /// referral at `now_ms` ([`crate::referral::grants_access`]).
    #[must_use]
    pub fn lets_read(&self, agency_id: &str, now_ms: i64) -> bool {
        !agency_id.is_empty() && self.lets_read_as(|id| id == agency_id, now_ms)
    }

    /// Whether staff of the agency that `is_theirs` recognises (by a stored
    /// id, which may be an alias of the early seed) may read the case
    /// through this referral at `now_ms`.
    #[must_use]
    pub fn lets_read_as(&self, is_theirs: impl Fn(&str) -> bool, now_ms: i64) -> bool {
        referral_lets_read(
            &self.request.to_agency_id,
            self.receiving_agency_id.as_deref(),
            self.status,
            self.status_at_ms,
            is_theirs,
            now_ms,
        )
    }
}

/// A follow-up report is added to an open case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeAttached {
    /// The intake.
    pub intake_id: Uuid,
    /// Intake's `IntakeRecorded` event id.
    pub intake_event_id: Uuid,
    /// How it came in.
    pub channel: Channel,
    /// When it was received.
    pub received_at_ms: i64,
    /// The concerns it reports.
    pub concerns: Concerns,
    /// Immediate danger reported.
    pub immediate_danger: bool,
    /// The caregiver is the alleged abuser. Absent in events written
    /// before it was carried: false.
    #[serde(default)]
    pub caregiver_is_alleged_abuser: bool,
    /// The police case number, if a police notification.
    pub police_case_number: Option<String>,
    /// When its 12-hour clock starts, when not at `received_at_ms` (see
    /// [`CaseOpened::clock_start_ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_start_ms: Option<i64>,
}

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseStatus {
    /// Being handled.
    Open,
    /// Closed after a review found no risk remaining.
    Closed,
}

/// A case's state, folded from its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseState {
    /// The case id.
    pub case_id: Uuid,
    /// Status.
    pub status: CaseStatus,
    /// Where it is in the procedure.
    pub phase: Phase,
    /// The event that opened it.
    pub opened: CaseOpened,
    /// The intakes behind it, the opening one first.
    pub intake_ids: Vec<Uuid>,
    /// Immediate danger in any report.
    pub immediate_danger: bool,
    /// Police case numbers named by its reports.
    pub police_case_numbers: Vec<String>,
    /// The responsible officer.
    pub officer_id: Option<String>,
    /// Whether the initial assessment found that emergency measures apply
    /// (`None` until it is recorded).
    pub emergency_measures_apply: Option<bool>,
    /// Emergency measures recorded.
    pub emergency_measures: Vec<EmergencyMeasureRecorded>,
    /// The current (latest) plan.
    pub plan: Option<Plan>,
    /// Interventions recorded against the current plan.
    pub interventions: Vec<InterventionRecorded>,
    /// Deadlines, by occurrence id (`emergency-1`, `emergency-2`...).
    pub deadlines: BTreeMap<String, Deadline>,
    /// Notes, in order.
    pub notes: Vec<String>,
    /// The commune responsible now: where it happened, until a transfer to
    /// another commune is accepted.
    pub responsible_unit_id: String,
    /// Referrals, by id.
    pub referrals: BTreeMap<Uuid, CaseReferral>,
    /// What verification found about the forms of abuse so far (the latest
    /// finding on each form).
    pub verification: procedure::Verification,
}

/// Where a case is in the Decree 56 procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opened (or reopened): the initial assessment (Mẫu 02) is next.
    AwaitingInitialAssessment,
    /// Initially assessed: the detailed assessment (Mẫu 03) is next.
    InitiallyAssessed,
    /// Assessed in detail: a plan (Mẫu 04) is next.
    DetailedAssessed,
    /// A plan awaits the commune chair's decision (Mẫu 05).
    PlanAwaitingDecision,
    /// The chair sent the plan back: a new draft is next.
    PlanSentBack,
    /// The plan is approved: interventions, then a review (Mẫu 06).
    PlanApproved,
    /// Reviewed: closing if no risk remains, else a new plan.
    Reviewed {
        /// Some risk factor is still rated high or medium.
        risk_remains: bool,
    },
    /// Closed.
    Closed,
}

/// A plan and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The plan as drafted.
    pub draft: PlanDrafted,
    /// Approved (with the decision reference), or not yet.
    pub approved: Option<String>,
}

/// A case event, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseEvent {
    /// [`CaseOpened`].
    Opened(CaseOpened),
    /// [`IntakeAttached`].
    Attached(IntakeAttached),
    /// [`OfficerAssigned`].
    OfficerAssigned(OfficerAssigned),
    /// [`InitialAssessmentRecorded`].
    InitialAssessmentRecorded(InitialAssessmentRecorded),
    /// [`EmergencyMeasureRecorded`].
    EmergencyMeasureRecorded(EmergencyMeasureRecorded),
    /// [`DetailedAssessmentRecorded`].
    DetailedAssessmentRecorded(DetailedAssessmentRecorded),
    /// [`PlanDrafted`].
    PlanDrafted(PlanDrafted),
    /// [`PlanApproved`].
    PlanApproved(PlanApproved),
    /// [`PlanSentBack`].
    PlanSentBack(PlanSentBack),
    /// [`InterventionRecorded`].
    InterventionRecorded(InterventionRecorded),
    /// [`ReviewRecorded`].
    ReviewRecorded(ReviewRecorded),
    /// [`CaseClosed`].
    Closed(CaseClosed),
    /// [`CaseReopened`].
    Reopened(CaseReopened),
    /// [`NoteAdded`].
    NoteAdded(NoteAdded),
    /// [`DeadlineSet`].
    DeadlineSet(DeadlineSet),
    /// [`DeadlineMet`].
    DeadlineMet(DeadlineMet),
    /// [`DeadlineWarned`].
    DeadlineWarned(DeadlineWarned),
    /// [`DeadlineMissed`].
    DeadlineMissed(DeadlineMissed),
    /// [`DeadlineCleared`].
    DeadlineCleared(DeadlineCleared),
    /// [`ReferralRequested`].
    ReferralRequested(ReferralRequested),
    /// [`ReferralStepRecorded`].
    ReferralStepRecorded(ReferralStepRecorded),
    /// [`PrivateTextErased`].
    PrivateTextErased(PrivateTextErased),
}

crate::event::stored_events! {
    CaseEvent, SCHEMA_VERSION; private::is_sealed_version,
    Opened => "CaseOpened",
    Attached => "IntakeAttached",
    OfficerAssigned => "OfficerAssigned",
    InitialAssessmentRecorded => "InitialAssessmentRecorded",
    EmergencyMeasureRecorded => "EmergencyMeasureRecorded",
    DetailedAssessmentRecorded => "DetailedAssessmentRecorded",
    PlanDrafted => "PlanDrafted",
    PlanApproved => "PlanApproved",
    PlanSentBack => "PlanSentBack",
    InterventionRecorded => "InterventionRecorded",
    ReviewRecorded => "ReviewRecorded",
    Closed => "CaseClosed",
    Reopened => "CaseReopened",
    NoteAdded => "NoteAdded",
    DeadlineSet => "DeadlineSet",
    DeadlineMet => "DeadlineMet",
    DeadlineWarned => "DeadlineWarned",
    DeadlineMissed => "DeadlineMissed",
    DeadlineCleared => "DeadlineCleared",
    ReferralRequested => "ReferralRequested",
    ReferralStepRecorded => "ReferralStepRecorded",
    PrivateTextErased => "PrivateTextErased",
}

impl CaseEvent {
    /// Whether this event is bookkeeping that no officer's decision depends
    /// on: the scheduler's deadline warnings and misses, notes, an erasure of
    /// the private text, and the
    /// referral steps that change nothing on the case (offered,
    /// acknowledged, escalated, outcome reported). A step decided on a
    /// version made stale only by such events is decided again on the
    /// current state rather than refused: an officer does not lose a plan
    /// she typed because the scheduler warned of a deadline meanwhile.
    /// Everything else (another officer's step, a new report attached, a
    /// referral accepted, declined, revoked or completed, a deadline met or
    /// set) may change the decision, and the step is refused as stale.
    #[must_use]
    pub fn is_bookkeeping(&self) -> bool {
        match self {
            Self::DeadlineWarned(_)
            | Self::DeadlineMissed(_)
            | Self::NoteAdded(_)
            | Self::PrivateTextErased(_) => true,
            Self::ReferralStepRecorded(step) => matches!(
                step.step.as_str(),
                "ReferralOffered"
                    | "ReferralAcknowledged"
                    | "ReferralEscalated"
                    | "ReferralOutcomeReported"
            ),
            _ => false,
        }
    }
}

impl crate::event::Aggregate for CaseState {
    type Event = CaseEvent;
    const KIND: &'static str = "case";
    const FIRST_EVENT: &'static str = CASE_OPENED;

    fn apply(state: Option<Self>, event: &CaseEvent) -> Option<Self> {
        apply(state, event)
    }

    fn case_id(&self) -> Uuid {
        self.case_id
    }

    fn correlation_id(&self) -> String {
        self.opened.intake_id.to_string()
    }

    fn is_bookkeeping(event: &CaseEvent) -> bool {
        event.is_bookkeeping()
    }
}

/// Folds one event into the state. No logic: [`procedure::decide`]
/// already checked.
#[must_use]
pub fn apply(state: Option<CaseState>, event: &CaseEvent) -> Option<CaseState> {
    let mut state = match (state, event) {
        (None, CaseEvent::Opened(opened)) => {
            return Some(CaseState {
                case_id: opened.case_id,
                status: CaseStatus::Open,
                phase: Phase::AwaitingInitialAssessment,
                intake_ids: vec![opened.intake_id],
                immediate_danger: opened.immediate_danger,
                police_case_numbers: opened.police_case_number.iter().cloned().collect(),
                opened: opened.clone(),
                officer_id: None,
                emergency_measures_apply: None,
                emergency_measures: Vec::new(),
                plan: None,
                interventions: Vec::new(),
                deadlines: BTreeMap::new(),
                notes: Vec::new(),
                responsible_unit_id: opened
                    .responsible_unit_id
                    .clone()
                    .unwrap_or_else(|| opened.incident_unit_id.clone()),
                referrals: BTreeMap::new(),
                verification: procedure::Verification::default(),
            });
        }
        (None, _) => return None,
        (Some(state), _) => state,
    };
    progress(&mut state.status, &mut state.phase, event);
    match event {
        CaseEvent::Opened(_)
        | CaseEvent::PlanSentBack(_)
        | CaseEvent::ReviewRecorded(_)
        | CaseEvent::Closed(_)
        | CaseEvent::DeadlineSet(_)
        | CaseEvent::DeadlineMet(_)
        | CaseEvent::DeadlineCleared(_)
        | CaseEvent::DeadlineWarned(_)
        | CaseEvent::DeadlineMissed(_)
        // The text it erased is read as erased; the procedure goes on.
        | CaseEvent::PrivateTextErased(_) => {}
        CaseEvent::Attached(attached) => {
            state.intake_ids.push(attached.intake_id);
            state.immediate_danger |= attached.immediate_danger;
            if let Some(number) = &attached.police_case_number
                && !state.police_case_numbers.contains(number)
            {
                state.police_case_numbers.push(number.clone());
            }
        }
        CaseEvent::OfficerAssigned(e) => state.officer_id = Some(e.officer_id.clone()),
        CaseEvent::InitialAssessmentRecorded(e) => {
            state.verification = e.verification.over(&state.verification);
            state.emergency_measures_apply = Some(e.emergency_measures_apply);
        }
        CaseEvent::EmergencyMeasureRecorded(e) => state.emergency_measures.push(e.clone()),
        CaseEvent::DetailedAssessmentRecorded(e) => {
            state.verification = e.verification.over(&state.verification);
        }
        CaseEvent::PlanDrafted(e) => {
            state.plan = Some(Plan {
                draft: e.clone(),
                approved: None,
            });
            state.interventions.clear();
        }
        CaseEvent::PlanApproved(e) => {
            if let Some(plan) = &mut state.plan {
                plan.approved = Some(e.decision_ref.clone());
            }
        }
        CaseEvent::InterventionRecorded(e) => state.interventions.push(e.clone()),
        CaseEvent::Reopened(_) => state.emergency_measures_apply = None,
        CaseEvent::NoteAdded(e) => state.notes.push(e.text.clone()),
        CaseEvent::ReferralRequested(e) => {
            state.referrals.insert(
                e.referral_id,
                CaseReferral {
                    request: e.request.clone(),
                    last_step: "ReferralRequested".into(),
                    status: crate::referral::Status::Offered,
                    status_at_ms: None,
                    receiving_agency_id: None,
                },
            );
        }
        CaseEvent::ReferralStepRecorded(e) => {
            if let Some(referral) = state.referrals.get_mut(&e.referral_id) {
                referral.last_step = e.step.clone();
                referral_stepped(
                    &mut referral.status,
                    &mut referral.status_at_ms,
                    &mut referral.receiving_agency_id,
                    e,
                );
                if let Some(unit) = accepted_transfer(transfer_unit(&referral.request.kind), &e.step) {
                    state.responsible_unit_id = unit.to_owned();
                }
            }
        }
    }
    deadline_event(&mut state.deadlines, event);
    Some(state)
}

/// How `event` moves a case's status and phase. One place for [`apply`]
/// and [`summary::CaseSummary::apply`].
fn progress(status: &mut CaseStatus, phase: &mut Phase, event: &CaseEvent) {
    match event {
        CaseEvent::InitialAssessmentRecorded(e) if !e.reassessment => {
            *phase = Phase::InitiallyAssessed;
        }
        CaseEvent::DetailedAssessmentRecorded(_) => *phase = Phase::DetailedAssessed,
        CaseEvent::PlanDrafted(_) => *phase = Phase::PlanAwaitingDecision,
        CaseEvent::PlanApproved(_) => *phase = Phase::PlanApproved,
        CaseEvent::PlanSentBack(_) => *phase = Phase::PlanSentBack,
        CaseEvent::ReviewRecorded(e) => {
            *phase = Phase::Reviewed {
                risk_remains: e.risk_remains,
            };
        }
        CaseEvent::Closed(_) => {
            *status = CaseStatus::Closed;
            *phase = Phase::Closed;
        }
        CaseEvent::Reopened(_) => {
            *status = CaseStatus::Open;
            *phase = Phase::AwaitingInitialAssessment;
        }
        _ => {}
    }
}

/// A case's deadlines, in id order: [`CaseState`]'s map, or a summary's
/// sorted vector. [`deadline_event`] folds the deadline events into either.
trait Deadlines {
    fn all(&self) -> impl Iterator<Item = &Deadline>;
    fn all_mut(&mut self) -> impl Iterator<Item = &mut Deadline>;
    /// Adds it, or replaces the one with its id.
    fn put(&mut self, deadline: Deadline);
}

impl Deadlines for BTreeMap<String, Deadline> {
    fn all(&self) -> impl Iterator<Item = &Deadline> {
        self.values()
    }
    fn all_mut(&mut self) -> impl Iterator<Item = &mut Deadline> {
        self.values_mut()
    }
    fn put(&mut self, deadline: Deadline) {
        self.insert(deadline.id.clone(), deadline);
    }
}

impl Deadlines for Vec<Deadline> {
    fn all(&self) -> impl Iterator<Item = &Deadline> {
        self.iter()
    }
    fn all_mut(&mut self) -> impl Iterator<Item = &mut Deadline> {
        self.iter_mut()
    }
    fn put(&mut self, deadline: Deadline) {
        match self.binary_search_by(|d| d.id.cmp(&deadline.id)) {
            Ok(i) => self[i] = deadline,
            Err(i) => self.insert(i, deadline),
        }
    }
}

/// Folds a deadline event (set, met, cleared, warned, missed) into
/// `deadlines`; any other event leaves them as they are.
fn deadline_event(deadlines: &mut impl Deadlines, event: &CaseEvent) {
    let (id, kind) = match event {
        CaseEvent::DeadlineSet(e) => {
            let id = e.id.clone().unwrap_or_else(|| {
                let n = deadlines.all().filter(|d| d.kind == e.kind).count();
                procedure::deadline_id(
                    e.kind,
                    u32::try_from(n).unwrap_or(u32::MAX).saturating_add(1),
                )
            });
            deadlines.put(Deadline {
                id,
                kind: e.kind,
                start_ms: e.start_ms,
                due_at_ms: e.due_at_ms,
                warn_at_ms: e.warn_at_ms,
                state: DeadlineState::Open,
                warned: false,
                missed: false,
            });
            return;
        }
        CaseEvent::DeadlineMet(e) => (e.id.as_deref(), e.kind),
        CaseEvent::DeadlineCleared(e) => (e.id.as_deref(), e.kind),
        CaseEvent::DeadlineWarned(e) => (e.id.as_deref(), e.kind),
        CaseEvent::DeadlineMissed(e) => (e.id.as_deref(), e.kind),
        _ => return,
    };
    // The deadline the event names: by its occurrence id, or (an event
    // written before occurrences existed) the latest occurrence of its kind.
    let named = match id {
        Some(id) => deadlines.all_mut().find(|d| d.id == id),
        None => deadlines
            .all_mut()
            .filter(|d| d.kind == kind)
            .max_by_key(|d| d.start_ms),
    };
    let Some(d) = named else { return };
    match event {
        CaseEvent::DeadlineMet(_) => d.state = DeadlineState::Met,
        CaseEvent::DeadlineCleared(_) => d.state = DeadlineState::Cleared,
        CaseEvent::DeadlineWarned(_) => d.warned = true,
        CaseEvent::DeadlineMissed(_) => d.missed = true,
        _ => {}
    }
}

/// What a referral step does to where the referral stands: the status it
/// reaches and when, and the agency that received it.
fn referral_stepped(
    status: &mut crate::referral::Status,
    status_at_ms: &mut Option<i64>,
    receiving_agency_id: &mut Option<String>,
    e: &ReferralStepRecorded,
) {
    if let Some(reached) = crate::referral::status_after(&e.step) {
        *status = reached;
        *status_at_ms = e.at_ms;
    }
    if let Some(agency) = &e.to_agency_id {
        *receiving_agency_id = Some(agency.clone());
    }
}

/// The commune a transfer asks to take the case (`None`: not a transfer).
fn transfer_unit(kind: &crate::referral::ReferralKind) -> Option<&str> {
    match kind {
        crate::referral::ReferralKind::Transfer { to_unit_id } => Some(to_unit_id),
        _ => None,
    }
}

/// The commune the referral step `step` hands the case to: a transfer's
/// (`to_unit_id`, [`transfer_unit`]) once it is accepted.
fn accepted_transfer<'a>(to_unit_id: Option<&'a str>, step: &str) -> Option<&'a str> {
    to_unit_id.filter(|_| step == "ReferralAccepted")
}

/// Whether staff of the agency that `is_theirs` recognises may read a case
/// through a referral asked of `to_agency_id`, received by
/// `receiving_agency_id`, standing at `status` since `status_at_ms`.
fn referral_lets_read(
    to_agency_id: &str,
    receiving_agency_id: Option<&str>,
    status: crate::referral::Status,
    status_at_ms: Option<i64>,
    is_theirs: impl Fn(&str) -> bool,
    now_ms: i64,
) -> bool {
    (is_theirs(to_agency_id) || receiving_agency_id.is_some_and(&is_theirs))
        && crate::referral::grants_access(status, status_at_ms, now_ms)
}

/// What casework does with an incoming intake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Open a new case (stream [`CaseOpened::case_id`], which must not exist).
    Open(CaseOpened),
    /// Attach it to an open case, expected at `version`.
    Attach {
        /// The case.
        case_id: Uuid,
        /// Its version when decided.
        version: u64,
        /// The event.
        event: IntakeAttached,
    },
    /// Already in that case (a redelivery): nothing to do.
    AlreadyIn {
        /// The case that has it.
        case_id: Uuid,
    },
}

/// Decides where an intake goes. `follow_up` is the state and version of
/// the case the report names as the one it follows up, when it names one
/// and that case exists.
#[must_use]
pub fn route_intake(
    recorded: &IntakeRecorded,
    intake_event_id: Uuid,
    follow_up: Option<(&CaseState, u64)>,
) -> Routing {
    let facts = recorded.report.facts();
    let police_case_number = recorded.report.police_case_number().map(str::to_owned);
    let clock_start =
        Some(recorded.report.clock_start_ms()).filter(|at| *at != facts.received_at_ms);
    if let Some((case, version)) = follow_up
        && Some(case.case_id) == facts.follow_up_case_id
        && case.status == CaseStatus::Open
    {
        if case.intake_ids.contains(&recorded.intake_id) {
            return Routing::AlreadyIn {
                case_id: case.case_id,
            };
        }
        return Routing::Attach {
            case_id: case.case_id,
            version,
            event: IntakeAttached {
                intake_id: recorded.intake_id,
                intake_event_id,
                channel: recorded.report.channel(),
                received_at_ms: facts.received_at_ms,
                concerns: facts.concerns.clone(),
                immediate_danger: facts.immediate_danger,
                caregiver_is_alleged_abuser: facts.caregiver_is_alleged_abuser,
                police_case_number,
                clock_start_ms: clock_start,
            },
        };
    }
    Routing::Open(CaseOpened {
        case_id: case_id_for_intake(recorded.intake_id),
        intake_id: recorded.intake_id,
        intake_event_id,
        channel: recorded.report.channel(),
        received_at_ms: facts.received_at_ms,
        incident_unit_id: facts.incident_place.unit_id.clone(),
        residence_unit_id: facts.residence_place.as_ref().map(|p| p.unit_id.clone()),
        concerns: facts.concerns.clone(),
        immediate_danger: facts.immediate_danger,
        caregiver_is_alleged_abuser: facts.caregiver_is_alleged_abuser,
        outside_child_law: recorded.outside_child_law,
        possible_duplicate_case_ids: recorded.possible_duplicate_case_ids.clone(),
        police_case_number,
        follow_up_case_not_found: facts.follow_up_case_id,
        child_age_years: Some(facts.child.age_years),
        child_sex: Some(facts.child.sex),
        setting: Some(facts.setting),
        clock_start_ms: clock_start,
        responsible_unit_id: facts
            .responsible_unit_id
            .clone()
            .filter(|unit| *unit != facts.incident_place.unit_id),
        province_id: facts.province_id.clone(),
        report_status: facts.report_status,
        consent_possible_from: recorded.consent_possible_from,
    })
}

#[cfg(test)]
mod tests;
