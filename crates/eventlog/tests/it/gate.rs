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

#[tokio::test]
async fn a_gated_outbox_hands_on_only_what_the_other_record_holds_and_wakes_its_relay_when_it_grows()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let (reached, gate) = tokio::sync::watch::channel(0);
    log.gate_acks(baove_eventlog::AckGate {
        reached: gate,
        wait: std::time::Duration::from_millis(10),
    });
    let woken = log.subscribe_publishable();
    let stream = StreamId::new();
    // Durable here, not yet held by the cluster: in the outbox, but
    // nothing may leave (a failover now would lose it, and what it started
    // in the other services would stay behind).
    let _ = log
        .append(request(stream, ExpectedVersion::NoStream, "o1", 3))
        .await;
    assert_eq!(log.outbox(10).await.unwrap().len(), 3);
    assert!(log.outbox_publishable(10).await.unwrap().is_empty());
    // The cluster holds the first two: those may leave, in order, and the
    // relay waiting on it is woken.
    reached.send_replace(2);
    assert!(woken.has_changed().unwrap());
    let positions: Vec<u64> = log
        .outbox_publishable(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(positions, [1, 2]);
    // Each was appended to be handed on; a requeued position goes back in
    // the outbox once handed on.
    assert!(log.for_bus(vec![3]).await.unwrap().contains(&3));
    log.outbox_done(1, 1).await.unwrap();
    assert!(
        log.for_bus(vec![1]).await.unwrap().contains(&1),
        "published counts too"
    );
    log.requeue(vec![1]).await.unwrap();
    assert_eq!(log.outbox(10).await.unwrap().len(), 3);
    assert!(matches!(
        log.requeue(vec![9]).await,
        Err(baove_eventlog::Error::Corrupt(_))
    ));
}

#[tokio::test]
async fn without_a_gate_the_whole_outbox_may_leave() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let mut unpublished = request(StreamId::new(), ExpectedVersion::NoStream, "u1", 1);
    unpublished.publish = false;
    log.append(unpublished).await.unwrap();
    log.append(request(StreamId::new(), ExpectedVersion::NoStream, "p1", 2))
        .await
        .unwrap();
    assert_eq!(log.outbox_publishable(10).await.unwrap().len(), 2);
    // Position 1 was appended not to be published.
    assert_eq!(
        log.for_bus(vec![1, 2, 3]).await.unwrap(),
        std::collections::HashSet::from([2, 3])
    );
}

/// Waits (up to 5 s) until `readable` shows `position`.
async fn shows(readable: &mut tokio::sync::watch::Receiver<u64>, position: u64) {
    let shown = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        readable.wait_for(|p| *p == position),
    )
    .await
    .is_ok_and(|waited| waited.is_ok());
    assert!(
        shown,
        "never readable at {position}: at {}",
        *readable.borrow()
    );
}

#[tokio::test]
async fn given_gated_acks_when_an_append_is_refused_then_readers_are_not_shown_it_until_the_cluster_holds_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let stream = StreamId::new();
    // Held before the gate is set (compared with the cluster at start).
    log.append(request(stream, ExpectedVersion::NoStream, "before", 2))
        .await
        .unwrap();
    let (reached, gate) = tokio::sync::watch::channel(0);
    log.gate_acks(baove_eventlog::AckGate {
        reached: gate,
        wait: std::time::Duration::from_millis(20),
    });
    let mut readable = log.subscribe_readable();
    assert_eq!(*readable.borrow_and_update(), 2);
    assert!(matches!(
        log.append(request(stream, ExpectedVersion::Exact(2), "refused", 1))
            .await,
        Err(Error::NotReplicated { position: 3, .. })
    ));
    assert_eq!(log.last_position(), 3, "durable here all the same");
    // Still not shown: refused, and the cluster does not hold it (what a
    // reader is shown is read at the moment it asks, not from the watch).
    assert_eq!(log.readable_position(), 2);
    // The cluster reports an older position: nothing moves back.
    reached.send_replace(1);
    assert_eq!(log.readable_position(), 2);
    // The cluster stores it: now it may be shown, and the readers' watch
    // wakes with it.
    reached.send_replace(3);
    assert_eq!(log.readable_position(), 3);
    shows(&mut readable, 3).await;
}

#[tokio::test]
async fn given_gated_acks_when_events_are_imported_from_the_cluster_then_readers_are_shown_them() {
    // The active's log, and a standby's that imports it.
    let active_dir = tempfile::tempdir().unwrap();
    let active = EventLog::open(active_dir.path()).await.unwrap();
    let stream = StreamId::new();
    active
        .append(request(stream, ExpectedVersion::NoStream, "a1", 3))
        .await
        .unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let standby = EventLog::open(standby_dir.path()).await.unwrap();
    // A standby's gate never moves: its relay does not run.
    let (_reached, gate) = tokio::sync::watch::channel(0);
    standby.gate_acks(baove_eventlog::AckGate {
        reached: gate,
        wait: std::time::Duration::from_millis(20),
    });
    let mut readable = standby.subscribe_readable();
    assert_eq!(*readable.borrow_and_update(), 0);
    standby
        .import(active.read_all(1, 10).await.unwrap())
        .await
        .unwrap();
    shows(&mut readable, 3).await;
}

#[tokio::test]
async fn without_a_gate_readers_are_shown_every_durable_event() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let mut readable = log.subscribe_readable();
    log.append(request(StreamId::new(), ExpectedVersion::NoStream, "n1", 2))
        .await
        .unwrap();
    shows(&mut readable, 2).await;
}
