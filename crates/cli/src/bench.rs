//! `baove bench`: load from a client, as users make it, with the figures a
//! benchmark prints (never asserted).
//!
//! - `reads`: `GetIntake` of one intake, or `GetCase` of one case, by N
//!   concurrent readers for S seconds, closed loop: each call is answered
//!   only once its access-log entry is durable, so this measures the read
//!   path with that write. `load` runs the same reads after its rates.
//! - `submits`: `SubmitHotlineReport` of the report in a file by N
//!   concurrent writers for S seconds, closed loop, each call a new report
//!   (its own request id) about another child (its own name and age, as
//!   `load` makes them; `--same-child` keeps the file's child, so every
//!   report is a possible duplicate of the ones before it):
//!   acknowledged reports/s and latency, the write path as a hotline sees
//!   it (in a cluster: until the quorum stored it).
//! - `load`: hotline reports open-loop at fixed rates, with the hand-over
//!   to casework and each process's CPU per report ([`load`]).

use std::time::{Duration, Instant};

use baove_proto::v1::{
    GetCaseRequest, GetIntakeRequest, case_service_client::CaseServiceClient,
    intake_service_client::IntakeServiceClient,
};
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
        /// Every report about the file's child (each received when sent),
        /// not each about another: a flood of calls about one child, where
        /// every report of the last 30 days is a possible duplicate of the
        /// next.
        #[arg(long)]
        same_child: bool,
    },
    /// Hotline reports open-loop at fixed rates: submit and hand-over
    /// (submit to CaseOpened) latency, refusals, CPU and memory per process.
    Load(load::Load),
    /// Concurrent `GetIntake` or `GetCase` calls with one token: calls/s,
    /// p50/p99 latency, errors.
    Reads {
        /// The intake to read with `GetIntake` (the token must be allowed
        /// to read it).
        #[arg(long, required_unless_present = "case", conflicts_with = "case")]
        intake: Option<String>,
        /// Or the case to read with `GetCase` (the address is casework's).
        #[arg(long)]
        case: Option<String>,
        /// Readers calling at once, each as soon as its last call returned.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// How long.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
}

/// What `reads` reads.
#[derive(Clone, Debug)]
pub enum Read {
    /// `IntakeService/GetIntake` of this intake id.
    Intake(String),
    /// `CaseService/GetCase` of this case id.
    Case(String),
}

impl Read {
    fn name(&self) -> &'static str {
        match self {
            Self::Intake(_) => "GetIntake",
            Self::Case(_) => "GetCase",
        }
    }
}

/// Runs `command` against `addr`.
///
/// # Errors
/// When the service cannot be reached or no call succeeds.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reads {
            intake,
            case,
            concurrency,
            secs,
        } => {
            let read = match (intake, case) {
                (Some(id), None) => Read::Intake(id),
                (None, Some(id)) => Read::Case(id),
                _ => anyhow::bail!("name one of --intake and --case"),
            };
            // One token: one caller, whose calls the services limit
            // (`bench load` reads with one officer per reader).
            let channel = crate::channel(addr).await?;
            let channels = vec![channel; concurrency.max(1)];
            let (started, latencies, errors) =
                reads(channels, &read, Duration::from_secs(secs)).await;
            report(read.name(), concurrency.max(1), started, latencies, &errors)
        }
        Command::Submits {
            file,
            concurrency,
            secs,
            same_child,
        } => {
            let length = Duration::from_secs(secs);
            submits(addr, &file, concurrency.max(1), length, same_child).await
        }
        Command::Load(load) => load::run(addr, load).await,
    }
}

async fn submits(
    addr: &str,
    file: &std::path::Path,
    concurrency: usize,
    length: Duration,
    same_child: bool,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut template: baove_proto::v1::SubmitHotlineReportRequest =
        crate::intake::from_json(&crate::intake::pool()?, &text)?;
    if let Some(facts) = template.report.as_mut().and_then(|r| r.facts.as_mut())
        && facts.received_at.is_none()
    {
        facts.received_at = Some(prost_types::Timestamp::from(std::time::SystemTime::now()));
    }
    let run = uuid::Uuid::now_v7().simple().to_string();
    let client = IntakeServiceClient::new(crate::channel(addr).await?);
    let serial = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let (latencies, errors) = closed_loop(concurrency, length, move |_| {
        let mut client = client.clone();
        let n = serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = if same_child {
            // One child, called about again and again, each call at its
            // own time.
            let mut request = template.clone();
            request.request_id = format!("bench-{run}-{n}");
            if let Some(facts) = request.report.as_mut().and_then(|r| r.facts.as_mut()) {
                facts.received_at =
                    Some(prost_types::Timestamp::from(std::time::SystemTime::now()));
            }
            request
        } else {
            load::varied(&template, &run, n)
        };
        async move { client.submit_hotline_report(request).await.map(drop) }
    })
    .await;
    report("submits", concurrency, started, latencies, &errors)
}

/// `read` by one reader per channel (each carrying a token allowed to read
/// it) for `length`, closed loop: when they started, each answered call's
/// latency, and the refused calls by gRPC code.
pub async fn reads<C>(
    channels: Vec<C>,
    read: &Read,
    length: Duration,
) -> (Instant, Vec<Duration>, Errors)
where
    C: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<tonic::codegen::StdError>,
    C::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let started = Instant::now();
    let (latencies, errors) = match read.clone() {
        Read::Intake(intake_id) => {
            let clients: Vec<_> = channels.into_iter().map(IntakeServiceClient::new).collect();
            closed_loop(clients.len(), length, move |k| {
                let mut client = clients[k].clone();
                let request = GetIntakeRequest {
                    intake_id: intake_id.clone(),
                };
                async move { client.get_intake(request).await.map(drop) }
            })
            .await
        }
        Read::Case(case_id) => {
            let clients: Vec<_> = channels.into_iter().map(CaseServiceClient::new).collect();
            closed_loop(clients.len(), length, move |k| {
                let mut client = clients[k].clone();
                let request = GetCaseRequest {
                    case_id: case_id.clone(),
                };
                async move { client.get_case(request).await.map(drop) }
            })
            .await
        }
    };
    (started, latencies, errors)
}

/// Refused calls by gRPC code.
pub type Errors = std::collections::BTreeMap<String, u64>;

/// `concurrency` callers, caller `k` making `call(k)` as soon as its last
/// one was answered, until `length` has passed: each answered call's
/// latency, and the refused ones by gRPC code.
async fn closed_loop<F, Fut>(
    concurrency: usize,
    length: Duration,
    call: F,
) -> (Vec<Duration>, Errors)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let until = Instant::now() + length;
    let callers: Vec<_> = (0..concurrency)
        .map(|k| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Errors::default();
                while Instant::now() < until {
                    let started = Instant::now();
                    match call(k).await {
                        Ok(()) => latencies.push(started.elapsed()),
                        Err(status) => {
                            *errors.entry(format!("{:?}", status.code())).or_default() += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = Errors::default();
    for caller in callers {
        // A caller that panicked counts as one refused call.
        let (mine, failed) = caller
            .await
            .unwrap_or_else(|_| (Vec::new(), Errors::from([("Panicked".to_owned(), 1)])));
        latencies.extend(mine);
        for (code, n) in failed {
            *errors.entry(code).or_default() += n;
        }
    }
    (latencies, errors)
}

/// Prints a closed-loop run's figures; fails when no call succeeded.
fn report(
    what: &str,
    concurrency: usize,
    started: Instant,
    latencies: Vec<Duration>,
    errors: &Errors,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_loop_gives_each_caller_its_index_and_counts_refusals_by_code() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (latencies, errors) = closed_loop(3, Duration::from_millis(50), {
            let seen = seen.clone();
            let calls = calls.clone();
            move |k| {
                seen.lock().unwrap().insert(k);
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    // A call that is not answered at once, so that each
                    // caller gives the others their turn.
                    tokio::task::yield_now().await;
                    if n.is_multiple_of(4) {
                        Err(tonic::Status::resource_exhausted("slow down"))
                    } else {
                        Ok(())
                    }
                }
            }
        })
        .await;
        assert_eq!(*seen.lock().unwrap(), [0, 1, 2].into());
        let made = calls.load(std::sync::atomic::Ordering::Relaxed);
        let refused = errors.get("ResourceExhausted").copied().unwrap_or(0);
        assert_eq!(errors.len(), usize::from(refused > 0));
        assert_eq!(latencies.len() as u64 + refused, made);
        assert_eq!(refused, made.div_ceil(4));
    }
}
