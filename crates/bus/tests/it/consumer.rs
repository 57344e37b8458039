//! Durable consumers apply each event once, ack only after applying.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use baove_bus::{
    ConsumerSpec, HandleError, Handler, OutboxRelay, ensure_stream, run_consumer, subject_for,
};
use baove_eventlog::{
    Actor, AppendRequest, Envelope, EventLog, ExpectedVersion, NewEvent, StreamId,
};
use baove_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

use crate::{TEST, append, bus};

/// Copies each incoming event into the receiver's own log (command id =
/// incoming event id) and counts calls; fails the first call for events
/// whose payload has i == 1, to exercise redelivery.
#[derive(Clone)]
struct Copy {
    log: EventLog,
    calls: Arc<Mutex<Vec<uuid::Uuid>>>,
}

impl Handler for Copy {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        let first_call = {
            let mut calls = self.calls.lock().unwrap();
            let first = !calls.contains(&event.event_id);
            calls.push(event.event_id);
            first
        };
        if first_call && event.payload.contains(r#""i":1"#) {
            return Err(HandleError::Retry("not yet".into()));
        }
        self.log
            .append(AppendRequest {
                stream: StreamId::new(),
                expected: ExpectedVersion::NoStream,
                command_id: format!("nats:{}", event.event_id),
                actor: Actor::system("receiver"),
                causation_id: event.event_id.to_string(),
                correlation_id: event.correlation_id.clone(),
                events: vec![NewEvent::from_json("Received", 1, event.payload).unwrap()],
                publish: false,
            })
            .await
            .map(|_| ())
            .map_err(|e| HandleError::Retry(e.to_string()))
    }
}

/// A nats-server of the test's own, a connection to it (closed by the
/// token) and the test stream.
async fn test_stream() -> (
    NatsServer,
    CancellationToken,
    async_nats::jetstream::Context,
) {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let js = async_nats::jetstream::new(
        baove_bus::connect(&nats.url(), "t", &cancel, None)
            .await
            .unwrap(),
    );
    ensure_stream(&js, TEST, 1).await.unwrap();
    (nats, cancel, js)
}

/// An empty log in a new directory (kept while the first value lives).
async fn new_log() -> (tempfile::TempDir, EventLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    (dir, log)
}

/// A sender's log whose outbox a relay publishes on the test stream until
/// `cancel` fires.
async fn relayed_sender(
    js: &async_nats::jetstream::Context,
    cancel: &CancellationToken,
) -> (tempfile::TempDir, EventLog, tokio::task::JoinHandle<()>) {
    let (dir, log) = new_log().await;
    let relay = tokio::spawn(OutboxRelay::new(log.clone(), bus(js), TEST).run(cancel.clone()));
    (dir, log, relay)
}

/// The receiver's consumer (durable `receiver`, the whole test stream)
/// applying with `handler` into `receiver` until `cancel` fires.
fn receiving<H: Handler>(
    js: &async_nats::jetstream::Context,
    receiver: &EventLog,
    handler: H,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_consumer(
        bus(js),
        receiver.clone(),
        ConsumerSpec {
            stream: TEST,
            durable: "receiver".into(),
            filter_subject: String::new(),
        },
        handler,
        cancel,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_redeliveries_and_duplicates_then_each_event_is_applied_once() {
    let (_nats, cancel, js) = test_stream().await;

    let (_sender_dir, sender, relay) = relayed_sender(&js, &cancel).await;
    append(&sender, "a", 3).await;
    append(&sender, "b", 2).await;

    let (_receiver_dir, receiver) = new_log().await;
    let handler = Copy {
        log: receiver.clone(),
        calls: Arc::default(),
    };
    let spec = ConsumerSpec {
        stream: TEST,
        durable: "receiver".into(),
        filter_subject: String::new(),
    };
    let consumer_cancel = cancel.child_token();
    let consumer = tokio::spawn(run_consumer(
        bus(&js),
        receiver.clone(),
        spec.clone(),
        handler.clone(),
        consumer_cancel.clone(),
    ));
    wait_for(&receiver, 5).await;

    // The same envelope again under another message id gets past
    // JetStream's dedupe, as a redelivery after a lost ack would: the
    // receiver's inbox must drop it.
    let again = sender.read_all(1, 1).await.unwrap().remove(0);
    js.send_publish(
        subject_for(TEST, &again),
        PublishMessage::build()
            .payload(again.encode().unwrap().into())
            .message_id("another-id"),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // And a consumer restart under the same durable name resumes, it does
    // not start over.
    consumer_cancel.cancel();
    consumer.await.unwrap();
    append(&sender, "c", 1).await;
    let consumer = tokio::spawn(run_consumer(
        bus(&js),
        receiver.clone(),
        spec,
        handler.clone(),
        cancel.child_token(),
    ));
    wait_for(&receiver, 6).await;

    let received = receiver.read_all(1, 100).await.unwrap();
    assert_eq!(received.len(), 6, "one received event per sent event");
    let sent = sender.read_all(1, 100).await.unwrap();
    for (got, original) in received.iter().zip(&sent) {
        assert_eq!(got.causation_id, original.event_id.to_string());
        assert_eq!(got.payload, original.payload);
    }
    // Events with i == 1 were refused once, so handled twice; the rest once;
    // the duplicate never reached the handler.
    let calls = handler.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 6 + 2, "{calls:?}");
    cancel.cancel();
    consumer.await.unwrap();
    relay.await.unwrap();
}

async fn wait_for(log: &EventLog, events: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while log.last_position() < events {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {events} applied",
            log.last_position()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Refuses events tagged "bad"; copies the rest as [`Copy`] does.
#[derive(Clone)]
struct RefuseBad(Copy);

impl Handler for RefuseBad {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        if event.payload.contains(r#""tag":"bad""#) {
            return Err(HandleError::Reject("tagged bad".into()));
        }
        self.0.handle(event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_undecodable_and_a_refused_message_then_both_are_parked_and_the_next_is_applied() {
    let (_nats, cancel, js) = test_stream().await;
    let garbage: &[u8] = b"\x00not an envelope";
    js.send_publish(
        "baove.test.poison",
        PublishMessage::build()
            .payload(garbage.to_vec().into())
            .message_id("poison"),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let (_sender_dir, sender, relay) = relayed_sender(&js, &cancel).await;
    append(&sender, "bad", 1).await;
    append(&sender, "good", 1).await;

    let (_receiver_dir, receiver) = new_log().await;
    let consumer = tokio::spawn(run_consumer(
        bus(&js),
        receiver.clone(),
        ConsumerSpec {
            stream: TEST,
            durable: "receiver".into(),
            filter_subject: String::new(),
        },
        RefuseBad(Copy {
            log: receiver.clone(),
            calls: Arc::default(),
        }),
        cancel.child_token(),
    ));
    // The good event behind both is applied: neither stopped the consumer.
    wait_for(&receiver, 1).await;
    let received = receiver.read_all(1, 10).await.unwrap();
    assert!(received[0].payload.contains(r#""tag":"good""#));

    let parked = receiver.parked("receiver").await.unwrap();
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert_eq!(parked[0].subject, "baove.test.poison");
    assert_eq!(parked[0].payload, garbage, "kept whole");
    assert!(parked[0].reason.starts_with("undecodable"), "{parked:?}");
    assert!(parked[1].reason.contains("tagged bad"), "{parked:?}");
    let bad = Envelope::decode(&parked[1].payload).unwrap();
    assert!(bad.payload.contains(r#""tag":"bad""#));
    assert!(receiver.parked("another").await.unwrap().is_empty());

    cancel.cancel();
    consumer.await.unwrap();
    relay.await.unwrap();
}

/// Says an event tagged "later" names a record not held until `held` is
/// set (a record on its way from another process); copies the rest as
/// [`Copy`] does.
#[derive(Clone)]
struct NotYet {
    copy: Copy,
    held: Arc<std::sync::atomic::AtomicBool>,
    asked: Arc<std::sync::atomic::AtomicUsize>,
}

impl Handler for NotYet {
    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        use std::sync::atomic::Ordering::SeqCst;
        if event.payload.contains(r#""tag":"later""#) && !self.held.load(SeqCst) {
            self.asked.fetch_add(1, SeqCst);
            return Err(HandleError::Missing("record not held yet".into()));
        }
        self.copy.handle(event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_event_naming_a_record_not_held_yet_then_it_waits_for_it_in_order_and_is_not_parked()
 {
    use std::sync::atomic::Ordering::SeqCst;
    let (_nats, cancel, js) = test_stream().await;
    let (_sender_dir, sender, relay) = relayed_sender(&js, &cancel).await;
    append(&sender, "later", 1).await;
    append(&sender, "next", 1).await;

    let (_receiver_dir, receiver) = new_log().await;
    let handler = NotYet {
        copy: Copy {
            log: receiver.clone(),
            calls: Arc::default(),
        },
        held: Arc::default(),
        asked: Arc::default(),
    };
    let consumer = receiving(&js, &receiver, handler.clone(), cancel.child_token());
    // Asked again, not parked, and nothing after it applied meanwhile.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handler.asked.load(SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "not asked again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(receiver.parked("receiver").await.unwrap().is_empty());
    assert_eq!(receiver.last_position(), 0, "the next event overtook it");
    // The record arrives: the event is applied, then the next.
    handler.held.store(true, SeqCst);
    wait_for(&receiver, 2).await;
    let received = receiver.read_all(1, 10).await.unwrap();
    assert!(received[0].payload.contains(r#""tag":"later""#));
    assert!(received[1].payload.contains(r#""tag":"next""#));
    assert!(receiver.parked("receiver").await.unwrap().is_empty());

    cancel.cancel();
    consumer.await.unwrap();
    relay.await.unwrap();
}

/// Wants only events of type `Tested`; copies them as [`Copy`] does.
#[derive(Clone)]
struct OnlyTested(Copy);

impl Handler for OnlyTested {
    fn wants(&self, event_type: &str) -> bool {
        event_type == "Tested"
    }

    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        self.0.handle(event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_type_the_handler_does_not_want_then_it_is_acked_unread_and_not_recorded() {
    let (_nats, cancel, js) = test_stream().await;
    let (_sender_dir, sender, relay) = relayed_sender(&js, &cancel).await;
    append(&sender, "first", 1).await;
    sender
        .append(AppendRequest {
            stream: StreamId::new(),
            expected: ExpectedVersion::NoStream,
            command_id: "other".into(),
            actor: Actor::system("test"),
            causation_id: String::new(),
            correlation_id: "other".into(),
            events: vec![
                NewEvent::new("Other", 1, &serde_json::json!({ "tag": "other" })).unwrap(),
            ],
            publish: true,
        })
        .await
        .unwrap();
    append(&sender, "last", 1).await;
    let other = sender.read_all(2, 1).await.unwrap().remove(0);
    assert_eq!(other.event_type, "Other");

    let (_receiver_dir, receiver) = new_log().await;
    let handler = OnlyTested(Copy {
        log: receiver.clone(),
        calls: Arc::default(),
    });
    let consumer = receiving(&js, &receiver, handler.clone(), cancel.child_token());
    wait_for(&receiver, 2).await;
    let received = receiver.read_all(1, 10).await.unwrap();
    assert_eq!(received.len(), 2);
    assert!(received[0].payload.contains(r#""tag":"first""#));
    assert!(received[1].payload.contains(r#""tag":"last""#));
    let calls = handler.0.calls.lock().unwrap().clone();
    assert!(!calls.contains(&other.event_id), "{calls:?}");
    assert!(
        !receiver
            .is_applied("receiver", &other.event_id.to_string())
            .await
            .unwrap(),
        "an unwanted message takes no inbox record"
    );
    // And it was acknowledged, not left to be delivered again.
    let mut consumer_info = js
        .get_stream(TEST.name)
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("receiver")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info = consumer_info.info().await.unwrap();
        if info.ack_floor.stream_sequence == 3 && info.num_ack_pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all acknowledged: {:?}",
            info.ack_floor
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    consumer.await.unwrap();
    relay.await.unwrap();
}

/// Applies as [`Copy`] does, four at once: each call waits (up to 30 s)
/// until four calls have been in flight together, and notes whether two of
/// one stream were ever in flight at once.
#[derive(Clone)]
struct FourAtOnce {
    copy: Copy,
    in_flight: Arc<Mutex<Vec<StreamId>>>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    overlapped: Arc<std::sync::atomic::AtomicBool>,
}

impl Handler for FourAtOnce {
    fn at_once(&self) -> usize {
        4
    }

    async fn handle(&self, event: Envelope) -> Result<(), HandleError> {
        use std::sync::atomic::Ordering;
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            if in_flight.contains(&event.stream_id) {
                self.overlapped.store(true, Ordering::SeqCst);
            }
            in_flight.push(event.stream_id);
            self.most.fetch_max(in_flight.len(), Ordering::SeqCst);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.most.load(Ordering::SeqCst) < 4 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let result = self.copy.handle(event.clone()).await;
        let mut in_flight = self.in_flight.lock().unwrap();
        if let Some(at) = in_flight.iter().position(|s| *s == event.stream_id) {
            in_flight.remove(at);
        }
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_handler_applying_four_at_once_then_four_streams_are_applied_together_and_one_streams_events_in_order()
 {
    let (_nats, cancel, js) = test_stream().await;
    let (_sender_dir, sender, relay) = relayed_sender(&js, &cancel).await;
    for tag in ["b", "c", "d"] {
        append(&sender, tag, 1).await;
    }
    // Its second event is refused once (Copy): the third must still wait.
    append(&sender, "a", 3).await;

    let (_receiver_dir, receiver) = new_log().await;
    let handler = FourAtOnce {
        copy: Copy {
            log: receiver.clone(),
            calls: Arc::default(),
        },
        in_flight: Arc::default(),
        most: Arc::default(),
        overlapped: Arc::default(),
    };
    let consumer = receiving(&js, &receiver, handler.clone(), cancel.child_token());
    wait_for(&receiver, 6).await;
    assert_eq!(
        handler.most.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "four messages of four streams in flight together"
    );
    assert!(
        !handler.overlapped.load(std::sync::atomic::Ordering::SeqCst),
        "two events of one stream were applied at once"
    );
    let of_a: Vec<String> = receiver
        .read_all(1, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.payload.contains(r#""tag":"a""#))
        .map(|e| e.payload)
        .collect();
    assert_eq!(of_a.len(), 3);
    for (i, payload) in of_a.iter().enumerate() {
        assert!(payload.contains(&format!(r#""i":{i}"#)), "{of_a:?}");
    }
    cancel.cancel();
    consumer.await.unwrap();
    relay.await.unwrap();
}

/// Finds its work already done in the receiver's log (as intake does with
/// a hand-over it noted) and so writes nothing; counts its calls.
#[derive(Clone)]
struct AlreadyDone {
    calls: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Handler for AlreadyDone {
    async fn handle(&self, _event: Envelope) -> Result<(), HandleError> {
        self.calls.send_modify(|n| *n += 1);
        Ok(())
    }
}

/// The whole-machine test lost hand-overs this way: intake wrote a
/// hand-over, the cluster did not store it in time, the retried message
/// found it noted in intake's own log and was acknowledged; the process
/// then lost its lease, the hand-over was set aside, and the message never
/// came again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_acks_gated_on_the_cluster_when_a_handler_finds_its_work_done_in_events_the_cluster_lacks_then_the_message_is_acked_only_once_it_holds_them()
 {
    let (_nats, cancel, js) = test_stream().await;
    let (_sender_dir, sender, _relay) = relayed_sender(&js, &cancel).await;
    append(&sender, "report", 1).await;

    // The receiver is a cluster's active whose copy holds nothing yet: its
    // own event is durable here but not acknowledged.
    let (_receiver_dir, receiver) = new_log().await;
    let (stored, reached) = tokio::sync::watch::channel(0_u64);
    receiver.gate_acks(baove_eventlog::AckGate {
        reached,
        wait: Duration::from_millis(300),
    });
    let unstored = receiver
        .append(AppendRequest {
            stream: StreamId::new(),
            expected: ExpectedVersion::NoStream,
            command_id: "handover-written-here".into(),
            actor: Actor::system("receiver"),
            causation_id: String::new(),
            correlation_id: String::new(),
            events: vec![NewEvent::from_json("Noted", 1, "{}".into()).unwrap()],
            publish: false,
        })
        .await;
    assert!(
        matches!(unstored, Err(baove_eventlog::Error::NotReplicated { .. })),
        "{unstored:?}"
    );
    assert_eq!(receiver.last_position(), 1);

    let (calls, mut called) = tokio::sync::watch::channel(0_usize);
    let calls = Arc::new(calls);
    let consumer = receiving(
        &js,
        &receiver,
        AlreadyDone {
            calls: calls.clone(),
        },
        cancel.child_token(),
    );
    // Retried while the cluster lacks what the handler read, not recorded.
    // A bool, not the watch's borrow: the handler writes to it.
    let retried = matches!(
        tokio::time::timeout(Duration::from_secs(20), called.wait_for(|n| *n >= 3)).await,
        Ok(Ok(_))
    );
    let sent = sender.read_all(1, 1).await.unwrap();
    let id = sent[0].event_id.to_string();
    let applied = receiver.is_applied("receiver", &id).await.unwrap();
    let made = *calls.borrow();
    assert!(
        retried,
        "the message was taken as applied after {made} call(s), on an event the cluster does not hold (applied: {applied})"
    );
    assert!(!applied);

    // The cluster stores it: the message is applied and acknowledged.
    stored.send(1).unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !receiver.is_applied("receiver", &id).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("applied once the cluster holds the log's end");
    cancel.cancel();
    consumer.await.unwrap();
}
