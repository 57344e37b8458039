//! Many writers racing on one stream with expected versions.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use baove_eventlog::{Error, EventLog, ExpectedVersion, StreamId, Verification};

use crate::request;

/// Writers racing the readers below, each on its own stream.
const WRITERS: usize = 8;
/// Events each writer appends, one command at a time.
const EACH: u64 = 60;

/// The streams and the tasks of [`WRITERS`] writers on `log`.
fn spawn_writers(log: &EventLog) -> (Vec<StreamId>, Vec<tokio::task::JoinHandle<()>>) {
    let streams: Vec<StreamId> = (0..WRITERS).map(|_| StreamId::new()).collect();
    let writers = streams
        .iter()
        .copied()
        .enumerate()
        .map(|(w, stream)| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    log.append(request(
                        stream,
                        ExpectedVersion::Exact(i),
                        &format!("w{w}-{i}"),
                        1,
                    ))
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    (streams, writers)
}

/// A reader's loop gives up (failing) after this long: the writers are
/// done in well under a second, or one of them failed.
fn give_up_at() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_32_writers_on_one_stream_then_no_gaps_no_duplicates_and_every_loser_gets_a_conflict()
{
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let stream = StreamId::new();
    const WRITERS: usize = 32;
    const WINS_EACH: usize = 3;

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let (mut wins, mut conflicts, mut attempt) = (Vec::new(), 0usize, 0usize);
            while wins.len() < WINS_EACH {
                let version = log.head(stream).await.unwrap().map_or(0, |h| h.version);
                attempt += 1;
                let command = format!("w{w}-a{attempt}");
                match log
                    .append(request(
                        stream,
                        ExpectedVersion::Exact(version),
                        &command,
                        1,
                    ))
                    .await
                {
                    Ok(a) => {
                        assert_eq!(a.first_seq, version + 1);
                        wins.push(a.first_seq);
                    }
                    Err(Error::Conflict { current, .. }) => {
                        assert!(current > version, "conflict must report a newer version");
                        conflicts += 1;
                    }
                    Err(other) => panic!("writer {w}: {other}"),
                }
            }
            (wins, conflicts)
        }));
    }
    let mut seqs = BTreeSet::new();
    let mut conflicts = 0;
    for task in tasks {
        let (wins, lost) = task.await.unwrap();
        conflicts += lost;
        for seq in wins {
            assert!(seqs.insert(seq), "seq {seq} acknowledged twice");
        }
    }
    let total = (WRITERS * WINS_EACH) as u64;
    assert_eq!(seqs, (1..=total).collect::<BTreeSet<_>>());
    let stored = log.read_stream(stream, 1, 10_000).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert!(conflicts > 0, "32 racing writers must produce conflicts");
    assert!(
        matches!(log.verify(stream).await.unwrap(), Verification::Intact(h) if h.version == total)
    );
}

/// A reader of the global order (the log relay, a follower) must never be
/// handed an event the log has not made durable: the relay once published
/// such an event to the replicated stream, found the stream ahead of
/// `last_position()` on its next step, and stopped the active service.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_writers_appending_when_the_global_order_is_read_then_no_event_past_the_durable_position_is_returned()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let (_, writers) = spawn_writers(&log);
    let total = WRITERS as u64 * EACH;
    let (mut reads, mut seen) = (0usize, 0u64);
    let give_up = give_up_at();
    while seen < total {
        assert!(Instant::now() < give_up, "the writers never finished");
        let events = log.read_all(seen + 1, 1_000).await.unwrap();
        // Read after the events: it can only have grown since.
        let durable = log.last_position();
        if let Some(beyond) = events.iter().find(|e| e.global_position > durable) {
            panic!(
                "read_all returned position {} while the log is durable to {durable}",
                beyond.global_position
            );
        }
        seen = events.last().map_or(seen, |e| e.global_position);
        reads += 1;
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(seen, total);
    assert!(reads > 1, "the reader must have raced the writers");
}

/// A case's page (GetCase reads its stream forward, the timeline backward)
/// must never show an event the log has not made durable: a crash could
/// still take it back, and an officer would have acted on a step that
/// never happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_writers_appending_when_a_stream_is_read_either_way_then_no_event_past_the_durable_position_is_returned()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let (streams, writers) = spawn_writers(&log);
    let mut reads = 0usize;
    let mut done = [false; WRITERS];
    let give_up = give_up_at();
    while done.contains(&false) {
        assert!(Instant::now() < give_up, "the writers never finished");
        for (at, stream) in streams.iter().copied().enumerate() {
            let forward = log.read_stream(stream, 1, 1_000).await.unwrap();
            let backward = log.read_stream_backward(stream, None, 2).await.unwrap();
            // Read after the events: it can only have grown since.
            let durable = log.last_position();
            for (how, events) in [
                ("read_stream", &forward),
                ("read_stream_backward", &backward),
            ] {
                if let Some(beyond) = events.iter().find(|e| e.global_position > durable) {
                    panic!(
                        "{how} returned position {} while the log is durable to {durable}",
                        beyond.global_position
                    );
                }
            }
            let seqs: Vec<u64> = forward.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "a gap");
            if let [last, before] = backward.as_slice() {
                assert_eq!(
                    before.seq + 1,
                    last.seq,
                    "the backward read goes down by one"
                );
            }
            done[at] = forward.len() as u64 == EACH;
            reads += 1;
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(reads > WRITERS, "the reader must have raced the writers");
}

/// A stream's head (the version an auditor's page shows beside its events)
/// must not name an event the log has not made durable either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_writers_appending_when_a_head_is_read_then_it_names_no_event_past_the_durable_position()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let (streams, writers) = spawn_writers(&log);
    let mut reads = 0usize;
    let mut done = [false; WRITERS];
    let give_up = give_up_at();
    while done.contains(&false) {
        assert!(Instant::now() < give_up, "the writers never finished");
        for (at, stream) in streams.iter().copied().enumerate() {
            let Some(head) = log.head(stream).await.unwrap() else {
                continue;
            };
            // Read after the head: it can only have grown since.
            let durable = log.last_position();
            let named = loop {
                // The named event, once durable (it is, unless the head ran
                // ahead: then this waits for its flush).
                if let Some(event) = log
                    .read_stream(stream, head.version, 1)
                    .await
                    .unwrap()
                    .pop()
                {
                    break event;
                }
                assert!(
                    Instant::now() < give_up,
                    "the head named seq {} but the event never became readable",
                    head.version
                );
                tokio::task::yield_now().await;
            };
            assert_eq!(named.seq, head.version);
            assert_eq!(named.hash, head.hash, "the head's hash is its event's");
            assert!(
                named.global_position <= durable,
                "head named position {} while the log is durable to {durable}",
                named.global_position
            );
            done[at] = head.version == EACH;
            reads += 1;
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(reads > WRITERS, "the reader must have raced the writers");
}

/// Given writers appending to their streams, when each stream is verified
/// again and again meanwhile (an auditor's VerifyAll on a serving log),
/// then every verification finds it intact: a group being written (its
/// events in sled, its head not yet) is not reported as damage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_writers_appending_when_their_streams_are_verified_meanwhile_then_each_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let (streams, writers) = spawn_writers(&log);
    let mut checks = 0usize;
    let give_up = give_up_at();
    while writers.iter().any(|w| !w.is_finished()) {
        assert!(Instant::now() < give_up, "the writers never finished");
        for stream in &streams {
            match log.verify(*stream).await.unwrap() {
                Verification::Intact(_) | Verification::NoStream => checks += 1,
                broken => panic!("verification {checks} of a stream being written: {broken:?}"),
            }
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for stream in &streams {
        let Verification::Intact(head) = log.verify(*stream).await.unwrap() else {
            panic!("{stream} does not verify once the writers are done")
        };
        assert_eq!(head.version, EACH);
    }
    assert!(checks > 0, "no verification ran while the writers wrote");
}
