//! Importing another copy's envelopes (a restore): the copy ends with the
//! same events, heads and command answers; an envelope that does not
//! continue the log, or whose hash does not verify, is refused with
//! nothing of its batch written.

use baove_eventlog::{Envelope, Error, EventLog, ExpectedVersion, StreamId, Verification};

use crate::request;

/// A log with three streams, one command of 3 events and several of 1–2.
async fn original() -> (tempfile::TempDir, EventLog, [StreamId; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let streams = [StreamId::new(), StreamId::new(), StreamId::new()];
    log.append(request(streams[0], ExpectedVersion::NoStream, "a1", 3))
        .await
        .unwrap();
    log.append(request(streams[1], ExpectedVersion::NoStream, "b1", 1))
        .await
        .unwrap();
    log.append(request(streams[0], ExpectedVersion::Exact(3), "a2", 2))
        .await
        .unwrap();
    log.append(request(streams[2], ExpectedVersion::NoStream, "c1", 2))
        .await
        .unwrap();
    log.append(request(streams[1], ExpectedVersion::Exact(1), "b2", 1))
        .await
        .unwrap();
    (dir, log, streams)
}

#[tokio::test]
async fn a_copy_imported_in_pieces_has_the_same_heads_and_answers() {
    let (_dir, log, streams) = original().await;
    let all = log.read_all(1, 1000).await.unwrap();
    assert_eq!(all.len(), 9);
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = EventLog::open(copy_dir.path()).await.unwrap();
    // Pieces of 2 split the 3-event command "a1" across imports.
    for piece in all.chunks(2) {
        copy.import(piece.to_vec()).await.unwrap();
    }
    assert_eq!(copy.last_position(), 9);
    assert_eq!(copy.read_all(1, 1000).await.unwrap(), all);
    for stream in streams {
        assert_eq!(
            copy.head(stream).await.unwrap(),
            log.head(stream).await.unwrap()
        );
        assert!(matches!(
            copy.verify(stream).await.unwrap(),
            Verification::Intact(_)
        ));
    }
    for command in ["a1", "b1", "a2", "c1", "b2"] {
        assert_eq!(
            copy.command(command).await.unwrap(),
            log.command(command).await.unwrap(),
            "the answer to {command}"
        );
    }
    // A retried request is answered as on the original and writes nothing.
    let again = copy
        .append(request(streams[0], ExpectedVersion::NoStream, "a1", 3))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.first_seq, again.last_seq), (1, 3));
    assert_eq!(copy.last_position(), 9);
    // Nothing was queued for publishing: the original published it.
    assert!(copy.outbox(10).await.unwrap().is_empty());
    // New appends continue after the imported ones.
    let next = copy
        .append(request(streams[2], ExpectedVersion::Exact(2), "c2", 1))
        .await
        .unwrap();
    assert_eq!((next.first_seq, next.first_position), (3, 10));
    assert!(matches!(
        copy.verify(streams[2]).await.unwrap(),
        Verification::Intact(_)
    ));
}

async fn refused(events: Vec<Envelope>, imported_first: usize) -> String {
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = EventLog::open(copy_dir.path()).await.unwrap();
    copy.import(events[..imported_first].to_vec())
        .await
        .unwrap();
    let before = copy.last_position();
    let Err(Error::Corrupt(why)) = copy.import(events[imported_first..].to_vec()).await else {
        panic!("a bad batch was imported");
    };
    assert_eq!(
        copy.last_position(),
        before,
        "nothing of the batch is written"
    );
    assert_eq!(
        copy.read_all(1, 100).await.unwrap(),
        events[..imported_first]
    );
    why
}

#[tokio::test]
async fn an_altered_payload_is_refused_at_its_position() {
    let (_dir, log, _) = original().await;
    let mut all = log.read_all(1, 1000).await.unwrap();
    all[5].payload = all[5].payload.replace("a2", "a9");
    assert_ne!(all[5].payload, log.read_all(6, 1).await.unwrap()[0].payload);
    let why = refused(all, 2).await;
    assert!(why.contains("global position 6"), "{why}");
    assert!(why.contains("hash does not match"), "{why}");
}

#[tokio::test]
async fn a_missing_event_is_refused() {
    let (_dir, log, _) = original().await;
    let mut all = log.read_all(1, 1000).await.unwrap();
    all.remove(3);
    let why = refused(all, 3).await;
    assert!(why.contains("next position is 4"), "{why}");
}

#[tokio::test]
async fn an_event_whose_chain_does_not_continue_is_refused() {
    let (_dir, log, _) = original().await;
    let mut all = log.read_all(1, 1000).await.unwrap();
    // Recomputed hash, so only the link to the previous event is wrong.
    all[4].prev_hash = baove_eventlog::ChainHash::GENESIS;
    all[4].hash = all[4].compute_hash();
    let why = refused(all, 0).await;
    assert!(why.contains("prev_hash"), "{why}");
}
