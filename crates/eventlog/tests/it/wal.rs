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

use baove_eventlog::{EventLog, ExpectedVersion, StreamId, Verification};

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
