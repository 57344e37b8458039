//! baove's event store: per-stream append-only logs in one sled database,
//! durable before acknowledged, idempotent forever, tamper-evident.
//!
//! Each service process opens one [`EventLog`]. A stream (a case, an intake,
//! a referral) is a sequence of [`Envelope`]s numbered from 1; every event
//! also gets a position in the log's total order, which relays, projections
//! and auditors follow.
//!
//! # Guarantees
//! - **Optimistic concurrency**: [`EventLog::append`] names the version it
//!   expects ([`ExpectedVersion`]); a mismatch is [`Error::Conflict`] with
//!   the current version. Nothing is merged silently.
//! - **Idempotency forever**: the first answer to each `command_id` is
//!   stored; a retry gets it back (`replayed = true`) and writes nothing,
//!   also after a restart.
//! - **Durable before acknowledged**: an append returns after its group's
//!   writes are in the log's write-ahead file and that file is
//!   `fdatasync`ed: one device wait. sled's own flush (which ends in
//!   `sync_file_range` and needs an `fdatasync` of sled's file besides:
//!   sled #1452) runs every few seconds as a checkpoint, off that path;
//!   opening the log writes into sled again whatever the write-ahead files
//!   hold past the last checkpoint (`log/wal.rs`). There is no window of
//!   loss.
//! - **Group commit**: one writer thread drains every waiting append,
//!   decides each and writes the group into sled (no transaction: each
//!   group ends with a mark, and opening cuts sled back to the last group
//!   marked whole, or to the last write-ahead record, then writes again the
//!   records past it, `log/wal.rs`); a sync
//!   thread makes every group handed to it durable with one write-ahead
//!   record each and one fdatasync, and only then answers the callers (who
//!   wait on a oneshot). Deciding the next group overlaps with syncing the
//!   previous one. An append nobody waits on
//!   ([`EventLog::append_sharing_flush`]: a consumer's record of another
//!   service's event) lets its group's fdatasync wait up to
//!   [`SHARED_FLUSH_WAIT`] for the next group that has a caller waiting,
//!   and shares it.
//!   Reads go to tokio's blocking pool, so that a read waiting on the disk
//!   never holds up the async executor, except reads of the newest events,
//!   which are served from the decoded copy the writer keeps of them
//!   (`log/recent.rs`), and the point reads each append triggers (the
//!   outbox and whether the tail's positions were published, when their
//!   events are among those newest; a consumer's inbox), which sled
//!   answers from pages in memory nearly always (`EventLog::inline`).
//! - **Consumers' inbox records** ([`EventLog::record_applied`]) are
//!   written without a flush of their own and made durable by the next
//!   group that appends: a crash may only make a message be applied again,
//!   which a consumer's idempotent handler absorbs.
//! - **Tamper evidence**: see below; [`EventLog::verify`] names the first seq
//!   that was altered, removed, reordered or inserted.
//!
//! # Verifying a log without this crate
//! Each envelope carries `prev_hash` and `hash`, with
//! `hash = SHA-256(prev_hash ‖ canonical_bytes)` and `prev_hash` of seq 1 =
//! 32 zero bytes. `canonical_bytes` is the ASCII tag `baove-envelope-v1`
//! followed by thirteen fields, each as a 4-byte big-endian length and the
//! field's bytes, in this order: event id (16 UUID bytes), stream id (16 UUID
//! bytes), seq (u64 BE), event type (UTF-8), schema version (u32 BE),
//! recorded-at (i64 BE, Unix ms), actor user id, actor role, actor agency id,
//! command id, causation id, correlation id (UTF-8 each), payload (the JSON
//! text exactly as stored). The global position is not covered: it is an
//! index of this copy of the log. [`Envelope::canonical_bytes`] is the
//! reference implementation. The chain proves that no event was changed
//! relative to a head hash you hold; compare the head with one obtained
//! independently (for example from the published events on NATS) to detect a
//! rewrite of the whole stream.
//!
//! # Layout
//! - [`envelope`]: [`StreamId`], [`Actor`], [`NewEvent`], [`Envelope`],
//!   [`ChainHash`], the canonical encoding.
//! - `log`: [`EventLog`], [`AppendRequest`], [`Appended`], [`Head`],
//!   [`Verification`], [`SideTree`], the writer, sync and checkpoint
//!   threads, the write-ahead files (`wal/` in the log's directory).
//! - [`layout`]: sled tree names and key encodings.
//! - `setaside`: [`set_aside_after`], moving a tail the cluster never
//!   stored out of the log, into its `set-aside` tree ([`SetAside`]).
//! - [`tlog`]: the log as a Merkle tree (a transparency log): roots,
//!   inclusion and consistency proofs.
//! - `error`: [`Error`].

pub mod envelope;
mod error;
pub mod layout;
mod log;
mod setaside;
pub mod tlog;

pub use envelope::{Actor, ChainHash, Envelope, NewEvent, StreamId};
pub use error::Error;
pub use log::{
    APPENDED, AckGate, AppendRequest, Appended, Clock, EventLog, ExpectedVersion, GROUP_SIZE, Head,
    MAX_EVENTS_PER_APPEND, Options, Parked, SHARED_FLUSH_WAIT, SYNC_SECONDS, SideTree,
    Verification, verify_copy,
};
pub use setaside::{SetAside, set_aside_after};
