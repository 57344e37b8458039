//! The write-ahead files: where a group becomes durable.
//!
//! The writer writes each group into sled with plain inserts ([`commit`]),
//! in memory (sled writes it to its own files when it likes); the syncer
//! then appends the group's writes to the current write-ahead file under
//! `wal/` in the database's directory, as one checksummed record, and one
//! `fdatasync` of that file makes every group written so far durable.
//! That is one device
//! wait per group, where a sled flush (its write and `sync_file_range`)
//! followed by an `fdatasync` of sled's file cost two, and sled's flush work
//! leaves the path of every acknowledgement. Measured (issue #15, stop 56):
//! the services spent about 15% less CPU per report at 100 reports/s; the
//! eventlog bench did not move, its limit being the writer's CPU (sled's
//! copy-on-write, allocation), not the device.
//!
//! A **checkpoint** makes sled itself durable, off that path: every
//! [`CHECKPOINT_EVERY`] (or [`CHECKPOINT_BYTES`] of records) the syncer
//! starts a new file and hands the full one to the checkpoint thread, which
//! notes in sled (tree [`layout::WAL`]) the number of the last record that
//! file holds and the last global position it reaches, flushes sled and
//! fdatasyncs its file (and sled's new blob
//! files), and only then deletes the file. Closing the log makes a last
//! checkpoint and leaves no file.
//!
//! Each group ends with a **mark** in the same tree ([`WHOLE`]): the last
//! position of the last group written whole. sled recovers a prefix of the
//! writes it was given, after a crash or after damage to its files at rest
//! (a flipped byte or a truncated file ends its recovery there), and
//! without a transaction per group that prefix may end inside a group:
//! the mark says where the whole groups end, which sled's own state cannot
//! (an index entry whose event was lost reads as the log's end).
//!
//! **Opening** ([`recover`]) first cuts sled back ([`cut_back`]) to the
//! mark, or to where the records end when that is earlier (groups sled
//! holds whose record was never written were never acknowledged), with
//! what the groups cut changed. It then replays, in order, every record
//! numbered after the noted one ([`replay`]): events sled holds stay as
//! they are, the rest are written again; a record whose events start past
//! sled's last position, or an event sled holds with other bytes than the
//! record's, means sled lost more than any crash could, and the log
//! refuses to open, naming the file. The heads, answers, inbox records and
//! side-tree writes a record carries are written again in order: each is
//! the final value of its key as of that record. Then it checkpoints and
//! deletes the files, before anything reads the log. A record cut short by
//! a crash (its group was never acknowledged: the fdatasync had not
//! returned) ends the replay; a damaged record with a valid one after it
//! refuses the open. With no record to replay (a clean close leaves none)
//! and sled's groups ending before the position the last checkpoint noted,
//! damage at rest lost acknowledged events: the log opens as the whole
//! prefix it holds, logged as an error, and the service repairs it from its
//! log stream or refuses it against the checkpoint kept outside sled
//! (`baove-runtime`); it is never served as whole.
//!
//! Record: `length` (u32 LE) ‖ `crc32` of the rest (u32 LE) ‖ `number` (u64
//! LE) ‖ the [`Writes`] in postcard. Numbers grow by one across files; file
//! names are the file's generation, zero-padded, growing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Trees;
use crate::{Error, layout};

/// How long a write-ahead file collects records before a checkpoint.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// How many bytes of records a file collects at most before a checkpoint.
pub(super) const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// The key, in tree [`layout::WAL`], of the last record a checkpoint made
/// durable in sled (u64 BE).
const CHECKPOINTED: &[u8] = b"checkpointed";
/// The key, in tree [`layout::WAL`], of the last global position the
/// checkpointed records reach (u64 BE): where the log ends when no record
/// follows, and anything sled holds past it is cut ([`cut_back`]).
pub(crate) const CHECKPOINTED_POSITION: &[u8] = b"checkpointed-position";
/// The key, in tree [`layout::WAL`], of the last global position of the
/// last group written whole into sled (u64 BE): [`commit`] writes it after
/// every other write of a group, so sled, which recovers a prefix of the
/// writes it was given, holds every write of each group up to it. Past it
/// sled may hold part of one group (a crash, or damage to its files at
/// rest), which opening cuts ([`cut_back`]).
pub(crate) const WHOLE: &[u8] = b"whole";
/// The key, in tree [`layout::WAL`], that says each group is marked
/// ([`WHOLE`]): written when the log is first opened by a version that
/// marks them, before any group. A log without it and with events was
/// written with one sled transaction per group, each whole.
const MARKED: &[u8] = b"marked";
/// Bytes before a record's content: length and crc32.
const FRAME: usize = 8;

/// One group's writes, as the writer commits them to sled and as a
/// write-ahead record keeps them.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Writes {
    /// (`events` key, stored envelope, global position, also in the outbox)
    pub(crate) events: Vec<(Vec<u8>, Vec<u8>, u64, bool)>,
    /// (`heads` key, value)
    pub(crate) heads: Vec<(Vec<u8>, Vec<u8>)>,
    /// (`commands` key, answer as JSON)
    pub(crate) commands: Vec<(Vec<u8>, Vec<u8>)>,
    /// `inbox` keys.
    pub(crate) inbox: Vec<Vec<u8>>,
    /// Writes to side trees, in the order they were made: (sled tree name,
    /// key, the new value or none for a removal).
    pub(crate) side: Vec<SideWrite>,
}

/// One write to a side tree (`crate::SideTree`).
pub(crate) type SideWrite = (String, Vec<u8>, Option<Vec<u8>>);

/// Writes a group's events, heads, answers and inbox records into sled
/// with plain inserts, in an order that keeps every prefix of them
/// recoverable (sled recovers a prefix of its writes after a crash, and
/// the checkpoint's flush may catch a group half written):
/// - each event's global index entry and outbox entry before the event
///   itself, so an event sled holds is always found from its position
///   (a cut, [`cut_back`], finds it) and an event without its outbox
///   entry was published (a replay does not put it back);
/// - the heads after every event of the group, so a head never names an
///   event that is not there;
/// - the answers after the heads, so a stored answer's events and heads
///   are there;
/// - the inbox records after the answers (each written after the effect
///   it records was durable, [`crate::EventLog::record_applied`]: never
///   one to undo);
/// - the mark ([`WHOLE`]) last: where it stands, sled holds the group
///   whole.
///
/// (Side writes are in sled already when a group is formed; a replay
/// writes them with [`write_side`].) A reader sees a group whole once the
/// log's durable position covers it: every read of events is bounded by
/// it, and the outbox by what may leave ([`crate::EventLog::stored_up_to`]).
///
/// Not one sled transaction, which cost most of the write path's CPU:
/// sled rolls its io buffer before and after each transaction's batch
/// marker, and each roll is written by sled's `sled-io` thread pool, whose
/// seven threads are all woken for every job. Measured against one
/// transaction per group (2026-12-07, release builds, interleaved, two
/// runs each): `deploy/local/bench.sh --rates 100,200 --secs 20` put
/// intake at 2.42-2.92 ms of CPU per report at 100 reports/s instead of
/// 3.08-3.92 and casework at 2.02-2.26 instead of 2.51-3.03, with half the
/// context switches (intake 60 per report instead of 111) and `sled-io`
/// at 0.02 ms instead of 0.5-0.8 (10% less CPU at 200 reports/s);
/// `cargo bench -p baove-eventlog` (200,000-event log) put 1 writer at
/// 0.45x the fdatasync rate instead of 0.35-0.38x, 64 writers at
/// 3.9-4.1x instead of 3.4x, and the fill at 48-53k events/s instead of
/// 38k (the mark was added after these runs; the figures for the
/// version with it are in the closing note of stop 59, issue #15).
/// Atomicity comes instead from the mark: opening cuts sled back to it,
/// or to the last write-ahead record when that is earlier ([`cut_back`]),
/// and replays the records after it whole ([`replay`]).
///
/// A first version without the mark (ff2d085, stop 58) was reverted: after
/// a clean close (no record left to replay) a sled file damaged at rest
/// could recover to a state ending inside the last group, an index entry
/// without its event, which opening took for the log's end; CI's
/// corruption test then found an acknowledged report not served. The test
/// `rest::given_a_closed_log_damaged_at_rest_...` (240 damaged copies of
/// a closed log) finds 127 inconsistent opens on that version and none on
/// this one or on the transaction's.
pub(crate) fn commit(trees: &Trees, writes: &Writes) -> Result<(), String> {
    let stored = |e: sled::Error| format!("cannot write to sled: {e}");
    for (key, bytes, position, publish) in &writes.events {
        let position = position.to_be_bytes();
        trees
            .global
            .insert(&position[..], key.as_slice())
            .map_err(stored)?;
        if *publish {
            trees
                .outbox
                .insert(&position[..], key.as_slice())
                .map_err(stored)?;
        }
        trees
            .events
            .insert(key.as_slice(), bytes.as_slice())
            .map_err(stored)?;
    }
    for (key, value) in &writes.heads {
        trees
            .heads
            .insert(key.as_slice(), value.as_slice())
            .map_err(stored)?;
    }
    for (key, value) in &writes.commands {
        trees
            .commands
            .insert(key.as_slice(), value.as_slice())
            .map_err(stored)?;
    }
    for key in &writes.inbox {
        trees
            .inbox
            .insert(key.as_slice(), &[][..])
            .map_err(stored)?;
    }
    if let Some(last) = writes.events.iter().map(|e| e.2).max() {
        trees
            .noted
            .insert(WHOLE, &last.to_be_bytes())
            .map_err(stored)?;
    }
    Ok(())
}

fn write_side(db: &sled::Db, side: &[SideWrite]) -> Result<(), Error> {
    for (tree, key, value) in side {
        let tree = db.open_tree(tree)?;
        match value {
            Some(value) => tree.insert(key.as_slice(), value.as_slice())?,
            None => tree.remove(key.as_slice())?,
        };
    }
    Ok(())
}

/// The write-ahead file records are appended to, held by the syncer.
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    generation: u64,
    /// The number of the next record.
    next: u64,
    /// The last global position of the records so far.
    last_position: u64,
    /// Bytes written to the current file.
    bytes: u64,
    /// When the current file was started.
    started: Instant,
}

/// A full write-ahead file handed to the checkpoint thread.
pub(super) struct Full {
    pub(super) generation: u64,
    /// The number of its last record.
    pub(super) last: u64,
    /// The last global position its records reach.
    pub(super) last_position: u64,
}

impl Wal {
    /// Appends `writes` as the next record (not synced).
    pub(super) fn append(&mut self, writes: &Writes) -> Result<(), String> {
        let mut record = vec![0u8; FRAME];
        record.extend_from_slice(&self.next.to_le_bytes());
        let record = postcard::to_extend(writes, record)
            .map_err(|e| format!("cannot encode a write-ahead record: {e}"))?;
        let length = u32::try_from(record.len() - FRAME)
            .map_err(|_| "a write-ahead record over 4 GiB".to_owned())?;
        let crc = crc32fast::hash(&record[FRAME..]);
        let mut record = record;
        record[..4].copy_from_slice(&length.to_le_bytes());
        record[4..FRAME].copy_from_slice(&crc.to_le_bytes());
        self.file
            .write_all(&record)
            .map_err(|e| format!("cannot write {}: {e}", self.path().display()))?;
        self.next += 1;
        if let Some((_, _, position, _)) = writes.events.last() {
            self.last_position = *position;
        }
        self.bytes += record.len() as u64;
        Ok(())
    }

    /// Makes every record appended so far durable.
    pub(super) fn sync(&self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| format!("cannot fdatasync {}: {e}", self.path().display()))
    }

    /// Whether the current file is due for a checkpoint.
    pub(super) fn is_full(&self) -> bool {
        self.bytes > 0
            && (self.started.elapsed() >= CHECKPOINT_EVERY || self.bytes >= CHECKPOINT_BYTES)
    }

    /// Syncs the current file and starts a new one; returns the one it
    /// ended, or none when it holds no record. (Synced first: a record
    /// written without a sync of its own, such as an inbox record, is
    /// durable with the next group's fdatasync, which is of the new file.)
    pub(super) fn rotate(&mut self) -> Result<Option<Full>, String> {
        if self.bytes == 0 {
            return Ok(None);
        }
        self.sync()?;
        let full = Full {
            generation: self.generation,
            last: self.next - 1,
            last_position: self.last_position,
        };
        self.file = create(&self.dir, self.generation + 1).map_err(|e| {
            format!(
                "cannot start a write-ahead file in {}: {e}",
                self.dir.display()
            )
        })?;
        self.generation += 1;
        self.bytes = 0;
        self.started = Instant::now();
        Ok(Some(full))
    }

    /// The number of the last record appended (0 before any).
    pub(super) fn last(&self) -> u64 {
        self.next - 1
    }

    /// The last global position of the records appended (or, before any,
    /// where the log ended when it was opened).
    pub(super) fn last_position(&self) -> u64 {
        self.last_position
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self) -> PathBuf {
        file_path(&self.dir, self.generation)
    }
}

fn file_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}"))
}

fn create(dir: &Path, generation: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(file_path(dir, generation))?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// The write-ahead files in `dir`, oldest first.
fn files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "{} is not a write-ahead file of this log (their names are numbers): move it out of that directory and start again",
                    entry.path().display()
                ))
            })?;
        found.push((generation, entry.path()));
    }
    found.sort_unstable();
    Ok(found)
}

/// The checkpoint: notes that every record up to `last` is in sled, and
/// that they reach global position `last_position`, flushes sled and
/// fdatasyncs its file (`sync_data_file`, which first syncs sled's blob
/// files), then deletes the write-ahead files up to generation `upto`.
pub(super) fn checkpoint(
    db: &sled::Db,
    sync_data_file: &dyn Fn() -> Result<(), String>,
    dir: &Path,
    (last, last_position): (u64, u64),
    upto: u64,
) -> Result<(), String> {
    // The position first: a crash between the two leaves the number of
    // the checkpoint before, whose records are replayed again.
    db.open_tree(layout::WAL)
        .and_then(|t| {
            t.insert(CHECKPOINTED_POSITION, &last_position.to_be_bytes())?;
            t.insert(CHECKPOINTED, &last.to_be_bytes())
        })
        .map_err(|e| format!("cannot note the checkpoint: {e}"))?;
    db.flush().map_err(|e| e.to_string())?;
    sync_data_file()?;
    let gone = files(dir).map_err(|e| e.to_string())?;
    let mut removed = false;
    for (_, path) in gone.into_iter().filter(|(g, _)| *g <= upto) {
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove write-ahead file {}: {e}", path.display()))?;
        removed = true;
    }
    if removed {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Cuts sled back to the write-ahead records, replays into it every
/// record not yet checkpointed (see the module doc), checkpoints, and
/// opens a new write-ahead file. Returns it and how many records were
/// replayed.
pub(crate) fn recover(
    path: &Path,
    trees: &Trees,
    sync_data_file: &dyn Fn() -> Result<(), String>,
) -> Result<(Wal, u64), Error> {
    let dir = path.join("wal");
    std::fs::create_dir_all(&dir)?;
    let noted = trees.db.open_tree(layout::WAL)?;
    let checkpointed = match noted.get(CHECKPOINTED)? {
        Some(v) => layout::decode_u64(&v)?,
        None => 0,
    };
    let checkpointed_position = noted
        .get(CHECKPOINTED_POSITION)?
        .map(|v| layout::decode_u64(&v))
        .transpose()?;
    let found = files(&dir)?;
    let mut records = Vec::new();
    let mut last = checkpointed;
    let count = found.len();
    for (i, (_, file)) in found.iter().enumerate() {
        let bytes = std::fs::read(file)?;
        for (number, writes) in read_records(&bytes, file, i + 1 == count)? {
            if number <= checkpointed {
                continue;
            }
            if number != last + 1 {
                return Err(Error::Corrupt(format!(
                    "write-ahead file {}: record {number} follows record {last}",
                    file.display()
                )));
            }
            last = number;
            records.push((number, file, writes));
        }
    }
    // Where sled's groups end whole: the mark (a log written with one
    // transaction per group, before the marks, ends whole where sled ends).
    let whole = match (noted.get(WHOLE)?, noted.get(MARKED)?) {
        (Some(v), _) => layout::decode_u64(&v)?,
        (None, Some(_)) => 0,
        (None, None) => trees.last_position()?,
    };
    // Where the log ends: the last position a record reaches (records
    // follow the checkpoint's, or are the ones it noted, when a crash came
    // between its two notes), or the checkpoint's, or where its groups
    // end whole.
    let recorded = records
        .iter()
        .filter_map(|(_, _, w)| w.events.last().map(|e| e.2))
        .max();
    let end = match (recorded, checkpointed_position) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => whole,
    };
    let cut = cut_back(trees, whole.min(end))?;
    if whole < end && recorded.is_none() {
        tracing::error!(
            path = %path.display(),
            events_cut = cut,
            position = whole,
            checkpointed = end,
            "sled's files end at position {whole}, short of position {end} the last checkpoint made durable: acknowledged events are missing (damage at rest); the log opens as that shorter prefix, to be repaired from its log stream or refused against the kept checkpoint"
        );
    } else if cut > 0 {
        tracing::warn!(
            path = %path.display(),
            events = cut,
            position = whole.min(end),
            "events sled held past the last write-ahead record, or past its last whole group, were cut (written before a crash, never acknowledged, or completed again from their record)"
        );
    }
    if noted.get(MARKED)?.is_none() {
        noted.insert(WHOLE, &trees.last_position()?.to_be_bytes())?;
        noted.insert(MARKED, &[][..])?;
    }
    let mut replayed = 0;
    for (number, file, writes) in &records {
        replay(trees, writes).map_err(|e| match e {
            Error::Corrupt(why) => Error::Corrupt(format!(
                "write-ahead file {}, record {number}: {why}",
                file.display()
            )),
            other => other,
        })?;
        replayed += 1;
    }
    let generation = found.last().map_or(0, |(g, _)| *g);
    let last_position = trees.last_position()?;
    if !found.is_empty() || cut > 0 {
        // Before anything is written at the positions cut: sled must not
        // bring the cut events back after another crash.
        checkpoint(
            &trees.db,
            sync_data_file,
            &dir,
            (last, last_position),
            generation,
        )
        .map_err(Error::Storage)?;
    }
    let file = create(&dir, generation + 1)?;
    Ok((
        Wal {
            dir,
            file,
            generation: generation + 1,
            next: last + 1,
            last_position,
            bytes: 0,
            started: Instant::now(),
        },
        replayed,
    ))
}

/// Removes from sled every event past global position `end`, where the
/// write-ahead records end, with what its group wrote beside it: its
/// global index and outbox entries, the heads it moved (each stream's head
/// goes back to its last event kept, or the stream is gone), the answers
/// of the commands that wrote it, and the Merkle tree past `end`. Such an
/// event is of a group whose record was never written (a crash, or a
/// power loss before its fdatasync): it was never acknowledged, and sled
/// may hold only part of its group. Returns how many events were cut.
fn cut_back(trees: &Trees, end: u64) -> Result<u64, Error> {
    if trees.last_position()? <= end {
        return Ok(0);
    }
    let mut streams = std::collections::HashSet::new();
    let mut cut = 0;
    let past: Vec<(sled::IVec, sled::IVec)> = trees
        .global
        .range((end + 1).to_be_bytes()..)
        .collect::<Result<_, _>>()?;
    for (position, pointer) in past {
        let (stream, seq) = layout::decode_pointer(&pointer)?;
        trees.events.remove(layout::event_key(stream, seq))?;
        trees.outbox.remove(&position)?;
        trees.published.remove(&position)?;
        trees.global.remove(&position)?;
        streams.insert(stream);
        cut += 1;
    }
    for stream in streams {
        let kept = trees
            .events
            .range(layout::event_key(stream, 1)..=layout::event_key(stream, u64::MAX))
            .next_back()
            .transpose()?;
        match kept {
            Some((_, bytes)) => {
                let last = crate::Envelope::decode(&bytes)?;
                trees.heads.insert(
                    stream.as_bytes(),
                    &layout::encode_head(last.seq, last.hash)[..],
                )?;
            }
            None => {
                trees.heads.remove(stream.as_bytes())?;
            }
        }
    }
    let mut answered_past = Vec::new();
    for item in &trees.commands {
        let (id, stored) = item?;
        let answer: super::Appended = serde_json::from_slice(&stored)
            .map_err(|e| Error::Corrupt(format!("command record: {e}")))?;
        if answer.last_position > end {
            answered_past.push(id);
        }
    }
    for id in answered_past {
        trees.commands.remove(id)?;
    }
    crate::tlog::truncate(&trees.tree, end)?;
    trees.noted.insert(WHOLE, &end.to_be_bytes())?;
    Ok(cut)
}

/// The records of one file. A record cut short or damaged ends the last
/// file (a crash during its write: it was never acknowledged) unless a
/// valid record follows it somewhere; in an earlier file, or with a valid
/// record after it, it is damage.
fn read_records(bytes: &[u8], file: &Path, last_file: bool) -> Result<Vec<(u64, Writes)>, Error> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Some((number, writes, next)) => {
                records.push((number, writes));
                at = next;
            }
            None => {
                let after = (at + 1..bytes.len()).find(|&o| record_at(bytes, o).is_some());
                if !last_file || after.is_some() {
                    return Err(Error::Corrupt(format!(
                        "write-ahead file {} is damaged at byte {at}: acknowledged groups after it would be lost; restore the data directory from a backup or rebuild it from the cluster's stream",
                        file.display()
                    )));
                }
                tracing::warn!(
                    file = %file.display(),
                    at,
                    "a write-ahead record cut short by a crash (never acknowledged) is left out"
                );
                break;
            }
        }
    }
    Ok(records)
}

fn record_at(bytes: &[u8], at: usize) -> Option<(u64, Writes, usize)> {
    let head = bytes.get(at..at + FRAME)?;
    let length = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    let body = bytes.get(at + FRAME..(at + FRAME).checked_add(length)?)?;
    if length < 8 || crc32fast::hash(body) != crc {
        return None;
    }
    let number = u64::from_le_bytes(body[..8].try_into().ok()?);
    let writes = postcard::from_bytes(&body[8..]).ok()?;
    Some((number, writes, at + FRAME + length))
}

/// Writes one record's group into sled again, whichever part of it sled
/// holds (a prefix, [`commit`]'s order): each event it lacks with its
/// global index and outbox entries (an event it holds must be the same
/// bytes), then the heads, answers and inbox records, each the final value
/// of its key as of this record, and the side writes in order.
fn replay(trees: &Trees, writes: &Writes) -> Result<(), Error> {
    if let Some((_, _, first, _)) = writes.events.first() {
        let have = trees.last_position()?;
        if *first > have + 1 {
            return Err(Error::Corrupt(format!(
                "its events start at position {first}, but the log's sled files end at position {have}: acknowledged events are missing; restore the data directory from a backup or rebuild it from the cluster's stream"
            )));
        }
    }
    for (key, bytes, position, publish) in &writes.events {
        match trees.events.get(key)? {
            Some(held) if held.as_ref() == bytes.as_slice() => {}
            Some(_) => {
                return Err(Error::Corrupt(format!(
                    "sled holds another event than the record's at position {position}: restore the data directory from a backup or rebuild it from the cluster's stream"
                )));
            }
            None => {
                let at = position.to_be_bytes();
                trees.global.insert(&at[..], key.as_slice())?;
                if *publish {
                    trees.outbox.insert(&at[..], key.as_slice())?;
                }
                trees.events.insert(key.as_slice(), bytes.as_slice())?;
            }
        }
    }
    for (key, value) in &writes.heads {
        trees.heads.insert(key.as_slice(), value.as_slice())?;
    }
    for (key, value) in &writes.commands {
        trees.commands.insert(key.as_slice(), value.as_slice())?;
    }
    for key in &writes.inbox {
        trees.inbox.insert(key.as_slice(), &[][..])?;
    }
    if let Some(last) = writes.events.iter().map(|e| e.2).max() {
        trees.noted.insert(WHOLE, &last.to_be_bytes())?;
    }
    write_side(&trees.db, &writes.side)
}
