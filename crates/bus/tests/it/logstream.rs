//! The log stream against a real nats-server: every event in global order,
//! a log behind its stream catches up from it, and a second writer of the
//! same log cannot extend the stream; where the two copies part is found.

use std::time::Duration;

use baove_bus::logstream::{self, LogRelay};
use baove_bus::{BusError, StreamSpec, ensure_stream};
use baove_eventlog::EventLog;
use baove_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

use crate::{append, bus};

const LOG: StreamSpec = StreamSpec {
    name: "BAOVE_TEST_LOG",
    prefix: "baove.log.test",
};

/// Waits (30 s) until the log stream ends at `position`.
async fn stream_reaches(js: &async_nats::jetstream::Context, position: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let end = logstream::stream_end(js, LOG)
            .await
            .ok()
            .flatten()
            .map_or(0, |e| e.global_position);
        if end >= position {
            assert_eq!(end, position, "the stream went past the log");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log stream ends at {end}, not {position}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every envelope on the log stream from position 1 to `to`.
async fn on_stream(js: &async_nats::jetstream::Context, to: u64) -> Vec<baove_eventlog::Envelope> {
    let mut all = Vec::new();
    logstream::read_stream(js, LOG, 1, to, |page| {
        all.extend(page);
        async { Ok(()) }
    })
    .await
    .unwrap();
    all
}

async fn setup() -> (
    NatsServer,
    async_nats::jetstream::Context,
    CancellationToken,
) {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let client = baove_bus::connect(&nats.url(), "log-test", &cancel, None)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, LOG, 1).await.unwrap();
    (nats, js, cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_on_the_stream_in_order_and_a_log_behind_it_catches_up() {
    let (_nats, js, cancel) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    append(&log, "a", 3).await;
    let older = tempfile::tempdir().unwrap();
    {
        // A copy of the log as it is now: 3 events.
        let copy = EventLog::open(older.path()).await.unwrap();
        copy.import(log.read_all(1, 100).await.unwrap())
            .await
            .unwrap();
        copy.close().await.unwrap();
    }
    let relay = tokio::spawn(LogRelay::new(log.clone(), bus(&js), LOG).run(cancel.clone()));
    append(&log, "b", 2).await;
    append(&log, "c", 4).await;
    stream_reaches(&js, 9).await;
    let on_stream = on_stream(&js, 9).await;
    assert_eq!(
        on_stream,
        log.read_all(1, 100).await.unwrap(),
        "byte for byte, in order"
    );

    // The older copy is 6 events behind: it takes them from the stream.
    let copy = EventLog::open(older.path()).await.unwrap();
    assert_eq!(logstream::catch_up(&copy, &js, LOG).await.unwrap(), 6);
    assert_eq!(copy.read_all(1, 100).await.unwrap(), on_stream);
    // Caught up: nothing more to take.
    assert_eq!(logstream::catch_up(&copy, &js, LOG).await.unwrap(), 0);
    cancel.cancel();
    relay.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_of_the_log_cannot_extend_the_stream_and_is_told_it_diverged() {
    // What the bus counts (the only test of this binary that installs a
    // recorder).
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let counted = recorder.snapshotter();
    recorder.install().unwrap();
    let (_nats, js, cancel) = setup().await;
    let first_dir = tempfile::tempdir().unwrap();
    let first = EventLog::open(first_dir.path()).await.unwrap();
    append(&first, "shared", 2).await;
    // A copy that goes on on its own (a deposed process, a copy started by
    // mistake): same first two events, then different ones.
    let second_dir = tempfile::tempdir().unwrap();
    let second = EventLog::open(second_dir.path()).await.unwrap();
    second
        .import(first.read_all(1, 100).await.unwrap())
        .await
        .unwrap();
    append(&first, "first", 1).await;
    append(&second, "second", 3).await;

    let first_relay = tokio::spawn(LogRelay::new(first.clone(), bus(&js), LOG).run(cancel.clone()));
    stream_reaches(&js, 3).await;
    let second_bus = bus(&js);
    let health = second_bus.health.clone();
    let second_relay =
        tokio::spawn(LogRelay::new(second.clone(), second_bus, LOG).run(cancel.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let reason = loop {
        if let Some((part, reason)) = health.first_failure()
            && reason.contains("different events at position 3")
        {
            assert!(part.contains("BAOVE_TEST_LOG"), "{part}");
            break reason;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second writer was not told: {:?}",
            health.first_failure()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(reason.contains("rebuild"), "{reason}");
    // The stream holds the first writer's events only.
    stream_reaches(&js, 3).await;
    let on_stream = on_stream(&js, 3).await;
    assert_eq!(on_stream, first.read_all(1, 100).await.unwrap());
    // And catching the second up from the stream is refused, not merged.
    assert!(matches!(
        logstream::catch_up(&second, &js, LOG).await,
        Err(BusError::Diverged { position: 3, .. })
    ));
    // Where they part: position 3, also once the stream went further.
    assert_eq!(
        logstream::fork_point(&second, &js, LOG).await.unwrap(),
        Some(3)
    );
    assert_eq!(logstream::fork_point(&first, &js, LOG).await.unwrap(), None);
    append(&first, "more", 6).await;
    stream_reaches(&js, 9).await;
    assert_eq!(
        logstream::fork_point(&second, &js, LOG).await.unwrap(),
        Some(3)
    );
    assert_eq!(logstream::fork_point(&first, &js, LOG).await.unwrap(), None);
    // In a cluster, a standby following it stops at once (only a restart
    // can set aside what it holds that the stream does not).
    let mut cluster_bus = bus(&js);
    cluster_bus.replicas = 3;
    let followed = tokio::time::timeout(
        Duration::from_secs(30),
        logstream::follow(second.clone(), cluster_bus, LOG, cancel.child_token()),
    )
    .await
    .expect("the follower went on past the divergence");
    assert!(
        matches!(followed, Err(BusError::Diverged { .. })),
        "{followed:?}"
    );
    // And so does its log relay, on an active: its runtime then stops the
    // process, which sets the events aside when started again.
    let mut cluster_bus = bus(&js);
    cluster_bus.replicas = 3;
    let relayed = tokio::time::timeout(
        Duration::from_secs(30),
        LogRelay::new(second.clone(), cluster_bus, LOG).run(cancel.child_token()),
    )
    .await
    .expect("the relay went on past the divergence");
    assert!(
        matches!(relayed, Err(BusError::Diverged { position: 3, .. })),
        "{relayed:?}"
    );
    // A log that agrees with the stream but is behind it (another process
    // went on writing): the relay stops too, for a restart to catch up.
    let behind_dir = tempfile::tempdir().unwrap();
    let behind = EventLog::open(behind_dir.path()).await.unwrap();
    behind
        .import(first.read_all(1, 4).await.unwrap())
        .await
        .unwrap();
    let mut cluster_bus = bus(&js);
    cluster_bus.replicas = 3;
    let relayed = tokio::time::timeout(
        Duration::from_secs(30),
        LogRelay::new(behind.clone(), cluster_bus, LOG).run(cancel.child_token()),
    )
    .await
    .expect("the relay went on behind the stream");
    assert!(
        matches!(
            relayed,
            Err(BusError::Behind {
                last: 4,
                published: 9,
                ..
            })
        ),
        "{relayed:?}"
    );
    // And counted, for the alert ChainVerificationFailed.
    let failures: Vec<_> = counted
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == baove_bus::CHAIN_FAILURES
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "check" && l.value() == "relay")
        })
        .map(|(.., value)| value)
        .collect();
    assert!(
        matches!(failures.as_slice(), [metrics_util::debugging::DebugValue::Counter(n)] if *n >= 1),
        "{failures:?}"
    );
    cancel.cancel();
    first_relay.await.unwrap().unwrap();
    // With one copy the relay of the diverged log goes on saying so.
    second_relay.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stopped_while_its_stream_is_missing_leaves_the_bus_healthy() {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let client = baove_bus::connect(&nats.url(), "follow-test", &cancel, None)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let bus = bus(&js);
    // No log stream yet (a cluster's first start): the follower fails.
    let following = CancellationToken::new();
    let follower = tokio::spawn(logstream::follow(log, bus.clone(), LOG, following.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !bus
        .health
        .first_failure()
        .is_some_and(|(_, why)| why.contains("not found"))
    {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", bus.health);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The process takes over: the follower stops and no longer counts.
    following.cancel();
    follower.await.unwrap().unwrap();
    assert_eq!(bus.health.first_failure(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_active_hands_on_what_the_dead_one_stored_with_the_cluster_but_had_not_published() {
    const EVENTS: StreamSpec = StreamSpec {
        name: "BAOVE_TEST",
        prefix: "baove.test",
    };
    let (_nats, js, cancel) = setup().await;
    ensure_stream(&js, EVENTS, 1).await.unwrap();
    // The active: three events to hand on, then one kept to itself.
    let active_dir = tempfile::tempdir().unwrap();
    let active = EventLog::open(active_dir.path()).await.unwrap();
    append(&active, "handed", 3).await;
    active
        .append(baove_eventlog::AppendRequest {
            stream: baove_eventlog::StreamId::new(),
            expected: baove_eventlog::ExpectedVersion::NoStream,
            command_id: "kept".into(),
            actor: baove_eventlog::Actor::system("test"),
            causation_id: String::new(),
            correlation_id: String::new(),
            events: vec![baove_eventlog::NewEvent::new("Kept", 1, &serde_json::json!({})).unwrap()],
            publish: false,
        })
        .await
        .unwrap();
    // The cluster stores all four; only the first was published for the
    // other services when the active died.
    let log_relay = tokio::spawn(LogRelay::new(active.clone(), bus(&js), LOG).run(cancel.clone()));
    stream_reaches(&js, 4).await;
    let first = active.read_all(1, 1).await.unwrap().remove(0);
    baove_bus::publish(&js, EVENTS, &first).await.unwrap();
    cancel.cancel();
    log_relay.await.unwrap().unwrap();

    // The standby that takes over holds the same log, nothing in its
    // outbox (it imported it).
    let next_dir = tempfile::tempdir().unwrap();
    let next = EventLog::open(next_dir.path()).await.unwrap();
    assert_eq!(logstream::catch_up(&next, &js, LOG).await.unwrap(), 4);
    assert!(next.outbox(10).await.unwrap().is_empty());
    // It hands on the two the dead active had not, and not the one kept.
    assert_eq!(
        logstream::requeue_unpublished(&next, &js, LOG, EVENTS)
            .await
            .unwrap(),
        2
    );
    let waiting: Vec<u64> = next
        .outbox(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(waiting, [2, 3]);
    // Once they are published nothing is left to hand on.
    for event in next.outbox(10).await.unwrap() {
        baove_bus::publish(&js, EVENTS, &event).await.unwrap();
        next.outbox_done(event.global_position, 0).await.unwrap();
    }
    assert_eq!(
        logstream::requeue_unpublished(&next, &js, LOG, EVENTS)
            .await
            .unwrap(),
        0
    );
}

/// The relay publishes without asking where the stream ends while it knows
/// (its own last acknowledged publish): when another writer extended the
/// stream meanwhile, its next publish is refused by the expected sequence,
/// and it asks, compares, and stops, the other writer's events untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_knows_where_the_stream_ends_is_still_refused_when_another_writer_extended_it()
{
    deposed_relay_meets_another_writer(2, 1).await;
}

/// The relay sends a page's events without waiting for each ack. A
/// deposed writer whose relay still thinks the stream ends at 3 sends
/// positions 4, 5 and 6 at once, while a new writer already stored its
/// own position 4: the first is refused by its position, and the second,
/// whose position (4) the stream does end at, by the event it must follow
/// (`Nats-Expected-Last-Msg-Id`): nothing of the deposed writer lands
/// after the new writer's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_relay_sending_several_events_at_once_stores_none_after_another_writers_event() {
    deposed_relay_meets_another_writer(1, 3).await;
}

/// A relay (of a cluster's process) publishes three shared events and so
/// knows the stream ends at 3; another writer with the same three events
/// then stores `theirs` of its own; the first log then takes `ours` events
/// in one command. Its relay must put none of them on the stream, and
/// stops, naming position 4, where the two part.
async fn deposed_relay_meets_another_writer(theirs: usize, ours: usize) {
    let (_nats, js, cancel) = setup().await;
    let first_dir = tempfile::tempdir().unwrap();
    let first = EventLog::open(first_dir.path()).await.unwrap();
    append(&first, "shared", 3).await;
    let mut cluster_bus = bus(&js);
    cluster_bus.replicas = 3;
    let first_relay =
        tokio::spawn(LogRelay::new(first.clone(), cluster_bus, LOG).run(cancel.clone()));
    stream_reaches(&js, 3).await;

    let second_dir = tempfile::tempdir().unwrap();
    let second = EventLog::open(second_dir.path()).await.unwrap();
    second
        .import(first.read_all(1, 100).await.unwrap())
        .await
        .unwrap();
    append(&second, "second", theirs).await;
    let end = 3 + theirs as u64;
    let second_cancel = cancel.child_token();
    let second_relay =
        tokio::spawn(LogRelay::new(second.clone(), bus(&js), LOG).run(second_cancel.clone()));
    stream_reaches(&js, end).await;
    second_cancel.cancel();
    second_relay.await.unwrap().unwrap();

    append(&first, "first", ours).await;
    let relayed = tokio::time::timeout(Duration::from_secs(30), first_relay)
        .await
        .expect("the relay went on past another writer's events")
        .unwrap();
    assert!(
        matches!(relayed, Err(BusError::Diverged { position: 4, .. })),
        "{relayed:?}"
    );
    let stream_end = logstream::stream_end(&js, LOG).await.unwrap().unwrap();
    assert_eq!(
        stream_end.global_position, end,
        "the deposed writer's events were stored after the other writer's"
    );
    assert_eq!(
        on_stream(&js, end).await,
        second.read_all(1, 100).await.unwrap()
    );
    cancel.cancel();
}
