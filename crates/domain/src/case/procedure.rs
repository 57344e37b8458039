//! The Decree 56/2017 procedure (Điều 25–32): commands, the rules that
//! refuse a step out of order, and the legal deadlines.
//!
//! | step | rule enforced here |
//! |---|---|
//! | initial assessment, Mẫu 02 (Đ26.2) | once, first, after opening or reopening |
//! | emergency measure (Đ26.3, Đ31–32) | only when Mẫu 02 found that they apply; the commune chair's decision is named; temporary separation at most 15 days unless an extension decision is named |
//! | detailed assessment, Mẫu 03 + needs meeting (Đ27) | after the initial assessment |
//! | plan, Mẫu 04 (Đ28.1) | after the detailed assessment, a plan sent back, or a review that found risk remaining |
//! | approval / sending back, Mẫu 05 (Đ28.2) | only a plan awaiting the chair |
//! | intervention (Đ29) | only against a measure of the approved plan |
//! | review, Mẫu 06 (Đ30) | after an approved plan; risk remains while any factor is high or medium |
//! | close (Đ30) | only after a review with no risk remaining |
//! | reopen | only a closed case, with a reason; the procedure starts again at Mẫu 02 |
//!
//! Deadlines: emergency 12 hours from when the information was received
//! (when immediate danger or the caregiver is the alleged abuser, or when
//! Mẫu 02 finds emergency measures apply); plan drafted within 5 working
//! days and approved within 7 working days of receipt. Children of 16 or 17
//! (general support) get no procedure deadlines.
//!
//! This file holds the commands and [`decide`]; `procedure/steps.rs` the
//! steps' stored payloads; `procedure/deadlines.rs` the deadlines, their
//! events and when they fall due.

use std::collections::BTreeSet;

use super::{CaseEvent, CaseOpened, CaseState, CaseStatus, Phase};
use crate::calendar::{Calendar, TWELVE_HOURS_MS, describe};
use crate::intake::AbuseType;
use crate::time::date_serde;
use crate::violation::Violations;

/// Most days a temporary separation lasts without an extension (Đ32).
pub const MAX_SEPARATION_DAYS: i64 = 15;
/// Working days to draft the plan (Đ28.1).
pub const PLAN_WORKING_DAYS: u32 = 5;
/// Working days to approve the plan, in total (Đ28.2; procedure pages,
/// not confirmed verbatim).
pub const APPROVAL_WORKING_DAYS: u32 = 7;

mod deadlines;
mod steps;

pub use deadlines::*;
pub use steps::*;

/// What deciding needs besides the state and the command.
pub struct Context<'a> {
    /// Now, Unix ms (injected).
    pub now_ms: i64,
    /// Working days.
    pub calendar: &'a Calendar,
    /// Share of a deadline's time after which the warning is raised (0–1).
    pub warn_share: f64,
}

impl Context<'_> {
    /// The next occurrence of a `kind` deadline on `state` (the first on a
    /// case being opened), its clock starting at `start_ms`.
    fn deadline(
        &self,
        state: Option<&CaseState>,
        kind: DeadlineKind,
        start_ms: i64,
    ) -> DeadlineSet {
        let n = state.map_or(0, |s| {
            s.deadlines.values().filter(|d| d.kind == kind).count()
        });
        let due_at_ms = match kind {
            DeadlineKind::Emergency => start_ms + TWELVE_HOURS_MS,
            DeadlineKind::PlanDrafted => self
                .calendar
                .working_days_after(start_ms, PLAN_WORKING_DAYS),
            DeadlineKind::PlanApproved => self
                .calendar
                .working_days_after(start_ms, APPROVAL_WORKING_DAYS),
        };
        let share = self.warn_share.clamp(0.0, 1.0);
        // Deadlines span hours to days: far inside f64's exact range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let warn_at_ms = start_ms + ((due_at_ms - start_ms) as f64 * share) as i64;
        DeadlineSet {
            id: Some(deadline_id(
                kind,
                u32::try_from(n).unwrap_or(u32::MAX).saturating_add(1),
            )),
            kind,
            start_ms,
            due_at_ms,
            warn_at_ms,
        }
    }
}

/// What an officer (or the scheduler) asks of a case.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Command {
    /// Assign or reassign the responsible officer.
    Assign { officer_id: String },
    /// Record Mẫu 02.
    RecordInitialAssessment {
        ratings: Vec<RiskRating>,
        emergency_measures_apply: bool,
        summary: String,
        verification: Verification,
    },
    /// Record an emergency measure.
    RecordEmergencyMeasure {
        kind: MeasureKind,
        description: String,
        decision_ref: String,
        separation: Option<Separation>,
        grounds: MeasureGrounds,
    },
    /// Record Mẫu 03 and the needs meeting.
    RecordDetailedAssessment {
        summary: String,
        needs: String,
        meeting_participants: Vec<String>,
        minutes_ref: String,
        verification: Verification,
    },
    /// Draft a plan (Mẫu 04).
    DraftPlan {
        measures: Vec<PlanMeasure>,
        by: String,
        keep_despite_residence: Option<String>,
    },
    /// The chair approves the plan (Mẫu 05).
    ApprovePlan { decision_ref: String, by: String },
    /// The chair sends the plan back.
    SendBackPlan { reason: String },
    /// Record an intervention against a plan measure.
    RecordIntervention {
        measure_id: String,
        description: String,
        date: ::time::Date,
    },
    /// Record a review (Mẫu 06).
    RecordReview {
        ratings: Vec<RiskRating>,
        summary: String,
    },
    /// Close the case, on `grounds`, by the chair's decision.
    Close {
        reason: String,
        grounds: CloseGrounds,
        decision_ref: String,
    },
    /// Reopen a closed case.
    Reopen { reason: String },
    /// Add a note.
    AddNote { text: String },
    /// Request a referral to another agency (or a transfer to another
    /// commune); `referral_id` is chosen by the caller.
    RequestReferral {
        referral_id: uuid::Uuid,
        request: crate::referral::ReferralRequest,
    },
}

pub use crate::event::Refusal;

fn not_allowed(rule: &str) -> Refusal {
    Refusal::NotAllowed(rule.to_owned())
}

fn required(v: &mut Violations, field: &str, value: &str) {
    if value.trim().is_empty() {
        v.add(field, "is required");
    } else if value.chars().count() > 4000 {
        v.add(field, "must be at most 4000 characters");
    }
}

fn ratings_valid(v: &mut Violations, ratings: &[RiskRating]) {
    if ratings.is_empty() {
        v.add("ratings", "rate at least one risk factor");
    }
    for (i, r) in ratings.iter().enumerate() {
        required(v, &format!("ratings[{i}].factor"), &r.factor);
    }
}

/// The events that open a case: [`CaseOpened`] and the deadlines it runs
/// against (none for a child of 16 or 17: general support).
#[must_use]
pub fn opening_events(opened: CaseOpened, ctx: &Context<'_>) -> Vec<CaseEvent> {
    let received = opened.received_at_ms;
    let mut events = Vec::new();
    // The 12-hour clock applies whatever the child's age (16 and 17 get
    // general support without the plan deadlines, not less protection).
    if opened.immediate_danger || opened.caregiver_is_alleged_abuser {
        events.push(CaseEvent::DeadlineSet(ctx.deadline(
            None,
            DeadlineKind::Emergency,
            opened.clock_start_ms.unwrap_or(received),
        )));
    }
    if !opened.outside_child_law {
        events.push(CaseEvent::DeadlineSet(ctx.deadline(
            None,
            DeadlineKind::PlanDrafted,
            received,
        )));
        events.push(CaseEvent::DeadlineSet(ctx.deadline(
            None,
            DeadlineKind::PlanApproved,
            received,
        )));
    }
    events.insert(0, CaseEvent::Opened(opened));
    events
}

/// Meets every open occurrence of `kind`: an emergency measure answers
/// every report of danger still waiting for one.
fn meet(state: &CaseState, kind: DeadlineKind, events: &mut Vec<CaseEvent>) {
    for d in state
        .deadlines
        .values()
        .filter(|d| d.kind == kind && d.state == DeadlineState::Open)
    {
        events.push(CaseEvent::DeadlineMet(DeadlineMet {
            id: Some(d.id.clone()),
            kind,
            late: d.missed,
        }));
    }
}

/// Whether `state` has an open occurrence of `kind`.
fn open_deadline(state: &CaseState, kind: DeadlineKind) -> bool {
    state
        .deadlines
        .values()
        .any(|d| d.kind == kind && d.state == DeadlineState::Open)
}

/// The events of a follow-up report attached to an open case: the
/// attachment and, when it reports immediate danger or the caregiver as
/// the alleged abuser, a new 12-hour clock from its own receipt (Đ26.3,
/// Đ31.1): every new piece of information about danger gets its clock.
#[must_use]
pub fn attaching_events(
    state: &CaseState,
    attached: super::IntakeAttached,
    ctx: &Context<'_>,
) -> Vec<CaseEvent> {
    let clock = attached.immediate_danger || attached.caregiver_is_alleged_abuser;
    let received = attached.clock_start_ms.unwrap_or(attached.received_at_ms);
    let mut events = vec![CaseEvent::Attached(attached)];
    if clock {
        events.push(CaseEvent::DeadlineSet(ctx.deadline(
            Some(state),
            DeadlineKind::Emergency,
            received,
        )));
    }
    events
}

/// Decides a command against the case's state: the events to append, or why
/// not.
///
/// # Errors
/// [`Refusal::Invalid`] for bad input, [`Refusal::NotAllowed`] naming the
/// rule for a step the procedure does not allow now.
pub fn decide(
    state: &CaseState,
    command: Command,
    ctx: &Context<'_>,
) -> Result<Vec<CaseEvent>, Refusal> {
    let closed = state.status == CaseStatus::Closed;
    let mut v = Violations::default();
    let mut events = Vec::new();
    match command {
        Command::RequestReferral {
            referral_id,
            request,
        } => {
            if closed {
                return Err(not_allowed(
                    "a closed case must be reopened before a referral is requested",
                ));
            }
            // Without a known age, the stricter rule applies (7 or older);
            // a child who may have reached the consent age since the
            // report is asked too (her age on the day of the referral).
            let today = crate::time::vietnam_date(ctx.now_ms);
            let age = match state.opened.child_age_years {
                _ if state
                    .opened
                    .consent_possible_from
                    .is_some_and(|from| from <= today) =>
                {
                    crate::referral::CHILD_CONSENT_AGE
                }
                Some(age) => age,
                None => crate::referral::CHILD_CONSENT_AGE,
            };
            crate::referral::check_request(&request, age).map_err(|refusal| match refusal {
                crate::referral::RequestRefusal::Invalid(v) => Refusal::Invalid(v),
                crate::referral::RequestRefusal::NoConsent(rule) => Refusal::NotAllowed(rule),
            })?;
            events.push(CaseEvent::ReferralRequested(super::ReferralRequested {
                referral_id,
                from_unit_id: state.responsible_unit_id.clone(),
                request,
            }));
        }
        Command::AddNote { text } => {
            required(&mut v, "text", &text);
            v.into_result(())?;
            events.push(CaseEvent::NoteAdded(NoteAdded { text }));
        }
        Command::Assign { officer_id } => {
            required(&mut v, "officer_id", &officer_id);
            v.into_result(())?;
            if closed {
                return Err(not_allowed(
                    "a closed case must be reopened before it is assigned",
                ));
            }
            if state.officer_id.as_deref() == Some(officer_id.as_str()) {
                return Err(not_allowed("the case is already assigned to this officer"));
            }
            events.push(CaseEvent::OfficerAssigned(OfficerAssigned {
                officer_id,
                previous_officer_id: state.officer_id.clone(),
            }));
        }
        Command::RecordInitialAssessment {
            ratings,
            emergency_measures_apply,
            summary,
            verification,
        } => {
            ratings_valid(&mut v, &ratings);
            verification.check(&mut v);
            v.into_result(())?;
            // The first Mẫu 02 comes first; a reassessment of the risk is
            // allowed at any later point while the case is open.
            let reassessment = state.phase != Phase::AwaitingInitialAssessment;
            if closed {
                return Err(not_allowed(
                    "a closed case must be reopened before its risk is assessed again",
                ));
            }
            events.push(CaseEvent::InitialAssessmentRecorded(
                InitialAssessmentRecorded {
                    ratings,
                    emergency_measures_apply,
                    summary,
                    reassessment,
                    verification,
                },
            ));
            let emergency_clock = open_deadline(state, DeadlineKind::Emergency);
            match (emergency_measures_apply, emergency_clock) {
                (false, true) => meet(state, DeadlineKind::Emergency, &mut events),
                // The first assessment finding danger no report flagged:
                // 12 hours from the receipt; a reassessment finding new
                // danger: 12 hours from now.
                (true, false) => {
                    let start = if reassessment {
                        ctx.now_ms
                    } else {
                        state.opened.received_at_ms
                    };
                    events.push(CaseEvent::DeadlineSet(ctx.deadline(
                        Some(state),
                        DeadlineKind::Emergency,
                        start,
                    )));
                }
                _ => {}
            }
        }
        Command::RecordEmergencyMeasure {
            kind,
            description,
            decision_ref,
            separation,
            grounds,
        } => {
            required(&mut v, "description", &description);
            required(&mut v, "decision_ref", &decision_ref);
            match (&kind, &separation) {
                (MeasureKind::TemporarySeparation, None) => {
                    v.add(
                        "separation",
                        "a temporary separation needs its start and end dates",
                    );
                }
                (MeasureKind::TemporarySeparation, Some(s)) => {
                    let days = (s.end_date - s.start_date).whole_days() + 1;
                    if s.end_date < s.start_date {
                        v.add("separation.end_date", "must not be before start_date");
                    } else if days > MAX_SEPARATION_DAYS
                        && s.extension_decision_ref
                            .as_deref()
                            .is_none_or(|r| r.trim().is_empty())
                    {
                        v.add(
                            "separation.end_date",
                            format!(
                                "a temporary separation lasts at most {MAX_SEPARATION_DAYS} days (Đ32) unless extension_decision_ref names the competent body's decision; this is {days} days"
                            ),
                        );
                    }
                }
                (_, Some(_)) => v.add("separation", "only for a temporary separation"),
                (_, None) => {}
            }
            v.into_result(())?;
            if closed {
                return Err(not_allowed(
                    "a closed case must be reopened before measures are recorded",
                ));
            }
            match grounds {
                MeasureGrounds::AssessedDanger => {
                    if state.emergency_measures_apply != Some(true) {
                        return Err(not_allowed(
                            "emergency measures on assessed danger need an assessment (Mẫu 02) that found they apply; reassess the risk, or give the Article 32 ground (the parents refuse the plan, abuse by the parents may continue)",
                        ));
                    }
                }
                // Đ32: whatever the first Mẫu 02 found, once the risk was
                // assessed.
                MeasureGrounds::ParentsRefusePlan | MeasureGrounds::AbuseMayContinue => {
                    if state.emergency_measures_apply.is_none() {
                        return Err(not_allowed(
                            "emergency measures follow the initial assessment (Mẫu 02)",
                        ));
                    }
                }
            }
            events.push(CaseEvent::EmergencyMeasureRecorded(
                EmergencyMeasureRecorded {
                    kind,
                    description,
                    decision_ref,
                    separation,
                    grounds: Some(grounds),
                },
            ));
            meet(state, DeadlineKind::Emergency, &mut events);
        }
        Command::RecordDetailedAssessment {
            summary,
            needs,
            meeting_participants,
            minutes_ref,
            verification,
        } => {
            required(&mut v, "summary", &summary);
            verification.check(&mut v);
            required(&mut v, "minutes_ref", &minutes_ref);
            if meeting_participants.iter().all(|p| p.trim().is_empty()) {
                v.add(
                    "meeting_participants",
                    "name who took part in the needs meeting",
                );
            }
            v.into_result(())?;
            if state.phase != Phase::InitiallyAssessed {
                return Err(not_allowed(
                    "the detailed assessment (Mẫu 03) follows the initial assessment (Mẫu 02), once",
                ));
            }
            events.push(CaseEvent::DetailedAssessmentRecorded(
                DetailedAssessmentRecorded {
                    summary,
                    needs,
                    meeting_participants,
                    minutes_ref,
                    verification,
                },
            ));
        }
        Command::DraftPlan {
            measures,
            by,
            keep_despite_residence,
        } => {
            if measures.is_empty() {
                v.add("measures", "a plan needs at least one measure");
            }
            let mut ids = BTreeSet::new();
            for (i, m) in measures.iter().enumerate() {
                required(&mut v, &format!("measures[{i}].id"), &m.id);
                required(
                    &mut v,
                    &format!("measures[{i}].description"),
                    &m.description,
                );
                required(
                    &mut v,
                    &format!("measures[{i}].responsible"),
                    &m.responsible,
                );
                if !ids.insert(m.id.as_str()) {
                    v.add(format!("measures[{i}].id"), "is used twice in this plan");
                }
            }
            v.into_result(())?;
            let allowed = matches!(
                state.phase,
                Phase::DetailedAssessed
                    | Phase::PlanSentBack
                    | Phase::Reviewed { risk_remains: true }
            );
            if !allowed {
                return Err(not_allowed(
                    "a plan (Mẫu 04) is drafted after the detailed assessment (Mẫu 03), after the chair sends a plan back, or after a review that found risk remaining",
                ));
            }
            // The plan belongs to the commune where the child lives (Law
            // on Children Đ52.2): transfer the case there first, or record
            // the decision to keep it here.
            let keep = keep_despite_residence.filter(|k| !k.trim().is_empty());
            if let Some(residence) = &state.opened.residence_unit_id
                && *residence != state.responsible_unit_id
                && keep.is_none()
            {
                return Err(not_allowed(&format!(
                    "the plan belongs to the commune where the child lives ({residence}, Law on Children Đ52.2): transfer the case there (RequestReferral with transfer_to_unit_id), or give keep_despite_residence_ref, the decision to keep it here"
                )));
            }
            let plan_no = state.plan.as_ref().map_or(1, |p| p.draft.plan_no + 1);
            events.push(CaseEvent::PlanDrafted(PlanDrafted {
                plan_no,
                measures,
                drafted_by: Some(by).filter(|b| !b.is_empty()),
                kept_despite_residence: keep,
            }));
            meet(state, DeadlineKind::PlanDrafted, &mut events);
        }
        Command::ApprovePlan { decision_ref, by } => {
            required(&mut v, "decision_ref", &decision_ref);
            v.into_result(())?;
            let Some(plan) = state
                .plan
                .as_ref()
                .filter(|_| state.phase == Phase::PlanAwaitingDecision)
            else {
                return Err(not_allowed(
                    "only a drafted plan awaiting the commune chair can be approved",
                ));
            };
            if plan.draft.drafted_by.as_deref() == Some(by.as_str()) && !by.is_empty() {
                return Err(not_allowed(
                    "the plan's approval (Mẫu 05) is the commune chair's decision: the officer who drafted it cannot approve it",
                ));
            }
            events.push(CaseEvent::PlanApproved(PlanApproved {
                plan_no: plan.draft.plan_no,
                decision_ref,
            }));
            meet(state, DeadlineKind::PlanApproved, &mut events);
        }
        Command::SendBackPlan { reason } => {
            required(&mut v, "reason", &reason);
            v.into_result(())?;
            let Some(plan) = state
                .plan
                .as_ref()
                .filter(|_| state.phase == Phase::PlanAwaitingDecision)
            else {
                return Err(not_allowed(
                    "only a drafted plan awaiting the commune chair can be sent back",
                ));
            };
            events.push(CaseEvent::PlanSentBack(PlanSentBack {
                plan_no: plan.draft.plan_no,
                reason,
            }));
        }
        Command::RecordIntervention {
            measure_id,
            description,
            date,
        } => {
            required(&mut v, "measure_id", &measure_id);
            required(&mut v, "description", &description);
            v.into_result(())?;
            let Some(plan) = state
                .plan
                .as_ref()
                .filter(|_| state.phase == Phase::PlanApproved)
            else {
                return Err(not_allowed(
                    "the plan must be approved before interventions are recorded",
                ));
            };
            if !plan.draft.measures.iter().any(|m| m.id == measure_id) {
                return Err(Refusal::Invalid(Violations::one(
                    "measure_id",
                    format!("plan {} has no measure {measure_id:?}", plan.draft.plan_no),
                )));
            }
            events.push(CaseEvent::InterventionRecorded(InterventionRecorded {
                plan_no: plan.draft.plan_no,
                measure_id,
                description,
                date,
            }));
        }
        Command::RecordReview { ratings, summary } => {
            ratings_valid(&mut v, &ratings);
            v.into_result(())?;
            if state.phase != Phase::PlanApproved {
                return Err(not_allowed("a review (Mẫu 06) follows an approved plan"));
            }
            let risk_remains = ratings.iter().any(|r| r.level != RiskLevel::Low);
            events.push(CaseEvent::ReviewRecorded(ReviewRecorded {
                ratings,
                risk_remains,
                summary,
            }));
            // Risk left (Đ30.1.c): a new plan, with its own 5 and 7
            // working days from the review.
            if risk_remains && !state.opened.outside_child_law {
                events.push(CaseEvent::DeadlineSet(ctx.deadline(
                    Some(state),
                    DeadlineKind::PlanDrafted,
                    ctx.now_ms,
                )));
                events.push(CaseEvent::DeadlineSet(ctx.deadline(
                    Some(state),
                    DeadlineKind::PlanApproved,
                    ctx.now_ms,
                )));
            }
        }
        Command::Close {
            reason,
            grounds,
            decision_ref,
        } => {
            required(&mut v, "reason", &reason);
            required(&mut v, "decision_ref", &decision_ref);
            v.into_result(())?;
            match grounds {
                CloseGrounds::NoRiskAfterReview => {
                    if state.phase
                        != (Phase::Reviewed {
                            risk_remains: false,
                        })
                    {
                        return Err(not_allowed(
                            "a case closes for no risk remaining only after a review (Mẫu 06) that found none; otherwise draft a new plan",
                        ));
                    }
                }
                CloseGrounds::Unfounded | CloseGrounds::NoSupportNeeded => {
                    if !matches!(
                        state.phase,
                        Phase::InitiallyAssessed | Phase::DetailedAssessed
                    ) {
                        return Err(not_allowed(
                            "a report is closed as unfounded or needing no support after the initial (Mẫu 02) or detailed (Mẫu 03) assessment and before a plan",
                        ));
                    }
                    if state.emergency_measures_apply == Some(true) {
                        return Err(not_allowed(
                            "the initial assessment (Mẫu 02) found emergency measures apply: the report is not unfounded and the child needs support",
                        ));
                    }
                }
            }
            events.push(CaseEvent::Closed(CaseClosed {
                reason,
                grounds: Some(grounds),
                decision_ref: Some(decision_ref),
            }));
            for d in state
                .deadlines
                .values()
                .filter(|d| d.state == DeadlineState::Open)
            {
                events.push(CaseEvent::DeadlineCleared(DeadlineCleared {
                    id: Some(d.id.clone()),
                    kind: d.kind,
                    reason: "case closed".into(),
                }));
            }
        }
        Command::Reopen { reason } => {
            required(&mut v, "reason", &reason);
            v.into_result(())?;
            if !closed {
                return Err(not_allowed("only a closed case can be reopened"));
            }
            events.push(CaseEvent::Reopened(CaseReopened { reason }));
            // A reopening is new information: its own 12-hour clock, from
            // now (Đ26.3), not from the first report's receipt.
            if !state.opened.outside_child_law {
                events.push(CaseEvent::DeadlineSet(ctx.deadline(
                    Some(state),
                    DeadlineKind::Emergency,
                    ctx.now_ms,
                )));
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
pub(crate) mod tests;

/// The case event that records a referral step, or `None` when the case
/// did not request that referral. (Redeliveries are absorbed by the command
/// id the caller appends with: the referral event's id.)
#[must_use]
pub fn record_referral_step(
    state: &CaseState,
    step: super::ReferralStepRecorded,
) -> Option<CaseEvent> {
    state
        .referrals
        .contains_key(&step.referral_id)
        .then_some(CaseEvent::ReferralStepRecorded(step))
}
