//! Metrics: a service started with `BAOVE_METRICS_LISTEN` serves Prometheus
//! metrics on that address: calls by method and code with their durations,
//! its logs' positions, its outbox and its consumers' parked messages.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use baove_testkit::{NatsServer, free_port};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::Service;
use crate::intake::{hotline, intake_client};

/// The metrics page at `addr`.
pub fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    page
}

/// The value of the sample `name{labels}` on `page` (labels as written).
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_serves_its_calls_logs_and_outbox_as_prometheus_metrics() {
    let nats = NatsServer::start().unwrap();
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let intake = Service::start_with(
        "intake",
        &nats.url(),
        tempfile::tempdir().unwrap(),
        &[("BAOVE_METRICS_LISTEN", addr.clone())],
    );
    intake.wait_health("", ServingStatus::Serving).await;
    let mut client = intake_client(&intake).await;
    client
        .submit_hotline_report(hotline("metrics-1", "Phan Thị Hạnh"))
        .await
        .unwrap();
    let mut bad = hotline("metrics-2", "Phan Thị Hạnh");
    bad.report.as_mut().unwrap().facts = None;
    client.submit_hotline_report(bad).await.unwrap_err();

    let method = "/baove.v1.IntakeService/SubmitHotlineReport";
    let ok = format!("baove_grpc_requests_total{{method=\"{method}\",code=\"Ok\"}}");
    let invalid =
        format!("baove_grpc_requests_total{{method=\"{method}\",code=\"InvalidArgument\"}}");
    let durations = format!("baove_grpc_request_duration_seconds_count{{method=\"{method}\"}}");
    // The log's gauges are sampled every 5 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = scrape(&addr);
        if sample(&page, "baove_eventlog_position{log=\"event\"}").is_some_and(|p| p >= 1.0) {
            break page;
        }
        assert!(Instant::now() < deadline, "no log position in:\n{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&page, &ok), Some(1.0), "{page}");
    assert_eq!(sample(&page, &invalid), Some(1.0), "{page}");
    assert_eq!(sample(&page, &durations), Some(2.0), "{page}");
    assert!(sample(&page, "baove_outbox_backlog").is_some(), "{page}");
    assert!(
        sample(&page, "baove_outbox_oldest_age_seconds").is_some(),
        "{page}"
    );
    assert_eq!(
        sample(&page, "baove_parked_messages{consumer=\"intake\"}"),
        Some(0.0),
        "{page}"
    );
    // What the load balancer sees, for the alerts: the process serves and,
    // alone, is the active one; no chain has failed a check.
    for (series, value) in [
        ("baove_health_serving{service=\"process\"}", 1.0),
        ("baove_health_serving{service=\"baove.active\"}", 1.0),
        (
            "baove_chain_verification_failures_total{check=\"follower\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&page, series), Some(value), "{series} in {page}");
    }
    // The log's work, the relay's, the read model's, the connection and
    // the process itself.
    for series in [
        "baove_eventlog_appended_events_total{log=\"event\"}",
        "baove_eventlog_sync_seconds_count{log=\"event\"}",
        "baove_eventlog_group_size_count{log=\"event\"}",
        "baove_eventlog_size_bytes{log=\"event\"}",
        "baove_relay_publish_seconds_count{stream=\"BAOVE_INTAKE\"}",
        "baove_read_model_position{model=\"intakes\"}",
        "baove_nats_connected",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        let value = sample(&page, series);
        assert!(
            value.is_some_and(|v| v >= 1.0),
            "{series} = {value:?} in {page}"
        );
    }
    // The access log has recorded no read here, and is measured all the same.
    assert!(
        sample(&page, "baove_eventlog_size_bytes{log=\"access\"}").is_some(),
        "{page}"
    );
    // Nothing confidential in a label or value.
    assert!(!page.contains("Phan Thị Hạnh") && !page.contains("phan thi hanh"));
}
