//! `baove bench load`: hotline reports submitted open-loop at fixed rates,
//! as a province's hotline makes them, and the figures of each rate.
//!
//! Open loop: report `i` of a run is sent at `start + i / rate` whether or
//! not earlier calls have been answered, so a slow service meets the load it
//! would meet, not a load that slows down with it. Each report is a new one
//! (its own request id, a child's name and age drawn from the index), logged
//! by one of `rate / 10` hotline operators (a caller's sustained limit is
//! 20 calls/s), each call with a 10 s deadline.
//!
//! For each rate it prints:
//! - reports acknowledged per second and the errors by gRPC code;
//! - submit latency p50/p99/max (call to receipt);
//! - hand-over latency p50/p99/max: from the submit to the `CaseOpened`
//!   event casework recorded for that report, read afterwards from
//!   casework's log (`ReadAll`, as an auditor) by the event's correlation id
//!   (the intake id) and its `recorded_at` (same machine, same clock,
//!   millisecond resolution); reports acknowledged but without a case after
//!   the settle time are counted;
//! - each named process's CPU time per acknowledged report (utime + stime
//!   from `/proc/<pid>/stat`, over the run and its settle time), its
//!   context switches per acknowledged report (voluntary and not, summed
//!   over its threads in `/proc/<pid>/task/*/status`: a thread that ended
//!   during the run is not counted), and its resident and peak resident
//!   memory (`VmRSS`, `VmHWM`);
//! - under each process, its CPU per acknowledged report by thread name
//!   (`/proc/<pid>/task/*/comm` and `stat`; numbered threads such as
//!   `sled-io-3` counted together as `sled-io`): where a report's CPU goes,
//!   `tokio-rt-worker` (gRPC, NATS, the read model), each log's
//!   `<log>-write`, `<log>-sync` and `<log>-ckpt` threads, sled's
//!   `sled-io` pool; a thread that ended during the run is not counted.
//!
//! And at the end, the highest rate whose hand-over p99 stayed under 50 ms
//! with nothing refused; then `--readers` province officers (50 by default)
//! read the last report whose case opened, closed loop, for `--read-secs`
//! each: its intake (`GetIntake`), then its case (`GetCase`), each call
//! answered once its access-log record is durable: calls/s and p50/p99.
//! It asserts nothing: `deploy/local/bench.sh` starts a fresh system of
//! release binaries and runs it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use baove_proto::v1::{
    ReadAllRequest, SubmitHotlineReportRequest, audit_service_client::AuditServiceClient,
    child::Age, intake_service_client::IntakeServiceClient,
};
use baove_security::Role;
use baove_security::client::{AuthChannel, Bearer};

/// `baove bench load`'s arguments.
#[derive(clap::Args)]
pub struct Load {
    /// The report each call varies (a `SubmitHotlineReportRequest` as proto3
    /// JSON, e.g. deploy/examples/hotline-report.json).
    #[arg(long)]
    pub file: PathBuf,
    /// Reports per second, one run each, in this order.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,400")]
    pub rates: Vec<u32>,
    /// Seconds each rate is offered.
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// The key that signs tokens (the services' issuer): the bench mints the
    /// operators' tokens and an auditor's with it.
    #[arg(long)]
    pub issuer_key: PathBuf,
    /// casework's address (or its processes' addresses, `a,b`: the active
    /// one is used): its log tells when each report's case opened.
    #[arg(long)]
    pub casework: String,
    /// A process to measure, as NAME=PID (repeatable): CPU per report, memory.
    #[arg(long = "pid")]
    pub pids: Vec<String>,
    /// After a run, how long to wait for the last cases to open.
    #[arg(long, default_value_t = 60)]
    pub settle_secs: u64,
    /// Pause between two rates, so that one run's backlog is not the next's.
    #[arg(long, default_value_t = 5)]
    pub pause_secs: u64,
    /// After the rates, readers reading one of the reports at once: its
    /// intake (`GetIntake`), then its case (`GetCase`); 0 reads nothing.
    #[arg(long, default_value_t = 50)]
    pub readers: usize,
    /// Seconds each of the two reads runs.
    #[arg(long, default_value_t = 10)]
    pub read_secs: u64,
    /// The readers' agency: a province officer of the report's province
    /// (that of deploy/examples/hotline-report.json by default).
    #[arg(long, default_value = "vn:92/so-y-te")]
    pub reader_agency: String,
    /// The readers' unit (their scope).
    #[arg(long, default_value = "vn:92")]
    pub reader_unit: String,
}

/// What one submit came to.
struct Sent {
    /// Wall clock at the call, ms since the epoch.
    at_ms: i64,
    latency: Duration,
    /// The intake id, or the gRPC code that refused it.
    outcome: Result<String, tonic::Code>,
}

/// A rate's figures.
struct RunFigures {
    rate: u32,
    acked: usize,
    refused: usize,
    handover_p99_ms: Option<f64>,
    missing: usize,
}

/// Runs `baove bench load` against intake at `addr`.
///
/// # Errors
/// When the report cannot be read, a service cannot be reached, or a
/// process named with `--pid` cannot be read.
pub async fn run(addr: &str, args: Load) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let template: SubmitHotlineReportRequest =
        crate::intake::from_json(&crate::intake::pool()?, &text)?;
    let processes = args
        .pids
        .iter()
        .map(|p| Process::parse(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let issuer = baove_security::Issuer::from_file(&args.issuer_key)?;
    let mint_in =
        |user: &str, role: Role, agency: &str, units: &[String]| -> anyhow::Result<Bearer> {
            let token = issuer
                .issue(user, role, agency, units, 3600 * 4)
                .context("cannot sign a token")?;
            Bearer::new(&token, "benchmark").map_err(|e| anyhow::anyhow!(e))
        };
    let mint = |user: &str, role: Role, agency: &str| mint_in(user, role, agency, &[]);
    let intake = crate::direct_channel(addr).await?;
    let casework = crate::direct_channel(&args.casework).await?;
    let mut auditor = AuditServiceClient::new(AuthChannel::new(
        casework.clone(),
        mint("bench-auditor", Role::Auditor, "vn:92/thanh-tra")?,
    ));
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    out!(
        "bench load: {} s per rate, processes measured: {}",
        args.secs,
        if processes.is_empty() {
            "none (pass --pid NAME=PID)".to_owned()
        } else {
            processes
                .iter()
                .map(|p| format!("{}={}", p.name, p.pid))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut figures = Vec::new();
    let mut serial = 0u64;
    // The last report whose case opened: what the readers read.
    let mut sample = None;
    for (n, &rate) in args.rates.iter().enumerate() {
        if rate == 0 {
            bail!("--rates: a rate must be at least 1 report/s");
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(args.pause_secs)).await;
        }
        let operators = (rate as usize).div_ceil(10);
        let clients = (0..operators)
            .map(|k| {
                Ok(IntakeServiceClient::new(AuthChannel::new(
                    intake.clone(),
                    mint(
                        &format!("bench-op-{k}"),
                        Role::HotlineOperator,
                        "vn/tong-dai-111",
                    )?,
                )))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let from = next_position(&mut auditor).await?;
        let before = processes
            .iter()
            .map(Process::usage)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let total = rate as u64 * args.secs;
        let started = Instant::now();
        let mut calls = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
            let mut client = clients[(i as usize) % clients.len()].clone();
            let request = varied(&template, &run_id, serial);
            serial += 1;
            calls.push(tokio::spawn(async move {
                let at_ms = now_ms();
                let call = Instant::now();
                let mut request = tonic::Request::new(request);
                request.set_timeout(Duration::from_secs(10));
                let outcome = client
                    .submit_hotline_report(request)
                    .await
                    .map(|r| r.into_inner().intake_id)
                    .map_err(|s| s.code());
                Sent {
                    at_ms,
                    latency: call.elapsed(),
                    outcome,
                }
            }));
        }
        let offered_secs = started.elapsed().as_secs_f64();
        let mut sent = Vec::with_capacity(calls.len());
        for call in calls {
            sent.push(call.await?);
        }
        let answered_secs = started.elapsed().as_secs_f64();
        let submitted: HashMap<&str, i64> = sent
            .iter()
            .filter_map(|s| s.outcome.as_ref().ok().map(|id| (id.as_str(), s.at_ms)))
            .collect();
        let opened = opened_cases(
            &mut auditor,
            from,
            &submitted,
            Duration::from_secs(args.settle_secs),
        )
        .await?;
        if let Some((id, _)) = opened.iter().max_by_key(|(_, at)| **at) {
            sample = Some(id.clone());
        }
        let used = processes
            .iter()
            .zip(&before)
            .map(|(p, before)| Ok(p.usage()?.since(before)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        figures.push(print_run(
            rate,
            offered_secs,
            answered_secs,
            &sent,
            &submitted,
            &opened,
            &processes,
            &used,
        )?);
    }
    let best = figures
        .iter()
        .filter(|f| f.refused == 0 && f.missing == 0 && f.acked > 0)
        .filter(|f| f.handover_p99_ms.is_some_and(|p99| p99 < 50.0))
        .map(|f| f.rate)
        .max();
    out!(
        "reports acknowledged in all: {}",
        figures.iter().map(|f| f.acked).sum::<usize>()
    );
    match best {
        Some(rate) => out!(
            "highest rate with hand-over p99 under 50 ms and nothing refused: {rate} reports/s"
        ),
        None => out!("no rate kept hand-over p99 under 50 ms with nothing refused"),
    }
    match sample {
        Some(intake_id) if args.readers > 0 => {
            let case_id = baove_domain::case::case_id_for_intake(
                uuid::Uuid::parse_str(&intake_id).context("an intake id from casework's log")?,
            );
            // One officer per reader: the services limit each caller.
            let officers = (0..args.readers)
                .map(|k| {
                    mint_in(
                        &format!("bench-reader-{k}"),
                        Role::ProvinceOfficer,
                        &args.reader_agency,
                        std::slice::from_ref(&args.reader_unit),
                    )
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let length = Duration::from_secs(args.read_secs);
            for (read, channel) in [
                (super::Read::Intake(intake_id), intake),
                (super::Read::Case(case_id.to_string()), casework),
            ] {
                let channels = officers
                    .iter()
                    .map(|officer| AuthChannel::new(channel.clone(), officer.clone()))
                    .collect();
                let (started, latencies, errors) = super::reads(channels, &read, length).await;
                // Printed either way: a refusal here is the readers' scope
                // (--reader-unit), not a failed load run.
                if let Err(e) =
                    super::report(read.name(), args.readers, started, latencies, &errors)
                {
                    out!("{}: {e}", read.name());
                }
            }
        }
        Some(_) => {}
        None => out!("reads: no report got a case, nothing to read"),
    }
    Ok(())
}

/// casework's next global position.
async fn next_position(auditor: &mut AuditServiceClient<AuthChannel>) -> anyhow::Result<u64> {
    let head = read_all(auditor, 0, 1).await?;
    Ok(head.last_position + 1)
}

/// casework's `ReadAll` from `from`, asked again after a pause while it is
/// refused for too many calls (an auditor may make 20 a second, in bursts
/// of 200: a long run has more pages than that to read), for up to a
/// minute of refusals.
async fn read_all(
    auditor: &mut AuditServiceClient<AuthChannel>,
    from: u64,
    limit: u32,
) -> anyhow::Result<baove_proto::v1::ReadAllResponse> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = auditor
            .read_all(ReadAllRequest {
                from_position: from,
                limit,
            })
            .await;
        match answer {
            Ok(page) => return Ok(page.into_inner()),
            Err(status)
                if status.code() == tonic::Code::ResourceExhausted && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => {
                return Err(anyhow::Error::new(status).context("casework ReadAll (as an auditor)"));
            }
        }
    }
}

/// For each submitted intake id, when casework recorded its `CaseOpened`
/// (ms since the epoch), read from casework's log from `from`; waits up to
/// `settle` for the last ones.
async fn opened_cases(
    auditor: &mut AuditServiceClient<AuthChannel>,
    mut from: u64,
    submitted: &HashMap<&str, i64>,
    settle: Duration,
) -> anyhow::Result<HashMap<String, i64>> {
    let until = Instant::now() + settle;
    let mut opened = HashMap::new();
    while opened.len() < submitted.len() {
        let page = read_all(auditor, from, 1000).await?;
        for event in &page.events {
            if event.event_type == baove_domain::case::CASE_OPENED
                && submitted.contains_key(event.correlation_id.as_str())
            {
                opened.insert(event.correlation_id.clone(), event.recorded_at_unix_ms);
            }
        }
        if page.events.is_empty() {
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        from = page.next_position.max(from);
    }
    Ok(opened)
}

/// Prints one rate's figures.
#[allow(clippy::too_many_arguments)]
fn print_run(
    rate: u32,
    offered_secs: f64,
    answered_secs: f64,
    sent: &[Sent],
    submitted: &HashMap<&str, i64>,
    opened: &HashMap<String, i64>,
    processes: &[Process],
    used: &[Usage],
) -> anyhow::Result<RunFigures> {
    let mut submit_ms: Vec<f64> = sent
        .iter()
        .filter(|s| s.outcome.is_ok())
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    let mut errors: std::collections::BTreeMap<String, usize> = Default::default();
    for s in sent {
        if let Err(code) = s.outcome {
            *errors.entry(format!("{code:?}")).or_default() += 1;
        }
    }
    let mut handover_ms: Vec<f64> = submitted
        .iter()
        .filter_map(|(id, at)| opened.get(*id).map(|done| (done - at) as f64))
        .collect();
    let acked = submit_ms.len();
    let refused = sent.len() - acked;
    let missing = submitted.len() - handover_ms.len();
    let submit = Quantiles::of(&mut submit_ms);
    let handover = Quantiles::of(&mut handover_ms);
    out!(
        "rate {rate}/s: {} offered in {offered_secs:.1} s, {acked} acknowledged ({:.1}/s until the last answer at {answered_secs:.1} s), refused {refused} {errors:?}",
        sent.len(),
        acked as f64 / answered_secs,
    );
    out!("  submit    {}", submit.line());
    out!(
        "  hand-over {} (submit to CaseOpened); without a case after the settle time: {missing}",
        handover.line()
    );
    for (process, used) in processes.iter().zip(used) {
        let (rss, hwm) = process.memory()?;
        let per_report = |x: f64| if acked == 0 { 0.0 } else { x / acked as f64 };
        out!(
            "  {:<9} CPU {:.1} s = {:.2} ms per acknowledged report, {:.0} context switches per report; RSS {:.0} MiB, peak {:.0} MiB",
            process.name,
            used.cpu_secs,
            per_report(used.cpu_secs * 1000.0),
            per_report(used.switches as f64),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
        );
        let mut threads: Vec<(&String, &f64)> = used.threads.iter().collect();
        threads.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        let threads: Vec<String> = threads
            .into_iter()
            .map(|(name, secs)| (name, per_report(secs * 1000.0)))
            .filter(|(_, ms)| *ms >= 0.005)
            .map(|(name, ms)| format!("{name} {ms:.2}"))
            .collect();
        if !threads.is_empty() {
            out!(
                "            by thread, ms per report: {}",
                threads.join(", ")
            );
        }
    }
    Ok(RunFigures {
        rate,
        acked,
        refused,
        handover_p99_ms: handover.map(|q| q.p99),
        missing,
    })
}

/// p50/p99/max of a sample, in ms.
#[derive(Clone, Copy)]
pub(crate) struct Quantiles {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Quantiles {
    /// Sorts `sample`; `None` when it is empty.
    pub(crate) fn of(sample: &mut [f64]) -> Option<Self> {
        if sample.is_empty() {
            return None;
        }
        sample.sort_by(f64::total_cmp);
        let at = |q: f64| sample[((sample.len() as f64 * q) as usize).min(sample.len() - 1)];
        Some(Self {
            p50: at(0.50),
            p99: at(0.99),
            max: sample[sample.len() - 1],
        })
    }
}

trait Line {
    fn line(&self) -> String;
}

impl Line for Option<Quantiles> {
    fn line(&self) -> String {
        match self {
            Some(q) => format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                q.p50, q.p99, q.max
            ),
            None => "no sample".to_owned(),
        }
    }
}

/// A report unlike the others: its own request id, child's name and age,
/// received now.
pub(crate) fn varied(
    template: &SubmitHotlineReportRequest,
    run_id: &str,
    serial: u64,
) -> SubmitHotlineReportRequest {
    const FAMILY: [&str; 12] = [
        "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    ];
    const MIDDLE: [&str; 8] = ["Thị", "Văn", "Minh", "Ngọc", "Gia", "Thanh", "Hữu", "Khánh"];
    const GIVEN: [&str; 16] = [
        "An", "Bình", "Châu", "Dung", "Giang", "Hà", "Khoa", "Lan", "Mai", "Nam", "Oanh", "Phúc",
        "Quân", "Sơn", "Tâm", "Vy",
    ];
    let mut request = template.clone();
    request.request_id = format!("bench-{run_id}-{serial}");
    let n = serial as usize;
    if let Some(facts) = request.report.as_mut().and_then(|r| r.facts.as_mut()) {
        facts.received_at = Some(prost_types::Timestamp::from(SystemTime::now()));
        if let Some(child) = facts.child.as_mut() {
            child.full_name = format!(
                "{} {} {} {}",
                FAMILY[n % FAMILY.len()],
                MIDDLE[(n / FAMILY.len()) % MIDDLE.len()],
                GIVEN[(n / (FAMILY.len() * MIDDLE.len())) % GIVEN.len()],
                GIVEN[(n / (FAMILY.len() * MIDDLE.len() * GIVEN.len())) % GIVEN.len()],
            );
            child.age = Some(Age::EstimatedAgeYears((n % 15) as u32 + 1));
        }
    }
    request
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// CPU time and context switches of a process, so far or over a run.
#[derive(Clone, Debug)]
struct Usage {
    cpu_secs: f64,
    switches: u64,
    /// CPU seconds by thread name (numbered threads together), of the
    /// threads it has now.
    threads: std::collections::BTreeMap<String, f64>,
}

impl Usage {
    /// What was used after `before`.
    fn since(self, before: &Self) -> Self {
        let threads = self
            .threads
            .into_iter()
            .map(|(name, secs)| {
                let earlier = before.threads.get(&name).copied().unwrap_or(0.0);
                (name, (secs - earlier).max(0.0))
            })
            .collect();
        Self {
            cpu_secs: self.cpu_secs - before.cpu_secs,
            switches: self.switches.saturating_sub(before.switches),
            threads,
        }
    }
}

/// A thread's name with a trailing `-<number>` left out (`sled-io-3` is
/// `sled-io`): a pool's threads are counted together.
fn thread_group(comm: &str) -> &str {
    let comm = comm.trim();
    match comm.rsplit_once('-') {
        Some((group, n))
            if !group.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            group
        }
        _ => comm,
    }
}

/// utime + stime, in clock ticks, from a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    // After the command name in parentheses: state is field 3, utime 14,
    // stime 15 (proc(5)).
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(field(11)? + field(12)?)
}

/// Clock ticks per second, for `/proc` CPU times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf takes no pointer and only reads a constant.
    #[allow(unsafe_code)]
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    per_sec.max(1) as f64
}

/// A process named on the command line.
struct Process {
    name: String,
    pid: u32,
}

impl Process {
    fn parse(spec: &str) -> anyhow::Result<Self> {
        let Some((name, pid)) = spec.split_once('=') else {
            bail!("--pid {spec:?}: expected NAME=PID");
        };
        let pid = pid
            .trim()
            .parse()
            .with_context(|| format!("--pid {spec:?}: the PID is not a number"))?;
        let process = Self {
            name: name.trim().to_owned(),
            pid,
        };
        process.usage()?;
        Ok(process)
    }

    /// What the process used so far.
    fn usage(&self) -> anyhow::Result<Usage> {
        let (switches, threads) = self.threads()?;
        Ok(Usage {
            cpu_secs: self.cpu_secs()?,
            switches,
            threads,
        })
    }

    /// Context switches (voluntary and not) of the threads it has now, and
    /// their CPU seconds by thread name.
    fn threads(&self) -> anyhow::Result<(u64, std::collections::BTreeMap<String, f64>)> {
        let dir = format!("/proc/{}/task", self.pid);
        let per_sec = ticks_per_sec();
        let mut total = 0;
        let mut cpu = std::collections::BTreeMap::<String, f64>::new();
        for task in std::fs::read_dir(&dir).with_context(|| format!("cannot read {dir}"))? {
            let task = task?.path();
            // A thread may end between the listing and the reads.
            let (Ok(status), Ok(comm), Ok(stat)) = (
                std::fs::read_to_string(task.join("status")),
                std::fs::read_to_string(task.join("comm")),
                std::fs::read_to_string(task.join("stat")),
            ) else {
                continue;
            };
            if let Some(ticks) = stat_ticks(&stat) {
                *cpu.entry(thread_group(&comm).to_owned()).or_default() += ticks as f64 / per_sec;
            }
            total += status
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok((total, cpu))
    }

    /// CPU seconds (user + system) the process used so far, all threads.
    fn cpu_secs(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let ticks = stat_ticks(&stat).with_context(|| format!("{path}: unexpected format"))?;
        Ok(ticks as f64 / ticks_per_sec())
    }

    /// Resident and peak resident memory, KiB.
    fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_sample() {
        let mut sample: Vec<f64> = (1..=100).map(f64::from).collect();
        sample.reverse();
        let q = Quantiles::of(&mut sample).unwrap();
        assert_eq!((q.p50, q.p99, q.max), (51.0, 100.0, 100.0));
        assert!(Quantiles::of(&mut []).is_none());
    }

    #[test]
    fn each_report_is_another_child_and_request() {
        let template = SubmitHotlineReportRequest {
            report: Some(baove_proto::v1::HotlineReport {
                facts: Some(baove_proto::v1::ReportFacts {
                    child: Some(baove_proto::v1::Child::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let names: std::collections::HashSet<_> = (0..1536)
            .map(|n| {
                let r = varied(&template, "run", n);
                let child = r.report.unwrap().facts.unwrap().child.unwrap();
                (r.request_id, child.full_name)
            })
            .collect();
        assert_eq!(names.len(), 1536, "request ids and names repeat");
    }

    #[test]
    fn numbered_threads_are_counted_together() {
        assert_eq!(thread_group("sled-io-3\n"), "sled-io");
        assert_eq!(thread_group("tokio-rt-worker"), "tokio-rt-worker");
        assert_eq!(thread_group("event-write"), "event-write");
        assert_eq!(thread_group("worker-"), "worker-");
        assert_eq!(thread_group("-7"), "-7");
        assert_eq!(
            stat_ticks("12 (a) b) S 1 2 3 4 5 6 7 8 9 10 17 25 0"),
            Some(42)
        );
        assert_eq!(stat_ticks("12 (a) S 1"), None);
    }

    #[test]
    fn this_process_reads_its_own_cpu_and_memory() {
        let me = Process::parse(&format!("me={}", std::process::id())).unwrap();
        // Busy until the kernel has counted a tick of this process's CPU.
        let mut spins = 0u64;
        while me.cpu_secs().unwrap() == 0.0 {
            spins = std::hint::black_box(spins + 1);
            assert!(spins < 10_000_000_000, "no CPU time counted");
        }
        let (rss, hwm) = me.memory().unwrap();
        assert!(rss > 0 && hwm >= rss);
        // A thread that sleeps switches out at least once.
        let before = me.usage().unwrap();
        std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(20)))
            .join()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let used = me.usage().unwrap().since(&before);
        assert!(used.switches > 0);
        // The threads' CPU is counted per live thread: busy on this one
        // until the kernel has counted a tick of it (the spin above may
        // have ended on a tick of another test's thread, since gone).
        let now = loop {
            let now = me.usage().unwrap();
            if now.threads.values().sum::<f64>() > 0.0 {
                break now;
            }
            for _ in 0..1_000_000 {
                spins = std::hint::black_box(spins + 1);
            }
            assert!(spins < 10_000_000_000, "no CPU counted: {:?}", now.threads);
        };
        assert!(now.threads.values().all(|secs| *secs >= 0.0));
        assert!(Process::parse("me").is_err());
        assert!(Process::parse("me=abc").is_err());
    }
}
