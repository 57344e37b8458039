//! Rebuilds a service's data directory from a backup file
//! (`AuditService.Backup`, written by `baove backup`):
//! `baove-<service> --config FILE restore --from BACKUP`.
//!
//! The service must be stopped, and its data directory must hold no event
//! log (move a damaged one aside first: it is evidence). The log is rebuilt
//! in `eventlog.restoring` beside it and renamed into place only once
//! everything checked out, so a failed restore leaves nothing half-written
//! where the service would open it:
//! 1. the manifest names this service and the backup format, and its
//!    checkpoint's signature verifies (against `--trusted-key`, else the
//!    checkpoint key already in the data directory, else only the key the
//!    checkpoint names, which the output says);
//! 2. every event continues the log: position, seq, `prev_hash` and the
//!    recomputed hash ([`baove_eventlog::EventLog::import`]);
//! 3. the file ends with its end record and the counts agree with it and
//!    with the checkpoint's position;
//! 4. the log's Merkle tree at that position has the checkpoint's root,
//!    and every stream's chain verifies as stored.
//!
//! `restore --from-stream` rebuilds the log from the service's log stream
//! on NATS instead ([`baove_bus::logstream`]): every event from position 1,
//! each hash and link checked as it is imported, every stream's chain
//! verified, and the newest checkpoint the log itself holds checked (its
//! signature, and its root against the rebuilt log's tree at its size).
//! Side trees (intake's data keys) are not on the stream: they come back
//! only from a backup file.
//!
//! Then the checkpoint is kept beside the log (`eventlog.checkpoint.json`)
//! when the data directory's signing key is the one that signed it, so the
//! next start checks the restored log against it. A kept checkpoint already
//! there that covers more than the backup is left as it is: the service will
//! refuse to start on the shorter log, and the restore says how many
//! acknowledged events the backup lacks.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use baove_audit::checkpoint::Checkpoint;
use baove_eventlog::{Envelope, EventLog, Verification};
use baove_proto::v1::{self, backup_response::Part};
use prost::Message;

use crate::Config;
use crate::audit::BACKUP_FORMAT;
use crate::node::ServiceSpec;
use baove_audit::checkpointer;

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The events restored (the checkpoint's position).
    pub events: u64,
    /// The streams.
    pub streams: u64,
    /// The side-tree entries restored.
    pub side_entries: u64,
    /// The checkpoint the restored log matches.
    pub checkpoint: Checkpoint,
    /// What the checkpoint's signature was checked against.
    pub key_checked: String,
    /// Whether the checkpoint is now kept beside the log.
    pub kept: bool,
    /// A kept checkpoint found in the data directory that covers more
    /// than the backup: its position.
    pub newer_kept: Option<u64>,
}

/// Reads length-delimited messages from a backup file.
struct Parts<R> {
    reader: R,
    read: u64,
}

impl<R: Read> Parts<R> {
    /// The next part; `None` at the end of the file.
    fn next(&mut self) -> anyhow::Result<Option<Part>> {
        let mut length = 0u64;
        let mut shift = 0;
        loop {
            let mut byte = [0u8; 1];
            match self.reader.read(&mut byte)? {
                0 if shift == 0 => return Ok(None),
                0 => bail!("the backup ends inside a length at byte {}", self.read),
                _ => {}
            }
            self.read += 1;
            length |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                bail!("a part length at byte {} is too large", self.read);
            }
        }
        let at = self.read;
        let mut bytes = vec![0u8; usize::try_from(length)?];
        self.reader
            .read_exact(&mut bytes)
            .with_context(|| format!("the backup ends inside the part at byte {at}"))?;
        self.read += length;
        let message = v1::BackupResponse::decode(bytes.as_slice())
            .map_err(|e| anyhow!("the part at byte {at} is not a backup part: {e}"))?;
        match message.part {
            Some(part) => Ok(Some(part)),
            None => bail!("the part at byte {at} is empty"),
        }
    }
}

/// The envelope of a backup's event, every field as stored
/// ([`baove_audit::checkpoint::envelope_from_proto`]).
///
/// # Errors
/// A field that is not what the log stores (an id that is not a UUID, a
/// hash that is not 32 bytes), naming the event's position.
pub fn envelope_from_proto(e: &v1::EventEnvelope) -> anyhow::Result<Envelope> {
    baove_audit::checkpoint::envelope_from_proto(e)
        .map_err(|why| anyhow!("the event at position {}: {why}", e.global_position))
}

/// Restores `spec`'s data directory (from `config`) from the backup file
/// `from`; see the module docs for what is checked.
///
/// # Errors
/// What did not check out, naming the part of the backup; the data
/// directory is then left as it was.
pub async fn restore(
    spec: &ServiceSpec,
    config: &Config,
    from: &Path,
    trusted_key: Option<&Path>,
) -> anyhow::Result<Restored> {
    let data_dir = &config.data_dir;
    let log_dir = empty_log_dir(data_dir)?;
    let file = std::fs::File::open(from)
        .with_context(|| format!("cannot open the backup {}", from.display()))?;
    let mut parts = Parts {
        reader: BufReader::with_capacity(1 << 20, file),
        read: 0,
    };
    let Some(Part::Manifest(manifest)) = parts.next()? else {
        bail!("{} does not start with a backup manifest", from.display());
    };
    if manifest.format != BACKUP_FORMAT {
        bail!(
            "the backup's format is {:?}, this restore reads {BACKUP_FORMAT:?}",
            manifest.format
        );
    }
    if manifest.service != spec.name {
        bail!(
            "the backup is of {}'s log, not {}'s",
            manifest.service,
            spec.name
        );
    }
    let checkpoint = baove_audit::checkpoint::checkpoint_from_proto(
        manifest
            .checkpoint
            .as_ref()
            .ok_or_else(|| anyhow!("the backup's manifest has no checkpoint"))?,
    );
    let (trusted, key_checked) = trusted_key_of(data_dir, trusted_key)?;
    checkpoint
        .verify(trusted.as_ref())
        .map_err(|e| anyhow!("the backup's checkpoint does not verify: {e}"))?;

    let building = fresh_building_dir(data_dir)?;
    let result = rebuild(spec, &mut parts, &building, &checkpoint).await;
    let (streams, side_entries) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&building);
            return Err(e);
        }
    };
    put_in_place(&building, &log_dir, data_dir)?;

    let kept_file = data_dir.join("eventlog.checkpoint.json");
    // The kept checkpoint, or the witnessed one, may cover more.
    let newer_kept = [kept_file.clone(), data_dir.join("eventlog.witnessed.json")]
        .iter()
        .filter_map(|file| std::fs::read(file).ok())
        .filter_map(|text| serde_json::from_slice::<Checkpoint>(&text).ok())
        .map(|kept| kept.global_position)
        .max()
        .filter(|position| *position > checkpoint.global_position);
    let local_key = data_dir.join("checkpoint-key.pub.pem");
    let signed_here = local_key.exists()
        && baove_security::token::read_verifying_key(&local_key)
            .is_ok_and(|key| hex::encode(key.as_bytes()) == checkpoint.public_key);
    let kept = newer_kept.is_none() && signed_here;
    if kept {
        let aside = kept_file.with_extension("json.tmp");
        std::fs::write(&aside, serde_json::to_vec_pretty(&checkpoint)?)?;
        std::fs::File::open(&aside)?.sync_all()?;
        std::fs::rename(&aside, &kept_file)?;
        std::fs::File::open(data_dir)?.sync_all()?;
    }
    Ok(Restored {
        events: checkpoint.global_position,
        streams,
        side_entries,
        checkpoint,
        key_checked,
        kept,
        newer_kept,
    })
}

/// Imports the events and side entries into a new log in `dir` and checks
/// it against the checkpoint; returns (streams, side entries).
async fn rebuild<R: Read>(
    spec: &ServiceSpec,
    parts: &mut Parts<R>,
    dir: &PathBuf,
    checkpoint: &Checkpoint,
) -> anyhow::Result<(u64, u64)> {
    let log = EventLog::open(dir)
        .await
        .with_context(|| format!("cannot create the log in {}", dir.display()))?;
    let mut side_entries = 0u64;
    let end = loop {
        match parts.next()? {
            None => bail!(
                "the backup ends without its end record (at position {}): the file is truncated",
                log.last_position()
            ),
            Some(Part::Manifest(_)) => bail!("the backup holds a second manifest"),
            Some(Part::Events(page)) => {
                if side_entries > 0 {
                    bail!("the backup holds events after side entries");
                }
                let events = page
                    .events
                    .iter()
                    .map(envelope_from_proto)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                if events
                    .last()
                    .is_some_and(|e| e.global_position > checkpoint.global_position)
                {
                    bail!(
                        "the backup holds events beyond its checkpoint's position {}",
                        checkpoint.global_position
                    );
                }
                log.import(events)
                    .await
                    .context("the backup's events do not verify")?;
            }
            Some(Part::SideEntry(entry)) => {
                if !spec.side_trees.contains(&entry.tree.as_str()) {
                    bail!(
                        "the backup holds an entry of side tree {:?}, which {} does not have",
                        entry.tree,
                        spec.name
                    );
                }
                log.side_tree(&entry.tree)?.insert(entry.key, entry.value)?;
                side_entries += 1;
            }
            Some(Part::End(end)) => break end,
        }
    };
    if parts.next()?.is_some() {
        bail!("the backup holds parts after its end record");
    }
    let position = log.last_position();
    if end.events != position || position != checkpoint.global_position {
        bail!(
            "the backup holds {position} events, its end record says {} and its checkpoint covers {}",
            end.events,
            checkpoint.global_position
        );
    }
    if end.side_entries != side_entries {
        bail!(
            "the backup holds {side_entries} side entries, its end record says {}",
            end.side_entries
        );
    }
    checkpointer::check_root(&log, checkpoint).await.map_err(|problem| {
        anyhow!("the restored log does not match the backup's checkpoint ({problem}): the backup was altered or is of another log")
    })?;
    let streams = verify_every_stream(&log).await?;
    // Durable before the directory is renamed into place.
    log.close().await?;
    Ok((streams, side_entries))
}

/// What a rebuild from the log stream did.
#[derive(Debug)]
pub struct Rebuilt {
    /// Events imported.
    pub events: u64,
    /// Streams.
    pub streams: u64,
    /// The newest checkpoint in the rebuilt log, checked against it.
    pub checkpoint: Option<Checkpoint>,
    /// What its signature was checked against.
    pub key_checked: String,
}

/// Rebuilds `spec`'s event log in `config.data_dir` from its log stream on
/// NATS (`config.nats_url`), as [`restore`] does from a file.
///
/// # Errors
/// NATS unreachable within 30 s, the stream missing or empty, an event
/// that does not verify, or the log's newest checkpoint not matching; the
/// data directory is then left as it was.
pub async fn rebuild_from_stream(
    spec: &ServiceSpec,
    config: &Config,
    trusted_key: Option<&Path>,
) -> anyhow::Result<Rebuilt> {
    let data_dir = &config.data_dir;
    let log_dir = empty_log_dir(data_dir)?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let timer = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            cancel.cancel();
        })
    };
    let client = baove_bus::connect_as(
        &config.nats_url,
        &format!("baove-{}-rebuild", spec.name),
        config.nats_credentials()?,
        &cancel,
        None,
    )
    .await
    .map_err(|e| anyhow!("cannot reach NATS at {} within 30 s: {e}", config.nats_url))?;
    timer.abort();
    let js = async_nats::jetstream::new(client);
    let stream = spec.log_stream;
    if baove_bus::logstream::stream_end(&js, stream)
        .await?
        .is_none()
    {
        bail!("the log stream {} holds no events", stream.name);
    }
    let building = fresh_building_dir(data_dir)?;
    let result = async {
        let log = EventLog::open(&building)
            .await
            .with_context(|| format!("cannot create the log in {}", building.display()))?;
        let events = baove_bus::logstream::catch_up(&log, &js, stream)
            .await
            .with_context(|| format!("the events of {} do not verify", stream.name))?;
        let (checkpoint, key_checked) =
            check_newest_checkpoint(&log, data_dir, trusted_key).await?;
        let streams = verify_every_stream(&log).await?;
        log.close().await?;
        anyhow::Ok(Rebuilt {
            events,
            streams,
            checkpoint,
            key_checked,
        })
    }
    .await;
    let rebuilt = match result {
        Ok(rebuilt) => rebuilt,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&building);
            return Err(e);
        }
    };
    put_in_place(&building, &log_dir, data_dir)?;
    Ok(rebuilt)
}

/// Verifies every stream's chain; returns how many streams there are.
async fn verify_every_stream(log: &EventLog) -> anyhow::Result<u64> {
    let mut after = None;
    let mut count = 0u64;
    loop {
        let heads = log.heads(after, 1000).await?;
        let Some(last) = heads.last() else {
            return Ok(count);
        };
        after = Some(last.stream);
        for head in &heads {
            count += 1;
            match log.verify(head.stream).await? {
                Verification::Intact(_) => {}
                Verification::NoStream => bail!("stream {} has a head but no events", head.stream),
                Verification::Broken {
                    first_bad_seq,
                    reason,
                } => bail!(
                    "stream {} does not verify at seq {first_bad_seq}: {reason}",
                    head.stream
                ),
            }
        }
    }
}

/// The newest checkpoint the log holds, its signature checked and its root
/// compared with the rebuilt log's tree at its size.
async fn check_newest_checkpoint(
    log: &EventLog,
    data_dir: &Path,
    trusted_key: Option<&Path>,
) -> anyhow::Result<(Option<Checkpoint>, String)> {
    let newest = log
        .read_stream_backward(baove_audit::access::CHECKPOINT_STREAM, None, 1)
        .await?;
    let Some(event) = newest.first() else {
        return Ok((None, "no checkpoint in the log".to_owned()));
    };
    let checkpoint: Checkpoint = serde_json::from_str(&event.payload)
        .map_err(|e| anyhow!("the log's newest checkpoint does not decode: {e}"))?;
    let (trusted, key_checked) = trusted_key_of(data_dir, trusted_key)?;
    checkpoint
        .verify(trusted.as_ref())
        .map_err(|e| anyhow!("the log's newest checkpoint does not verify: {e}"))?;
    checkpointer::check_root(log, &checkpoint)
        .await
        .map_err(|problem| {
            anyhow!("the rebuilt log does not match the newest checkpoint it holds: {problem}")
        })?;
    Ok((Some(checkpoint), key_checked))
}

/// The key a checkpoint's signature is checked against: `trusted_key`,
/// else the data directory's own checkpoint key, else none (only the key
/// the checkpoint names); and how to say which.
fn trusted_key_of(
    data_dir: &Path,
    trusted_key: Option<&Path>,
) -> anyhow::Result<(Option<ed25519_dalek::VerifyingKey>, String)> {
    let local_key = data_dir.join("checkpoint-key.pub.pem");
    Ok(match trusted_key {
        Some(path) => (
            Some(baove_security::token::read_verifying_key(path)?),
            format!("the trusted key {}", path.display()),
        ),
        None if local_key.exists() => (
            Some(baove_security::token::read_verifying_key(&local_key)?),
            format!("this data directory's key {}", local_key.display()),
        ),
        None => (
            None,
            "only the key the checkpoint names (give --trusted-key to check it against a key you hold)".to_owned(),
        ),
    })
}

/// `<data_dir>/eventlog`, refused when it already holds a log: a restore
/// never writes over one.
fn empty_log_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let log_dir = data_dir.join("eventlog");
    if log_dir.exists() && std::fs::read_dir(&log_dir)?.next().is_some() {
        bail!(
            "{} already holds an event log: move it aside (keep it for the investigation) and restore again; a restore never writes over a log",
            log_dir.display()
        );
    }
    Ok(log_dir)
}

/// `<data_dir>/eventlog.restoring`, emptied: where a log is rebuilt before
/// it is renamed into place.
fn fresh_building_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let building = data_dir.join("eventlog.restoring");
    if building.exists() {
        std::fs::remove_dir_all(&building)?;
    }
    Ok(building)
}

/// Renames the rebuilt log into place, durably.
fn put_in_place(building: &Path, log_dir: &Path, data_dir: &Path) -> anyhow::Result<()> {
    if log_dir.exists() {
        std::fs::remove_dir(log_dir)?;
    }
    std::fs::rename(building, log_dir)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}
