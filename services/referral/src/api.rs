//! `baove.v1.ReferralService`.

use std::sync::Arc;

use baove_audit::access::AccessLog;
use baove_domain::Violations;
use baove_domain::reference::AgencyChange;
use baove_domain::referral::{self as r, Command, ReferralState, Status as RStatus};
use baove_eventlog::{AppendRequest, EventLog, ExpectedVersion, StreamId};
use baove_proto::steps::ReferralStepOutcome;
use baove_proto::v1::{self as p, referral_service_server::ReferralService};
use baove_runtime::auth::caller;
use baove_runtime::command::{Commands, Step, stored};
use baove_runtime::convert::referral_status;
use baove_runtime::status::{from_log, invalid_argument};
use baove_runtime::timestamp;
use baove_security::Caller;
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::model::{DIRECTORY_STREAM, Referrals, Row};
use crate::scope;
use baove_runtime::private::PrivateText;

/// Referral keys read from the bucket at once for one page of an inbox,
/// instead of one round trip after another.
const INBOX_KEY_READS: usize = 16;

/// `row` as a reader sees it: its reason and last detail opened with the
/// referral's key, read now ([`PrivateText::open_referral_strings`]).
async fn shown(private: &PrivateText, mut row: Row) -> Result<p::Referral, Status> {
    let mut strings = row.last_detail.strings_mut();
    strings.push(("request.reason", &mut row.state.request.reason));
    private
        .open_referral_strings(row.state.referral_id, strings)
        .await?;
    Ok(referral_to_proto(&row))
}

/// Serves ReferralService.
#[derive(Clone)]
pub struct ReferralApi {
    log: EventLog,
    referrals: Arc<Referrals>,
    stopping: CancellationToken,
    access: AccessLog,
    commands: Commands,
    private: Arc<PrivateText>,
}

impl ReferralApi {
    /// The API; `stopping` ends live WatchInbox streams at shutdown;
    /// `private` seals the steps' reasons and outcomes under each
    /// referral's key and opens them for readers.
    #[must_use]
    pub fn new(
        log: EventLog,
        referrals: Arc<Referrals>,
        stopping: CancellationToken,
        access: AccessLog,
        private: Arc<PrivateText>,
    ) -> Self {
        Self {
            commands: Commands::new(log.clone(), access.clone()).sealing(private.clone()),
            log,
            referrals,
            stopping,
            access,
            private,
        }
    }

    /// The inbox `agency` if `caller` may read it: police and agency staff
    /// their own agency's, province officers and auditors any.
    async fn may_read_inbox(&self, caller: &Caller, rpc: &str, agency: &str) -> Result<(), Status> {
        let subject = format!("inbox:{agency}");
        let allowed = self
            .referrals
            .with_directory(|d| scope::may_read_inbox(caller, d, agency));
        if !allowed {
            return Err(self
                .access
                .refuse(
                    caller,
                    rpc,
                    None,
                    &subject,
                    &format!("the inbox of {agency} is not your agency's"),
                )
                .await);
        }
        self.access.read(caller, rpc, None, &subject).await
    }

    /// Whether `caller` may see referral `row`: the receiving agency's
    /// staff, the requesting commune's officers, province officers and
    /// auditors.
    fn may_see(&self, caller: &Caller, row: &Row) -> bool {
        self.referrals.with_directory(|d| {
            scope::may_see(caller, d, &row.state.to_agency_id, &row.state.from_unit_id)
        })
    }

    /// The proto service.
    #[must_use]
    pub fn into_server(self) -> p::referral_service_server::ReferralServiceServer<Self> {
        p::referral_service_server::ReferralServiceServer::new(self)
    }

    #[tracing::instrument(
        name = "step",
        skip_all,
        fields(
            rpc = %rpc.trim_start_matches("/baove.v1."),
            referral_id = header.as_ref().map_or("", |h| h.referral_id.as_str()),
            request_id = header.as_ref().map_or("", |h| h.request_id.as_str()),
        )
    )]
    async fn step(
        &self,
        caller: &Caller,
        rpc: &str,
        header: Option<p::ReferralHeader>,
        command: Command,
        receiving_agency_only: bool,
    ) -> Result<ReferralStepOutcome, Status> {
        let h = header.unwrap_or_default();
        let mut v = Violations::default();
        let request_id = v
            .check(
                "header.request_id",
                baove_domain::text::request_id(&h.request_id),
            )
            .unwrap_or_default();
        let id = Uuid::parse_str(h.referral_id.trim()).ok();
        if id.is_none() {
            v.add("header.referral_id", "must be a referral id (UUID)");
        }
        if h.expected_version == 0 {
            v.add(
                "header.expected_version",
                "is required: the referral version you decided on",
            );
        }
        let user_id = self
            .access
            .own(caller, rpc, "header.user_id", &h.user_id, &caller.user_id)
            .await?;
        let agency_id = self
            .access
            .own(
                caller,
                rpc,
                "header.agency_id",
                &h.agency_id,
                &caller.agency_id,
            )
            .await?;
        let Some(id) = id.filter(|_| v.is_empty()) else {
            return Err(baove_runtime::status::violations(&v));
        };
        let step = Step {
            caller,
            rpc,
            id,
            expected: h.expected_version,
            request_id: &request_id,
            request_id_field: "header.request_id",
        };
        let executed = self
            .commands
            .execute(
                &step,
                |state: &ReferralState| {
                    self.referrals.with_directory(|d| {
                        scope::may_step(caller, &agency_id, d, state, receiving_agency_only)
                    })
                },
                |state| r::decide(state, command.clone(), &user_id).map(|event| vec![event]),
            )
            .await?;
        Ok(ReferralStepOutcome {
            version: executed.version,
            status: referral_status(executed.state.status),
            already_applied: executed.already_applied,
        })
    }

    async fn change_directory(
        &self,
        caller: &Caller,
        rpc: &str,
        request_id: &str,
        user_id: &str,
        change: AgencyChange,
    ) -> Result<bool, Status> {
        let request_id = &baove_domain::text::request_id(request_id)
            .map_err(|rule| invalid_argument("request_id", &rule))?;
        self.access
            .own(caller, rpc, "user_id", user_id, &caller.user_id)
            .await?;
        if self
            .log
            .acknowledged_command(&baove_runtime::client_command_id(request_id))
            .await
            .map_err(|e| from_log(&e))?
            .is_some()
        {
            return Ok(true);
        }
        self.referrals.wait_for(self.log.last_position()).await?;
        self.referrals
            .with_directory(|d| d.clone().apply_change(&change))
            .map_err(Status::failed_precondition)?;
        let appended = self
            .log
            .append(AppendRequest {
                stream: StreamId::from_uuid(DIRECTORY_STREAM),
                expected: ExpectedVersion::Any,
                command_id: baove_runtime::client_command_id(request_id),
                actor: baove_audit::access::actor(caller),
                causation_id: String::new(),
                correlation_id: String::new(),
                events: vec![
                    stored(&baove_domain::reference::DirectoryEvent::AgencyChanged(
                        change,
                    ))
                    .map_err(|e| from_log(&e))?,
                ],
                publish: false,
            })
            .await
            .map_err(|e| from_log(&e))?;
        self.referrals.wait_for(appended.last_position).await?;
        Ok(appended.replayed)
    }
}

/// An agency's inbox as WatchInbox sends it: each step of a referral to
/// the agency (or an agency it merged into), by the log's position, once
/// the read model has it.
struct Inbox {
    referrals: Arc<Referrals>,
    agency: String,
    private: Arc<PrivateText>,
}

/// Log events read per page of an inbox.
const INBOX_PAGE: usize = 200;

impl baove_runtime::history::Feed for Inbox {
    type Item = p::WatchInboxResponse;

    async fn page(
        &mut self,
        log: &EventLog,
        next: u64,
    ) -> Result<baove_runtime::history::Page<p::WatchInboxResponse>, Status> {
        // Only what a reader may be shown (in a cluster, what the cluster
        // stored): the model holds no more.
        let readable = log.readable_position();
        let mut events = log
            .read_all(next, INBOX_PAGE)
            .await
            .map_err(|e| from_log(&e))?;
        events.retain(|e| e.global_position <= readable);
        let Some(last) = events.last() else {
            return Ok(baove_runtime::history::Page {
                items: Vec::new(),
                next,
            });
        };
        self.referrals
            .wait_for(last.global_position)
            .await
            .map_err(|_| {
                Status::unavailable("the referral read model is behind the log; watch again")
            })?;
        let mut items = Vec::new();
        for envelope in &events {
            let Some(row) = self.referrals.get(*envelope.stream_id.as_uuid()) else {
                continue;
            };
            let ours = self.referrals.with_directory(|d| {
                baove_runtime::auth::same_agency(d, &self.agency, &row.state.to_agency_id)
            });
            if ours {
                items.push(p::WatchInboxResponse {
                    position: envelope.global_position,
                    step: baove_runtime::convert::referral_step(&envelope.event_type) as i32,
                    referral: Some(shown(&self.private, row).await?),
                });
            }
        }
        Ok(baove_runtime::history::Page {
            items,
            next: last.global_position + 1,
        })
    }
}

fn parse_status(raw: i32) -> Result<Option<RStatus>, Status> {
    p::ReferralStatus::try_from(raw)
        .map(baove_runtime::convert::referral_status_from_proto)
        .map_err(|_| invalid_argument("status", "is not a valid ReferralStatus"))
}

/// The referral as the proto message.
#[must_use]
pub fn referral_to_proto(row: &Row) -> p::Referral {
    let s = &row.state;
    p::Referral {
        referral_id: s.referral_id.to_string(),
        case_id: s.case_id.to_string(),
        from_unit_id: s.from_unit_id.clone(),
        to_agency_id: s.to_agency_id.clone(),
        to_agency_name: row.to_agency_name.clone(),
        requested_agency_id: row.requested_agency_id.clone(),
        kind: Some(baove_runtime::convert::referral_kind(&s.request.kind)),
        reason: s.request.reason.clone(),
        urgent: s.request.urgency == r::Urgency::Urgent,
        shares_identifying_information: s.request.sharing.identifying,
        shares_informant: s.request.sharing.informant,
        status: referral_status(s.status) as i32,
        ack_due_at: Some(timestamp(s.ack_due_at_ms)),
        escalated: s.escalated,
        version: row.version,
        offered_at: Some(timestamp(row.offered_at_ms)),
        last_detail: row.last_detail.text(),
    }
}

fn date(field: &str, raw: &str) -> Result<::time::Date, Status> {
    baove_domain::time::parse_date(raw.trim()).map_err(|rule| invalid_argument(field, &rule))
}

#[tonic::async_trait]
impl ReferralService for ReferralApi {
    type WatchInboxStream = ReceiverStream<Result<p::WatchInboxResponse, Status>>;

    async fn list_inbox(
        &self,
        request: Request<p::ListInboxRequest>,
    ) -> Result<Response<p::ListInboxResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let mut request = request.into_inner();
        if request.agency_id.trim().is_empty() {
            request.agency_id.clone_from(&caller.agency_id);
        }
        if request.agency_id.trim().is_empty() {
            return Err(invalid_argument("agency_id", "is required"));
        }
        self.may_read_inbox(&caller, &rpc, request.agency_id.trim())
            .await?;
        let page = request.page.unwrap_or_default();
        let limit = baove_runtime::request::page_size("page.page_size", page.page_size)?;
        let after = baove_runtime::request::cursor::<i64, Uuid>(&page.page_token)?;
        let position = self.log.readable_position();
        self.referrals.wait_for(position).await?;
        let (rows, next) = self.referrals.inbox(
            request.agency_id.trim(),
            parse_status(request.status)?,
            after,
            limit,
        );
        // Each row's referral key is read from the cluster's bucket: up to
        // INBOX_KEY_READS at once, in the rows' order.
        let referrals: Vec<p::Referral> =
            futures_util::stream::iter(rows.into_iter().map(|row| shown(&self.private, row)))
                .buffered(INBOX_KEY_READS)
                .try_collect()
                .await?;
        Ok(Response::new(p::ListInboxResponse {
            referrals,
            next_page_token: baove_runtime::request::page_token(next),
            position,
        }))
    }

    async fn get_referral(
        &self,
        request: Request<p::GetReferralRequest>,
    ) -> Result<Response<p::GetReferralResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let id = Uuid::parse_str(request.into_inner().referral_id.trim())
            .map_err(|_| invalid_argument("referral_id", "must be a referral id (UUID)"))?;
        self.referrals
            .wait_for(self.log.readable_position())
            .await?;
        let row = self
            .referrals
            .get(id)
            .ok_or_else(|| Status::not_found(format!("no referral {id}")))?;
        let subject = format!("referral:{id}");
        if !self.may_see(&caller, &row) {
            return Err(self
                .access
                .refuse(
                    &caller,
                    &rpc,
                    Some(row.state.case_id),
                    &subject,
                    &format!("referral {id} is neither to your agency nor from your units"),
                )
                .await);
        }
        self.access
            .read(&caller, &rpc, Some(row.state.case_id), &subject)
            .await?;
        Ok(Response::new(p::GetReferralResponse {
            referral: Some(shown(&self.private, row).await?),
        }))
    }

    async fn acknowledge(
        &self,
        request: Request<p::AcknowledgeRequest>,
    ) -> Result<Response<p::AcknowledgeResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        self.step(
            &caller,
            &rpc,
            request.into_inner().header,
            Command::Acknowledge,
            true,
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn accept(
        &self,
        request: Request<p::AcceptRequest>,
    ) -> Result<Response<p::AcceptResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        self.step(
            &caller,
            &rpc,
            request.into_inner().header,
            Command::Accept,
            true,
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn decline(
        &self,
        request: Request<p::DeclineRequest>,
    ) -> Result<Response<p::DeclineResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let r = request.into_inner();
        self.step(
            &caller,
            &rpc,
            r.header,
            Command::Decline { reason: r.reason },
            true,
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn report_outcome(
        &self,
        request: Request<p::ReportOutcomeRequest>,
    ) -> Result<Response<p::ReportOutcomeResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let r = request.into_inner();
        self.step(
            &caller,
            &rpc,
            r.header,
            Command::ReportOutcome {
                outcome: r.outcome,
                reference: r.reference,
            },
            true,
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn complete(
        &self,
        request: Request<p::CompleteRequest>,
    ) -> Result<Response<p::CompleteResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        self.step(
            &caller,
            &rpc,
            request.into_inner().header,
            Command::Complete,
            true,
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn revoke(
        &self,
        request: Request<p::RevokeRequest>,
    ) -> Result<Response<p::RevokeResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let r = request.into_inner();
        self.step(
            &caller,
            &rpc,
            r.header,
            Command::Revoke { reason: r.reason },
            false,
        )
        .await
        .map(|o| Response::new(o.into()))
    }

    async fn watch_inbox(
        &self,
        request: Request<p::WatchInboxRequest>,
    ) -> Result<Response<Self::WatchInboxStream>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let permit = baove_runtime::limits::open_stream(&request)?;
        let request = request.into_inner();
        let mut agency = request.agency_id.trim().to_owned();
        if agency.is_empty() {
            agency.clone_from(&caller.agency_id);
        }
        if agency.is_empty() {
            return Err(invalid_argument("agency_id", "is required"));
        }
        self.may_read_inbox(&caller, &rpc, &agency).await?;
        let rx = baove_runtime::history::tail(
            self.log.clone(),
            Inbox {
                referrals: self.referrals.clone(),
                agency,
                private: self.private.clone(),
            },
            request.from_position,
            baove_runtime::history::Until::Live {
                stopping: self.stopping.clone(),
                service: "referral",
            },
            permit,
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn rename_agency(
        &self,
        request: Request<p::RenameAgencyRequest>,
    ) -> Result<Response<p::RenameAgencyResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let r = request.into_inner();
        let change = AgencyChange::Renamed {
            agency_id: r.agency_id.trim().to_owned(),
            name: r.name,
            effective: date("effective_date", &r.effective_date)?,
        };
        self.change_directory(&caller, &rpc, &r.request_id, &r.user_id, change)
            .await
            .map(|already_applied| Response::new(p::RenameAgencyResponse { already_applied }))
    }

    async fn merge_agency(
        &self,
        request: Request<p::MergeAgencyRequest>,
    ) -> Result<Response<p::MergeAgencyResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let r = request.into_inner();
        let change = AgencyChange::Merged {
            agency_id: r.agency_id.trim().to_owned(),
            into: r.into_agency_id.trim().to_owned(),
            effective: date("effective_date", &r.effective_date)?,
        };
        self.change_directory(&caller, &rpc, &r.request_id, &r.user_id, change)
            .await
            .map(|already_applied| Response::new(p::MergeAgencyResponse { already_applied }))
    }
}
