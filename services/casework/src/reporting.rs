//! `baove.v1.ReportingService`: the statistics of `baove_domain::stats`
//! over casework's log.
//!
//! A projection follows the log and keeps every case's record with the
//! global position it has applied, under one lock, so that the current
//! table and the position it states always agree. A table at an earlier
//! position is recomputed from the events up to it: the same position
//! gives the same bytes.

use std::sync::{Arc, RwLock};

use baove_domain::case::CaseEvent;
use baove_domain::stats::{self, Definitions, Period, Records, Row};
use baove_eventlog::{Envelope, EventLog};
use baove_proto::v1::{self as p, reporting_service_server::ReportingService};
use baove_runtime::auth::caller;
use baove_runtime::projection::Follower;
use baove_runtime::status::{from_log, invalid_argument};
use baove_security::Role;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Records and the position they stand at.
#[derive(Default)]
struct State {
    records: Records,
    position: u64,
}

fn apply(state: &mut State, envelope: &Envelope) {
    if let Ok(event) = CaseEvent::decode(
        &envelope.event_type,
        envelope.schema_version,
        &envelope.payload,
    ) {
        state.records.apply(
            *envelope.stream_id.as_uuid(),
            &event,
            envelope.recorded_at_ms,
        );
    }
    state.position = envelope.global_position;
}

/// The statistics projection and API.
pub struct Reporting {
    state: RwLock<State>,
    follower: Follower,
    defs: Definitions,
    log: EventLog,
    directory: Arc<baove_domain::reference::Directory>,
    access: baove_audit::access::AccessLog,
    /// The province this casework keeps (its partition), named in each
    /// table; `None`: every province.
    province: Option<String>,
}

impl Reporting {
    /// An empty projection over `log`, of `province`'s partition (`None`:
    /// every province); refusals go to `access`.
    #[must_use]
    pub fn new(
        log: EventLog,
        defs: Definitions,
        directory: Arc<baove_domain::reference::Directory>,
        access: baove_audit::access::AccessLog,
        province: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            province,
            state: RwLock::default(),
            follower: Follower::named("statistics"),
            defs,
            log,
            directory,
            access,
        })
    }

    /// Folds the log, then follows it until `cancel`.
    pub async fn follow(self: Arc<Self>, cancel: CancellationToken) {
        let log = self.log.clone();
        self.follower
            .follow(&log, &cancel, |envelope| {
                let mut state = self
                    .state
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                apply(&mut state, envelope);
            })
            .await;
    }

    /// The table for `period` and `unit` at `as_of` (0: now), and the
    /// position it was computed up to.
    ///
    /// # Errors
    /// A position beyond the log; the log unreadable.
    pub async fn table(
        &self,
        period: &Period,
        unit: Option<&str>,
        as_of: u64,
        compare: bool,
    ) -> Result<(Vec<Row>, u64), Status> {
        let compute = |records: &Records| {
            let mut rows = stats::indicators(records, period, unit, &self.directory, &self.defs);
            if compare {
                let earlier = stats::indicators(
                    records,
                    &period.year_earlier(),
                    unit,
                    &self.directory,
                    &self.defs,
                );
                stats::compare(&mut rows, &earlier);
            }
            rows
        };
        // What a reader may be shown: in a cluster, what the cluster stored.
        let last = self.log.readable_position();
        if as_of > last {
            return Err(invalid_argument(
                "as_of_position",
                &format!("is beyond the log, which ends at {last}"),
            ));
        }
        if as_of == 0 {
            self.follower.wait_for(last).await?;
            let state = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return Ok((compute(&state.records), state.position));
        }
        // An earlier position: folded again from the start, as an auditor
        // would. (Records skip the access log and checkpoints as the live
        // projection does.)
        let mut state = State::default();
        let mut from = 1;
        while from <= as_of {
            let page = self
                .log
                .read_all(from, 1000)
                .await
                .map_err(|e| from_log(&e))?;
            let Some(end) = page.last().map(|e| e.global_position) else {
                break;
            };
            for envelope in page
                .iter()
                .filter(|e| e.global_position <= as_of)
                .filter(|e| !baove_audit::access::is_record_stream(e))
            {
                apply(&mut state, envelope);
            }
            from = end + 1;
        }
        Ok((compute(&state.records), as_of))
    }

    fn small_cells_hidden(role: Role) -> bool {
        !matches!(role, Role::ProvinceOfficer | Role::Auditor)
    }

    async fn answer(
        &self,
        caller: &baove_security::Caller,
        rpc: &str,
        r: p::GetIndicatorsRequest,
    ) -> Result<p::IndicatorTable, Status> {
        let period = Period::parse(&r.period).map_err(|rule| invalid_argument("period", &rule))?;
        let unit = Some(r.unit_id.trim())
            .filter(|u| !u.is_empty())
            .map(|u| self.directory.canonical_unit(u));
        if let Some(u) = unit
            && self.directory.unit_name(u, period.last_day).is_none()
        {
            return Err(invalid_argument(
                "unit_id",
                &format!("unknown administrative unit {u:?}"),
            ));
        }
        // Commune officers see the indicators of their own units only: a
        // province-wide table breaks counts down by commune, and another
        // commune's small counts are not theirs to see.
        if caller.role == Role::CommuneOfficer
            && !unit.is_some_and(|u| baove_runtime::auth::covers(caller, &self.directory, u))
        {
            return Err(self
                .access
                .refuse(
                    caller,
                    rpc,
                    None,
                    &format!("indicators:{}", baove_domain::text::clip(unit.unwrap_or("province"), 64)),
                    "commune officers see the indicators of their own units: give unit_id, one of the units in your token",
                )
                .await);
        }
        let (mut rows, position) = self
            .table(&period, unit, r.as_of_position, r.compare_previous_year)
            .await?;
        // Units and agencies by their names at the end of the period (the
        // key keeps the stable id).
        for row in &mut rows {
            let name = match row.dimension.as_str() {
                "unit" => self.directory.unit_name(&row.key, period.last_day),
                "agency" => self.directory.agency_name(&row.key, period.last_day),
                _ => None,
            };
            if let Some(name) = name {
                row.label_en = name.to_owned();
                row.label_vi = name.to_owned();
            }
        }
        let hidden = Self::small_cells_hidden(caller.role);
        if hidden {
            stats::suppress_small_cells(&mut rows, self.defs.small_cell_threshold);
        }
        Ok(p::IndicatorTable {
            period: period.label.clone(),
            first_day: baove_domain::time::format_date(period.first_day),
            last_day: baove_domain::time::format_date(period.last_day),
            unit_id: unit.unwrap_or_default().to_owned(),
            as_of_position: position,
            small_cells_suppressed: hidden,
            province_id: self.province.clone().unwrap_or_default(),
            rows: rows
                .into_iter()
                .map(|row| p::IndicatorRow {
                    indicator: row.indicator,
                    indicator_en: row.indicator_en,
                    indicator_vi: row.indicator_vi,
                    dimension: row.dimension,
                    key: row.key,
                    label_en: row.label_en,
                    label_vi: row.label_vi,
                    value: row.value,
                    of: row.of,
                    unit: row.unit,
                    has_previous: row.previous.is_some(),
                    previous: row.previous.unwrap_or_default(),
                    suppressed: row.suppressed,
                })
                .collect(),
        })
    }
}

/// The table as CSV: UTF-8 with a byte order mark (so that spreadsheets
/// read the Vietnamese labels right), one header line, one line per cell.
///
/// # Errors
/// When the CSV writer fails (it does not, writing to memory).
pub fn to_csv(table: &p::IndicatorTable) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
    out.write_record([
        "period",
        "unit_id",
        "as_of_position",
        "indicator",
        "indicator_en",
        "indicator_vi",
        "dimension",
        "key",
        "label_en",
        "label_vi",
        "value",
        "of",
        "unit",
        "previous",
        "suppressed",
    ])?;
    let position = table.as_of_position.to_string();
    for row in &table.rows {
        let value = if row.suppressed {
            String::new()
        } else {
            row.value.to_string()
        };
        let of = if row.of == 0 {
            String::new()
        } else {
            row.of.to_string()
        };
        let previous = if row.has_previous && !row.suppressed {
            row.previous.to_string()
        } else {
            String::new()
        };
        out.write_record([
            table.period.as_str(),
            table.unit_id.as_str(),
            position.as_str(),
            row.indicator.as_str(),
            row.indicator_en.as_str(),
            row.indicator_vi.as_str(),
            row.dimension.as_str(),
            row.key.as_str(),
            row.label_en.as_str(),
            row.label_vi.as_str(),
            value.as_str(),
            of.as_str(),
            row.unit.as_str(),
            previous.as_str(),
            if row.suppressed { "yes" } else { "" },
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// Serves ReportingService.
#[derive(Clone)]
pub struct ReportingApi(pub Arc<Reporting>);

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    async fn get_indicators(
        &self,
        request: Request<p::GetIndicatorsRequest>,
    ) -> Result<Response<p::GetIndicatorsResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let table = self.0.answer(&caller, &rpc, request.into_inner()).await?;
        Ok(Response::new(p::GetIndicatorsResponse {
            table: Some(table),
        }))
    }

    async fn export_indicators(
        &self,
        request: Request<p::ExportIndicatorsRequest>,
    ) -> Result<Response<p::ExportIndicatorsResponse>, Status> {
        let caller = caller(&request)?;
        let rpc = baove_runtime::auth::rpc(&request);
        let r = request.into_inner();
        let asked = p::GetIndicatorsRequest {
            period: r.period,
            unit_id: r.unit_id,
            as_of_position: r.as_of_position,
            compare_previous_year: r.compare_previous_year,
        };
        let table = self.0.answer(&caller, &rpc, asked).await?;
        let csv =
            to_csv(&table).map_err(|e| Status::internal(format!("cannot write the CSV: {e}")))?;
        let unit = if table.unit_id.is_empty() {
            "all".to_owned()
        } else {
            table.unit_id.replace([':', '/'], "-")
        };
        Ok(Response::new(p::ExportIndicatorsResponse {
            csv,
            as_of_position: table.as_of_position,
            file_name: format!(
                "baove-indicators-{}-{unit}-at-{}.csv",
                table.period.replace("..", "_to_"),
                table.as_of_position
            ),
        }))
    }
}
