//! Domain → proto for cases: the case and its summary as the API shows
//! them. (Requests become commands in the API's handlers, each next to its
//! RPC.)

use baove_domain::case::{CaseState, CaseStatus, DeadlineState, Phase};
use baove_domain::time::format_date;
use baove_proto::v1 as p;
use baove_runtime::timestamp;
use uuid::Uuid;

use crate::model::Row;

pub const fn phase_to_proto(phase: Phase) -> p::CasePhase {
    match phase {
        Phase::AwaitingInitialAssessment => p::CasePhase::AwaitingInitialAssessment,
        Phase::InitiallyAssessed => p::CasePhase::InitiallyAssessed,
        Phase::DetailedAssessed => p::CasePhase::DetailedAssessed,
        Phase::PlanAwaitingDecision => p::CasePhase::PlanAwaitingDecision,
        Phase::PlanSentBack => p::CasePhase::PlanSentBack,
        Phase::PlanApproved => p::CasePhase::PlanApproved,
        Phase::Reviewed { risk_remains: true } => p::CasePhase::ReviewedRiskRemains,
        Phase::Reviewed {
            risk_remains: false,
        } => p::CasePhase::ReviewedNoRisk,
        Phase::Closed => p::CasePhase::Closed,
    }
}

/// The case as the proto message, as the API shows it; `at_ms` is the instant it is shown as of
/// (now, or the moment a replay stops at), for whether each referral still
/// grants access.
pub fn case_to_proto(state: &CaseState, version: u64, opened_at_ms: i64, at_ms: i64) -> p::Case {
    let opened = &state.opened;
    let mut deadlines: Vec<&baove_domain::case::Deadline> = state.deadlines.values().collect();
    deadlines.sort_by_key(|d| (d.state != DeadlineState::Open, d.due_at_ms));
    p::Case {
        case_id: state.case_id.to_string(),
        status: match state.status {
            CaseStatus::Open => p::CaseStatus::Open,
            CaseStatus::Closed => p::CaseStatus::Closed,
        } as i32,
        version,
        opened_at: Some(timestamp(opened_at_ms)),
        received_at: Some(timestamp(opened.received_at_ms)),
        intake_ids: state.intake_ids.iter().map(Uuid::to_string).collect(),
        incident_unit_id: opened.incident_unit_id.clone(),
        province_id: opened.province_id.clone().unwrap_or_default(),
        report_status: baove_runtime::convert::report_status_to_proto(opened.report_status),
        confirmed_abuse_types: state
            .verification
            .confirmed
            .iter()
            .map(|a| baove_runtime::convert::abuse_type_to_proto(*a))
            .collect(),
        unconfirmed_abuse_types: state
            .verification
            .not_confirmed
            .iter()
            .map(|a| baove_runtime::convert::abuse_type_to_proto(*a))
            .collect(),
        residence_unit_id: opened.residence_unit_id.clone().unwrap_or_default(),
        immediate_danger: state.immediate_danger,
        caregiver_is_alleged_abuser: opened.caregiver_is_alleged_abuser,
        outside_child_law: opened.outside_child_law,
        possible_duplicate_case_ids: opened
            .possible_duplicate_case_ids
            .iter()
            .map(Uuid::to_string)
            .collect(),
        police_case_numbers: state.police_case_numbers.clone(),
        phase: phase_to_proto(state.phase) as i32,
        officer_id: state.officer_id.clone().unwrap_or_default(),
        deadlines: deadlines
            .into_iter()
            .map(|d| p::Deadline {
                id: d.id.clone(),
                kind: baove_runtime::history::deadline_kind_to_proto(d.kind) as i32,
                start_at: Some(timestamp(d.start_ms)),
                due_at: Some(timestamp(d.due_at_ms)),
                warn_at: Some(timestamp(d.warn_at_ms)),
                state: match d.state {
                    DeadlineState::Open => p::DeadlineState::Open,
                    DeadlineState::Met => p::DeadlineState::Met,
                    DeadlineState::Cleared => p::DeadlineState::Cleared,
                } as i32,
                warned: d.warned,
                missed: d.missed,
                satisfied_by: d.kind.satisfied_by().to_owned(),
            })
            .collect(),
        plan_no: state.plan.as_ref().map_or(0, |p| p.draft.plan_no),
        plan_measures: state
            .plan
            .iter()
            .flat_map(|plan| &plan.draft.measures)
            .map(|m| p::PlanMeasure {
                id: m.id.clone(),
                description: m.description.clone(),
                responsible: m.responsible.clone(),
                due_date: format_date(m.due_date),
            })
            .collect(),
        plan_approved: state.plan.as_ref().is_some_and(|p| p.approved.is_some()),
        notes: state.notes.clone(),
        responsible_unit_id: state.responsible_unit_id.clone(),
        referrals: state
            .referrals
            .iter()
            .map(|(id, r)| p::CaseReferral {
                referral_id: id.to_string(),
                to_agency_id: r.request.to_agency_id.clone(),
                kind: Some(baove_runtime::convert::case_referral_kind(&r.request.kind)),
                last_step: baove_runtime::convert::referral_step(&r.last_step) as i32,
                status: baove_runtime::convert::referral_status(r.status) as i32,
                shares_identifying_information: r.request.sharing.identifying,
                shares_informant: r.request.sharing.informant,
                grants_access: baove_domain::referral::grants_access(
                    r.status,
                    r.status_at_ms,
                    at_ms,
                ),
            })
            .collect(),
    }
}

/// One line of ListCases.
#[must_use]
pub fn summary(row: &Row) -> p::CaseSummary {
    let s = &row.case;
    p::CaseSummary {
        case_id: s.case_id.to_string(),
        status: match s.status {
            CaseStatus::Open => p::CaseStatus::Open,
            CaseStatus::Closed => p::CaseStatus::Closed,
        } as i32,
        phase: phase_to_proto(s.phase) as i32,
        version: row.version,
        opened_at: Some(timestamp(row.opened_at_ms)),
        incident_unit_id: s.incident_unit_id.clone(),
        officer_id: s.officer_id.clone().unwrap_or_default(),
        overdue: s.overdue(),
        next_due_at: s.next_due_ms().map(timestamp),
        immediate_danger: s.immediate_danger,
    }
}
