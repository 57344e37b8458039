//! `baove.v1.CaseService` (reading; the procedure's commands come with
//! issue 4).

use baove_domain::case::CaseStatus;
use baove_eventlog::EventLog;
use baove_proto::v1::{self as p, GetCaseRequest, case_service_server::CaseService};
use baove_runtime::status::invalid_argument;
use baove_runtime::timestamp;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cases::load;

/// Serves CaseService on casework's log.
#[derive(Clone)]
pub struct CaseApi {
    log: EventLog,
}

impl CaseApi {
    /// The API.
    #[must_use]
    pub const fn new(log: EventLog) -> Self {
        Self { log }
    }

    /// The proto service, ready for the router.
    #[must_use]
    pub fn into_server(self) -> p::case_service_server::CaseServiceServer<Self> {
        p::case_service_server::CaseServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn get_case(
        &self,
        request: Request<GetCaseRequest>,
    ) -> Result<Response<p::Case>, Status> {
        let id = request.into_inner().case_id;
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| invalid_argument("case_id", "must be a case id (UUID)"))?;
        let (state, version) = load(&self.log, id)
            .await
            .map_err(Status::unavailable)?
            .ok_or_else(|| Status::not_found(format!("no case {id}")))?;
        let first = self
            .log
            .read_stream(baove_eventlog::StreamId::from_uuid(id), 1, 1)
            .await
            .map_err(|e| baove_runtime::status::from_log(&e))?;
        let opened_at = first.first().map(|e| e.recorded_at_ms).unwrap_or_default();
        let opened = &state.opened;
        Ok(Response::new(p::Case {
            case_id: id.to_string(),
            status: match state.status {
                CaseStatus::Open => p::CaseStatus::Open,
                CaseStatus::Closed => p::CaseStatus::Closed,
            } as i32,
            version,
            opened_at: Some(timestamp(opened_at)),
            received_at: Some(timestamp(opened.received_at_ms)),
            intake_ids: state.intake_ids.iter().map(Uuid::to_string).collect(),
            incident_unit_id: opened.incident_unit_id.clone(),
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
        }))
    }
}
