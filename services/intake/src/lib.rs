//! The intake service: receives 111 hotline reports and police
//! notifications (Mẫu 01), records each durably in its own log before
//! answering, and hands it to casework over NATS until casework confirms.
//!
//! # Layout
//! - [`SPEC`], [`run`]: the service and its start-up (see
//!   `baove_runtime::node` for the order).
//! - `api`: `baove.v1.IntakeService`: submit (idempotent on `request_id`),
//!   get, list, erase, and the search box for a report's place
//!   (`SearchUnits`). A report is placed in a commune of the official list
//!   (`deploy/reference/`) and routed to its responsible commune and
//!   province, so one intake serves the national hotline.
//! - `convert`: proto ↔ domain.
//! - `scope`: who may read a report, and how much of it (pure,
//!   unit-tested).
//! - `view`: the in-memory read model folded from intake's log.
//! - `handover`: applying casework's events, re-publishing unconfirmed
//!   reports.
//! - the per-report data keys that seal confidential fields are
//!   `baove_runtime::keys` (side tree `data-keys`, bucket `BAOVE_INTAKE_KEYS`).
//!
//! Confidential fields are sealed before a report is hashed, stored or
//! published; the read model opens them in memory only, and `GetIntake` /
//! `ListIntakes` show them according to the caller's role and scope.

mod api;
mod convert;
mod handover;
mod scope;
mod view;

use std::sync::Arc;
use std::time::Duration;

use baove_runtime::Config;
use baove_runtime::node::{Consumer, OnBus, Parts, ServiceSpec};
use tokio_util::sync::CancellationToken;

/// What distinguishes intake at start-up.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "intake",
    stream: baove_bus::INTAKE,
    log_stream: baove_bus::logstream::INTAKE_LOG,
    other_streams: &[],
    grpc_services: &["baove.v1.IntakeService"],
    side_trees: &["data-keys"],
    side_trees_replicated: true,
    buckets: &[baove_bus::kv::DATA_KEYS.name, baove_bus::lease::BUCKET],
};

/// Runs the service until `shutdown` fires.
///
/// # Errors
/// When start-up fails (event log, port, reference data) or the server fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    baove_runtime::node::run(SPEC, config, shutdown, |ctx| {
        let directory = ctx.directory.clone();
        let master_key_file = ctx.config.master_key_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "missing setting master_key_file (BAOVE_MASTER_KEY_FILE): intake seals confidential fields with it"
            )
        })?;
        let master = baove_security::seal::Key::read_master(master_key_file)?;
        // In a cluster the data keys are also kept in the cluster's bucket.
        let cluster = (ctx.config.stream_replicas > 1)
            .then(|| {
                (
                    ctx.bus.clone(),
                    ctx.config.stream_replicas,
                    baove_bus::kv::DATA_KEYS,
                )
            });
        let keys = Arc::new(baove_runtime::keys::KeyStore::open(
            &ctx.log, master, cluster,
        )?);
        let view = view::View::new(keys.clone());
        let follower = tokio::spawn(view.clone().follow(ctx.log.clone(), ctx.cancel.clone()));
        let clock = ctx.config.clock();
        let api = api::IntakeApi::new(
            ctx.log.clone(),
            view.clone(),
            directory,
            clock,
            keys,
            ctx.access.clone(),
            ctx.partition.as_ref().map(|p| p.province().to_owned()),
        );
        let (log, cancel) = (ctx.log.clone(), ctx.cancel.clone());
        let retry = Duration::from_secs(ctx.config.handover_retry_secs.max(1));
        // Casework's answers (a case opened, closed, reopened, a referral's
        // steps) are noted on the reports they concern.
        let consumers = vec![Consumer::new(
            ctx.stream(baove_bus::CASE),
            "intake",
            None,
            handover::HandOver {
                log: log.clone(),
                view: view.clone(),
            },
        )];
        // A report whose hand-over has not come back is published again.
        let stream = ctx.stream(baove_bus::INTAKE);
        let on_bus: OnBus = Box::new(move |bus| {
            Box::pin(handover::republish(log, view, bus, stream, retry, cancel))
        });
        Ok(Parts {
            routes: tonic::service::Routes::new(api::server(api)),
            tasks: vec![follower],
            consumers,
            deliveries: Vec::new(),
            on_bus: Some(on_bus),
            private: None,
        })
    })
    .await
}
