//! The casework service: runs each case through the Decree 56/2017
//! procedure as one append-only case log.
//!
//! It opens cases from intake reports (a new report opens a case whose id
//! derives from the intake's; a follow-up naming an open case is attached),
//! carries the procedure's steps (`CaseService`, one RPC per step, decided
//! by `baove_domain::case::procedure`), and keeps the legal deadlines: a
//! scheduler appends warnings and misses once each, and an alerter publishes
//! them on `baove.alert.deadline.<commune unit id>`.
//!
//! # Layout
//! - [`SPEC`], [`run`]: the service and its start-up.
//! - `cases`: the intake consumer's handler, referral steps copied into the
//!   case, a case as it stood at a moment (`ReplayCase`).
//! - `api`: `baove.v1.CaseService`: the handlers, one per RPC; a step's
//!   handler is one line onto the command path
//!   (`baove_runtime::command`: load, check, decide, append).
//! - `requests`: a step's request as the procedure's command (pure).
//! - `rules`: what deciding needs besides the case (calendar, clock).
//! - `scope`: who may read a case (pure, unit-tested).
//! - `convert`: the case and its summary as proto messages.
//! - `model`: the case read model (ListCases, due deadlines).
//! - `deadlines`: the scheduler, the alerter.
//! - `alerts`: WatchDeadlines, the alerts of the cases a caller may read,
//!   live from the log (for the console, which is not on NATS).
//! - `reporting`: `baove.v1.ReportingService`, the statistics projection.
//!
//! Private text: each step's free text (summaries, risk factors, measures,
//! notes...) is sealed under the case's data key before it is appended
//! (`baove_runtime::private`, keys in the `data-keys` side tree and, in a
//! cluster, the bucket `BAOVE_CASE_KEYS`) and opened for readers; an
//! erasure at intake (`ConfidentialErased`, consumer `casework-erasures`,
//! `cases::EraseText`) destroys the key and records `PrivateTextErased`.
//! A referral's reason is sealed under the referral's own key, shared with
//! the referral service (`baove_runtime::referral_keys`: bucket
//! `BAOVE_REFERRAL_KEYS`, a copy in the `referral-keys` side tree, which
//! a standby's read model takes from the bucket as it follows each
//! request), and the erasure destroys the keys of the case's referrals
//! first.
//!
//! Referrals: `RequestReferral` records the request on the case (consent
//! checked); the referral service offers it; each step it publishes comes
//! back here and is appended to the case's log (`ReferralStepRecorded`). An
//! accepted transfer moves the case to the receiving commune.

mod alerts;
mod api;
mod cases;
mod convert;
mod deadlines;
mod model;
mod reporting;
mod requests;
mod rules;
mod scope;
#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::time::Duration;

use baove_runtime::Config;
use baove_runtime::node::{Consumer, Delivery, Parts, ServiceSpec};
use tokio_util::sync::CancellationToken;

/// What distinguishes casework at start-up.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "casework",
    stream: baove_bus::CASE,
    log_stream: baove_bus::logstream::CASE_LOG,
    other_streams: &[baove_bus::ALERT],
    grpc_services: &["baove.v1.CaseService", "baove.v1.ReportingService"],
    side_trees: &["data-keys", baove_runtime::referral_keys::LOCAL_TREE],
    side_trees_replicated: true,
    buckets: &[
        baove_bus::kv::CASE_KEYS.name,
        baove_bus::kv::REFERRAL_KEYS.name,
    ],
};

/// How often the scheduler looks for due deadlines.
const SCHEDULER_TICK: Duration = Duration::from_secs(1);

/// Runs the service until `shutdown` fires.
///
/// # Errors
/// When start-up fails (event log, port, calendar) or the server fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    baove_runtime::node::run(SPEC, config, shutdown, |ctx| {
        let rules = rules::Rules {
            calendar: Arc::new(ctx.config.calendar()?),
            clock: ctx.config.clock(),
            warn_share: ctx.config.deadline_warn_share,
            directory: ctx.directory.clone(),
        };
        let master_key_file = ctx.config.master_key_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "missing setting master_key_file (BAOVE_MASTER_KEY_FILE): casework seals the private text of cases with it"
            )
        })?;
        let master = baove_security::seal::Key::read_master(master_key_file)?;
        // In a cluster the cases' keys are also kept in the cluster's bucket.
        let cluster = (ctx.config.stream_replicas > 1).then(|| {
            (
                ctx.bus.clone(),
                ctx.config.stream_replicas,
                baove_bus::kv::CASE_KEYS,
            )
        });
        let referral_key_file = ctx.config.referral_key_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "missing setting referral_key_file (BAOVE_REFERRAL_KEY_FILE): casework seals each referral's reason with a key it shares with the referral service through this file"
            )
        })?;
        let referral_keys = Arc::new(
            baove_runtime::referral_keys::ReferralKeys::new(
                ctx.bus.clone(),
                ctx.config.stream_replicas,
                baove_security::seal::Key::read_master(referral_key_file)?,
                true,
            )
            .with_local_copy(ctx.log.side_tree(baove_runtime::referral_keys::LOCAL_TREE)?),
        );
        let sweep = tokio::spawn(referral_keys.clone().keep_bucket(ctx.cancel.clone()));
        let case_keys = Arc::new(baove_runtime::keys::KeyStore::open(
            &ctx.log, master, cluster,
        )?);
        let private = Arc::new(
            baove_runtime::private::PrivateText::new(case_keys.clone())
                .with_referrals(referral_keys.clone()),
        );
        let cases = model::Cases::new();
        let follower = tokio::spawn(cases.clone().follow(
            ctx.log.clone(),
            case_keys,
            Some(referral_keys),
            ctx.cancel.clone(),
        ));
        // Deadlines are recorded by the active; a standby follows them, and
        // starts recording them when it becomes the active.
        let scheduler = ctx.spawn_when_active(deadlines::scheduler(
            ctx.log.clone(),
            cases.clone(),
            rules.clone(),
            SCHEDULER_TICK,
            ctx.cancel.clone(),
        ));
        let consumers = vec![
            // A report from intake opens a case.
            Consumer::new(
                ctx.stream(baove_bus::INTAKE),
                "casework",
                Some(baove_domain::intake::INTAKE_RECORDED),
                cases::OpenCases {
                    log: ctx.log.clone(),
                    rules: rules.clone(),
                },
            ),
            // Deadline warnings and misses become alerts to their commune.
            Consumer::with_bus(ctx.stream(baove_bus::CASE), "casework-alerts", None, {
                let (log, directory) = (ctx.log.clone(), rules.directory.clone());
                let stream = ctx.stream(baove_bus::ALERT);
                move |bus| deadlines::Alerts {
                    log,
                    js: bus.js.clone(),
                    stream,
                    directory,
                }
            }),
            // A report's confidential fields erased in intake erase the
            // case's copy of them.
            Consumer::new(
                ctx.stream(baove_bus::INTAKE),
                "casework-erasures",
                Some(baove_domain::intake::CONFIDENTIAL_ERASED),
                cases::EraseText {
                    log: ctx.log.clone(),
                    private: private.clone(),
                },
            ),
            // The steps of a referral come back into its case.
            Consumer::new(
                ctx.stream(baove_bus::REFERRAL),
                "casework-referrals",
                None,
                cases::RecordReferralSteps {
                    log: ctx.log.clone(),
                    private: private.clone(),
                },
            ),
        ];
        // Deadline alerts go to the webhooks and e-mail of their commune, if any.
        let deliveries = vec![Delivery {
            kind: <baove_bus::alert::DeadlineAlert as baove_bus::alert::Alert>::KIND,
            stream: ctx.stream(baove_bus::ALERT),
            durable: "casework-deliveries",
            endpoints: ctx.config.alert_endpoints()?.map(Arc::new),
        }];
        let reporting = reporting::Reporting::new(
            ctx.log.clone(),
            ctx.config.statistics()?,
            rules.directory.clone(),
            ctx.access.clone(),
            ctx.partition.as_ref().map(|p| p.province().to_owned()),
        );
        let statistics = tokio::spawn(reporting.clone().follow(ctx.cancel.clone()));
        Ok(Parts {
            routes: tonic::service::Routes::new(
                api::CaseApi::new(
                    ctx.log.clone(),
                    rules,
                    cases,
                    ctx.stopping.clone(),
                    ctx.access.clone(),
                    private.clone(),
                )
                .into_server(),
            )
            .add_service(
                baove_proto::v1::reporting_service_server::ReportingServiceServer::new(
                    reporting::ReportingApi(reporting),
                ),
            ),
            tasks: vec![follower, scheduler, statistics, sweep],
            consumers,
            deliveries,
            on_bus: None,
            private: Some(private),
        })
    })
    .await
}
