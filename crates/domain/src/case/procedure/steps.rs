//! The payloads of the procedure's steps, as stored in the case log.

use serde::{Deserialize, Serialize};

use super::*;

/// A risk factor's rating on Mẫu 02 and Mẫu 06.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Cao.
    High,
    /// Trung bình.
    Medium,
    /// Thấp.
    Low,
}

/// One rated risk factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskRating {
    /// The factor, in words.
    pub factor: String,
    /// Its rating.
    pub level: RiskLevel,
}

/// Kinds of emergency measure (Đ31).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureKind {
    /// Medical care.
    MedicalCare,
    /// A safe place to stay.
    SafeShelter,
    /// Temporary separation from the abuser (Đ32, Mẫu 07).
    TemporarySeparation,
    /// Another measure.
    Other,
}

/// The dates of a temporary separation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Separation {
    /// First day.
    #[serde(with = "date_serde")]
    pub start_date: ::time::Date,
    /// Last day.
    #[serde(with = "date_serde")]
    pub end_date: ::time::Date,
    /// The competent body's decision extending it beyond 15 days, if any.
    pub extension_decision_ref: Option<String>,
}

/// One measure of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMeasure {
    /// Its id within the plan (interventions name it).
    pub id: String,
    /// What is to be done.
    pub description: String,
    /// The agency or person responsible.
    pub responsible: String,
    /// By when.
    #[serde(with = "date_serde")]
    pub due_date: ::time::Date,
}

/// The officer responsible for the case changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficerAssigned {
    /// The officer now responsible.
    pub officer_id: String,
    /// The one before, if any.
    pub previous_officer_id: Option<String>,
}

/// Mẫu 02 was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialAssessmentRecorded {
    /// Rated risk factors.
    pub ratings: Vec<RiskRating>,
    /// Emergency measures apply (Đ26.2).
    pub emergency_measures_apply: bool,
    /// Summary.
    pub summary: String,
    /// A reassessment of the risk (a new Mẫu 02) later in the procedure:
    /// it does not move the case back. Absent in events written before
    /// reassessments existed: the first assessment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reassessment: bool,
    /// What the verification found about the forms of abuse. Absent in
    /// events written before it was recorded, and when nothing was
    /// verified yet.
    #[serde(default, skip_serializing_if = "Verification::is_empty")]
    pub verification: Verification,
}

/// What verification (Mẫu 02, Mẫu 03) found about the forms of abuse:
/// indicator 0101 counts confirmed abuse only (Thông tư 13); a form found
/// untrue leaves the count. A later assessment's finding on a form replaces
/// an earlier one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Forms of abuse confirmed.
    #[serde(default)]
    pub confirmed: Vec<AbuseType>,
    /// Forms of abuse reported and found untrue.
    #[serde(default)]
    pub not_confirmed: Vec<AbuseType>,
}

impl Verification {
    /// Nothing found either way.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.confirmed.is_empty() && self.not_confirmed.is_empty()
    }

    /// The findings over `earlier`: each form as this verification found
    /// it, the others as before.
    #[must_use]
    pub fn over(&self, earlier: &Self) -> Self {
        let mut confirmed: Vec<AbuseType> = earlier
            .confirmed
            .iter()
            .copied()
            .filter(|a| !self.not_confirmed.contains(a))
            .collect();
        let mut not_confirmed: Vec<AbuseType> = earlier
            .not_confirmed
            .iter()
            .copied()
            .filter(|a| !self.confirmed.contains(a))
            .collect();
        for a in &self.confirmed {
            if !confirmed.contains(a) {
                confirmed.push(*a);
            }
        }
        for a in &self.not_confirmed {
            if !not_confirmed.contains(a) {
                not_confirmed.push(*a);
            }
        }
        Self {
            confirmed,
            not_confirmed,
        }
    }

    pub(in crate::case) fn check(&self, v: &mut Violations) {
        for a in &self.not_confirmed {
            if self.confirmed.contains(a) {
                v.add(
                    "unconfirmed_abuse_types",
                    format!("{a:?} is also confirmed: a form is confirmed or not, not both"),
                );
            }
        }
    }
}

/// On what ground an emergency measure is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureGrounds {
    /// The (latest) assessment (Mẫu 02) found emergency measures apply.
    AssessedDanger,
    /// The parents or caregivers refuse the support plan (Đ32).
    ParentsRefusePlan,
    /// Abuse by the parents or caregivers may continue (Đ32).
    AbuseMayContinue,
}

/// An emergency measure was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyMeasureRecorded {
    /// Which measure.
    pub kind: MeasureKind,
    /// What was done.
    pub description: String,
    /// The commune chair's (or competent body's) decision.
    pub decision_ref: String,
    /// For a temporary separation: its dates.
    pub separation: Option<Separation>,
    /// On what ground. Absent in events written before it existed: the
    /// assessment found danger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grounds: Option<MeasureGrounds>,
}

/// Mẫu 03 and the needs meeting were recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailedAssessmentRecorded {
    /// Summary of the assessment.
    pub summary: String,
    /// The child's needs.
    pub needs: String,
    /// Who took part in the meeting.
    pub meeting_participants: Vec<String>,
    /// Reference of the meeting minutes (biên bản).
    pub minutes_ref: String,
    /// What the verification found about the forms of abuse (see
    /// [`InitialAssessmentRecorded::verification`]).
    #[serde(default, skip_serializing_if = "Verification::is_empty")]
    pub verification: Verification,
}

/// A plan (Mẫu 04) was drafted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDrafted {
    /// 1 for the first plan, then 2, 3...
    pub plan_no: u32,
    /// Its measures.
    pub measures: Vec<PlanMeasure>,
    /// Who drafted it (the officer), so that an inspector sees the chair
    /// who approved it was someone else. Absent in events written before
    /// it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafted_by: Option<String>,
    /// The decision to keep the plan in the commune where it happened
    /// although the child lives in another (Law on Children Đ52.2 gives the
    /// plan to the child's commune), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_despite_residence: Option<String>,
}

/// The commune chair approved the plan (Mẫu 05).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanApproved {
    /// Which plan.
    pub plan_no: u32,
    /// The decision.
    pub decision_ref: String,
}

/// The commune chair sent the plan back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSentBack {
    /// Which plan.
    pub plan_no: u32,
    /// Why.
    pub reason: String,
}

/// An intervention against a plan measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterventionRecorded {
    /// Which plan.
    pub plan_no: u32,
    /// Which measure.
    pub measure_id: String,
    /// What was done.
    pub description: String,
    /// When.
    #[serde(with = "date_serde")]
    pub date: ::time::Date,
}

/// A review (Mẫu 06) was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRecorded {
    /// Risk factors rated again.
    pub ratings: Vec<RiskRating>,
    /// Some factor is still high or medium.
    pub risk_remains: bool,
    /// Summary.
    pub summary: String,
}

/// On what ground a case is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseGrounds {
    /// A review (Mẫu 06) found no risk remaining; the commune chair ends
    /// the plan (Đ30.1.b).
    NoRiskAfterReview,
    /// Checking the report (Mẫu 02 or Mẫu 03) showed it unfounded.
    Unfounded,
    /// The assessment (Mẫu 02 or Mẫu 03) found the child needs no support.
    NoSupportNeeded,
}

/// The case was closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseClosed {
    /// Why.
    pub reason: String,
    /// On what ground. Absent in events written before it existed: after a
    /// review that found no risk (the only way then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grounds: Option<CloseGrounds>,
    /// The commune chair's decision (number and date). Absent in events
    /// written before it was required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_ref: Option<String>,
}

/// The case was reopened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseReopened {
    /// Why.
    pub reason: String,
}

/// A note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteAdded {
    /// The note.
    pub text: String,
}
