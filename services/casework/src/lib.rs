//! The casework service: runs each case through the Decree 56/2017
//! procedure as one append-only case log.
//!
//! Today it opens cases from intake reports (the hand-over: a new report
//! opens a case whose id derives from the intake's, a follow-up naming an
//! open case is attached to it) and serves `GetCase`. The procedure's
//! commands and deadlines come with issue 4.
//!
//! # Layout
//! - [`SPEC`], [`run`]: the service and its start-up.
//! - `cases`: the intake consumer's handler; loading a case.
//! - `api`: `baove.v1.CaseService`.

mod api;
mod cases;

use baove_bus::{ConsumerSpec, run_consumer};
use baove_runtime::Config;
use baove_runtime::node::{OnBus, Parts, ServiceSpec};
use tokio_util::sync::CancellationToken;

/// What distinguishes casework at start-up.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "casework",
    stream: baove_bus::CASE,
    grpc_services: &["baove.v1.CaseService"],
};

/// Runs the service until `shutdown` fires.
///
/// # Errors
/// When start-up fails (event log, port) or the server fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    baove_runtime::node::run(SPEC, config, shutdown, |ctx| {
        let (log, cancel) = (ctx.log.clone(), ctx.cancel.clone());
        let on_bus: OnBus = Box::new(move |js| {
            Box::pin(async move {
                let spec = ConsumerSpec {
                    stream: baove_bus::INTAKE,
                    durable: "casework".into(),
                    filter_subject: format!(
                        "{}.{}",
                        baove_bus::INTAKE.prefix,
                        baove_domain::intake::INTAKE_RECORDED
                    ),
                };
                let handler = cases::OpenCases { log: log.clone() };
                run_consumer(js, log, spec, handler, cancel).await;
            })
        });
        Ok(Parts {
            routes: tonic::service::Routes::new(api::CaseApi::new(ctx.log.clone()).into_server()),
            tasks: Vec::new(),
            on_bus: Some(on_bus),
        })
    })
    .await
}
