//! Signed checkpoints of a service's log.
//!
//! Every `checkpoint_secs` (and on demand: `GetCheckpoint { fresh }`,
//! `ExportCase`) the service computes the heads of all its streams as they
//! stood at its current global position, builds the Merkle root over them
//! ([`baove_security::merkle`]), signs it with its Ed25519 key
//! (`<data_dir>/checkpoint-key.pem`, created on first start, public half in
//! `checkpoint-key.pub.pem`), appends it as `CheckpointSigned` to its
//! checkpoint stream and publishes it on NATS with its other events. An
//! auditor who kept a checkpoint can later recompute the heads at that
//! position and compare: a rewritten log no longer matches.
//!
//! The newest checkpoint is also kept outside the log's sled files, in
//! `<data_dir>/<log dir>.checkpoint.json` (written aside, synced, renamed),
//! and one is signed at every clean stop. At start the service checks its
//! log against it ([`Checkpointer::check_kept`]): a log that ends before
//! the kept position (sled recovered an older state of damaged files, or
//! an older copy was put back) or whose heads there differ is refused, with
//! what is missing and how to restore, instead of being served short.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use baove_eventlog::{Actor, AppendRequest, EventLog, ExpectedVersion, NewEvent, StreamId};
use baove_security::checkpoint::{Checkpoint, head_leaf};
use baove_security::merkle::{self, Hash};
use ed25519_dalek::SigningKey;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::access::CHECKPOINT_STREAM;

/// The event type of a checkpoint.
pub const CHECKPOINT_SIGNED: &str = "CheckpointSigned";

/// The heads of every stream at a global position, sorted by stream id.
pub struct HeadsAt {
    /// The position.
    pub position: u64,
    /// `(stream, version, head hash)`.
    pub heads: Vec<(StreamId, u64, [u8; 32])>,
}

impl HeadsAt {
    /// The leaf hashes, in tree order.
    #[must_use]
    pub fn leaves(&self) -> Vec<Hash> {
        self.heads
            .iter()
            .map(|(s, v, h)| merkle::leaf_hash(&head_leaf(s.as_bytes(), *v, h)))
            .collect()
    }
}

/// Signs checkpoints of one log.
#[derive(Clone)]
pub struct Checkpointer {
    log: EventLog,
    service: String,
    key: Arc<SigningKey>,
    clock: baove_eventlog::Clock,
    /// One checkpoint at a time.
    busy: Arc<Mutex<()>>,
    /// Whether checkpoints go on NATS with the log's other events.
    publish: bool,
}

impl Checkpointer {
    /// A checkpointer of `log` for `service`, with the key in `data_dir`
    /// (created if missing).
    ///
    /// # Errors
    /// When the key cannot be read or created.
    pub fn open(
        log: EventLog,
        service: &str,
        data_dir: &Path,
        clock: baove_eventlog::Clock,
    ) -> anyhow::Result<Self> {
        let private = data_dir.join("checkpoint-key.pem");
        let public = data_dir.join("checkpoint-key.pub.pem");
        if !private.exists() {
            std::fs::create_dir_all(data_dir)?;
            baove_security::token::generate_key_pair(&private, &public)?;
            tracing::info!(key = %public.display(), "created the checkpoint signing key");
        }
        let key = baove_security::token::read_signing_key(&private)?;
        Ok(Self {
            log,
            service: service.to_owned(),
            key: Arc::new(key),
            clock,
            busy: Arc::default(),
            publish: true,
        })
    }

    /// The same checkpointer keeping its checkpoints in the log only (the
    /// access log, which has no relay).
    #[must_use]
    pub fn unpublished(mut self) -> Self {
        self.publish = false;
        self
    }

    /// The time on this checkpointer's clock, Unix milliseconds.
    #[must_use]
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The heads of every stream as they stood at the log's current
    /// position.
    ///
    /// # Errors
    /// When the log cannot be read.
    pub async fn heads_now(&self) -> Result<HeadsAt, baove_eventlog::Error> {
        heads_at(&self.log, self.log.last_position()).await
    }

    /// Signs a checkpoint of the log as it is now and keeps it (appended to
    /// the checkpoint stream, published on NATS); returns it with the heads
    /// it covers.
    ///
    /// # Errors
    /// When the log cannot be read or written.
    pub async fn sign_now(&self) -> Result<(Checkpoint, HeadsAt), baove_eventlog::Error> {
        let _one = self.busy.lock().await;
        let heads = self.heads_now().await?;
        let leaves = heads.leaves();
        let checkpoint = Checkpoint::sign(
            &self.key,
            &self.service,
            heads.position,
            leaves.len() as u64,
            &merkle::root(&leaves),
            (self.clock)(),
        );
        let appended = self
            .log
            .append(AppendRequest {
                stream: CHECKPOINT_STREAM,
                expected: ExpectedVersion::Any,
                command_id: format!(
                    "checkpoint:{}:{}",
                    heads.position, checkpoint.signed_at_unix_ms
                ),
                actor: Actor::system(&self.service),
                causation_id: String::new(),
                correlation_id: String::new(),
                events: vec![NewEvent::new(CHECKPOINT_SIGNED, 1, &checkpoint)?],
                publish: self.publish,
            })
            .await;
        match appended {
            // Durable in this log; the cluster's copy follows when it can.
            Ok(_) | Err(baove_eventlog::Error::NotReplicated { .. }) => {}
            Err(e) => return Err(e),
        }
        // Durable in the log: now kept outside it too.
        if let Err(e) = self.keep(&checkpoint).await {
            tracing::error!(file = %self.kept_file().display(), error = %e, "cannot keep the checkpoint outside the log");
        }
        Ok((checkpoint, heads))
    }

    /// Signs a checkpoint unless the log has not moved since the newest
    /// (its own append moves it by one): at a clean stop.
    ///
    /// # Errors
    /// As [`Checkpointer::sign_now`].
    pub async fn sign_if_moved(&self) -> Result<(), baove_eventlog::Error> {
        let signed_at = self.latest().await?.map_or(0, |c| c.global_position);
        let file = self.kept_file();
        let kept = tokio::task::spawn_blocking(move || file.exists())
            .await
            .unwrap_or(false);
        if self.log.last_position() > signed_at + 1 || !kept {
            self.sign_now().await?;
        }
        Ok(())
    }

    /// Where the newest checkpoint is kept outside the log's sled files:
    /// beside the log's directory.
    #[must_use]
    pub fn kept_file(&self) -> PathBuf {
        let dir = self.log.path();
        let name = dir
            .file_name()
            .map_or_else(|| "log".into(), |n| n.to_string_lossy().into_owned());
        dir.with_file_name(format!("{name}.checkpoint.json"))
    }

    async fn keep(&self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        let file = self.kept_file();
        let text = serde_json::to_vec_pretty(checkpoint).map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let aside = file.with_extension("json.tmp");
            let mut out = std::fs::File::create(&aside)?;
            out.write_all(&text)?;
            out.sync_all()?;
            std::fs::rename(&aside, &file)?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Checks the log against the checkpoint kept outside it: the log must
    /// reach its position, and the heads there must give its root. Returns
    /// the kept checkpoint (none on a first start).
    ///
    /// # Errors
    /// What is wrong, where, and how to recover: the kept file unreadable or
    /// not signed by this service's key, the log ending before the kept
    /// position (acknowledged events missing), or the heads differing.
    pub async fn check_kept(&self) -> anyhow::Result<Option<Checkpoint>> {
        let file = self.kept_file();
        let dir = self.log.path().display().to_string();
        let read = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || std::fs::read(file))
                .await
                .map_err(|e| anyhow::anyhow!("reading the kept checkpoint failed: {e}"))?
        };
        let text = match read {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!("cannot read the kept checkpoint {}: {e}", file.display()),
        };
        let kept: Checkpoint = serde_json::from_slice(&text).map_err(|e| {
            anyhow::anyhow!(
                "the kept checkpoint {} is damaged ({e}); it is how baove knows how far the log in {dir} went. Restore it with the data directory from a backup",
                file.display()
            )
        })?;
        kept.verify(Some(&self.key.verifying_key())).map_err(|e| {
            anyhow::anyhow!(
                "the kept checkpoint {} is not this service's ({e})",
                file.display()
            )
        })?;
        let signed = baove_domain::calendar::describe(kept.signed_at_unix_ms);
        let last = self.log.last_position();
        if last < kept.global_position {
            anyhow::bail!(
                "the event log in {dir} ends at position {last}, but the checkpoint signed {signed} ({}) covers position {}: {} acknowledged events are missing from its sled files (damaged files recovered to an earlier state, or an older copy put back). baove does not serve a shortened log. Restore the data directory from a backup taken at or after that checkpoint (README, \"When a disk is damaged\"), then start again",
                file.display(),
                kept.global_position,
                kept.global_position - last,
            );
        }
        let heads = heads_at(&self.log, kept.global_position)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the event log in {dir} to check it against {}: {e}",
                    file.display()
                )
            })?;
        let leaves = heads.leaves();
        let root = hex::encode(merkle::root(&leaves));
        if root != kept.root_hash || leaves.len() as u64 != kept.tree_size {
            anyhow::bail!(
                "the event log in {dir} no longer matches the checkpoint signed {signed} ({}) at position {}: its stream heads there differ ({} streams, {} signed), so an event was lost or changed. baove does not serve it. Restore the data directory from a backup taken at or after that checkpoint, then start again",
                file.display(),
                kept.global_position,
                leaves.len(),
                kept.tree_size,
            );
        }
        Ok(Some(kept))
    }

    /// The newest kept checkpoint.
    ///
    /// # Errors
    /// When the log cannot be read.
    pub async fn latest(&self) -> Result<Option<Checkpoint>, baove_eventlog::Error> {
        let last = self
            .log
            .read_stream_backward(CHECKPOINT_STREAM, None, 1)
            .await?;
        Ok(last
            .first()
            .and_then(|e| serde_json::from_str(&e.payload).ok()))
    }

    /// Signs a checkpoint every `every` while the log moved, until `cancel`.
    pub async fn run(self, every: std::time::Duration, cancel: CancellationToken) {
        let mut signed_at = self
            .latest()
            .await
            .ok()
            .flatten()
            .map_or(0, |c| c.global_position);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            // The checkpoint's own append moves the log by one.
            if self.log.last_position() <= signed_at + 1 {
                continue;
            }
            match self.sign_now().await {
                Ok((checkpoint, _)) => {
                    signed_at = checkpoint.global_position;
                    tracing::info!(position = signed_at, root = %checkpoint.root_hash, "checkpoint signed");
                }
                Err(e) => tracing::error!(error = %e, "cannot sign a checkpoint"),
            }
        }
    }
}

/// The heads of every stream of `log` as they stood at `position`: a
/// stream appended to since is walked back to its last event at or before
/// it; a stream that began after it is left out.
///
/// # Errors
/// When the log cannot be read.
pub async fn heads_at(log: &EventLog, position: u64) -> Result<HeadsAt, baove_eventlog::Error> {
    let mut heads = Vec::new();
    let mut after = None;
    loop {
        let page = log.heads(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.stream);
        for head in page {
            let mut from = Some(head.version);
            'walk: loop {
                let events = log.read_stream_backward(head.stream, from, 64).await?;
                if events.is_empty() {
                    break;
                }
                for event in &events {
                    if event.global_position <= position {
                        heads.push((head.stream, event.seq, event.hash.0));
                        break 'walk;
                    }
                    from = event.seq.checked_sub(1).filter(|s| *s > 0);
                }
                if from.is_none() {
                    break;
                }
            }
        }
    }
    Ok(HeadsAt { position, heads })
}
