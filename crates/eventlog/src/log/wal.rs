//! The write-ahead files: where a group becomes durable.
//!
//! The writer commits each group to sled in one transaction, in memory
//! (sled writes it to its own files when it likes); the syncer then appends
//! the group's writes to the current write-ahead file under `wal/` in the
//! database's directory, as one checksummed record, and one `fdatasync` of
//! that file makes every group written so far durable. That is one device
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
//! file holds, flushes sled and fdatasyncs its file (and sled's new blob
//! files), and only then deletes the file. Closing the log makes a last
//! checkpoint and leaves no file.
//!
//! **Opening** replays, in order, every record numbered after the noted
//! one ([`recover`]), then checkpoints and deletes the files, before
//! anything reads the log. sled recovers a prefix of what it was given
//! (its transactions whole), so a record's events are either all in sled
//! already (left as they are) or start right after sled's last position
//! (written again, in one transaction); anything else means sled lost more
//! than any crash could, and the log refuses to open, naming the file. The
//! inbox records and side-tree writes a record carries are written again in
//! order: each is the final value of its key as of that record. A record
//! cut short by a crash (its group was never acknowledged: the fdatasync
//! had not returned) ends the replay; a damaged record with a valid one
//! after it refuses the open.
//!
//! Record: `length` (u32 LE) ‖ `crc32` of the rest (u32 LE) ‖ `number` (u64
//! LE) ‖ the [`Writes`] in postcard. Numbers grow by one across files; file
//! names are the file's generation, zero-padded, growing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::Trees;
use crate::{Error, layout};

/// How long a write-ahead file collects records before a checkpoint.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// How many bytes of records a file collects at most before a checkpoint.
pub(super) const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// The key, in tree [`layout::WAL`], of the last record a checkpoint made
/// durable in sled (u64 BE).
const CHECKPOINTED: &[u8] = b"checkpointed";
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

/// Writes a group's events, heads, answers and inbox records in one sled
/// transaction: after a crash either all of it is there or none. (Side
/// writes are in sled already when a group is formed; a replay writes them
/// with [`write_side`].)
///
/// The transaction is the largest single cost left on the write path.
/// sled rolls its io buffer before and after each transaction's batch
/// marker, and each roll is written by sled's `sled-io` thread pool, whose
/// seven threads are all woken for every job: the load bench's CPU by
/// thread put `sled-io` at 0.6-0.8 ms of intake's ~3 ms per report. With
/// plain inserts instead (measured once, 2026-12-07, not kept), intake
/// spent 1.81 ms per report at 200 reports/s instead of 3.21, casework
/// 1.46 instead of 2.77, with half the context switches. Not kept, because
/// the transaction is what makes a group all-or-nothing in sled: without
/// it readers not bounded by the durable position (a stream's events, its
/// head, `verify`) see half a group (in that run the outbox relay found an
/// outbox entry whose event was not written yet, took the log for corrupt
/// and waited a second: hand-over p99 near 1 s), and after a crash sled
/// may hold part of a group past the last write-ahead record, with no
/// record to complete it, so opening would have to cut sled back to the
/// last record (events, index, heads and answers) before the replay.
///
/// Tried a second time and reverted (ff2d085, stop 58): plain inserts in
/// an order whose every prefix is recoverable (index and outbox entries
/// before each event, heads after the events, answers after the heads),
/// a cut back to the records' end and a replay over a group sled holds in
/// part at open. Interleaved runs put intake at 2.42-2.92 ms per report
/// at 100 reports/s instead of 3.08-3.92 (10% less at 200/s) and the
/// eventlog bench's single writer at 0.45x the fdatasync rate instead of
/// 0.35-0.38x. Reverted because damage at rest defeats it: a clean close
/// leaves no write-ahead file, and in CI the corruption test's truncated
/// sled file then recovered to a state that intake served short (an
/// acknowledged report not found): most likely one ending inside the
/// last group, an index entry without its event, which opening took for
/// the log's end. Without the transaction sled's recovered state says
/// nothing about where a group ends; that would need a mark written after
/// each group's last insert, checked at open, and a refusal when sled ends
/// past it with no record to complete it.
pub(crate) fn commit(trees: &Trees, writes: &Writes) -> Result<(), String> {
    (
        &trees.events,
        &trees.global,
        &trees.heads,
        &trees.commands,
        &trees.outbox,
        &trees.inbox,
    )
        .transaction(|(events, global, heads, commands, outbox, inbox)| {
            for (key, bytes, position, publish) in &writes.events {
                let position = position.to_be_bytes();
                events.insert(key.as_slice(), bytes.as_slice())?;
                global.insert(&position[..], key.as_slice())?;
                if *publish {
                    outbox.insert(&position[..], key.as_slice())?;
                }
            }
            for (key, value) in &writes.heads {
                heads.insert(key.as_slice(), value.as_slice())?;
            }
            for (key, value) in &writes.commands {
                commands.insert(key.as_slice(), value.as_slice())?;
            }
            for key in &writes.inbox {
                inbox.insert(key.as_slice(), &[][..])?;
            }
            Ok(())
        })
        .map_err(|e: sled::transaction::TransactionError<()>| format!("{e:?}"))
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

/// The checkpoint: notes that every record up to `last` is in sled,
/// flushes sled and fdatasyncs its file (`sync_data_file`, which first
/// syncs sled's blob files), then deletes the write-ahead files up to
/// generation `upto`.
pub(super) fn checkpoint(
    db: &sled::Db,
    sync_data_file: &dyn Fn() -> Result<(), String>,
    dir: &Path,
    last: u64,
    upto: u64,
) -> Result<(), String> {
    db.open_tree(layout::WAL)
        .and_then(|t| t.insert(CHECKPOINTED, &last.to_be_bytes()))
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

/// Replays into sled every record not yet checkpointed (see the module
/// doc), checkpoints, and opens a new write-ahead file. Returns it and how
/// many records were replayed.
pub(crate) fn recover(
    path: &Path,
    trees: &Trees,
    sync_data_file: &dyn Fn() -> Result<(), String>,
) -> Result<(Wal, u64), Error> {
    let dir = path.join("wal");
    std::fs::create_dir_all(&dir)?;
    let checkpointed = match trees.db.open_tree(layout::WAL)?.get(CHECKPOINTED)? {
        Some(v) => layout::decode_u64(&v)?,
        None => 0,
    };
    let found = files(&dir)?;
    let mut last = checkpointed;
    let mut replayed = 0;
    let count = found.len();
    for (i, (_, file)) in found.iter().enumerate() {
        let bytes = std::fs::read(file)?;
        let records = read_records(&bytes, file, i + 1 == count)?;
        for (number, writes) in records {
            if number <= checkpointed {
                continue;
            }
            if number != last + 1 {
                return Err(Error::Corrupt(format!(
                    "write-ahead file {}: record {number} follows record {last}",
                    file.display()
                )));
            }
            replay(trees, &writes).map_err(|e| match e {
                Error::Corrupt(why) => Error::Corrupt(format!(
                    "write-ahead file {}, record {number}: {why}",
                    file.display()
                )),
                other => other,
            })?;
            last = number;
            replayed += 1;
        }
    }
    let generation = found.last().map_or(0, |(g, _)| *g);
    if !found.is_empty() {
        checkpoint(&trees.db, sync_data_file, &dir, last, generation).map_err(Error::Storage)?;
    }
    let file = create(&dir, generation + 1)?;
    Ok((
        Wal {
            dir,
            file,
            generation: generation + 1,
            next: last + 1,
            bytes: 0,
            started: Instant::now(),
        },
        replayed,
    ))
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

/// Writes one record's group into sled again unless sled holds it; its
/// inbox records and side writes in any case.
fn replay(trees: &Trees, writes: &Writes) -> Result<(), Error> {
    let have = trees.last_position()?;
    match (writes.events.first(), writes.events.last()) {
        (Some(first), Some(last)) if last.2 > have => {
            if first.2 != have + 1 {
                return Err(Error::Corrupt(format!(
                    "its events are at positions {} to {}, but the log's sled files end at position {have}: acknowledged events are missing; restore the data directory from a backup or rebuild it from the cluster's stream",
                    first.2, last.2
                )));
            }
            commit(trees, writes).map_err(Error::Storage)?;
        }
        _ => {
            for key in &writes.inbox {
                trees.inbox.insert(key.as_slice(), &[][..])?;
            }
        }
    }
    write_side(&trees.db, &writes.side)
}
