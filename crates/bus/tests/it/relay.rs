//! The outbox relay against a real nats-server that goes away and returns.

use std::collections::HashSet;

use baove_bus::{OutboxRelay, ensure_stream};
use baove_eventlog::EventLog;
use baove_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

use crate::{TEST, append, bus, stored};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_nats_stops_when_events_are_appended_then_after_restart_each_arrives_once_in_order() {
    let mut nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let cancel = CancellationToken::new();
    let client = baove_bus::connect(&nats.url(), "relay-test", &cancel, None)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, TEST, 1).await.unwrap();
    let relay = tokio::spawn(OutboxRelay::new(log.clone(), bus(&js), TEST).run(cancel.clone()));

    append(&log, "before", 3).await;
    assert_eq!(stored(&js, 3).await.len(), 3);

    nats.stop();
    append(&log, "during", 4).await;
    append(&log, "during-2", 2).await;
    nats.restart().unwrap();

    let messages = stored(&js, 9).await;
    let in_log = log.read_all(1, 100).await.unwrap();
    assert_eq!(messages.len(), in_log.len(), "every event exactly once");
    let ids: HashSet<_> = messages.iter().map(|(e, _)| e.event_id).collect();
    assert_eq!(ids.len(), 9, "no event stored twice");
    for ((message, msg_id), appended) in messages.iter().zip(&in_log) {
        assert_eq!(message, appended, "stream order is the log's global order");
        assert_eq!(
            msg_id,
            &appended.event_id.to_string(),
            "Nats-Msg-Id is the event id"
        );
    }
    // Cleared only after the acks: nothing is left to publish.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log.outbox(10).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "outbox not cleared");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cancel.cancel();
    relay.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_relay_restart_when_the_outbox_was_not_cleared_then_jetstream_drops_the_republish()
{
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let cancel = CancellationToken::new();
    let js = async_nats::jetstream::new(
        baove_bus::connect(&nats.url(), "t", &cancel, None)
            .await
            .unwrap(),
    );
    ensure_stream(&js, TEST, 1).await.unwrap();
    ensure_stream(&js, TEST, 1).await.unwrap(); // idempotent
    append(&log, "x", 2).await;
    let events = log.outbox(10).await.unwrap();
    // Published once by hand (as if the relay died before clearing)...
    for e in &events {
        assert!(!baove_bus::publish(&js, TEST, e).await.unwrap().duplicate);
    }
    // ...then the relay publishes the same outbox again.
    let relay = tokio::spawn(OutboxRelay::new(log.clone(), bus(&js), TEST).run(cancel.clone()));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log.outbox(10).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "outbox not cleared");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut stream = js.get_stream(TEST.name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    cancel.cancel();
    relay.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_bus_loses_its_store_when_the_relay_is_idle_then_it_makes_the_stream_and_publishes_the_log_again()
 {
    let mut nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let cancel = CancellationToken::new();
    let client = baove_bus::connect(&nats.url(), "relay-wipe", &cancel, None)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, TEST, 1).await.unwrap();
    let relay = tokio::spawn(OutboxRelay::new(log.clone(), bus(&js), TEST).run(cancel.clone()));
    append(&log, "before-wipe", 3).await;
    assert_eq!(stored(&js, 3).await.len(), 3);

    // Everything the server acknowledged is gone; nothing new is appended.
    nats.restart_empty().unwrap();
    let messages = stored(&js, 3).await;
    let in_log = log.read_all(1, 100).await.unwrap();
    assert_eq!(
        messages.into_iter().map(|(e, _)| e).collect::<Vec<_>>(),
        in_log,
        "the stream holds the log again, in order"
    );
    cancel.cancel();
    relay.await.unwrap();
}
