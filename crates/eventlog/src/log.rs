//! The event log: one sled database, one writer thread, async callers.
//!
//! Every write goes through the writer thread, which takes whatever appends
//! are waiting, decides each (a bad one is answered alone), writes the group
//! into sled and hands it to the sync thread, which appends
//! the groups handed to it to the write-ahead file and makes them durable
//! with one `fdatasync` (after fsyncing any blob file sled wrote, which
//! sled itself never syncs: `log/blobs.rs`) before answering any of their
//! callers. Concurrent callers therefore share a device wait (group
//! commit) and each still returns only once its events are on stable
//! storage. sled's own flush runs every few seconds on a checkpoint
//! thread, off that path (`log/wal.rs`).
//!
//! Reads run on tokio's blocking pool: sled calls block. Reads of the
//! newest events (`read_all` and `outbox` from a recent position) are
//! served from the writer's decoded copy of them (`log/recent.rs`).
//!
//! This file holds the public type and its methods; `log/trees.rs` the sled
//! trees and the reads over them; `log/writer.rs` opening the database and
//! the writer, sync and checkpoint threads; `log/wal.rs` the write-ahead
//! files, their checkpoints and their replay at open; `log/side.rs` side
//! trees; `log/recent.rs` the newest events, decoded; `log/blobs.rs`
//! sled's blob files, synced with the log.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::envelope::{Actor, ChainHash, Envelope, MAX_FIELD_BYTES, NewEvent, StreamId};
use crate::{Error, layout};

mod blobs;
mod recent;
mod side;
mod trees;
mod wal;
mod writer;

pub use side::SideTree;
use wal::SideWrite;
pub(crate) use wal::{CHECKPOINTED_POSITION, WHOLE};

use recent::Recent;

pub(crate) use trees::Trees;
pub(crate) use writer::open_recovered;
use writer::*;

/// Most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 1000;

/// Most appends one group commit takes from the queue before flushing.
const MAX_GROUP: usize = 1024;

/// Longest an append made with [`EventLog::append_sharing_flush`] lets its
/// fdatasync wait for other appends to share it, by default
/// ([`Options::shared_flush_wait`]).
pub const SHARED_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// When an append's group may be made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    /// At once: somebody is waiting ([`EventLog::append`]).
    Now,
    /// Within [`Options::shared_flush_wait`], with whatever else comes by
    /// then ([`EventLog::append_sharing_flush`]).
    Shared,
}

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
    /// first answer and writes nothing, forever (on a log that keeps
    /// answers, [`Options::keep_answers`]).
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
    /// [`SYNC_SECONDS`]): `event` by default, `access` for an access log;
    /// also the start of its threads' names (`event-write`, `event-sync`,
    /// `event-ckpt`), so keep it within 10 bytes (Linux keeps 15 of a
    /// thread's name).
    pub name: &'static str,
    /// Whether each append's answer is kept under its command id, forever,
    /// so that an append again with that id returns the first answer and
    /// writes nothing (the default). Off for a log whose every append has
    /// an id of its own that nobody appends with again (the access log:
    /// `access:<UUIDv7>` per record, `checkpoint:<size>:<time>` per
    /// checkpoint): each append then writes no `commands` entry (about
    /// 250 bytes of an access record's 800, measured), and an append with
    /// an id used before is stored again. The event keeps its command id
    /// either way; answers kept before stay.
    pub keep_answers: bool,
    /// Longest the fdatasync of a group made only of appends that share
    /// their flush ([`EventLog::append_sharing_flush`]) waits for another
    /// group to share it ([`SHARED_FLUSH_WAIT`] by default).
    pub shared_flush_wait: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(system_now_ms),
            cache_capacity: 1024 * 1024 * 1024,
            name: "event",
            keep_answers: true,
            shared_flush_wait: SHARED_FLUSH_WAIT,
        }
    }
}

/// Events made durable, by log (a counter).
pub const APPENDED: &str = "baove_eventlog_appended_events_total";
/// Appends (and imports, records) written by one group commit, by log (a
/// histogram).
pub const GROUP_SIZE: &str = "baove_eventlog_group_size";
/// How long making a batch of groups durable took (the write-ahead
/// file's fdatasync, after sled's new blob files), by log (a histogram).
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
    /// What a reader may be shown once acks are gated, for its wake-ups
    /// ([`EventLog::subscribe_readable`]); unset until then.
    readable: std::sync::OnceLock<watch::Receiver<u64>>,
    /// The last durable position when acks were gated: held before, so
    /// readable ([`EventLog::readable_position`]).
    gated_at: std::sync::OnceLock<u64>,
    /// The last position an [`EventLog::import`] made durable: events
    /// taken from another record of the log (the cluster's), stored there.
    imported: watch::Sender<u64>,
    /// Set while a standby: the active's address; appends are refused.
    read_only: Mutex<Option<String>>,
    /// Flushes made so far ([`EventLog::syncs`]).
    syncs: Arc<std::sync::atomic::AtomicU64>,
    /// The newest events written, decoded (`log/recent.rs`).
    recent: Arc<Mutex<Recent>>,
    /// sled's blob files and what of them is synced (`log/blobs.rs`).
    blobs: Arc<Mutex<blobs::Blobs>>,
    /// Side-tree writes waiting for the next group's write-ahead record.
    side: Arc<Mutex<Vec<SideWrite>>>,
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

/// What a reader may be shown ([`EventLog::readable_position`]): the
/// position the cluster reached (never past the durable one), imported
/// from it, or held when acks were gated (`floor`), whichever is furthest.
fn readable(floor: u64, reached: u64, durable: u64, imported: u64) -> u64 {
    reached.min(durable).max(imported).max(floor)
}

/// Moves `shown` to [`readable`] as the cluster's position (`reached`) and
/// the imports (`imported`) move; ends when the log closes. `reached`
/// whose sender is gone stops being followed.
async fn follow_stored(
    shown: watch::Sender<u64>,
    floor: u64,
    committed: watch::Receiver<u64>,
    mut reached: watch::Receiver<u64>,
    mut imported: watch::Receiver<u64>,
) {
    let mut following_reached = true;
    loop {
        let stored = readable(
            floor,
            *reached.borrow_and_update(),
            *committed.borrow(),
            *imported.borrow_and_update(),
        );
        shown.send_if_modified(|shown| {
            let moved = stored > *shown;
            *shown = (*shown).max(stored);
            moved
        });
        tokio::select! {
            changed = reached.changed(), if following_reached => {
                following_reached = changed.is_ok();
            }
            changed = imported.changed() => if changed.is_err() { return },
            () = shown.closed() => return,
        }
    }
}

/// Up to `limit` events of the outbox, at positions up to `through`, in
/// global order. The outbox's keys are positions: the newest events come
/// from memory (`log/recent.rs`); an older one is read from sled when
/// `from_sled`, else the answer is `None` (the caller asks again where a
/// read from the disk may wait).
fn outbox_page(
    t: &Trees,
    recent: &Mutex<Recent>,
    limit: usize,
    through: u64,
    from_sled: bool,
) -> Result<Option<Vec<Envelope>>, Error> {
    let mut events = Vec::new();
    for item in t.outbox.iter().take(limit) {
        let (key, pointer) = item?;
        let position = layout::decode_u64(&key)?;
        if position > through {
            break;
        }
        let held = recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .at(position);
        match held {
            Some(event) => events.push(event),
            None if from_sled => events.push(t.event_at(&pointer)?),
            None => return Ok(None),
        }
    }
    Ok(Some(events))
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
        let (trees, jobs, committed, writer, syncs, recent, blobs, side) = opened;
        Ok(Self {
            inner: Arc::new(Inner {
                trees,
                jobs,
                committed,
                writer: Mutex::new(Some(writer)),
                path,
                gate: std::sync::OnceLock::new(),
                readable: std::sync::OnceLock::new(),
                gated_at: std::sync::OnceLock::new(),
                imported: watch::channel(0).0,
                read_only: Mutex::new(None),
                syncs,
                recent,
                blobs,
                side,
            }),
        })
    }

    /// How many times this handle's log was made durable (one fdatasync of
    /// the write-ahead file each) since it was opened: each group commit
    /// that appended, and the close.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.inner.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The blob files sled wrote for this log (log messages over a quarter
    /// of a segment, such as a leaf of large events rewritten whole) that
    /// are not fsynced as they stand: sled never syncs them, the log does
    /// before each fdatasync and checkpoint (`log/blobs.rs`), so this is
    /// empty once every acknowledged append has returned.
    ///
    /// # Errors
    /// [`Error::Storage`] when sled's `blobs` directory cannot be read.
    pub fn unsynced_blobs(&self) -> Result<Vec<PathBuf>, Error> {
        self.inner
            .blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .unsynced()
            .map_err(|e| Error::Storage(format!("cannot list sled's blob files: {e}")))
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
        self.append_flushed(request, Flush::Now).await
    }

    /// Appends like [`EventLog::append`], and returns as it does once the
    /// events are durable, but lets their fdatasync wait up to
    /// [`Options::shared_flush_wait`] (10 ms) for other appends to share
    /// it: the group is
    /// made durable with the next group whose caller is waiting, or when
    /// the wait is over. For appends nobody is waiting on, such as a
    /// consumer's record of another service's event, acknowledged to NATS
    /// only once durable: made one by one, each would cost a device wait
    /// of its own. Durability is the same; only the answer may come later.
    ///
    /// # Errors
    /// As [`EventLog::append`].
    pub async fn append_sharing_flush(&self, request: AppendRequest) -> Result<Appended, Error> {
        self.append_flushed(request, Flush::Shared).await
    }

    async fn append_flushed(
        &self,
        request: AppendRequest,
        flush: Flush,
    ) -> Result<Appended, Error> {
        if let Some(active) = self.follows() {
            return Err(Error::ReadOnly { active });
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::Append(Box::new(request), flush, tx))
            .await
            .map_err(|_| Error::Closed)?;
        let appended = rx.await.map_err(|_| Error::Closed)??;
        self.wait_stored(appended.last_position).await?;
        Ok(appended)
    }

    /// Returns once the log holds `position` where an acknowledgement may
    /// rest on it: in a cluster (acks gated, [`EventLog::gate_acks`]) once
    /// the cluster's copy holds it, otherwise at once (an append returns
    /// durable). A consumer calls it with the log's last position before
    /// it acknowledges a message whose handler found its work already done
    /// in what the log holds: that may be an event the cluster never
    /// stored, set aside when this process loses its lease, and the
    /// message must then come again to whoever writes next.
    ///
    /// # Errors
    /// [`Error::NotReplicated`] when the cluster's copy did not reach
    /// `position` within the gate's wait.
    pub async fn wait_stored(&self, position: u64) -> Result<(), Error> {
        let Some(gate) = self.inner.gate.get() else {
            return Ok(());
        };
        let mut reached = gate.reached.clone();
        let waited = tokio::time::timeout(gate.wait, reached.wait_for(|p| *p >= position)).await;
        if matches!(waited, Ok(Ok(_))) {
            Ok(())
        } else {
            Err(Error::NotReplicated {
                position,
                waited_ms: u64::try_from(gate.wait.as_millis()).unwrap_or(u64::MAX),
            })
        }
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
    ///
    /// From now on too, [`EventLog::subscribe_readable`] shows a reader
    /// only what the cluster stored. Call it within a tokio runtime: a
    /// task follows `gate.reached` and the imports until the log closes.
    pub fn gate_acks(&self, gate: AckGate) {
        // What the log held when the gate was set counts as stored: a
        // service sets it at start, after comparing its log with the
        // cluster's copy and setting aside what the cluster never stored.
        // Set before the gate, so that no reader sees the gate without it.
        let floor = self.last_position();
        if self.inner.gated_at.set(floor).is_err() {
            return;
        }
        let reached = gate.reached.clone();
        let _ = self.inner.gate.set(gate);
        let (readable, rx) = watch::channel(floor);
        let _ = self.inner.readable.set(rx);
        tokio::spawn(follow_stored(
            readable,
            floor,
            self.inner.committed.clone(),
            reached,
            self.inner.imported.subscribe(),
        ));
    }

    /// The last position a reader may be shown: the last durable one
    /// ([`EventLog::last_position`]) until acks are gated
    /// ([`EventLog::gate_acks`]); after, the last one the cluster stored
    /// (the gate's `reached`), imported from it, or held when the gate was
    /// set, never past the durable one. A read that shows a record only up
    /// to it never shows an event its writer was refused with
    /// [`Error::NotReplicated`] while the cluster does not hold it; and an
    /// append acknowledged is readable at once.
    #[must_use]
    pub fn readable_position(&self) -> u64 {
        let durable = self.last_position();
        match (self.inner.gate.get(), self.inner.gated_at.get()) {
            (Some(gate), Some(floor)) => readable(
                *floor,
                *gate.reached.borrow(),
                durable,
                *self.inner.imported.borrow(),
            ),
            _ => durable,
        }
    }

    /// A receiver that wakes (`changed().await`) when
    /// [`EventLog::readable_position`] moves: what a read model follows.
    /// Its value may trail that position by a moment; read the position
    /// itself for what to show. Subscribe after the gate is set.
    #[must_use]
    pub fn subscribe_readable(&self) -> watch::Receiver<u64> {
        self.inner
            .readable
            .get()
            .cloned()
            .unwrap_or_else(|| self.subscribe())
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
        let Some(last) = envelopes.last().map(|e| e.global_position) else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::Import(envelopes, tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)??;
        self.inner.imported.send_if_modified(|imported| {
            let moved = last > *imported;
            *imported = (*imported).max(last);
            moved
        });
        Ok(())
    }

    /// The stream's head, or `None` when it has no events; never past
    /// [`EventLog::last_position`], like [`EventLog::read_stream`]: the
    /// stored head moves with a group's write, before its flush, and is
    /// then shown as the stream's last durable event.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn head(&self, stream: StreamId) -> Result<Option<Head>, Error> {
        let durable = self.last_position();
        self.blocking(move |t| {
            let Some(head) = t.head(stream)? else {
                return Ok(None);
            };
            if t.event(stream, head.version)?
                .is_none_or(|last| last.global_position <= durable)
            {
                return Ok(Some(head));
            }
            Ok(t.read_stream_backward(stream, None, 1, durable)?
                .pop()
                .map(|last| Head {
                    stream,
                    version: last.seq,
                    hash: last.hash,
                }))
        })
        .await
    }

    /// Every tail set aside from this log ([`crate::set_aside_after`]),
    /// oldest first: events the cluster never stored, kept for an auditor.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn set_aside(&self) -> Result<Vec<crate::SetAside>, Error> {
        self.blocking(crate::setaside::read).await
    }

    /// The stored answer to `command_id`, to answer a retry of that
    /// command with, once it may be acknowledged as the first answer could
    /// have been: durable here and, in a cluster (acks gated,
    /// [`EventLog::gate_acks`]), held by the cluster. [`EventLog::command`]
    /// alone finds an answer from the moment its group is in sled: a retry
    /// answered from it was acknowledged while the cluster lacked the
    /// report, and the report was set aside when the process lost its
    /// lease (the whole-machine test found it).
    ///
    /// # Errors
    /// [`Error::NotReplicated`] when the cluster's copy did not reach it in
    /// time; [`Error::Storage`] when it is not durable within 5 s;
    /// [`Error::Corrupt`].
    pub async fn acknowledged_command(&self, command_id: &str) -> Result<Option<Appended>, Error> {
        let Some(first) = self.command(command_id).await? else {
            return Ok(None);
        };
        let position = first.last_position;
        let mut committed = self.subscribe();
        // A bool, not the watch's borrow, across the next await.
        let durable = matches!(
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                committed.wait_for(|p| *p >= position),
            )
            .await,
            Ok(Ok(_))
        );
        if !durable {
            return Err(Error::Storage(format!(
                "the first answer to this request (position {position}) is not on disk yet: not acknowledged; retry with the same request id"
            )));
        }
        self.wait_stored(position).await?;
        Ok(Some(first))
    }

    /// The stored answer to `command_id`, if that command was applied
    /// (never on a log that keeps no answers, [`Options::keep_answers`]).
    /// Lets a caller that derives the stream from the request find the
    /// stream a retry belongs to. To answer a retry with it, use
    /// [`EventLog::acknowledged_command`].
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

    /// Up to `limit` events of a stream in seq order from `from_seq`, never
    /// past [`EventLog::last_position`]: an event of a group whose flush
    /// has not returned is not shown (a case's page, a replay, a follower),
    /// since a crash could still take it back. Like [`EventLog::read_all`].
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn read_stream(
        &self,
        stream: StreamId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        let durable = self.last_position();
        self.blocking(move |t| t.read_stream(stream, from_seq, limit, durable))
            .await
    }

    /// Up to `limit` events of a stream in descending seq order from
    /// `from_seq`, or from the last durable event when `None`; never past
    /// [`EventLog::last_position`], like [`EventLog::read_stream`].
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn read_stream_backward(
        &self,
        stream: StreamId,
        from_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        let durable = self.last_position();
        self.blocking(move |t| t.read_stream_backward(stream, from_seq, limit, durable))
            .await
    }

    /// A named side tree of this log's sled database, outside the events
    /// and the hash chain, for data that must stay deletable (the intake
    /// service's wrapped data keys). A write to it becomes durable with the
    /// next append (it rides in that group's write-ahead record), so write
    /// it before the append that depends on it.
    ///
    /// # Errors
    /// When sled cannot open the tree.
    pub fn side_tree(&self, name: &str) -> Result<SideTree, Error> {
        let name = crate::layout::side_tree(name);
        let tree = self.inner.trees.db.open_tree(&name)?;
        Ok(SideTree::new(name, tree, self.inner.side.clone()))
    }

    /// Up to `limit` events of the whole log in global order from
    /// `from_position`, never past [`EventLog::last_position`]: a group is
    /// in sled (and in the recent events) before its flush returns, and a
    /// reader of the global order (the log relay replicating it, a read
    /// model, an auditor) must not be handed an event that a crash could
    /// still take back.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<Envelope>, Error> {
        let durable = self.last_position();
        let from = from_position.max(1);
        if from > durable {
            return Ok(Vec::new());
        }
        let limit = usize::try_from(durable - from + 1).map_or(limit, |n| limit.min(n));
        // A follower of the tail gets the events the writer just wrote as
        // they were written, without reading them back from sled.
        if let Some(events) = self.recent().read(from_position, limit) {
            return Ok(events);
        }
        self.blocking(move |t| t.read_all(from_position, limit))
            .await
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.inner
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// Recomputes the hash chain of a stream from seq 1 to its head. A
    /// group being appended to the stream meanwhile is not taken for
    /// damage: it counts once its head is written (its events past the
    /// head, not durable yet and named by the global index, are left out).
    ///
    /// # Errors
    /// [`Error::Storage`] when sled fails; altered data is reported as
    /// [`Verification::Broken`], not as an error.
    pub async fn verify(&self, stream: StreamId) -> Result<Verification, Error> {
        let durable = self.last_position();
        self.blocking(move |t| t.verify(stream, durable)).await
    }

    /// Up to `limit` events still waiting in the outbox, in global order.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    pub async fn outbox(&self, limit: usize) -> Result<Vec<Envelope>, Error> {
        self.outbox_through(limit, u64::MAX).await
    }

    /// As [`EventLog::outbox`], only events at positions up to `through`.
    async fn outbox_through(&self, limit: usize, through: u64) -> Result<Vec<Envelope>, Error> {
        // The outbox holds only what is not published yet, whose events
        // are nearly always the newest, decoded in memory
        // (`log/recent.rs`): then it is read on this thread. When one of
        // them is older (the bus was away), the page is read again with
        // sled's help on the blocking pool.
        let recent = &self.inner.recent;
        if let Some(events) = self.inline(|t| outbox_page(t, recent, limit, through, false))? {
            return Ok(events);
        }
        let recent = recent.clone();
        self.blocking(move |t| {
            outbox_page(t, &recent, limit, through, true).map(|events| events.unwrap_or_default())
        })
        .await
    }

    /// Up to `limit` events of the outbox that may leave for other
    /// services now, in global order: in a cluster ([`EventLog::gate_acks`])
    /// only those the cluster's copy holds, so that nothing is handed on
    /// that a failover could lose (a report no surviving node has must not
    /// open a case); otherwise only those durable here
    /// ([`EventLog::last_position`]), never a group sled holds whose
    /// write-ahead record is not synced yet: a crash would lose it here
    /// after another service acted on it, and the client, never answered,
    /// would send the report again as a new one.
    ///
    /// # Errors
    /// As [`EventLog::outbox`].
    pub async fn outbox_publishable(&self, limit: usize) -> Result<Vec<Envelope>, Error> {
        // Read first: whatever the outbox holds up to here is durable
        // (stored by the cluster).
        self.outbox_through(limit, self.stored_up_to()).await
    }

    /// The last position that may leave this process: in a cluster (acks
    /// gated, [`EventLog::gate_acks`]) the last the cluster's copy holds;
    /// otherwise the log's last (durable once appended). A sender that
    /// publishes outside the outbox relay (a re-publish of what a receiver
    /// has not confirmed) must send nothing beyond it: an event the
    /// cluster does not hold may be set aside when this process loses its
    /// lease, and must not have reached another service.
    #[must_use]
    pub fn stored_up_to(&self) -> u64 {
        match self.inner.gate.get() {
            Some(gate) => *gate.reached.borrow(),
            None => self.last_position(),
        }
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

    /// The size of the log's files on disk, in bytes: sled's count, and
    /// the write-ahead files not yet checkpointed.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn size_on_disk(&self) -> Result<u64, Error> {
        let wal = self.inner.path.join("wal");
        self.blocking(move |t| {
            let mut size = t.db.size_on_disk()?;
            for entry in std::fs::read_dir(&wal)? {
                match entry?.metadata() {
                    Ok(meta) => size += meta.len(),
                    // Deleted by a checkpoint between listing and reading.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(size)
        })
        .await
    }

    /// Of `positions`, those whose events were appended to be published:
    /// waiting in the outbox or published. One read of the store for a
    /// whole page (the log relay asks once per page it replicates).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn for_bus(&self, positions: Vec<u64>) -> Result<HashSet<u64>, Error> {
        fn marked(t: &Trees, positions: Vec<u64>) -> Result<HashSet<u64>, Error> {
            let mut marked = HashSet::new();
            for position in positions {
                let key = position.to_be_bytes();
                if t.outbox.contains_key(key)? || t.published.contains_key(key)? {
                    marked.insert(position);
                }
            }
            Ok(marked)
        }
        // A page at the log's tail (the relay keeping up) is read on this
        // thread: the newest keys, in memory. An older page (the relay
        // catching up after the bus was away) may need sled to read pages
        // from the disk: the blocking pool.
        let (Some(&from), Some(&to)) = (positions.iter().min(), positions.iter().max()) else {
            return Ok(HashSet::new());
        };
        if self.recent().holds(from, to) {
            return self.inline(move |t| marked(t, positions));
        }
        self.blocking(move |t| marked(t, positions)).await
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
        self.outbox_done_all(vec![(position, bus_sequence)]).await
    }

    /// As [`EventLog::outbox_done`] for each `(position, bus_sequence)` of
    /// `done`, in one call: a relay that had a window of messages
    /// acknowledged at once.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn outbox_done_all(&self, done: Vec<(u64, u64)>) -> Result<(), Error> {
        if done.is_empty() {
            return Ok(());
        }
        self.blocking(move |t| {
            for (position, bus_sequence) in done {
                let key = position.to_be_bytes();
                t.published.insert(key, &bus_sequence.to_be_bytes())?;
                t.outbox.remove(key)?;
            }
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
        // Inline: one point read, of the newest keys nearly always (a
        // consumer takes messages in order, and their ids grow with time);
        // a redelivery of an old message may find its leaf on the disk.
        self.inline(move |t| Ok(t.inbox.contains_key(key)?))
    }

    /// Records that `consumer` applied `message_id`, so that a redelivery
    /// is recognised. Answered once written, without a flush of its own:
    /// the record is durable with the next group that appends (any later
    /// acknowledged append of this log) or the close. A crash before that
    /// loses only the record, so the message is applied again, and a
    /// consumer's handler must be idempotent anyway (it appends under the
    /// message's id as its command id, `baove_bus::Handler`); one device
    /// wait per consumed message would cost every hand-over a second one.
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

    /// Runs `f` on the caller's thread: for the few reads every
    /// acknowledged append triggers, of small trees whose newest pages sled
    /// keeps in memory (the outbox, the published keys of the tail, the
    /// inbox keys of new messages).
    /// Each would otherwise hand a closure of microseconds to tokio's
    /// blocking pool and back, waking two threads: those three reads were 6
    /// of the 9 such hand-offs per hotline report intake made (counted with
    /// a uprobe on tokio's `Spawner::spawn_task` under 200 reports/s). A
    /// read that may walk a large part of the log goes to
    /// [`EventLog::blocking`] instead.
    fn inline<T>(&self, f: impl FnOnce(&Trees) -> Result<T, Error>) -> Result<T, Error> {
        f(&self.inner.trees)
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
/// Copy the directory of a cleanly stopped service (its `wal/` is then
/// empty): after a crash, the last groups may be only in the write-ahead
/// files until [`EventLog::open`] writes them into sled.
/// Besides the chain, each stored value must be the exact encoding of the
/// envelope it decodes to, so even a change that decodes to the same
/// meaning (a hex digit's case, an escaped character) is reported.
///
/// # Errors
/// [`Error::Storage`] when sled fails.
pub fn verify_copy(db: &sled::Db, stream: StreamId) -> Result<Verification, Error> {
    Trees::open(db.clone())?.verify(stream, u64::MAX)
}
