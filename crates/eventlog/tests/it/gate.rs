//! Gated acknowledgements (a cluster's quorum): an append durable here is
//! not acknowledged until the other record of the log holds it.

use baove_eventlog::{Error, EventLog, ExpectedVersion, StreamId};

use crate::request;

#[tokio::test]
async fn a_gated_append_is_refused_until_the_gate_reaches_it_and_its_retry_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let (reached, gate) = tokio::sync::watch::channel(0);
    log.gate_acks(baove_eventlog::AckGate {
        reached: gate,
        wait: std::time::Duration::from_millis(50),
    });
    let stream = StreamId::new();
    let Err(Error::NotReplicated { position, .. }) = log
        .append(request(stream, ExpectedVersion::NoStream, "g1", 2))
        .await
    else {
        panic!("acknowledged before the other record held it");
    };
    assert_eq!(position, 2);
    // Durable here all the same: what the gate says is only "not yet
    // acknowledged".
    assert_eq!(log.last_position(), 2);
    reached.send_replace(2);
    let retried = log
        .append(request(stream, ExpectedVersion::NoStream, "g1", 2))
        .await
        .unwrap();
    assert!(retried.replayed, "the retry writes nothing");
    assert_eq!(retried.last_position, 2);
    // A new append past the gate waits for it again.
    assert!(matches!(
        log.append(request(stream, ExpectedVersion::Exact(2), "g2", 1))
            .await,
        Err(Error::NotReplicated { position: 3, .. })
    ));
}
