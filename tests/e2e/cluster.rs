//! The services on a three-node NATS JetStream cluster (loopback), their
//! streams with 3 replicas (`stream_replicas = 3`, `nats_url` listing every
//! node): reports keep being acknowledged and handed over while the node
//! leading the intake stream is killed (SIGKILL) and brought back; every
//! acknowledged report ends in exactly one case, and the node that died
//! catches up with the others.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use baove_proto::v1::{
    self as p, case_service_client::CaseServiceClient, intake_service_client::IntakeServiceClient,
};
use baove_testkit::NatsCluster;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::{case_of, hotline, intake_client};
use crate::{Service, province_officer};

/// JetStream through any node of the cluster.
async fn jetstream_of(cluster: &NatsCluster) -> jetstream::Context {
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .map(baove_testkit::NatsServer::url)
        .collect();
    jetstream::new(async_nats::connect(urls.as_slice()).await.unwrap())
}

/// The stream's cluster info, once the stream has a leader (60 s).
async fn leader_of(js: &jetstream::Context, name: &str) -> jetstream::stream::Info {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = js.get_stream(name).await
            && let Ok(info) = stream.info().await
            && info.cluster.as_ref().is_some_and(|c| c.leader.is_some())
        {
            return info.clone();
        }
        assert!(Instant::now() < deadline, "{name} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (60 s) until every replica of `name` is current and none lags.
async fn replicas_current(js: &jetstream::Context, name: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = leader_of(js, name).await;
        let cluster = info.cluster.unwrap();
        let replicas = &cluster.replicas;
        if replicas.len() == 2
            && replicas
                .iter()
                .all(|r| r.current && !r.offline && r.lag.unwrap_or(0) == 0)
        {
            let mut names: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
            names.push(cluster.leader.unwrap());
            return names;
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s replicas never caught up: {replicas:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits like a real client: the same request id again until it is
/// acknowledged (60 s).
pub async fn submit(intake: &Service, request_id: &str) -> String {
    submit_counting(intake, request_id).await.0
}

/// As [`submit`]; also how many attempts were refused.
async fn submit_counting(intake: &Service, request_id: &str) -> (String, u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    loop {
        match intake_client(intake)
            .await
            .submit_hotline_report(hotline(request_id, "Đinh Thị Hoa"))
            .await
        {
            Ok(receipt) => return (receipt.into_inner().intake_id, refused),
            Err(status) => {
                refused += 1;
                assert!(
                    Instant::now() < deadline,
                    "{request_id} never acknowledged: {status}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_node_cluster_a_dead_nats_node_loses_no_report_and_catches_up() {
    let mut cluster = NatsCluster::start().unwrap();
    let env = [("BAOVE_STREAM_REPLICAS", "3".to_owned())];
    let urls = cluster.urls();
    let intake = Service::start_with("intake", &urls, tempfile::tempdir().unwrap(), &env);
    let casework = Service::start_with("casework", &urls, tempfile::tempdir().unwrap(), &env);
    let referral = Service::start_with("referral", &urls, tempfile::tempdir().unwrap(), &env);
    for s in [&intake, &casework, &referral] {
        s.wait_health("", ServingStatus::Serving).await;
    }
    let js = jetstream_of(&cluster).await;
    for name in [
        "BAOVE_INTAKE",
        "BAOVE_CASE",
        "BAOVE_REFERRAL",
        "BAOVE_ALERT",
    ] {
        let info = leader_of(&js, name).await;
        assert_eq!(info.config.num_replicas, 3, "{name} is replicated 3 times");
        assert_eq!(
            replicas_current(&js, name).await.len(),
            3,
            "{name} lives on all three nodes"
        );
    }

    let mut intake_ids = Vec::new();
    let mut killed = None;
    let mut killed_at = None;
    for i in 0..45 {
        if i == 15 {
            // The node leading the intake stream dies, as a machine does.
            let leader = leader_of(&js, "BAOVE_INTAKE")
                .await
                .cluster
                .unwrap()
                .leader
                .unwrap();
            cluster.node_named(&leader).unwrap().kill();
            killed = Some(leader);
            killed_at = Some(Instant::now());
        }
        if i == 30 {
            let name = killed.clone().unwrap();
            cluster.node_named(&name).unwrap().restart().unwrap();
        }
        let (intake_id, refused) = submit_counting(&intake, &format!("cluster-{i}")).await;
        if let Some(at) = killed_at.take() {
            // A figure, not an assertion: how long writes waited for the
            // stream's new leader.
            println!(
                "first report acknowledged {:?} after the leader was killed ({refused} attempts refused before)",
                at.elapsed()
            );
        }
        intake_ids.push(intake_id);
    }
    let killed = killed.unwrap();
    let new_leader = leader_of(&js, "BAOVE_INTAKE")
        .await
        .cluster
        .unwrap()
        .leader
        .unwrap();
    println!("intake stream leader killed: {killed}; leader now: {new_leader}");

    // Every acknowledged report was handed over, each to its own case.
    let mut cases = HashSet::new();
    for intake_id in &intake_ids {
        cases.insert(case_of(&intake, intake_id).await);
    }
    assert_eq!(cases.len(), intake_ids.len(), "one case per report");
    let mut officer =
        CaseServiceClient::new(casework.channel_as(&province_officer("so-yt-1")).await);
    let mut listed = HashSet::new();
    let mut page_token = String::new();
    loop {
        let page = officer
            .list_cases(p::ListCasesRequest {
                page: Some(p::PageRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.cases.into_iter().map(|c| c.case_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(listed, cases, "casework opened no other case");

    // The node that died holds the streams again, caught up.
    for name in [
        "BAOVE_INTAKE",
        "BAOVE_CASE",
        "BAOVE_INTAKE_LOG",
        "BAOVE_CASE_LOG",
    ] {
        let holders = replicas_current(&js, name).await;
        assert!(
            holders.contains(&killed),
            "{name} is back on {killed}: {holders:?}"
        );
    }
    // And every service's parts run again (consumers, relays, streams).
    for s in [&intake, &casework, &referral] {
        s.wait_health("baove.bus", ServingStatus::Serving).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_writes_are_refused_reads_answer_and_a_retry_succeeds_once_it_returns() {
    let mut cluster = NatsCluster::start().unwrap();
    let env = [("BAOVE_STREAM_REPLICAS", "3".to_owned())];
    let intake = Service::start_with(
        "intake",
        &cluster.urls(),
        tempfile::tempdir().unwrap(),
        &env,
    );
    intake.wait_health("", ServingStatus::Serving).await;
    let js = jetstream_of(&cluster).await;
    replicas_current(&js, "BAOVE_INTAKE_LOG").await;
    let first = submit(&intake, "quorum-0").await;

    // Two of three nodes die: JetStream has no quorum.
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    let refused = intake_client(&intake)
        .await
        .submit_hotline_report(hotline("quorum-1", "Mai Văn Tú"))
        .await
        .expect_err("acknowledged without a quorum");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(
        refused.message().contains("not acknowledged"),
        "{}",
        refused.message()
    );
    // Reads still answer.
    let read = IntakeServiceClient::new(intake.channel_as(&province_officer("so-yt-1")).await)
        .get_intake(p::GetIntakeRequest {
            intake_id: first.clone(),
        })
        .await;
    assert!(read.is_ok(), "{read:?}");

    // The quorum returns; the client's retry of the same request succeeds,
    // and the report exists once.
    cluster.nodes[1].restart().unwrap();
    cluster.nodes[2].restart().unwrap();
    let second = submit(&intake, "quorum-1").await;
    assert_ne!(second, first);
    let again = submit(&intake, "quorum-1").await;
    assert_eq!(again, second, "the retry is the same report");
    let listed = IntakeServiceClient::new(intake.channel_as(&province_officer("so-yt-1")).await)
        .list_intakes(p::ListIntakesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.intakes.len(), 2, "{listed:?}");
}
