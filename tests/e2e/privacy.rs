//! No confidential field in any log line: the three services run a report's
//! whole path (report, case, referral with the child's identity, the
//! police reading it) with their own crates logging at debug, in JSON lines
//! (`log_format = "json"`, span fields included), and their logs are
//! searched for the test's names, phone, address and narrative; the
//! report's correlation id is on spans in all three.

use baove_proto::v1::{self as p, GetCaseRequest, GetIntakeRequest};
use baove_testkit::NatsServer;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::Service;
use crate::casework::Officer;
use crate::intake::{case_of, hotline, intake_client};

/// Debug for baove's own crates, info for the libraries.
const RUST_LOG: &str = "info,baove_intake=debug,baove_casework=debug,baove_referral=debug,baove_runtime=debug,baove_bus=debug,baove_eventlog=debug,baove_security=debug";

/// What must never be logged, as typed and as a search key would fold it.
const SECRETS: &[&str] = &[
    "Trịnh Thị Quỳnh Như",
    "trinh thi quynh nhu",
    "Lâm Văn Khải",
    "lam van khai",
    "987654321",
    "987 654 321",
    "Bùi Hữu Nghĩa",
    "bui huu nghia",
    "roi mây",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_name_phone_address_or_narrative_appears_in_any_services_log() {
    let nats = NatsServer::start().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_of = |name: &str| logs.path().join(format!("{name}.log"));
    let mut services = Vec::new();
    for name in ["intake", "casework", "referral"] {
        // JSON lines: span fields too, the most a log can hold.
        let service = Service::start_logging(name, &nats.url(), &log_of(name), RUST_LOG, "json");
        service.wait_health("", ServingStatus::Serving).await;
        services.push(service);
    }
    let (intake, casework, referral) = (&services[0], &services[1], &services[2]);

    let mut request = hotline("privacy-1", SECRETS[0]);
    {
        let report = request.report.as_mut().unwrap();
        let facts = report.facts.as_mut().unwrap();
        facts.incident_place.as_mut().unwrap().address = format!("số 77 {}", SECRETS[6]);
        facts.narrative = format!("Cháu bị cha dượng đánh bằng {} nhiều lần", SECRETS[8]);
        let informant = report.informant.as_mut().unwrap();
        informant.full_name = SECRETS[2].into();
        informant.phone = "0987 654 321".into();
    }
    let receipt = intake_client(intake)
        .await
        .submit_hotline_report(request)
        .await
        .unwrap()
        .into_inner();
    let case_id = case_of(intake, &receipt.intake_id).await;
    // The department reads the report back, unsealed.
    let mut department = p::intake_service_client::IntakeServiceClient::new(
        intake.channel_as(&crate::province_officer("so-yt-1")).await,
    );
    department
        .get_intake(GetIntakeRequest {
            intake_id: receipt.intake_id.clone(),
        })
        .await
        .unwrap();
    // The officer refers the case to the police with the child's identity;
    // the police see it in their inbox and read the case.
    let mut officer = Officer::of(casework, &case_id).await;
    let asked = crate::referral::request_reloading(&mut officer).await;
    let mut police = crate::referral::referral_client(referral).await;
    crate::referral::in_inbox(&mut police, "vn:31135/cong-an", &asked.referral_id).await;
    let mut police_cases = p::case_service_client::CaseServiceClient::new(
        casework
            .channel_as(&crate::police("ca-301", "vn:31135/cong-an"))
            .await,
    );
    police_cases
        .get_case(GetCaseRequest {
            case_id: case_id.clone(),
        })
        .await
        .unwrap();

    for service in &mut services {
        service.terminate();
        service.exit_status().await;
    }
    let mut lines = 0;
    let mut all = String::new();
    for name in ["intake", "casework", "referral"] {
        let text = std::fs::read_to_string(log_of(name)).unwrap();
        lines += text.lines().count();
        all.push_str(&text);
        let lower = text.to_lowercase();
        for secret in SECRETS {
            assert!(
                !lower.contains(&secret.to_lowercase()),
                "{name}'s log holds {secret:?}: {}",
                text.lines()
                    .find(|l| l.to_lowercase().contains(&secret.to_lowercase()))
                    .unwrap_or_default()
            );
        }
    }
    // The logs were written, and follow this report by its ids: the
    // search had something to search.
    assert!(lines > 20, "only {lines} log lines");
    for id in [&receipt.intake_id, &case_id, &asked.referral_id] {
        assert!(all.contains(id.as_str()), "no log line names {id}");
    }
    // Every line is one JSON object, and the report's correlation id (its
    // intake id, carried in the NATS headers) is on a span in each of the
    // three services' logs: one report followed through all three.
    for name in ["intake", "casework", "referral"] {
        let text = std::fs::read_to_string(log_of(name)).unwrap();
        let mut correlated = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: not a JSON line ({e}): {line}"));
            assert!(
                value["timestamp"].is_string() && value["level"].is_string(),
                "{name}: {line}"
            );
            let spans = value["spans"].as_array().cloned().unwrap_or_default();
            if spans
                .iter()
                .any(|span| span["correlation_id"] == receipt.intake_id.as_str())
            {
                correlated += 1;
            }
        }
        assert!(
            correlated > 0,
            "no span in {name}'s log carries the report's correlation id"
        );
    }
}
