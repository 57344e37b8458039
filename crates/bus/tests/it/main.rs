//! Integration tests of baove-bus against a real nats-server started by the
//! test kit and real sled logs. One binary: `cargo test -p baove-bus`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod consumer;
mod failover;
mod lease;
mod logstream;
mod relay;
mod replicas;

use std::time::Duration;

use async_nats::jetstream;
use baove_bus::StreamSpec;
use baove_eventlog::{
    Actor, AppendRequest, Envelope, EventLog, ExpectedVersion, NewEvent, StreamId,
};

/// A test stream, so tests never meet the services' real ones.
pub const TEST: StreamSpec = StreamSpec {
    name: "BAOVE_TEST",
    prefix: "baove.test",
};

/// The bus of a test: `js`, with a health record nobody reads.
pub fn bus(js: &jetstream::Context) -> baove_bus::Bus {
    baove_bus::Bus {
        js: js.clone(),
        health: baove_bus::BusHealth::default(),
        replicas: 1,
    }
}

/// Appends `n` published events to a new stream of `log`.
pub async fn append(log: &EventLog, tag: &str, n: usize) -> StreamId {
    let stream = StreamId::new();
    log.append(AppendRequest {
        stream,
        expected: ExpectedVersion::NoStream,
        command_id: format!("{tag}-{stream}"),
        actor: Actor::system("test"),
        causation_id: String::new(),
        correlation_id: tag.to_owned(),
        events: (0..n)
            .map(|i| {
                NewEvent::new("Tested", 1, &serde_json::json!({ "tag": tag, "i": i })).unwrap()
            })
            .collect(),
        publish: true,
    })
    .await
    .unwrap();
    stream
}

/// Every message in the test stream, in stream order, decoded. Waits (up to
/// 30 s) until the stream holds `expected` messages.
pub async fn stored(js: &jetstream::Context, expected: u64) -> Vec<(Envelope, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        // The stream may be missing for a moment (a server that lost its
        // store, before its owner makes it again).
        if let Ok(stream) = js.get_stream(TEST.name).await {
            break stream;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stream after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    loop {
        let count = stream.info().await.map_or(0, |i| i.state.messages);
        if count >= expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream holds {count} of {expected} messages after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.unwrap();
        let id = message.headers.get("Nats-Msg-Id").unwrap().to_string();
        out.push((Envelope::decode(&message.payload).unwrap(), id));
    }
    out
}
