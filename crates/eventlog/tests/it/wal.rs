//! The write-ahead files: a process killed between checkpoints leaves its
//! acknowledged groups there, and opening the log writes them into sled;
//! a damaged file is refused, a record cut short by the crash is left out.
//!
//! The killed process is this same test binary, re-run with
//! `BAOVE_WAL_CHILD` set to the log directory: it writes a side-tree entry
//! and appends one event, [`GROUPS`] times, one after another (one group,
//! so one record, each), prints each acknowledgement, then `DONE`, and
//! waits to be killed, well before the first checkpoint is due.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use baove_eventlog::{EventLog, ExpectedVersion, StreamId, Verification, layout};

use crate::request;

const CHILD_ENV: &str = "BAOVE_WAL_CHILD";
const CHILD_TEST: &str = "wal::child";
const GROUPS: u64 = 20;
const SIDE: &str = "notes";

#[test]
fn child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = EventLog::open(&dir).await.unwrap();
        let side = log.side_tree(SIDE).unwrap();
        let stream = StreamId::new();
        let mut out = std::io::stdout().lock();
        for version in 0..GROUPS {
            // Written before the append that depends on it: durable with it.
            side.insert(version.to_be_bytes(), stream.to_string().as_bytes())
                .unwrap();
            let a = log
                .append(request(
                    stream,
                    ExpectedVersion::Exact(version),
                    &format!("w{version}"),
                    1,
                ))
                .await
                .unwrap();
            writeln!(out, "ACK {stream} {}", a.last_seq).unwrap();
        }
        writeln!(out, "DONE").unwrap();
        out.flush().unwrap();
        std::future::pending::<()>().await;
    });
}

/// Runs the child on `dir` until it has acknowledged every group, kills
/// it, and returns its stream.
fn killed_after_acknowledging(dir: &Path) -> StreamId {
    let mut child = crate::spawn_child(CHILD_TEST, CHILD_ENV, dir);
    let mut stream = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "DONE" {
            break;
        }
        if let Some(ack) = line.strip_prefix("ACK ") {
            let id = ack.split(' ').next().unwrap();
            stream = Some(StreamId::parse("stream", id).unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stream.expect("the child acknowledged nothing")
}

/// The write-ahead files in the log directory `dir`, with their sizes.
fn wal_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path(), e.metadata().unwrap().len())
        })
        .collect();
    files.sort();
    files
}

/// The one write-ahead file holding records, as the kill left it.
fn the_written_file(dir: &Path) -> (PathBuf, u64) {
    let written: Vec<_> = wal_files(dir)
        .into_iter()
        .filter(|(_, len)| *len > 0)
        .collect();
    assert_eq!(
        written.len(),
        1,
        "the kill left {written:?}: one file with the records was expected"
    );
    written.into_iter().next().unwrap()
}

#[tokio::test]
async fn given_a_process_killed_between_checkpoints_when_the_log_is_opened_then_every_acknowledged_group_and_side_write_is_there()
 {
    let dir = tempfile::tempdir().unwrap();
    let stream = killed_after_acknowledging(dir.path());
    // The acknowledgements rested on the write-ahead file alone.
    the_written_file(dir.path());

    let log = EventLog::open(dir.path()).await.unwrap();
    let Verification::Intact(head) = log.verify(stream).await.unwrap() else {
        panic!("the chain does not verify after the replay")
    };
    assert_eq!(head.version, GROUPS);
    assert_eq!(log.last_position(), GROUPS);
    let side = log.side_tree(SIDE).unwrap();
    for version in 0..GROUPS {
        assert_eq!(
            side.get(version.to_be_bytes()).unwrap().as_deref(),
            Some(stream.to_string().as_bytes()),
            "side write {version} lost"
        );
    }
    // Replayed and checkpointed at the open: the records are gone.
    assert!(wal_files(dir.path()).iter().all(|(_, len)| *len == 0));
    // Appends go on where the log ended.
    log.append(request(stream, ExpectedVersion::Exact(GROUPS), "after", 1))
        .await
        .unwrap();
    log.close().await.unwrap();
    // A closed log leaves no write-ahead file: sled's files hold it all.
    assert_eq!(wal_files(dir.path()), Vec::new());
}

#[tokio::test]
async fn given_a_write_ahead_record_cut_short_when_the_log_is_opened_then_the_groups_before_it_are_there()
 {
    let dir = tempfile::tempdir().unwrap();
    let stream = killed_after_acknowledging(dir.path());
    let (file, len) = the_written_file(dir.path());
    // A crash during the last record's write (its group was never
    // acknowledged, the fdatasync had not returned).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let log = EventLog::open(dir.path()).await.unwrap();
    let Verification::Intact(head) = log.verify(stream).await.unwrap() else {
        panic!("the chain does not verify after the replay")
    };
    assert_eq!(head.version, GROUPS - 1);
    log.append(request(
        stream,
        ExpectedVersion::Exact(GROUPS - 1),
        "after",
        1,
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn given_a_write_ahead_file_damaged_before_its_last_record_when_the_log_is_opened_then_it_is_refused_naming_the_file()
 {
    let dir = tempfile::tempdir().unwrap();
    killed_after_acknowledging(dir.path());
    let (file, _) = the_written_file(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    // Inside the first record's content (after its 8-byte frame).
    bytes[20] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();

    let refused = EventLog::open(dir.path())
        .await
        .err()
        .expect("a damaged write-ahead file with acknowledged records after the damage was opened");
    let message = refused.to_string();
    assert!(
        message.contains(&file.display().to_string()) && message.contains("damaged"),
        "the refusal does not name the file and the damage: {message}"
    );
    // Nothing was deleted: the file is there for the engineer.
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

#[tokio::test]
async fn given_a_write_ahead_file_older_than_the_checkpoint_interval_when_the_next_group_is_durable_then_sled_is_checkpointed_and_the_file_deleted()
 {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let stream = StreamId::new();
    log.append(request(stream, ExpectedVersion::NoStream, "first", 1))
        .await
        .unwrap();
    let (first_file, _) = the_written_file(dir.path());
    // Groups keep coming, as on a working service: the first one past the
    // interval (2 s) starts a new file and hands this one to the
    // checkpoint, which deletes it once sled holds its groups.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut version = 1;
    while first_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} was not checkpointed and deleted",
            first_file.display()
        );
        log.append(request(
            stream,
            ExpectedVersion::Exact(version),
            &format!("more-{version}"),
            1,
        ))
        .await
        .unwrap();
        version += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The next group goes to the new file; sled holds the first one's.
    log.append(request(stream, ExpectedVersion::Exact(version), "last", 1))
        .await
        .unwrap();
    let (now, _) = the_written_file(dir.path());
    assert_ne!(now, first_file);
    let db_files_hold_the_first = {
        // Read sled's files as they are on disk, through a copy: what a
        // crash now would leave, with no write-ahead record of "first".
        let copy = tempfile::tempdir().unwrap();
        for name in ["db", "conf"] {
            std::fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
        }
        let db = sled::open(copy.path()).unwrap();
        db.open_tree(baove_eventlog::layout::EVENTS)
            .unwrap()
            .get(baove_eventlog::layout::event_key(stream, 1))
            .unwrap()
            .is_some()
    };
    assert!(
        db_files_hold_the_first,
        "the checkpoint did not make sled hold the first group"
    );
    log.close().await.unwrap();
}

/// Given sled holding a group past the last write-ahead record (a crash
/// after the writer put it in sled, before the syncer wrote its record:
/// never acknowledged), in part or whole (no transaction makes a group
/// all-or-nothing in sled), when the log is opened, then that group is cut
/// away with what it changed: its events, global index and outbox entries,
/// the heads it moved (back to the last event kept, or gone for a stream
/// it began) and its stored answer; every chain verifies, and the next
/// append takes the positions it held, as a new command.
#[tokio::test]
async fn given_sled_holding_a_group_whose_record_was_never_written_when_the_log_is_opened_then_it_is_cut_away()
 {
    let dir = tempfile::tempdir().unwrap();
    let kept = StreamId::new();
    let begun = StreamId::new();
    let log = EventLog::open(dir.path()).await.unwrap();
    let before = log
        .append(request(kept, ExpectedVersion::Exact(0), "kept", 3))
        .await
        .unwrap();
    log.close().await.unwrap();
    drop(log);
    let end = before.last_position;

    // What the writer had put in sled of the next group when the process
    // died, in its order: index and outbox entries, events, heads, answer.
    let db = crate::tamper::open_raw(dir.path());
    let global = db.open_tree(layout::GLOBAL).unwrap();
    let outbox = db.open_tree(layout::OUTBOX).unwrap();
    let events = db.open_tree(layout::EVENTS).unwrap();
    let heads = db.open_tree(layout::HEADS).unwrap();
    let commands = db.open_tree(layout::COMMANDS).unwrap();
    let copied = events
        .get(layout::event_key(kept, 3))
        .unwrap()
        .expect("the last kept event");
    for (position, stream, seq) in [(end + 1, kept, 4), (end + 2, begun, 1)] {
        global
            .insert(position.to_be_bytes(), &layout::pointer(stream, seq)[..])
            .unwrap();
        outbox
            .insert(position.to_be_bytes(), &layout::pointer(stream, seq)[..])
            .unwrap();
        events
            .insert(layout::event_key(stream, seq), copied.clone())
            .unwrap();
    }
    heads
        .insert(
            kept.as_bytes(),
            &layout::encode_head(4, before.head_hash)[..],
        )
        .unwrap();
    heads
        .insert(
            begun.as_bytes(),
            &layout::encode_head(1, before.head_hash)[..],
        )
        .unwrap();
    let unacknowledged = baove_eventlog::Appended {
        stream: kept,
        first_seq: 4,
        last_seq: 4,
        first_position: end + 1,
        last_position: end + 1,
        head_hash: before.head_hash,
        replayed: false,
    };
    commands
        .insert(b"cut", serde_json::to_vec(&unacknowledged).unwrap())
        .unwrap();
    db.flush().unwrap();
    drop((global, outbox, events, heads, commands, db));

    let log = EventLog::open(dir.path()).await.unwrap();
    assert_eq!(log.last_position(), end, "the log ends at its last record");
    let Verification::Intact(head) = log.verify(kept).await.unwrap() else {
        panic!("the chain of the stream the cut group extended does not verify")
    };
    assert_eq!((head.version, head.hash), (3, before.head_hash));
    assert_eq!(log.verify(begun).await.unwrap(), Verification::NoStream);
    assert_eq!(log.head(begun).await.unwrap(), None);
    assert_eq!(log.command("cut").await.unwrap(), None, "its answer stays");
    assert!(
        log.outbox(100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.global_position <= end),
        "an outbox entry of the cut group would be published"
    );
    let again = log
        .append(request(kept, ExpectedVersion::Exact(3), "cut", 1))
        .await
        .unwrap();
    assert!(!again.replayed, "the cut command was taken as applied");
    assert_eq!((again.last_seq, again.last_position), (4, end + 1));
    let Verification::Intact(head) = log.verify(kept).await.unwrap() else {
        panic!("the chain does not verify after the next append")
    };
    assert_eq!(head.version, 4);
    log.close().await.unwrap();
}

/// Given a process killed between checkpoints whose first groups sled
/// holds only in part (a checkpoint's flush or a full io buffer caught the
/// writer inside a group: its first event and its index entries, then only
/// the second's index entry, no head), when the log is opened, then each
/// group is written again whole from its record: every chain verifies to
/// the last acknowledged event and every event is still to be published.
#[tokio::test]
async fn given_sled_holding_part_of_a_recorded_group_when_the_log_is_opened_then_the_record_completes_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let stream = killed_after_acknowledging(dir.path());
    // The bytes the writer stored for the first event, as a replay of a
    // copy of the directory writes them.
    let copy = tempfile::tempdir().unwrap();
    for entry in walk(dir.path()) {
        let to = copy.path().join(entry.strip_prefix(dir.path()).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    EventLog::open(copy.path())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let first = crate::tamper::open_raw(copy.path())
        .open_tree(layout::EVENTS)
        .unwrap()
        .get(layout::event_key(stream, 1))
        .unwrap()
        .expect("the copy's first event");

    let db = crate::tamper::open_raw(dir.path());
    // Whatever sled's files hold of the groups already (they reach them
    // when sled likes) is taken out first: sled is made to hold no more of
    // them than the part below.
    for tree in [
        layout::GLOBAL,
        layout::OUTBOX,
        layout::EVENTS,
        layout::HEADS,
        layout::COMMANDS,
    ] {
        db.open_tree(tree).unwrap().clear().unwrap();
    }
    let global = db.open_tree(layout::GLOBAL).unwrap();
    global
        .insert(1u64.to_be_bytes(), &layout::pointer(stream, 1)[..])
        .unwrap();
    db.open_tree(layout::OUTBOX)
        .unwrap()
        .insert(1u64.to_be_bytes(), &layout::pointer(stream, 1)[..])
        .unwrap();
    db.open_tree(layout::EVENTS)
        .unwrap()
        .insert(layout::event_key(stream, 1), first)
        .unwrap();
    global
        .insert(2u64.to_be_bytes(), &layout::pointer(stream, 2)[..])
        .unwrap();
    db.flush().unwrap();
    drop((global, db));

    let log = EventLog::open(dir.path()).await.unwrap();
    assert_eq!(log.last_position(), GROUPS);
    let Verification::Intact(head) = log.verify(stream).await.unwrap() else {
        panic!("the chain does not verify after the replay")
    };
    assert_eq!(head.version, GROUPS);
    let waiting: Vec<u64> = log
        .outbox(100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(waiting, (1..=GROUPS).collect::<Vec<_>>());
    log.close().await.unwrap();
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
