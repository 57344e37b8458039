//! The lease of an `auto` process: taking it over, keeping it, and
//! stopping when the log and the cluster part.

use super::*;

/// How long a lease lasts unrenewed (`role = "auto"`): the longest a dead
/// active keeps the service from taking writes, less the time to notice.
pub(super) const LEASE_TTL: Duration = Duration::from_secs(4);

/// The longest one attempt to take the lease waits for the bucket.
const TAKE_ATTEMPT: Duration = Duration::from_secs(1);

/// An `auto` process's wait for the service's lease: follows the log stream
/// as a standby until it takes the lease, then imports whatever the stream
/// holds beyond its log and takes writes. `None` when cancelled first, or
/// when its log and the stream part (then it fires `shutdown`: see
/// [`stop_to_set_aside`]); a lease it took by then, before any write, it
/// gives back ([`give_back`]).
pub(super) async fn take_over(
    spec: ServiceSpec,
    log: &EventLog,
    bus: &baove_bus::Bus,
    address: &str,
    cancel: &CancellationToken,
    shutdown: &Stop,
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
    // The bucket is looked up once: every look after that only reads and
    // writes its key (answered by the bucket stream's leader, not by the
    // cluster's meta leader, which may have died with the active).
    let mut candidate = None;
    let lease = loop {
        let attempt = async {
            let candidate = match &mut candidate {
                Some(candidate) => candidate,
                None => candidate.insert(baove_bus::lease::Candidate::new(
                    &baove_bus::lease::bucket(&bus.js, bus.replicas).await?,
                    spec.name,
                    &holder,
                    LEASE_TTL,
                )),
            };
            // Bounded: while the bucket's stream elects a leader a request
            // waits out its timeout (5 or 10 s), and the leader may be there
            // long before; a write stored after this gave up is found again
            // as this holder's own, and a look given up counts as no answer.
            tokio::time::timeout(TAKE_ATTEMPT, candidate.look())
                .await
                .unwrap_or_else(|_| {
                    Err(baove_bus::BusError::Unavailable(format!(
                        "the lease bucket did not answer within {TAKE_ATTEMPT:?}"
                    )))
                })
        };
        match attempt.await {
            Ok(baove_bus::lease::Look::Taken(lease)) => break *lease,
            Ok(baove_bus::lease::Look::Held(active)) => {
                // Writes are refused naming whoever holds it now.
                if !active.is_empty() {
                    log.follow_only(active.split(' ').next().unwrap_or_default());
                }
                bus.health.ok(part);
            }
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
    // Catching up may take longer than the lease lasts (a NATS node died
    // and the stream has to elect a leader): the lease is renewed from now
    // on, so that nobody else takes it while this process is about to
    // write, and it is not found taken once it does. The follower stops
    // at once, its request in flight dropped.
    let (caught_up_tx, caught_up_rx) = tokio::sync::oneshot::channel::<()>();
    let keeper = tokio::spawn(renew_until(lease, caught_up_rx));
    following.cancel();
    let _ = follower.await;
    // The previous active stopped renewing its lease (or never had one)
    // and has stopped writing: what it published is final.
    // (On the very first start there is no log stream yet: make it.)
    let reached = loop {
        let caught_up = async {
            // Bounded like a take attempt: while the log stream elects a
            // leader a request waits out its timeout (5 or 10 s), and the
            // leader may be there long before. Once it answers (or says
            // the stream is missing), the catch-up runs unbounded: it may
            // have many events to take.
            let probe = bus.js.get_stream(spec.log_stream.name);
            if tokio::time::timeout(TAKE_ATTEMPT, probe).await.is_err() {
                return Err(baove_bus::BusError::Unavailable(format!(
                    "log stream {} did not answer within {TAKE_ATTEMPT:?}",
                    spec.log_stream.name
                )));
            }
            baove_bus::ensure_stream(&bus.js, spec.log_stream, bus.replicas).await?;
            baove_bus::logstream::catch_up(log, &bus.js, spec.log_stream).await
        };
        match caught_up.await {
            Ok(imported) => break Some(imported),
            Err(e @ baove_bus::BusError::Diverged { .. }) if bus.replicas > 1 => {
                // Its lease goes unrenewed: another process takes it.
                stop_to_set_aside(shutdown, &e);
                break None;
            }
            Err(e) => {
                tracing::error!(error = %e, "took the lease but cannot reach the end of the log stream; retrying");
                bus.health.failing(part, e.to_string());
                tokio::select! {
                    () = cancel.cancelled() => break None,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    };
    let _ = caught_up_tx.send(());
    let mut lease = match keeper.await {
        Ok(Ok(lease)) => lease,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "took the lease but another took it while this process caught up: stopping; started again, this process follows whoever holds it");
            shutdown.by_itself(format!(
                "took the lease but another took it while this process caught up: {e}"
            ));
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "the lease keeper failed while catching up: stopping");
            shutdown.by_itself(format!("the lease keeper failed while catching up: {e}"));
            return None;
        }
    };
    // Not renewed in time while catching up (the bucket elects a leader):
    // no write before it is renewed on its term.
    if lease.must_stop() {
        let regained = tokio::select! {
            () = cancel.cancelled() => None,
            regained = lease.regain() => Some(regained),
        };
        match regained {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::error!(error = %e, "took the lease but another took it while this process caught up: stopping; started again, this process follows whoever holds it");
                shutdown.by_itself(format!(
                    "took the lease but another took it while this process caught up: {e}"
                ));
                return None;
            }
            None => {
                give_back(lease).await;
                return None;
            }
        }
    }
    // Stopping before it took a write (asked to, or to set aside what its
    // log holds beyond the stream): nothing of this process is on the log
    // stream in this term, so the lease goes back at once and a standby
    // takes it at its next look, instead of once it goes unrenewed.
    let Some(imported) = reached else {
        give_back(lease).await;
        return None;
    };
    tracing::warn!(
        term = lease.term,
        imported,
        position = log.last_position(),
        "took the lease: this process is now the active"
    );
    bus.health.ok(part);
    log.take_writes();
    Some(lease)
}

/// Renews `lease` every quarter of its ttl until `done` fires (or its
/// sender is dropped), then gives it back, renewed in time or not (the
/// caller regains it then); an error when another took it.
async fn renew_until(
    mut lease: baove_bus::lease::Lease,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> Result<baove_bus::lease::Lease, baove_bus::BusError> {
    loop {
        tokio::select! {
            _ = &mut done => return Ok(lease),
            () = tokio::time::sleep(lease.every()) => {}
        }
        let renewed = tokio::select! {
            _ = &mut done => return Ok(lease),
            renewed = lease.renew_in_time() => renewed,
        };
        match renewed {
            Ok(()) => {}
            Err(e @ baove_bus::BusError::Unavailable(_)) => {
                tracing::warn!(error = %e, "cannot renew the lease yet");
                let regained = tokio::select! {
                    _ = &mut done => return Ok(lease),
                    regained = lease.regain() => regained,
                };
                regained?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Stops a process whose log holds events its log stream does not (its
/// follower or, on the active, its log relay found them differ,
/// `diverged`): they were never stored by the cluster, so never
/// acknowledged, and the read models applied them, so only a start sets
/// them aside ([`catch_up_at_start`]). A supervisor starts it again.
pub(super) fn stop_to_set_aside(shutdown: &Stop, diverged: &baove_bus::BusError) {
    tracing::error!(error = %diverged, "this process's log holds events the cluster never stored: stopping; started again, it sets them aside and follows the cluster");
    shutdown.by_itself(format!(
        "its log holds events the cluster never stored ({diverged}); started again, it sets them aside and follows the cluster"
    ));
}

/// Renews the lease until `cancel`, then hands it back to be given back
/// once the log relay has stopped. When it cannot renew in time, it stops
/// taking writes before another could take the lease, and goes on trying:
/// renewed on its term (nobody took it meanwhile: the bucket's stream was
/// electing a leader, or NATS lost its quorum), it takes writes again;
/// refused (another holds it), it stops the process (a supervisor starts it
/// again, as a standby).
pub(super) async fn keep_lease(
    mut lease: baove_bus::lease::Lease,
    log: EventLog,
    reporter: HealthReporter,
    shutdown: Stop,
    cancel: CancellationToken,
) -> Option<baove_bus::lease::Lease> {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Some(lease),
            () = tokio::time::sleep(lease.every()) => {}
        }
        // Bounded: an answer that comes after the holder must stop is no
        // answer (another process may take the lease a third later).
        let lost = match lease.renew_in_time().await {
            Ok(()) => continue,
            Err(e @ baove_bus::BusError::Unavailable(_)) => {
                log.follow_only("");
                set_status(&reporter, ACTIVE_HEALTH, ServingStatus::NotServing).await;
                tracing::error!(error = %e, term = lease.term, "cannot renew the lease: taking no writes until it is renewed on its term, or another holds it");
                let paused = std::time::Instant::now();
                let regained = tokio::select! {
                    () = cancel.cancelled() => return Some(lease),
                    regained = lease.regain() => regained,
                };
                match regained {
                    Ok(()) => {
                        tracing::warn!(
                            term = lease.term,
                            paused_ms =
                                u64::try_from(paused.elapsed().as_millis()).unwrap_or(u64::MAX),
                            "renewed the lease on its term (nobody took it): taking writes again"
                        );
                        log.take_writes();
                        set_status(&reporter, ACTIVE_HEALTH, ServingStatus::Serving).await;
                        continue;
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        log.follow_only("");
        set_status(&reporter, ACTIVE_HEALTH, ServingStatus::NotServing).await;
        tracing::error!(error = %lost, term = lease.term, "lost the lease: taking no more writes and stopping");
        shutdown.by_itself(format!(
            "lost the lease (term {}): {lost}; started again, it follows whoever holds it",
            lease.term
        ));
        return None;
    }
}

/// Gives `lease` back when the process stops with nothing more of it to
/// reach the log stream (its log relay stopped, or it took no write): a
/// standby takes it at its next look instead of 4 s after the last
/// renewal. Bounded by [`baove_bus::ASK_WITHIN`]: unanswered, the lease
/// passes on as if unrenewed.
pub(super) async fn give_back(lease: baove_bus::lease::Lease) {
    let term = lease.term;
    match tokio::time::timeout(baove_bus::ASK_WITHIN, lease.release()).await {
        Ok(Ok(())) => tracing::info!(term, "gave the lease back: a standby takes it at once"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, term, "could not give the lease back: a standby takes it once it goes unrenewed for 4 s");
        }
        Err(_) => tracing::warn!(
            term,
            "the lease bucket did not answer the lease given back: a standby takes it once it goes unrenewed for 4 s"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log stream whose last message is no event of a log: a catch-up
    /// fails on it (not as diverged) and is tried again until cancelled.
    const LOG: baove_bus::StreamSpec = baove_bus::StreamSpec {
        name: "TEST_LEASE_LOG",
        prefix: "test.lease.log",
    };

    const SPEC: ServiceSpec = ServiceSpec {
        name: "lease-test",
        stream: baove_bus::StreamSpec {
            name: "TEST_LEASE_EVENTS",
            prefix: "test.lease.events",
        },
        log_stream: LOG,
        other_streams: &[],
        grpc_services: &[],
        side_trees: &[],
        side_trees_replicated: false,
        buckets: &[],
    };

    /// Given a process that took its service's lease but cannot catch up
    /// with the log stream, when it is asked to stop, then it gives the
    /// lease back: a standby takes it at its next look instead of 4 s
    /// later. (Before, the lease was dropped still held.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_a_lease_taken_when_the_process_stops_while_catching_up_then_it_gives_the_lease_back()
     {
        let nats = baove_testkit::NatsServer::start().unwrap();
        let cancel = CancellationToken::new();
        let js = async_nats::jetstream::new(
            baove_bus::connect(&nats.url(), "lease-test", &cancel, None)
                .await
                .unwrap(),
        );
        baove_bus::ensure_stream(&js, LOG, 1).await.unwrap();
        js.publish(
            baove_bus::logstream::log_subject(LOG),
            "not an event".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let bus = baove_bus::Bus {
            js: js.clone(),
            health: baove_bus::BusHealth::default(),
            replicas: 1,
        };
        // The bucket made first: the first look takes the free key at once,
        // before the follower meets the message that is no event.
        let store = baove_bus::lease::bucket(&js, 1).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let stopping = CancellationToken::new();
        let shutdown = Stop::new(CancellationToken::new());
        let taking = tokio::spawn({
            let (log, bus, stopping, shutdown) =
                (log.clone(), bus.clone(), stopping.clone(), shutdown.clone());
            async move {
                take_over(SPEC, &log, &bus, "http://a", &stopping, &shutdown)
                    .await
                    .is_some()
            }
        });

        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let holder = baove_bus::lease::holder(&store, SPEC.name).await.unwrap();
            if holder.is_some_and(|h| h.starts_with("http://a ")) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the lease was never taken"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // It took the lease and fails to catch up on the message that is
        // no event (its health says so), retrying.
        let mut parts = bus.health.subscribe();
        let failing = parts.wait_for(|parts| {
            parts
                .get("lease")
                .and_then(Option::as_deref)
                .is_some_and(|why| why.contains("undecodable event"))
        });
        let waited = tokio::time::timeout(Duration::from_secs(30), failing)
            .await
            .map(|seen| seen.map(drop));
        assert!(
            matches!(waited, Ok(Ok(()))),
            "the catch-up never failed: {:?}",
            bus.health
        );

        stopping.cancel();
        assert!(!taking.await.unwrap(), "stopped before taking writes");
        assert_eq!(
            baove_bus::lease::holder(&store, SPEC.name).await.unwrap(),
            None,
            "the lease is given back"
        );
        assert_eq!(
            shutdown.reason(),
            None,
            "asked to stop, not stopping by itself"
        );
        assert_eq!(log.last_position(), 0, "nothing was written");
        log.close().await.unwrap();
        cancel.cancel();
    }
}
