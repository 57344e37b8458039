//! `baove bench`: load from a client, as users make it, with the figures a
//! benchmark prints (never asserted).
//!
//! - `reads`: `GetIntake` of one intake by N concurrent readers for S
//!   seconds, closed loop: each call is answered only once its access-log
//!   entry is durable, so this measures the read path with that write.
//! - `submits`: `SubmitHotlineReport` of the report in a file by N
//!   concurrent writers for S seconds, closed loop, each call a new report
//!   (its own request id): acknowledged reports/s and latency, the write
//!   path as a hotline sees it (in a cluster: until the quorum stored it).
//! - `load`: hotline reports open-loop at fixed rates, with the hand-over
//!   to casework and each process's CPU per report ([`load`]).

use std::time::{Duration, Instant};

use baove_proto::v1::{GetIntakeRequest, intake_service_client::IntakeServiceClient};
use clap::Subcommand;

pub mod load;

/// `baove bench ...`.
#[derive(Subcommand)]
pub enum Command {
    /// Concurrent `SubmitHotlineReport` calls, each a new report: acks/s,
    /// p50/p99 latency, errors.
    Submits {
        /// The report (a `SubmitHotlineReportRequest` as proto3 JSON, e.g.
        /// deploy/examples/hotline-report.json).
        #[arg(long)]
        file: std::path::PathBuf,
        /// Writers calling at once, each as soon as its last call returned.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// How long.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// Hotline reports open-loop at fixed rates: submit and hand-over
    /// (submit to CaseOpened) latency, refusals, CPU and memory per process.
    Load(load::Load),
    /// Concurrent `GetIntake` calls: calls/s, p50/p99 latency, errors.
    Reads {
        /// The intake to read (the token must be allowed to read it).
        #[arg(long)]
        intake: String,
        /// Readers calling at once, each as soon as its last call returned.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// How long.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
}

/// Runs `command` against `addr`.
///
/// # Errors
/// When the service cannot be reached or no call succeeds.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reads {
            intake,
            concurrency,
            secs,
        } => reads(addr, &intake, concurrency.max(1), Duration::from_secs(secs)).await,
        Command::Submits {
            file,
            concurrency,
            secs,
        } => submits(addr, &file, concurrency.max(1), Duration::from_secs(secs)).await,
        Command::Load(load) => load::run(addr, load).await,
    }
}

async fn submits(
    addr: &str,
    file: &std::path::Path,
    concurrency: usize,
    length: Duration,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut template: baove_proto::v1::SubmitHotlineReportRequest = crate::intake::from_json(
        &crate::intake::pool()?,
        "baove.v1.SubmitHotlineReportRequest",
        &text,
    )?;
    if let Some(facts) = template.report.as_mut().and_then(|r| r.facts.as_mut())
        && facts.received_at.is_none()
    {
        facts.received_at = Some(prost_types::Timestamp::from(std::time::SystemTime::now()));
    }
    let run = uuid::Uuid::now_v7().simple().to_string();
    let channel = crate::channel(addr).await?;
    let until = Instant::now() + length;
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..concurrency {
        let mut client = IntakeServiceClient::new(channel.clone());
        let template = template.clone();
        let run = run.clone();
        writers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
            let mut n = 0u64;
            while Instant::now() < until {
                let mut request = template.clone();
                request.request_id = format!("bench-{run}-{writer}-{n}");
                n += 1;
                let call = Instant::now();
                match client.submit_hotline_report(request).await {
                    Ok(_) => latencies.push(call.elapsed()),
                    Err(status) => *errors.entry(format!("{:?}", status.code())).or_default() += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    for writer in writers {
        let (mine, failed) = writer.await?;
        latencies.extend(mine);
        for (code, n) in failed {
            *errors.entry(code).or_default() += n;
        }
    }
    report("submits", concurrency, started, latencies, &errors)
}

/// Prints a closed-loop run's figures; fails when no call succeeded.
fn report(
    what: &str,
    concurrency: usize,
    started: Instant,
    latencies: Vec<Duration>,
    errors: &std::collections::BTreeMap<String, u64>,
) -> anyhow::Result<()> {
    let elapsed = started.elapsed().as_secs_f64();
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let quantiles = load::Quantiles::of(&mut ms);
    out!(
        "{what}: {concurrency} callers, {:.1} s: {} answered ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, errors {errors:?}",
        elapsed,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        quantiles.map_or(0.0, |q| q.p50),
        quantiles.map_or(0.0, |q| q.p99),
    );
    if latencies.is_empty() {
        anyhow::bail!("no call succeeded: {errors:?}");
    }
    Ok(())
}

async fn reads(
    addr: &str,
    intake: &str,
    concurrency: usize,
    length: Duration,
) -> anyhow::Result<()> {
    let channel = crate::channel(addr).await?;
    let until = Instant::now() + length;
    let started = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..concurrency {
        let mut client = IntakeServiceClient::new(channel.clone());
        let intake_id = intake.to_owned();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
            while Instant::now() < until {
                let call = Instant::now();
                match client
                    .get_intake(GetIntakeRequest {
                        intake_id: intake_id.clone(),
                    })
                    .await
                {
                    Ok(_) => latencies.push(call.elapsed()),
                    Err(status) => *errors.entry(format!("{:?}", status.code())).or_default() += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    for reader in readers {
        let (mine, failed) = reader.await?;
        latencies.extend(mine);
        for (code, n) in failed {
            *errors.entry(code).or_default() += n;
        }
    }
    report("reads", concurrency, started, latencies, &errors)
}
