//! `baove`: the command-line client of the baove services.
//!
//! # Layout
//! - `health`: ask a service's `grpc.health.v1` (optionally wait for SERVING).
//! - `history`: a stream's events through `AuditService.ReadStream`.
//! - `log`: the whole log in global order through `AuditService.ReadAll`.
//! - `verify`: a stream's hash chain through `AuditService.VerifyStream`.
//! - `verify-all`: every stream of a service's log (`AuditService.VerifyAll`).
//! - `backup`: a service's whole log into a file (`AuditService.Backup`).
//! - `replay`: a case as it stood at a seq or instant (`AuditService.ReplayCase`).
//! - `intake`: submit a report from a JSON file, show one, list them
//!   (module `intake`).
//! - `case`: show, list and watch cases, and one command per procedure step
//!   (module `case`), including `refer`.
//! - `referral`: an agency's inbox, watch, and each step of a handoff
//!   (module `referral`).
//! - `report`: the statistics (module `report`).
//! - `token`: key pairs and tokens; `audit`: the access log, checkpoints,
//!   export bundles and their offline verification (module `security`).
//! - `bench`: load as clients make it, with figures (module `bench`).
//! - `witness`: an independent witness that cosigns a service's
//!   checkpoints only while its log grows (module `witness`).
//!
//! Every call but `health` sends the token of `--token` / `BAOVE_TOKEN`
//! and the stated purpose of `--purpose` / `BAOVE_PURPOSE`.
//!
//! Everything printed goes through [`terminal_safe`] (the `out!` and
//! `err_out!` macros): text that came from the services is shown, never
//! obeyed by the terminal.

/// `println!`, with control and bidi-override characters escaped
/// ([`terminal_safe`]), through [`print_line`].
macro_rules! out {
    () => { $crate::print_line("") };
    ($($arg:tt)*) => { $crate::print_line(&$crate::terminal_safe(&format!($($arg)*))) };
}

/// `eprintln!`, with control and bidi-override characters escaped.
macro_rules! err_out {
    ($($arg:tt)*) => { eprintln!("{}", $crate::terminal_safe(&format!($($arg)*))) };
}

mod backup;
mod bench;
mod case;
mod follow;
mod intake;
mod referral;
mod report;
mod security;
mod witness;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use baove_proto::v1::{
    Direction, EventEnvelope, ReadAllRequest, ReadStreamRequest, VerifyStreamRequest,
    audit_service_client::AuditServiceClient,
};
use clap::{Parser, Subcommand};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[derive(Parser)]
#[command(
    name = "baove",
    version,
    about = "command-line client of the baove services"
)]
struct Cli {
    /// The service's gRPC address; or the addresses of one service's
    /// processes in a cluster, separated by commas: the active one is used
    /// (`baove.active` health), else the first that answers. A call the
    /// process refuses as not the active (UNAVAILABLE) is sent again to the
    /// active it names, and, with several addresses, to whichever becomes
    /// the active, for up to --wait-active.
    #[arg(
        long,
        short,
        global = true,
        default_value = "http://127.0.0.1:50051",
        env = "BAOVE_ADDR"
    )]
    addr: String,
    /// The bearer token (`baove token issue`).
    #[arg(
        long,
        global = true,
        default_value = "",
        env = "BAOVE_TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// Why you read (recorded in the access log; printable ASCII).
    #[arg(long, global = true, default_value = "", env = "BAOVE_PURPOSE")]
    purpose: String,
    /// Seconds to keep following a cluster's active while it moves (a
    /// failover) before giving the refusal as it is; 0: never resend.
    #[arg(long, global = true, default_value_t = 30, env = "BAOVE_WAIT_ACTIVE")]
    wait_active: u64,
    /// In a deployment partitioned by province: of the processes --addr
    /// names, use only those of this province's partition (its unit id,
    /// e.g. vn:92), whose health `baove.partition.<province>` is SERVING;
    /// intake refuses a report for another province, naming it. Without
    /// it, such a refusal is sent on, unchanged, to the active of the
    /// province it names, when --addr names that province's processes.
    #[arg(long, global = true, default_value = "", env = "BAOVE_PROVINCE")]
    province: String,
    #[command(subcommand)]
    command: Command,
}

/// The token and purpose every call sends, set once from the command line.
static CREDENTIALS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// How long a call follows a moving active (`--wait-active`), set once.
static WAIT_ACTIVE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// `--province`: the partition whose processes are used, if any.
static PROVINCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// Print a service's health; exit 1 unless SERVING.
    Health {
        /// Health service name: empty for the whole server, `baove.bus` for
        /// the NATS connection, or a gRPC service name.
        #[arg(long, default_value = "")]
        service: String,
        /// Keep asking until SERVING or this many seconds have passed.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Print a stream's events.
    History {
        /// The stream id (UUID).
        stream: String,
        /// First seq (0 = the start, or the head with --backward).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Newest first.
        #[arg(long)]
        backward: bool,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Print the whole log in global order.
    Log {
        /// First global position.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Recompute a stream's hash chain; exit 1 if it does not verify.
    Verify {
        /// The stream id (UUID).
        stream: String,
    },
    /// The case as it stood at a seq or an instant (casework's AuditService).
    Replay {
        /// The case id.
        case: String,
        /// After the event with this seq.
        #[arg(long, conflicts_with = "at")]
        seq: Option<u64>,
        /// After every event recorded at or before this instant (RFC 3339,
        /// e.g. 2026-11-29T03:00:00+07:00).
        #[arg(long)]
        at: Option<String>,
    },
    /// Verify every stream of a service's log; exit 1 if any is broken.
    VerifyAll,
    /// Copy a service's whole event log, while it serves, into a file
    /// (`AuditService.Backup`); `baove-<service> restore --from FILE`
    /// rebuilds a data directory from it.
    Backup {
        /// The file to write (written aside and renamed when complete).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Intake reports (IntakeService).
    #[command(subcommand)]
    Intake(intake::Command),
    /// Cases (CaseService).
    #[command(subcommand)]
    Case(case::Command),
    /// Referrals, for the receiving agency (ReferralService).
    #[command(subcommand)]
    Referral(referral::Command),
    /// Statistics (casework's ReportingService).
    #[command(subcommand)]
    Report(report::Command),
    /// Key pairs and tokens.
    #[command(subcommand)]
    Token(security::TokenCommand),
    /// Access log, checkpoints, export bundles (AuditService), and the
    /// offline check of a bundle.
    #[command(subcommand)]
    Audit(security::AuditCommand),
    /// An independent witness of a service's transparency log: cosigns its
    /// checkpoints only while the log only grows.
    #[command(subcommand)]
    Witness(witness::Command),
    /// Load as clients make it, with the figures (never asserted).
    #[command(subcommand)]
    Bench(bench::Command),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the message and its causes on one line, no backtrace:
            // this is read by an operator, not a developer.
            err_out!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = CREDENTIALS.set((cli.token.clone(), cli.purpose.clone()));
    let _ = WAIT_ACTIVE.set(Duration::from_secs(cli.wait_active));
    let _ = PROVINCE.set(cli.province.trim().to_owned());
    match cli.command {
        Command::Token(command) => security::token(command),
        Command::Report(command) => report::run(&cli.addr, command).await,
        Command::Audit(command) => security::audit(&cli.addr, command).await,
        Command::Bench(command) => bench::run(&cli.addr, command).await,
        Command::Witness(command) => witness::run(&cli.addr, command).await,
        Command::Health { service, wait } => {
            health(&cli.addr, &service, Duration::from_secs(wait)).await
        }
        Command::History {
            stream,
            from,
            backward,
            limit,
        } => {
            let mut client = AuditServiceClient::new(channel(&cli.addr).await?);
            let direction = if backward {
                Direction::Backward
            } else {
                Direction::Forward
            };
            let response = client
                .read_stream(ReadStreamRequest {
                    stream_id: stream,
                    from_seq: from,
                    limit,
                    direction: direction.into(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for event in &response.events {
                print_event(event);
            }
            if let Some(head) = response.head {
                out!(
                    "head: version {} hash {}",
                    head.version,
                    hex::encode(head.hash)
                );
            }
            Ok(())
        }
        Command::Log { from, limit } => {
            let mut client = AuditServiceClient::new(channel(&cli.addr).await?);
            let response = client
                .read_all(ReadAllRequest {
                    from_position: from,
                    limit,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for event in &response.events {
                print_event(event);
            }
            out!(
                "next position {} (last written {})",
                response.next_position,
                response.last_position
            );
            Ok(())
        }
        Command::Replay { case, seq, at } => {
            let as_of = match (seq, at) {
                (Some(seq), _) => Some(baove_proto::v1::replay_case_request::AsOf::AsOfSeq(seq)),
                (None, Some(at)) => Some(baove_proto::v1::replay_case_request::AsOf::AsOfTime(
                    at.parse::<prost_types::Timestamp>()
                        .map_err(|e| anyhow::anyhow!("--at {at}: not an RFC 3339 instant ({e})"))?,
                )),
                (None, None) => None,
            };
            let mut client = baove_proto::v1::case_service_client::CaseServiceClient::new(
                channel(&cli.addr).await?,
            );
            let replayed = client
                .replay_case(baove_proto::v1::ReplayCaseRequest {
                    case_id: case,
                    as_of,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if let Some(case) = &replayed.case {
                intake::print_json(case)?;
            }
            out!(
                "hash of the last event applied: {}",
                hex::encode(replayed.hash)
            );
            Ok(())
        }
        Command::Backup { out } => backup::run(&cli.addr, &out).await,
        Command::VerifyAll => {
            let mut client = AuditServiceClient::new(channel(&cli.addr).await?);
            let mut stream = client
                .verify_all(baove_proto::v1::VerifyAllRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            let mut broken = 0;
            while let Some(progress) = stream.message().await.map_err(status_error)? {
                for b in &progress.broken {
                    broken += 1;
                    out!(
                        "NOT intact: {} first bad seq {}: {}",
                        b.stream_id,
                        b.first_bad_seq,
                        b.reason
                    );
                }
                err_out!("checked {} of {} streams", progress.checked, progress.total);
                if progress.done {
                    if !progress.kept_checkpoint_problem.is_empty() {
                        out!("NOT intact: {}", progress.kept_checkpoint_problem);
                        bail!("the log does not match the checkpoint kept outside it");
                    }
                    break;
                }
            }
            if broken > 0 {
                bail!("{broken} stream(s) do not verify");
            }
            out!("every stream verifies");
            Ok(())
        }
        Command::Intake(command) => intake::run(&cli.addr, command).await,
        Command::Case(command) => case::run(&cli.addr, command).await,
        Command::Referral(command) => referral::run(&cli.addr, command).await,
        Command::Verify { stream } => {
            let mut client = AuditServiceClient::new(channel(&cli.addr).await?);
            let response = client
                .verify_stream(VerifyStreamRequest {
                    stream_id: stream.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if response.intact {
                let head = response.head.unwrap_or_default();
                out!(
                    "intact: {stream} version {} head hash {}",
                    head.version,
                    hex::encode(head.hash)
                );
                Ok(())
            } else {
                bail!(
                    "NOT intact: {stream} first bad seq {}: {}",
                    response.first_bad_seq,
                    response.reason
                )
            }
        }
    }
}

/// A channel to the service at `addr` (one address, or a cluster's,
/// separated by commas) that sends the token and purpose with every call
/// and follows the active ([`follow`]).
pub(crate) async fn channel(
    addr: &str,
) -> anyhow::Result<
    tonic::service::interceptor::InterceptedService<
        follow::Following,
        baove_security::client::Bearer,
    >,
> {
    let channel = plain_channel(addr).await?;
    let (token, purpose) = CREDENTIALS.get().cloned().unwrap_or_default();
    if token.is_empty() {
        bail!("no token: pass --token or set BAOVE_TOKEN (mint one with `baove token issue`)");
    }
    let bearer = baove_security::client::Bearer::new(&token, &purpose)
        .map_err(|e| anyhow::anyhow!("--token/--purpose: {e}"))?;
    Ok(tonic::service::interceptor::InterceptedService::new(
        channel, bearer,
    ))
}

/// A channel without a token to the service at `addr`, following its
/// active ([`follow`]).
pub(crate) async fn plain_channel(addr: &str) -> anyhow::Result<follow::Following> {
    let addresses = addresses(addr);
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let (chosen, channel) = match refs.as_slice() {
        [only] => ((*only).to_owned(), connect(only).await?),
        several => active_of(several).await?,
    };
    let wait = WAIT_ACTIVE.get().copied().unwrap_or_default();
    Ok(follow::Following::new(addresses, chosen, channel, wait))
}

/// A channel to the process at `addr` chosen as [`plain_channel`] chooses
/// it, that does not follow a moving active: for the load bench, whose
/// figures must not include resent calls.
pub(crate) async fn direct_channel(addr: &str) -> anyhow::Result<Channel> {
    let addresses = addresses(addr);
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    match refs.as_slice() {
        [only] => connect(only).await,
        several => Ok(active_of(several).await?.1),
    }
}

/// The addresses of `--addr`, separated by commas.
fn addresses(addr: &str) -> Vec<String> {
    addr.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn connect(addr: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(addr.to_owned())
        .with_context(|| format!("invalid address {addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .with_context(|| format!("cannot reach {addr}"))
}

/// Whether the process on `channel` says SERVING for health `service`
/// (within 2 s).
async fn serving(channel: &Channel, service: String) -> bool {
    let status = tokio::time::timeout(
        Duration::from_secs(2),
        HealthClient::new(channel.clone()).check(HealthCheckRequest { service }),
    )
    .await;
    matches!(status, Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32)
}

/// Of the processes of one service (a cluster's), the one whose
/// `baove.active` health is SERVING; else the first that answers (a
/// standby serves reads and names the active when it refuses a write).
/// With `--province`, only the processes of that province's partition
/// count.
async fn active_of(addresses: &[&str]) -> anyhow::Result<(String, Channel)> {
    active_in(addresses, PROVINCE.get().map_or("", String::as_str)).await
}

/// `--province`: the partition its processes are chosen from, if one was
/// given (then a refusal naming another partition is shown as it is).
pub(crate) fn province() -> Option<&'static str> {
    PROVINCE.get().map(String::as_str).filter(|p| !p.is_empty())
}

/// [`active_of`] among the processes of `province`'s partition (any
/// process when `province` is empty).
pub(crate) async fn active_in(
    addresses: &[&str],
    province: &str,
) -> anyhow::Result<(String, Channel)> {
    let mut reachable = None;
    let mut problems = Vec::new();
    for addr in addresses {
        let channel = match connect(addr).await {
            Ok(channel) => channel,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        if !province.is_empty() && !serving(&channel, format!("baove.partition.{province}")).await {
            problems.push(format!("{addr} keeps another partition than {province}'s"));
            continue;
        }
        if serving(&channel, "baove.active".into()).await {
            return Ok(((*addr).to_owned(), channel));
        }
        reachable.get_or_insert(((*addr).to_owned(), channel));
    }
    if addresses.is_empty() {
        problems.push("--addr names no address".to_owned());
    }
    reachable.ok_or_else(|| anyhow::anyhow!("no address answers: {}", problems.join("; ")))
}

/// A refused request: the fields to fix, the procedure's rule, or the
/// version conflict, in words for the person at the keyboard.
pub(crate) fn refusal(status: &tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    if let Some(bad) = status.get_details_bad_request() {
        let mut text = String::from("refused; nothing was stored or changed. Fix these fields:");
        for v in bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
        return anyhow::anyhow!(text);
    }
    match status.code() {
        tonic::Code::FailedPrecondition => anyhow::anyhow!("not allowed now: {}", status.message()),
        tonic::Code::Aborted => anyhow::anyhow!(
            "{} (`baove case show` prints the case as it is now)",
            status.message()
        ),
        _ => status_error(status.clone()),
    }
}

/// Writes one line to standard output. A reader that went away (`baove
/// intake list | head`) ends the program quietly with success, as other
/// command-line tools do, instead of a panic.
pub(crate) fn print_line(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `text` with every control character but line break and tab, and every
/// bidirectional override, written as an escape (`\u{1b}`): stored data
/// (a name, a reason, a payload) can then never move the cursor, recolour
/// the terminal, or make what follows read backwards.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c != '\n' && c != '\t' && baove_domain::text::is_forbidden(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

pub(crate) fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

pub(crate) fn print_event(e: &EventEnvelope) {
    let actor = e.actor.clone().unwrap_or_default();
    out!(
        "#{pos} {stream} seq {seq} {ty} v{v} at {at} by {user} ({role}) {payload}",
        pos = e.global_position,
        stream = e.stream_id,
        seq = e.seq,
        ty = e.event_type,
        v = e.schema_version,
        at = e.recorded_at_unix_ms,
        user = actor.user_id,
        role = actor.role,
        payload = e.payload_json,
    );
}

async fn health(addr: &str, service: &str, wait: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    let label = if service.is_empty() {
        "server"
    } else {
        service
    };
    loop {
        let answer = match direct_channel(addr).await {
            Ok(channel) => HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .map(|r| r.into_inner().status())
                .map_err(status_error),
            Err(e) => Err(e),
        };
        match answer {
            Ok(ServingStatus::Serving) => {
                out!("{addr} {label}: SERVING");
                return Ok(());
            }
            Ok(other) if Instant::now() >= deadline => {
                bail!("{addr} {label}: {}", other.as_str_name())
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_text_cannot_drive_the_terminal() {
        assert_eq!(super::terminal_safe("Nguyễn Thị Bé\n"), "Nguyễn Thị Bé\n");
        let shown = super::terminal_safe("Bé\u{1b}[2J\u{202E}abc\u{0}");
        assert_eq!(shown, "Bé\\u{1b}[2J\\u{202e}abc\\u{0}");
        assert!(!shown.chars().any(char::is_control));
    }
}
