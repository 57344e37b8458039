//! `baove bench`: load from a client, as users make it, with the figures a
//! benchmark prints (never asserted).
//!
//! - `reads`: `GetIntake` of one intake by N concurrent readers for S
//!   seconds, closed loop: each call is answered only once its access-log
//!   entry is durable, so this measures the read path with that write.

use std::time::{Duration, Instant};

use baove_proto::v1::{GetIntakeRequest, intake_service_client::IntakeServiceClient};
use clap::Subcommand;

/// `baove bench ...`.
#[derive(Subcommand)]
pub enum Command {
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
    }
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
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    out!(
        "reads: {concurrency} readers, {:.1} s: {} answered ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, errors {errors:?}",
        elapsed,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        at(0.50),
        at(0.99),
    );
    if latencies.is_empty() {
        anyhow::bail!("no call succeeded: {errors:?}");
    }
    Ok(())
}
