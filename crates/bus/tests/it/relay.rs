//! The outbox relay against a real nats-server that goes away and returns.

use std::collections::HashSet;

use baove_bus::{Ensured, OutboxRelay, ensure_stream};
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
    outbox_cleared(&log).await;
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
    assert_eq!(ensure_stream(&js, TEST, 1).await.unwrap(), Ensured::Made);
    // Idempotent, and nothing written when it is there as configured.
    assert_eq!(ensure_stream(&js, TEST, 1).await.unwrap(), Ensured::AsWas);
    append(&log, "x", 2).await;
    let events = log.outbox(10).await.unwrap();
    // Published once by hand (as if the relay died before clearing)...
    for e in &events {
        assert!(!baove_bus::publish(&js, TEST, e).await.unwrap().duplicate);
    }
    // ...then the relay publishes the same outbox again.
    let relay = tokio::spawn(OutboxRelay::new(log.clone(), bus(&js), TEST).run(cancel.clone()));
    outbox_cleared(&log).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_three_node_stream_and_another_publisher_when_the_relay_sends_many_at_once_then_each_event_is_stored_once_in_global_order()
 {
    let nats = baove_testkit::NatsCluster::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let cancel = CancellationToken::new();
    let js = async_nats::jetstream::new(
        baove_bus::connect(&nats.urls(), "relay-window", &cancel, None)
            .await
            .unwrap(),
    );
    // A new cluster elects its leaders first.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while ensure_stream(&js, TEST, 3).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no stream");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Several windows' worth, waiting before the relay starts.
    for i in 0..10 {
        append(&log, &format!("batch-{i}"), 30).await;
    }
    // Another publisher on the same stream meanwhile (intake's
    // re-publisher publishes outside the relay): its messages come between
    // the relay's and make some of them refused, to be sent again.
    let foreign = tokio::spawn({
        let js = js.clone();
        async move {
            for i in 0..40 {
                js.send_publish(
                    format!("{}.Foreign", TEST.prefix),
                    async_nats::jetstream::message::PublishMessage::build()
                        .payload(format!("{{\"foreign\":{i}}}").into())
                        .message_id(format!("foreign-{i}")),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            }
        }
    });
    let relay = tokio::spawn(OutboxRelay::new(log.clone(), bus(&js), TEST).run(cancel.clone()));
    foreign.await.unwrap();
    let in_log = log.read_all(1, 1000).await.unwrap();
    assert_eq!(in_log.len(), 300);
    // Every message, the relay's decoded, the other publisher's left out.
    let stream = js.get_stream(TEST.name).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let relayed = loop {
        let last = stream.get_info().await.unwrap().state.last_sequence;
        let mut relayed = Vec::new();
        for sequence in 1..=last {
            let message = stream.get_raw_message(sequence).await.unwrap();
            if let Ok(envelope) = baove_eventlog::Envelope::decode(&message.payload) {
                relayed.push(envelope);
            }
        }
        if relayed.len() >= in_log.len() {
            break relayed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of 300 events relayed after 30 s",
            relayed.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        relayed, in_log,
        "each event once, in the log's global order"
    );
    outbox_cleared(&log).await;
    cancel.cancel();
    relay.await.unwrap();
}

/// Waits (up to 10 s) until `log`'s outbox is empty: every event relayed
/// and its ack recorded.
async fn outbox_cleared(log: &EventLog) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log.outbox(10).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "outbox not cleared");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_stream_configured_otherwise_when_ensured_then_it_is_updated_once_and_then_left_alone()
 {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let js = async_nats::jetstream::new(
        baove_bus::connect(&nats.url(), "t", &cancel, None)
            .await
            .unwrap(),
    );
    // Made by an older version, with the server's default duplicate window.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: TEST.name.to_owned(),
        subjects: vec![format!("{}.>", TEST.prefix)],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ensure_stream(&js, TEST, 1).await.unwrap(), Ensured::Updated);
    let info = js
        .get_stream(TEST.name)
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(
        info.config.duplicate_window,
        std::time::Duration::from_secs(24 * 60 * 60),
        "the update took (the 24-hour duplicate window)"
    );
    assert_eq!(ensure_stream(&js, TEST, 1).await.unwrap(), Ensured::AsWas);
}
