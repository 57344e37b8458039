//! Standby caseworks on a three-node cluster: a standby follows the
//! active's log stream into its own log (same events, same hashes),
//! answers reads, refuses writes naming the active, and, when the active
//! dies, is promoted by restarting it as the active (`role = standby`) or
//! takes the lease by itself (`role = auto`); an active paused past its
//! lease stops when it resumes, having written nothing the new active's log
//! lacks. intake cannot be a standby yet.

use std::time::{Duration, Instant};

use baove_proto::v1::{self as p, audit_service_client::AuditServiceClient};
use baove_testkit::NatsCluster;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::case_of;
use crate::{Service, auditor};

/// The whole log of `service`, as an auditor reads it.
async fn whole_log(service: &Service) -> Vec<p::EventEnvelope> {
    let mut audit = AuditServiceClient::new(service.channel_as(&auditor()).await);
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = audit
            .read_all(p::ReadAllRequest {
                from_position: from,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner();
        if page.events.is_empty() {
            return events;
        }
        from = page.next_position;
        events.extend(page.events);
    }
}

/// Waits (30 s) until `standby` holds exactly `active`'s log.
async fn follows(active: &Service, standby: &Service) {
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

    // The active's host dies; the standby is promoted.
    active.kill();
    let killed = Instant::now();
    let data = std::mem::replace(&mut standby.data, tempfile::tempdir().unwrap());
    standby.terminate();
    assert!(standby.exit_status().await.success());
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

    // intake refuses to be a standby, and says why.
    let refused = Service::try_start_in_with(
        "intake",
        &urls,
        tempfile::tempdir().unwrap(),
        &[r3, ("BAOVE_ROLE", "standby".to_owned())],
    );
    let Err((stderr, _)) = refused else {
        panic!("intake ran as a standby without its data keys")
    };
    assert!(stderr.contains("cannot run as a standby"), "{stderr}");
}

/// Waits (60 s) until `service` says whether it takes writes.
async fn becomes(service: &Service, active: bool) {
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

    // The active dies: the standby takes the lease by itself.
    first.kill();
    let killed = Instant::now();
    becomes(&second, true).await;
    let took_over = killed.elapsed();
    cases.extend(reports(&intake, "auto-after", 2).await);
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
    assert!(stopped.success(), "{stopped:?}");
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
