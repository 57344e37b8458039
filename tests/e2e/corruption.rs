//! Corruption at rest: a service whose sled files were damaged while it was
//! stopped either serves every acknowledged record, whole, or refuses to
//! start with an error naming the data directory and how to restore; it
//! never serves a shortened log. And a log put back from an older copy, or
//! rewritten, is refused at start against the checkpoint kept outside it.

use baove_proto::v1::{
    GetIntakeRequest, audit_service_client::AuditServiceClient,
    intake_service_client::IntakeServiceClient,
};
use baove_testkit::NatsServer;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::hotline;
use crate::{Lcg, Service, copy_dir};

/// intake with `n` acknowledged reports, stopped cleanly: its data
/// directory and the acknowledged intake ids.
async fn stopped_intake_with_reports(
    nats: &NatsServer,
    n: usize,
) -> (tempfile::TempDir, Vec<String>) {
    let mut intake = Service::start("intake", &nats.url());
    intake.wait_health("", ServingStatus::Serving).await;
    let mut client = IntakeServiceClient::new(intake.channel().await);
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            client
                .submit_hotline_report(hotline(&format!("rest-{i}"), "Lý Thị Thu"))
                .await
                .unwrap()
                .into_inner()
                .intake_id,
        );
    }
    intake.terminate();
    assert!(intake.exit_status().await.success());
    let data = std::mem::replace(&mut intake.data, tempfile::tempdir().unwrap());
    (data, ids)
}

/// Every acknowledged report reads back and every chain verifies.
async fn serves_everything(service: &Service, ids: &[String]) -> Result<(), String> {
    let mut client = IntakeServiceClient::new(
        service
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    );
    for id in ids {
        client
            .get_intake(GetIntakeRequest {
                intake_id: id.clone(),
            })
            .await
            .map_err(|e| format!("acknowledged intake {id} is not served: {e}"))?;
    }
    let mut audit = AuditServiceClient::new(service.channel_as(&crate::auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    if !broken.is_empty() || checked != total {
        return Err(format!("VerifyAll: {broken:?} ({checked}/{total})"));
    }
    Ok(())
}

fn refused_clearly(stderr: &str, data: &std::path::Path) -> bool {
    stderr.contains(&data.display().to_string()) && stderr.contains("Restore")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_sled_files_are_refused_with_a_clear_error_or_served_whole_never_short() {
    let nats = NatsServer::start().unwrap();
    let (pristine, ids) = stopped_intake_with_reports(&nats, 24).await;
    let mut g = Lcg(0x00ba_07e0_0014);
    let (mut refused, mut served) = (0, 0);
    for trial in 0..16 {
        let data = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), data.path());
        let db = data.path().join("eventlog").join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let damage = if trial % 2 == 0 {
            // One byte flipped where the records are.
            let at = g.below(bytes.len().min(256 * 1024) as u64) as usize;
            bytes[at] ^= 1 << g.below(8);
            format!("byte {at} flipped")
        } else {
            let keep = g.below(bytes.len() as u64) as usize;
            bytes.truncate(keep);
            format!("truncated to {keep} bytes")
        };
        std::fs::write(&db, &bytes).unwrap();
        let path = data.path().to_path_buf();
        // On a bus without its log stream (lost with it): only the kept
        // checkpoint says how far the log went. (With the stream, a short
        // log is repaired from it: tests/e2e/logstream.rs.)
        let bare = NatsServer::start().unwrap();
        match Service::try_start_in("intake", &bare.url(), data) {
            Err((stderr, _)) => {
                assert!(
                    refused_clearly(&stderr, &path),
                    "trial {trial} ({damage}): refused without naming the data directory and the way back: {stderr}"
                );
                // The cause, under anyhow's "Caused by:".
                let why = stderr
                    .lines()
                    .skip_while(|l| !l.starts_with("Caused by"))
                    .nth(1)
                    .unwrap_or(&stderr)
                    .trim();
                println!(
                    "trial {trial} ({damage}): refused: {}",
                    why.chars().take(300).collect::<String>()
                );
                refused += 1;
            }
            Ok(mut service) => {
                service.wait_health("", ServingStatus::Serving).await;
                if let Err(short) = serves_everything(&service, &ids).await {
                    panic!("trial {trial} ({damage}) served a damaged log: {short}");
                }
                service.terminate();
                service.exit_status().await;
                println!("trial {trial} ({damage}): served whole");
                served += 1;
            }
        }
    }
    println!(
        "corruption at rest: {refused} trials refused with a clear error, {served} served whole"
    );
    assert_eq!(refused + served, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_copy_of_the_log_put_back_is_refused_naming_what_is_missing() {
    let nats = NatsServer::start().unwrap();
    let (early, _) = stopped_intake_with_reports(&nats, 2).await;
    let older = tempfile::tempdir().unwrap();
    copy_dir(&early.path().join("eventlog"), older.path());
    // More reports on the same data, then the older event log put back.
    let mut intake = Service::start_in("intake", &nats.url(), early);
    intake.wait_health("", ServingStatus::Serving).await;
    let mut client = IntakeServiceClient::new(intake.channel().await);
    for i in 0..3 {
        client
            .submit_hotline_report(hotline(&format!("later-{i}"), "Đào Văn Nam"))
            .await
            .unwrap();
    }
    intake.terminate();
    assert!(intake.exit_status().await.success());
    let data = std::mem::replace(&mut intake.data, tempfile::tempdir().unwrap());
    std::fs::remove_dir_all(data.path().join("eventlog")).unwrap();
    copy_dir(older.path(), &data.path().join("eventlog"));
    let path = data.path().to_path_buf();
    // Without the log stream (a bus that lost it), the kept checkpoint
    // alone refuses it.
    let bare = NatsServer::start().unwrap();
    let (stderr, _) = Service::try_start_in("intake", &bare.url(), data)
        .err()
        .expect("an older log must not be served");
    assert!(refused_clearly(&stderr, &path), "{stderr}");
    assert!(
        stderr.contains("acknowledged events are missing"),
        "{stderr}"
    );
}

/// VerifyAll's last message, as an auditor.
async fn last_verify_all(service: &Service) -> baove_proto::v1::VerifyAllResponse {
    use futures_util::StreamExt;
    let mut audit = AuditServiceClient::new(service.channel_as(&crate::auditor()).await);
    let mut stream = audit
        .verify_all(baove_proto::v1::VerifyAllRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(progress) = stream.next().await {
        last = Some(progress.unwrap());
    }
    last.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_all_checks_the_log_against_the_checkpoint_kept_outside_it() {
    let nats = NatsServer::start().unwrap();
    let (data, _) = stopped_intake_with_reports(&nats, 3).await;
    let intake = Service::start_in("intake", &nats.url(), data);
    intake.wait_health("", ServingStatus::Serving).await;
    let healthy = last_verify_all(&intake).await;
    assert!(healthy.done && healthy.broken.is_empty());
    assert_eq!(healthy.kept_checkpoint_problem, "");
    // The kept file damaged while the service runs: VerifyAll says so.
    std::fs::write(
        intake.data.path().join("eventlog.checkpoint.json"),
        b"{\"x\":",
    )
    .unwrap();
    let damaged = last_verify_all(&intake).await;
    assert!(
        damaged
            .kept_checkpoint_problem
            .contains("eventlog.checkpoint.json")
            && damaged.kept_checkpoint_problem.contains("damaged"),
        "{}",
        damaged.kept_checkpoint_problem
    );
}
