//! `baove.v1.IntakeService`.

use std::sync::Arc;

use baove_audit::access::AccessLog;
use baove_domain::intake::{
    self as d, Context, INTAKE_RECORDED, IntakeRecorded, RawHotlineReport, Report,
};
use baove_domain::reference::Directory;
use baove_domain::{Violations, text};
use baove_eventlog::{AppendRequest, Clock, Error, EventLog, ExpectedVersion, NewEvent, StreamId};
use baove_proto::v1::{
    self as p, GetIntakeRequest, Intake, IntakeStatus, IntakeSummary, ListIntakesRequest,
    ListIntakesResponse, SubmitHotlineReportRequest, SubmitPoliceNotificationRequest,
    intake_service_server::IntakeService,
};
use baove_runtime::auth::caller;
use baove_runtime::status::{from_log, invalid_argument};
use baove_security::{Caller, Role};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::convert::{
    channel, channel_to_proto, ms, raw_hotline, raw_police, report_to_proto, timestamp,
};
use crate::scope::{self, acting};
use crate::view::{Confidentiality, Cursor, Filter, Row, Shared, View};
use baove_proto::receipt::Receipt;
use baove_runtime::keys::KeyStore;

/// Serves IntakeService on intake's log and read model.
#[derive(Clone)]
pub struct IntakeApi {
    log: EventLog,
    view: Arc<View>,
    directory: Arc<Directory>,
    clock: Clock,
    keys: Arc<KeyStore>,
    access: AccessLog,
    /// The province this process takes reports for (its partition), or
    /// `None`: every province.
    partition: Option<String>,
}

impl IntakeApi {
    /// The API.
    #[must_use]
    pub const fn new(
        log: EventLog,
        view: Arc<View>,
        directory: Arc<Directory>,
        clock: Clock,
        keys: Arc<KeyStore>,
        access: AccessLog,
        partition: Option<String>,
    ) -> Self {
        Self {
            log,
            view,
            directory,
            clock,
            keys,
            access,
            partition,
        }
    }

    /// Whether `caller` may read `row`, and how much ([`scope::visibility`]).
    fn visibility(&self, caller: &Caller, row: &Row) -> Option<Shared> {
        scope::visibility(caller, row, &self.directory, |case| {
            self.view
                .referral_to(case, &caller.agency_id, (self.clock)())
        })
    }

    /// Of `cases`, those with a report `caller` may read. Each case's
    /// reports are checked in place, without copying them: a child
    /// reported hundreds of times by other operators has hundreds of
    /// reports in one case, and every new report about the child names it.
    fn readable_cases(&self, caller: &Caller, cases: &[Uuid]) -> Vec<String> {
        let now_ms = (self.clock)();
        cases
            .iter()
            .filter(|&&case| {
                // Asked before the rows are: the check runs under the
                // model's lock, and every report it sees went to `case`.
                let referred = self.view.referral_to(case, &caller.agency_id, now_ms);
                self.view.any_report_of_case(case, |row| {
                    scope::visibility(caller, row, &self.directory, |of| {
                        referred.filter(|_| of == case)
                    })
                    .is_some()
                })
            })
            .map(Uuid::to_string)
            .collect()
    }

    /// The possible duplicates of `row` that `caller` may read: case ids
    /// (a case whose reports the caller may read) and intake ids.
    fn visible_duplicates(&self, caller: &Caller, row: &Row) -> (Vec<String>, Vec<String>) {
        let cases = self.readable_cases(caller, &row.possible_duplicate_case_ids);
        let intakes = row
            .possible_duplicate_intake_ids
            .iter()
            .filter(|id| {
                self.view
                    .get(**id)
                    .is_some_and(|other| self.visibility(caller, &other).is_some())
            })
            .map(Uuid::to_string)
            .collect();
        (cases, intakes)
    }

    /// What a Mẫu 01 report is before it is parsed: its operator checked to
    /// be the caller, its enum values checked (violations to add to the
    /// parse's), and the raw report.
    async fn prepare_mau_01(
        &self,
        caller: &Caller,
        rpc: &str,
        mut report: Option<p::HotlineReport>,
    ) -> Result<(Violations, Option<RawHotlineReport>), Status> {
        if let Some(report) = report.as_mut() {
            report.operator_id = self
                .access
                .own(
                    caller,
                    rpc,
                    "report.operator_id",
                    &report.operator_id,
                    &caller.user_id,
                )
                .await?;
        }
        let mut bad_enums = report
            .as_ref()
            .and_then(|r| r.facts.as_ref())
            .map(|f| crate::convert::invalid_enums(f, "report.facts"))
            .unwrap_or_default();
        if let Some(r) = &report
            && p::Channel::try_from(r.channel).is_err()
        {
            bad_enums.add(
                "report.channel",
                format!("{} is not a valid Channel", r.channel),
            );
        }
        Ok((bad_enums, report.map(raw_hotline)))
    }

    /// Records a Mẫu 01 report, whoever received it (the 111 hotline, a
    /// commune, the Department): the receiver is the caller.
    async fn record_mau_01(
        &self,
        caller: &Caller,
        rpc: &str,
        request_id: &str,
        report: Option<p::HotlineReport>,
    ) -> Result<Receipt, Status> {
        let (bad_enums, raw) = self.prepare_mau_01(caller, rpc, report).await?;
        self.submit(caller, request_id, |ctx| parse_mau_01(bad_enums, raw, ctx))
            .await
    }

    /// Checks a Mẫu 01 report as [`Self::record_mau_01`] would, without
    /// recording it: whether it may be about the same child as an earlier
    /// report or case, and which of those cases `caller` may read. The
    /// check is written to the access log.
    async fn check_mau_01(
        &self,
        caller: &Caller,
        rpc: &str,
        report: Option<p::HotlineReport>,
    ) -> Result<p::CheckHotlineReportResponse, Status> {
        let (bad_enums, raw) = self.prepare_mau_01(caller, rpc, report).await?;
        let ctx = Context {
            directory: &self.directory,
            now_ms: (self.clock)(),
            partition: self.partition.as_deref(),
        };
        let parsed = parse_mau_01(bad_enums, raw, &ctx)
            .map_err(|v| baove_runtime::status::violations(&v))?;
        let facts = parsed.facts();
        let (cases, intakes) = self.view.possible_duplicates(facts);
        self.access
            .read(
                caller,
                rpc,
                None,
                &format!("possible duplicates in {}", facts.incident_place.unit_id),
            )
            .await?;
        Ok(p::CheckHotlineReportResponse {
            possible_duplicate: !cases.is_empty() || !intakes.is_empty(),
            possible_duplicate_case_ids: self.readable_cases(caller, &cases),
        })
    }

    /// Records a parsed report under `request_id`, or returns the receipt
    /// of the first submit with that id.
    #[tracing::instrument(name = "submit", skip_all, fields(request_id = %baove_domain::text::clip(request_id, 128)))]
    async fn submit(
        &self,
        caller: &Caller,
        request_id: &str,
        parse: impl FnOnce(&Context<'_>) -> Result<Report, Violations>,
    ) -> Result<Receipt, Status> {
        let mut violations = Violations::default();
        let request_id = violations
            .check("request_id", text::request_id(request_id))
            .unwrap_or_default();
        let request_id = request_id.as_str();
        if !request_id.is_empty()
            && let Some(receipt) = self.receipt(caller, request_id).await?
        {
            return Ok(receipt);
        }
        let ctx = Context {
            directory: &self.directory,
            now_ms: (self.clock)(),
            partition: self.partition.as_deref(),
        };
        let report = match parse(&ctx) {
            Ok(report) if violations.is_empty() => report,
            Ok(_) => return Err(baove_runtime::status::violations(&violations)),
            Err(mut more) => {
                violations.0.append(&mut more.0);
                return Err(baove_runtime::status::violations(&violations));
            }
        };
        let facts = report.facts();
        let (possible_duplicate_case_ids, possible_duplicate_intake_ids) =
            self.view.possible_duplicates(facts);
        let intake_id = Uuid::now_v7();
        // The report names its operator or officer and their police
        // agency; each was checked to be the caller's own.
        let actor = acting(caller);
        // An estimated age counts as the youngest it may be.
        let outside_child_law = d::outside_child_law(facts.child.youngest_possible_age());
        // Before sealing: only the month leaves with the case.
        let consent_possible_from = facts
            .child
            .age
            .consent_possible_from(baove_domain::time::vietnam_date(facts.received_at_ms));
        let mut event = IntakeRecorded {
            intake_id,
            outside_child_law,
            report,
            possible_duplicate_case_ids,
            possible_duplicate_intake_ids,
            consent_possible_from,
            sealed: None,
        };
        // Confidential fields are sealed with the report's own data key
        // before the event is hashed, stored or published.
        let immediate_danger = event.report.facts().immediate_danger;
        let confidential = serde_json::to_vec(&event.take_confidential())
            .map_err(|e| Status::internal(format!("cannot encode confidential fields: {e}")))?;
        let sealed = self
            .keys
            .seal_new(StreamId::from_uuid(intake_id), confidential)
            .await
            .map_err(|e| Status::unavailable(format!("data key: {e}")))?;
        event.sealed = serde_json::to_value(sealed).ok();
        let new_event = match NewEvent::new(INTAKE_RECORDED, d::SCHEMA_VERSION, &event) {
            Ok(new_event) => new_event,
            // Every field is within its own limit, but the whole, sealed,
            // is more than one event may hold: the caller's to shorten.
            Err(Error::InvalidArgument {
                field: "payload", ..
            }) => return Err(too_long_to_store(&event.report)),
            Err(e) => return Err(from_log(&e)),
        };
        let appended = self
            .log
            .append(AppendRequest {
                stream: StreamId::from_uuid(intake_id),
                expected: ExpectedVersion::NoStream,
                command_id: baove_runtime::client_command_id(request_id),
                actor,
                causation_id: String::new(),
                correlation_id: intake_id.to_string(),
                events: vec![new_event],
                publish: true,
            })
            .await;
        match appended {
            // Recorded now, and durable (in a cluster, stored by its
            // quorum): the receipt is this report's, read from the model.
            Ok(appended) if !appended.replayed => {
                self.view.wait_for(appended.last_position).await?;
                tracing::info!(intake_id = %intake_id, immediate_danger, "intake recorded");
                let row = self.view.get(intake_id).ok_or_else(|| {
                    Status::internal("recorded intake missing from the read model")
                })?;
                self.receipt_of(caller, &row, false)
            }
            // A submit with the same request_id was recorded meanwhile:
            // its receipt, once that one is acknowledged.
            Ok(_) => self
                .receipt(caller, request_id)
                .await?
                .ok_or_else(|| Status::internal("request_id used but its intake is missing")),
            // Two submits with the same request_id raced: the other won.
            Err(Error::CommandIdReused { .. }) => self
                .receipt(caller, request_id)
                .await?
                .ok_or_else(|| Status::internal("request_id used but its intake is missing")),
            Err(e) => Err(from_log(&e)),
        }
    }

    /// The receipt of an earlier submit by `caller` with `request_id`, if
    /// any. A request id someone else used is refused: a receipt names an
    /// intake and its possible duplicates, which are theirs.
    async fn receipt(&self, caller: &Caller, request_id: &str) -> Result<Option<Receipt>, Status> {
        let Some(first) = self
            .log
            .acknowledged_command(&baove_runtime::client_command_id(request_id))
            .await
            .map_err(|e| from_log(&e))?
        else {
            return Ok(None);
        };
        self.view.wait_for(first.last_position).await?;
        let row = self.view.get(*first.stream.as_uuid()).ok_or_else(|| {
            Status::internal("request_id recorded but its intake is missing from the read model")
        })?;
        self.receipt_of(caller, &row, true).map(Some)
    }

    /// The receipt of `row`, recorded now or (`already_recorded`) by an
    /// earlier submit, if `caller` logged it. A request id someone else
    /// used is refused.
    fn receipt_of(
        &self,
        caller: &Caller,
        row: &Row,
        already_recorded: bool,
    ) -> Result<Receipt, Status> {
        if !scope::logged_by(caller, &row.logged_by) {
            return Err(invalid_argument(
                "request_id",
                "was already used for another report: use a new one (a UUID is best)",
            ));
        }
        let (possible_duplicate_case_ids, _) = self.visible_duplicates(caller, row);
        Ok(Receipt {
            intake_id: row.intake_id.to_string(),
            recorded_at: Some(timestamp(row.recorded_at_ms)),
            already_recorded,
            possible_duplicate_case_ids,
            outside_child_law: row.outside_child_law,
            possible_duplicate: row.has_possible_duplicates(),
        })
    }
}

/// The confidentiality of a report whose fields are in state `state`, for
/// a reader who may (`show`) or may not see its confidential fields.
const fn shown(state: Confidentiality, show: bool) -> p::Confidentiality {
    match state {
        Confidentiality::Erased => p::Confidentiality::Erased,
        Confidentiality::Unreadable => p::Confidentiality::Unreadable,
        Confidentiality::Readable if show => p::Confidentiality::Shown,
        Confidentiality::Readable => p::Confidentiality::Redacted,
    }
}

/// Parses a prepared Mẫu 01 report: the parse's violations and the enum
/// violations found before, all at once.
fn parse_mau_01(
    bad_enums: Violations,
    raw: Option<RawHotlineReport>,
    ctx: &Context<'_>,
) -> Result<Report, Violations> {
    crate::convert::with_enum_checks(
        bad_enums,
        match raw {
            Some(raw) => d::parse_hotline(raw, "report", ctx),
            None => Err(Violations::one("report", "is required")),
        },
    )
}

/// The intake of `row`, its report `recorded` (read from the log, its
/// fields opened as `state` says) as `shared` lets its reader see it, with
/// the possible duplicates the reader may read (`duplicates`: case ids,
/// intake ids).
fn intake_to_proto(
    row: &Row,
    mut recorded: IntakeRecorded,
    state: Confidentiality,
    shared: Shared,
    duplicates: (Vec<String>, Vec<String>),
) -> Intake {
    let confidential = shown(state, shared.identity);
    if confidential != p::Confidentiality::Shown {
        drop(recorded.take_confidential());
    }
    let informant_withheld = confidential == p::Confidentiality::Shown
        && !shared.informant
        && match &mut recorded.report {
            Report::Hotline { informant, .. } => informant.take().is_some(),
            Report::Police { .. } => false,
        };
    let (possible_duplicate_case_ids, possible_duplicate_intake_ids) = duplicates;
    Intake {
        informant_withheld,
        possible_duplicate: row.has_possible_duplicates(),
        confidential: confidential as i32,
        intake_id: row.intake_id.to_string(),
        status: if row.handed_over.is_some() {
            IntakeStatus::HandedOver
        } else {
            IntakeStatus::Recorded
        } as i32,
        case_id: row
            .handed_over
            .map(|(case, _)| case.to_string())
            .unwrap_or_default(),
        recorded_at: Some(timestamp(row.recorded_at_ms)),
        handed_over_at: row.handed_over.map(|(_, at)| timestamp(at)),
        channel: channel_to_proto(row.channel) as i32,
        report: Some(report_to_proto(&recorded.report)),
        possible_duplicate_case_ids,
        possible_duplicate_intake_ids,
        outside_child_law: row.outside_child_law,
        version: row.version,
    }
}

fn summary(row: &Row, show: bool) -> IntakeSummary {
    let confidential = shown(row.confidential, show);
    IntakeSummary {
        confidential: confidential as i32,
        intake_id: row.intake_id.to_string(),
        status: if row.handed_over.is_some() {
            IntakeStatus::HandedOver
        } else {
            IntakeStatus::Recorded
        } as i32,
        case_id: row
            .handed_over
            .map(|(case, _)| case.to_string())
            .unwrap_or_default(),
        channel: channel_to_proto(row.channel) as i32,
        received_at: Some(timestamp(row.received_at_ms)),
        child_name: if confidential == p::Confidentiality::Shown {
            row.child_name.clone()
        } else {
            String::new()
        },
        incident_unit_id: row.incident_unit_id.clone(),
        immediate_danger: row.immediate_danger,
    }
}

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    async fn submit_hotline_report(
        &self,
        request: Request<SubmitHotlineReportRequest>,
    ) -> Result<Response<p::SubmitHotlineReportResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let request = request.into_inner();
        self.record_mau_01(&caller, &rpc, &request.request_id, request.report)
            .await
            .map(|receipt| Response::new(receipt.into()))
    }

    async fn check_hotline_report(
        &self,
        request: Request<p::CheckHotlineReportRequest>,
    ) -> Result<Response<p::CheckHotlineReportResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        self.check_mau_01(&caller, &rpc, request.into_inner().report)
            .await
            .map(Response::new)
    }

    async fn record_received_report(
        &self,
        request: Request<p::RecordReceivedReportRequest>,
    ) -> Result<Response<p::RecordReceivedReportResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let request = request.into_inner();
        self.record_mau_01(&caller, &rpc, &request.request_id, request.report)
            .await
            .map(|receipt| Response::new(receipt.into()))
    }

    async fn submit_police_notification(
        &self,
        request: Request<SubmitPoliceNotificationRequest>,
    ) -> Result<Response<p::SubmitPoliceNotificationResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let mut request = request.into_inner();
        if let Some(n) = request.notification.as_mut() {
            n.officer_id = self
                .access
                .own(
                    &caller,
                    &rpc,
                    "notification.officer_id",
                    &n.officer_id,
                    &caller.user_id,
                )
                .await?;
            n.police_agency_id = self
                .access
                .own(
                    &caller,
                    &rpc,
                    "notification.police_agency_id",
                    &n.police_agency_id,
                    &caller.agency_id,
                )
                .await?;
        }
        let bad_enums = request
            .notification
            .as_ref()
            .and_then(|n| n.facts.as_ref())
            .map(|f| crate::convert::invalid_enums(f, "notification.facts"))
            .unwrap_or_default();
        let raw = request.notification.map(raw_police);
        let receipt = self
            .submit(&caller, &request.request_id, |ctx| {
                crate::convert::with_enum_checks(
                    bad_enums,
                    match raw {
                        Some(raw) => d::parse_police(raw, "notification", ctx),
                        None => Err(Violations::one("notification", "is required")),
                    },
                )
            })
            .await?;
        Ok(Response::new(receipt.into()))
    }

    async fn get_intake(
        &self,
        request: Request<GetIntakeRequest>,
    ) -> Result<Response<p::GetIntakeResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let id = request.into_inner().intake_id;
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| invalid_argument("intake_id", "must be an intake id (UUID)"))?;
        let row = self
            .view
            .get(id)
            .ok_or_else(|| Status::not_found(format!("no intake {id}")))?;
        let case = row.handed_over.map(|(case, _)| case);
        let subject = format!("intake:{id}");
        let Some(shared) = self.visibility(&caller, &row) else {
            return Err(self
                .access
                .refuse(
                    &caller,
                    &rpc,
                    case,
                    &subject,
                    &format!("intake {id} is not yours, not in your units and not referred to your agency"),
                )
                .await);
        };
        self.access.read(&caller, &rpc, case, &subject).await?;
        let duplicates = self.visible_duplicates(&caller, &row);
        let (recorded, state) = self
            .view
            .report(&self.log, &row)
            .await
            .map_err(|e| {
                tracing::error!(intake_id = %id, error = %e, "a report in the read model cannot be read from the log");
                Status::internal(format!("intake {id} cannot be read from the log: {e}"))
            })?
            .ok_or_else(|| {
                Status::internal(format!(
                    "intake {id} is in the read model but not in the log"
                ))
            })?;
        Ok(Response::new(p::GetIntakeResponse {
            intake: Some(intake_to_proto(&row, recorded, state, shared, duplicates)),
        }))
    }

    async fn list_intakes(
        &self,
        request: Request<ListIntakesRequest>,
    ) -> Result<Response<ListIntakesResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let request = request.into_inner();
        if caller.role == Role::Auditor && !request.child_name.trim().is_empty() {
            return Err(self
                .access
                .refuse(
                    &caller,
                    &rpc,
                    None,
                    "list:intakes",
                    "auditors see children's names redacted and cannot search by them",
                )
                .await);
        }
        let page = request.page.unwrap_or_default();
        let limit = baove_runtime::request::page_size("page.page_size", page.page_size)?;
        let after: Option<Cursor> = baove_runtime::request::cursor(&page.page_token)?;
        let channel_filter = match request.channel {
            0 => None,
            raw => Some(
                channel(raw)
                    .ok_or_else(|| invalid_argument("channel", "is not a known channel"))?,
            ),
        };
        let handed_over = match IntakeStatus::try_from(request.status) {
            Ok(IntakeStatus::Unspecified) => None,
            Ok(IntakeStatus::Recorded) => Some(false),
            Ok(IntakeStatus::HandedOver) => Some(true),
            Err(_) => return Err(invalid_argument("status", "is not a known status")),
        };
        let name_key = text::search_key(&request.child_name);
        let filter = Filter {
            received_from_ms: request.received_from.as_ref().map(ms),
            received_to_ms: request.received_to.as_ref().map(ms),
            handed_over,
            incident_unit_id: Some(request.incident_unit_id.trim())
                .filter(|u| !u.is_empty())
                .map(|u| self.directory.scope_units(&[u.to_owned()])),
            channel: channel_filter,
            name_key: Some(name_key).filter(|k| !k.is_empty()),
            logged_by: matches!(caller.role, Role::HotlineOperator | Role::Police)
                .then(|| acting(&caller)),
            units: match caller.role {
                Role::CommuneOfficer => Some(self.directory.scope_units(&caller.units)),
                Role::ProvinceOfficer | Role::Auditor if !caller.units.is_empty() => {
                    Some(self.directory.scope_units(&caller.units))
                }
                _ => None,
            },
        };
        self.access
            .read(&caller, &rpc, None, "list:intakes")
            .await?;
        let show = caller.role != Role::Auditor;
        let (rows, next) = self.view.list(&filter, after, limit);
        Ok(Response::new(ListIntakesResponse {
            intakes: rows.iter().map(|row| summary(row, show)).collect(),
            next_page_token: baove_runtime::request::page_token(next),
        }))
    }

    async fn search_units(
        &self,
        request: Request<p::SearchUnitsRequest>,
    ) -> Result<Response<p::SearchUnitsResponse>, Status> {
        const DEFAULT_LIMIT: usize = 20;
        const MAX_LIMIT: u32 = 100;
        let r = request.into_inner();
        let mut v = Violations::default();
        let query = text::normalize(&r.query);
        if query.chars().count() > 100 {
            v.add("query", "must be at most 100 characters");
        } else if !query.chars().any(char::is_alphanumeric) {
            v.add("query", "is required: a word of the unit's name");
        }
        let on = if r.on.trim().is_empty() {
            Some(baove_domain::time::vietnam_date((self.clock)()))
        } else {
            v.check("on", baove_domain::time::parse_date(r.on.trim()))
        };
        if r.limit > MAX_LIMIT {
            v.add("limit", format!("must be at most {MAX_LIMIT}"));
        }
        let (Some(on), true) = (on, v.is_empty()) else {
            return Err(baove_runtime::status::violations(&v));
        };
        let limit = if r.limit == 0 {
            DEFAULT_LIMIT
        } else {
            r.limit as usize
        };
        let units = self
            .directory
            .search(&query, on, limit)
            .into_iter()
            .map(|m| {
                let successor_unit_ids = if m.valid_to.is_some_and(|to| to < on) {
                    self.directory
                        .successors_on(&m.id, on)
                        .into_iter()
                        .map(|u| u.id.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                p::UnitMatch {
                    unit_id: m.id,
                    kind: m.kind,
                    label: m.label,
                    province_id: m.province_id,
                    valid_to: m
                        .valid_to
                        .map(baove_domain::time::format_date)
                        .unwrap_or_default(),
                    successor_unit_ids,
                }
            })
            .collect();
        Ok(Response::new(p::SearchUnitsResponse { units }))
    }

    async fn erase_case(
        &self,
        request: Request<p::EraseCaseRequest>,
    ) -> Result<Response<p::EraseCaseResponse>, Status> {
        use baove_domain::intake::{CONFIDENTIAL_ERASED, ConfidentialErased};
        let caller = caller(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let request_id = v
            .check("request_id", text::request_id(&r.request_id))
            .unwrap_or_default();
        let case_id = Uuid::parse_str(r.case_id.trim()).ok();
        if case_id.is_none() {
            v.add("case_id", "must be a case id (UUID)");
        }
        let reason = text::normalize(&r.reason);
        if reason.trim().is_empty() {
            v.add("reason", "is required: the legal ground of the erasure");
        }
        let (Some(case_id), true) = (case_id, v.is_empty()) else {
            return Err(baove_runtime::status::violations(&v));
        };
        self.view.wait_for(self.log.last_position()).await?;
        let intakes = self.view.intakes_of_case(case_id);
        if intakes.is_empty() {
            return Err(Status::not_found(format!(
                "no report of intake went to case {case_id}"
            )));
        }
        let payload = ConfidentialErased {
            case_id: Some(case_id),
            reason,
        };
        let mut last = 0;
        for intake_id in &intakes {
            let stream = StreamId::from_uuid(*intake_id);
            self.keys
                .destroy(stream)
                .await
                .map_err(|e| Status::unavailable(format!("cannot destroy the data key: {e}")))?;
            // The append's flush makes the key's removal durable too.
            let appended = self
                .log
                .append(AppendRequest {
                    stream,
                    expected: ExpectedVersion::Any,
                    command_id: format!("erase:{request_id}:{intake_id}"),
                    actor: baove_audit::access::actor(&caller),
                    causation_id: String::new(),
                    correlation_id: case_id.to_string(),
                    events: vec![
                        NewEvent::new(CONFIDENTIAL_ERASED, d::SCHEMA_VERSION, &payload)
                            .map_err(|e| from_log(&e))?,
                    ],
                    // Published: casework erases the case's private text
                    // (notes, assessments, plans) when it receives it.
                    publish: true,
                })
                .await
                .map_err(|e| from_log(&e))?;
            last = last.max(appended.last_position);
        }
        self.view.wait_for(last).await?;
        tracing::warn!(case_id = %case_id, user = %caller.user_id, "confidential fields erased");
        Ok(Response::new(p::EraseCaseResponse {
            intake_ids: intakes.iter().map(Uuid::to_string).collect(),
        }))
    }
}

/// The proto service, ready for the router.
#[must_use]
pub fn server(api: IntakeApi) -> p::intake_service_server::IntakeServiceServer<IntakeApi> {
    p::intake_service_server::IntakeServiceServer::new(api)
}

/// The refusal of a report each of whose fields is within its limit but
/// which, sealed, is larger than one event may be
/// ([`baove_eventlog::envelope::MAX_PAYLOAD_BYTES`]): names the report (`report` or
/// `notification`) and the free-text fields to shorten.
fn too_long_to_store(report: &Report) -> Status {
    let field = match report {
        Report::Hotline { .. } => "report",
        Report::Police { .. } => "notification",
    };
    invalid_argument(
        field,
        &format!(
            "is too long to store as one report: sealed, its text takes more than {} KiB \
             (about 45,000 bytes of text altogether); shorten the longest free text \
             (facts.narrative, facts.child.current_condition, facts.actions_taken, \
             facts.likely_consequence{})",
            baove_eventlog::envelope::MAX_PAYLOAD_BYTES / 1024,
            if field == "notification" {
                ", support_needed"
            } else {
                ""
            }
        ),
    )
}
