//! `baove.v1.CaseService`: reading a case and one RPC per procedure step.

use std::sync::Arc;

use baove_domain::Violations;
use baove_domain::case::procedure::{self as proc, Command, MeasureKind, RiskLevel};
use baove_domain::case::{CaseState, CaseStatus};
use baove_domain::time::parse_date;
use baove_eventlog::{EventLog, StreamId};
use baove_proto::steps::CaseStepOutcome;
use baove_proto::v1::{self as p, case_service_server::CaseService};
use baove_runtime::access::AccessLog;
use baove_runtime::auth::caller;
use baove_runtime::command::{Commands, Step};
use baove_runtime::status::{from_log, invalid_argument};
use baove_security::{Caller, Role};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cases::replay_as_of;
use crate::convert::{case_to_proto, summary};
use crate::model::{Cases, Filter};
use crate::rules::Rules;
use crate::scope::can_read;
use baove_runtime::command::load;

use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Serves CaseService on casework's log.
#[derive(Clone)]
pub struct CaseApi {
    log: EventLog,
    rules: Rules,
    cases: Arc<Cases>,
    stopping: CancellationToken,
    access: AccessLog,
    commands: Commands,
}

impl CaseApi {
    /// The API; `stopping` ends live WatchCase streams at shutdown.
    #[must_use]
    pub fn new(
        log: EventLog,
        rules: Rules,
        cases: Arc<Cases>,
        stopping: CancellationToken,
        access: AccessLog,
    ) -> Self {
        Self {
            commands: Commands::new(log.clone(), access.clone()),
            log,
            rules,
            cases,
            stopping,
            access,
        }
    }

    /// The proto service, ready for the router.
    #[must_use]
    pub fn into_server(self) -> p::case_service_server::CaseServiceServer<Self> {
        p::case_service_server::CaseServiceServer::new(self)
    }

    /// The case, if `caller` may read it: the access is recorded, a refusal
    /// too. Commune officers read the cases of their units (incident or
    /// responsible); police and agency staff the cases referred to their
    /// agency; province officers and auditors every case.
    async fn may_read(
        &self,
        caller: &Caller,
        rpc: &str,
        id: Uuid,
    ) -> Result<(CaseState, u64), Status> {
        let (state, version) = load::<CaseState>(&self.log, id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no case {id}")))?;
        let subject = format!("case:{id}");
        if !can_read(caller, &state, (self.rules.clock)(), &self.rules.directory) {
            return Err(self
                .access
                .refuse(
                    caller,
                    rpc,
                    Some(id),
                    &subject,
                    &format!("case {id} is neither in your units nor referred to your agency"),
                )
                .await);
        }
        self.access.read(caller, rpc, Some(id), &subject).await?;
        Ok((state, version))
    }

    /// Checks the header, then runs the command on the one command path
    /// ([`baove_runtime::command`]): the caller must cover the case's
    /// responsible unit; a version made stale only by bookkeeping
    /// ([`baove_domain::case::CaseEvent::is_bookkeeping`]) is decided again
    /// on the current state; otherwise ABORTED with the current version.
    #[tracing::instrument(
        name = "step",
        skip_all,
        fields(
            rpc = %rpc.trim_start_matches("/baove.v1."),
            case_id = header.as_ref().map_or("", |h| h.case_id.as_str()),
            request_id = header.as_ref().map_or("", |h| h.request_id.as_str()),
        )
    )]
    async fn execute(
        &self,
        caller: &Caller,
        rpc: &str,
        header: Option<p::CommandHeader>,
        command: Result<Command, Violations>,
    ) -> Result<CaseStepOutcome, Status> {
        let header = header.unwrap_or_default();
        let mut v = Violations::default();
        let request_id = v
            .check(
                "header.request_id",
                baove_domain::text::request_id(&header.request_id),
            )
            .unwrap_or_default();
        let case_id = Uuid::parse_str(header.case_id.trim()).ok();
        if case_id.is_none() {
            v.add("header.case_id", "must be a case id (UUID)");
        }
        if header.expected_version == 0 {
            v.add(
                "header.expected_version",
                "is required: the case version you decided on (Case.version)",
            );
        }
        self.access
            .own(
                caller,
                rpc,
                "header.officer_id",
                &header.officer_id,
                &caller.user_id,
            )
            .await?;
        let command = match command {
            Ok(command) => Some(command),
            Err(mut more) => {
                v.0.append(&mut more.0);
                None
            }
        };
        let (Some(case_id), Some(command), true) = (case_id, command, v.is_empty()) else {
            return Err(baove_runtime::status::violations(&v));
        };
        let step = Step {
            caller,
            rpc,
            id: case_id,
            expected: header.expected_version,
            request_id: &request_id,
            request_id_field: "header.request_id",
        };
        let directory = &self.rules.directory;
        let executed = self
            .commands
            .execute(
                &step,
                |state: &CaseState| {
                    if baove_runtime::auth::covers(caller, directory, &state.responsible_unit_id) {
                        Ok(())
                    } else {
                        Err(format!(
                            "case {case_id} is handled by {}, which is not among your units",
                            state.responsible_unit_id
                        ))
                    }
                },
                |state| {
                    self.rules
                        .with_context(|ctx| proc::decide(state, command.clone(), ctx))
                },
            )
            .await?;
        Ok(CaseStepOutcome {
            version: executed.version,
            event_types: executed
                .events
                .iter()
                .map(|e| e.event_type().to_owned())
                .collect(),
            already_applied: executed.already_applied,
        })
    }
}

/// Namespace of referral ids derived from (case, request_id).
const REFERRAL_IDS: Uuid = Uuid::from_u128(0x6261_6f76_652d_7265_6665_7272_616c_0002);

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

#[tonic::async_trait]
impl CaseService for CaseApi {
    type WatchCaseStream = ReceiverStream<Result<p::WatchCaseResponse, Status>>;

    async fn list_cases(
        &self,
        r: Request<p::ListCasesRequest>,
    ) -> Result<Response<p::ListCasesResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let page = r.page.unwrap_or_default();
        let limit = baove_runtime::request::page_size("page.page_size", page.page_size)?;
        let status = match p::CaseStatus::try_from(r.status) {
            Ok(p::CaseStatus::Unspecified) => None,
            Ok(p::CaseStatus::Open) => Some(CaseStatus::Open),
            Ok(p::CaseStatus::Closed) => Some(CaseStatus::Closed),
            Err(_) => return Err(invalid_argument("status", "is not a known status")),
        };
        let filter = Filter {
            incident_unit_id: Some(r.incident_unit_id.trim())
                .filter(|u| !u.is_empty())
                .map(|u| self.rules.directory.scope_units(&[u.to_owned()])),
            status,
            officer_id: Some(r.officer_id.trim().to_owned()).filter(|o| !o.is_empty()),
            overdue: r.overdue,
            opened_from_ms: r.opened_from.as_ref().map(baove_runtime::unix_ms),
            opened_to_ms: r.opened_to.as_ref().map(baove_runtime::unix_ms),
            // Commune officers see the cases of their units only; province
            // officers and auditors those of the provinces their token
            // names, if it names any.
            units: match caller.role {
                Role::CommuneOfficer => Some(self.rules.directory.scope_units(&caller.units)),
                Role::ProvinceOfficer | Role::Auditor if !caller.units.is_empty() => {
                    Some(self.rules.directory.scope_units(&caller.units))
                }
                _ => None,
            },
        };
        self.access.read(&caller, &rpc, None, "list:cases").await?;
        // Read-your-writes: the model catches up with what is committed now.
        self.cases.wait_for(self.log.last_position()).await?;
        let (rows, next) = self.cases.list(
            &filter,
            baove_runtime::request::cursor(&page.page_token)?,
            limit,
        );
        Ok(Response::new(p::ListCasesResponse {
            cases: rows.iter().map(summary).collect(),
            next_page_token: baove_runtime::request::page_token(next),
        }))
    }

    async fn watch_case(
        &self,
        r: Request<p::WatchCaseRequest>,
    ) -> Result<Response<Self::WatchCaseStream>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let permit = baove_runtime::limits::open_stream(&r)?;
        let r = r.into_inner();
        let id = Uuid::parse_str(r.case_id.trim())
            .map_err(|_| invalid_argument("case_id", "must be a case id (UUID)"))?;
        let stream = StreamId::from_uuid(id);
        self.may_read(&caller, &rpc, id).await?;
        let rx = baove_runtime::history::tail(
            self.log.clone(),
            baove_runtime::history::OneStream {
                stream,
                item: |event: &baove_eventlog::Envelope| p::WatchCaseResponse {
                    event: Some(baove_runtime::audit::envelope_to_proto(event)),
                    case_event: baove_runtime::history::case_event_of(event),
                },
            },
            r.from_seq,
            baove_runtime::history::Until::Live {
                stopping: self.stopping.clone(),
                service: "casework",
            },
            permit,
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_case(
        &self,
        request: Request<p::GetCaseRequest>,
    ) -> Result<Response<p::GetCaseResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let id = request.into_inner().case_id;
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| invalid_argument("case_id", "must be a case id (UUID)"))?;
        let (state, version) = self.may_read(&caller, &rpc, id).await?;
        let first = self
            .log
            .read_stream(StreamId::from_uuid(id), 1, 1)
            .await
            .map_err(|e| from_log(&e))?;
        let opened_at = first.first().map(|e| e.recorded_at_ms).unwrap_or_default();
        let now = (self.rules.clock)();
        let mut case = case_to_proto(&state, version, opened_at, now);
        // Possible duplicates the caller may not read are not named.
        let mut visible = Vec::new();
        for other in &state.opened.possible_duplicate_case_ids {
            if let Ok(Some((other_state, _))) = load::<CaseState>(&self.log, *other).await
                && can_read(&caller, &other_state, now, &self.rules.directory)
            {
                visible.push(other.to_string());
            }
        }
        case.possible_duplicate_case_ids = visible;
        Ok(Response::new(p::GetCaseResponse { case: Some(case) }))
    }

    async fn replay_case(
        &self,
        request: Request<p::ReplayCaseRequest>,
    ) -> Result<Response<p::ReplayCaseResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let request = request.into_inner();
        let id = Uuid::parse_str(request.case_id.trim())
            .map_err(|_| invalid_argument("case_id", "must be a case id (UUID)"))?;
        self.access
            .read(&caller, &rpc, Some(id), &format!("case:{id}"))
            .await?;
        replay_as_of(&self.log, id, request.as_of)
            .await
            .map(Response::new)
    }

    async fn assign_officer(
        &self,
        r: Request<p::AssignOfficerRequest>,
    ) -> Result<Response<p::AssignOfficerResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        self.execute(
            &caller,
            &rpc,
            r.header,
            Ok(Command::Assign {
                officer_id: r.assignee_id,
            }),
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn record_initial_assessment(
        &self,
        r: Request<p::RecordInitialAssessmentRequest>,
    ) -> Result<Response<p::RecordInitialAssessmentResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let mut v = Violations::default();
        let ratings = ratings(&mut v, r.ratings);
        let verification =
            verification(&mut v, &r.confirmed_abuse_types, &r.unconfirmed_abuse_types);
        let command = v.into_result(Command::RecordInitialAssessment {
            ratings,
            emergency_measures_apply: r.emergency_measures_apply,
            summary: r.summary,
            verification,
        });
        self.execute(&caller, &rpc, r.header, command)
            .await
            .map(|o| Response::new(o.into()))
    }

    async fn record_emergency_measure(
        &self,
        r: Request<p::RecordEmergencyMeasureRequest>,
    ) -> Result<Response<p::RecordEmergencyMeasureResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let mut v = Violations::default();
        let kind = match p::MeasureKind::try_from(r.kind) {
            Ok(p::MeasureKind::MedicalCare) => Some(MeasureKind::MedicalCare),
            Ok(p::MeasureKind::SafeShelter) => Some(MeasureKind::SafeShelter),
            Ok(p::MeasureKind::TemporarySeparation) => Some(MeasureKind::TemporarySeparation),
            Ok(p::MeasureKind::Other) => Some(MeasureKind::Other),
            _ => {
                v.add("kind", "is required");
                None
            }
        };
        let separation = r.separation.and_then(|s| {
            let start = date(&mut v, "separation.start_date", &s.start_date);
            let end = date(&mut v, "separation.end_date", &s.end_date);
            Some(proc::Separation {
                start_date: start?,
                end_date: end?,
                extension_decision_ref: Some(s.extension_decision_ref)
                    .filter(|e| !e.trim().is_empty()),
            })
        });
        let grounds = match p::MeasureGrounds::try_from(r.grounds) {
            Ok(p::MeasureGrounds::Unspecified | p::MeasureGrounds::AssessedDanger) => {
                proc::MeasureGrounds::AssessedDanger
            }
            Ok(p::MeasureGrounds::ParentsRefusePlan) => proc::MeasureGrounds::ParentsRefusePlan,
            Ok(p::MeasureGrounds::AbuseMayContinue) => proc::MeasureGrounds::AbuseMayContinue,
            Err(_) => {
                v.add(
                    "grounds",
                    format!("{} is not a valid MeasureGrounds", r.grounds),
                );
                proc::MeasureGrounds::AssessedDanger
            }
        };
        let command = match kind {
            Some(kind) if v.is_empty() => Ok(Command::RecordEmergencyMeasure {
                kind,
                description: r.description,
                decision_ref: r.decision_ref,
                separation,
                grounds,
            }),
            _ => Err(v),
        };
        self.execute(&caller, &rpc, r.header, command)
            .await
            .map(|o| Response::new(o.into()))
    }

    async fn record_detailed_assessment(
        &self,
        r: Request<p::RecordDetailedAssessmentRequest>,
    ) -> Result<Response<p::RecordDetailedAssessmentResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let mut v = Violations::default();
        let verification =
            verification(&mut v, &r.confirmed_abuse_types, &r.unconfirmed_abuse_types);
        let command = v.into_result(Command::RecordDetailedAssessment {
            summary: r.summary,
            needs: r.needs,
            meeting_participants: r.meeting_participants,
            minutes_ref: r.minutes_ref,
            verification,
        });
        self.execute(&caller, &rpc, r.header, command)
            .await
            .map(|o| Response::new(o.into()))
    }

    async fn draft_plan(
        &self,
        r: Request<p::DraftPlanRequest>,
    ) -> Result<Response<p::DraftPlanResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let mut v = Violations::default();
        let measures: Vec<_> = r
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
        // Who acts is the token's subject (the header names no one else).
        let command = v.into_result(Command::DraftPlan {
            measures,
            by: caller.user_id.clone(),
            keep_despite_residence: Some(r.keep_despite_residence_ref)
                .filter(|k| !k.trim().is_empty()),
        });
        self.execute(&caller, &rpc, r.header, command)
            .await
            .map(|o| Response::new(o.into()))
    }

    async fn approve_plan(
        &self,
        r: Request<p::ApprovePlanRequest>,
    ) -> Result<Response<p::ApprovePlanResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        self.execute(
            &caller,
            &rpc,
            r.header,
            Ok(Command::ApprovePlan {
                decision_ref: r.decision_ref,
                by: caller.user_id.clone(),
            }),
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn send_back_plan(
        &self,
        r: Request<p::SendBackPlanRequest>,
    ) -> Result<Response<p::SendBackPlanResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        self.execute(
            &caller,
            &rpc,
            r.header,
            Ok(Command::SendBackPlan { reason: r.reason }),
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn record_intervention(
        &self,
        r: Request<p::RecordInterventionRequest>,
    ) -> Result<Response<p::RecordInterventionResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let mut v = Violations::default();
        let when = date(&mut v, "date", &r.date);
        let command = match when {
            Some(date) if v.is_empty() => Ok(Command::RecordIntervention {
                measure_id: r.measure_id,
                description: r.description,
                date,
            }),
            _ => Err(v),
        };
        self.execute(&caller, &rpc, r.header, command)
            .await
            .map(|o| Response::new(o.into()))
    }

    async fn record_review(
        &self,
        r: Request<p::RecordReviewRequest>,
    ) -> Result<Response<p::RecordReviewResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let mut v = Violations::default();
        let ratings = ratings(&mut v, r.ratings);
        let command = v.into_result(Command::RecordReview {
            ratings,
            summary: r.summary,
        });
        self.execute(&caller, &rpc, r.header, command)
            .await
            .map(|o| Response::new(o.into()))
    }

    async fn close_case(
        &self,
        r: Request<p::CloseCaseRequest>,
    ) -> Result<Response<p::CloseCaseResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let grounds = match p::CloseGrounds::try_from(r.grounds) {
            Ok(p::CloseGrounds::NoRiskAfterReview) => Ok(proc::CloseGrounds::NoRiskAfterReview),
            Ok(p::CloseGrounds::Unfounded) => Ok(proc::CloseGrounds::Unfounded),
            Ok(p::CloseGrounds::NoSupportNeeded) => Ok(proc::CloseGrounds::NoSupportNeeded),
            Ok(p::CloseGrounds::Unspecified) => Err(Violations::one(
                "grounds",
                "is required: no risk after review, unfounded, or no support needed",
            )),
            Err(_) => Err(Violations::one(
                "grounds",
                format!("{} is not a valid CloseGrounds", r.grounds),
            )),
        };
        self.execute(
            &caller,
            &rpc,
            r.header,
            grounds.map(|grounds| Command::Close {
                reason: r.reason,
                grounds,
                decision_ref: r.decision_ref,
            }),
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn reopen_case(
        &self,
        r: Request<p::ReopenCaseRequest>,
    ) -> Result<Response<p::ReopenCaseResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        self.execute(
            &caller,
            &rpc,
            r.header,
            Ok(Command::Reopen { reason: r.reason }),
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn request_referral(
        &self,
        r: Request<p::RequestReferralRequest>,
    ) -> Result<Response<p::RequestReferralResponse>, Status> {
        use baove_domain::referral::{
            LegalBasis, ReferralKind, ReferralRequest, Service, Sharing, Urgency,
        };
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        let mut v = Violations::default();
        let today = baove_domain::time::vietnam_date((self.rules.clock)());
        let service = match p::RequestedService::try_from(r.service) {
            Ok(p::RequestedService::PoliceInvestigation) => Some(Service::PoliceInvestigation),
            Ok(p::RequestedService::MedicalExamination) => Some(Service::MedicalExamination),
            Ok(p::RequestedService::PsychologicalSupport) => Some(Service::PsychologicalSupport),
            Ok(p::RequestedService::LegalAid) => Some(Service::LegalAid),
            Ok(p::RequestedService::SchoolSupport) => Some(Service::SchoolSupport),
            Ok(p::RequestedService::Shelter) => Some(Service::Shelter),
            _ => None,
        };
        let transfer = r.transfer_to_unit_id.trim();
        let kind = match (service, transfer.is_empty()) {
            (Some(service), true) => Some(ReferralKind::Refer { service }),
            (None, false) => {
                // A transfer goes to a commune in force today, by its
                // official id.
                let to_unit_id = match self.rules.directory.unit_for_report(transfer, today, None) {
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
        if !r.to_agency_id.trim().is_empty()
            && let Err(rule) = self
                .rules
                .directory
                .receiving_agency(r.to_agency_id.trim(), today)
        {
            v.add("to_agency_id", rule);
        }
        let legal_basis = match p::LegalBasis::try_from(r.legal_basis) {
            Ok(p::LegalBasis::CriminalInvestigation) => Some(LegalBasis::CriminalInvestigation),
            Ok(p::LegalBasis::Emergency) => Some(LegalBasis::Emergency),
            _ => None,
        };
        let header = r.header.clone().unwrap_or_default();
        // The same request_id always names the same referral.
        let referral_id = Uuid::new_v5(
            &REFERRAL_IDS,
            format!("{}:{}", header.case_id.trim(), header.request_id.trim()).as_bytes(),
        );
        let command = match kind {
            Some(kind) if v.is_empty() => Ok(Command::RequestReferral {
                referral_id,
                request: ReferralRequest {
                    kind,
                    to_agency_id: self
                        .rules
                        .directory
                        .canonical_agency(r.to_agency_id.trim())
                        .to_owned(),
                    reason: r.reason,
                    urgency: if r.urgent {
                        Urgency::Urgent
                    } else {
                        Urgency::Normal
                    },
                    sharing: Sharing {
                        identifying: r.shares_identifying_information,
                        child_consent: r.child_consent,
                        guardian_consent: r.guardian_consent,
                        legal_basis,
                        informant: r.shares_informant,
                    },
                },
            }),
            _ => Err(v),
        };
        let response = self.execute(&caller, &rpc, r.header, command).await?;
        Ok(Response::new(p::RequestReferralResponse {
            version: response.version,
            referral_id: referral_id.to_string(),
            already_applied: response.already_applied,
        }))
    }

    async fn add_note(
        &self,
        r: Request<p::AddNoteRequest>,
    ) -> Result<Response<p::AddNoteResponse>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let r = r.into_inner();
        self.execute(
            &caller,
            &rpc,
            r.header,
            Ok(Command::AddNote { text: r.text }),
        )
        .await
        .map(|o| Response::new(o.into()))
    }
}
