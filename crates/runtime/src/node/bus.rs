//! The bus side of a process: connecting to NATS, the streams, the relays
//! and consumers, the Merkle tree's growth and the bus health.

use super::*;

/// How long the new active waits for its stream's answer in one attempt
/// before asking again.
const ENSURE_ATTEMPT: Duration = baove_bus::ASK_WITHIN;

/// How a service reaches NATS.
pub(super) struct NatsSettings {
    /// One URL, or several of a cluster separated by commas.
    pub(super) url: String,
    /// Copies of each stream it creates.
    pub(super) replicas: usize,
    /// Its NATS user, when configured.
    pub(super) credentials: Option<baove_bus::Credentials>,
    /// Told how far the log stream holds the log.
    pub(super) reached: watch::Sender<u64>,
    /// Active, standby, or auto (lease).
    pub(super) role: crate::config::Role,
    /// Set to true when this process becomes the active.
    pub(super) active: watch::Sender<bool>,
    /// Stops the process from inside (an active that lost its lease).
    pub(super) shutdown: Stop,
    /// This process's gRPC address, held in the lease.
    pub(super) address: String,
    /// Signs the checkpoint that fences the log stream on taking over.
    pub(super) checkpoints: baove_audit::checkpointer::Checkpointer,
    /// Told the bus once connected.
    pub(super) bus: watch::Sender<Option<baove_bus::Bus>>,
}

/// How often the Merkle tree is grown to the log's end.
pub(super) const TREE_EVERY: Duration = Duration::from_secs(2);

/// Grows `log`'s Merkle tree to its end every [`TREE_EVERY`] while it
/// moved, until `cancel`.
pub(super) async fn grow_tree(log: EventLog, cancel: CancellationToken) {
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

/// Connects to NATS, keeps the streams, relays the outbox and the log, runs
/// the service's consumers, alert deliveries and `on_bus` part, and keeps
/// the [`BUS_HEALTH`] status true to the connection and to every bus part's
/// progress.
pub(super) async fn bus_task(
    spec: ServiceSpec,
    nats: NatsSettings,
    log: EventLog,
    reporter: HealthReporter,
    cancel: CancellationToken,
    own: BusParts,
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
    for consumer in &own.consumers {
        bus.health.failing(
            &baove_bus::consumer_part(&consumer.spec().durable),
            "starting",
        );
    }
    let mut delay = Duration::from_millis(250);
    loop {
        // Bounded: while the stream elects a leader (a NATS node died with
        // the previous active's machine) a request waits out its timeout,
        // 10 s, and the leader may be there long before. A write cut short
        // here is still carried out by the cluster; the next attempt finds
        // it done.
        let ensured = tokio::time::timeout(
            ENSURE_ATTEMPT,
            baove_bus::ensure_stream(&bus.js, spec.stream, bus.replicas),
        )
        .await
        .unwrap_or_else(|_| {
            Err(baove_bus::BusError::Unavailable(format!(
                "stream {} did not answer within {ENSURE_ATTEMPT:?}",
                spec.stream.name
            )))
        });
        match ensured {
            Ok(_) => break,
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
    // In a cluster, an active whose log parts from its stream (another
    // process extended the stream first: the fencing race of
    // docs/cluster.md) holds events the cluster never stored and never
    // acknowledged, and one whose stream went further than its log is not
    // the one writing it: either stops, so that the lease can pass on;
    // started again, it sets the first aside and catches up.
    let log_relay = tokio::spawn({
        let relay = baove_bus::LogRelay::new(log.clone(), bus.clone(), spec.log_stream)
            .telling(nats.reached)
            .run(cancel.clone());
        let shutdown = nats.shutdown.clone();
        async move {
            match relay.await {
                Ok(()) => {}
                Err(e @ baove_bus::BusError::Diverged { .. }) => stop_to_set_aside(&shutdown, &e),
                Err(e) => {
                    tracing::error!(error = %e, "another process extends this service's log stream: stopping; started again, this process takes the stream's events and follows");
                    shutdown.by_itself(format!(
                        "another process extends this service's log stream ({e}); started again, this process takes the stream's events and follows"
                    ));
                }
            }
        }
    });
    let own = tokio::spawn(own.run(spec, bus.clone(), log.clone(), cancel.clone()));
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
    let held = match lease {
        Some(keeper) => keeper.await.ok().flatten(),
        None => None,
    };
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
    // Nothing more of this process reaches the log stream.
    if let Some(lease) = held {
        give_back(lease).await;
    }
    if let Err(e) = own.await {
        tracing::error!(error = %e, "service bus task failed");
    }
}

/// The service's own parts on the bus ([`super::Parts`]).
pub(super) struct BusParts {
    pub(super) consumers: Vec<Consumer>,
    pub(super) deliveries: Vec<Delivery>,
    pub(super) on_bus: Option<OnBus>,
}

impl BusParts {
    /// Runs every part until `cancel`; the streams they publish to (the
    /// alert stream) are made first, if they can be yet (the stream
    /// keeper goes on trying, and so do the publishers).
    async fn run(
        self,
        spec: ServiceSpec,
        bus: baove_bus::Bus,
        log: EventLog,
        cancel: CancellationToken,
    ) {
        for stream in spec.other_streams {
            if let Err(e) = baove_bus::ensure_stream(&bus.js, *stream, bus.replicas).await {
                tracing::warn!(stream = stream.name, error = %e, "stream not ready yet; its publishers retry");
            }
        }
        let mut tasks = Vec::new();
        for consumer in self.consumers {
            tasks.push(tokio::spawn((consumer.run)(
                bus.clone(),
                log.clone(),
                cancel.clone(),
            )));
        }
        for delivery in self.deliveries {
            tasks.push(tokio::spawn(crate::delivery::run(
                bus.clone(),
                delivery.stream,
                delivery.kind,
                delivery.durable.to_owned(),
                delivery.endpoints,
                cancel.clone(),
            )));
        }
        if let Some(start) = self.on_bus {
            tasks.push(tokio::spawn(start(bus)));
        }
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a consumer or delivery task failed");
            }
        }
    }
}

/// The active of a cluster, before its outbox relay starts: hands on what
/// a previous active stored with the cluster but had not published
/// ([`baove_bus::logstream::requeue_unpublished`]), retrying until it can
/// (or `cancel`): starting the relay first could leave a report
/// acknowledged and never handed on.
pub(super) async fn requeue_unpublished(
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

/// Keeps the [`BUS_HEALTH`] status true to the connection and to every bus
/// part's progress, until `cancel`.
pub(super) async fn watch_bus_health(
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
/// must not wait for its next publish), reporting each as a bus part; in a
/// cluster, also looks at the replicas of those streams and of its buckets
/// and has a stalled one's stream leader step down ([`watch_replicas`]).
pub(super) async fn keep_streams(
    spec: ServiceSpec,
    bus: baove_bus::Bus,
    cancel: CancellationToken,
) {
    let streams: Vec<StreamSpec> = [spec.stream, spec.log_stream]
        .into_iter()
        .chain(spec.other_streams.iter().copied())
        .collect();
    let mut step_downs = baove_bus::replicas::StepDowns::default();
    loop {
        let mut clusters = Vec::new();
        for stream in &streams {
            let part = format!("stream {}", stream.name);
            if let Ok(found) = bus.js.get_stream(stream.name).await {
                if let Some(cluster) = &found.cached_info().cluster {
                    clusters.push((stream.name.to_owned(), cluster.clone()));
                }
                bus.health.ok(&part);
                continue;
            }
            match baove_bus::ensure_stream(&bus.js, *stream, bus.replicas).await {
                Ok(ensured) => {
                    tracing::warn!(
                        stream = stream.name,
                        ?ensured,
                        "stream was not reachable: made again if missing"
                    );
                    bus.health.ok(&part);
                }
                Err(e) => bus.health.failing(&part, e.to_string()),
            }
        }
        if bus.replicas > 1 {
            watch_replicas(&spec, &bus, clusters, &mut step_downs).await;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// With the cluster info of the service's streams (`clusters`) and that of
/// its buckets, read here: counts the stalled replicas
/// ([`baove_bus::replicas::stalled`]) and asks the stream leader of each
/// stall that lasted to step down, at most once per stream in
/// [`baove_bus::replicas::STEP_DOWN_EVERY`]
/// ([`baove_bus::replicas::StepDowns`]).
async fn watch_replicas(
    spec: &ServiceSpec,
    bus: &baove_bus::Bus,
    mut clusters: Vec<(String, async_nats::jetstream::stream::ClusterInfo)>,
    step_downs: &mut baove_bus::replicas::StepDowns,
) {
    use baove_bus::replicas;
    for bucket in spec.buckets {
        let name = format!("KV_{bucket}");
        // One that is not there yet is made by whoever writes it first.
        if let Ok(found) = bus.js.get_stream(&name).await
            && let Some(cluster) = &found.cached_info().cluster
        {
            clusters.push((name, cluster.clone()));
        }
    }
    let stalls = replicas::stalled(&clusters);
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(replicas::REPLICAS_STALLED).set(stalls.len() as f64);
    for stream in step_downs.to_ask(&stalls, std::time::Instant::now()) {
        for stall in stalls.iter().filter(|s| s.stream == stream) {
            tracing::warn!(
                stream = %stall.stream,
                replica = %stall.peer,
                unseen_s = stall.unseen.as_secs(),
                lag = ?stall.lag,
                "a replica of this stream stopped catching up while its node runs: asking the stream's leader to step down, which starts its catch-up again"
            );
        }
        match replicas::step_down(&bus.js, &stream).await {
            Ok(()) => {
                metrics::counter!(replicas::LEADER_STEP_DOWNS, "stream" => stream.clone())
                    .increment(1);
            }
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "the stream's leader did not step down");
            }
        }
    }
}
