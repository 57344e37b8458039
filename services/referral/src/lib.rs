//! The referral service: interagency handoffs. It offers each referral a
//! case requested to the receiving agency's inbox (a merged agency's
//! successor), carries the agency's steps (acknowledge, accept or decline,
//! outcome, complete; revoke by the requester), escalates unacknowledged
//! referrals once and alerts the supervising agency, and keeps the agency
//! directory's changes (renames, mergers) as events.
//!
//! # Layout
//! - [`SPEC`], [`run`]: the service and its start-up.
//! - `model`: referrals and the directory, folded from referral's log.
//! - `flows`: offering, escalating, alerting.
//! - `scope`: who may read an inbox, see a referral, take a step (pure,
//!   unit-tested).
//! - `api`: `baove.v1.ReferralService`: steps on the command path
//!   (`baove_runtime::command`), the inbox as a feed of `history::tail`.

mod api;
mod flows;
mod model;
mod scope;

use std::sync::Arc;
use std::time::Duration;

use baove_runtime::Config;
use baove_runtime::node::{Consumer, Delivery, Parts, ServiceSpec};
use tokio_util::sync::CancellationToken;

/// What distinguishes referral at start-up.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "referral",
    stream: baove_bus::REFERRAL,
    log_stream: baove_bus::logstream::REFERRAL_LOG,
    other_streams: &[baove_bus::ALERT],
    grpc_services: &["baove.v1.ReferralService"],
    side_trees: &[],
    side_trees_replicated: false,
    buckets: &[],
};

/// How often escalations are looked for.
const ESCALATION_TICK: Duration = Duration::from_secs(1);

/// Runs the service until `shutdown` fires.
///
/// # Errors
/// When start-up fails (event log, port, reference data, calendar) or the
/// server fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    baove_runtime::node::run(SPEC, config, shutdown, |ctx| {
        let referrals = model::Referrals::new((*ctx.directory).clone());
        let calendar = Arc::new(ctx.config.calendar()?);
        let clock = ctx.config.clock();
        let follower = tokio::spawn(
            referrals
                .clone()
                .follow(ctx.log.clone(), ctx.cancel.clone()),
        );
        // Escalations are recorded by the active; a standby follows them, and
        // starts recording them when it becomes the active.
        let escalator = ctx.spawn_when_active(flows::escalate(
            ctx.log.clone(),
            referrals.clone(),
            clock.clone(),
            ESCALATION_TICK,
            ctx.cancel.clone(),
        ));
        let referral_key_file = ctx.config.referral_key_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "missing setting referral_key_file (BAOVE_REFERRAL_KEY_FILE): the referral service opens and seals each referral's reasons and outcome with the key it shares with casework through this file"
            )
        })?;
        let private = Arc::new(baove_runtime::private::PrivateText::for_referrals(
            Arc::new(baove_runtime::referral_keys::ReferralKeys::new(
                ctx.bus.clone(),
                ctx.config.stream_replicas,
                baove_security::seal::Key::read_master(referral_key_file)?,
                false,
            )),
        ));
        let api = api::ReferralApi::new(
            ctx.log.clone(),
            referrals.clone(),
            ctx.stopping.clone(),
            ctx.access.clone(),
            private,
        );
        let consumers = vec![
            // A referral requested in a case is offered to its agency.
            Consumer::new(
                ctx.stream(baove_bus::CASE),
                "referral",
                Some("ReferralRequested"),
                flows::Offer {
                    log: ctx.log.clone(),
                    referrals,
                    calendar,
                    clock,
                },
            ),
            // An escalated referral becomes an alert to its agency.
            Consumer::with_bus(
                ctx.stream(baove_bus::REFERRAL),
                "referral-alerts",
                Some("ReferralEscalated"),
                {
                    let log = ctx.log.clone();
                    let stream = ctx.stream(baove_bus::ALERT);
                    move |bus| flows::Alerts {
                        log,
                        js: bus.js.clone(),
                        stream,
                    }
                },
            ),
        ];
        // Escalation alerts go to the webhooks and e-mail of their agency, if any.
        let deliveries = vec![Delivery {
            kind: <baove_bus::alert::ReferralAlert as baove_bus::alert::Alert>::KIND,
            stream: ctx.stream(baove_bus::ALERT),
            durable: "referral-deliveries",
            endpoints: ctx.config.alert_endpoints()?.map(Arc::new),
        }];
        Ok(Parts {
            routes: tonic::service::Routes::new(api.into_server()),
            tasks: vec![follower, escalator],
            consumers,
            deliveries,
            on_bus: None,
            private: None,
        })
    })
    .await
}
