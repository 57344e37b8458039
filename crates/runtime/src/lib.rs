//! What every baove service process shares: configuration (file + environment),
//! telemetry, the gRPC server with health and reflection, graceful shutdown on
//! SIGINT/SIGTERM, the mapping of errors to gRPC status codes, and the
//! `AuditService` over the service's own event log.
//!
//! A service's `lib.rs` calls [`node::run`] with its name, its JetStream
//! streams and the gRPC routes of its own API; its `main.rs` calls
//! [`main`] with its [`node::ServiceSpec`] and that.
//!
//! # Layout
//! - [`config`]: [`Config`], loaded from a TOML file with `BAOVE_*`
//!   environment overrides.
//! - [`telemetry`]: building and installing the tracing subscriber.
//! - [`shutdown`]: a cancellation token fired by SIGINT or SIGTERM.
//! - [`status`]: event log errors → `tonic::Status`, one mapping.
//! - [`auth`]: the token check and the role table in front of every RPC.
//! - [`convert`]: domain values ↔ proto enums several services show.
//! - [`limits`]: calls per second per caller, open server streams.
//! - [`audit`]: `baove.v1.AuditService`, hosted with every service; the
//!   records it serves (the access log, signed checkpoints) are the
//!   `baove-audit` crate's.
//! - [`node`]: start-up and shutdown order of a service process; its role
//!   (active, standby, or `auto`: the lease decides), the log stream
//!   compared at start, acknowledgements gated on the cluster's quorum.
//! - [`restore`]: a data directory rebuilt from a backup file or from the
//!   log stream (`<service> restore`).
//! - [`history`]: a case's events as typed proto messages, and [`history::tail`],
//!   the one loop that streams the log to a client (WatchCase, WatchInbox,
//!   StreamHistory).
//! - [`delivery`]: alerts sent to the webhooks (signed) and e-mail
//!   addresses of their recipient, at least once each.
//! - [`keys`]: the per-record data keys of sealed fields, wrapped under the
//!   master key, replicated in a cluster, destroyed on erasure.
//! - [`referral_keys`]: the per-referral data keys casework and referral
//!   share, in a NATS bucket, wrapped under the referral key.
//! - [`private`]: a case's private free text, and a referral's reasons and
//!   outcome, sealed in their events as they are appended, and opened as
//!   they are read.
//! - [`command`]: the one load–decide–append path of a person's command
//!   to a case or a referral, and how each failure answers.
//! - [`request`]: page sizes and page tokens, one set of rules; the
//!   newest-first page walk of ListIntakes and ListCases.
//! - [`projection`]: following the log to keep a read model.
//! - [`main`]: what a service's `main.rs` calls.
//! - [`timestamp`], [`unix_ms`]: protobuf timestamps ↔ Unix milliseconds.

pub mod audit;
pub mod auth;
pub mod command;
pub mod config;
pub mod convert;
pub mod delivery;
pub mod history;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod private;
pub mod projection;
pub mod referral_keys;
pub mod request;
pub mod restore;
pub mod shutdown;
pub mod status;
pub mod telemetry;

pub use config::Config;

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// The event log command id of a client's `request_id`. Client keys live
/// in their own namespace (`req:`), apart from the ids services give their
/// own appends (`handover:`, `deadlines:`, `offer:`...), so that no client
/// key can replay, or read the answer of, a service's own command.
#[must_use]
pub fn client_command_id(request_id: &str) -> String {
    format!("req:{}", request_id.trim())
}

/// The protobuf timestamp of Unix milliseconds.
#[must_use]
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // In 0..1_000_000_000 by construction.
        #[allow(clippy::cast_possible_truncation)]
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Unix milliseconds of a protobuf timestamp.
#[must_use]
pub fn unix_ms(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos / 1_000_000))
}

/// The command line every service binary takes.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "a baove service; settings come from --config and BAOVE_* variables"
)]
struct Args {
    /// TOML file with `listen`, `data_dir`, `nats_url` (and optionally
    /// `drain_secs`, `cache_mb`); the BAOVE_* variables of the same names
    /// override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Without a command: run the service.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Rebuild the data directory's event log from a backup file
    /// (`baove backup`), with the service stopped; see the README, "Backup
    /// and restore".
    Restore {
        /// The backup file.
        #[arg(
            long,
            required_unless_present = "from_stream",
            conflicts_with = "from_stream"
        )]
        from: Option<PathBuf>,
        /// Rebuild from the service's log stream on NATS instead (every
        /// event; intake's data keys come only from a backup file).
        #[arg(long)]
        from_stream: bool,
        /// The public key (PEM) the backup's checkpoint must be signed
        /// with; default: the data directory's own checkpoint key.
        #[arg(long)]
        trusted_key: Option<PathBuf>,
    },
}

/// The allocator of every service process: jemalloc, not glibc's malloc.
/// Measured (issue #15, closing note of stop 61) with the eventlog bench at
/// 1,000,000 events, release builds, one run each on the same day: a
/// whole-log replay at 143k events/s with glibc's malloc (perf: half its
/// CPU in `_int_malloc`, `free` and their consolidation, as sled pages its
/// cache in and out) and 222k with jemalloc as set here; filling the log at
/// 47k and 68k events/s; 64 writers at 4.9x and 6.9x the fdatasync rate.
/// The service path at 100 and 200 reports/s kept the same CPU and
/// resident memory per report; casework rebuilding its read models from
/// 100,000 reports took 12 s of CPU instead of 13–16 s. It also replaces
/// the cap on glibc's malloc arenas the services set before
/// (`MALLOC_ARENA_MAX` no longer applies to them).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts: at most 2 arenas, as the cap
/// on glibc's arenas before (jemalloc's default is 4 per core). Measured:
/// casework restarted alone on 100,000 reports with `cache_mb = 64`
/// (closing note of stop 61). `_RJEM_MALLOC_CONF` in the environment adds
/// to or overrides it.
// SAFETY: jemalloc reads this symbol (its weak `malloc_conf`, with the
// crate's `_rjem_` prefix) as a NUL-terminated string, once, at its start;
// it is never written.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 10] = b"narenas:2\0";

/// The body of a service's `main`: parses the command line, installs
/// logging to stderr, loads the configuration, arms SIGINT/SIGTERM and runs
/// `service` until it returns; or, with `restore`, rebuilds the data
/// directory of `spec` from a backup and exits.
///
/// # Errors
/// Whatever start-up or `service` fails with, with context.
pub async fn main<F, Fut>(spec: &node::ServiceSpec, service: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args = Args::parse();
    // Loaded before logging starts: it says how to log (a bad file is
    // reported by the error this returns).
    let config = Config::load(args.config.as_deref())?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (subscriber, _exporting) = telemetry::subscriber_exporting(
        std::io::stderr,
        ansi,
        config.log_format,
        config.otlp_endpoint.as_deref(),
        spec.name,
    )?;
    telemetry::install(subscriber)?;
    for key in config.unread_keys(spec.name) {
        tracing::warn!(
            key,
            service = spec.name,
            "configuration key set but not read by this service (meant for another service?)"
        );
    }
    // A partition's process restores and rebuilds that partition's log.
    let partitioned;
    let spec = if args.command.is_some() {
        let directory = config.directory()?;
        partitioned = spec.in_partition(config.partition_in(&directory)?.as_ref());
        &partitioned
    } else {
        spec
    };
    if let Some(Command::Restore {
        from_stream: true,
        trusted_key,
        ..
    }) = &args.command
    {
        let rebuilt = restore::rebuild_from_stream(spec, &config, trusted_key.as_deref())
            .await
            .context("rebuild from the log stream refused")?;
        println!(
            "rebuilt {} events of {} streams from the log stream {} into {}; every hash and chain verifies",
            rebuilt.events,
            rebuilt.streams,
            spec.log_stream.name,
            config.data_dir.join("eventlog").display()
        );
        match &rebuilt.checkpoint {
            Some(c) => println!(
                "the log's newest checkpoint (position {}, signed {}) matches the rebuilt log's Merkle tree; its signature was checked against {}",
                c.global_position,
                baove_domain::calendar::describe(c.signed_at_unix_ms),
                rebuilt.key_checked
            ),
            None => println!("the log holds no checkpoint yet"),
        }
        if !spec.side_trees.is_empty() {
            println!(
                "not on the stream: {}; restore them from a backup file, or the fields they unlock stay unreadable",
                spec.side_trees.join(", ")
            );
        }
        return Ok(());
    }
    if let Some(Command::Restore {
        from: Some(from),
        trusted_key,
        ..
    }) = args.command
    {
        let restored = restore::restore(spec, &config, &from, trusted_key.as_deref())
            .await
            .with_context(|| format!("restore from {} refused", from.display()))?;
        let c = &restored.checkpoint;
        println!(
            "restored {} events of {} streams and {} side entries into {}",
            restored.events,
            restored.streams,
            restored.side_entries,
            config.data_dir.join("eventlog").display()
        );
        println!(
            "every chain verifies; the log's Merkle tree has the root {} of the checkpoint signed {} at position {}",
            c.root_hash,
            baove_domain::calendar::describe(c.signed_at_unix_ms),
            c.global_position
        );
        println!("its signature was checked against {}", restored.key_checked);
        if let Some(position) = restored.newer_kept {
            println!(
                "WARNING: this data directory's kept checkpoint covers position {position}: {} acknowledged events are not in this backup. At start the service takes them from its log stream on NATS if it holds them (side-tree entries excepted); if not, it refuses to start until eventlog.checkpoint.json (and eventlog.witnessed.json) are moved aside (keep them: they record what was lost)",
                position - c.global_position
            );
        } else if restored.kept {
            println!(
                "the checkpoint is kept beside the log: the next start checks the log against it"
            );
        } else {
            println!(
                "the checkpoint was signed with another key than this data directory's (or it has none): the service signs new checkpoints with its own key; give auditors its public key"
            );
        }
        return Ok(());
    }
    let shutdown = shutdown::on_signals()?;
    service(config, shutdown).await
}
