//! Backup and restore, as an operator does it: `baove backup` against a
//! serving intake while reports keep arriving, then `baove-intake restore`
//! into an empty data directory; the restored service serves every report
//! acknowledged before the backup, with its confidential fields, its
//! chains verify and a retried request is answered as before. A backup that
//! was altered or cut short is refused and leaves nothing behind, and a
//! backup older than what the data directory's kept checkpoint covers is
//! restored with a warning and then refused at start.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baove_proto::v1::{
    self as p, GetIntakeRequest, audit_service_client::AuditServiceClient,
    intake_service_client::IntakeServiceClient,
};
use baove_testkit::NatsServer;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::hotline;
use crate::{Service, output_text as text};

/// `baove <args>` as an auditor against `service`.
pub fn auditor_cli(service: &Service, args: &[&std::ffi::OsStr]) -> Output {
    std::process::Command::new(crate::bin_dir().join("baove"))
        .args(args)
        .env("BAOVE_ADDR", &service.addr)
        .env("BAOVE_TOKEN", crate::auditor().token())
        .output()
        .unwrap()
}

/// `baove backup` as an auditor.
fn backup(service: &Service, out: &Path) -> Output {
    auditor_cli(
        service,
        &["backup".as_ref(), "--out".as_ref(), out.as_os_str()],
    )
}

/// `baove audit checkpoint --fresh --out FILE` as an auditor: a checkpoint
/// the auditor keeps.
fn fresh_checkpoint(service: &Service, out: &Path) {
    let done = auditor_cli(
        service,
        &[
            "audit".as_ref(),
            "checkpoint".as_ref(),
            "--fresh".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    assert!(done.status.success(), "{}", text(&done));
}

/// `baove-intake restore --from FILE` on `data`.
fn restore(nats: &NatsServer, data: &Path, from: &Path) -> Output {
    crate::service_command("intake", &nats.url(), data)
        .args(["restore", "--from"])
        .arg(from)
        .output()
        .unwrap()
}

/// The child's name as intake serves it to a province officer.
async fn child_name(service: &Service, intake_id: &str) -> Result<String, tonic::Status> {
    let intake = IntakeServiceClient::new(
        service
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    )
    .get_intake(GetIntakeRequest {
        intake_id: intake_id.to_owned(),
    })
    .await?
    .into_inner()
    .intake
    .unwrap();
    let Some(p::intake::Report::Hotline(report)) = intake.report else {
        panic!("a hotline report");
    };
    Ok(report.facts.unwrap().child.unwrap().full_name)
}

/// A copy of `from`'s checkpoint key pair in a new, otherwise empty data
/// directory: the key is a secret kept apart from backups, with the
/// service's other secrets.
fn empty_machine_with_key(from: &Path) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    for file in ["checkpoint-key.pem", "checkpoint-key.pub.pem"] {
        std::fs::copy(from.join(file), data.path().join(file)).unwrap();
    }
    data
}

/// Flips one byte of the first occurrence of `needle` in `file`.
fn alter(file: &Path, needle: &[u8]) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{} not in the backup", String::from_utf8_lossy(needle)));
    bytes[at + needle.len() - 1] ^= 0x01;
    let altered = file.with_extension("altered");
    std::fs::write(&altered, bytes).unwrap();
    altered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_on_an_empty_machine_and_altered_or_short_copies_are_refused() {
    let nats = NatsServer::start().unwrap();
    let mut intake = Service::start("intake", &nats.url());
    intake.wait_health("", ServingStatus::Serving).await;
    let mut client = IntakeServiceClient::new(intake.channel().await);
    let mut before = Vec::new();
    for i in 0..12 {
        let receipt = client
            .submit_hotline_report(hotline(&format!("bk-{i}"), &format!("Lê Thị Bé {i}")))
            .await
            .unwrap()
            .into_inner();
        before.push((
            format!("bk-{i}"),
            receipt.intake_id,
            format!("Lê Thị Bé {i}"),
        ));
    }

    // An auditor keeps a checkpoint of their own, before any backup.
    let files = tempfile::tempdir().unwrap();
    let auditors_checkpoint = files.path().join("auditor-checkpoint.json");
    fresh_checkpoint(&intake, &auditors_checkpoint);
    let public_key = intake.data.path().join("checkpoint-key.pub.pem");

    // Reports keep arriving while the backup is taken.
    let arriving = Arc::new(AtomicBool::new(true));
    let submitter = {
        let arriving = arriving.clone();
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while arriving.load(Ordering::Relaxed) {
                client
                    .submit_hotline_report(hotline(&format!("during-{n}"), "Võ Văn An"))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let file = files.path().join("intake.backup");
    let out = backup(&intake, &file);
    arriving.store(false, Ordering::Relaxed);
    let during = submitter.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    println!("{printed}(reports submitted while it ran: {during})");
    assert!(printed.contains("backup of intake"), "{printed}");
    assert!(printed.contains("sha256 "), "{printed}");
    // Acknowledged after the backup: not in it.
    for i in 0..2 {
        client
            .submit_hotline_report(hotline(&format!("after-{i}"), "Võ Văn An"))
            .await
            .unwrap();
    }
    intake.terminate();
    assert!(intake.exit_status().await.success());

    // An empty machine, with the service's secrets (the checkpoint key)
    // put back from where they are kept.
    let machine = empty_machine_with_key(intake.data.path());
    let out = restore(&nats, machine.path(), &file);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("every chain verifies"), "{said}");
    assert!(said.contains("kept beside the log"), "{said}");
    // Restoring again over the restored log is refused.
    let again = restore(&nats, machine.path(), &file);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already holds an event log"),
        "{}",
        text(&again)
    );

    let restored = Service::start_in("intake", &nats.url(), machine);
    restored.wait_health("", ServingStatus::Serving).await;
    for (_, intake_id, name) in &before {
        assert_eq!(
            &child_name(&restored, intake_id).await.unwrap(),
            name,
            "the restored report {intake_id} reads back with its name (its data key came back)"
        );
    }
    // A client retrying a request acknowledged before the backup gets the
    // same receipt and creates nothing.
    let (request_id, intake_id, name) = &before[3];
    let retried = IntakeServiceClient::new(restored.channel().await)
        .submit_hotline_report(hotline(request_id, name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&retried.intake_id, intake_id);
    // The auditor's own checkpoint, taken before the backup, holds for the
    // restored log.
    let out = auditor_cli(
        &restored,
        &[
            "audit".as_ref(),
            "check-log".as_ref(),
            auditors_checkpoint.as_os_str(),
            "--key".as_ref(),
            public_key.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("OK: the log up to position"),
        "{}",
        text(&out)
    );
    let mut audit = AuditServiceClient::new(restored.channel_as(&crate::auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    assert!(
        broken.is_empty() && checked == total,
        "{broken:?} {checked}/{total}"
    );

    // An altered copy: one byte of a command id (covered by the hash).
    let altered = alter(&file, b"req:bk-5");
    let empty = empty_machine_with_key(intake.data.path());
    let out = restore(&nats, empty.path(), &altered);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "an altered backup was restored: {said}"
    );
    assert!(
        said.contains("do not verify") && said.contains("hash does not match"),
        "{said}"
    );
    assert!(
        !empty.path().join("eventlog").exists(),
        "nothing is left where the service opens its log"
    );
    assert!(!empty.path().join("eventlog.restoring").exists());
    // A copy cut short.
    let bytes = std::fs::read(&file).unwrap();
    let short = files.path().join("short.backup");
    std::fs::write(&short, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = restore(&nats, empty.path(), &short);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "a truncated backup was restored: {said}"
    );
    assert!(
        said.contains("truncated") || said.contains("ends inside"),
        "{said}"
    );
    assert!(!empty.path().join("eventlog").exists());

    // The old machine's disk, its log lost but its kept checkpoint there:
    // the checkpoint signed at the clean stop covers the reports submitted
    // after the backup, so the restore warns, and without the log stream
    // the start refuses.
    let old = intake.into_data();
    std::fs::rename(
        old.path().join("eventlog"),
        old.path().join("eventlog.damaged"),
    )
    .unwrap();
    let out = restore(&nats, old.path(), &file);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("WARNING") && said.contains("acknowledged events are not in this backup"),
        "{said}"
    );
    // On a bus that lost the log stream too (one that holds it gives the
    // missing events back: tests/e2e/logstream.rs).
    let bare = NatsServer::start().unwrap();
    match Service::try_start_in("intake", &bare.url(), old) {
        Ok(_) => panic!("intake served a log shorter than its kept checkpoint"),
        Err((stderr, _)) => assert!(
            stderr.contains("acknowledged events are missing"),
            "{stderr}"
        ),
    }
}

/// Long reports: what an auditor reads of a log holding them, a page at
/// a time, and its backup, come in messages a gRPC client accepts by
/// default (4 MiB). A page of 100 such events is about 4.8 MiB: before, the
/// auditor's ReadAll, `baove audit check-log` and `baove backup` each
/// failed on them with "decoded message length too large".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_log_of_long_reports_then_an_auditor_reads_checks_and_backs_it_up_whole() {
    let nats = NatsServer::start().unwrap();
    let intake = Service::start("intake", &nats.url());
    intake.wait_health("", ServingStatus::Serving).await;
    let mut client = IntakeServiceClient::new(intake.channel().await);
    const REPORTS: u64 = 110;
    for i in 0..REPORTS {
        client
            .submit_hotline_report(crate::intake::at_every_limit(
                &format!("long-{i}"),
                crate::intake::vietnamese,
            ))
            .await
            .unwrap();
    }
    let files = tempfile::tempdir().unwrap();
    let checkpoint = files.path().join("checkpoint.json");
    fresh_checkpoint(&intake, &checkpoint);

    // Page by page, as far as the log goes, each page within the limit.
    let mut audit = AuditServiceClient::new(intake.channel_as(&crate::auditor()).await);
    let mut from = 1;
    let mut read = 0_u64;
    let mut pages = 0;
    let last = loop {
        let page = audit
            .read_all(p::ReadAllRequest {
                from_position: from,
                limit: 1000,
            })
            .await
            .unwrap_or_else(|status| panic!("page from {from}: {status}"))
            .into_inner();
        pages += 1;
        read += page.events.len() as u64;
        if page.next_position > page.last_position {
            break page.last_position;
        }
        assert!(page.next_position > from, "the page from {from} moved on");
        from = page.next_position;
    };
    assert!(last >= REPORTS, "{last}");
    assert_eq!(read, last, "every event, once");
    assert!(
        pages > 1,
        "the log fits one page: the test reads nothing large"
    );
    println!("{read} events of long reports read in {pages} pages");

    let out = auditor_cli(
        &intake,
        &[
            "audit".as_ref(),
            "check-log".as_ref(),
            checkpoint.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("OK: the log"), "{}", text(&out));

    let file = files.path().join("intake.backup");
    let out = backup(&intake, &file);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{last} events")),
        "{}",
        text(&out)
    );
}
