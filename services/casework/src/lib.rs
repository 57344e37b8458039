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
//! `BAOVE_REFERRAL_KEYS`, a copy in the `referral-keys` side tree), and
//! the erasure destroys the keys of the case's referrals first.
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

use baove_bus::{ConsumerSpec, run_consumer};
use baove_runtime::Config;
use baove_runtime::node::{OnBus, Parts, ServiceSpec};
use tokio_util::sync::CancellationToken;

/// What distinguishes casework at start-up.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "casework",
    stream: baove_bus::CASE,
    log_stream: baove_bus::logstream::CASE_LOG,
    other_streams: &[baove_bus::ALERT],
    grpc_services: &["baove.v1.CaseService", "baove.v1.ReportingService"],
    consumers: &[
        "casework",
        "casework-alerts",
        "casework-referrals",
        "casework-erasures",
    ],
    side_trees: &["data-keys", baove_runtime::referral_keys::LOCAL_TREE],
    side_trees_replicated: true,
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
                .with_referrals(referral_keys),
        );
        let cases = model::Cases::new();
        let follower =
            tokio::spawn(
                cases
                    .clone()
                    .follow(ctx.log.clone(), case_keys, ctx.cancel.clone()),
            );
        // Deadlines are recorded by the active; a standby follows them, and
        // starts recording them when it becomes the active.
        let scheduler = ctx.spawn_when_active(deadlines::scheduler(
            ctx.log.clone(),
            cases.clone(),
            rules.clone(),
            SCHEDULER_TICK,
            ctx.cancel.clone(),
        ));
        let (log, cancel, consumer_rules) = (ctx.log.clone(), ctx.cancel.clone(), rules.clone());
        let erasing = private.clone();
        let referral_private = private.clone();
        // Deadline alerts go to the webhooks and e-mail of their commune, if any.
        let endpoints = ctx.config.alert_endpoints()?.map(Arc::new);
        let on_bus: OnBus = Box::new(move |bus| {
            Box::pin(async move {
                let js = bus.js.clone();
                let intake = run_consumer(
                    bus.clone(),
                    log.clone(),
                    ConsumerSpec {
                        stream: baove_bus::INTAKE,
                        durable: "casework".into(),
                        filter_subject: format!(
                            "{}.{}",
                            baove_bus::INTAKE.prefix,
                            baove_domain::intake::INTAKE_RECORDED
                        ),
                    },
                    cases::OpenCases {
                        log: log.clone(),
                        rules: consumer_rules.clone(),
                    },
                    cancel.clone(),
                );
                if let Err(e) = baove_bus::ensure_stream(&js, baove_bus::ALERT, bus.replicas).await
                {
                    tracing::warn!(error = %e, "alert stream not ready yet; the alerter retries");
                }
                let alerts = run_consumer(
                    bus.clone(),
                    log.clone(),
                    ConsumerSpec {
                        stream: baove_bus::CASE,
                        durable: "casework-alerts".into(),
                        filter_subject: format!("{}.>", baove_bus::CASE.prefix),
                    },
                    deadlines::Alerts {
                        log: log.clone(),
                        js: js.clone(),
                        directory: consumer_rules.directory.clone(),
                    },
                    cancel.clone(),
                );
                let deliveries = baove_runtime::delivery::run(
                    bus.clone(),
                    <baove_bus::alert::DeadlineAlert as baove_bus::alert::Alert>::KIND,
                    "casework-deliveries".into(),
                    endpoints,
                    cancel.clone(),
                );
                let erasures = run_consumer(
                    bus.clone(),
                    log.clone(),
                    ConsumerSpec {
                        stream: baove_bus::INTAKE,
                        durable: "casework-erasures".into(),
                        filter_subject: format!(
                            "{}.{}",
                            baove_bus::INTAKE.prefix,
                            baove_domain::intake::CONFIDENTIAL_ERASED
                        ),
                    },
                    cases::EraseText {
                        log: log.clone(),
                        private: erasing,
                    },
                    cancel.clone(),
                );
                let referrals = run_consumer(
                    bus,
                    log.clone(),
                    ConsumerSpec {
                        stream: baove_bus::REFERRAL,
                        durable: "casework-referrals".into(),
                        filter_subject: format!("{}.>", baove_bus::REFERRAL.prefix),
                    },
                    cases::RecordReferralSteps {
                        log,
                        private: referral_private,
                    },
                    cancel,
                );
                tokio::join!(intake, alerts, erasures, referrals, deliveries);
            })
        });
        let reporting = reporting::Reporting::new(
            ctx.log.clone(),
            ctx.config.statistics()?,
            rules.directory.clone(),
            ctx.access.clone(),
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
            on_bus: Some(on_bus),
            private: Some(private),
        })
    })
    .await
}
