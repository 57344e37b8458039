//! Kill -9 a process that appends in a loop; every append it acknowledged
//! must be there after reopening, the chains must verify, and appends must
//! go on. Before each append the writer records a consumed message as
//! applied (answered without a flush of its own): every record made before
//! an acknowledged append must be there too. Half the writers append
//! sharing their flush (`append_sharing_flush`), acknowledged as late as
//! the flush they share.
//!
//! The child is this same test binary, re-run with `BAOVE_CRASH_CHILD` set
//! to the log directory: the test function then acts as the writer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};

use baove_eventlog::{EventLog, ExpectedVersion, NewEvent, StreamId, Verification};
use rand::Rng;

use crate::request;

const CHILD_ENV: &str = "BAOVE_CRASH_CHILD";
const TEST_NAME: &str = "crash::acknowledged_appends_survive_sigkill";
const WRITERS: usize = 4;
/// The consumer name of the child's inbox records.
const INBOX: &str = "crash";

#[test]
fn acknowledged_appends_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acked: HashMap<(StreamId, u64), String> = HashMap::new();
    let mut rng = rand::rng();
    for round in 0..5 {
        let kill_after = rng.random_range(5..200);
        let mut child = crate::spawn_child(TEST_NAME, CHILD_ENV, dir.path());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < kill_after {
            let line = lines
                .next()
                .expect("child stopped before being killed")
                .unwrap();
            if let Some(ack) = parse(&line) {
                acked.insert((ack.0, ack.1), ack.2);
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Acks already printed before the kill were acknowledged too.
        for line in lines {
            if let Some(ack) = parse(&line.unwrap()) {
                acked.insert((ack.0, ack.1), ack.2);
            }
        }
        child.wait().unwrap();

        rt.block_on(async {
            let log = EventLog::open(dir.path()).await.unwrap();
            for ((stream, seq), hash) in &acked {
                let event = log.read_stream(*stream, *seq, 1).await.unwrap();
                assert_eq!(
                    event.first().map(|e| (e.seq, e.hash.to_string())),
                    Some((*seq, hash.clone())),
                    "round {round}: acknowledged {stream}/{seq} lost"
                );
                assert!(
                    log.is_applied(INBOX, &format!("{stream}/{seq}"))
                        .await
                        .unwrap(),
                    "round {round}: the inbox record made before {stream}/{seq} was acknowledged is lost"
                );
            }
            let streams: std::collections::HashSet<StreamId> = acked.keys().map(|k| k.0).collect();
            for stream in streams {
                let Verification::Intact(head) = log.verify(stream).await.unwrap() else {
                    panic!("round {round}: chain of {stream} broken")
                };
                // Appends continue on top of whatever survived.
                log.append(request(
                    stream,
                    ExpectedVersion::Exact(head.version),
                    &format!("after-{round}-{stream}"),
                    1,
                ))
                .await
                .unwrap();
            }
            log.close().await.unwrap();
        });
    }
    assert!(acked.len() >= 5 * 5);
}

fn parse(line: &str) -> Option<(StreamId, u64, String)> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let stream = StreamId::parse("stream", parts.next()?).ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((stream, seq, parts.next()?.to_owned()))
}

/// The writer: WRITERS tasks, each on its own stream, appending with exact
/// expected versions (every other task sharing its flushes) and printing
/// each acknowledgement, until killed.
fn child(dir: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = EventLog::open(dir).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                // Each round of the parent starts new streams, so that every
                // stream's acknowledged history is all in `acked`.
                let stream = StreamId::new();
                let mut version = 0;
                loop {
                    // Recorded before the append that follows it: durable
                    // once that append is.
                    log.record_applied(INBOX, &format!("{stream}/{}", version + 1))
                        .await
                        .unwrap();
                    let command = format!("{stream}-{w}-{version}");
                    let append = request(stream, ExpectedVersion::Exact(version), &command, 1);
                    let a = if w % 2 == 0 {
                        log.append(append).await
                    } else {
                        log.append_sharing_flush(append).await
                    }
                    .unwrap();
                    version = a.last_seq;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {stream} {} {}", a.last_seq, a.head_hash).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        // The writers never finish: the parent kills this process.
        let _ = tasks.pop().unwrap().await;
    });
}

/// sled writes a log message over 128 KiB (a leaf of large events
/// rewritten whole, with events acknowledged before) to a blob file it
/// never fsyncs; after a power cut the log would point at a blob the disk
/// never got. The log syncs them before each flush: once an append is
/// acknowledged, no blob file is left unsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_events_large_enough_for_sled_blobs_when_acknowledged_then_every_blob_file_is_synced()
{
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let text = "y".repeat(20 * 1024);
    for i in 0..200 {
        let mut append = request(
            StreamId::new(),
            ExpectedVersion::NoStream,
            &format!("large-{i}"),
            0,
        );
        append.events =
            vec![NewEvent::new("LargeNote", 1, &serde_json::json!({ "text": text })).unwrap()];
        log.append(append).await.unwrap();
        assert_eq!(
            log.unsynced_blobs().unwrap(),
            Vec::<std::path::PathBuf>::new()
        );
    }
    let blob_files = std::fs::read_dir(dir.path().join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        blob_files > 0,
        "sled wrote no blob file: the test no longer exercises them"
    );
}
