//! The two forms an event is stored in: the compact form every append
//! writes, and the JSON form of logs written before it, which must keep
//! reading and verifying as they are.

use baove_eventlog::envelope::STORED_FORM;
use baove_eventlog::{Envelope, EventLog, ExpectedVersion, StreamId, Verification, layout};

use crate::request;
use crate::tamper::open_raw;

#[tokio::test]
async fn given_a_log_written_as_json_when_reopened_then_it_reads_verifies_and_grows_compact() {
    let dir = tempfile::tempdir().unwrap();
    let s = StreamId::new();
    let log = EventLog::open(dir.path()).await.unwrap();
    log.append(request(s, ExpectedVersion::NoStream, "a", 3))
        .await
        .unwrap();
    let before = log.read_stream(s, 1, 10).await.unwrap();
    log.close().await.unwrap();
    drop(log);

    // Every append stores the compact form, smaller than the JSON form.
    {
        let db = open_raw(dir.path());
        let events = db.open_tree(layout::EVENTS).unwrap();
        for e in &before {
            let key = layout::event_key(s, e.seq);
            let stored = events.get(key).unwrap().unwrap();
            assert_eq!(stored[0], STORED_FORM, "seq {}", e.seq);
            let json = e.encode().unwrap();
            assert!(
                stored.len() < json.len(),
                "{} ≥ {}",
                stored.len(),
                json.len()
            );
            // What a log written before the compact form holds.
            events.insert(key, json).unwrap();
        }
        db.flush().unwrap();
    }

    let log = EventLog::open(dir.path()).await.unwrap();
    assert_eq!(log.read_stream(s, 1, 10).await.unwrap(), before);
    assert_eq!(log.read_all(1, 10).await.unwrap(), before);
    log.append(request(s, ExpectedVersion::Exact(3), "b", 2))
        .await
        .unwrap();
    let all = log.read_stream(s, 1, 10).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[..3], before[..]);
    assert_eq!(
        all[3].prev_hash, before[2].hash,
        "the chain runs across the forms"
    );
    match log.verify(s).await.unwrap() {
        Verification::Intact(head) => assert_eq!(head.version, 5),
        other => panic!("{other:?}"),
    }
    log.close().await.unwrap();
    drop(log);

    let db = open_raw(dir.path());
    let events = db.open_tree(layout::EVENTS).unwrap();
    let forms: Vec<u8> = (1..=5)
        .map(|seq| events.get(layout::event_key(s, seq)).unwrap().unwrap()[0])
        .collect();
    assert_eq!(forms, [b'{', b'{', b'{', STORED_FORM, STORED_FORM]);
}

#[tokio::test]
async fn given_stored_bytes_that_are_another_encoding_of_the_event_then_verify_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = StreamId::new();
    let log = EventLog::open(dir.path()).await.unwrap();
    log.append(request(s, ExpectedVersion::NoStream, "a", 2))
        .await
        .unwrap();
    log.close().await.unwrap();
    drop(log);
    let db = open_raw(dir.path());
    let events = db.open_tree(layout::EVENTS).unwrap();
    let key = layout::event_key(s, 2);
    let stored = events.get(key).unwrap().unwrap();
    // The same envelope, with its JSON re-spaced: it decodes to the same
    // event, but is not what this envelope encodes to.
    let event = Envelope::decode(&stored).unwrap();
    let mut spaced = b"{ ".to_vec();
    spaced.extend_from_slice(&event.encode().unwrap()[1..]);
    assert_eq!(Envelope::decode(&spaced).unwrap(), event);
    events.insert(key, spaced).unwrap();
    match baove_eventlog::verify_copy(&db, s).unwrap() {
        Verification::Broken {
            first_bad_seq,
            reason,
        } => {
            assert_eq!(first_bad_seq, 2);
            assert!(reason.contains("canonical"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
