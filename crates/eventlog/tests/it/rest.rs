//! Damage at rest: a closed log whose sled file had a byte flipped or was
//! cut short either refuses to open or opens as a whole prefix of what it
//! held: every command's events all there or none, each event found from
//! its position, each stream's head its last event, each answer naming
//! events that are there, and the Merkle tree the one the log had at that
//! size. Anything else would let a service serve a shortened log as whole
//! (an index entry without its event reads as the log's end), where the
//! kept checkpoint outside sled could not tell (tests/e2e/corruption.rs).

use std::collections::HashMap;

use baove_eventlog::{Envelope, EventLog, ExpectedVersion, StreamId};

use crate::request;

const STREAMS: usize = 5;
const COMMANDS: u64 = 60;
const TRIALS: u64 = 240;

/// A fixed-seed generator, so a failing trial comes back the same.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What the log held when it was closed.
struct Original {
    events: Vec<Envelope>,
    /// Each command's (first, last) global positions.
    commands: Vec<(String, u64, u64)>,
    /// The Merkle tree's root at each size.
    roots: Vec<baove_eventlog::tlog::Hash>,
    streams: Vec<StreamId>,
}

async fn written(dir: &std::path::Path) -> Original {
    let log = EventLog::open(dir).await.unwrap();
    let streams: Vec<StreamId> = (0..STREAMS).map(|_| StreamId::new()).collect();
    let mut versions = [0u64; STREAMS];
    let mut commands = Vec::new();
    for c in 0..COMMANDS {
        let s = (c as usize * 3) % STREAMS;
        let n = 1 + (c as usize % 4);
        let id = format!("rest-{c}");
        let a = log
            .append(request(
                streams[s],
                ExpectedVersion::Exact(versions[s]),
                &id,
                n,
            ))
            .await
            .unwrap();
        versions[s] = a.last_seq;
        commands.push((id, a.last_position + 1 - n as u64, a.last_position));
    }
    let events = log.read_all(1, 100_000).await.unwrap();
    let mut roots = Vec::new();
    for size in 0..=events.len() as u64 {
        roots.push(log.tree_root(size).await.unwrap());
    }
    log.close().await.unwrap();
    Original {
        events,
        commands,
        roots,
        streams,
    }
}

/// What is wrong with the opened `log`, measured against `original`.
async fn inconsistency(log: &EventLog, original: &Original) -> Option<String> {
    let n = log.last_position();
    let events = match log.read_all(1, 100_000).await {
        Ok(e) => e,
        Err(e) => return Some(format!("read_all failed: {e}")),
    };
    if events.len() as u64 != n {
        return Some(format!(
            "the log ends at position {n} but {} events read back",
            events.len()
        ));
    }
    for (got, had) in events.iter().zip(&original.events) {
        if got.event_id != had.event_id || got.hash != had.hash {
            return Some(format!("position {}: another event", had.global_position));
        }
    }
    for (id, first, last) in &original.commands {
        let whole = *last <= n;
        if !whole && *first <= n {
            return Some(format!(
                "command {id} ({first}..={last}) cut at position {n}"
            ));
        }
        match log.command(id).await {
            Ok(Some(_)) if !whole => {
                return Some(format!(
                    "command {id} answered, its events past the end ({n})"
                ));
            }
            Err(e) => return Some(format!("command {id}: {e}")),
            _ => {}
        }
    }
    let mut last_of: HashMap<StreamId, &Envelope> = HashMap::new();
    for e in &events {
        last_of.insert(e.stream_id, e);
    }
    for stream in &original.streams {
        let head = match log.head(*stream).await {
            Ok(h) => h,
            Err(e) => return Some(format!("head of {stream}: {e}")),
        };
        match (head, last_of.get(stream)) {
            (None, None) => {}
            (Some(h), Some(e)) if h.version == e.seq && h.hash == e.hash => {}
            (h, e) => {
                return Some(format!(
                    "head of {stream} is {:?}, its last event seq {:?}",
                    h.map(|h| h.version),
                    e.map(|e| e.seq)
                ));
            }
        }
    }
    match log.tree_root(n).await {
        Ok(root) if root == original.roots[n as usize] => None,
        Ok(_) => Some(format!("the Merkle tree at size {n} has another root")),
        Err(e) => Some(format!("the Merkle tree at size {n}: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_closed_log_damaged_at_rest_when_it_is_opened_then_it_refuses_or_holds_whole_commands()
 {
    let pristine = tempfile::tempdir().unwrap();
    let original = written(pristine.path()).await;
    let mut g = Lcg(0x00ba_07e0_0015);
    let (mut refused, mut whole, mut shorter) = (0, 0, 0);
    let mut wrong = Vec::new();
    for trial in 0..TRIALS {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(pristine.path(), dir.path());
        let db = dir.path().join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let damage = if trial % 2 == 0 {
            let at = g.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << g.below(8);
            format!("byte {at} flipped")
        } else {
            let keep = g.below(bytes.len() as u64) as usize;
            bytes.truncate(keep);
            format!("truncated to {keep} bytes")
        };
        std::fs::write(&db, &bytes).unwrap();
        let path = dir.path().to_path_buf();
        let opened = tokio::spawn(async move { EventLog::open(&path).await }).await;
        match opened {
            Ok(Ok(log)) => {
                match inconsistency(&log, &original).await {
                    Some(why) => wrong.push(format!("trial {trial} ({damage}): {why}")),
                    None if log.last_position() == original.events.len() as u64 => whole += 1,
                    None => shorter += 1,
                }
                let _ = log.close().await;
            }
            Ok(Err(_)) | Err(_) => refused += 1,
        }
    }
    println!(
        "damage at rest, {TRIALS} trials: {refused} refused, {whole} whole, {shorter} a shorter whole prefix, {} inconsistent",
        wrong.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
