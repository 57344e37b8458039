//! A real three-node cluster whose stream's leader dies. A log relay:
//! the next event still reaches the stream, and the test prints how long
//! after the kill it did (a figure, not asserted; `ASK_WITHIN` says what
//! it was before and after the relay's questions were bounded). A lease:
//! its live holder keeps it through the bucket's election, and a standby
//! looking all along never takes it; the test prints how long the holder
//! could not write.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use baove_bus::{LogRelay, StreamSpec};
use baove_eventlog::EventLog;
use tokio_util::sync::CancellationToken;

use crate::{append, bus};

const LOG: StreamSpec = StreamSpec {
    name: "BAOVE_FAILOVER_LOG",
    prefix: "baove.log.failover",
};

/// Waits (up to 60 s) until the relay says the stream holds `position`.
async fn reaches(reached: &mut tokio::sync::watch::Receiver<u64>, position: u64) {
    tokio::time::timeout(
        Duration::from_secs(60),
        reached.wait_for(|p| *p >= position),
    )
    .await
    .unwrap_or_else(|_| panic!("the stream did not reach {position} within 60 s"))
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_log_relay_on_three_nodes_when_the_node_leading_its_stream_dies_then_the_next_event_reaches_the_stream()
 {
    let mut nats = baove_testkit::NatsCluster::start().unwrap();
    let cancel = CancellationToken::new();
    let js = jetstream::new(
        baove_bus::connect(&nats.urls(), "failover", &cancel, None)
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let (tell, mut reached) = tokio::sync::watch::channel(0);
    let mut cluster = bus(&js);
    cluster.replicas = 3;
    let relay = tokio::spawn(
        LogRelay::new(log.clone(), cluster, LOG)
            .telling(tell)
            .run(cancel.clone()),
    );
    append(&log, "before", 3).await;
    reaches(&mut reached, 3).await;
    let leader = baove_testkit::replicas::replicas_current(&js, LOG.name)
        .await
        .pop()
        .unwrap();

    nats.node_named(&leader).unwrap().kill();
    let killed = Instant::now();
    append(&log, "after", 1).await;
    reaches(&mut reached, 4).await;
    println!(
        "log relay: the event appended when {leader} (the stream's leader) was killed reached the stream {:.2} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    // Each event once: what the kill cut short was not stored twice.
    let state = js
        .get_stream(LOG.name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!((state.messages, state.last_sequence), (4, 4));

    cancel.cancel();
    relay.await.unwrap().unwrap();
}

/// The leases bucket, kept three times, once the cluster's meta group
/// has a leader (60 s).
async fn lease_bucket(js: &jetstream::Context) -> async_nats::jetstream::kv::Store {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match baove_bus::lease::bucket(js, 3).await {
            Ok(store) => return store,
            Err(e) => assert!(Instant::now() < deadline, "no leases bucket: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Renews `lease` as an active does (`baove_runtime`'s `keep_lease`): every
/// quarter of the ttl, in time or else regained; returns how long it was
/// unable to write, or the refusal once another holds the lease.
async fn keep(
    mut lease: baove_bus::lease::Lease,
    until: Instant,
) -> Result<(baove_bus::lease::Lease, Duration), baove_bus::BusError> {
    let mut unable = Duration::ZERO;
    while Instant::now() < until {
        tokio::time::sleep(lease.every()).await;
        match lease.renew_in_time().await {
            Ok(()) => {}
            Err(baove_bus::BusError::Unavailable(_)) => {
                let stopped = lease.stop_at();
                lease.regain().await?;
                unable += stopped.elapsed();
            }
            Err(e) => return Err(e),
        }
    }
    Ok((lease, unable))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_lease_on_three_nodes_when_the_node_leading_its_bucket_dies_then_the_holder_keeps_it()
 {
    let mut nats = baove_testkit::NatsCluster::start().unwrap();
    let cancel = CancellationToken::new();
    let urls = nats.urls();
    let connect = |name| baove_bus::connect(&urls, name, &cancel, None);
    let js = jetstream::new(connect("holder").await.unwrap());
    let ttl = Duration::from_secs(4);
    let store = lease_bucket(&js).await;
    let baove_bus::lease::Look::Taken(lease) =
        baove_bus::lease::Candidate::new(&store, "casework", "a", ttl)
            .look()
            .await
            .unwrap()
    else {
        panic!("a free lease is taken");
    };
    let leader = baove_testkit::replicas::replicas_current(&js, "KV_BAOVE_LEASES")
        .await
        .pop()
        .unwrap();
    // A standby on its own connection, looking as a standby does (every
    // eighth of the ttl, each look given up after a second).
    let other = jetstream::new(connect("candidate").await.unwrap());
    let standby = lease_bucket(&other).await;
    let mut candidate = baove_bus::lease::Candidate::new(&standby, "casework", "b", ttl);
    let until = Instant::now() + Duration::from_secs(20);
    let holding = tokio::spawn(keep(*lease, until));
    // The standby looks before the kill too, for a ttl, so that it has seen
    // the holder's last revision when the leader dies.
    let before = Instant::now();
    while before.elapsed() < ttl {
        let look = tokio::time::timeout(Duration::from_secs(1), candidate.look()).await;
        assert!(
            matches!(look, Ok(Ok(baove_bus::lease::Look::Held(ref by))) if by == "a"),
            "{look:?}"
        );
        tokio::time::sleep(ttl / 8).await;
    }

    nats.node_named(&leader).unwrap().kill();
    let killed = Instant::now();
    while Instant::now() < until {
        let look = tokio::time::timeout(Duration::from_secs(1), candidate.look()).await;
        if let Ok(Ok(baove_bus::lease::Look::Taken(_))) = look {
            panic!(
                "the standby took the lease {:.2} s after the bucket's leader died, from a live holder",
                killed.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(ttl / 8).await;
    }
    let (lease, unable) = holding
        .await
        .unwrap()
        .expect("the holder keeps its lease through the election");
    println!(
        "lease: {leader} (the bucket's leader) killed; the holder kept its lease, unable to write for {:.2} s",
        unable.as_secs_f64()
    );
    assert!(!lease.must_stop());
    assert_eq!(
        baove_bus::lease::holder(&standby, "casework")
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
}
