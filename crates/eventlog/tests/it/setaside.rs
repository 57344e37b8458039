//! Setting aside a tail the cluster never stored: given two copies of a log
//! that agree up to a position and then each wrote events of their own,
//! when one sets aside what it wrote after that position, then it is the
//! log it was at that position (heads, command answers, outbox, Merkle
//! tree), it takes the other's events there, and its own tail is kept
//! aside, whole, for an auditor.

use baove_eventlog::{EventLog, ExpectedVersion, StreamId, Verification, layout, set_aside_after};

use crate::request;

/// Two copies that agree on 4 events (two streams), then each appends its
/// own: `ours` a 3-event command on stream 0 and a new stream, `theirs`
/// one event on stream 1.
async fn forked() -> (
    tempfile::TempDir,
    EventLog,
    tempfile::TempDir,
    EventLog,
    [StreamId; 3],
) {
    let streams = [StreamId::new(), StreamId::new(), StreamId::new()];
    let (ours_dir, theirs_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let theirs = EventLog::open(theirs_dir.path()).await.unwrap();
    theirs
        .append(request(streams[0], ExpectedVersion::NoStream, "a1", 2))
        .await
        .unwrap();
    theirs
        .append(request(streams[1], ExpectedVersion::NoStream, "b1", 2))
        .await
        .unwrap();
    let ours = EventLog::open(ours_dir.path()).await.unwrap();
    ours.import(theirs.read_all(1, 100).await.unwrap())
        .await
        .unwrap();
    ours.append(request(streams[0], ExpectedVersion::Exact(2), "a2", 3))
        .await
        .unwrap();
    ours.append(request(streams[2], ExpectedVersion::NoStream, "c1", 1))
        .await
        .unwrap();
    theirs
        .append(request(streams[1], ExpectedVersion::Exact(2), "b2", 1))
        .await
        .unwrap();
    (ours_dir, ours, theirs_dir, theirs, streams)
}

#[tokio::test]
async fn given_a_tail_the_other_copy_lacks_when_set_aside_then_the_log_takes_the_others_events() {
    let (ours_dir, ours, _theirs_dir, theirs, streams) = forked().await;
    assert_eq!(ours.last_position(), 8);
    let tail = ours.read_all(5, 100).await.unwrap();
    let root_at_4 = ours.tree_root(4).await.unwrap();
    ours.tree_root(8).await.unwrap();
    drop(ours);

    let moved = set_aside_after(ours_dir.path(), 4, "the cluster holds others", 1_000)
        .await
        .unwrap();
    assert_eq!(moved, 4);
    let ours = EventLog::open(ours_dir.path()).await.unwrap();
    assert_eq!(ours.last_position(), 4);
    assert_eq!(
        ours.read_all(1, 100).await.unwrap(),
        theirs.read_all(1, 4).await.unwrap()
    );
    // Stream 0 is back at its 2 events, stream 2 (begun in the tail) is gone.
    assert_eq!(ours.head(streams[0]).await.unwrap().unwrap().version, 2);
    assert!(ours.head(streams[2]).await.unwrap().is_none());
    assert!(matches!(
        ours.verify(streams[0]).await.unwrap(),
        Verification::Intact(_)
    ));
    // The tail's commands are unknown again; the kept ones still answer.
    assert!(ours.command("a2").await.unwrap().is_none());
    assert!(ours.command("c1").await.unwrap().is_none());
    assert_eq!(
        ours.command("b1").await.unwrap(),
        theirs.command("b1").await.unwrap()
    );
    // Nothing of the tail is left to publish.
    assert!(
        ours.outbox(100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.global_position <= 4)
    );
    assert_eq!(ours.tree_root(4).await.unwrap(), root_at_4);

    // It takes the other copy's event at position 5 and is then that copy.
    ours.import(theirs.read_all(5, 100).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        ours.read_all(1, 100).await.unwrap(),
        theirs.read_all(1, 100).await.unwrap()
    );
    assert_eq!(
        ours.tree_root(5).await.unwrap(),
        theirs.tree_root(5).await.unwrap()
    );
    for stream in streams {
        assert_eq!(
            ours.head(stream).await.unwrap(),
            theirs.head(stream).await.unwrap()
        );
    }
    // The tail is kept aside, whole, with why and when.
    let aside = ours.set_aside().await.unwrap();
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].events, tail);
    assert_eq!(aside[0].reason, "the cluster holds others");
    assert_eq!(aside[0].set_aside_at_ms, 1_000);
}

#[tokio::test]
async fn given_a_command_the_cluster_holds_in_part_when_the_rest_is_set_aside_then_its_answer_ends_with_what_stays()
 {
    let (ours_dir, ours, _theirs_dir, _theirs, streams) = forked().await;
    let first_of_a2 = ours.read_all(5, 1).await.unwrap().remove(0);
    drop(ours);

    // The cluster held the first of a2's three events only.
    let moved = set_aside_after(ours_dir.path(), 5, "partly stored", 2_000)
        .await
        .unwrap();
    assert_eq!(moved, 3);
    let ours = EventLog::open(ours_dir.path()).await.unwrap();
    let answer = ours.command("a2").await.unwrap().unwrap();
    assert_eq!(
        (
            answer.first_seq,
            answer.last_seq,
            answer.first_position,
            answer.last_position
        ),
        (3, 3, 5, 5)
    );
    assert_eq!(answer.head_hash, first_of_a2.hash);
    let head = ours.head(streams[0]).await.unwrap().unwrap();
    assert_eq!((head.version, head.hash), (3, first_of_a2.hash));
    // A second set-aside is kept beside the first.
    drop(ours);
    assert_eq!(
        set_aside_after(ours_dir.path(), 4, "and the rest", 3_000)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        set_aside_after(ours_dir.path(), 4, "nothing left", 4_000)
            .await
            .unwrap(),
        0
    );
    let ours = EventLog::open(ours_dir.path()).await.unwrap();
    let aside = ours.set_aside().await.unwrap();
    assert_eq!(
        aside.iter().map(|a| a.events.len()).collect::<Vec<_>>(),
        [3, 1]
    );
    assert!(ours.command("a2").await.unwrap().is_none());
}

#[tokio::test]
async fn a_log_held_open_cannot_have_its_tail_set_aside() {
    let (ours_dir, ours, _theirs_dir, _theirs, _) = forked().await;
    let refused = set_aside_after(ours_dir.path(), 4, "held", 0).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(ours.last_position(), 8);
}

/// Given a tail set aside (the log now ends before where its last
/// checkpoint said it did), when a crash then leaves in sled part of the
/// next group, written before its write-ahead record was, then opening
/// cuts that part: the log ends where the set-aside left it.
#[tokio::test]
async fn given_a_tail_set_aside_when_a_crash_leaves_part_of_the_next_group_then_opening_cuts_it() {
    let (ours_dir, ours, _theirs_dir, _theirs, streams) = forked().await;
    drop(ours);
    set_aside_after(ours_dir.path(), 4, "the cluster holds others", 1_000)
        .await
        .unwrap();

    // What a writer at position 5 had put in sled when it died.
    let db = crate::tamper::open_raw(ours_dir.path());
    let events = db.open_tree(layout::EVENTS).unwrap();
    let copied = events
        .get(layout::event_key(streams[0], 2))
        .unwrap()
        .expect("the stream's kept event");
    db.open_tree(layout::GLOBAL)
        .unwrap()
        .insert(5u64.to_be_bytes(), &layout::pointer(streams[0], 3)[..])
        .unwrap();
    events
        .insert(layout::event_key(streams[0], 3), copied)
        .unwrap();
    db.flush().unwrap();
    drop((events, db));

    let log = EventLog::open(ours_dir.path()).await.unwrap();
    assert_eq!(log.last_position(), 4);
    let Verification::Intact(head) = log.verify(streams[0]).await.unwrap() else {
        panic!("the part of the group left in sled is still there")
    };
    assert_eq!(head.version, 2);
    log.close().await.unwrap();
}
