//! One service process, from start-up to a clean stop.
//!
//! Start-up order:
//! 0. load the reference data and check `partition` against it: a
//!    partition's process names every stream and its lease as the
//!    partition's ([`ServiceSpec::in_partition`], docs/cluster.md,
//!    "Partitions");
//! 1. open the service's event log (`<data_dir>/eventlog`), compare it with
//!    its log stream and take what the stream holds beyond it (in a
//!    cluster, first setting aside what the stream never stored: docs/
//!    cluster.md, "Rejoining"); open the access log,
//!    and check each against the checkpoint kept outside its sled files
//!    ([`baove_audit::checkpointer::Checkpointer::check_kept`]): a log shorter than
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
//!
//! This file holds [`run`]; `node/start.rs` step 1 (the log against its
//! stream, the set-aside); `node/bus.rs` step 3; `node/lease.rs` the lease
//! of an `auto` process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use baove_bus::StreamSpec;
use baove_eventlog::EventLog;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::Config;
use crate::audit::AuditApi;

mod bus;
mod lease;
mod start;
mod stop;

use bus::*;
use lease::*;
use start::*;
use stop::Stop;

/// Health service name that reports the NATS connection and stream.
pub const BUS_HEALTH: &str = "baove.bus";

/// Health service name, followed by a province's unit id
/// (`baove.partition.vn:92`), that is SERVING on every process of that
/// province's partition (`partition`), and unknown elsewhere.
pub const PARTITION_HEALTH: &str = "baove.partition.";

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
    /// The side trees of its log that a backup carries
    /// ([`baove_eventlog::EventLog::side_tree`]): intake's `data-keys`.
    pub side_trees: &'static [&'static str],
    /// Whether the service copies its side trees into the cluster itself
    /// when `stream_replicas` > 1 (intake: its data keys in
    /// [`baove_bus::kv::DATA_KEYS`], written before a report is
    /// acknowledged), so that a standby can take over.
    pub side_trees_replicated: bool,
    /// The key-value buckets whose replicas its active watches with its
    /// streams' (in a cluster: a stalled replica's stream leader is asked
    /// to step down, [`baove_bus::replicas`]): the buckets it writes
    /// (intake also the lease bucket).
    pub buckets: &'static [&'static str],
}

impl ServiceSpec {
    /// This service as `partition` keeps it: its name becomes
    /// `<name>.<partition>` (`intake.vn-92`: its lease key, its
    /// checkpoints' name and origin) and each of its streams the
    /// partition's own ([`baove_bus::partition::Partition::stream`]);
    /// unchanged without a partition. The new names are made once per
    /// process (they are leaked, as the spec holds `'static` names).
    #[must_use]
    pub fn in_partition(self, partition: Option<&baove_bus::partition::Partition>) -> Self {
        let Some(p) = partition else { return self };
        let other_streams: Vec<StreamSpec> =
            self.other_streams.iter().map(|s| p.stream(*s)).collect();
        Self {
            name: Box::leak(p.lease_key(self.name).into_boxed_str()),
            stream: p.stream(self.stream),
            log_stream: p.stream(self.log_stream),
            other_streams: Box::leak(other_streams.into_boxed_slice()),
            ..self
        }
    }
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
    pub access: baove_audit::access::AccessLog,
    /// The reference data (units and agencies), loaded once at start.
    pub directory: Arc<baove_domain::reference::Directory>,
    /// The partition this process keeps (`partition`, checked against the
    /// reference data), or `None`: every province.
    pub partition: Option<baove_bus::partition::Partition>,
    /// Whether this process is the active (takes writes): false on a
    /// standby, and on an `auto` process until it takes the lease. Writers
    /// of the service's own (schedulers) wait for it.
    pub active: watch::Receiver<bool>,
    /// The bus once connected (any role): for what a service keeps on
    /// NATS besides its streams (intake's replicated data keys).
    pub bus: watch::Receiver<Option<baove_bus::Bus>>,
}

impl NodeContext {
    /// `spec` as this process's partition keeps it: every stream a service
    /// reads or publishes to goes through here
    /// ([`baove_bus::partition::stream_in`]).
    #[must_use]
    pub fn stream(&self, spec: StreamSpec) -> StreamSpec {
        baove_bus::partition::stream_in(self.partition.as_ref(), spec)
    }

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
/// runs until [`NodeContext::cancel`] fires. For what is not a
/// [`Consumer`] or a [`Delivery`] (intake's re-publisher).
pub type OnBus = Box<dyn FnOnce(baove_bus::Bus) -> BoxFuture + Send>;

/// One of the service's consumers, as data: the stream it reads, its
/// durable name, the events it takes and the handler that applies them
/// (into the service's log, whose inbox keeps what was applied). The node
/// runs every consumer of [`Parts::consumers`] on the active only, counts
/// each as starting in [`BUS_HEALTH`] until it reads, and counts its parked
/// messages in the metrics.
pub struct Consumer {
    spec: baove_bus::ConsumerSpec,
    run: Box<dyn FnOnce(baove_bus::Bus, EventLog, CancellationToken) -> BoxFuture + Send>,
}

impl Consumer {
    /// Reads `stream` as `durable`: the events of `event_type` only, or all
    /// of them (`None`), each applied by `handler`
    /// ([`baove_bus::run_consumer`]).
    #[must_use]
    pub fn new<H: baove_bus::Handler>(
        stream: StreamSpec,
        durable: &str,
        event_type: Option<&str>,
        handler: H,
    ) -> Self {
        Self::with_bus(stream, durable, event_type, move |_| handler)
    }

    /// As [`Consumer::new`], with a handler made from the bus once it is
    /// connected (one that publishes: the alerters).
    #[must_use]
    pub fn with_bus<H: baove_bus::Handler>(
        stream: StreamSpec,
        durable: &str,
        event_type: Option<&str>,
        make: impl FnOnce(&baove_bus::Bus) -> H + Send + 'static,
    ) -> Self {
        let spec = baove_bus::ConsumerSpec {
            stream,
            durable: durable.to_owned(),
            filter_subject: format!("{}.{}", stream.prefix, event_type.unwrap_or(">")),
        };
        let run_spec = spec.clone();
        Self {
            spec,
            run: Box::new(move |bus, log, cancel| {
                let handler = make(&bus);
                Box::pin(baove_bus::run_consumer(bus, log, run_spec, handler, cancel))
            }),
        }
    }

    /// What it reads, under which name.
    #[must_use]
    pub const fn spec(&self) -> &baove_bus::ConsumerSpec {
        &self.spec
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Consumer").field(&self.spec).finish()
    }
}

/// One of the service's alert deliveries, as data: the alerts of `kind` on
/// the alert stream, read as `durable`, sent to `endpoints`
/// ([`crate::delivery::run`]; none configured: not run).
#[derive(Debug)]
pub struct Delivery {
    /// The alert kind ([`baove_bus::alert::Alert::KIND`]).
    pub kind: &'static str,
    /// The alert stream ([`baove_bus::ALERT`], or the partition's:
    /// [`NodeContext::stream`]).
    pub stream: StreamSpec,
    /// The durable name of its consumer on the alert stream.
    pub durable: &'static str,
    /// Where they go ([`Config::alert_endpoints`]).
    pub endpoints: Option<Arc<crate::delivery::Endpoints>>,
}

/// A boxed future, for [`OnBus`].
pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The service's own parts, built on its log.
#[derive(Default)]
pub struct Parts {
    /// Its gRPC API.
    pub routes: Routes,
    /// Tasks it started (projections...); awaited at shutdown after cancel.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Its consumers, run on the active once NATS is there.
    pub consumers: Vec<Consumer>,
    /// Its alert deliveries, run on the active once NATS is there.
    pub deliveries: Vec<Delivery>,
    /// Anything else it runs on the bus, started with the consumers.
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
/// Also when the process stopped by itself rather than on `shutdown` (it
/// lost its lease, or its log parted from the cluster's): the error says
/// why, and the non-zero exit tells a supervisor to start it again.
pub async fn run(
    spec: ServiceSpec,
    config: Config,
    shutdown: CancellationToken,
    build: impl FnOnce(&NodeContext) -> anyhow::Result<Parts>,
) -> anyhow::Result<()> {
    // The reference data first: the partition is checked against it, and
    // names every stream the log is compared with below.
    let directory = Arc::new(config.directory()?);
    let partition = config.partition_in(&directory)?;
    let spec = spec.in_partition(partition.as_ref());
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
            // Each record has a new id and is never appended again: an
            // answer kept per record would only fill the disk.
            keep_answers: false,
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
    let access = baove_audit::access::AccessLog::new(access_log.clone());
    let access_checkpoints = baove_audit::checkpointer::Checkpointer::open(
        access_log.clone(),
        &format!("{}.access", spec.name),
        &format!("{}/{}.access", config.log_origin, spec.name),
        config.checkpoint_key_file.as_deref(),
        &config.data_dir,
        config.clock(),
    )
    .context("failed to open the checkpoint signing key")?
    .unpublished();
    let checkpoints = baove_audit::checkpointer::Checkpointer::open(
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
    // Which partition it keeps: how a client given every partition's
    // processes picks one province's (`baove --province`).
    if let Some(partition) = &partition {
        set_status(
            &reporter,
            &format!("{PARTITION_HEALTH}{}", partition.province()),
            ServingStatus::Serving,
        )
        .await;
    }
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

    let background = CancellationToken::new();
    let (bus_tx, bus_rx) = watch::channel(None);
    let context = NodeContext {
        log: log.clone(),
        cancel: background.clone(),
        stopping: shutdown.clone(),
        config: config.clone(),
        access: access.clone(),
        directory: directory.clone(),
        partition: partition.clone(),
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
        parts
            .consumers
            .iter()
            .map(|c| c.spec().durable.clone())
            .collect(),
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
        router.serve_with_incoming_shutdown(
            accepting(listener),
            async move { stop.cancelled().await },
        ),
    );
    tracing::info!(service = spec.name, listen = %listening, data_dir = %config.data_dir.display(), "serving");

    let stop = Stop::new(shutdown.clone());
    let bus = tokio::spawn(bus_task(
        spec,
        NatsSettings {
            url: config.nats_url.clone(),
            replicas: config.stream_replicas,
            credentials,
            reached: reached_tx,
            role,
            active: active_tx,
            shutdown: stop.clone(),
            address: format!("http://{listening}"),
            checkpoints: checkpoints.clone(),
            bus: bus_tx,
        },
        log.clone(),
        reporter.clone(),
        background.clone(),
        BusParts {
            consumers: parts.consumers,
            deliveries: parts.deliveries,
            on_bus: parts.on_bus,
        },
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
    if let Some(reason) = stop.reason() {
        // Non-zero, so that a supervisor starts it again.
        anyhow::bail!("{} stopped by itself: {reason}", spec.name);
    }
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

/// The connections `listener` accepts, each with `TCP_NODELAY` set.
///
/// A gRPC answer is several writes on its connection (headers, the
/// message, the trailers). With Nagle's algorithm on, a write waits until
/// the peer acknowledges the one before it, and the peer delays that
/// acknowledgement (up to 40 ms on Linux) while it waits for the rest: every
/// call took at least ~44 ms on loopback, whatever its work.
fn accepting(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;

    /// Given the service's listener, when a client connects, then the
    /// connection it accepts sends each write at once (`TCP_NODELAY`).
    #[tokio::test]
    async fn every_accepted_connection_has_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = super::accepting(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap(), "Nagle's algorithm is on");
    }
}
