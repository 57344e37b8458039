//! Prometheus metrics, through the `metrics` facade and its Prometheus
//! exporter, on their own HTTP listener (`metrics_listen`; none by
//! default, so nothing listens unless an operator asks).
//!
//! What is measured (every name starts with `baove_`):
//! - `grpc_requests_total{method, code}` and
//!   `grpc_request_duration_seconds{method}`: every call that passed the
//!   token check, by gRPC method path and status code
//!   ([`crate::auth`] records them);
//! - `eventlog_position{log}`: the last global position of the event log
//!   and of the access log (how far each has grown);
//! - `outbox_backlog`: events stored but not yet acknowledged by JetStream
//!   (counted up to 10,000), and `outbox_oldest_age_seconds`: how long the
//!   oldest of them has waited (an alert when it passes a minute: the bus
//!   is not taking the service's events);
//! - `parked_messages{consumer}`: messages a consumer could never apply,
//!   kept whole in the log (each one is a report or step that did not
//!   arrive where it should);
//! - `consumer_pending{consumer}` (its lag: messages of the stream not yet
//!   handed to it, as of its last message) and
//!   `consumer_redelivered_total{consumer}` (a consumer stuck on a message
//!   sees it again and again), kept by `baove_bus`;
//! - `referrals_awaiting_acknowledgement` and `referrals_escalated_total`
//!   (referral): offers no agency has taken up yet, and escalations;
//! - `deadlines_missed_total{kind}`, `deadlines_warned_total{kind}`
//!   (casework): each miss or warning the scheduler recorded; a missed
//!   `emergency` deadline is a child left without action for 12 hours;
//! - `alert_deliveries_total{kind, channel, outcome}` and
//!   `alert_delivery_oldest_age_seconds{kind}` (casework, referral): alerts
//!   sent to webhooks and e-mail ([`crate::delivery`]), and how long the
//!   one being retried has waited;
//! - `health_serving{service}`: 1 while the process serves `service` as
//!   SERVING on `grpc.health.v1`, 0 while NOT_SERVING (`process` is the
//!   whole process, `baove.active` whether it takes writes, `baove.bus`
//!   whether every bus part makes progress), so that an alert sees what a
//!   load balancer sees;
//! - `eventlog_appended_events_total{log}`, `eventlog_group_size{log}`
//!   (appends per group commit), `eventlog_sync_seconds{log}` (one
//!   fdatasync of the write-ahead file) and `eventlog_size_bytes{log}`, for the event log and the
//!   access log (whose appends are the reads recorded);
//! - `relay_publish_seconds{stream}`: one publish of the outbox relay until
//!   JetStream's ack;
//! - `read_model_position{model}`: how far each read model applied the log
//!   (behind `eventlog_position`: readers wait);
//! - `deadlines_due_soon{kind}` (casework): open deadlines falling due
//!   within 2 hours;
//! - `nats_connected`: 1 while the NATS connection is up;
//! - the process's own figures (`process_resident_memory_bytes`,
//!   `process_cpu_seconds_total`, `process_open_fds`...,
//!   `metrics-process`);
//! - `chain_verification_failures_total{check}`: a hash chain or a copy of
//!   the log that did not verify (`audit`, `follower`, `relay`:
//!   [`baove_bus::CHAIN_FAILURES`]); any increase means a log was altered
//!   or two processes wrote one log.
//!
//! No label carries a confidential value: labels are method paths, status
//! codes, log and consumer names.

use std::net::SocketAddr;
use std::time::Duration;

use baove_eventlog::EventLog;
use tokio_util::sync::CancellationToken;

/// Calls by method and code.
pub const GRPC_REQUESTS: &str = "baove_grpc_requests_total";
/// Call durations by method.
pub const GRPC_DURATION: &str = "baove_grpc_request_duration_seconds";
/// The last global position of a log.
pub const LOG_POSITION: &str = "baove_eventlog_position";
/// Events not yet acknowledged by JetStream.
pub const OUTBOX_BACKLOG: &str = "baove_outbox_backlog";
/// Age of the oldest event waiting in the outbox.
pub const OUTBOX_OLDEST_AGE: &str = "baove_outbox_oldest_age_seconds";
/// Messages parked by a consumer.
pub const PARKED: &str = "baove_parked_messages";
/// 1 while a health service name is SERVING, 0 while NOT_SERVING.
pub const HEALTH_SERVING: &str = "baove_health_serving";
/// The last global position a read model applied, by model.
pub const READ_MODEL_POSITION: &str = "baove_read_model_position";
/// 1 while the NATS connection is up, 0 while it is not.
pub const NATS_CONNECTED: &str = "baove_nats_connected";
/// A log's files on disk, in bytes, by log.
pub const LOG_SIZE: &str = "baove_eventlog_size_bytes";
/// Open deadlines falling due within the next 2 hours, by kind (casework).
pub const DEADLINES_DUE_SOON: &str = "baove_deadlines_due_soon";

/// Deadlines missed, by kind (casework).
pub const DEADLINES_MISSED: &str = "baove_deadlines_missed_total";
/// Deadlines warned before they fall due, by kind (casework).
pub const DEADLINES_WARNED: &str = "baove_deadlines_warned_total";

/// Referrals offered and not yet acknowledged (referral).
pub const REFERRALS_AWAITING_ACK: &str = "baove_referrals_awaiting_acknowledgement";
/// Referrals escalated to the supervising agency (referral).
pub const REFERRALS_ESCALATED: &str = "baove_referrals_escalated_total";

/// How many outbox events are counted at most.
const BACKLOG_COUNTED: usize = 10_000;

/// Serves the metrics on `listen` for the rest of the process.
///
/// # Errors
/// When the listener cannot be set up (the address is taken...).
pub fn install(listen: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
        )?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(baove_eventlog::GROUP_SIZE.into()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
        )?
        .install()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {listen}: {e}"))?;
    metrics::describe_counter!(GRPC_REQUESTS, "gRPC calls by method and status code");
    metrics::describe_histogram!(
        GRPC_DURATION,
        metrics::Unit::Seconds,
        "gRPC call durations by method"
    );
    metrics::describe_gauge!(LOG_POSITION, "last global position of the log");
    metrics::describe_gauge!(
        OUTBOX_BACKLOG,
        "events stored but not yet acknowledged by JetStream (counted up to 10,000)"
    );
    metrics::describe_gauge!(
        OUTBOX_OLDEST_AGE,
        metrics::Unit::Seconds,
        "how long the oldest unpublished event has waited"
    );
    metrics::describe_gauge!(PARKED, "messages a consumer could never apply");
    metrics::describe_counter!(
        DEADLINES_MISSED,
        "procedure deadlines missed, by kind (emergency is the 12-hour clock)"
    );
    metrics::describe_counter!(DEADLINES_WARNED, "procedure deadlines warned, by kind");
    metrics::describe_gauge!(
        REFERRALS_AWAITING_ACK,
        "referrals offered to an agency and not yet acknowledged"
    );
    metrics::describe_counter!(
        REFERRALS_ESCALATED,
        "referrals escalated to the supervising agency for want of an acknowledgement"
    );
    metrics::describe_counter!(
        crate::delivery::DELIVERIES,
        "alert deliveries, by kind, channel (webhook, email) and outcome (delivered, failed, no_endpoint)"
    );
    metrics::describe_gauge!(
        crate::delivery::DELIVERY_OLDEST_AGE,
        metrics::Unit::Seconds,
        "how long the alert being retried has waited since it was raised (0: none failing)"
    );
    metrics::describe_gauge!(
        baove_bus::CONSUMER_PENDING,
        "messages of the stream not yet handed to the consumer (its lag)"
    );
    metrics::describe_counter!(
        baove_bus::CONSUMER_REDELIVERED,
        "messages handed to the consumer again"
    );
    metrics::describe_gauge!(
        HEALTH_SERVING,
        "1 while the health service name is SERVING, 0 while NOT_SERVING"
    );
    metrics::describe_counter!(
        baove_bus::CHAIN_FAILURES,
        "hash chains or log copies that did not verify, by check (audit, follower, relay)"
    );
    metrics::describe_gauge!(
        READ_MODEL_POSITION,
        "last global position a read model applied (compare with baove_eventlog_position)"
    );
    metrics::describe_gauge!(NATS_CONNECTED, "1 while connected to NATS");
    metrics::describe_gauge!(
        baove_bus::replicas::REPLICAS_STALLED,
        "replicas of this service's streams and buckets that stopped catching up (in a cluster)"
    );
    metrics::describe_counter!(
        baove_bus::replicas::LEADER_STEP_DOWNS,
        "step-downs of a stream's leader asked for because a replica stalled, by stream"
    );
    metrics::describe_gauge!(LOG_SIZE, metrics::Unit::Bytes, "the log's files on disk");
    metrics::describe_gauge!(
        DEADLINES_DUE_SOON,
        "open procedure deadlines falling due within 2 hours, by kind"
    );
    metrics::describe_counter!(
        baove_eventlog::APPENDED,
        "events made durable in the log (the access log: reads recorded)"
    );
    metrics::describe_histogram!(
        baove_eventlog::GROUP_SIZE,
        "appends written by one group commit"
    );
    metrics::describe_histogram!(
        baove_eventlog::SYNC_SECONDS,
        metrics::Unit::Seconds,
        "one fdatasync of the log's write-ahead file"
    );
    metrics::describe_histogram!(
        baove_bus::RELAY_PUBLISH_SECONDS,
        metrics::Unit::Seconds,
        "one publish to the service's stream, until JetStream's ack"
    );
    metrics_process::Collector::default().describe();
    // Shown from 0, so that the first failure is an increase.
    for check in ["audit", "follower", "relay"] {
        metrics::counter!(baove_bus::CHAIN_FAILURES, "check" => check).absolute(0);
    }
    Ok(())
}

/// Samples the logs every `every` until `cancel`: positions, the outbox and
/// the messages parked by `consumers`.
pub async fn sample(
    log: EventLog,
    access_log: EventLog,
    consumers: Vec<String>,
    clock: baove_eventlog::Clock,
    every: Duration,
    cancel: CancellationToken,
) {
    let process = metrics_process::Collector::default();
    loop {
        process.collect();
        #[allow(clippy::cast_precision_loss)]
        {
            for (name, of) in [("event", &log), ("access", &access_log)] {
                if let Ok(bytes) = of.size_on_disk().await {
                    metrics::gauge!(LOG_SIZE, "log" => name).set(bytes as f64);
                }
            }
            metrics::gauge!(LOG_POSITION, "log" => "event").set(log.last_position() as f64);
            metrics::gauge!(LOG_POSITION, "log" => "access").set(access_log.last_position() as f64);
            if let Ok(waiting) = log.outbox(BACKLOG_COUNTED).await {
                metrics::gauge!(OUTBOX_BACKLOG).set(waiting.len() as f64);
                let age = waiting
                    .first()
                    .map_or(0, |e| (clock() - e.recorded_at_ms).max(0));
                metrics::gauge!(OUTBOX_OLDEST_AGE).set(age as f64 / 1000.0);
            }
            for consumer in &consumers {
                if let Ok(parked) = log.parked(consumer).await {
                    metrics::gauge!(PARKED, "consumer" => consumer.clone())
                        .set(parked.len() as f64);
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every metric the services declare, by its exposed name.
    const DECLARED: [&str; 26] = [
        super::GRPC_REQUESTS,
        super::GRPC_DURATION,
        super::LOG_POSITION,
        super::OUTBOX_BACKLOG,
        super::OUTBOX_OLDEST_AGE,
        super::PARKED,
        super::DEADLINES_MISSED,
        super::DEADLINES_WARNED,
        super::REFERRALS_AWAITING_ACK,
        super::REFERRALS_ESCALATED,
        baove_bus::CONSUMER_PENDING,
        baove_bus::CONSUMER_REDELIVERED,
        crate::delivery::DELIVERIES,
        crate::delivery::DELIVERY_OLDEST_AGE,
        super::HEALTH_SERVING,
        baove_bus::CHAIN_FAILURES,
        super::READ_MODEL_POSITION,
        super::NATS_CONNECTED,
        super::LOG_SIZE,
        super::DEADLINES_DUE_SOON,
        baove_eventlog::APPENDED,
        baove_eventlog::GROUP_SIZE,
        baove_eventlog::SYNC_SECONDS,
        baove_bus::RELAY_PUBLISH_SECONDS,
        baove_bus::replicas::REPLICAS_STALLED,
        baove_bus::replicas::LEADER_STEP_DOWNS,
    ];

    /// The `baove_*` metric names in `text` (a histogram's series by its
    /// name).
    fn named(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("baove_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.push(base.to_owned());
            rest = &tail[end..];
        }
        names
    }

    #[test]
    fn given_the_alert_rules_and_the_dashboard_then_every_metric_they_name_exists() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/observability");
        for file in ["alerts.yml", "dashboard.json"] {
            let text = std::fs::read_to_string(format!("{dir}/{file}"))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let names = named(&text);
            assert!(names.len() >= 10, "{file} names {} metrics", names.len());
            for name in names {
                assert!(
                    DECLARED.contains(&name.as_str()),
                    "{file} names {name}, which no service declares"
                );
            }
        }
        let dashboard: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/dashboard.json")).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("dashboard.json: {e}"));
        assert!(
            dashboard["panels"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
        );
    }

    #[test]
    fn given_text_then_metric_names_are_found_with_histogram_suffixes_removed() {
        assert_eq!(
            named("rate(baove_grpc_request_duration_seconds_bucket[5m]) + baove_outbox_backlog"),
            [
                "baove_grpc_request_duration_seconds",
                "baove_outbox_backlog"
            ]
        );
        assert_eq!(named("baove_nope_total"), ["baove_nope_total"]);
    }
}
