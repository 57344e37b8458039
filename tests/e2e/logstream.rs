//! The log stream as the independent record of how far a log went: a
//! casework whose event log was put back from an older copy takes the
//! missing events from its stream at start and serves every case, and a
//! casework whose data directory is gone is rebuilt from the stream alone
//! (`baove-casework restore --from-stream`), verifying against a checkpoint
//! an auditor kept from before.

use std::time::{Duration, Instant};

use baove_proto::v1::{self as p, audit_service_client::AuditServiceClient};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::{System, case_of, hotline, intake_client};
use crate::{Service, auditor, copy_dir, output_text as text};

/// Submits `n` reports and waits for each one's case.
async fn reports_with_cases(system: &System, tag: &str, n: usize) -> Vec<String> {
    let mut cases = Vec::new();
    for i in 0..n {
        let receipt = intake_client(&system.intake)
            .await
            .submit_hotline_report(hotline(&format!("{tag}-{i}"), "Hồ Thị Mai"))
            .await
            .unwrap()
            .into_inner();
        cases.push(case_of(&system.intake, &receipt.intake_id).await);
    }
    cases
}

/// Waits (30 s) until casework's log stream holds its whole log.
async fn stream_holds_the_log(nats_url: &str, casework: &Service) {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let mut audit = AuditServiceClient::new(casework.channel_as(&auditor()).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = audit
            .read_all(p::ReadAllRequest {
                from_position: u64::MAX,
                limit: 1,
            })
            .await
            .unwrap()
            .into_inner()
            .last_position;
        let end = baove_bus::logstream::stream_end(&js, baove_bus::logstream::CASE_LOG)
            .await
            .ok()
            .flatten()
            .map_or(0, |e| e.global_position);
        if end == last && last > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "casework's log stream ends at {end}, its log at {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every case reads back, and VerifyAll is clean, kept checkpoint included.
async fn serves_every_case(casework: &Service, cases: &[String]) {
    let mut officer = baove_proto::v1::case_service_client::CaseServiceClient::new(
        casework
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    );
    for case_id in cases {
        officer
            .get_case(p::GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("case {case_id} is not served: {e}"));
    }
    let mut audit = AuditServiceClient::new(casework.channel_as(&auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    assert!(broken.is_empty() && checked == total, "{broken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_log_is_repaired_from_its_stream_and_a_lost_one_rebuilt_from_it() {
    let mut system = System::start().await;
    let nats_url = system.nats.url();
    let mut cases = reports_with_cases(&system, "early", 3).await;
    // A copy of casework's event log as it is now, taken while stopped.
    system.casework.terminate();
    assert!(system.casework.exit_status().await.success());
    let older = tempfile::tempdir().unwrap();
    copy_dir(&system.casework.data.path().join("eventlog"), older.path());
    let data = std::mem::replace(&mut system.casework.data, tempfile::tempdir().unwrap());
    system.casework = Service::start_in("casework", &nats_url, data);
    system
        .casework
        .wait_health("", ServingStatus::Serving)
        .await;
    cases.extend(reports_with_cases(&system, "later", 3).await);
    stream_holds_the_log(&nats_url, &system.casework).await;
    // An auditor keeps a checkpoint.
    let files = tempfile::tempdir().unwrap();
    let kept = files.path().join("checkpoint.json");
    let auditor_cli = |service: &Service, args: &[&std::ffi::OsStr]| {
        std::process::Command::new(crate::bin_dir().join("baove"))
            .args(args)
            .env("BAOVE_ADDR", &service.addr)
            .env("BAOVE_TOKEN", auditor().token())
            .output()
            .unwrap()
    };
    let out = auditor_cli(
        &system.casework,
        &[
            "audit".as_ref(),
            "checkpoint".as_ref(),
            "--fresh".as_ref(),
            "--out".as_ref(),
            kept.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    stream_holds_the_log(&nats_url, &system.casework).await;
    system.casework.terminate();
    assert!(system.casework.exit_status().await.success());

    // The older copy put back (its kept checkpoint covers more): casework
    // takes the missing events from its stream and serves every case.
    let data = std::mem::replace(&mut system.casework.data, tempfile::tempdir().unwrap());
    std::fs::remove_dir_all(data.path().join("eventlog")).unwrap();
    copy_dir(older.path(), &data.path().join("eventlog"));
    let public_key = data.path().join("checkpoint-key.pub.pem");
    let public_key_copy = files.path().join("checkpoint-key.pub.pem");
    std::fs::copy(&public_key, &public_key_copy).unwrap();
    system.casework = Service::start_in("casework", &nats_url, data);
    system
        .casework
        .wait_health("", ServingStatus::Serving)
        .await;
    serves_every_case(&system.casework, &cases).await;
    let check = |service: &Service| {
        auditor_cli(
            service,
            &[
                "audit".as_ref(),
                "check-log".as_ref(),
                kept.as_os_str(),
                "--key".as_ref(),
                public_key_copy.as_os_str(),
            ],
        )
    };
    let out = check(&system.casework);
    assert!(out.status.success(), "{}", text(&out));
    system.casework.terminate();
    assert!(system.casework.exit_status().await.success());

    // The whole data directory lost: rebuilt from the stream alone, on an
    // empty one.
    let empty = tempfile::tempdir().unwrap();
    let out = crate::service_command("casework", &nats_url, empty.path())
        .args(["restore", "--from-stream", "--trusted-key"])
        .arg(&public_key_copy)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("every hash and chain verifies"), "{said}");
    assert!(
        said.contains("matches the rebuilt log's Merkle tree"),
        "{said}"
    );
    system.casework = Service::start_in("casework", &nats_url, empty);
    system
        .casework
        .wait_health("", ServingStatus::Serving)
        .await;
    serves_every_case(&system.casework, &cases).await;
    let out = check(&system.casework);
    assert!(out.status.success(), "{}", text(&out));
    // And it goes on: a new report is handed over to a new case.
    let more = reports_with_cases(&system, "after", 1).await;
    assert!(!cases.contains(&more[0]));
}
