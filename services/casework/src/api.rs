//! `baove.v1.CaseService`: reading a case and one RPC per procedure step.

use std::sync::Arc;

use baove_audit::access::AccessLog;
use baove_domain::Violations;
use baove_domain::case::procedure::{self as proc, Command};
use baove_domain::case::summary::CaseSummary;
use baove_domain::case::{CaseState, CaseStatus};
use baove_eventlog::{EventLog, StreamId};
use baove_proto::steps::CaseStepOutcome;
use baove_proto::v1::{self as p, case_service_server::CaseService};
use baove_runtime::auth::caller;
use baove_runtime::command::{Commands, Step};
use baove_runtime::status::{from_log, invalid_argument};
use baove_security::{Caller, Role};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cases::replay_as_of;
use crate::convert::{case_to_proto, summary};
use crate::model::{Cases, Filter};
use crate::requests::{Context, StepRequest, referral_id};
use crate::rules::Rules;
use crate::scope::can_read;
use baove_runtime::command::load_opened;
use baove_runtime::private::PrivateText;

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
    private: Arc<PrivateText>,
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
        private: Arc<PrivateText>,
    ) -> Self {
        Self {
            commands: Commands::new(log.clone(), access.clone()).sealing(private.clone()),
            log,
            rules,
            cases,
            stopping,
            access,
            private,
        }
    }

    /// The proto service, ready for the router.
    #[must_use]
    pub fn into_server(self) -> p::case_service_server::CaseServiceServer<Self> {
        p::case_service_server::CaseServiceServer::new(self)
    }

    /// The case, if `caller` may read it, its private text opened: the
    /// access is recorded, a refusal too. Commune officers read the cases
    /// of their units (incident or responsible); police and agency staff
    /// the cases referred to their agency; province officers and auditors
    /// every case.
    async fn may_read(
        &self,
        caller: &Caller,
        rpc: &str,
        id: Uuid,
    ) -> Result<(CaseState, u64), Status> {
        let (state, version) = load_opened::<CaseState>(&self.log, Some(&self.private), id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no case {id}")))?;
        let subject = format!("case:{id}");
        if !can_read(
            caller,
            &CaseSummary::of(&state),
            (self.rules.clock)(),
            &self.rules.directory,
        ) {
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

impl CaseApi {
    /// A step RPC: its request read as the procedure's command
    /// ([`StepRequest`]), then [`Self::execute`].
    async fn step<R: StepRequest>(&self, r: Request<R>) -> Result<CaseStepOutcome, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let cx = Context {
            user_id: &caller.user_id,
            directory: &self.rules.directory,
            today: baove_domain::time::vietnam_date((self.rules.clock)()),
        };
        let (header, command) = r.into_inner().command(&cx);
        self.execute(&caller, &rpc, header, command).await
    }
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    type WatchCaseStream = ReceiverStream<Result<p::WatchCaseResponse, Status>>;
    type WatchDeadlinesStream = ReceiverStream<Result<p::WatchDeadlinesResponse, Status>>;

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
        self.cases.wait_for(self.log.readable_position()).await?;
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
        let private = self.private.clone();
        let rx = baove_runtime::history::tail(
            self.log.clone(),
            baove_runtime::history::OneStream {
                stream,
                private: Some(self.private.clone()),
                item: move |event: &baove_eventlog::Envelope| {
                    Ok(p::WatchCaseResponse {
                        event: Some(baove_audit::checkpoint::envelope_to_proto(event)),
                        case_event: baove_runtime::history::case_event_for_reader(
                            event,
                            Some(&private),
                        )?,
                    })
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

    async fn watch_deadlines(
        &self,
        r: Request<p::WatchDeadlinesRequest>,
    ) -> Result<Response<Self::WatchDeadlinesStream>, Status> {
        let caller = caller(&r)?;
        let rpc = baove_runtime::auth::rpc(&r);
        let permit = baove_runtime::limits::open_stream(&r)?;
        let from = match r.into_inner().from_position {
            0 => self.log.last_position() + 1,
            position => position,
        };
        self.access
            .read(&caller, &rpc, None, "watch:deadlines")
            .await?;
        let rx = baove_runtime::history::tail(
            self.log.clone(),
            crate::alerts::Alerts {
                cases: self.cases.clone(),
                caller,
                rules: self.rules.clone(),
            },
            from,
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
        // Possible duplicates the caller may not read are not named: asked
        // of the read model's summaries (each equal to the fold of its
        // case's log), once the model holds everything logged so far, so
        // that a referral or transfer already made counts; folding each
        // duplicate's log instead cost up to 20 log reads per call.
        let duplicates = &state.opened.possible_duplicate_case_ids;
        case.possible_duplicate_case_ids = if duplicates.is_empty() {
            Vec::new()
        } else {
            self.cases.wait_for(self.log.readable_position()).await?;
            duplicates
                .iter()
                .filter(|other| {
                    self.cases
                        .with_case(**other, |summary| {
                            can_read(&caller, summary, now, &self.rules.directory)
                        })
                        .unwrap_or(false)
                })
                .map(ToString::to_string)
                .collect()
        };
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
        replay_as_of(&self.log, &self.private, id, request.as_of)
            .await
            .map(Response::new)
    }

    async fn assign_officer(
        &self,
        r: Request<p::AssignOfficerRequest>,
    ) -> Result<Response<p::AssignOfficerResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn record_initial_assessment(
        &self,
        r: Request<p::RecordInitialAssessmentRequest>,
    ) -> Result<Response<p::RecordInitialAssessmentResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn record_emergency_measure(
        &self,
        r: Request<p::RecordEmergencyMeasureRequest>,
    ) -> Result<Response<p::RecordEmergencyMeasureResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn record_detailed_assessment(
        &self,
        r: Request<p::RecordDetailedAssessmentRequest>,
    ) -> Result<Response<p::RecordDetailedAssessmentResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn draft_plan(
        &self,
        r: Request<p::DraftPlanRequest>,
    ) -> Result<Response<p::DraftPlanResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn approve_plan(
        &self,
        r: Request<p::ApprovePlanRequest>,
    ) -> Result<Response<p::ApprovePlanResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn send_back_plan(
        &self,
        r: Request<p::SendBackPlanRequest>,
    ) -> Result<Response<p::SendBackPlanResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn record_intervention(
        &self,
        r: Request<p::RecordInterventionRequest>,
    ) -> Result<Response<p::RecordInterventionResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn record_review(
        &self,
        r: Request<p::RecordReviewRequest>,
    ) -> Result<Response<p::RecordReviewResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn close_case(
        &self,
        r: Request<p::CloseCaseRequest>,
    ) -> Result<Response<p::CloseCaseResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn reopen_case(
        &self,
        r: Request<p::ReopenCaseRequest>,
    ) -> Result<Response<p::ReopenCaseResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
    async fn request_referral(
        &self,
        r: Request<p::RequestReferralRequest>,
    ) -> Result<Response<p::RequestReferralResponse>, Status> {
        let referral_id = referral_id(r.get_ref().header.as_ref());
        let done = self.step(r).await?;
        Ok(Response::new(p::RequestReferralResponse {
            version: done.version,
            referral_id: referral_id.to_string(),
            already_applied: done.already_applied,
        }))
    }
    async fn add_note(
        &self,
        r: Request<p::AddNoteRequest>,
    ) -> Result<Response<p::AddNoteResponse>, Status> {
        self.step(r).await.map(|done| Response::new(done.into()))
    }
}
