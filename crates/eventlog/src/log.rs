//! The event log: one sled database, one writer thread, async callers.
//!
//! Every write goes through the writer thread, which takes whatever appends
//! are waiting, decides each (a bad one is answered alone), writes the group
//! in one sled transaction and hands it to the sync thread, which makes all
//! groups handed to it durable with one `flush` + `fdatasync` before
//! answering any of their callers. Concurrent callers therefore share a
//! flush (group commit) and each still returns only once its events are on
//! stable storage.
//!
//! Reads run on tokio's blocking pool: sled calls block.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::envelope::{Actor, ChainHash, Envelope, MAX_FIELD_BYTES, NewEvent, StreamId};
use crate::{Error, layout};

/// Most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 1000;

/// Most appends one group commit takes from the queue before flushing.
const MAX_GROUP: usize = 1024;

/// The clock that stamps `recorded_at_ms` (milliseconds since the Unix epoch).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The stream version an append expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must have no events yet.
    NoStream,
    /// The stream's last seq must be exactly this (0 = no events).
    Exact(u64),
    /// Append whatever the version (for streams with a single writer, such as
    /// a service's own system stream).
    Any,
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "{v}"),
            Self::Any => f.write_str("any"),
        }
    }
}

/// One append: events for one stream, produced by one command.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// The stream to append to.
    pub stream: StreamId,
    /// The version the caller decided on.
    pub expected: ExpectedVersion,
    /// The command's idempotency key: appending again with it returns the
    /// first answer and writes nothing, forever.
    pub command_id: String,
    /// Who caused it.
    pub actor: Actor,
    /// The event that caused this command, or empty.
    pub causation_id: String,
    /// The flow's correlation id.
    pub correlation_id: String,
    /// The events, in order; 1 to [`MAX_EVENTS_PER_APPEND`].
    pub events: Vec<NewEvent>,
    /// Also put the events in the outbox, for the relay to publish.
    pub publish: bool,
}

/// The answer to an append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The stream appended to.
    pub stream: StreamId,
    /// Seq of the first event written.
    pub first_seq: u64,
    /// Seq of the last event written: the stream's new version.
    pub last_seq: u64,
    /// Global position of the first event written.
    pub first_position: u64,
    /// Global position of the last event written.
    pub last_position: u64,
    /// The stream's new head hash.
    pub head_hash: ChainHash,
    /// True when this is the stored answer to a command applied before:
    /// nothing was written this time.
    #[serde(skip)]
    pub replayed: bool,
}

/// The last event of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The stream.
    pub stream: StreamId,
    /// Seq of its last event.
    pub version: u64,
    /// Hash of its last event.
    pub hash: ChainHash,
}

/// What [`EventLog::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every event from seq 1 to the head verifies.
    Intact(Head),
    /// The first seq whose event was altered, removed, reordered or inserted.
    Broken {
        /// The first seq that does not verify.
        first_bad_seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The stream has no events and no head.
    NoStream,
}

/// How to open a log.
#[derive(Clone)]
pub struct Options {
    /// Stamps `recorded_at_ms`; the system clock by default. Tests inject one.
    pub clock: Clock,
    /// sled's page cache, in bytes (default 1 GiB, sled's own default).
    /// Reads that miss it go to disk and rebuild pages.
    pub cache_capacity: u64,
    /// The `log` label of its metrics ([`APPENDED`], [`GROUP_SIZE`],
    /// [`SYNC_SECONDS`]): `event` by default, `access` for an access log.
    pub name: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(system_now_ms),
            cache_capacity: 1024 * 1024 * 1024,
            name: "event",
        }
    }
}

/// Events made durable, by log (a counter).
pub const APPENDED: &str = "baove_eventlog_appended_events_total";
/// Appends (and imports, records) written by one group commit, by log (a
/// histogram).
pub const GROUP_SIZE: &str = "baove_eventlog_group_size";
/// How long one sled flush + fdatasync took, by log (a histogram).
pub const SYNC_SECONDS: &str = "baove_eventlog_sync_seconds";

fn system_now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A service's append-only event log. Cheap to clone; all clones share one
/// database and one writer.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    trees: Trees,
    jobs: mpsc::Sender<Job>,
    committed: watch::Receiver<u64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
    gate: std::sync::OnceLock<AckGate>,
    /// Set while a standby: the active's address; appends are refused.
    read_only: Mutex<Option<String>>,
}

/// What an append waits for besides the local disk, once set
/// ([`EventLog::gate_acks`]): another record of the log (the cluster's
/// copy) reaching its position.
#[derive(Clone, Debug)]
pub struct AckGate {
    /// The last global position the other record holds.
    pub reached: watch::Receiver<u64>,
    /// How long an append waits for it before [`Error::NotReplicated`].
    pub wait: std::time::Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer exits once every sender is gone (this is the last one
        // after `jobs` drops). Join it so that the sled lock is released when
        // the last handle goes: a reopen right after must not find it held.
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, tx));
        if let Ok(mut writer) = self.writer.lock()
            && let Some(handle) = writer.take()
        {
            let _ = handle.join();
        }
    }
}

/// A message a consumer set aside ([`EventLog::park`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parked {
    /// The subject it came on.
    pub subject: String,
    /// Why it could not be applied.
    pub reason: String,
    /// When it was set aside (Unix milliseconds).
    pub parked_at_ms: i64,
    /// The message as it arrived.
    pub payload: Vec<u8>,
}

#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) db: sled::Db,
    pub(crate) events: sled::Tree,
    pub(crate) global: sled::Tree,
    pub(crate) heads: sled::Tree,
    pub(crate) commands: sled::Tree,
    pub(crate) outbox: sled::Tree,
    inbox: sled::Tree,
    pub(crate) published: sled::Tree,
    parked: sled::Tree,
    pub(crate) tree: sled::Tree,
    pub(crate) set_aside: sled::Tree,
    /// One growth of the Merkle tree at a time.
    growing: Arc<Mutex<()>>,
}

impl Trees {
    pub(crate) fn open(db: sled::Db) -> Result<Self, Error> {
        Ok(Self {
            set_aside: db.open_tree(layout::SET_ASIDE)?,
            published: db.open_tree(layout::PUBLISHED)?,
            parked: db.open_tree(layout::PARKED)?,
            tree: db.open_tree(layout::TREE)?,
            growing: Arc::default(),
            events: db.open_tree(layout::EVENTS)?,
            global: db.open_tree(layout::GLOBAL)?,
            heads: db.open_tree(layout::HEADS)?,
            commands: db.open_tree(layout::COMMANDS)?,
            outbox: db.open_tree(layout::OUTBOX)?,
            inbox: db.open_tree(layout::INBOX)?,
            db,
        })
    }

    pub(crate) fn last_position(&self) -> Result<u64, Error> {
        match self.global.last()? {
            Some((key, _)) => layout::decode_u64(&key),
            None => Ok(0),
        }
    }

    fn head(&self, stream: StreamId) -> Result<Option<Head>, Error> {
        self.heads
            .get(stream.as_bytes())?
            .map(|value| layout::decode_head(stream, &value))
            .transpose()
    }

    pub(crate) fn event(&self, stream: StreamId, seq: u64) -> Result<Option<Envelope>, Error> {
        self.events
            .get(layout::event_key(stream, seq))?
            .map(|bytes| Envelope::decode(&bytes))
            .transpose()
    }

    fn event_at(&self, pointer: &[u8]) -> Result<Envelope, Error> {
        let (stream, seq) = layout::decode_pointer(pointer)?;
        self.event(stream, seq)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "global index points at missing event {stream}/{seq}"
            ))
        })
    }

    fn read_stream(
        &self,
        stream: StreamId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        let start = layout::event_key(stream, from.max(1));
        let end = layout::event_key(stream, u64::MAX);
        self.events
            .range(start..=end)
            .take(limit)
            .map(|item| Envelope::decode(&item?.1))
            .collect()
    }

    fn read_stream_backward(
        &self,
        stream: StreamId,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        let start = layout::event_key(stream, 1);
        let end = layout::event_key(stream, from.unwrap_or(u64::MAX));
        self.events
            .range(start..=end)
            .rev()
            .take(limit)
            .map(|item| Envelope::decode(&item?.1))
            .collect()
    }

    pub(crate) fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, Error> {
        self.global
            .range(from.max(1).to_be_bytes()..)
            .take(limit)
            .map(|item| self.event_at(&item?.1))
            .collect()
    }

    fn grow_tree(&self, target: u64) -> Result<(), Error> {
        let _one = self
            .growing
            .lock()
            .map_err(|_| Error::Storage("a Merkle tree growth panicked".into()))?;
        crate::tlog::grow(&self.tree, target, |from, limit| self.read_all(from, limit))
    }

    fn check_tree(&self, size: u64, root: crate::tlog::Hash) -> Result<(), Error> {
        self.grow_tree(size)?;
        let last = self.last_position()?;
        if crate::tlog::root(&self.tree, size, last)? != root {
            return Err(Error::Corrupt(format!(
                "the log's Merkle tree of its first {size} events has another root: an event was lost or changed"
            )));
        }
        for item in &self.heads {
            let (key, value) = item?;
            let id: [u8; 16] = key
                .as_ref()
                .try_into()
                .map_err(|_| Error::Corrupt("malformed head key".into()))?;
            let stream = StreamId::from_uuid(uuid::Uuid::from_bytes(id));
            let head = layout::decode_head(stream, &value)?;
            let mut covered = None;
            for item in self
                .events
                .range(layout::event_key(stream, 1)..=layout::event_key(stream, head.version))
                .rev()
            {
                let event = Envelope::decode(&item?.1)?;
                if event.global_position <= size {
                    covered = Some(event);
                    break;
                }
            }
            let Some(event) = covered else { continue };
            let proof = crate::tlog::inclusion(&self.tree, event.global_position, size, last)?;
            let under = tlog_tiles::check_record(
                &proof,
                size,
                root,
                event.global_position - 1,
                crate::tlog::leaf(&event.hash.0),
            );
            if under.is_err() || event.compute_hash() != event.hash {
                return Err(Error::Corrupt(format!(
                    "stream {stream} seq {} (position {}) is not the event the checkpoint signed: it was changed",
                    event.seq, event.global_position
                )));
            }
        }
        Ok(())
    }

    fn outbox(&self, limit: usize) -> Result<Vec<Envelope>, Error> {
        self.outbox
            .iter()
            .take(limit)
            .map(|item| self.event_at(&item?.1))
            .collect()
    }

    fn verify(&self, stream: StreamId) -> Result<Verification, Error> {
        let broken = |first_bad_seq, reason: String| {
            Ok(Verification::Broken {
                first_bad_seq,
                reason,
            })
        };
        let mut expected_seq = 1u64;
        let mut prev = ChainHash::GENESIS;
        for item in self.events.scan_prefix(stream.as_bytes()) {
            let (key, value) = item?;
            let key_seq = match layout::decode_event_key(&key) {
                Ok((_, seq)) => seq,
                Err(_) => return broken(expected_seq, "malformed key in the stream".into()),
            };
            if key_seq != expected_seq {
                return broken(
                    expected_seq,
                    format!("event {expected_seq} is missing (the next stored is {key_seq})"),
                );
            }
            let Ok(event) = Envelope::decode(&value) else {
                return broken(
                    expected_seq,
                    "stored bytes do not decode as an envelope".into(),
                );
            };
            if event.encode()? != value.as_ref() {
                return broken(
                    expected_seq,
                    "stored bytes are not the canonical encoding of the event".into(),
                );
            }
            if event.stream_id != stream || event.seq != key_seq {
                return broken(
                    expected_seq,
                    format!(
                        "stored at seq {key_seq} but the event says stream {} seq {}",
                        event.stream_id, event.seq
                    ),
                );
            }
            let indexed = self.global.get(event.global_position.to_be_bytes())?;
            if indexed.as_deref() != Some(&layout::pointer(stream, key_seq)[..]) {
                return broken(
                    expected_seq,
                    format!(
                        "global position {} does not point at this event",
                        event.global_position
                    ),
                );
            }
            if event.prev_hash != prev {
                return broken(
                    expected_seq,
                    "prev_hash is not the previous event's hash".into(),
                );
            }
            if event.compute_hash() != event.hash {
                return broken(
                    expected_seq,
                    "hash does not match the event's content".into(),
                );
            }
            prev = event.hash;
            expected_seq += 1;
        }
        let last = expected_seq - 1;
        match self.head(stream)? {
            None if last == 0 => Ok(Verification::NoStream),
            None => broken(1, "events are stored but the stream has no head".into()),
            Some(head) if head.version > last => broken(
                last + 1,
                format!(
                    "event {} is missing: the head says version {}",
                    last + 1,
                    head.version
                ),
            ),
            Some(head) if head.version < last => broken(
                head.version + 1,
                format!(
                    "event {} is beyond the head (version {})",
                    head.version + 1,
                    head.version
                ),
            ),
            Some(head) if head.hash != prev => broken(
                last,
                "the head hash differs from the last event's hash".into(),
            ),
            Some(head) => Ok(Verification::Intact(head)),
        }
    }
}

enum Job {
    Append(Box<AppendRequest>, oneshot::Sender<Result<Appended, Error>>),
    Import(Vec<Envelope>, oneshot::Sender<Result<(), Error>>),
    RecordApplied {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Close(oneshot::Sender<Result<(), Error>>),
}

impl EventLog {
    /// Opens (or creates) the log in directory `path` with default options.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled cannot open the directory (for example
    /// another process holds it).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, Options::default()).await
    }

    /// Opens (or creates) the log in directory `path`.
    ///
    /// # Errors
    /// As [`EventLog::open`].
    pub async fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || open_blocking(&path, options))
                .await
                .map_err(|e| Error::Storage(format!("open task failed: {e}")))??
        };
        let (trees, jobs, committed, writer) = opened;
        Ok(Self {
            inner: Arc::new(Inner {
                trees,
                jobs,
                committed,
                writer: Mutex::new(Some(writer)),
                path,
                gate: std::sync::OnceLock::new(),
                read_only: Mutex::new(None),
            }),
        })
    }

    /// The directory the log lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends events to one stream and returns once they are durable.
    ///
    /// # Errors
    /// - [`Error::Conflict`] with the current version when `expected` does
    ///   not hold; nothing is written.
    /// - [`Error::CommandIdReused`] when the command id was applied to
    ///   another stream.
    /// - [`Error::InvalidArgument`] naming the field that breaks a rule.
    /// - [`Error::Storage`] or [`Error::Closed`] when the write could not be
    ///   made durable; the caller must treat the append as not acknowledged
    ///   and retry with the same command id.
    /// - [`Error::NotReplicated`] when acks are gated
    ///   ([`EventLog::gate_acks`]) and the gate was not reached in time.
    pub async fn append(&self, request: AppendRequest) -> Result<Appended, Error> {
        if let Some(active) = self.follows() {
            return Err(Error::ReadOnly { active });
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::Append(Box::new(request), tx))
            .await
            .map_err(|_| Error::Closed)?;
        let appended = rx.await.map_err(|_| Error::Closed)??;
        if let Some(gate) = self.inner.gate.get() {
            let mut reached = gate.reached.clone();
            let position = appended.last_position;
            let waited =
                tokio::time::timeout(gate.wait, reached.wait_for(|p| *p >= position)).await;
            if !matches!(waited, Ok(Ok(_))) {
                return Err(Error::NotReplicated {
                    position,
                    waited_ms: u64::try_from(gate.wait.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        Ok(appended)
    }

    /// Makes this log a follower (a standby's): until
    /// [`EventLog::take_writes`], every [`EventLog::append`] is refused with
    /// [`Error::ReadOnly`] naming `active` (the active's address, or
    /// empty), and only [`EventLog::import`] extends it.
    pub fn follow_only(&self, active: &str) {
        *self
            .inner
            .read_only
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(active.to_owned());
    }

    /// Takes appends again (a standby promoted to active).
    pub fn take_writes(&self) {
        *self
            .inner
            .read_only
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The active's address while this log only follows another.
    #[must_use]
    pub fn follows(&self) -> Option<String> {
        self.inner
            .read_only
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// From now on, [`EventLog::append`] (a retry's replayed answer too)
    /// returns only once `gate.reached` reaches the append's last
    /// position, and otherwise [`Error::NotReplicated`] after `gate.wait`:
    /// in a cluster, a command is acknowledged only once a quorum stored
    /// it. Set once; later calls are ignored. Imports are not gated.
    pub fn gate_acks(&self, gate: AckGate) {
        let _ = self.inner.gate.set(gate);
    }

    /// Appends envelopes made by another copy of this log (a backup being
    /// restored), exactly as they are: same ids, seqs, global positions
    /// and hashes. Returns once they are durable.
    ///
    /// Each envelope must continue this log: its global position the next
    /// one, its seq its stream's next, its `prev_hash` that stream's head
    /// hash, and its `hash` recomputed from its content. The commands'
    /// stored answers are rebuilt from the envelopes (a command's events are
    /// contiguous in global order), so a retried request id is answered as
    /// on the original. Nothing goes to the outbox: these events were
    /// published by the log that made them.
    ///
    /// # Errors
    /// - [`Error::Corrupt`] naming the first envelope that does not continue
    ///   the log or whose hash does not verify; nothing of the batch is
    ///   written.
    /// - [`Error::Storage`] or [`Error::Closed`] as for [`EventLog::append`].
    pub async fn import(&self, envelopes: Vec<Envelope>) -> Result<(), Error> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::Import(envelopes, tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// The stream's head, or `None` when it has no events.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn head(&self, stream: StreamId) -> Result<Option<Head>, Error> {
        self.blocking(move |t| t.head(stream)).await
    }

    /// Every tail set aside from this log ([`crate::set_aside_after`]),
    /// oldest first: events the cluster never stored, kept for an auditor.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn set_aside(&self) -> Result<Vec<crate::SetAside>, Error> {
        self.blocking(crate::setaside::read).await
    }

    /// The stored answer to `command_id`, if that command was applied.
    /// Lets a caller that derives the stream from the request find the
    /// stream a retry belongs to.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn command(&self, command_id: &str) -> Result<Option<Appended>, Error> {
        let key = command_id.as_bytes().to_vec();
        self.blocking(move |t| {
            t.commands
                .get(&key)?
                .map(|stored| {
                    serde_json::from_slice::<Appended>(&stored)
                        .map(|mut a| {
                            a.replayed = true;
                            a
                        })
                        .map_err(|e| Error::Corrupt(format!("command record: {e}")))
                })
                .transpose()
        })
        .await
    }

    /// Up to `limit` events of a stream in seq order from `from_seq`.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn read_stream(
        &self,
        stream: StreamId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        self.blocking(move |t| t.read_stream(stream, from_seq, limit))
            .await
    }

    /// Up to `limit` events of a stream in descending seq order from
    /// `from_seq`, or from the head when `None`.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn read_stream_backward(
        &self,
        stream: StreamId,
        from_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        self.blocking(move |t| t.read_stream_backward(stream, from_seq, limit))
            .await
    }

    /// A named side tree of this log's sled database, outside the events
    /// and the hash chain, for data that must stay deletable (the intake
    /// service's wrapped data keys). A write to it becomes durable with the
    /// next append's group flush (sled's flush covers every tree), so write
    /// it before the append that depends on it.
    ///
    /// # Errors
    /// When sled cannot open the tree.
    pub fn side_tree(&self, name: &str) -> Result<sled::Tree, Error> {
        Ok(self.inner.trees.db.open_tree(format!("side:{name}"))?)
    }

    /// Up to `limit` events of the whole log in global order from `from_position`.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<Envelope>, Error> {
        self.blocking(move |t| t.read_all(from_position, limit))
            .await
    }

    /// Up to `limit` stream heads in stream-id order, after `after` (for
    /// walking every stream, e.g. to verify them all).
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn heads(&self, after: Option<StreamId>, limit: usize) -> Result<Vec<Head>, Error> {
        self.blocking(move |t| {
            let start = after.map_or_else(
                || [0u8; 16].to_vec(),
                |s| {
                    // The smallest key after `s`: its 16 bytes followed by 0.
                    let mut key = s.as_bytes().to_vec();
                    key.push(0);
                    key
                },
            );
            t.heads
                .range(start..)
                .take(limit)
                .map(|item| {
                    let (key, value) = item?;
                    let id: [u8; 16] = key
                        .as_ref()
                        .try_into()
                        .map_err(|_| Error::Corrupt("malformed head key".into()))?;
                    layout::decode_head(StreamId::from_uuid(uuid::Uuid::from_bytes(id)), &value)
                })
                .collect()
        })
        .await
    }

    /// The root of the log's Merkle tree over its first `size` events
    /// ([`crate::tlog`]); the tree grows to `size` first if needed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (`tree_size`) past the log's end;
    /// [`Error::Corrupt`] when the tree covers events the log no longer
    /// holds or an event is missing; [`Error::Storage`].
    pub async fn tree_root(&self, size: u64) -> Result<crate::tlog::Hash, Error> {
        let last = self.last_position();
        self.blocking(move |t| {
            t.grow_tree(size.min(last))?;
            crate::tlog::root(&t.tree, size, last)
        })
        .await
    }

    /// The inclusion proof of the event at global `position` in the tree of
    /// the first `size` events (RFC 9162 §2.1.3, leaf up).
    ///
    /// # Errors
    /// As [`EventLog::tree_root`]; `position` outside 1..=size.
    pub async fn prove_inclusion(
        &self,
        position: u64,
        size: u64,
    ) -> Result<Vec<crate::tlog::Hash>, Error> {
        let last = self.last_position();
        self.blocking(move |t| {
            t.grow_tree(size.min(last))?;
            crate::tlog::inclusion(&t.tree, position, size, last)
        })
        .await
    }

    /// The consistency proof that the tree of the first `new` events
    /// extends that of the first `old` (RFC 9162 §2.1.4).
    ///
    /// # Errors
    /// As [`EventLog::tree_root`]; `old` outside 1..=new.
    pub async fn prove_consistency(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<crate::tlog::Hash>, Error> {
        let last = self.last_position();
        self.blocking(move |t| {
            t.grow_tree(new.min(last))?;
            crate::tlog::consistency(&t.tree, old, new, last)
        })
        .await
    }

    /// Checks the log against a signed tree head of `size` events with
    /// `root`: the tree's root, and each stream's last event at or before
    /// `size` under it (its content matching its hash). A rewrite that kept
    /// every chain consistent changes a stream's last event, so it is
    /// found here without reading the whole log: O(streams × log size).
    ///
    /// # Errors
    /// [`Error::Corrupt`] saying what does not match; as
    /// [`EventLog::tree_root`] otherwise.
    pub async fn check_tree(&self, size: u64, root: crate::tlog::Hash) -> Result<(), Error> {
        self.blocking(move |t| t.check_tree(size, root)).await
    }

    /// How many streams the log holds.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn stream_count(&self) -> Result<usize, Error> {
        self.blocking(|t| Ok(t.heads.len())).await
    }

    /// The last durable global position (0 when the log is empty).
    #[must_use]
    pub fn last_position(&self) -> u64 {
        *self.inner.committed.borrow()
    }

    /// A receiver of the last durable global position: `changed().await`
    /// wakes after each group commit. Relays and projections wait on it
    /// instead of polling.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.committed.clone()
    }

    /// Recomputes the hash chain of a stream from seq 1 to its head.
    ///
    /// # Errors
    /// [`Error::Storage`] when sled fails; altered data is reported as
    /// [`Verification::Broken`], not as an error.
    pub async fn verify(&self, stream: StreamId) -> Result<Verification, Error> {
        self.blocking(move |t| t.verify(stream)).await
    }

    /// Up to `limit` events still waiting in the outbox, in global order.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn outbox(&self, limit: usize) -> Result<Vec<Envelope>, Error> {
        self.blocking(move |t| t.outbox(limit)).await
    }

    /// Up to `limit` events of the outbox that may leave for other
    /// services now, in global order: in a cluster ([`EventLog::gate_acks`])
    /// only those the cluster's copy holds, so that nothing is handed on
    /// that a failover could lose (a report no surviving node has must not
    /// open a case); otherwise all of them.
    ///
    /// # Errors
    /// As [`EventLog::outbox`].
    pub async fn outbox_publishable(&self, limit: usize) -> Result<Vec<Envelope>, Error> {
        // Read first: whatever the outbox holds up to here is stored by
        // the cluster.
        let stored = self.inner.gate.get().map(|gate| *gate.reached.borrow());
        let mut events = self.outbox(limit).await?;
        if let Some(stored) = stored {
            events.retain(|e| e.global_position <= stored);
        }
        Ok(events)
    }

    /// Changes whenever more of the outbox may leave
    /// ([`EventLog::outbox_publishable`]): the cluster's copy grew, or
    /// (outside a cluster) a group was committed.
    #[must_use]
    pub fn subscribe_publishable(&self) -> watch::Receiver<u64> {
        match self.inner.gate.get() {
            Some(gate) => gate.reached.clone(),
            None => self.subscribe(),
        }
    }

    /// The size of the log's files on disk, in bytes (sled's count).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn size_on_disk(&self) -> Result<u64, Error> {
        self.blocking(|t| Ok(t.db.size_on_disk()?)).await
    }

    /// Of `positions`, those whose events were appended to be published:
    /// waiting in the outbox or published. One read of the store for a
    /// whole page (the log relay asks once per page it replicates).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn for_bus(&self, positions: Vec<u64>) -> Result<HashSet<u64>, Error> {
        self.blocking(move |t| {
            let mut marked = HashSet::new();
            for position in positions {
                let key = position.to_be_bytes();
                if t.outbox.contains_key(key)? || t.published.contains_key(key)? {
                    marked.insert(position);
                }
            }
            Ok(marked)
        })
        .await
    }

    /// Puts the events at `positions` in the outbox, for the relay to
    /// publish (again, under their own ids: the bus and every receiver
    /// drop a duplicate). A process that takes over the writes puts back
    /// what the previous active stored with the cluster but had not handed
    /// on when it died.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a position the log does not hold;
    /// [`Error::Storage`].
    pub async fn requeue(&self, positions: Vec<u64>) -> Result<(), Error> {
        self.blocking(move |t| {
            for position in positions {
                let key = position.to_be_bytes();
                let pointer = t.global.get(key)?.ok_or_else(|| {
                    Error::Corrupt(format!("position {position} is not in the log"))
                })?;
                t.outbox.insert(key, pointer)?;
            }
            Ok(())
        })
        .await
    }

    /// Moves the event at `position` from the outbox to the published
    /// record once the bus stored it as its message `bus_sequence`.
    /// Not flushed: if the removal is lost in a crash the event is published
    /// again under the same id and the receiver's dedupe drops it.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn outbox_done(&self, position: u64, bus_sequence: u64) -> Result<(), Error> {
        self.blocking(move |t| {
            let key = position.to_be_bytes();
            t.published.insert(key, &bus_sequence.to_be_bytes())?;
            t.outbox.remove(key)?;
            Ok(())
        })
        .await
    }

    /// The bus sequence of the newest delivery the relay recorded (0 when
    /// none): the bus's stream holding fewer messages than that has lost
    /// some.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn last_published_sequence(&self) -> Result<u64, Error> {
        self.blocking(|t| match t.published.last()? {
            Some((_, value)) => layout::decode_u64(&value),
            None => Ok(0),
        })
        .await
    }

    /// Puts the event at `position` back in the outbox, if it was ever
    /// published: the relay publishes it again under its own event id (a
    /// receiver that lost it gets it; one that has it drops the repeat).
    /// Returns whether it was put back.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn republish(&self, position: u64) -> Result<bool, Error> {
        self.blocking(move |t| {
            let key = position.to_be_bytes();
            if !t.published.contains_key(key)? {
                return Ok(false);
            }
            let pointer = t.global.get(key)?.ok_or_else(|| {
                Error::Corrupt(format!("published position {position} is not in the log"))
            })?;
            t.outbox.insert(key, pointer)?;
            Ok(true)
        })
        .await
    }

    /// Puts every event ever published back in the outbox, in global order,
    /// for when the bus lost its store: the log is the source of truth and
    /// the bus is filled again from it. Returns how many.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn republish_all(&self) -> Result<u64, Error> {
        self.blocking(|t| {
            let mut count = 0;
            for item in &t.published {
                let (key, _) = item?;
                let pointer = t.global.get(&key)?.ok_or_else(|| {
                    Error::Corrupt("a published position is not in the log".into())
                })?;
                t.outbox.insert(key, pointer)?;
                count += 1;
            }
            Ok(count)
        })
        .await
    }

    /// Whether `consumer` already recorded `message_id` as applied.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn is_applied(&self, consumer: &str, message_id: &str) -> Result<bool, Error> {
        let key = layout::inbox_key(consumer, message_id);
        self.blocking(move |t| Ok(t.inbox.contains_key(key)?)).await
    }

    /// Durably records that `consumer` applied `message_id`, so that a
    /// redelivery is recognised (shares the group commit with appends).
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Closed`].
    pub async fn record_applied(&self, consumer: &str, message_id: &str) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        let key = layout::inbox_key(consumer, message_id);
        self.inner
            .jobs
            .send(Job::RecordApplied { key, reply })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Durably sets aside a message `consumer` could not apply (its
    /// `subject`, the raw `payload` and the `reason`), so that it is kept
    /// for an engineer to look at while the consumer goes on with the next
    /// one. Returns how many messages `consumer` has parked so far.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Closed`].
    pub async fn park(
        &self,
        consumer: &str,
        subject: &str,
        payload: &[u8],
        reason: &str,
    ) -> Result<u64, Error> {
        let consumer = consumer.to_owned();
        let record = Parked {
            subject: subject.to_owned(),
            reason: reason.to_owned(),
            parked_at_ms: system_now_ms(),
            payload: payload.to_vec(),
        };
        self.blocking(move |t| {
            let n = t.db.generate_id()?;
            let value = serde_json::to_vec(&record).map_err(|e| Error::Corrupt(e.to_string()))?;
            t.parked.insert(layout::parked_key(&consumer, n), value)?;
            t.parked.flush()?;
            Ok(t.parked
                .scan_prefix(layout::parked_prefix(&consumer))
                .count() as u64)
        })
        .await
    }

    /// The messages `consumer` set aside, oldest first.
    ///
    /// # Errors
    /// [`Error::Storage`], or [`Error::Corrupt`] for an unreadable record.
    pub async fn parked(&self, consumer: &str) -> Result<Vec<Parked>, Error> {
        let prefix = layout::parked_prefix(consumer);
        self.blocking(move |t| {
            t.parked
                .scan_prefix(prefix)
                .values()
                .map(|value| {
                    serde_json::from_slice(&value?).map_err(|e| Error::Corrupt(e.to_string()))
                })
                .collect()
        })
        .await
    }

    /// Finishes the appends already queued, flushes, and stops the writer.
    /// Later appends fail with [`Error::Closed`]; reads keep working until
    /// the last handle is dropped.
    ///
    /// # Errors
    /// [`Error::Storage`] if the final flush fails.
    pub async fn close(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        if self.inner.jobs.send(Job::Close(tx)).await.is_err() {
            return Ok(()); // already closed
        }
        rx.await.unwrap_or(Ok(()))
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Trees) -> Result<T, Error> + Send + 'static,
    {
        let trees = self.inner.trees.clone();
        tokio::task::spawn_blocking(move || f(&trees))
            .await
            .map_err(|e| Error::Storage(format!("read task failed: {e}")))?
    }
}

/// Verifies a stream in a sled database opened by someone else: an
/// auditor's copy of a service's data directory, opened with `sled::open`.
/// Besides the chain, each stored value must be the exact encoding of the
/// envelope it decodes to, so even a change that decodes to the same
/// meaning (a hex digit's case, an escaped character) is reported.
///
/// # Errors
/// [`Error::Storage`] when sled fails.
pub fn verify_copy(db: &sled::Db, stream: StreamId) -> Result<Verification, Error> {
    Trees::open(db.clone())?.verify(stream)
}

/// Opens sled, waiting up to 5 s for its file lock: after a log of this
/// process is closed, sled's own I/O threads can hold the database for a
/// moment longer, and a reopen must not fail because of that.
pub(crate) fn open_retrying_lock(config: &sled::Config) -> Result<sled::Db, Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Other
                    && e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

type Opened = (
    Trees,
    mpsc::Sender<Job>,
    watch::Receiver<u64>,
    JoinHandle<()>,
);

fn open_blocking(path: &Path, options: Options) -> Result<Opened, Error> {
    std::fs::create_dir_all(path)?;
    let config = sled::Config::new()
        .path(path)
        // Our own flush after each group is the only one that counts; a
        // background flush would add I/O without adding any guarantee.
        .flush_every_ms(None)
        .cache_capacity(options.cache_capacity);
    let db = open_retrying_lock(&config)?;
    // sled's flush ends in sync_file_range, which neither syncs metadata nor
    // flushes the disk's write cache (sled #1452): fdatasync its log file.
    let data_file = File::open(path.join("db"))?;
    File::open(path)?.sync_all()?;
    let trees = Trees::open(db)?;
    let last = trees.last_position()?;
    let (jobs, rx) = mpsc::channel(MAX_GROUP);
    let (committed_tx, committed) = watch::channel(last);
    let failed = Arc::new(Mutex::new(None));
    let (to_syncer, from_writer) = std::sync::mpsc::channel();
    let mut syncer = Syncer {
        db: trees.db.clone(),
        data_file,
        committed: committed_tx,
        failed: failed.clone(),
        name: options.name,
    };
    let syncer = std::thread::Builder::new()
        .name("baove-eventlog-sync".into())
        .spawn(move || syncer.run(&from_writer))?;
    let mut writer = Writer {
        trees: trees.clone(),
        clock: options.clock,
        next_position: last + 1,
        failed,
        to_syncer,
        name: options.name,
    };
    let handle = std::thread::Builder::new()
        .name("baove-eventlog-writer".into())
        .spawn(move || {
            writer.run(rx);
            // Dropping the writer closes the syncer's channel: it makes its
            // final flush and ends; wait for it so that the database is
            // released when this thread is joined.
            drop(writer);
            let _ = syncer.join();
        })?;
    Ok((trees, jobs, committed, handle))
}

/// The write path, in two threads so that deciding and writing the next
/// group overlaps with making the previous one durable:
/// - the writer takes waiting jobs, decides them against sled (which holds
///   every earlier group, durable or not), writes the group in one sled
///   transaction and hands the answers to the syncer;
/// - the syncer takes every group handed over so far, makes them durable
///   with one sled flush + fdatasync, and only then answers their callers.
///
/// After a failed write or flush both refuse everything (`failed`): what
/// reached the disk is then unknown, and no caller may be told otherwise.
struct Writer {
    trees: Trees,
    clock: Clock,
    next_position: u64,
    failed: Arc<Mutex<Option<String>>>,
    to_syncer: std::sync::mpsc::Sender<Batch>,
    /// The metrics' `log` label.
    name: &'static str,
}

/// One written group, handed from the writer to the syncer.
struct Batch {
    done: Vec<Done>,
    /// The group wrote something that must be flushed.
    wrote: bool,
    /// The last global position written by it and every group before.
    last_position: u64,
    close: Option<oneshot::Sender<Result<(), Error>>>,
}

struct Syncer {
    db: sled::Db,
    data_file: File,
    committed: watch::Sender<u64>,
    failed: Arc<Mutex<Option<String>>>,
    /// The metrics' `log` label.
    name: &'static str,
}

fn failure_of(failed: &Mutex<Option<String>>) -> Option<String> {
    failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn set_failure(failed: &Mutex<Option<String>>, error: &str) {
    let mut slot = failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.is_none() {
        tracing::error!(error, "event log write failed; refusing further appends");
        *slot = Some(error.to_owned());
    }
}

impl Syncer {
    fn run(&mut self, from_writer: &std::sync::mpsc::Receiver<Batch>) {
        while let Ok(first) = from_writer.recv() {
            let mut batches = vec![first];
            batches.extend(from_writer.try_iter());
            let close_requested = batches.iter().any(|b| b.close.is_some());
            let must_sync = close_requested || batches.iter().any(|b| b.wrote);
            let failure = failure_of(&self.failed).or_else(|| {
                if must_sync {
                    self.sync().err().inspect(|e| set_failure(&self.failed, e))
                } else {
                    None
                }
            });
            // A fresh error per caller: none may count its append as
            // acknowledged when its group's write or flush failed.
            let outcome = || match &failure {
                None => Ok(()),
                Some(e) => Err(Error::Storage(format!("write failed: {e}"))),
            };
            let last_position = batches.iter().map(|b| b.last_position).max().unwrap_or(0);
            // Published before any caller hears back: a caller that reads
            // `last_position` (or waits on the watch) right after its
            // append is acknowledged must see its own append.
            if failure.is_none() {
                self.committed
                    .send_if_modified(|p| std::mem::replace(p, (*p).max(last_position)) != *p);
            }
            let mut close = None;
            for batch in batches {
                for item in batch.done {
                    match item {
                        Done::Append(reply, result) => {
                            let _ = reply.send(result.and_then(|a| outcome().map(|()| a)));
                        }
                        Done::Record(reply, result) => {
                            let _ = reply.send(result.and_then(|()| outcome()));
                        }
                    }
                }
                if batch.close.is_some() {
                    close = batch.close;
                }
            }
            if let Some(reply) = close {
                let _ = reply.send(outcome());
            }
        }
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "event log final flush failed");
        }
    }

    /// sled flush, then fdatasync of sled's log file. The error is kept as
    /// text because it is reported to every caller of the groups.
    fn sync(&self) -> Result<(), String> {
        let started = std::time::Instant::now();
        self.db.flush().map_err(|e| e.to_string())?;
        self.data_file.sync_data().map_err(|e| e.to_string())?;
        metrics::histogram!(SYNC_SECONDS, "log" => self.name).record(started.elapsed());
        Ok(())
    }
}

enum Done {
    Append(
        oneshot::Sender<Result<Appended, Error>>,
        Result<Appended, Error>,
    ),
    Record(oneshot::Sender<Result<(), Error>>, Result<(), Error>),
}

/// What one group commit writes, decided append by append against the
/// stored state plus what earlier appends of the same group decided.
#[derive(Default)]
struct Group {
    /// (`events` key, envelope bytes, global position, publish)
    events: Vec<([u8; 24], Vec<u8>, u64, bool)>,
    heads: HashMap<StreamId, (u64, ChainHash)>,
    commands: HashMap<String, Appended>,
    inbox: Vec<Vec<u8>>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.inbox.is_empty()
    }
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Job>) {
        let mut close = None;
        while close.is_none() {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP
                && let Ok(job) = rx.try_recv()
            {
                jobs.push(job);
            }
            let mut group = Group::default();
            let mut done = Vec::with_capacity(jobs.len());
            for job in jobs {
                match job {
                    Job::Append(request, reply) => {
                        let result = self.decide(&request, &mut group);
                        done.push(Done::Append(reply, result));
                    }
                    Job::Import(envelopes, reply) => {
                        let result = self.decide_import(&envelopes, &mut group);
                        done.push(Done::Record(reply, result));
                    }
                    Job::RecordApplied { key, reply } => {
                        let result = self.refuse_if_failed();
                        if result.is_ok() {
                            group.inbox.push(key);
                        }
                        done.push(Done::Record(reply, result));
                    }
                    // Jobs after a Close in the same group are answered
                    // too; later ones find the channel closed.
                    Job::Close(reply) => close = Some(reply),
                }
            }
            let wrote = !group.is_empty();
            #[allow(clippy::cast_precision_loss)]
            metrics::histogram!(GROUP_SIZE, "log" => self.name).record(done.len() as f64);
            if wrote {
                match self.commit(&group) {
                    Ok(()) => {
                        self.next_position += group.events.len() as u64;
                        metrics::counter!(APPENDED, "log" => self.name)
                            .increment(group.events.len() as u64);
                    }
                    // Answered by the syncer, which sees the failure.
                    Err(e) => set_failure(&self.failed, &e),
                }
            }
            let batch = Batch {
                done,
                wrote,
                last_position: self.next_position - 1,
                close: close.take(),
            };
            let closing = batch.close.is_some();
            if self.to_syncer.send(batch).is_err() || closing {
                break;
            }
        }
        rx.close();
    }

    /// Writes the whole group in one sled transaction: after a crash either
    /// all of it is there or none, across every tree.
    fn commit(&self, group: &Group) -> Result<(), String> {
        let t = &self.trees;
        let heads: Vec<([u8; 16], [u8; 40])> = group
            .heads
            .iter()
            .map(|(stream, (version, hash))| {
                (*stream.as_bytes(), layout::encode_head(*version, *hash))
            })
            .collect();
        let mut commands = Vec::with_capacity(group.commands.len());
        for (id, appended) in &group.commands {
            commands.push((
                id.as_bytes(),
                serde_json::to_vec(appended).map_err(|e| e.to_string())?,
            ));
        }
        (
            &t.events,
            &t.global,
            &t.heads,
            &t.commands,
            &t.outbox,
            &t.inbox,
        )
            .transaction(
                |(events, global, heads_tree, commands_tree, outbox, inbox)| {
                    for (key, bytes, position, publish) in &group.events {
                        let position = position.to_be_bytes();
                        events.insert(&key[..], bytes.as_slice())?;
                        global.insert(&position[..], &key[..])?;
                        if *publish {
                            outbox.insert(&position[..], &key[..])?;
                        }
                    }
                    for (stream, head) in &heads {
                        heads_tree.insert(&stream[..], &head[..])?;
                    }
                    for (id, record) in &commands {
                        commands_tree.insert(*id, record.as_slice())?;
                    }
                    for key in &group.inbox {
                        inbox.insert(key.as_slice(), &[][..])?;
                    }
                    Ok(())
                },
            )
            .map_err(|e: sled::transaction::TransactionError<()>| format!("{e:?}"))
    }

    fn refuse_if_failed(&self) -> Result<(), Error> {
        match &failure_of(&self.failed) {
            Some(reason) => Err(Error::Storage(format!(
                "log stopped after a failed write: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// Checks that `envelopes` continue the log (stored state plus the group
    /// so far) and adds them to the group; on the first that does not,
    /// adds nothing.
    fn decide_import(&self, envelopes: &[Envelope], group: &mut Group) -> Result<(), Error> {
        self.refuse_if_failed()?;
        let t = &self.trees;
        let mut heads: HashMap<StreamId, (u64, ChainHash)> = HashMap::new();
        let mut commands: HashMap<String, Appended> = HashMap::new();
        let mut rows = Vec::with_capacity(envelopes.len());
        let first = self.next_position + group.events.len() as u64;
        for (position, e) in (first..).zip(envelopes) {
            let at = |rule: String| {
                Error::Corrupt(format!(
                    "event at global position {} ({} seq {}): {rule}",
                    e.global_position, e.stream_id, e.seq
                ))
            };
            if e.global_position != position {
                return Err(at(format!("the log's next position is {position}")));
            }
            let (version, prev) = match heads.get(&e.stream_id).or(group.heads.get(&e.stream_id)) {
                Some(head) => *head,
                None => t
                    .head(e.stream_id)?
                    .map_or((0, ChainHash::GENESIS), |h| (h.version, h.hash)),
            };
            if e.seq != version + 1 {
                return Err(at(format!("the stream's next seq is {}", version + 1)));
            }
            if e.prev_hash != prev {
                return Err(at("prev_hash is not the stream's head hash".into()));
            }
            if e.compute_hash() != e.hash {
                return Err(at("hash does not match the event's content".into()));
            }
            if !e.command_id.is_empty() {
                let known = match commands
                    .get(&e.command_id)
                    .or(group.commands.get(&e.command_id))
                {
                    Some(a) => Some(a.clone()),
                    None => t
                        .commands
                        .get(e.command_id.as_bytes())?
                        .map(|stored| {
                            serde_json::from_slice::<Appended>(&stored).map_err(|err| {
                                Error::Corrupt(format!("command record {}: {err}", e.command_id))
                            })
                        })
                        .transpose()?,
                };
                match known {
                    // The command's next event: its answer grows.
                    Some(mut a)
                        if a.stream == e.stream_id && a.last_position + 1 == e.global_position =>
                    {
                        a.last_seq = e.seq;
                        a.last_position = e.global_position;
                        a.head_hash = e.hash;
                        commands.insert(e.command_id.clone(), a);
                    }
                    Some(_) => {}
                    None => {
                        commands.insert(
                            e.command_id.clone(),
                            Appended {
                                stream: e.stream_id,
                                first_seq: e.seq,
                                last_seq: e.seq,
                                first_position: e.global_position,
                                last_position: e.global_position,
                                head_hash: e.hash,
                                replayed: false,
                            },
                        );
                    }
                }
            }
            heads.insert(e.stream_id, (e.seq, e.hash));
            rows.push((
                layout::event_key(e.stream_id, e.seq),
                e.encode()?,
                e.global_position,
                false,
            ));
        }
        group.events.extend(rows);
        group.heads.extend(heads);
        group.commands.extend(commands);
        Ok(())
    }

    /// Decides one append against the stored state and the group so far;
    /// adds its writes to the group when accepted.
    fn decide(&self, request: &AppendRequest, group: &mut Group) -> Result<Appended, Error> {
        self.refuse_if_failed()?;
        validate(request)?;
        let t = &self.trees;
        let known = match group.commands.get(&request.command_id) {
            Some(first) => Some(first.clone()),
            None => t
                .commands
                .get(request.command_id.as_bytes())?
                .map(|stored| {
                    serde_json::from_slice::<Appended>(&stored).map_err(|e| {
                        Error::Corrupt(format!("command record {}: {e}", request.command_id))
                    })
                })
                .transpose()?,
        };
        if let Some(mut first) = known {
            if first.stream != request.stream {
                return Err(Error::CommandIdReused {
                    command_id: request.command_id.clone(),
                    stream: first.stream,
                });
            }
            first.replayed = true;
            return Ok(first);
        }
        let (version, mut prev) = match group.heads.get(&request.stream) {
            Some(head) => *head,
            None => t
                .head(request.stream)?
                .map_or((0, ChainHash::GENESIS), |h| (h.version, h.hash)),
        };
        let ok = match request.expected {
            ExpectedVersion::NoStream => version == 0,
            ExpectedVersion::Exact(v) => version == v,
            ExpectedVersion::Any => true,
        };
        if !ok {
            return Err(Error::Conflict {
                stream: request.stream,
                expected: request.expected.to_string(),
                current: version,
            });
        }
        let recorded_at_ms = (self.clock)();
        let first_position = self.next_position + group.events.len() as u64;
        let mut rows = Vec::with_capacity(request.events.len());
        for (i, event) in (0u64..).zip(&request.events) {
            let mut envelope = Envelope {
                event_id: Uuid::now_v7(),
                stream_id: request.stream,
                seq: version + 1 + i,
                global_position: first_position + i,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                recorded_at_ms,
                actor: request.actor.clone(),
                command_id: request.command_id.clone(),
                causation_id: request.causation_id.clone(),
                correlation_id: request.correlation_id.clone(),
                payload: event.payload.clone(),
                prev_hash: prev,
                hash: ChainHash::GENESIS,
            };
            envelope.hash = envelope.compute_hash();
            prev = envelope.hash;
            rows.push((
                layout::event_key(request.stream, envelope.seq),
                envelope.encode()?,
                envelope.global_position,
                request.publish,
            ));
        }
        let count = rows.len() as u64;
        let appended = Appended {
            stream: request.stream,
            first_seq: version + 1,
            last_seq: version + count,
            first_position,
            last_position: first_position + count - 1,
            head_hash: prev,
            replayed: false,
        };
        group.events.extend(rows);
        group
            .heads
            .insert(request.stream, (appended.last_seq, prev));
        group
            .commands
            .insert(request.command_id.clone(), appended.clone());
        Ok(appended)
    }
}

fn validate(request: &AppendRequest) -> Result<(), Error> {
    let short = |field: &'static str, value: &str, required: bool| {
        if required && value.is_empty() {
            return Err(Error::InvalidArgument {
                field,
                rule: "is required".into(),
            });
        }
        if value.len() > MAX_FIELD_BYTES {
            return Err(Error::InvalidArgument {
                field,
                rule: format!("must be at most {MAX_FIELD_BYTES} bytes"),
            });
        }
        Ok(())
    };
    short("command_id", &request.command_id, true)?;
    short("actor.user_id", &request.actor.user_id, true)?;
    short("actor.role", &request.actor.role, true)?;
    short("actor.agency_id", &request.actor.agency_id, false)?;
    short("causation_id", &request.causation_id, false)?;
    short("correlation_id", &request.correlation_id, false)?;
    if request.events.is_empty() || request.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(Error::InvalidArgument {
            field: "events",
            rule: format!("must hold 1 to {MAX_EVENTS_PER_APPEND} events"),
        });
    }
    Ok(())
}
