//! Throughput and latency of the event log, printed as figures and as ratios
//! to the disk's own fdatasync rate measured in the same run and directory.
//!
//! Run: `cargo bench -p baove-eventlog` (release build). Environment:
//! - `BAOVE_BENCH_DIR`: where to put the logs (default: a temporary
//!   directory under the system temp dir; choose the disk you deploy on).
//! - `BAOVE_BENCH_EVENTS`: size of the large log (default 1,000,000).
//! - `BAOVE_BENCH_SECS`: seconds per throughput run (default 3).
//! - `BAOVE_BENCH_CACHE_MB`: sled cache of the large log (default 1024).
//! - `BAOVE_BENCH_PG`: a PostgreSQL connection string (`host=127.0.0.1
//!   user=postgres dbname=postgres`, or a `postgres://` URL). When it is
//!   set, the same appends (1, 8 and 64 writers) are run against an event
//!   store in that server ([`postgres`] says how it is made) right after
//!   baove's, and each figure is printed beside baove's with their ratio.
//!   `deploy/local/bench-peer.sh` installs and starts PostgreSQL when it is
//!   missing and runs this bench with it.
//!
//! Targets (issue #15): 1 writer ≥ 0.8× fdatasync, 8 writers ≥ 3× and 64
//! writers ≥ 8×; ≥ 3× the PostgreSQL peer at 8 and 64 writers; appends/s on
//! the large log within 20% of the empty log; replay ≥ 300,000 events/s.
//! The bench prints; it asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use baove_eventlog::{Actor, AppendRequest, EventLog, ExpectedVersion, NewEvent, StreamId};

mod postgres;

/// The services' allocator (`baove-runtime`'s), so that the figures are
/// those of the log as the services run it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// The services' jemalloc options too (`baove-runtime`'s `JEMALLOC_OPTIONS`).
// SAFETY: read by jemalloc once, at its start, as a NUL-terminated string.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 10] = b"narenas:2\0";

fn main() {
    let base = std::env::var("BAOVE_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    let large: u64 = env_or("BAOVE_BENCH_EVENTS", 1_000_000);
    let secs: u64 = env_or("BAOVE_BENCH_SECS", 3);
    let run = Duration::from_secs(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    println!("baove-eventlog bench in {}", dir.path().display());
    let baseline = fdatasync_rate(dir.path(), run);
    println!("fdatasync baseline (1 KiB write + fdatasync): {baseline:.0} ops/s");

    rt.block_on(async {
        let mut ours = Vec::new();
        for writers in WRITERS {
            let log = EventLog::open(dir.path().join(format!("w{writers}"))).await.unwrap();
            let r = appends(&log, writers, run).await;
            println!(
                "durable appends, {writers:>2} writers: {:>8.0} appends/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ratio to fdatasync {:.2}x",
                r.rate,
                r.p50_ms,
                r.p99_ms,
                r.rate / baseline
            );
            log.close().await.unwrap();
            ours.push(r);
        }
        if let Ok(url) = std::env::var("BAOVE_BENCH_PG") {
            beside_postgres(&url, &ours, baseline, run).await;
        }

        let empty = EventLog::open(dir.path().join("empty")).await.unwrap();
        let on_empty = appends(&empty, 8, run).await.rate;
        empty.close().await.unwrap();

        let options = baove_eventlog::Options {
            cache_capacity: env_or("BAOVE_BENCH_CACHE_MB", 1024) * 1024 * 1024,
            ..Default::default()
        };
        let big = EventLog::open_with(dir.path().join("large"), options).await.unwrap();
        let started = Instant::now();
        fill(&big, large).await;
        println!(
            "filled a log with {large} events in {:.1} s ({:.0} events/s, 1,000 per append)",
            started.elapsed().as_secs_f64(),
            large as f64 / started.elapsed().as_secs_f64()
        );
        println!(
            "disk: {:.0} bytes per event in the large log's directory (sled's files after the fill, ~1 KiB of payload per event)",
            dir_bytes(&dir.path().join("large")) as f64 / big.last_position() as f64
        );
        let on_large = appends(&big, 8, run).await.rate;
        println!(
            "appends/s with 8 writers: empty log {on_empty:.0}, log of {large} events {on_large:.0} (ratio {:.2})",
            on_large / on_empty
        );

        let stream = StreamId::new();
        for batch in 0..10u64 {
            let expected = if batch == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(batch * 1000) };
            big.append(request(stream, expected, &format!("replay-{batch}"), 1000)).await.unwrap();
        }
        let started = Instant::now();
        let mut read = 0;
        let mut from = 1;
        loop {
            let page = big.read_stream(stream, from, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            read += page.len();
        }
        let took = started.elapsed().as_secs_f64();
        println!("replay one stream: {read} events in {took:.3} s = {:.0} events/s", read as f64 / took);

        let started = Instant::now();
        let mut read = 0u64;
        let mut from = 1;
        loop {
            let page = big.read_all(from, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            from = last.global_position + 1;
            read += page.len() as u64;
        }
        let took = started.elapsed().as_secs_f64();
        println!("replay whole log in global order: {read} events in {took:.1} s = {:.0} events/s", read as f64 / took);

        // The Merkle tree (transparency log): grown lazily at the first
        // checkpoint, then checked at every start.
        let size = big.last_position();
        let started = Instant::now();
        let root = big.tree_root(size).await.unwrap();
        let took = started.elapsed().as_secs_f64();
        println!("Merkle tree grown over {size} events in {took:.1} s = {:.0} events/s (once; later checkpoints add only the new events)", size as f64 / took);
        let started = Instant::now();
        big.check_tree(size, root).await.unwrap();
        println!(
            "start-up check of the tree against a checkpoint ({} streams): {:.2} s",
            big.stream_count().await.unwrap(),
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        for i in 0..1000u64 {
            big.prove_inclusion(1 + (i * 7919) % size, size).await.unwrap();
        }
        println!("inclusion proofs: {:.0} per second", 1000.0 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        for i in 0..1000u64 {
            big.prove_consistency(1 + (i * 7919) % size, size).await.unwrap();
        }
        println!("consistency proofs: {:.0} per second", 1000.0 / started.elapsed().as_secs_f64());
        big.close().await.unwrap();
    });
}

/// The writer counts of the append runs, baove's and the peer's.
const WRITERS: [usize; 3] = [1, 8, 64];

/// The same appends against the PostgreSQL peer at `url`, each printed
/// beside baove's (`ours`, in the order of [`WRITERS`]).
async fn beside_postgres(url: &str, ours: &[Run], baseline: f64, run: Duration) {
    let peer = match postgres::Peer::start(url).await {
        Ok(peer) => peer,
        Err(why) => {
            println!("PostgreSQL peer not measured: {why}");
            return;
        }
    };
    for (writers, ours) in WRITERS.into_iter().zip(ours) {
        let theirs = peer.appends(writers, run).await;
        println!(
            "PostgreSQL appends, {writers:>2} writers: {:>8.0} appends/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ratio to fdatasync {:.2}x  baove / PostgreSQL {:.2}x",
            theirs.rate,
            theirs.p50_ms,
            theirs.p99_ms,
            theirs.rate / baseline,
            ours.rate / theirs.rate
        );
    }
    peer.finish().await;
}

/// The bytes of the files under `dir`, as `du --apparent-size` counts them.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 1 KiB written at the end of a file then fdatasync, in a loop.
fn fdatasync_rate(dir: &Path, run: Duration) -> f64 {
    let mut file = std::fs::File::create(dir.join("fdatasync.probe")).unwrap();
    let block = [0x5au8; 1024];
    let started = Instant::now();
    let mut ops = 0u64;
    while started.elapsed() < run {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        ops += 1;
    }
    ops as f64 / started.elapsed().as_secs_f64()
}

/// About 1 KiB of JSON per event.
fn request(
    stream: StreamId,
    expected: ExpectedVersion,
    command_id: &str,
    events: usize,
) -> AppendRequest {
    let payload = event_payload();
    AppendRequest {
        stream,
        expected,
        command_id: command_id.to_owned(),
        actor: Actor {
            user_id: "bench".into(),
            role: "system".into(),
            agency_id: String::new(),
        },
        causation_id: String::new(),
        correlation_id: command_id.to_owned(),
        events: (0..events)
            .map(|i| {
                let mut payload = payload.clone();
                payload["i"] = i.into();
                NewEvent::new("BenchEvent", 1, &payload).unwrap()
            })
            .collect(),
        publish: false,
    }
}

/// About 1 KiB of JSON: the payload of every appended event, baove's and
/// the peer's.
fn event_payload() -> serde_json::Value {
    serde_json::json!({ "i": 0, "text": "x".repeat(900) })
}

struct Run {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Run {
    /// The rate and latency percentiles of `latencies`, one per append,
    /// made in `took`.
    fn of(mut latencies: Vec<Duration>, took: Duration) -> Self {
        latencies.sort_unstable();
        let pct = |p: f64| {
            latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]
                .as_secs_f64()
                * 1000.0
        };
        Self {
            rate: latencies.len() as f64 / took.as_secs_f64(),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        }
    }
}

/// `writers` tasks, each on its own stream, appending one event at a time.
async fn appends(log: &EventLog, writers: usize, run: Duration) -> Run {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new();
            let mut latencies = Vec::new();
            let mut version = 0;
            while started.elapsed() < run {
                let t = Instant::now();
                let a = log
                    .append(request(
                        stream,
                        ExpectedVersion::Exact(version),
                        &format!("{stream}-{w}-{version}"),
                        1,
                    ))
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
                version = a.last_seq;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    Run::of(all, started.elapsed())
}

/// `n` events in appends of 1,000 over 1,000 streams, 8 appends in flight.
async fn fill(log: &EventLog, n: u64) {
    let streams: Vec<StreamId> = (0..1000).map(|_| StreamId::new()).collect();
    let appends = n.div_ceil(1000);
    let mut tasks = Vec::new();
    for lane in 0..8u64 {
        let log = log.clone();
        let streams = streams.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = lane;
            while i < appends {
                let stream = streams[(i % 1000) as usize];
                log.append(request(
                    stream,
                    ExpectedVersion::Any,
                    &format!("fill-{i}"),
                    1000,
                ))
                .await
                .unwrap();
                i += 8;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
