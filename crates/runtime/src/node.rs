//! One service process, from start-up to a clean stop.
//!
//! Start-up order:
//! 1. open the service's event log (`<data_dir>/eventlog`), compare it with
//!    its log stream and take what the stream holds beyond it (in a
//!    cluster, first setting aside what the stream never stored: docs/
//!    cluster.md, "Rejoining"); open the access log,
//!    and check each against the checkpoint kept outside its sled files
//!    ([`crate::checkpoint::Checkpointer::check_kept`]): a log shorter than
//!    what was acknowledged, or changed, is refused with an error naming
//!    the data directory and what to restore;
//! 2. bind the gRPC port and serve health, reflection, `AuditService` and
//!    the service's own API, health SERVING as soon as the log is open;
//!    every call but health and reflection passes the token check and the
//!    role table first ([`crate::auth`]);
//! 3. in the background: connect to NATS with retries, create the
//!    service's JetStream streams (and make them again within a second
//!    whenever they are missing: the bus lost its store), run the outbox
//!    relay and the service's consumers. Health service [`BUS_HEALTH`] is
//!    SERVING while NATS is connected and every bus part (streams, relay,
//!    consumers) makes progress; the first part that does not, and why, is
//!    logged.
//!
//! Requests are accepted and stored while NATS is away: the outbox keeps
//! what is to be published until NATS returns. A hotline operator's report
//! must not wait for the bus.
//!
//! Shutdown (SIGINT/SIGTERM): health goes NOT_SERVING for every service
//! name first; the server stops accepting and waits up to `drain_secs` for
//! in-flight requests (appends finish); the relay stops; a checkpoint of
//! each log is signed and kept outside it; the logs are closed, which
//! flushes them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use baove_bus::StreamSpec;
use baove_eventlog::EventLog;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::Config;
use crate::audit::AuditApi;

/// Health service name that reports the NATS connection and stream.
pub const BUS_HEALTH: &str = "baove.bus";

/// Health service name that is SERVING on the process that takes writes
/// (the active) and NOT_SERVING on a standby: what a load balancer routes
/// writes by.
pub const ACTIVE_HEALTH: &str = "baove.active";

/// What makes one service different from another at start-up.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSpec {
    /// Short name: `intake`, `casework`, `referral` (NATS client name, logs).
    pub name: &'static str,
    /// The JetStream stream its events are published to.
    pub stream: StreamSpec,
    /// The stream every event of its log is copied to, in order
    /// ([`baove_bus::logstream`]).
    pub log_stream: StreamSpec,
    /// Other streams it publishes to and keeps (the alert stream).
    pub other_streams: &'static [StreamSpec],
    /// Fully qualified gRPC service names of its own API, for health.
    pub grpc_services: &'static [&'static str],
    /// The durable names of its consumers, every one of which its active
    /// runs: each counts as starting in `baove.bus` from the moment the
    /// process starts its bus parts, and their parked messages are counted
    /// in the metrics.
    pub consumers: &'static [&'static str],
    /// The side trees of its log that a backup carries
    /// ([`baove_eventlog::EventLog::side_tree`]): intake's `data-keys`.
    pub side_trees: &'static [&'static str],
    /// Whether the service copies its side trees into the cluster itself
    /// when `stream_replicas` > 1 (intake: its data keys in
    /// [`baove_bus::kv::DATA_KEYS`], written before a report is
    /// acknowledged), so that a standby can take over.
    pub side_trees_replicated: bool,
}

/// What a service hands its parts at start-up.
#[derive(Clone)]
pub struct NodeContext {
    /// The service's event log.
    pub log: EventLog,
    /// Fired at shutdown, after the gRPC server has drained: background
    /// tasks stop on it.
    pub cancel: CancellationToken,
    /// Fired when shutdown begins, before draining: long-lived server
    /// streams end on it so that the drain does not wait for them.
    pub stopping: CancellationToken,
    /// The configuration.
    pub config: Config,
    /// The access log: handlers record each read of a case and each
    /// refusal of scope here.
    pub access: crate::access::AccessLog,
    /// The reference data (units and agencies), loaded once at start.
    pub directory: Arc<baove_domain::reference::Directory>,
    /// Whether this process is the active (takes writes): false on a
    /// standby, and on an `auto` process until it takes the lease. Writers
    /// of the service's own (schedulers) wait for it.
    pub active: watch::Receiver<bool>,
    /// The bus once connected (any role): for what a service keeps on
    /// NATS besides its streams (intake's replicated data keys).
    pub bus: watch::Receiver<Option<baove_bus::Bus>>,
}

impl NodeContext {
    /// Spawns `task` once this process is the active (at once on an active;
    /// never on a standby; when an `auto` process takes the lease), unless
    /// the service stops first: a writer of the service's own (a scheduler)
    /// must not run on a standby.
    pub fn spawn_when_active<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        when_active(self.active.clone(), self.cancel.clone(), task)
    }
}

fn when_active<F>(
    mut active: watch::Receiver<bool>,
    cancel: CancellationToken,
    task: F,
) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => return,
            became = active.wait_for(|a| *a) => if became.is_err() { return },
        }
        task.await;
    })
}

/// What runs once NATS is connected and the service's stream exists: it
/// gets the bus (JetStream, and where its parts report their health) and
/// runs until [`NodeContext::cancel`] fires.
pub type OnBus = Box<dyn FnOnce(baove_bus::Bus) -> BoxFuture + Send>;

/// A boxed future, for [`OnBus`].
pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The service's own parts, built on its log.
#[derive(Default)]
pub struct Parts {
    /// Its gRPC API.
    pub routes: Routes,
    /// Tasks it started (projections...); awaited at shutdown after cancel.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Its consumers and publishers, started once NATS is there.
    pub on_bus: Option<OnBus>,
    /// How it seals and opens a case's private text (casework), so that
    /// `AuditService.StreamHistory` opens it as the service's own reads do.
    pub private: Option<Arc<crate::private::PrivateText>>,
}

/// Runs the service until `shutdown` fires, then stops cleanly. `build`
/// makes the service's own parts from its event log.
///
/// # Errors
/// When the event log cannot be opened, the port cannot be bound, the parts
/// cannot be built, or the server fails; each error says which and where.
pub async fn run(
    spec: ServiceSpec,
    config: Config,
    shutdown: CancellationToken,
    build: impl FnOnce(&NodeContext) -> anyhow::Result<Parts>,
) -> anyhow::Result<()> {
    let log_dir = config.data_dir.join("eventlog");
    let options = baove_eventlog::Options {
        cache_capacity: config.cache_mb.saturating_mul(1024 * 1024),
        ..Default::default()
    };
    let verifier = baove_security::Verifier::from_files(&config.auth_public_keys)
        .context("failed to load the token public keys (auth_public_keys)")?
        .with_max_lifetime(config.token_max_lifetime_secs);
    let credentials = config
        .nats_credentials()
        .context("failed to read the NATS credentials")?;
    // A role it cannot play is refused before anything is opened.
    let role = config.role;
    let standby = role != crate::config::Role::Active;
    if standby
        && !spec.side_trees.is_empty()
        && !(spec.side_trees_replicated && config.stream_replicas > 1)
    {
        anyhow::bail!(
            "{} cannot run as a standby with stream_replicas = {}: its side trees ({}) are not on the log stream and are copied into the cluster only with stream_replicas of 2 or more, so a standby promoted to active could not read what they unlock (intake: the reports' confidential fields; casework: the cases' private text). Run it as the active only, or in a cluster",
            spec.name,
            config.stream_replicas,
            spec.side_trees.join(", ")
        );
    }
    let log = open_log(&log_dir, &options, &config).await?;
    // Never serve a log shorter than its log stream (sled recovered an
    // earlier state): take the missing events from the stream first. In a
    // cluster, a tail the stream never stored is set aside first (the log
    // is reopened then: nothing else may hold it yet).
    let log = catch_up_at_start(&spec, &config, log, &options).await?;
    let access_dir = config.data_dir.join("accesslog");
    let access_log = EventLog::open_with(
        &access_dir,
        baove_eventlog::Options {
            // Appended to and scanned backward: a small cache does.
            cache_capacity: 64 * 1024 * 1024,
            name: "access",
            ..Default::default()
        },
    )
    .await
    .with_context(|| {
        format!(
            "failed to open the access log in {} (its sled files may be damaged). Restore the data directory {} from a backup, then start again",
            access_dir.display(),
            config.data_dir.display()
        )
    })?;
    let access = crate::access::AccessLog::new(access_log.clone());
    let access_checkpoints = crate::checkpoint::Checkpointer::open(
        access_log.clone(),
        &format!("{}.access", spec.name),
        &format!("{}/{}.access", config.log_origin, spec.name),
        config.checkpoint_key_file.as_deref(),
        &config.data_dir,
        config.clock(),
    )
    .context("failed to open the checkpoint signing key")?
    .unpublished();
    let checkpoints = crate::checkpoint::Checkpointer::open(
        log.clone(),
        spec.name,
        &format!("{}/{}", config.log_origin, spec.name),
        config.checkpoint_key_file.as_deref(),
        &config.data_dir,
        config.clock(),
    )
    .context("failed to open the checkpoint signing key")?;
    if standby {
        // It follows the active's log stream; it never writes its own.
        log.follow_only(config.active_addr.as_deref().unwrap_or_default());
    }
    // In a cluster a command is acknowledged only once the log stream's
    // quorum holds it: the log relay tells how far that is.
    let (reached_tx, reached) = watch::channel(0);
    let (active_tx, active_rx) = watch::channel(!standby);
    if config.stream_replicas > 1 {
        log.gate_acks(baove_eventlog::AckGate {
            reached,
            wait: REPLICATION_WAIT,
        });
    }
    // Never serve a log shorter than what was acknowledged, or changed.
    for (kept, what) in [
        (&checkpoints, "event log"),
        (&access_checkpoints, "access log"),
    ] {
        if let Some(checkpoint) = kept
            .check_kept()
            .await
            .with_context(|| format!("refusing to start on a damaged {what}"))?
        {
            tracing::info!(
                log = what,
                position = checkpoint.global_position,
                "the log reaches its kept checkpoint and matches it"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let listening = listener
        .local_addr()
        .with_context(|| format!("failed to read the address bound for {}", config.listen))?;
    if let Some(file) = &config.addr_file {
        // Written only now that the port is ours: whoever waits for the file
        // (a supervisor, a test with port 0) then talks to this process.
        // Written aside and renamed, so a reader never sees half of it.
        let aside = file.with_extension("tmp");
        std::fs::write(&aside, listening.to_string())
            .and_then(|()| std::fs::rename(&aside, file))
            .with_context(|| format!("failed to write the address file {}", file.display()))?;
    }

    // Before any health is set: its gauges record from the start.
    if let Some(listen) = config.metrics_listen {
        crate::metrics::install(listen)?;
        tracing::info!(listen = %listen, "serving metrics");
    }
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut names: Vec<&str> = vec!["", "baove.v1.AuditService"];
    names.extend(spec.grpc_services);
    set_all(&reporter, &names, ServingStatus::Serving).await;
    set_status(&reporter, BUS_HEALTH, ServingStatus::NotServing).await;
    // Where a load balancer sends writes: SERVING on the active only.
    set_status(
        &reporter,
        ACTIVE_HEALTH,
        if standby {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        },
    )
    .await;

    // Reflection advertises what this process serves, not every service
    // of the contract: a client that lists services here can call each.
    let reflection = || {
        names
            .iter()
            .filter(|name| !name.is_empty())
            .chain(&[
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ])
            .fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(baove_proto::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
                |builder, name| builder.with_service_name(*name),
            )
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("failed to build the reflection service")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("failed to build the reflection service")?;

    let directory = Arc::new(config.directory()?);
    let background = CancellationToken::new();
    let (bus_tx, bus_rx) = watch::channel(None);
    let context = NodeContext {
        log: log.clone(),
        cancel: background.clone(),
        stopping: shutdown.clone(),
        config: config.clone(),
        access: access.clone(),
        directory: directory.clone(),
        active: active_rx.clone(),
        bus: bus_rx,
    };
    let parts = build(&context).with_context(|| format!("failed to start {}", spec.name))?;

    // A standby's log is the active's: only the active signs it.
    let checkpointing = when_active(
        active_rx.clone(),
        background.clone(),
        checkpoints.clone().run(
            Duration::from_secs(config.checkpoint_secs),
            background.clone(),
        ),
    );
    // The Merkle tree grows as the log does, on every process (a standby's
    // too), so that a checkpoint, and the fence checkpoint of a standby
    // taking over, add only the newest events.
    let tree_growing = tokio::spawn(grow_tree(log.clone(), background.clone()));
    let sampling = tokio::spawn(crate::metrics::sample(
        log.clone(),
        access_log.clone(),
        spec.consumers.iter().map(|c| (*c).to_owned()).collect(),
        config.clock(),
        Duration::from_secs(5),
        background.clone(),
    ));
    let access_checkpointing = tokio::spawn(access_checkpoints.clone().run(
        Duration::from_secs(config.checkpoint_secs),
        background.clone(),
    ));
    let stop_serving = CancellationToken::new();
    let routes = parts
        .routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AuditApi::new(log.clone(), access.clone(), checkpoints.clone())
                .with_side_trees(spec.side_trees)
                .with_private(parts.private.clone())
                .into_server(),
        );
    let router = tonic::transport::Server::builder()
        .layer(crate::auth::AuthLayer::new(crate::auth::Gate::new(
            verifier,
            access.clone(),
            crate::limits::Limits::new(config.limits()),
            directory,
        )))
        .add_routes(routes);
    let stop = stop_serving.clone();
    let mut server = tokio::spawn(
        router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            stop.cancelled().await
        }),
    );
    tracing::info!(service = spec.name, listen = %listening, data_dir = %config.data_dir.display(), "serving");

    let bus = tokio::spawn(bus_task(
        spec,
        NatsSettings {
            url: config.nats_url.clone(),
            replicas: config.stream_replicas,
            credentials,
            reached: reached_tx,
            role,
            active: active_tx,
            shutdown: shutdown.clone(),
            address: format!("http://{listening}"),
            checkpoints: checkpoints.clone(),
            bus: bus_tx,
        },
        log.clone(),
        reporter.clone(),
        background.clone(),
        parts.on_bus,
    ));

    let server_result = tokio::select! {
        () = shutdown.cancelled() => None,
        result = &mut server => Some(result),
    };
    set_all(&reporter, &names, ServingStatus::NotServing).await;
    set_status(&reporter, BUS_HEALTH, ServingStatus::NotServing).await;
    set_status(&reporter, ACTIVE_HEALTH, ServingStatus::NotServing).await;
    let server_result = match server_result {
        Some(result) => result,
        None => {
            stop_serving.cancel();
            match tokio::time::timeout(config.drain(), &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        drain_secs = config.drain_secs,
                        "in-flight requests did not finish; closing them"
                    );
                    server.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    background.cancel();
    if let Err(e) = bus.await {
        tracing::error!(error = %e, "bus task failed");
    }
    for task in [checkpointing, access_checkpointing, sampling, tree_growing] {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "checkpoint task failed");
        }
    }
    for task in parts.tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "background task failed");
        }
    }
    // A last checkpoint, kept outside the logs: the next start checks that
    // nothing acknowledged until now is missing.
    for (kept, what) in [
        (&checkpoints, "event log"),
        (&access_checkpoints, "access log"),
    ] {
        if what == "event log" && log.follows().is_some() {
            continue;
        }
        if let Err(e) = kept.sign_if_moved().await {
            tracing::error!(log = what, error = %e, "cannot sign the checkpoint at stop");
        }
    }
    log.close()
        .await
        .context("failed to flush the event log on shutdown")?;
    access_log
        .close()
        .await
        .context("failed to flush the access log on shutdown")?;
    drop(log);
    server_result
        .context("the gRPC server task failed")?
        .context("the gRPC server failed")?;
    tracing::info!(service = spec.name, "stopped");
    Ok(())
}

async fn set_all(reporter: &HealthReporter, names: &[&str], status: ServingStatus) {
    for name in names {
        set_status(reporter, name, status).await;
    }
}

/// Sets the health of `name` (`""`: the process) and its gauge
/// ([`crate::metrics::HEALTH_SERVING`]`{service}`, 1 when SERVING, with
/// `process` for `""`), so that an alert sees what a load balancer sees.
async fn set_status(reporter: &HealthReporter, name: &str, status: ServingStatus) {
    let label = if name.is_empty() { "process" } else { name };
    metrics::gauge!(crate::metrics::HEALTH_SERVING, "service" => label.to_owned()).set(
        if status == ServingStatus::Serving {
            1.0
        } else {
            0.0
        },
    );
    reporter.set_service_status(name, status).await;
}

/// How long an append waits, in a cluster (`stream_replicas` > 1), for
/// its log stream's quorum to store it before the caller gets UNAVAILABLE.
const REPLICATION_WAIT: Duration = Duration::from_secs(5);

/// How long a starting service waits for NATS to compare its log with its
/// log stream before starting without (the kept checkpoint still checks
/// it; the log relay compares again once NATS is there).
const STREAM_CHECK_WAIT: Duration = Duration::from_secs(10);

/// Opens the service's event log in `dir`.
async fn open_log(
    dir: &std::path::Path,
    options: &baove_eventlog::Options,
    config: &Config,
) -> anyhow::Result<EventLog> {
    EventLog::open_with(dir, options.clone()).await.with_context(|| {
        format!(
            "failed to open the event log in {} (its sled files may be damaged). Restore the data directory {} from a backup (README \"When a disk is damaged\"), then start again",
            dir.display(),
            config.data_dir.display()
        )
    })
}

/// Compares the log with its log stream and imports what the stream holds
/// beyond it ([`baove_bus::logstream::catch_up`]). In a cluster
/// (`stream_replicas` above 1), when the stream holds other events than the
/// log from some position on, the log's events from there were never
/// stored by the cluster, so never acknowledged nor handed on (this process
/// died, or was cut off, while another took over the writes): they are set
/// aside ([`baove_eventlog::set_aside_after`]), with the kept checkpoint
/// that covers them, and the log takes the stream's events instead.
/// `log` must be the only handle to the log: it is closed and reopened
/// then. Returns the log to go on with.
///
/// # Errors
/// When the log and the stream hold different events at one position
/// outside a cluster, or the stream's events do not verify: the service
/// must not serve.
async fn catch_up_at_start(
    spec: &ServiceSpec,
    config: &Config,
    log: EventLog,
    options: &baove_eventlog::Options,
) -> anyhow::Result<EventLog> {
    let cancel = CancellationToken::new();
    let timer = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(STREAM_CHECK_WAIT).await;
            cancel.cancel();
        })
    };
    let credentials = config
        .nats_credentials()
        .context("failed to read the NATS credentials")?;
    let connected = baove_bus::connect_as(
        &config.nats_url,
        &format!("baove-{}-start", spec.name),
        credentials,
        &cancel,
        None,
    )
    .await;
    timer.abort();
    let client = match connected {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, wait_secs = STREAM_CHECK_WAIT.as_secs(), "NATS not reachable at start: the log is not compared with its log stream now (the kept checkpoint still is; the log relay compares once NATS is there)");
            return Ok(log);
        }
    };
    let js = async_nats::jetstream::new(client);
    if js.get_stream(spec.log_stream.name).await.is_err() {
        tracing::info!(stream = spec.log_stream.name, "no log stream yet");
        return Ok(log);
    }
    let log = match baove_bus::logstream::catch_up(&log, &js, spec.log_stream).await {
        Err(baove_bus::BusError::Diverged { position, .. }) if config.stream_replicas > 1 => {
            let log = set_aside_unstored(spec, config, log, options, &js, position).await?;
            match baove_bus::logstream::catch_up(&log, &js, spec.log_stream).await {
                Ok(imported) => {
                    tracing::warn!(
                        stream = spec.log_stream.name,
                        imported,
                        position = log.last_position(),
                        "took the log stream's events in place of those set aside"
                    );
                    return Ok(log);
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(e)).with_context(|| {
                        format!(
                            "the event log in {} still does not continue its log stream after setting aside what the cluster never stored; refusing to start",
                            log.path().display()
                        )
                    });
                }
            }
        }
        outcome => {
            checked_at_start(spec, &log, outcome)?;
            log
        }
    };
    Ok(log)
}

/// What a catch-up at start found, said, or refused.
fn checked_at_start(
    spec: &ServiceSpec,
    log: &EventLog,
    outcome: Result<u64, baove_bus::BusError>,
) -> anyhow::Result<()> {
    match outcome {
        Ok(0) => {
            tracing::info!(stream = spec.log_stream.name, position = log.last_position(), "the log reaches the end of its log stream");
            Ok(())
        }
        Ok(imported) => {
            tracing::warn!(
                stream = spec.log_stream.name,
                imported,
                position = log.last_position(),
                "the log ended before its log stream (sled recovered an earlier state, or an older copy was put back): imported the missing events from the stream, every hash verified"
            );
            if !spec.side_trees.is_empty() {
                tracing::error!(
                    side_trees = ?spec.side_trees,
                    imported,
                    "the side trees are not on the log stream: entries written with the imported events are missing (for intake: the data keys of the reports among them, whose confidential fields cannot be read). Merge them from a backup taken after those events, if there is one"
                );
            }
            Ok(())
        }
        Err(e @ baove_bus::BusError::Diverged { .. }) => Err(anyhow::anyhow!(e))
            .with_context(|| format!("refusing to start on the event log in {}", log.path().display())),
        Err(baove_bus::BusError::Log(e)) => Err(anyhow::anyhow!(e)).with_context(|| {
            format!(
                "the events of log stream {} do not continue the event log in {}; refusing to start",
                spec.log_stream.name,
                log.path().display()
            )
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the log stream at start; starting on the kept checkpoint's word");
            Ok(())
        }
    }
}

/// Sets aside the log's events from where it and its log stream part
/// (found from `diverged`, the position a catch-up saw differ), closing and
/// reopening the log around it; see [`catch_up_at_start`].
async fn set_aside_unstored(
    spec: &ServiceSpec,
    config: &Config,
    log: EventLog,
    options: &baove_eventlog::Options,
    js: &async_nats::jetstream::Context,
    diverged: u64,
) -> anyhow::Result<EventLog> {
    let from = baove_bus::logstream::fork_point(&log, js, spec.log_stream)
        .await
        .context("cannot find where the event log and its log stream part")?
        .unwrap_or(diverged);
    let last = log.last_position();
    let dir = log.path().to_path_buf();
    log.close().await.context("closing the event log")?;
    drop(log);
    let now = (config.clock())();
    let reason = format!(
        "positions {from} to {last} were written by this process but never stored by the cluster: its log stream {} holds other events from position {from} on (another process took over the writes), so they were never acknowledged nor handed on",
        spec.log_stream.name
    );
    let moved = baove_eventlog::set_aside_after(&dir, from - 1, &reason, now)
        .await
        .with_context(|| {
            format!(
                "cannot set aside the events of {} the cluster never stored",
                dir.display()
            )
        })?;
    let checkpoint = crate::checkpoint::set_aside_kept(&dir, from - 1, now).await?;
    tracing::error!(
        stream = spec.log_stream.name,
        from,
        last,
        moved,
        kept_checkpoint_moved_to = ?checkpoint,
        "set aside the events this process wrote that the cluster never stored (an auditor reads them in the log's set-aside tree); taking the cluster's events in their place"
    );
    open_log(&dir, options, config).await
}

/// How a service reaches NATS.
struct NatsSettings {
    /// One URL, or several of a cluster separated by commas.
    url: String,
    /// Copies of each stream it creates.
    replicas: usize,
    /// Its NATS user, when configured.
    credentials: Option<baove_bus::Credentials>,
    /// Told how far the log stream holds the log.
    reached: watch::Sender<u64>,
    /// Active, standby, or auto (lease).
    role: crate::config::Role,
    /// Set to true when this process becomes the active.
    active: watch::Sender<bool>,
    /// Cancelled to stop the process (an active that lost its lease).
    shutdown: CancellationToken,
    /// This process's gRPC address, held in the lease.
    address: String,
    /// Signs the checkpoint that fences the log stream on taking over.
    checkpoints: crate::checkpoint::Checkpointer,
    /// Told the bus once connected.
    bus: watch::Sender<Option<baove_bus::Bus>>,
}

/// How often the Merkle tree is grown to the log's end.
const TREE_EVERY: Duration = Duration::from_secs(2);

/// Grows `log`'s Merkle tree to its end every [`TREE_EVERY`] while it
/// moved, until `cancel`.
async fn grow_tree(log: EventLog, cancel: CancellationToken) {
    let mut grown = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(TREE_EVERY) => {}
        }
        let last = log.last_position();
        if last <= grown {
            continue;
        }
        match log.tree_root(last).await {
            Ok(_) => grown = last,
            Err(e) => tracing::warn!(error = %e, "cannot grow the log's Merkle tree"),
        }
    }
}

/// Connects to NATS, keeps the streams, relays the outbox and the log, runs the
/// service's `on_bus` part, and keeps the [`BUS_HEALTH`] status true to the
/// connection and to every bus part's progress.
async fn bus_task(
    spec: ServiceSpec,
    nats: NatsSettings,
    log: EventLog,
    reporter: HealthReporter,
    cancel: CancellationToken,
    on_bus: Option<OnBus>,
) {
    let (connected_tx, mut connected) = watch::channel(false);
    let client = match baove_bus::connect_as(
        &nats.url,
        &format!("baove-{}", spec.name),
        nats.credentials,
        &cancel,
        Some(connected_tx),
    )
    .await
    {
        Ok(client) => client,
        Err(baove_bus::BusError::Cancelled) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot use nats; events stay in the outbox");
            return;
        }
    };
    let bus = baove_bus::Bus {
        js: async_nats::jetstream::new(client),
        health: baove_bus::BusHealth::default(),
        replicas: nats.replicas,
    };
    nats.bus.send_replace(Some(bus.clone()));
    let health = {
        let (bus, reporter, cancel) = (bus.clone(), reporter.clone(), cancel.clone());
        tokio::spawn(
            async move { watch_bus_health(&bus, &mut connected, &reporter, &cancel).await },
        )
    };
    let mut lease = None;
    match nats.role {
        crate::config::Role::Active => {}
        crate::config::Role::Standby => {
            let followed =
                baove_bus::logstream::follow(log, bus.clone(), spec.log_stream, cancel.clone())
                    .await;
            if let Err(e) = followed {
                stop_to_set_aside(&nats.shutdown, &e);
            }
            let _ = health.await;
            return;
        }
        crate::config::Role::Auto => {
            let Some(taken) =
                take_over(spec, &log, &bus, &nats.address, &cancel, &nats.shutdown).await
            else {
                let _ = health.await;
                return;
            };
            // Renewed from now on, whatever the rest takes.
            lease = Some(tokio::spawn(keep_lease(
                taken,
                log.clone(),
                reporter.clone(),
                nats.shutdown.clone(),
                cancel.clone(),
            )));
        }
    }
    // This process runs its consumers from here on: each counts as starting
    // until it reads, from now, not from whenever its task first runs (the
    // bus must not look SERVING in between).
    for durable in spec.consumers {
        bus.health
            .failing(&baove_bus::consumer_part(durable), "starting");
    }
    let mut delay = Duration::from_millis(250);
    loop {
        match baove_bus::ensure_stream(&bus.js, spec.stream, bus.replicas).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the jetstream stream yet");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    let keeper = tokio::spawn(keep_streams(spec, bus.clone(), cancel.clone()));
    if bus.replicas > 1 {
        requeue_unpublished(&spec, &log, &bus, &cancel).await;
    }
    let relay = tokio::spawn(
        baove_bus::OutboxRelay::new(log.clone(), bus.clone(), spec.stream).run(cancel.clone()),
    );
    let log_relay = tokio::spawn(
        baove_bus::LogRelay::new(log, bus.clone(), spec.log_stream)
            .telling(nats.reached)
            .run(cancel.clone()),
    );
    let own = on_bus.map(|start| tokio::spawn(start(bus.clone())));
    if lease.is_some() {
        // Fence before taking the role: the first position after the
        // previous active's last goes on the log stream now, signed by this
        // process, so an active that was paused and has not noticed can no
        // longer extend the stream when it resumes.
        match nats.checkpoints.sign_now().await {
            Ok(checkpoint) => tracing::info!(
                position = checkpoint.global_position,
                "fenced the log stream with a checkpoint"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the fencing checkpoint; the next write fences")
            }
        }
        let _ = nats.active.send_replace(true);
        set_status(&reporter, ACTIVE_HEALTH, ServingStatus::Serving).await;
    }
    cancel.cancelled().await;
    if let Some(lease) = lease {
        let _ = lease.await;
    }
    let _ = health.await;
    for (name, task) in [
        ("stream keeper", keeper),
        ("outbox relay", relay),
        ("log relay", log_relay),
    ] {
        if let Err(e) = task.await {
            tracing::error!(error = %e, task = name, "bus task failed");
        }
    }
    if let Some(own) = own
        && let Err(e) = own.await
    {
        tracing::error!(error = %e, "service bus task failed");
    }
}

/// The active of a cluster, before its outbox relay starts: hands on what
/// a previous active stored with the cluster but had not published
/// ([`baove_bus::logstream::requeue_unpublished`]), retrying until it can
/// (or `cancel`): starting the relay first could leave a report
/// acknowledged and never handed on.
async fn requeue_unpublished(
    spec: &ServiceSpec,
    log: &EventLog,
    bus: &baove_bus::Bus,
    cancel: &CancellationToken,
) {
    // Named in `baove.bus` health while it cannot finish, so that the
    // engineer on call sees why the hand-over has not started.
    let part = "hand-on after taking the writes";
    loop {
        match baove_bus::logstream::requeue_unpublished(log, &bus.js, spec.log_stream, spec.stream)
            .await
        {
            Ok(requeued) => {
                if requeued > 0 {
                    tracing::warn!(
                        requeued,
                        "handing on events the previous active stored but had not published"
                    );
                }
                bus.health.gone(part);
                return;
            }
            Err(e) => {
                bus.health.failing(
                    part,
                    format!("cannot tell what the previous active had not published: {e}"),
                );
                tracing::warn!(error = %e, "cannot yet tell what the previous active had not published; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// How long a lease lasts unrenewed (`role = "auto"`): the longest a dead
/// active keeps the service from taking writes, less the time to notice.
const LEASE_TTL: Duration = Duration::from_secs(4);

/// An `auto` process's wait for the service's lease: follows the log stream
/// as a standby until it takes the lease, then imports whatever the stream
/// holds beyond its log and takes writes. `None` when cancelled first, or
/// when its log and the stream part (then it fires `shutdown`: see
/// [`stop_to_set_aside`]).
async fn take_over(
    spec: ServiceSpec,
    log: &EventLog,
    bus: &baove_bus::Bus,
    address: &str,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
) -> Option<baove_bus::lease::Lease> {
    let following = cancel.child_token();
    let mut follower = tokio::spawn(baove_bus::logstream::follow(
        log.clone(),
        bus.clone(),
        spec.log_stream,
        following.clone(),
    ));
    let holder = format!("{address} {}", uuid::Uuid::now_v7());
    let part = "lease";
    let lease = loop {
        let attempt = async {
            let store = baove_bus::lease::bucket(&bus.js, LEASE_TTL, bus.replicas).await?;
            if let Some(lease) =
                baove_bus::lease::try_take(&store, spec.name, &holder, LEASE_TTL).await?
            {
                return Ok(Some(lease));
            }
            // Writes are refused naming whoever holds it now.
            if let Some(active) = baove_bus::lease::holder(&store, spec.name).await? {
                log.follow_only(active.split(' ').next().unwrap_or_default());
            }
            Ok::<_, baove_bus::BusError>(None)
        };
        match attempt.await {
            Ok(Some(lease)) => break lease,
            Ok(None) => bus.health.ok(part),
            Err(e) => bus.health.failing(part, e.to_string()),
        }
        tokio::select! {
            () = cancel.cancelled() => {
                following.cancel();
                let _ = follower.await;
                return None;
            }
            followed = &mut follower => {
                if let Ok(Err(e)) = followed {
                    stop_to_set_aside(shutdown, &e);
                }
                return None;
            }
            () = tokio::time::sleep(LEASE_TTL / 8) => {}
        }
    };
    following.cancel();
    let _ = follower.await;
    // The previous active's lease expired: what it published is final.
    // (On the very first start there is no log stream yet: make it.)
    loop {
        let caught_up = async {
            baove_bus::ensure_stream(&bus.js, spec.log_stream, bus.replicas).await?;
            baove_bus::logstream::catch_up(log, &bus.js, spec.log_stream).await
        };
        match caught_up.await {
            Ok(imported) => {
                tracing::warn!(
                    term = lease.term,
                    imported,
                    position = log.last_position(),
                    "took the lease: this process is now the active"
                );
                break;
            }
            Err(e @ baove_bus::BusError::Diverged { .. }) if bus.replicas > 1 => {
                // Its lease expires unrenewed: another process takes it.
                stop_to_set_aside(shutdown, &e);
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "took the lease but cannot reach the end of the log stream; retrying");
                bus.health.failing(part, e.to_string());
                tokio::select! {
                    () = cancel.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
    bus.health.ok(part);
    log.take_writes();
    Some(lease)
}

/// Stops a process whose log holds events its log stream does not (its
/// follower found them differ, `diverged`): they were never stored by the
/// cluster, and the read models applied them, so only a start sets them
/// aside ([`catch_up_at_start`]). A supervisor starts it again.
fn stop_to_set_aside(shutdown: &CancellationToken, diverged: &baove_bus::BusError) {
    tracing::error!(error = %diverged, "this process's log holds events the cluster never stored: stopping; started again, it sets them aside and follows the cluster");
    shutdown.cancel();
}

/// Renews the lease until `cancel`; when it cannot, stops taking writes
/// before the lease could expire and stops the process (a supervisor starts
/// it again, as a standby while another holds the lease).
async fn keep_lease(
    mut lease: baove_bus::lease::Lease,
    log: EventLog,
    reporter: HealthReporter,
    shutdown: CancellationToken,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(lease.every()) => {}
        }
        match lease.renew().await {
            Ok(()) => continue,
            Err(e) if !lease.must_stop() => {
                tracing::warn!(error = %e, "cannot renew the lease yet");
                continue;
            }
            Err(e) => {
                log.follow_only("");
                set_status(&reporter, ACTIVE_HEALTH, ServingStatus::NotServing).await;
                tracing::error!(error = %e, term = lease.term, "lost the lease: taking no more writes and stopping");
                shutdown.cancel();
                return;
            }
        }
    }
}

/// Keeps the [`BUS_HEALTH`] status true to the connection and to every bus
/// part's progress, until `cancel`.
async fn watch_bus_health(
    bus: &baove_bus::Bus,
    connected: &mut watch::Receiver<bool>,
    reporter: &HealthReporter,
    cancel: &CancellationToken,
) {
    let mut parts = bus.health.subscribe();
    let mut was = None;
    loop {
        let failure = if *connected.borrow_and_update() {
            baove_bus::first_failure(&parts.borrow_and_update())
        } else {
            Some(("connection".to_owned(), "nats is not connected".to_owned()))
        };
        let status = if failure.is_none() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        metrics::gauge!(crate::metrics::NATS_CONNECTED).set(if *connected.borrow() {
            1.0
        } else {
            0.0
        });
        if was != Some(failure.clone()) {
            match &failure {
                None => tracing::info!("bus: every part makes progress"),
                Some((part, reason)) => {
                    tracing::warn!(part, reason = %baove_domain::text::clip(reason, 300), "bus: a part cannot make progress");
                }
            }
            was = Some(failure);
        }
        set_status(reporter, BUS_HEALTH, status).await;
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = connected.changed() => if changed.is_err() { break },
            changed = parts.changed() => if changed.is_err() { break },
        }
    }
}

/// Checks every second that the service's streams exist and makes a
/// missing one again at once (after the bus lost its store an idle service
/// must not wait for its next publish), reporting each as a bus part.
async fn keep_streams(spec: ServiceSpec, bus: baove_bus::Bus, cancel: CancellationToken) {
    let streams: Vec<StreamSpec> = [spec.stream, spec.log_stream]
        .into_iter()
        .chain(spec.other_streams.iter().copied())
        .collect();
    loop {
        for stream in &streams {
            let part = format!("stream {}", stream.name);
            if bus.js.get_stream(stream.name).await.is_ok() {
                bus.health.ok(&part);
                continue;
            }
            match baove_bus::ensure_stream(&bus.js, *stream, bus.replicas).await {
                Ok(()) => {
                    tracing::warn!(stream = stream.name, "stream was missing: made again");
                    bus.health.ok(&part);
                }
                Err(e) => bus.health.failing(&part, e.to_string()),
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
