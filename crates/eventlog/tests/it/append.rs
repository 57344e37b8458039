//! Appends, conflicts, idempotency and reads.

use baove_eventlog::{Error, EventLog, ExpectedVersion, StreamId, Verification};

use crate::request;

#[tokio::test]
async fn given_an_empty_log_when_appending_then_seqs_positions_and_chain_follow() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let a = StreamId::new();
    let b = StreamId::new();

    let first = log
        .append(request(a, ExpectedVersion::NoStream, "c1", 2))
        .await
        .unwrap();
    assert_eq!((first.first_seq, first.last_seq), (1, 2));
    assert_eq!((first.first_position, first.last_position), (1, 2));
    let other = log
        .append(request(b, ExpectedVersion::NoStream, "c2", 1))
        .await
        .unwrap();
    assert_eq!((other.first_seq, other.first_position), (1, 3));
    let second = log
        .append(request(a, ExpectedVersion::Exact(2), "c3", 1))
        .await
        .unwrap();
    assert_eq!((second.first_seq, second.first_position), (3, 4));

    let events = log.read_stream(a, 1, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(events[1].prev_hash, events[0].hash);
    assert_eq!(events[2].hash, second.head_hash);
    assert_eq!(events[0].actor.role, "hotline_operator");
    assert_eq!(events[2].command_id, "c3");

    let back = log.read_stream_backward(a, None, 2).await.unwrap();
    assert_eq!(back.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2]);
    let back = log.read_stream_backward(a, Some(1), 10).await.unwrap();
    assert_eq!(back.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);

    let all = log.read_all(2, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(all[1].stream_id, b);

    let head = log.head(a).await.unwrap().unwrap();
    assert_eq!((head.version, head.hash), (3, second.head_hash));
    assert!(log.head(StreamId::new()).await.unwrap().is_none());
    assert_eq!(log.verify(a).await.unwrap(), Verification::Intact(head));
    assert_eq!(log.last_position(), 4);
}

#[tokio::test]
async fn given_a_stream_when_the_expected_version_is_stale_then_conflict_carries_the_current_version()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let s = StreamId::new();
    log.append(request(s, ExpectedVersion::NoStream, "c1", 3))
        .await
        .unwrap();

    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(4),
    ] {
        let err = log
            .append(request(s, expected, "late", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Conflict { current: 3, .. }),
            "{expected}: {err}"
        );
    }
    // The rejected command id was not consumed: it succeeds once right.
    let ok = log
        .append(request(s, ExpectedVersion::Exact(3), "late", 1))
        .await
        .unwrap();
    assert_eq!(ok.last_seq, 4);
    assert_eq!(log.read_stream(s, 1, 100).await.unwrap().len(), 4);
}

#[tokio::test]
async fn given_an_applied_command_when_retried_after_restart_then_the_first_answer_returns_and_nothing_is_written()
 {
    let dir = tempfile::tempdir().unwrap();
    let s = StreamId::new();
    let first = {
        let log = EventLog::open(dir.path()).await.unwrap();
        let first = log
            .append(request(s, ExpectedVersion::NoStream, "report-42", 2))
            .await
            .unwrap();
        assert!(!first.replayed);
        let again = log
            .append(request(s, ExpectedVersion::NoStream, "report-42", 2))
            .await
            .unwrap();
        assert!(again.replayed);
        assert_eq!(Appended::from(again), Appended::from(first.clone()));
        log.close().await.unwrap();
        first
    };
    let log = EventLog::open(dir.path()).await.unwrap();
    // Even with an expected version that no longer holds, the retry gets
    // the stored answer rather than a conflict.
    let retry = log
        .append(request(s, ExpectedVersion::NoStream, "report-42", 2))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(Appended::from(retry), Appended::from(first));
    assert_eq!(log.read_stream(s, 1, 100).await.unwrap().len(), 2);
    assert_eq!(log.last_position(), 2);

    let err = log
        .append(request(
            StreamId::new(),
            ExpectedVersion::Any,
            "report-42",
            1,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::CommandIdReused { stream, .. } if stream == s),
        "{err}"
    );
}

/// The answer without the `replayed` flag, to compare a retry with the first.
#[derive(Debug, PartialEq)]
struct Appended(u64, u64, u64, u64, baove_eventlog::ChainHash);

impl From<baove_eventlog::Appended> for Appended {
    fn from(a: baove_eventlog::Appended) -> Self {
        Self(
            a.first_seq,
            a.last_seq,
            a.first_position,
            a.last_position,
            a.head_hash,
        )
    }
}

#[tokio::test]
async fn given_bad_input_when_appending_then_the_error_names_the_field_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let s = StreamId::new();
    let mut no_command = request(s, ExpectedVersion::Any, "", 1);
    let err = log.append(no_command.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "command_id",
                ..
            }
        ),
        "{err}"
    );
    no_command.command_id = "x".into();
    no_command.events.clear();
    let err = log.append(no_command).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "events",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(log.last_position(), 0);
    assert!(log.head(s).await.unwrap().is_none());
}

#[tokio::test]
async fn given_a_subscriber_when_an_append_commits_then_it_wakes_with_the_new_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let mut rx = log.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    let writer = log.clone();
    let s = StreamId::new();
    let task = tokio::spawn(async move {
        writer
            .append(request(s, ExpectedVersion::NoStream, "c", 3))
            .await
    });
    rx.changed().await.unwrap();
    assert_eq!(*rx.borrow(), 3);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn given_published_appends_then_the_outbox_holds_them_in_order_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let s = StreamId::new();
    log.append(request(s, ExpectedVersion::NoStream, "a", 2))
        .await
        .unwrap();
    let mut private = request(s, ExpectedVersion::Exact(2), "b", 1);
    private.publish = false;
    log.append(private).await.unwrap();
    log.append(request(s, ExpectedVersion::Exact(3), "c", 1))
        .await
        .unwrap();
    let pending = log.outbox(10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|e| e.global_position)
            .collect::<Vec<_>>(),
        [1, 2, 4]
    );
    log.outbox_done(1, 1).await.unwrap();
    let pending = log.outbox(10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|e| e.global_position)
            .collect::<Vec<_>>(),
        [2, 4]
    );
    let positions = |events: Vec<baove_eventlog::Envelope>| {
        events.iter().map(|e| e.global_position).collect::<Vec<_>>()
    };
    // What was published is remembered with the bus's sequence, and can be
    // put back in the outbox: one event, or all (the bus lost its store).
    assert_eq!(log.last_published_sequence().await.unwrap(), 1);
    log.outbox_done(2, 2).await.unwrap();
    assert_eq!(log.last_published_sequence().await.unwrap(), 2);
    assert!(!log.republish(3).await.unwrap(), "never published");
    assert!(log.republish(2).await.unwrap());
    assert_eq!(positions(log.outbox(10).await.unwrap()), [2, 4]);
    log.outbox_done(2, 2).await.unwrap();
    assert_eq!(log.republish_all().await.unwrap(), 2);
    assert_eq!(positions(log.outbox(10).await.unwrap()), [1, 2, 4]);
    // A window acknowledged at once leaves the outbox in one call.
    log.outbox_done_all(vec![(1, 1), (2, 2)]).await.unwrap();
    assert_eq!(positions(log.outbox(10).await.unwrap()), [4]);
    assert_eq!(log.last_published_sequence().await.unwrap(), 2);

    assert!(!log.is_applied("casework", "m1").await.unwrap());
    log.record_applied("casework", "m1").await.unwrap();
    assert!(log.is_applied("casework", "m1").await.unwrap());
    assert!(!log.is_applied("referral", "m1").await.unwrap());
}

#[tokio::test]
async fn given_consumed_messages_when_recorded_as_applied_then_no_flush_is_made_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let stream = StreamId::new();
    log.append(request(stream, ExpectedVersion::NoStream, "c1", 1))
        .await
        .unwrap();
    let before = log.syncs();
    assert!(before >= 1, "an acknowledged append was flushed");
    for i in 0..50 {
        log.record_applied("casework", &format!("m{i}"))
            .await
            .unwrap();
    }
    // A consumer's inbox record rides on the next flush: one device wait
    // per consumed message would double the cost of every hand-over.
    assert_eq!(
        log.syncs(),
        before,
        "inbox records made flushes of their own"
    );
    assert!(log.is_applied("casework", "m49").await.unwrap());
    log.append(request(stream, ExpectedVersion::Exact(1), "c2", 1))
        .await
        .unwrap();
    assert_eq!(log.syncs(), before + 1);
    log.close().await.unwrap();
    drop(log);
    let log = EventLog::open(dir.path()).await.unwrap();
    for i in 0..50 {
        assert!(log.is_applied("casework", &format!("m{i}")).await.unwrap());
    }
}

/// Opens a log whose shared flushes wait long enough for a test to see
/// one waiting (the default is 10 ms).
async fn open_waiting_long(dir: &std::path::Path) -> EventLog {
    let options = baove_eventlog::Options {
        shared_flush_wait: std::time::Duration::from_secs(600),
        ..Default::default()
    };
    EventLog::open_with(dir, options).await.unwrap()
}

/// Appends one event to the new stream `a` sharing its flush, in a task.
fn spawn_sharing(
    log: &EventLog,
    a: StreamId,
) -> tokio::task::JoinHandle<Result<baove_eventlog::Appended, Error>> {
    let log = log.clone();
    tokio::spawn(async move {
        log.append_sharing_flush(request(a, ExpectedVersion::NoStream, "handed-over", 1))
            .await
    })
}

/// Waits (10 s at most) until the log's sled holds `streams` streams: an
/// append's group is written there before its flush.
async fn until_written(log: &EventLog, streams: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.stream_count().await.unwrap() < streams {
        assert!(tokio::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn given_an_append_sharing_its_flush_when_an_append_in_a_hurry_comes_then_one_fdatasync_makes_both_durable()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = open_waiting_long(dir.path()).await;
    let (a, b) = (StreamId::new(), StreamId::new());
    let before = log.syncs();
    let sharing = spawn_sharing(&log, a);
    until_written(&log, 1).await;
    // Written, not durable, not answered: its flush waits for company.
    assert_eq!(log.last_position(), 0);
    assert_eq!(log.syncs(), before);
    assert!(!sharing.is_finished());
    let hurried = log
        .append(request(b, ExpectedVersion::NoStream, "submitted", 1))
        .await
        .unwrap();
    let shared = sharing.await.unwrap().unwrap();
    assert_eq!(
        log.syncs(),
        before + 1,
        "the two appends were made durable by two fdatasyncs"
    );
    assert_eq!((shared.last_position, hurried.last_position), (1, 2));
    assert_eq!(log.last_position(), 2);
    // Durable: there after a reopen.
    log.close().await.unwrap();
    drop(log);
    let log = EventLog::open(dir.path()).await.unwrap();
    assert_eq!(log.read_stream(a, 1, 10).await.unwrap().len(), 1);
    assert_eq!(log.read_stream(b, 1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn given_an_append_sharing_its_flush_when_nothing_else_comes_then_it_is_made_durable_alone() {
    let dir = tempfile::tempdir().unwrap();
    // The default wait (10 ms).
    let log = EventLog::open(dir.path()).await.unwrap();
    let a = StreamId::new();
    let before = log.syncs();
    let shared = log
        .append_sharing_flush(request(a, ExpectedVersion::NoStream, "handed-over", 2))
        .await
        .unwrap();
    assert_eq!(log.syncs(), before + 1);
    assert_eq!(log.last_position(), shared.last_position);
    // Like any append: a retry is answered from the first, a wrong
    // version is a conflict.
    let again = log
        .append_sharing_flush(request(a, ExpectedVersion::NoStream, "handed-over", 2))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.head_hash, shared.head_hash);
    let refused = log
        .append_sharing_flush(request(a, ExpectedVersion::Exact(1), "other", 1))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Conflict { .. }), "{refused:?}");
}

#[tokio::test]
async fn given_an_append_sharing_its_flush_when_the_log_is_closed_then_the_close_makes_it_durable()
{
    let dir = tempfile::tempdir().unwrap();
    let log = open_waiting_long(dir.path()).await;
    let a = StreamId::new();
    let sharing = spawn_sharing(&log, a);
    until_written(&log, 1).await;
    log.close().await.unwrap();
    assert_eq!(sharing.await.unwrap().unwrap().last_seq, 1);
    drop(log);
    let log = EventLog::open(dir.path()).await.unwrap();
    assert_eq!(log.read_stream(a, 1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn given_a_closed_log_when_appending_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    log.close().await.unwrap();
    let err = log
        .append(request(StreamId::new(), ExpectedVersion::Any, "c", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_acknowledged_append_then_last_position_already_includes_it() {
    // Read-your-writes waits (`wait_for(log.last_position())`) rely on this:
    // the committed position is published before any caller hears back.
    // Eight writers, so that groups form and replies race the publication.
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..8 {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            let s = StreamId::new();
            let mut behind = 0;
            for n in 0..150u64 {
                let expected = if n == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(n)
                };
                let appended = log
                    .append(request(s, expected, &format!("w{w}-{n}"), 1))
                    .await
                    .unwrap();
                if log.last_position() < appended.last_position {
                    behind += 1;
                }
            }
            behind
        }));
    }
    let mut behind = 0;
    for writer in writers {
        behind += writer.await.unwrap();
    }
    assert_eq!(behind, 0, "acknowledged appends not yet in last_position");
}

/// Given a log that keeps no answers (the access log: every record has an
/// id of its own), when records are appended and the same records are
/// imported into a copy of that kind, then both logs hold every event
/// (each still naming its command id) and their chains verify, but neither
/// wrote a `commands` entry; and an append with an id used before is
/// stored again instead of answered from a kept answer.
#[tokio::test]
async fn given_a_log_that_keeps_no_answers_when_appending_and_importing_then_no_answer_is_written()
{
    let options = || baove_eventlog::Options {
        keep_answers: false,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let s = StreamId::new();
    {
        let log = EventLog::open_with(dir.path(), options()).await.unwrap();
        for i in 0..3 {
            let appended = log
                .append(request(s, ExpectedVersion::Any, &format!("access:{i}"), 1))
                .await
                .unwrap();
            assert!(!appended.replayed);
        }
        let again = log
            .append(request(s, ExpectedVersion::Any, "access:0", 1))
            .await
            .unwrap();
        assert!(!again.replayed, "nothing kept to answer it from");
        assert_eq!(again.last_seq, 4);
        assert_eq!(log.command("access:1").await.unwrap(), None);
        assert!(matches!(
            log.verify(s).await.unwrap(),
            Verification::Intact(_)
        ));

        let copy = EventLog::open_with(copy_dir.path(), options())
            .await
            .unwrap();
        copy.import(log.read_all(1, 100).await.unwrap())
            .await
            .unwrap();
        assert_eq!(copy.last_position(), 4);
        assert!(matches!(
            copy.verify(s).await.unwrap(),
            Verification::Intact(_)
        ));
        let events = copy.read_stream(s, 1, 10).await.unwrap();
        assert_eq!(events[1].command_id, "access:1");
        copy.close().await.unwrap();
        log.close().await.unwrap();
    }
    for path in [dir.path(), copy_dir.path()] {
        let db = crate::tamper::open_raw(path);
        let commands = db.open_tree(baove_eventlog::layout::COMMANDS).unwrap();
        assert_eq!(commands.len(), 0, "no answer in {}", path.display());
        assert_eq!(
            db.open_tree(baove_eventlog::layout::EVENTS).unwrap().len(),
            4
        );
    }
}

/// Given a log opened under a name (the access log's), when it runs, then
/// its threads are named `<log>-write`, `<log>-sync` and `<log>-ckpt` in
/// full (within the 15 bytes Linux keeps), so `top -H`, `perf` and the
/// load bench tell one log's threads from another's.
#[tokio::test]
async fn given_a_named_log_when_it_runs_then_its_threads_carry_its_name() {
    fn threads() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|comm| comm.trim().to_owned())
            .collect()
    }
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open_with(
        dir.path(),
        baove_eventlog::Options {
            name: "access",
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A thread takes its name itself once it starts running, so a thread
    // just spawned still shows its parent's name for a moment: wait for
    // the names (bounded) rather than read them once.
    let wanted = ["access-write", "access-sync", "access-ckpt"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut running = threads();
    while !wanted.iter().all(|name| running.iter().any(|t| t == name))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        running = threads();
    }
    for name in wanted {
        assert!(
            running.iter().any(|t| t == name),
            "{name} not in {running:?}"
        );
    }
    log.close().await.unwrap();
}

/// Given appends under way from several writers (each group in sled
/// before its write-ahead record is synced), when the outbox is read for
/// publishing again and again meanwhile, then no event comes back that was
/// not durable when it was read: every one is at or before the log's
/// durable position read right after. (Before, the relay could hand on an
/// event of a group not yet synced; a crash then lost it here after another
/// service had acted on it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_appends_under_way_when_the_outbox_is_read_for_publishing_then_only_durable_events_come_back()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let s = StreamId::new();
                for i in 0..150u64 {
                    let expected = if i == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(i)
                    };
                    log.append(request(s, expected, &format!("w{w}-{i}"), 1))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut reads = 0u64;
    let mut seen = 0usize;
    while writers.iter().any(|w| !w.is_finished()) {
        let events = log.outbox_publishable(usize::MAX).await.unwrap();
        let durable = log.last_position();
        reads += 1;
        seen = seen.max(events.len());
        if let Some(beyond) = events.iter().find(|e| e.global_position > durable) {
            panic!(
                "read {reads}: event at position {} handed on while the log was durable up to {durable}",
                beyond.global_position
            );
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    // Once every append is answered, all of them may leave.
    assert_eq!(
        log.outbox_publishable(usize::MAX).await.unwrap().len(),
        1200
    );
    assert!(
        reads > 10 && seen > 0,
        "{reads} reads while appending, at most {seen} events"
    );
}
