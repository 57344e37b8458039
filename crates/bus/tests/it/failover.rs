//! A log relay on a real three-node cluster whose stream's leader dies:
//! the next event still reaches the stream, and the test prints how long
//! after the kill it did (a figure, not asserted; `ASK_WITHIN` says what
//! it was before and after the relay's questions were bounded).

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
