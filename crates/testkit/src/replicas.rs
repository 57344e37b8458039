//! Waiting for a replicated JetStream stream (or key-value bucket, whose
//! stream is `KV_<bucket>`) of a [`crate::NatsCluster`] to be ready, as the
//! cluster tests do before they kill a node: polled every 100 ms, since
//! JetStream tells nobody when a replica catches up.

use std::time::{Duration, Instant};

use async_nats::jetstream;

/// The stream's cluster info, once the stream has a leader (60 s).
pub async fn leader_of(js: &jetstream::Context, name: &str) -> jetstream::stream::Info {
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

/// Waits (60 s) until every replica of `name` is current and none lags:
/// the names of the three nodes holding it, its leader last.
pub async fn replicas_current(js: &jetstream::Context, name: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cluster = leader_of(js, name).await.cluster.unwrap_or_default();
        if let Some(leader) = &cluster.leader
            && cluster.replicas.len() == 2
            && cluster
                .replicas
                .iter()
                .all(|r| r.current && !r.offline && r.lag.unwrap_or(0) == 0)
        {
            let mut names: Vec<String> = cluster.replicas.iter().map(|r| r.name.clone()).collect();
            names.push(leader.clone());
            return names;
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s replicas never caught up: {:?}",
            cluster.replicas
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
