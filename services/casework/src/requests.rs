//! A step's request as the procedure's [`Command`]: each field read by the
//! rules the proto comments state, every bad field named at once. Pure: no
//! log, no clock of its own (what a request needs besides itself comes in
//! [`Context`]).

use baove_domain::Violations;
use baove_domain::case::procedure::{self as proc, Command, MeasureKind, RiskLevel};
use baove_domain::reference::Directory;
use baove_domain::referral::{
    LegalBasis, ReferralKind, ReferralRequest, Service, Sharing, Urgency,
};
use baove_domain::time::parse_date;
use baove_proto::v1 as p;
use uuid::Uuid;

/// What a request needs besides itself to become a command.
pub struct Context<'a> {
    /// Who sends it (who acts is the token's subject).
    pub user_id: &'a str,
    /// The directory, for a transfer's commune and the receiving agency.
    pub directory: &'a Directory,
    /// Today in Vietnam.
    pub today: ::time::Date,
}

/// A step's request: its header, and the command it asks for or every
/// bad field.
pub trait StepRequest {
    /// The header and the command.
    fn command(self, cx: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>);
}

/// Namespace of referral ids derived from (case, request_id).
const REFERRAL_IDS: Uuid = Uuid::from_u128(0x6261_6f76_652d_7265_6665_7272_616c_0002);

/// The referral a `RequestReferral` with this header names: the same case
/// and request id always name the same referral.
#[must_use]
pub fn referral_id(header: Option<&p::CommandHeader>) -> Uuid {
    let (case_id, request_id) = header.map_or(("", ""), |h| (&h.case_id, &h.request_id));
    Uuid::new_v5(
        &REFERRAL_IDS,
        format!("{}:{}", case_id.trim(), request_id.trim()).as_bytes(),
    )
}

fn date(v: &mut Violations, field: &str, raw: &str) -> Option<::time::Date> {
    v.check(field, parse_date(raw.trim()))
}

/// The forms of abuse a verification confirmed and found untrue, each
/// named by its field when it is not a known form.
fn verification(v: &mut Violations, confirmed: &[i32], unconfirmed: &[i32]) -> proc::Verification {
    let mut forms = |field: &str, raw: &[i32]| -> Vec<baove_domain::intake::AbuseType> {
        let mut out = Vec::new();
        for (i, value) in raw.iter().enumerate() {
            match baove_runtime::convert::abuse_type(*value) {
                Some(form) if !out.contains(&form) => out.push(form),
                Some(_) => {}
                None => v.add(format!("{field}[{i}]"), "is unspecified or unknown"),
            }
        }
        out
    };
    proc::Verification {
        confirmed: forms("confirmed_abuse_types", confirmed),
        not_confirmed: forms("unconfirmed_abuse_types", unconfirmed),
    }
}

fn ratings(v: &mut Violations, raw: Vec<p::RiskRating>) -> Vec<proc::RiskRating> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let level = match p::RiskLevel::try_from(r.level) {
                Ok(p::RiskLevel::High) => RiskLevel::High,
                Ok(p::RiskLevel::Medium) => RiskLevel::Medium,
                Ok(p::RiskLevel::Low) => RiskLevel::Low,
                _ => {
                    v.add(
                        format!("ratings[{i}].level"),
                        "is required: high, medium or low",
                    );
                    return None;
                }
            };
            Some(proc::RiskRating {
                factor: r.factor,
                level,
            })
        })
        .collect()
}

impl StepRequest for p::AssignOfficerRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let command = Command::Assign {
            officer_id: self.assignee_id,
        };
        (self.header, Ok(command))
    }
}

impl StepRequest for p::RecordInitialAssessmentRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let mut v = Violations::default();
        let ratings = ratings(&mut v, self.ratings);
        let verification = verification(
            &mut v,
            &self.confirmed_abuse_types,
            &self.unconfirmed_abuse_types,
        );
        let command = v.into_result(Command::RecordInitialAssessment {
            ratings,
            emergency_measures_apply: self.emergency_measures_apply,
            summary: self.summary,
            verification,
        });
        (self.header, command)
    }
}

impl StepRequest for p::RecordEmergencyMeasureRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let mut v = Violations::default();
        let kind = match p::MeasureKind::try_from(self.kind) {
            Ok(p::MeasureKind::MedicalCare) => Some(MeasureKind::MedicalCare),
            Ok(p::MeasureKind::SafeShelter) => Some(MeasureKind::SafeShelter),
            Ok(p::MeasureKind::TemporarySeparation) => Some(MeasureKind::TemporarySeparation),
            Ok(p::MeasureKind::Other) => Some(MeasureKind::Other),
            _ => {
                v.add("kind", "is required");
                None
            }
        };
        let separation = self.separation.and_then(|s| {
            let start = date(&mut v, "separation.start_date", &s.start_date);
            let end = date(&mut v, "separation.end_date", &s.end_date);
            Some(proc::Separation {
                start_date: start?,
                end_date: end?,
                extension_decision_ref: Some(s.extension_decision_ref)
                    .filter(|e| !e.trim().is_empty()),
            })
        });
        let grounds = match p::MeasureGrounds::try_from(self.grounds) {
            Ok(p::MeasureGrounds::Unspecified | p::MeasureGrounds::AssessedDanger) => {
                proc::MeasureGrounds::AssessedDanger
            }
            Ok(p::MeasureGrounds::ParentsRefusePlan) => proc::MeasureGrounds::ParentsRefusePlan,
            Ok(p::MeasureGrounds::AbuseMayContinue) => proc::MeasureGrounds::AbuseMayContinue,
            Err(_) => {
                v.add(
                    "grounds",
                    format!("{} is not a valid MeasureGrounds", self.grounds),
                );
                proc::MeasureGrounds::AssessedDanger
            }
        };
        let command = match kind {
            Some(kind) if v.is_empty() => Ok(Command::RecordEmergencyMeasure {
                kind,
                description: self.description,
                decision_ref: self.decision_ref,
                separation,
                grounds,
            }),
            _ => Err(v),
        };
        (self.header, command)
    }
}

impl StepRequest for p::RecordDetailedAssessmentRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let mut v = Violations::default();
        let verification = verification(
            &mut v,
            &self.confirmed_abuse_types,
            &self.unconfirmed_abuse_types,
        );
        let command = v.into_result(Command::RecordDetailedAssessment {
            summary: self.summary,
            needs: self.needs,
            meeting_participants: self.meeting_participants,
            minutes_ref: self.minutes_ref,
            verification,
        });
        (self.header, command)
    }
}

impl StepRequest for p::DraftPlanRequest {
    fn command(self, cx: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let mut v = Violations::default();
        let measures: Vec<_> = self
            .measures
            .into_iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let due_date = date(&mut v, &format!("measures[{i}].due_date"), &m.due_date)?;
                Some(proc::PlanMeasure {
                    id: m.id,
                    description: m.description,
                    responsible: m.responsible,
                    due_date,
                })
            })
            .collect();
        let command = v.into_result(Command::DraftPlan {
            measures,
            by: cx.user_id.to_owned(),
            keep_despite_residence: Some(self.keep_despite_residence_ref)
                .filter(|k| !k.trim().is_empty()),
        });
        (self.header, command)
    }
}

impl StepRequest for p::ApprovePlanRequest {
    fn command(self, cx: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let command = Command::ApprovePlan {
            decision_ref: self.decision_ref,
            by: cx.user_id.to_owned(),
        };
        (self.header, Ok(command))
    }
}

impl StepRequest for p::SendBackPlanRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let command = Command::SendBackPlan {
            reason: self.reason,
        };
        (self.header, Ok(command))
    }
}

impl StepRequest for p::RecordInterventionRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let mut v = Violations::default();
        let command = match date(&mut v, "date", &self.date) {
            Some(date) if v.is_empty() => Ok(Command::RecordIntervention {
                measure_id: self.measure_id,
                description: self.description,
                date,
            }),
            _ => Err(v),
        };
        (self.header, command)
    }
}

impl StepRequest for p::RecordReviewRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let mut v = Violations::default();
        let ratings = ratings(&mut v, self.ratings);
        let command = v.into_result(Command::RecordReview {
            ratings,
            summary: self.summary,
        });
        (self.header, command)
    }
}

impl StepRequest for p::CloseCaseRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let grounds = match p::CloseGrounds::try_from(self.grounds) {
            Ok(p::CloseGrounds::NoRiskAfterReview) => Ok(proc::CloseGrounds::NoRiskAfterReview),
            Ok(p::CloseGrounds::Unfounded) => Ok(proc::CloseGrounds::Unfounded),
            Ok(p::CloseGrounds::NoSupportNeeded) => Ok(proc::CloseGrounds::NoSupportNeeded),
            Ok(p::CloseGrounds::Unspecified) => Err(Violations::one(
                "grounds",
                "is required: no risk after review, unfounded, or no support needed",
            )),
            Err(_) => Err(Violations::one(
                "grounds",
                format!("{} is not a valid CloseGrounds", self.grounds),
            )),
        };
        let command = grounds.map(|grounds| Command::Close {
            reason: self.reason,
            grounds,
            decision_ref: self.decision_ref,
        });
        (self.header, command)
    }
}

impl StepRequest for p::ReopenCaseRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let command = Command::Reopen {
            reason: self.reason,
        };
        (self.header, Ok(command))
    }
}

impl StepRequest for p::AddNoteRequest {
    fn command(self, _: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        (self.header, Ok(Command::AddNote { text: self.text }))
    }
}

impl StepRequest for p::RequestReferralRequest {
    fn command(self, cx: &Context<'_>) -> (Option<p::CommandHeader>, Result<Command, Violations>) {
        let mut v = Violations::default();
        let service = match p::RequestedService::try_from(self.service) {
            Ok(p::RequestedService::PoliceInvestigation) => Some(Service::PoliceInvestigation),
            Ok(p::RequestedService::MedicalExamination) => Some(Service::MedicalExamination),
            Ok(p::RequestedService::PsychologicalSupport) => Some(Service::PsychologicalSupport),
            Ok(p::RequestedService::LegalAid) => Some(Service::LegalAid),
            Ok(p::RequestedService::SchoolSupport) => Some(Service::SchoolSupport),
            Ok(p::RequestedService::Shelter) => Some(Service::Shelter),
            _ => None,
        };
        let transfer = self.transfer_to_unit_id.trim();
        let kind = match (service, transfer.is_empty()) {
            (Some(service), true) => Some(ReferralKind::Refer { service }),
            (None, false) => {
                // A transfer goes to a commune in force today, by its
                // official id.
                let to_unit_id = match cx.directory.unit_for_report(transfer, cx.today, None) {
                    Ok(unit) => unit.id.clone(),
                    Err(rule) => {
                        v.add("transfer_to_unit_id", rule);
                        transfer.to_owned()
                    }
                };
                Some(ReferralKind::Transfer { to_unit_id })
            }
            (Some(_), false) => {
                v.add(
                    "service",
                    "give a service (a referral) or transfer_to_unit_id (a transfer), not both",
                );
                None
            }
            (None, true) => {
                v.add(
                    "service",
                    "is required: the service asked, or transfer_to_unit_id for a transfer",
                );
                None
            }
        };
        let to_agency_id = self.to_agency_id.trim();
        if !to_agency_id.is_empty()
            && let Err(rule) = cx.directory.receiving_agency(to_agency_id, cx.today)
        {
            v.add("to_agency_id", rule);
        }
        let legal_basis = match p::LegalBasis::try_from(self.legal_basis) {
            Ok(p::LegalBasis::CriminalInvestigation) => Some(LegalBasis::CriminalInvestigation),
            Ok(p::LegalBasis::Emergency) => Some(LegalBasis::Emergency),
            _ => None,
        };
        let command = match kind {
            Some(kind) if v.is_empty() => Ok(Command::RequestReferral {
                referral_id: referral_id(self.header.as_ref()),
                request: ReferralRequest {
                    kind,
                    to_agency_id: cx.directory.canonical_agency(to_agency_id).to_owned(),
                    reason: self.reason,
                    urgency: if self.urgent {
                        Urgency::Urgent
                    } else {
                        Urgency::Normal
                    },
                    sharing: Sharing {
                        identifying: self.shares_identifying_information,
                        child_consent: self.child_consent,
                        guardian_consent: self.guardian_consent,
                        legal_basis,
                        informant: self.shares_informant,
                    },
                },
            }),
            _ => Err(v),
        };
        (self.header, command)
    }
}

#[cfg(test)]
mod tests {
    //! Given a step's request, when read, then the command or every bad
    //! field by name.

    use super::*;

    fn directory() -> Directory {
        Directory::parse(
            r#"{"units":[
              {"id":"vn:92","kind":"city","parent":null,"names":[{"name":"Thành phố Cần Thơ","valid_from":"2025-07-01","valid_to":null}]},
              {"id":"vn:31135","kind":"ward","parent":"vn:92","names":[{"name":"Phường Ninh Kiều","valid_from":"2025-07-01","valid_to":null}]}
            ]}"#,
            r#"{"agencies":[
              {"id":"vn:31135/cong-an","kind":"police","unit":"vn:31135","names":[{"name":"Công an phường Ninh Kiều","valid_from":"2025-07-01","valid_to":null}]}
            ]}"#,
        )
        .unwrap()
    }

    fn read<R: StepRequest>(request: R) -> Result<Command, Vec<String>> {
        let directory = directory();
        let cx = Context {
            user_id: "officer-1",
            directory: &directory,
            today: ::time::macros::date!(2026 - 12 - 01),
        };
        request
            .command(&cx)
            .1
            .map_err(|v| v.0.into_iter().map(|x| x.field).collect())
    }

    fn header(request_id: &str) -> Option<p::CommandHeader> {
        Some(p::CommandHeader {
            case_id: "0190f0f0-0000-7000-8000-000000000001".into(),
            request_id: request_id.into(),
            expected_version: 3,
            officer_id: String::new(),
        })
    }

    #[test]
    fn given_an_emergency_measure_with_bad_fields_then_each_is_named_at_once() {
        let fields = read(p::RecordEmergencyMeasureRequest {
            kind: 0,
            grounds: 55,
            separation: Some(p::Separation {
                start_date: "2026-13-01".into(),
                end_date: "tomorrow".into(),
                extension_decision_ref: String::new(),
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            fields,
            [
                "kind",
                "separation.start_date",
                "separation.end_date",
                "grounds"
            ]
        );
    }

    #[test]
    fn given_a_close_with_an_out_of_range_grounds_then_not_a_valid_close_grounds() {
        let header = header("c-1");
        let (back, command) = p::CloseCaseRequest {
            header: header.clone(),
            grounds: 55,
            ..Default::default()
        }
        .command(&Context {
            user_id: "officer-1",
            directory: &directory(),
            today: ::time::macros::date!(2026 - 12 - 01),
        });
        assert_eq!(back, header, "the header goes through untouched");
        let v = command.unwrap_err();
        assert_eq!(v.0[0].field, "grounds");
        assert!(v.0[0].rule.contains("not a valid CloseGrounds"), "{v}");
        let missing = read(p::CloseCaseRequest::default()).unwrap_err();
        assert_eq!(missing, ["grounds"]);
    }

    #[test]
    fn given_a_plan_then_the_sender_is_who_drafts_it_and_each_bad_due_date_is_named() {
        let measure = |due: &str| p::PlanMeasure {
            id: "m".into(),
            description: "khám sức khỏe".into(),
            responsible: "trạm y tế".into(),
            due_date: due.into(),
        };
        let Ok(Command::DraftPlan { by, measures, .. }) = read(p::DraftPlanRequest {
            measures: vec![measure("2026-12-05")],
            ..Default::default()
        }) else {
            panic!("refused")
        };
        assert_eq!((by.as_str(), measures.len()), ("officer-1", 1));
        let bad = read(p::DraftPlanRequest {
            measures: vec![measure("2026-12-05"), measure("05/12/2026")],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(bad, ["measures[1].due_date"]);
    }

    #[test]
    fn given_a_referral_request_then_service_or_transfer_not_both_and_the_agency_must_exist() {
        let both = read(p::RequestReferralRequest {
            service: p::RequestedService::PoliceInvestigation as i32,
            transfer_to_unit_id: "vn:31135".into(),
            to_agency_id: "vn:31135/khong-co".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(both, ["service", "to_agency_id"]);
        let neither = read(p::RequestReferralRequest::default()).unwrap_err();
        assert_eq!(neither, ["service"]);
        let Ok(Command::RequestReferral {
            referral_id: id,
            request,
        }) = read(p::RequestReferralRequest {
            header: header("r-1"),
            service: p::RequestedService::PoliceInvestigation as i32,
            to_agency_id: " vn:31135/cong-an ".into(),
            ..Default::default()
        })
        else {
            panic!("refused")
        };
        assert_eq!(request.to_agency_id, "vn:31135/cong-an");
        assert_eq!(id, referral_id(header("r-1").as_ref()));
        assert_ne!(id, referral_id(header("r-2").as_ref()));
    }
}
