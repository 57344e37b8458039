//! A case in brief: what a list of cases, the deadline scheduler and an
//! access check need, folded from the same events as [`CaseState`] but
//! without the reports, assessments, plans, measures and notes.
//!
//! A read model that holds every case of a province in memory keeps this,
//! not the state: at 100,000 cases casework's peak heap was 415 MiB with
//! the whole states and 285 MiB with summaries. A reader that needs the
//! whole case folds its log ([`super::apply`]).
//!
//! [`CaseSummary::apply`] and [`super::apply`] share the rules that move
//! the status and phase, the deadlines and the referrals, so the two agree:
//! for any events, folding the summary equals summarizing the folded state
//! ([`CaseSummary::of`]); the tests check it on every procedure test's
//! events and on random event sequences.

use uuid::Uuid;

use super::{
    CaseEvent, CaseReferral, CaseState, CaseStatus, Deadline, DeadlineState, Phase,
    accepted_transfer, deadline_event, progress, referral_lets_read, referral_stepped,
    transfer_unit,
};
use crate::referral::Status;

/// A case in brief.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseSummary {
    /// The case id.
    pub case_id: Uuid,
    /// Status.
    pub status: CaseStatus,
    /// Where it is in the procedure.
    pub phase: Phase,
    /// Where it happened.
    pub incident_unit_id: String,
    /// The commune responsible now.
    pub responsible_unit_id: String,
    /// The responsible officer.
    pub officer_id: Option<String>,
    /// Immediate danger in any report.
    pub immediate_danger: bool,
    /// Every deadline, in id order (as [`CaseState::deadlines`]).
    pub deadlines: Vec<Deadline>,
    /// Every referral, in id order (as [`CaseState::referrals`]).
    pub referrals: Vec<ReferralAccess>,
}

/// What a referral means for who may read the case, and for the
/// responsible commune when it is a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralAccess {
    /// The referral.
    pub referral_id: Uuid,
    /// The agency asked.
    pub to_agency_id: String,
    /// The agency that received it, once offered.
    pub receiving_agency_id: Option<String>,
    /// Where it stands.
    pub status: Status,
    /// When it reached that status, if known.
    pub status_at_ms: Option<i64>,
    /// For a transfer: the commune it hands the case to once accepted.
    pub transfer_to_unit_id: Option<String>,
}

impl ReferralAccess {
    fn of(referral_id: Uuid, referral: &CaseReferral) -> Self {
        Self {
            referral_id,
            to_agency_id: referral.request.to_agency_id.clone(),
            receiving_agency_id: referral.receiving_agency_id.clone(),
            status: referral.status,
            status_at_ms: referral.status_at_ms,
            transfer_to_unit_id: transfer_unit(&referral.request.kind).map(str::to_owned),
        }
    }

    /// As [`CaseReferral::lets_read_as`].
    #[must_use]
    pub fn lets_read_as(&self, is_theirs: impl Fn(&str) -> bool, now_ms: i64) -> bool {
        referral_lets_read(
            &self.to_agency_id,
            self.receiving_agency_id.as_deref(),
            self.status,
            self.status_at_ms,
            is_theirs,
            now_ms,
        )
    }
}

impl CaseSummary {
    /// The summary of a folded state.
    #[must_use]
    pub fn of(state: &CaseState) -> Self {
        Self {
            case_id: state.case_id,
            status: state.status,
            phase: state.phase,
            incident_unit_id: state.opened.incident_unit_id.clone(),
            responsible_unit_id: state.responsible_unit_id.clone(),
            officer_id: state.officer_id.clone(),
            immediate_danger: state.immediate_danger,
            deadlines: state.deadlines.values().cloned().collect(),
            referrals: state
                .referrals
                .iter()
                .map(|(id, r)| ReferralAccess::of(*id, r))
                .collect(),
        }
    }

    /// Folds one event, as [`super::apply`] folds it into the state.
    #[must_use]
    pub fn apply(summary: Option<Self>, event: &CaseEvent) -> Option<Self> {
        let mut summary = match (summary, event) {
            (None, CaseEvent::Opened(_)) => {
                return super::apply(None, event).map(|state| Self::of(&state));
            }
            (None, _) => return None,
            (Some(summary), _) => summary,
        };
        progress(&mut summary.status, &mut summary.phase, event);
        match event {
            CaseEvent::Attached(e) => summary.immediate_danger |= e.immediate_danger,
            CaseEvent::OfficerAssigned(e) => summary.officer_id = Some(e.officer_id.clone()),
            CaseEvent::ReferralRequested(e) => {
                let access = ReferralAccess {
                    referral_id: e.referral_id,
                    to_agency_id: e.request.to_agency_id.clone(),
                    receiving_agency_id: None,
                    status: Status::Offered,
                    status_at_ms: None,
                    transfer_to_unit_id: transfer_unit(&e.request.kind).map(str::to_owned),
                };
                match summary
                    .referrals
                    .binary_search_by_key(&e.referral_id, |r| r.referral_id)
                {
                    Ok(i) => summary.referrals[i] = access,
                    Err(i) => summary.referrals.insert(i, access),
                }
            }
            CaseEvent::ReferralStepRecorded(e) => {
                if let Ok(i) = summary
                    .referrals
                    .binary_search_by_key(&e.referral_id, |r| r.referral_id)
                {
                    let r = &mut summary.referrals[i];
                    referral_stepped(
                        &mut r.status,
                        &mut r.status_at_ms,
                        &mut r.receiving_agency_id,
                        e,
                    );
                    if let Some(unit) = accepted_transfer(r.transfer_to_unit_id.as_deref(), &e.step)
                    {
                        summary.responsible_unit_id = unit.to_owned();
                    }
                }
            }
            // Named so that a new event must be placed here or above.
            CaseEvent::Opened(_)
            | CaseEvent::InitialAssessmentRecorded(_)
            | CaseEvent::EmergencyMeasureRecorded(_)
            | CaseEvent::DetailedAssessmentRecorded(_)
            | CaseEvent::PlanDrafted(_)
            | CaseEvent::PlanApproved(_)
            | CaseEvent::PlanSentBack(_)
            | CaseEvent::InterventionRecorded(_)
            | CaseEvent::ReviewRecorded(_)
            | CaseEvent::Closed(_)
            | CaseEvent::Reopened(_)
            | CaseEvent::NoteAdded(_)
            | CaseEvent::DeadlineSet(_)
            | CaseEvent::DeadlineMet(_)
            | CaseEvent::DeadlineWarned(_)
            | CaseEvent::DeadlineMissed(_)
            | CaseEvent::DeadlineCleared(_)
            | CaseEvent::PrivateTextErased(_) => {}
        }
        deadline_event(&mut summary.deadlines, event);
        // A read model keeps one summary per case: a list grown by one
        // item keeps no room for more (a `Vec` grows to 4 at its first
        // push; at 100,000 cases the deadlines' spare room was 22 MiB of
        // casework's heap).
        summary.deadlines.shrink_to_fit();
        summary.referrals.shrink_to_fit();
        Some(summary)
    }

    /// A deadline was missed and is not met yet, on an open case.
    #[must_use]
    pub fn overdue(&self) -> bool {
        self.status == CaseStatus::Open
            && self
                .deadlines
                .iter()
                .any(|d| d.missed && d.state == DeadlineState::Open)
    }

    /// The soonest open deadline.
    #[must_use]
    pub fn next_due_ms(&self) -> Option<i64> {
        self.deadlines
            .iter()
            .filter(|d| d.state == DeadlineState::Open)
            .map(|d| d.due_at_ms)
            .min()
    }

    /// As [`super::procedure::next_deadline_check`] of the state.
    #[must_use]
    pub fn next_deadline_check(&self) -> Option<i64> {
        super::procedure::next_check(self.status, self.deadlines.iter())
    }
}

#[cfg(test)]
pub(crate) mod tests;
