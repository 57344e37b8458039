//! Signed checkpoints of a service's log, and the witnessed one.
//!
//! Every `checkpoint_secs` (and on demand: `GetCheckpoint { fresh }`,
//! `ExportCase`, `Backup`) the service signs the tree head of its log's
//! Merkle tree ([`baove_eventlog::tlog`]) as a C2SP checkpoint under the
//! origin `<log_origin>/<service>` with its Ed25519 key
//! (`<data_dir>/checkpoint-key.pem`, created on first start; public half in
//! `checkpoint-key.pub.pem`, signed-note verifier key in
//! `<log dir>.vkey`), appends it as `CheckpointSigned` to its checkpoint
//! stream and publishes it on NATS with its other events.
//!
//! The newest checkpoint is also kept outside the log's sled files, in
//! `<data_dir>/<log dir>.checkpoint.json` (written aside, synced, renamed),
//! and one is signed at every clean stop. The newest checkpoint a witness
//! cosigned (`AddCosignature`) is kept the same way in
//! `<log dir>.witnessed.json`. At start the service checks its log against
//! both ([`Checkpointer::check_kept`]): a log that ends before either's
//! tree size (sled recovered an older state of damaged files, or an older
//! copy was put back) or whose tree there has another root is refused, with
//! what is missing and how to restore, instead of being served short.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, verifier_key};
use baove_eventlog::{Actor, AppendRequest, EventLog, ExpectedVersion, NewEvent};
use ed25519_dalek::SigningKey;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::access::CHECKPOINT_STREAM;

/// The event type of a checkpoint.
pub const CHECKPOINT_SIGNED: &str = "CheckpointSigned";

/// Whether `log`'s tree of the checkpoint's size has the checkpoint's root
/// and every stream's last event there is under it
/// ([`EventLog::check_tree`]): `Err` says, in words, what does not hold
/// (the log too short, another root, a changed event, a Merkle tree that
/// covers events the log lost).
///
/// # Errors
/// As said; the log unreadable too.
pub async fn check_root(log: &EventLog, checkpoint: &Checkpoint) -> Result<(), String> {
    let last = log.last_position();
    if last < checkpoint.tree_size {
        return Err(format!(
            "the log ends at position {last}, but the checkpoint covers position {}: {} acknowledged events are missing",
            checkpoint.tree_size,
            checkpoint.tree_size - last
        ));
    }
    let root = checkpoint.root()?;
    log.check_tree(checkpoint.tree_size, root)
        .await
        .map_err(|e| match e {
            baove_eventlog::Error::Corrupt(problem) => problem,
            other => other.to_string(),
        })?;
    Ok(())
}

/// Signs checkpoints of one log.
#[derive(Clone)]
pub struct Checkpointer {
    log: EventLog,
    service: String,
    origin: String,
    key: Arc<SigningKey>,
    clock: baove_eventlog::Clock,
    /// One checkpoint (or one witnessed checkpoint kept) at a time.
    busy: Arc<Mutex<()>>,
    /// Whether checkpoints go on NATS with the log's other events.
    publish: bool,
}

impl Checkpointer {
    /// A checkpointer of `log` for `service` under `origin`, signing with
    /// `key_file` when given (it must exist: the processes of a service in a
    /// cluster share it), else with the key in `data_dir` (created if
    /// missing); writes the public half to `data_dir` and the signed-note
    /// verifier key beside the log (`<log dir>.vkey`).
    ///
    /// # Errors
    /// When the key cannot be read or created.
    pub fn open(
        log: EventLog,
        service: &str,
        origin: &str,
        key_file: Option<&Path>,
        data_dir: &Path,
        clock: baove_eventlog::Clock,
    ) -> anyhow::Result<Self> {
        let private = data_dir.join("checkpoint-key.pem");
        let public = data_dir.join("checkpoint-key.pub.pem");
        let key = if let Some(file) = key_file {
            let key = baove_security::token::read_signing_key(file).map_err(|e| {
                anyhow::anyhow!(
                    "checkpoint_key_file {}: {e} (make it once with `baove token keygen` and give every process of the service the same file)",
                    file.display()
                )
            })?;
            let pem = baove_security::token::public_key_pem(&key.verifying_key());
            if std::fs::read_to_string(&public).ok().as_deref() != Some(pem.as_str()) {
                std::fs::create_dir_all(data_dir)?;
                std::fs::write(&public, pem)?;
            }
            key
        } else {
            if !private.exists() {
                std::fs::create_dir_all(data_dir)?;
                baove_security::token::generate_key_pair(&private, &public)?;
                tracing::info!(key = %public.display(), "created the checkpoint signing key");
            }
            baove_security::token::read_signing_key(&private)?
        };
        let checkpointer = Self {
            log,
            service: service.to_owned(),
            origin: origin.to_owned(),
            key: Arc::new(key),
            clock,
            busy: Arc::default(),
            publish: true,
        };
        let vkey = checkpointer.file("vkey");
        let text = format!("{}\n", checkpointer.verifier_key());
        if std::fs::read_to_string(&vkey).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&vkey, text)?;
        }
        Ok(checkpointer)
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

    /// The signed-note verifier key of this log's checkpoints.
    #[must_use]
    pub fn verifier_key(&self) -> String {
        verifier_key(&self.origin, &self.key.verifying_key())
    }

    /// Signs a checkpoint of the log as it is now and keeps it (appended to
    /// the checkpoint stream, published on NATS).
    ///
    /// # Errors
    /// When the log cannot be read or written.
    pub async fn sign_now(&self) -> Result<Checkpoint, baove_eventlog::Error> {
        let _one = self.busy.lock().await;
        let size = self.log.last_position();
        let root = self.log.tree_root(size).await?;
        let checkpoint = Checkpoint::sign(
            &self.key,
            &self.service,
            &self.origin,
            size,
            &root,
            (self.clock)(),
        )
        .map_err(|rule| baove_eventlog::Error::InvalidArgument {
            field: "log_origin",
            rule,
        })?;
        let appended = self
            .log
            .append(AppendRequest {
                stream: CHECKPOINT_STREAM,
                expected: ExpectedVersion::Any,
                command_id: format!("checkpoint:{size}:{}", checkpoint.signed_at_unix_ms),
                actor: Actor::system(&self.service),
                causation_id: String::new(),
                correlation_id: String::new(),
                events: vec![NewEvent::new(CHECKPOINT_SIGNED, 2, &checkpoint)?],
                publish: self.publish,
            })
            .await;
        match appended {
            // Durable in this log; the cluster's copy follows when it can.
            Ok(_) | Err(baove_eventlog::Error::NotReplicated { .. }) => {}
            Err(e) => return Err(e),
        }
        // Durable in the log: now kept outside it too.
        let file = self.kept_file();
        if let Err(e) = keep(&file, &checkpoint).await {
            tracing::error!(file = %file.display(), error = %e, "cannot keep the checkpoint outside the log");
        }
        Ok(checkpoint)
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

    /// A file beside the log's directory: `<log dir>.<extension>`.
    fn file(&self, extension: &str) -> PathBuf {
        let dir = self.log.path();
        let name = dir
            .file_name()
            .map_or_else(|| "log".into(), |n| n.to_string_lossy().into_owned());
        dir.with_file_name(format!("{name}.{extension}"))
    }

    /// Where the newest checkpoint is kept outside the log's sled files:
    /// beside the log's directory.
    #[must_use]
    pub fn kept_file(&self) -> PathBuf {
        self.file("checkpoint.json")
    }

    /// Where the newest witnessed checkpoint is kept.
    #[must_use]
    pub fn witnessed_file(&self) -> PathBuf {
        self.file("witnessed.json")
    }

    /// Keeps a checkpoint a witness cosigned, after checking that it is
    /// this log's (signed with this service's key) and that the log's tree
    /// of its size has its root. A witnessed checkpoint smaller than the one
    /// already kept is checked but does not replace it. Returns the tree
    /// size of the witnessed checkpoint now kept.
    ///
    /// # Errors
    /// What does not hold, in words.
    pub async fn add_cosignature(&self, checkpoint: &Checkpoint) -> Result<u64, String> {
        checkpoint.verify(Some(&self.key.verifying_key()))?;
        if checkpoint.origin != self.origin {
            return Err(format!(
                "the checkpoint's origin is {:?}, this log's is {:?}",
                checkpoint.origin, self.origin
            ));
        }
        let own = self.verifier_key();
        let note = signed_note::Note::from_bytes(checkpoint.note.as_bytes())
            .map_err(|e| format!("the note is malformed: {e}"))?;
        let (_, others) = note
            .verify(&signed_note::VerifierList::new(vec![Box::new(
                signed_note::StandardVerifier::new(&own).map_err(|e| e.to_string())?,
            )]))
            .map_err(|e| e.to_string())?;
        if others.is_empty() {
            return Err(
                "the note carries no signature but the service's own: no witness cosigned it"
                    .into(),
            );
        }
        check_root(&self.log, checkpoint).await?;
        let _one = self.busy.lock().await;
        let file = self.witnessed_file();
        if let Some(kept) = read_kept(&file).await.map_err(|e| format!("{e:#}"))?
            && kept.tree_size > checkpoint.tree_size
        {
            return Ok(kept.tree_size);
        }
        keep(&file, checkpoint)
            .await
            .map_err(|e| format!("cannot keep it in {}: {e}", file.display()))?;
        Ok(checkpoint.tree_size)
    }

    /// The newest witnessed checkpoint kept, if any.
    ///
    /// # Errors
    /// When the file is unreadable or damaged.
    pub async fn witnessed(&self) -> anyhow::Result<Option<Checkpoint>> {
        read_kept(&self.witnessed_file()).await
    }

    /// Checks the log against the checkpoints kept outside it (the newest
    /// signed, the newest witnessed): the log must reach their tree size,
    /// and its tree there must have their root. With neither, the log must
    /// still be what its own Merkle tree holds (every stream's last event
    /// under the tree's root). Returns the newest signed one (none on a
    /// first start).
    ///
    /// # Errors
    /// What is wrong, where, and how to recover: a kept file unreadable or
    /// not signed by this service's key, the log ending before its size
    /// (acknowledged events missing), or another root.
    pub async fn check_kept(&self) -> anyhow::Result<Option<Checkpoint>> {
        let dir = self.log.path().display().to_string();
        let kept = read_kept(&self.kept_file()).await?;
        let witnessed = read_kept(&self.witnessed_file()).await?;
        if kept.is_none() && witnessed.is_none() {
            // Nothing outside the sled files says how far the log went (a
            // first start, or the files deleted): at least the log must
            // still be what its own Merkle tree holds.
            let size = self.log.last_position();
            let checked = match self.log.tree_root(size).await {
                Ok(root) => self.log.check_tree(size, root).await,
                Err(e) => Err(e),
            };
            checked.map_err(|e| {
                anyhow::anyhow!(
                    "the event log in {dir} no longer matches its own Merkle tree ({e}). baove does not serve a rewritten log. Restore the data directory from a backup (README, \"When a disk is damaged\"), then start again"
                )
            })?;
            return Ok(None);
        }
        for (file, checkpoint, what) in [
            (self.kept_file(), kept.clone(), "the checkpoint signed"),
            (
                self.witnessed_file(),
                witnessed,
                "the checkpoint a witness cosigned",
            ),
        ] {
            let Some(checkpoint) = checkpoint else {
                continue;
            };
            let signed = baove_domain::calendar::describe(checkpoint.signed_at_unix_ms);
            if checkpoint.note.is_empty() {
                // Signed over stream heads by an earlier version: only its
                // position can be checked.
                let last = self.log.last_position();
                if last < checkpoint.global_position {
                    anyhow::bail!(
                        "the event log in {dir} ends at position {last}, but {what} {signed} ({}) covers position {}: {} acknowledged events are missing from its sled files (damaged files recovered to an earlier state, or an older copy put back). baove does not serve a shortened log. Restore the data directory from a backup taken at or after that checkpoint (README, \"When a disk is damaged\"), then start again",
                        file.display(),
                        checkpoint.global_position,
                        checkpoint.global_position - last,
                    );
                }
                tracing::warn!(file = %file.display(), "the kept checkpoint predates the transparency log: only its position was checked; a new one is signed at the next checkpoint");
                continue;
            }
            checkpoint.verify(Some(&self.key.verifying_key())).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not this service's checkpoint ({e}); it is how baove knows how far the log in {dir} went. Restore it with the data directory from a backup",
                    file.display()
                )
            })?;
            check_root(&self.log, &checkpoint).await.map_err(|problem| {
                anyhow::anyhow!(
                    "the event log in {dir} does not match {what} {signed} ({}) at position {}: {problem}. baove does not serve a shortened or rewritten log. Restore the data directory from a backup taken at or after that checkpoint (README, \"When a disk is damaged\"), then start again",
                    file.display(),
                    checkpoint.tree_size,
                )
            })?;
        }
        Ok(kept)
    }

    /// The newest checkpoint in the log.
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
                Ok(checkpoint) => {
                    signed_at = checkpoint.global_position;
                    tracing::info!(position = signed_at, root = %checkpoint.root_hash, "checkpoint signed");
                }
                Err(e) => tracing::error!(error = %e, "cannot sign a checkpoint"),
            }
        }
    }
}

/// Reads a kept checkpoint file (none when it does not exist).
/// After the events of the log in `log_dir` past position `keep` were set
/// aside ([`baove_eventlog::set_aside_after`]: the cluster never stored
/// them), moves its kept checkpoint aside when it covers any of them
/// (renamed `<file>.set-aside-<ms>`, kept for an auditor): it speaks of
/// events the log no longer holds, so it would refuse the log at the next
/// start. The checkpoint a witness cosigned stays: a witness only sees
/// checkpoints the cluster stored. Returns the new name, if moved.
///
/// # Errors
/// When the kept file cannot be read or renamed.
pub async fn set_aside_kept(
    log_dir: &Path,
    keep: u64,
    now_ms: i64,
) -> anyhow::Result<Option<PathBuf>> {
    let name = log_dir
        .file_name()
        .map_or_else(|| "log".into(), |n| n.to_string_lossy().into_owned());
    let file = log_dir.with_file_name(format!("{name}.checkpoint.json"));
    match read_kept(&file).await? {
        Some(kept) if kept.global_position > keep || kept.tree_size > keep => {
            let aside = file.with_file_name(format!("{name}.checkpoint.json.set-aside-{now_ms}"));
            tokio::fs::rename(&file, &aside).await.with_context(|| {
                format!("cannot move the kept checkpoint {} aside", file.display())
            })?;
            Ok(Some(aside))
        }
        _ => Ok(None),
    }
}

async fn read_kept(file: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let read = {
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::read(file))
            .await
            .map_err(|e| anyhow::anyhow!("reading the kept checkpoint failed: {e}"))?
    };
    let text = match read {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read the kept checkpoint {}: {e}", file.display()),
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        anyhow::anyhow!(
            "the kept checkpoint {} is damaged ({e}); it is how baove knows how far the log beside it went. Restore it with the data directory from a backup",
            file.display()
        )
    })
}

/// Writes a checkpoint to `file`: aside, synced, renamed, directory synced.
async fn keep(file: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let file = file.to_path_buf();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use baove_eventlog::{Actor, AppendRequest, EventLog, ExpectedVersion, NewEvent, StreamId};

    use super::{Checkpointer, set_aside_kept};

    async fn append(log: &EventLog, n: usize) {
        log.append(AppendRequest {
            stream: StreamId::new(),
            expected: ExpectedVersion::NoStream,
            command_id: uuid::Uuid::now_v7().to_string(),
            actor: Actor::system("test"),
            causation_id: String::new(),
            correlation_id: String::new(),
            events: (0..n)
                .map(|i| NewEvent::new("NoteAdded", 1, &serde_json::json!({ "i": i })).unwrap())
                .collect(),
            publish: false,
        })
        .await
        .unwrap();
    }

    fn checkpointer(log: &EventLog, data: &std::path::Path) -> Checkpointer {
        Checkpointer::open(
            log.clone(),
            "casework",
            "baove.test/casework",
            None,
            data,
            baove_eventlog::Options::default().clock,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn given_a_kept_checkpoint_over_events_set_aside_then_it_is_moved_aside_and_the_log_starts_again()
     {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("eventlog");
        let log = EventLog::open(&dir).await.unwrap();
        append(&log, 3).await;
        let checkpoints = checkpointer(&log, data.path());
        // Signed at 3, appended at 4.
        checkpoints.sign_now().await.unwrap();
        assert_eq!(
            set_aside_kept(&dir, 4, 1).await.unwrap(),
            None,
            "it covers nothing set aside"
        );
        append(&log, 2).await;
        assert_eq!(checkpoints.sign_now().await.unwrap().tree_size, 6);
        drop(checkpoints);
        log.close().await.unwrap();
        drop(log);

        assert_eq!(
            baove_eventlog::set_aside_after(&dir, 4, "never stored", 2)
                .await
                .unwrap(),
            3
        );
        let aside = set_aside_kept(&dir, 4, 2)
            .await
            .unwrap()
            .expect("moved aside");
        assert_eq!(
            aside.file_name().unwrap().to_string_lossy(),
            "eventlog.checkpoint.json.set-aside-2"
        );
        let log = EventLog::open(&dir).await.unwrap();
        let checkpoints = checkpointer(&log, data.path());
        checkpoints.check_kept().await.unwrap();
        // Left in place, it would have refused the shortened log.
        std::fs::rename(&aside, checkpoints.kept_file()).unwrap();
        let refused = checkpoints
            .check_kept()
            .await
            .expect_err("a shortened log passed");
        assert!(
            refused.to_string().contains("does not match"),
            "{refused:#}"
        );
    }
}
