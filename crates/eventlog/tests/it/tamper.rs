//! Altering, removing or reordering stored events is reported at the first
//! bad seq.

use baove_eventlog::{EventLog, ExpectedVersion, StreamId, Verification, layout, verify_copy};

use crate::request;

/// A closed log with one 5-event stream (and another stream around it).
async fn stored_stream() -> (tempfile::TempDir, StreamId) {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let s = StreamId::new();
    let other = StreamId::new();
    log.append(request(other, ExpectedVersion::NoStream, "o1", 2))
        .await
        .unwrap();
    log.append(request(s, ExpectedVersion::NoStream, "s1", 3))
        .await
        .unwrap();
    log.append(request(s, ExpectedVersion::Exact(3), "s2", 2))
        .await
        .unwrap();
    log.append(request(other, ExpectedVersion::Exact(2), "o2", 2))
        .await
        .unwrap();
    log.close().await.unwrap();
    drop(log);
    (dir, s)
}

/// Opens the closed log's database directly, as an auditor's tool would;
/// sled's I/O threads may hold its lock a moment after the log closed.
pub fn open_raw(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("could not acquire lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn first_bad(db: &sled::Db, s: StreamId) -> Option<u64> {
    match verify_copy(db, s).unwrap() {
        Verification::Broken { first_bad_seq, .. } => Some(first_bad_seq),
        Verification::Intact(_) => None,
        Verification::NoStream => panic!("stream vanished"),
    }
}

#[tokio::test]
async fn changing_any_byte_of_any_event_is_reported_at_its_seq() {
    let (dir, s) = stored_stream().await;
    let db = open_raw(dir.path());
    let events = db.open_tree(layout::EVENTS).unwrap();
    assert_eq!(first_bad(&db, s), None);
    for seq in 1..=5 {
        let key = layout::event_key(s, seq);
        let original = events.get(key).unwrap().unwrap();
        for at in 0..original.len() {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut altered = original.to_vec();
                altered[at] ^= flip;
                events.insert(key, altered).unwrap();
                assert_eq!(
                    first_bad(&db, s),
                    Some(seq),
                    "byte {at} ^ {flip:#x} of seq {seq}"
                );
            }
        }
        events.insert(key, original).unwrap();
    }
    assert_eq!(first_bad(&db, s), None);
}

#[tokio::test]
async fn deleting_an_event_is_reported_at_its_seq() {
    for seq in 1..=5 {
        let (dir, s) = stored_stream().await;
        let db = open_raw(dir.path());
        db.open_tree(layout::EVENTS)
            .unwrap()
            .remove(layout::event_key(s, seq))
            .unwrap();
        assert_eq!(first_bad(&db, s), Some(seq), "deleted seq {seq}");
    }
}

#[tokio::test]
async fn swapping_two_events_is_reported_at_the_first_of_them() {
    for (a, b) in [(1, 2), (2, 4), (4, 5), (1, 5)] {
        let (dir, s) = stored_stream().await;
        let db = open_raw(dir.path());
        let events = db.open_tree(layout::EVENTS).unwrap();
        let va = events.get(layout::event_key(s, a)).unwrap().unwrap();
        let vb = events.get(layout::event_key(s, b)).unwrap().unwrap();
        events.insert(layout::event_key(s, a), vb).unwrap();
        events.insert(layout::event_key(s, b), va).unwrap();
        assert_eq!(first_bad(&db, s), Some(a), "swapped {a} and {b}");
    }
}

#[tokio::test]
async fn inserting_an_event_is_reported() {
    let (dir, s) = stored_stream().await;
    let db = open_raw(dir.path());
    let events = db.open_tree(layout::EVENTS).unwrap();
    // A copy of seq 5 stored again as seq 6: well-formed, but past the head.
    let five =
        baove_eventlog::Envelope::decode(&events.get(layout::event_key(s, 5)).unwrap().unwrap())
            .unwrap();
    let mut forged = five.clone();
    forged.seq = 6;
    forged.prev_hash = five.hash;
    forged.hash = forged.compute_hash();
    events
        .insert(layout::event_key(s, 6), forged.encode().unwrap())
        .unwrap();
    assert_eq!(first_bad(&db, s), Some(6));
}

#[tokio::test]
async fn an_altered_event_is_reported_through_the_reopened_log() {
    let (dir, s) = stored_stream().await;
    {
        let db = open_raw(dir.path());
        let events = db.open_tree(layout::EVENTS).unwrap();
        let key = layout::event_key(s, 3);
        // The role's bytes, in whichever form the event is stored, replaced
        // by another role of the same length.
        let mut stored = events.get(key).unwrap().unwrap().to_vec();
        let at = stored
            .windows(16)
            .position(|w| w == b"hotline_operator")
            .unwrap();
        stored[at..at + 16].copy_from_slice(b"province_officer");
        events.insert(key, stored).unwrap();
        db.flush().unwrap();
    }
    let log = EventLog::open(dir.path()).await.unwrap();
    match log.verify(s).await.unwrap() {
        Verification::Broken {
            first_bad_seq,
            reason,
        } => {
            assert_eq!(first_bad_seq, 3);
            assert!(reason.contains("hash"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_event_deleted_inside_an_append_is_named_by_a_read_of_the_global_order() {
    // Seqs 1 to 3 of `s` were one append (positions 3 to 5), read back as
    // one run; each of them, and the run's ends, gone in turn.
    for seq in 1..=5 {
        let (dir, s) = stored_stream().await;
        {
            let db = open_raw(dir.path());
            db.open_tree(layout::EVENTS)
                .unwrap()
                .remove(layout::event_key(s, seq))
                .unwrap();
            db.flush().unwrap();
        }
        let log = EventLog::open(dir.path()).await.unwrap();
        let error = log.read_all(1, 100).await.unwrap_err().to_string();
        assert!(
            error.contains(&format!("missing event {s}/{seq}")),
            "deleted seq {seq}: {error}"
        );
        log.close().await.unwrap();
    }
}
