//! Standby caseworks on a three-node cluster: a standby follows the
//! active's log stream into its own log (same events, same hashes),
//! answers reads, refuses writes naming the active, and, when the active
//! dies, is promoted by restarting it as the active (`role = standby`) or
//! takes the lease by itself (`role = auto`); an active paused past its
//! lease stops when it resumes, having written nothing the new active's log
//! lacks (casework), and having acknowledged no report (intake). An intake standby takes each report's data key from the cluster's
//! bucket, so it reads the confidential fields the active sealed and keeps
//! them when it takes over; an erased report's key is gone from the bucket
//! too. Under load (four hotline clients at once), the active intake killed
//! loses no acknowledged report and records none twice, and each becomes
//! one case.

use std::time::{Duration, Instant};

use baove_proto::v1::{self as p, audit_service_client::AuditServiceClient};
use baove_testkit::NatsCluster;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::case_of;
use crate::{Service, auditor};

/// The whole log of `service`, as an auditor reads it.
pub async fn whole_log(service: &Service) -> Vec<p::EventEnvelope> {
    read_whole_log(service)
        .await
        .unwrap_or_else(|e| panic!("reading {}'s log at {}: {e}", service.name, service.addr))
}

/// The whole log of `service` as an auditor reads it, or the refusal of
/// the first page that could not be read (a process not answering).
pub async fn read_whole_log(service: &Service) -> Result<Vec<p::EventEnvelope>, tonic::Status> {
    let mut audit = AuditServiceClient::new(service.channel_as(&auditor()).await);
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = audit
            .read_all(p::ReadAllRequest {
                from_position: from,
                limit: 200,
            })
            .await?
            .into_inner();
        if page.events.is_empty() {
            return Ok(events);
        }
        from = page.next_position;
        events.extend(page.events);
    }
}

/// Waits (30 s) until `standby` holds exactly `active`'s log.
pub async fn follows(active: &Service, standby: &Service) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (theirs, ours) = (whole_log(active).await, whole_log(standby).await);
        if theirs == ours {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the standby holds {} events, the active {}",
            ours.len(),
            theirs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits `n` reports as a real client does (the same request id again
/// until acknowledged: a cluster that has not elected its leaders yet
/// refuses) and waits for each one's case.
async fn reports(intake: &Service, tag: &str, n: usize) -> Vec<String> {
    let mut cases = Vec::new();
    for i in 0..n {
        let intake_id = crate::cluster::submit(intake, &format!("{tag}-{i}")).await;
        cases.push(case_of(intake, &intake_id).await);
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_follows_refuses_writes_and_takes_over_when_promoted() {
    let cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let r3 = ("BAOVE_STREAM_REPLICAS", "3".to_owned());
    let start = |name: &'static str| {
        Service::start_with(
            name,
            &urls,
            tempfile::tempdir().unwrap(),
            std::slice::from_ref(&r3),
        )
    };
    let intake = start("intake");
    let referral = start("referral");
    let mut active = start("casework");
    let mut standby = Service::start_with(
        "casework",
        &urls,
        tempfile::tempdir().unwrap(),
        &[
            r3.clone(),
            ("BAOVE_ROLE", "standby".to_owned()),
            ("BAOVE_ACTIVE_ADDR", active.addr.clone()),
        ],
    );
    for s in [&intake, &referral, &active, &standby] {
        s.wait_health("", ServingStatus::Serving).await;
    }
    active
        .wait_health("baove.active", ServingStatus::Serving)
        .await;
    standby
        .wait_health("baove.active", ServingStatus::NotServing)
        .await;

    let mut cases = reports(&intake, "before", 3).await;
    follows(&active, &standby).await;
    // Reads answer on the standby.
    let mut officer = crate::casework::Officer::of(&standby, &cases[0]).await;
    assert_eq!(officer.case().await.case_id, cases[0]);
    // A write is refused, naming the active.
    let header = officer.header();
    let refused = officer
        .client
        .add_note(p::AddNoteRequest {
            header,
            text: "ghi chú".into(),
        })
        .await
        .expect_err("a standby took a write");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert_eq!(
        refused
            .metadata()
            .get("baove-active")
            .and_then(|v| v.to_str().ok()),
        Some(active.addr.as_str()),
        "{refused:?}"
    );
    assert_eq!(
        whole_log(&standby).await,
        whole_log(&active).await,
        "nothing written"
    );

    // Two referrals, the second case's text then erased: the standby's
    // copy of the referral keys (what its backups carry) holds the first
    // key and only the fact of the second's erasure.
    let mut referred = Vec::new();
    for case_id in &cases[..2] {
        let mut officer = crate::casework::Officer::of(&active, case_id).await;
        let request = crate::referral::police_request(
            &mut officer,
            p::LegalBasis::CriminalInvestigation,
            false,
        );
        referred.push(crate::security::refer(&mut officer, request).await);
    }
    p::intake_service_client::IntakeServiceClient::new(
        intake.channel_as(&crate::province_officer("so-yt-1")).await,
    )
    .erase_case(p::EraseCaseRequest {
        request_id: "erase-on-the-active".into(),
        case_id: cases[1].clone(),
        reason: "yêu cầu xóa của người giám hộ".into(),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !whole_log(&active)
        .await
        .iter()
        .any(|e| e.event_type == "PrivateTextErased" && e.stream_id == cases[1])
    {
        assert!(
            Instant::now() < deadline,
            "the case's text was never erased"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    follows(&active, &standby).await;
    // The standby's read model has followed its log up to the erasure.
    let erased_at = whole_log(&active)
        .await
        .iter()
        .filter(|e| e.stream_id == cases[1])
        .map(|e| e.seq)
        .max();
    let mut lists = p::case_service_client::CaseServiceClient::new(
        standby
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = lists
            .list_cases(p::ListCasesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .cases;
        let version = listed
            .iter()
            .find(|c| c.case_id == cases[1])
            .map(|c| c.version);
        if version == erased_at {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the standby's model is at {version:?}, the log at {erased_at:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The active's host dies; the standby is promoted.
    active.kill();
    let killed = Instant::now();
    let data = std::mem::replace(&mut standby.data, tempfile::tempdir().unwrap());
    standby.terminate();
    assert!(standby.exit_status().await.success());
    {
        let db = sled::open(data.path().join("eventlog")).unwrap();
        let copies = db
            .open_tree(baove_eventlog::layout::side_tree(
                baove_runtime::referral_keys::LOCAL_TREE,
            ))
            .unwrap();
        let copy = |referral: &str| {
            copies
                .get(uuid::Uuid::parse_str(referral).unwrap().as_bytes())
                .unwrap()
                .map(|v| v.len())
        };
        assert!(
            copy(&referred[0]).is_some_and(|len| len > 0),
            "the standby holds no copy of the referral's key"
        );
        assert_eq!(copy(&referred[1]), Some(0), "only the fact of the erasure");
    }
    let promoted = Service::start_with("casework", &urls, data, std::slice::from_ref(&r3));
    promoted.wait_health("", ServingStatus::Serving).await;
    promoted
        .wait_health("baove.active", ServingStatus::Serving)
        .await;
    cases.extend(reports(&intake, "after", 2).await);
    println!(
        "promoted standby opened its first case {:?} after the active was killed",
        killed.elapsed()
    );
    let mut officer = crate::casework::Officer::of(&promoted, &cases[4]).await;
    for case_id in &cases {
        officer.case_id = case_id.clone();
        assert_eq!(&officer.case().await.case_id, case_id);
    }
    let mut audit = AuditServiceClient::new(promoted.channel_as(&auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    assert!(broken.is_empty() && checked == total, "{broken:?}");
    promoted
        .wait_health("baove.bus", ServingStatus::Serving)
        .await;

    // Outside a cluster intake refuses to be a standby (its data keys are
    // replicated only with stream_replicas > 1), and says why.
    let refused = Service::try_start_in_with(
        "intake",
        &urls,
        tempfile::tempdir().unwrap(),
        &[
            ("BAOVE_STREAM_REPLICAS", "1".to_owned()),
            ("BAOVE_ROLE", "standby".to_owned()),
        ],
    );
    let Err((stderr, _)) = refused else {
        panic!("intake ran as a standby without its data keys")
    };
    assert!(stderr.contains("cannot run as a standby"), "{stderr}");
}

/// Waits (60 s) until `service` says whether it takes writes.
pub async fn becomes(service: &Service, active: bool) {
    let status = if active {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while service.health("baove.active").await != Some(status) {
        assert!(
            Instant::now() < deadline,
            "{} never became {}",
            service.name,
            if active { "the active" } else { "a standby" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_role_auto_a_standby_takes_the_lease_when_the_active_dies_and_a_paused_active_stops() {
    let cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let r3 = ("BAOVE_STREAM_REPLICAS", "3".to_owned());
    let auto = ("BAOVE_ROLE", "auto".to_owned());
    let start = |name: &'static str, env: &[(&str, String)]| {
        Service::start_with(name, &urls, tempfile::tempdir().unwrap(), env)
    };
    let intake = start("intake", std::slice::from_ref(&r3));
    let referral = start("referral", std::slice::from_ref(&r3));
    let mut first = start("casework", &[r3.clone(), auto.clone()]);
    becomes(&first, true).await;
    let mut second = start("casework", &[r3.clone(), auto.clone()]);
    second.wait_health("", ServingStatus::Serving).await;
    becomes(&second, false).await;
    for s in [&intake, &referral] {
        s.wait_health("", ServingStatus::Serving).await;
    }
    let mut cases = reports(&intake, "auto-before", 3).await;
    follows(&first, &second).await;
    // The standby refuses writes, naming the lease holder.
    let mut officer = crate::casework::Officer::of(&second, &cases[0]).await;
    let header = officer.header();
    let refused = officer
        .client
        .add_note(p::AddNoteRequest {
            header,
            text: "ghi chú".into(),
        })
        .await
        .expect_err("a standby took a write");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(
        refused
            .metadata()
            .get("baove-active")
            .and_then(|v| v.to_str().ok()),
        Some(first.addr.as_str())
    );

    // The CLI given both addresses, the standby's first, writes to the
    // active.
    let noted_case = cases[0].clone();
    let cli_note = |addrs: String, version: u64, text: &str| {
        let mut command = std::process::Command::new(crate::bin_dir().join("baove"));
        command
            .args(["case", "note", "--case", &noted_case, "--version"])
            .arg(version.to_string())
            .args(["--text", text])
            .env("BAOVE_ADDR", addrs)
            .env(
                "BAOVE_TOKEN",
                crate::province_officer("cb-ninh-kieu-1").token(),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let finished = |child: std::process::Child| async move {
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    };
    let both = format!("{},{}", second.addr, first.addr);
    let noted = finished(cli_note(
        both.clone(),
        officer.case().await.version,
        "qua CLI",
    ))
    .await;
    assert!(noted.status.success(), "{}", crate::output_text(&noted));
    // Given only the standby's address, the CLI follows the refusal to the
    // active it names (the same request: stored once).
    let noted = finished(cli_note(
        second.addr.clone(),
        officer.case().await.version,
        "qua CLI, địa chỉ dự phòng",
    ))
    .await;
    assert!(noted.status.success(), "{}", crate::output_text(&noted));
    assert!(
        crate::output_text(&noted).contains("following the service's active"),
        "{}",
        crate::output_text(&noted)
    );

    // The active dies: the standby takes the lease by itself. A note sent
    // at once, to both addresses, waits through the failover and lands on
    // the new active, once.
    let version = officer.case().await.version;
    first.kill();
    let killed = Instant::now();
    let during = cli_note(both.clone(), version, "qua CLI, trong khi chuyển");
    becomes(&second, true).await;
    let took_over = killed.elapsed();
    let noted = finished(during).await;
    assert!(noted.status.success(), "{}", crate::output_text(&noted));
    cases.extend(reports(&intake, "auto-after", 2).await);
    // The same command line reaches the new active (the old one is gone).
    let version = crate::casework::Officer::of(&second, &cases[0])
        .await
        .version;
    let noted = finished(cli_note(both, version, "qua CLI, sau khi chuyển")).await;
    assert!(noted.status.success(), "{}", crate::output_text(&noted));
    // The notes the dead active sealed open on the new one (the case's key
    // came from the cluster's bucket), beside those written since.
    let notes = crate::casework::Officer::of(&second, &cases[0])
        .await
        .case()
        .await
        .notes;
    assert_eq!(
        notes,
        [
            "qua CLI",
            "qua CLI, địa chỉ dự phòng",
            "qua CLI, trong khi chuyển",
            "qua CLI, sau khi chuyển"
        ]
    );
    println!(
        "failover: the standby took the lease {took_over:?} after the active was killed; its first case {:?} after",
        killed.elapsed()
    );

    // The new active is paused past its lease; a third process takes over;
    // the paused one, resumed, stops without taking a write.
    let third = start("casework", &[r3.clone(), auto.clone()]);
    third.wait_health("", ServingStatus::Serving).await;
    follows(&second, &third).await;
    second.pause();
    becomes(&third, true).await;
    let before_resume = whole_log(&third).await;
    second.resume();
    let stopped = second.exit_status().await;
    assert_eq!(
        stopped.code(),
        Some(1),
        "a deposed active exits with an error, so that a supervisor (Restart=on-failure) starts it again: {stopped:?}"
    );
    cases.extend(reports(&intake, "auto-third", 1).await);
    let log = whole_log(&third).await;
    assert!(
        log.starts_with(&before_resume),
        "the log the third process holds only grew"
    );
    let mut officer = crate::casework::Officer::of(&third, &cases[0]).await;
    let mut seen = std::collections::HashSet::new();
    for case_id in &cases {
        officer.case_id = case_id.clone();
        assert_eq!(&officer.case().await.case_id, case_id);
        seen.insert(case_id.clone());
    }
    assert_eq!(seen.len(), 6, "one case per report");
    let mut audit = AuditServiceClient::new(third.channel_as(&auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    assert!(broken.is_empty() && checked == total, "{broken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_intake_active_resumed_after_a_takeover_acknowledges_no_report_and_stops() {
    let cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let r3 = ("BAOVE_STREAM_REPLICAS", "3".to_owned());
    let (mut first, second) = intake_pair(&urls).await;
    let casework = Service::start_with(
        "casework",
        &urls,
        tempfile::tempdir().unwrap(),
        std::slice::from_ref(&r3),
    );
    casework.wait_health("", ServingStatus::Serving).await;
    let mut cases = reports(&first, "split-before", 2).await;
    follows(&first, &second).await;
    // An operator's client already connected to the active, as the
    // console's is.
    let mut operator = crate::intake::intake_client(&first).await;

    // The active is paused past its lease (a stalled host, a long GC, a VM
    // migration); the standby takes the lease and takes reports.
    first.pause();
    becomes(&second, true).await;
    cases.extend(reports(&second, "split-after", 2).await);
    let before_resume = whole_log(&second).await;
    // A report sent to the paused process waits in its socket, and is
    // read the moment it resumes, before it can have noticed that it lost
    // the lease: it must not be acknowledged.
    let stale = tokio::spawn(async move {
        operator
            .submit_hotline_report(crate::intake::hotline("split-stale", "Đinh Thị Hoa"))
            .await
    });
    first.resume();
    let stopped = first.exit_status().await;
    assert_eq!(
        stopped.code(),
        Some(1),
        "a deposed active exits with an error, so that a supervisor (Restart=on-failure) starts it again: {stopped:?}"
    );
    let answered = stale.await.unwrap();
    println!("the deposed active answered: {answered:?}");
    if let Err(refused) = &answered {
        assert!(
            refused.metadata().get("baove-active").is_none(),
            "a deposed active names no active it does not know: {refused:?}"
        );
    }
    assert!(
        answered.is_err(),
        "the deposed active acknowledged a report: {answered:?}"
    );
    // The operator sends it again, same request id, to the process that
    // now answers: recorded once, one case.
    let stale_intake = crate::cluster::submit(&second, "split-stale").await;
    cases.push(case_of(&second, &stale_intake).await);
    let log = whole_log(&second).await;
    assert!(
        log.starts_with(&before_resume),
        "the log the new active holds only grew"
    );
    let recorded = log
        .iter()
        .filter(|e| e.event_type == "IntakeRecorded")
        .count();
    assert_eq!(recorded, 5, "each acknowledged report recorded once");
    let unique: std::collections::HashSet<&String> = cases.iter().collect();
    assert_eq!(unique.len(), 5, "one case per report");
    let opened = whole_log(&casework)
        .await
        .iter()
        .filter(|e| e.event_type == "CaseOpened")
        .count();
    assert_eq!(opened, 5, "no case for a report the deposed active wrote");
    let mut audit = AuditServiceClient::new(second.channel_as(&auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    assert!(broken.is_empty() && checked == total, "{broken:?}");
}

/// Two intake processes with `role = auto` on `urls` (three replicas):
/// the first holds the lease, the second follows it as a standby.
async fn intake_pair(urls: &str) -> (Service, Service) {
    let env = [
        ("BAOVE_STREAM_REPLICAS", "3".to_owned()),
        ("BAOVE_ROLE", "auto".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    // Each process's log (at info) is kept beside its data directory, for
    // a failure to show.
    let start = |data: tempfile::TempDir| {
        let stderr = data.path().with_extension("stderr");
        Service::launch("intake", urls, data, &env, Some(&stderr))
            .map_err(|(status, _)| status)
            .unwrap()
    };
    let first = start(tempfile::tempdir().unwrap());
    becomes(&first, true).await;
    let second = start(tempfile::tempdir().unwrap());
    second.wait_health("", ServingStatus::Serving).await;
    becomes(&second, false).await;
    (first, second)
}

/// The child's name as `intake` serves it to a province officer, waiting
/// (30 s) until its read model holds the report.
async fn child_name_on(intake: &Service, intake_id: &str) -> (String, i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = p::intake_service_client::IntakeServiceClient::new(
            intake.channel_as(&crate::province_officer("so-yt-1")).await,
        )
        .get_intake(p::GetIntakeRequest {
            intake_id: intake_id.to_owned(),
        })
        .await;
        match got {
            Ok(response) => {
                let intake = response.into_inner().intake.unwrap();
                let Some(p::intake::Report::Hotline(report)) = intake.report.clone() else {
                    panic!("a hotline report");
                };
                return (
                    report.facts.unwrap().child.unwrap().full_name,
                    intake.confidential,
                );
            }
            Err(status) => {
                assert!(Instant::now() < deadline, "{intake_id}: {status}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_standby_reads_the_sealed_fields_takes_over_with_them_and_erasure_reaches_the_cluster()
 {
    let cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let r3 = ("BAOVE_STREAM_REPLICAS", "3".to_owned());
    let start = |name: &'static str, env: &[(&str, String)]| {
        Service::start_with(name, &urls, tempfile::tempdir().unwrap(), env)
    };
    let (mut first, second) = intake_pair(&urls).await;
    let casework = start("casework", std::slice::from_ref(&r3));
    casework.wait_health("", ServingStatus::Serving).await;

    let kept = crate::cluster::submit(&first, "keys-kept").await;
    let erased = crate::cluster::submit(&first, "keys-erased").await;
    let erased_case = case_of(&first, &erased).await;
    follows(&first, &second).await;
    // The standby opens what the active sealed: the key came from the
    // cluster, not from its own sealing.
    let shown = p::Confidentiality::Shown as i32;
    assert_eq!(
        child_name_on(&second, &kept).await,
        ("Đinh Thị Hoa".to_owned(), shown)
    );

    // The active dies; the standby takes over with every report readable.
    first.kill();
    becomes(&second, true).await;
    assert_eq!(
        child_name_on(&second, &kept).await,
        ("Đinh Thị Hoa".to_owned(), shown)
    );
    let after = crate::cluster::submit(&second, "keys-after").await;
    assert_eq!(child_name_on(&second, &after).await.0, "Đinh Thị Hoa");

    // An erasure on the new active purges the key from the cluster: a new
    // standby that follows the log finds none for that report, and the
    // others' keys.
    p::intake_service_client::IntakeServiceClient::new(
        second.channel_as(&crate::province_officer("so-yt-1")).await,
    )
    .erase_case(p::EraseCaseRequest {
        request_id: "keys-erase".into(),
        case_id: erased_case,
        reason: "yêu cầu xóa của người giám hộ".into(),
    })
    .await
    .unwrap();
    // The bucket itself holds the other keys and not the erased one.
    let js = async_nats::jetstream::new(
        async_nats::connect(urls.split(',').next().unwrap())
            .await
            .unwrap(),
    );
    let bucket = js
        .get_key_value(baove_bus::kv::DATA_KEYS.name)
        .await
        .unwrap();
    assert!(bucket.get(&kept).await.unwrap().is_some());
    assert!(bucket.get(&after).await.unwrap().is_some());
    assert!(bucket.get(&erased).await.unwrap().is_none());
    let third = start("intake", &[r3.clone(), ("BAOVE_ROLE", "auto".to_owned())]);
    third.wait_health("", ServingStatus::Serving).await;
    becomes(&third, false).await;
    follows(&second, &third).await;
    let (name, state) = child_name_on(&third, &erased).await;
    assert_eq!(
        (name.as_str(), state),
        ("", p::Confidentiality::Erased as i32)
    );
    assert_eq!(
        child_name_on(&third, &kept).await,
        ("Đinh Thị Hoa".to_owned(), shown)
    );
    assert_eq!(
        child_name_on(&third, &after).await,
        ("Đinh Thị Hoa".to_owned(), shown)
    );
}

/// Submits a hotline report as a hotline client given every intake
/// process's address does: a refused or failed call is sent again, with
/// the same request id, to the next of `channels` (from `at` on), until
/// acknowledged (90 s). Counts the refusals by code and the start of
/// their message in `refused`.
pub async fn submit_rotating(
    channels: &[crate::AuthChannel],
    at: &mut usize,
    request_id: &str,
    refused: &mut std::collections::HashMap<String, u32>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut client = p::intake_service_client::IntakeServiceClient::new(
            channels[*at % channels.len()].clone(),
        );
        match client
            .submit_hotline_report(crate::intake::hotline(request_id, "Lò Thị Mai"))
            .await
        {
            Ok(receipt) => return receipt.into_inner().intake_id,
            Err(status) => {
                // By code and the message's start: what kept the report
                // waiting (a standby, no quorum, a lease changing hands).
                let why: String = status.message().chars().take(48).collect();
                *refused
                    .entry(format!("{:?}: {why}", status.code()))
                    .or_default() += 1;
                assert!(
                    Instant::now() < deadline,
                    "{request_id} never acknowledged: {status}; this client's refusals by code and message: {refused:?}"
                );
                *at += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reports each hotline client submits in the load test.
const PER_CLIENT: usize = 15;
/// Hotline clients submitting at once.
const CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_the_active_intake_killed_loses_no_acknowledged_report_and_opens_no_case_twice()
{
    use std::collections::{HashMap, HashSet};

    let cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    // Each process's log, at info, kept for a failure to be read.
    let logs = std::env::temp_dir().join(format!("baove-intake-load-{}", std::process::id()));
    std::fs::create_dir_all(&logs).unwrap();
    println!("each process's log: {}", logs.display());
    let start = |name: &'static str| {
        Service::launch(
            name,
            &urls,
            tempfile::tempdir().unwrap(),
            &[
                ("BAOVE_STREAM_REPLICAS", "3".to_owned()),
                ("RUST_LOG", "info".to_owned()),
            ],
            Some(&logs.join(format!("{name}.log"))),
        )
        .map_err(|(status, _)| status)
        .unwrap()
    };
    let (mut first, mut second) = intake_pair(&urls).await;
    for (which, intake) in [("first", &first), ("second", &second)] {
        println!(
            "the {which} intake's log: {}",
            intake.data.path().with_extension("stderr").display()
        );
    }
    let casework = start("casework");
    let referral = start("referral");
    for s in [&casework, &referral] {
        s.wait_health("", ServingStatus::Serving).await;
    }

    // Hotline clients, each given both processes' addresses, as the console
    // is: a refused or failed call is sent again, with the same request id,
    // to the other process, until acknowledged.
    let channels = [first.channel().await, second.channel().await];
    // How many reports are acknowledged so far, for the kill to wait on.
    let (acknowledged, mut counted) = tokio::sync::watch::channel(0_usize);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let channels = channels.clone();
        let acknowledged = acknowledged.clone();
        clients.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            let mut refused: HashMap<String, u32> = HashMap::new();
            for i in 0..PER_CLIENT {
                let request_id = format!("load-{c}-{i}");
                let mut at = c;
                let intake_id =
                    submit_rotating(&channels, &mut at, &request_id, &mut refused).await;
                acknowledged.send_modify(|n| *n += 1);
                receipts.push((request_id, intake_id));
            }
            (receipts, refused)
        }));
    }

    // A third of the way through, the active dies as a machine does.
    let before_kill = *tokio::time::timeout(
        Duration::from_secs(60),
        counted.wait_for(|n| *n >= CLIENTS * PER_CLIENT / 3),
    )
    .await
    .expect("the load never got going")
    .unwrap();
    first.kill();
    let killed = Instant::now();
    becomes(&second, true).await;
    let took_over = killed.elapsed();

    let mut receipts = Vec::new();
    let mut refused: HashMap<String, u32> = HashMap::new();
    for client in clients {
        let (theirs, refusals) = match client.await {
            Ok(done) => done,
            Err(failed) => panic!(
                "a hotline client failed ({failed}); the surviving process {}; its stderr: {}",
                match second.exited() {
                    Some(status) => format!("had exited: {status}"),
                    None => "still ran".to_owned(),
                },
                std::fs::read_to_string(second.data.path().with_extension("stderr"))
                    .unwrap_or_default()
            ),
        };
        receipts.extend(theirs);
        for (code, n) in refusals {
            *refused.entry(code).or_default() += n;
        }
    }
    println!(
        "load failover: {before_kill} reports acknowledged before the kill; the standby took the lease {took_over:?} after it; calls refused or failed meanwhile, by code and message: {refused:?}"
    );

    // Every request acknowledged once, each with its own report.
    assert_eq!(receipts.len(), CLIENTS * PER_CLIENT);
    let intake_ids: HashSet<&String> = receipts.iter().map(|(_, id)| id).collect();
    assert_eq!(
        intake_ids.len(),
        receipts.len(),
        "a report id was given twice"
    );
    // The survivor holds exactly the acknowledged reports: none lost, none
    // recorded twice by a retry that crossed the failover.
    let recorded: Vec<String> = whole_log(&second)
        .await
        .into_iter()
        .filter(|e| e.event_type == "IntakeRecorded")
        .map(|e| e.stream_id)
        .collect();
    let recorded_set: HashSet<&String> = recorded.iter().collect();
    assert_eq!(
        recorded.len(),
        recorded_set.len(),
        "a report recorded twice"
    );
    assert_eq!(recorded_set, intake_ids, "the survivor's reports");
    // Each became exactly one case.
    let mut cases = HashSet::new();
    for intake_id in &intake_ids {
        match crate::intake::try_case_of(&second, intake_id).await {
            Ok(case_id) => cases.insert(case_id),
            Err(stuck) => {
                let mut files = vec![
                    first.data.path().with_extension("stderr"),
                    second.data.path().with_extension("stderr"),
                ];
                files.extend(["casework", "referral"].map(|s| logs.join(format!("{s}.log"))));
                panic!(
                    "{stuck}\nwhat each process logged of it:\n{}",
                    crate::lines_naming(&files, &[intake_id.as_str()])
                )
            }
        };
    }
    assert_eq!(cases.len(), intake_ids.len(), "one case per report");
    let mut officer = p::case_service_client::CaseServiceClient::new(
        casework
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    );
    let listed = officer
        .list_cases(p::ListCasesRequest {
            page: Some(p::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed: HashSet<String> = listed.cases.into_iter().map(|c| c.case_id).collect();
    assert_eq!(listed, cases, "casework opened no other case");
    let mut audit = AuditServiceClient::new(second.channel_as(&auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    assert!(broken.is_empty() && checked == total, "{broken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_cut_off_with_events_the_cluster_never_stored_rejoins_as_a_standby_with_them_set_aside()
 {
    let mut cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let r3 = ("BAOVE_STREAM_REPLICAS", "3".to_owned());
    let auto = ("BAOVE_ROLE", "auto".to_owned());
    let env = [r3.clone(), auto];
    let intake = Service::start_with(
        "intake",
        &urls,
        tempfile::tempdir().unwrap(),
        std::slice::from_ref(&r3),
    );
    let mut first = Service::start_with("casework", &urls, tempfile::tempdir().unwrap(), &env);
    becomes(&first, true).await;
    let second = Service::start_with("casework", &urls, tempfile::tempdir().unwrap(), &env);
    second.wait_health("", ServingStatus::Serving).await;
    becomes(&second, false).await;
    intake.wait_health("", ServingStatus::Serving).await;
    let case_id = reports(&intake, "cut", 1).await.remove(0);
    follows(&first, &second).await;
    let stored = whole_log(&first).await.len() as u64;

    // Two of the three NATS nodes die: no quorum. An auditor asks the
    // active for a fresh checkpoint: signed and appended on its own disk,
    // but the cluster never stores it; the active, unable to renew its
    // lease, takes no more writes.
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    let fresh = {
        let mut audit = AuditServiceClient::new(first.channel_as(&auditor()).await);
        tokio::spawn(async move {
            audit
                .get_checkpoint(p::GetCheckpointRequest { fresh: true })
                .await
        })
    };
    let _ = fresh.await.unwrap();
    becomes(&first, false).await;
    // Cut off (paused here) until another has taken the lease: when the
    // quorum returns it cannot renew on its term first.
    first.pause();

    // The node that was left may hold the checkpoint as a proposal not yet
    // agreed, which would be agreed on when the others return (a write that
    // timed out may still land): that node dies too, and comes back with
    // an empty store, after the other two have made a quorum without it.
    cluster.nodes[0].kill();
    cluster.nodes[1].restart().unwrap();
    cluster.nodes[2].restart().unwrap();
    cluster.nodes[0].restart_empty().unwrap();
    becomes(&second, true).await;
    let mut officer = crate::casework::Officer::of(&second, &case_id).await;
    let header = officer.header();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(status) = officer
        .client
        .add_note(p::AddNoteRequest {
            header: header.clone(),
            text: "sau khi chuyển".into(),
        })
        .await
    {
        assert!(Instant::now() < deadline, "the note was refused: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Resumed, the old active finds the lease another's, and stops.
    first.resume();
    let stopped = first.exit_status().await;
    assert_eq!(
        stopped.code(),
        Some(1),
        "a deposed active exits with an error, so that a supervisor (Restart=on-failure) starts it again: {stopped:?}"
    );
    let unstored = {
        let log = baove_eventlog::EventLog::open(first.data.path().join("eventlog"))
            .await
            .unwrap();
        let events = log.read_all(stored + 1, 100_000).await.unwrap();
        log.close().await.unwrap();
        events
    };
    assert!(
        unstored.iter().any(|e| e.event_type == "CheckpointSigned"),
        "the checkpoint is on the old active's disk: {unstored:?}"
    );

    // The old active, started again on its own disk, sets aside what the
    // cluster never stored and follows the new active as a standby, with
    // exactly its log (before, it refused to start: "diverged").
    let data = first.into_data();
    let mut rejoined = Service::start_with("casework", &urls, data, &env);
    rejoined.wait_health("", ServingStatus::Serving).await;
    becomes(&rejoined, false).await;
    follows(&second, &rejoined).await;
    let log = whole_log(&rejoined).await;
    assert!(
        unstored.iter().all(|e| log
            .iter()
            .all(|theirs| theirs.event_id != e.event_id.to_string())),
        "an event the cluster never stored is still in the log"
    );
    let mut reader = crate::casework::Officer::of(&rejoined, &case_id).await;
    assert_eq!(reader.case().await.notes, ["sau khi chuyển"]);
    let mut audit = AuditServiceClient::new(rejoined.channel_as(&auditor()).await);
    let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
    assert!(broken.is_empty() && checked == total, "{broken:?}");

    // What was set aside is kept, whole, for an auditor.
    rejoined.terminate();
    assert!(rejoined.exit_status().await.success());
    let log = baove_eventlog::EventLog::open(rejoined.data.path().join("eventlog"))
        .await
        .unwrap();
    let aside = log.set_aside().await.unwrap();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(aside[0].events, unstored);
    assert!(
        aside[0].reason.contains("never stored by the cluster"),
        "{}",
        aside[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_stopped_on_purpose_gives_its_lease_back_and_a_standby_takes_it() {
    let cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let env = [
        ("BAOVE_STREAM_REPLICAS", "3".to_owned()),
        ("BAOVE_ROLE", "auto".to_owned()),
    ];
    let mut first = Service::start_with("referral", &urls, tempfile::tempdir().unwrap(), &env);
    becomes(&first, true).await;
    let second = Service::start_with("referral", &urls, tempfile::tempdir().unwrap(), &env);
    second.wait_health("", ServingStatus::Serving).await;
    becomes(&second, false).await;
    let js = crate::cluster::jetstream_of(&cluster).await;
    let leases = baove_bus::lease::bucket(&js, 3).await.unwrap();
    let first_addr = first.addr.clone();
    let held_by_first = |holder: Option<String>| {
        holder.is_some_and(|h| h.split(' ').next() == Some(first_addr.as_str()))
    };
    assert!(held_by_first(
        baove_bus::lease::holder(&leases, "referral").await.unwrap()
    ));

    // SIGTERM: the active stops, and gives its lease back on the way out,
    // instead of leaving it to go unrenewed for the lease's 4 s.
    let stopped = Instant::now();
    first.terminate();
    assert!(first.exit_status().await.success());
    let holder = baove_bus::lease::holder(&leases, "referral").await.unwrap();
    assert!(
        !held_by_first(holder.clone()),
        "the stopped active still holds the lease: {holder:?}"
    );
    becomes(&second, true).await;
    println!(
        "lease given back: the standby took writes {:.2} s after the active was asked to stop",
        stopped.elapsed().as_secs_f64()
    );
}
