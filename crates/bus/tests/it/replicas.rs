//! The step-down of a stream's leader, on a real three-node cluster.

use std::time::Duration;

use baove_bus::ensure_stream;
use baove_bus::replicas::{stalled, step_down};
use tokio_util::sync::CancellationToken;

use crate::TEST;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_healthy_cluster_when_a_streams_leader_is_asked_to_step_down_then_another_leads_and_no_replica_counts_as_stalled()
 {
    let nats = baove_testkit::NatsCluster::start().unwrap();
    let cancel = CancellationToken::new();
    let js = async_nats::jetstream::new(
        baove_bus::connect(&nats.urls(), "step-down", &cancel, None)
            .await
            .unwrap(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ensure_stream(&js, TEST, 3).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no stream");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every replica current, as the leader reports.
    let first = loop {
        let info = js
            .get_stream(TEST.name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        let cluster = info.cluster.clone().unwrap_or_default();
        if let Some(leader) = &cluster.leader
            && cluster.replicas.len() == 2
            && cluster.replicas.iter().all(|r| r.current)
        {
            assert_eq!(stalled(&[(TEST.name.to_owned(), cluster.clone())]), []);
            break leader.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{cluster:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    step_down(&js, TEST.name).await.unwrap();
    loop {
        let leader = js
            .get_stream(TEST.name)
            .await
            .ok()
            .and_then(|s| s.cached_info().cluster.clone())
            .and_then(|c| c.leader);
        if leader.as_ref().is_some_and(|l| *l != first) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{first} still leads ({leader:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A stream that is not there: refused, named.
    let refused = step_down(&js, "BAOVE_NO_SUCH").await.unwrap_err();
    assert!(refused.to_string().contains("BAOVE_NO_SUCH"), "{refused}");
}
