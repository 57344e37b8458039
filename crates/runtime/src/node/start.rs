//! Start-up: opening the log, comparing it with its log stream, and
//! setting aside what the cluster never stored (docs/cluster.md,
//! "Rejoining").

use super::*;

/// How long an append waits, in a cluster (`stream_replicas` > 1), for
/// its log stream's quorum to store it before the caller gets UNAVAILABLE.
pub(super) const REPLICATION_WAIT: Duration = Duration::from_secs(5);

/// How long a starting service waits for NATS to compare its log with its
/// log stream before starting without (the kept checkpoint still checks
/// it; the log relay compares again once NATS is there).
pub(super) const STREAM_CHECK_WAIT: Duration = Duration::from_secs(10);

/// Opens the service's event log in `dir`.
pub(super) async fn open_log(
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
pub(super) async fn catch_up_at_start(
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
            let outcome = baove_bus::logstream::catch_up(&log, &js, spec.log_stream).await;
            match after_set_aside(outcome) {
                AfterSetAside::Continues(imported) => tracing::warn!(
                    stream = spec.log_stream.name,
                    imported,
                    position = log.last_position(),
                    "took the log stream's events in place of those set aside"
                ),
                AfterSetAside::NotRead(e) => tracing::warn!(
                    stream = spec.log_stream.name,
                    error = %e,
                    position = log.last_position(),
                    "set aside what the cluster never stored, but cannot read the log stream's events now (a NATS node just came back?); starting as the log stands, a prefix of the stream: the follower takes the rest once NATS answers, and a process that takes the lease catches up to the stream's end before it writes"
                ),
                AfterSetAside::Refuse(e) => {
                    return Err(anyhow::anyhow!(e)).with_context(|| {
                        format!(
                            "the event log in {} still does not continue its log stream after setting aside what the cluster never stored; refusing to start",
                            log.path().display()
                        )
                    });
                }
            }
            return Ok(log);
        }
        outcome => {
            checked_at_start(spec, &log, config.stream_replicas, outcome)?;
            log
        }
    };
    Ok(log)
}

/// What the catch-up after a set-aside decides ([`after_set_aside`]).
#[derive(Debug)]
pub(super) enum AfterSetAside {
    /// The log continues its stream: this many events imported.
    Continues(u64),
    /// The stream could not be read (NATS or JetStream did not answer in
    /// time): what is left is a prefix of the stream, so the process
    /// starts and its follower imports the rest.
    NotRead(baove_bus::BusError),
    /// The log still parts from its stream, or the stream's events do not
    /// verify: never served.
    Refuse(baove_bus::BusError),
}

/// Whether a process that set aside what the cluster never stored starts:
/// only a log that still parts from its stream, or events that do not
/// verify, refuse; a stream that did not answer (a NATS node that just
/// came back and has not caught up) is not a reason to stay down.
pub(super) fn after_set_aside(outcome: Result<u64, baove_bus::BusError>) -> AfterSetAside {
    match outcome {
        Ok(imported) => AfterSetAside::Continues(imported),
        Err(e @ (baove_bus::BusError::Diverged { .. } | baove_bus::BusError::Log(_))) => {
            AfterSetAside::Refuse(e)
        }
        Err(e) => AfterSetAside::NotRead(e),
    }
}

/// What a catch-up at start found, said, or refused.
pub(super) fn checked_at_start(
    spec: &ServiceSpec,
    log: &EventLog,
    replicas: usize,
    outcome: Result<u64, baove_bus::BusError>,
) -> anyhow::Result<()> {
    match outcome {
        Ok(0) => {
            tracing::info!(stream = spec.log_stream.name, position = log.last_position(), "the log reaches the end of its log stream");
            Ok(())
        }
        Ok(imported) if replicas > 1 => {
            // In a cluster the other processes went on while this one was
            // down: nothing to fix. The side trees' entries (data keys)
            // come from the cluster's buckets as the read model needs them.
            tracing::info!(
                stream = spec.log_stream.name,
                imported,
                position = log.last_position(),
                "took the events the service wrote while this process was down from the log stream, every hash verified"
            );
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
pub(super) async fn set_aside_unstored(
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
    let checkpoint = baove_audit::checkpointer::set_aside_kept(&dir, from - 1, now).await?;
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

#[cfg(test)]
mod tests {
    use super::{AfterSetAside, after_set_aside};
    use baove_bus::BusError;

    #[test]
    fn given_a_set_aside_when_the_stream_does_not_answer_then_the_process_starts_and_follows() {
        // A whole-machine test restarted intake right after its NATS node
        // came back: the read timed out, and the process refused to start.
        let timed_out = BusError::JetStream("read BAOVE_INTAKE_LOG: timed out".into());
        assert!(matches!(
            after_set_aside(Err(timed_out)),
            AfterSetAside::NotRead(_)
        ));
        assert!(matches!(
            after_set_aside(Err(BusError::Unavailable("no servers".into()))),
            AfterSetAside::NotRead(_)
        ));
        assert!(matches!(
            after_set_aside(Ok(3)),
            AfterSetAside::Continues(3)
        ));
    }

    #[test]
    fn given_a_set_aside_when_the_log_still_parts_from_the_stream_or_does_not_verify_then_it_refuses()
     {
        let parted = BusError::Diverged {
            position: 212,
            stream: "BAOVE_INTAKE_LOG",
        };
        assert!(matches!(
            after_set_aside(Err(parted)),
            AfterSetAside::Refuse(_)
        ));
        let broken = BusError::Log(baove_eventlog::Error::Corrupt("hash".into()));
        assert!(matches!(
            after_set_aside(Err(broken)),
            AfterSetAside::Refuse(_)
        ));
    }
}
