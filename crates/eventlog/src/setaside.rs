//! Setting aside the tail of a log that the cluster never stored.
//!
//! In a cluster a command is acknowledged only once the log stream's quorum
//! holds its events. A process that dies (or is cut off) may still have
//! written, on its own disk, events the stream never stored: nobody was
//! told they happened, and nothing was handed on for them. Meanwhile
//! another process took over and the stream went on with other events at
//! those positions. Before the first process may follow the stream again,
//! its log must end where the stream and it last agree: [`set_aside_after`]
//! moves every event after that position out of the log, whole and in
//! order, into the `set-aside` tree ([`crate::layout::SET_ASIDE`]), where an
//! auditor can still read them ([`crate::EventLog::set_aside`]), and undoes
//! what they had made in the log's indexes (heads, commands, outbox,
//! Merkle tree). The log is then a prefix of the stream's, and takes the
//! rest from it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::envelope::{ChainHash, Envelope, StreamId};
use crate::log::{Appended, Trees, open_recovered};
use crate::{Error, layout};

/// One tail moved out of a log by [`set_aside_after`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    /// Why, as the caller said it.
    pub reason: String,
    /// When (Unix milliseconds).
    pub set_aside_at_ms: i64,
    /// The events, in global order, exactly as they were stored.
    pub events: Vec<Envelope>,
}

/// Moves every event after global position `keep` out of the log in
/// directory `path`, which no process may have open, into its `set-aside`
/// tree, and makes the log what it was when it ended at `keep`: the heads
/// of the streams those events extended point at their event before, the
/// stored answers of the commands that wrote them are dropped (or end at
/// `keep`, for a command whose first events stay), and the outbox, the
/// published marks and the Merkle tree end at `keep`. Returns how many
/// events were set aside (0 when the log ends at or before `keep`).
///
/// Only for a log whose events after `keep` were never acknowledged: in a
/// cluster, what the log stream does not hold (the caller proves it by
/// finding other events there).
///
/// # Errors
/// [`Error::Storage`] when the log cannot be opened (another process holds
/// it), read or written; [`Error::Corrupt`] when its indexes do not agree
/// with its events. Nothing is changed then, or the same call can be made
/// again: the events leave the log in one transaction.
pub async fn set_aside_after(
    path: impl AsRef<Path>,
    keep: u64,
    reason: &str,
    now_ms: i64,
) -> Result<u64, Error> {
    let path = path.as_ref().to_path_buf();
    let reason = reason.to_owned();
    tokio::task::spawn_blocking(move || set_aside_blocking(&path, keep, reason, now_ms))
        .await
        .map_err(|e| Error::Storage(format!("set-aside task failed: {e}")))?
}

/// Every tail set aside from the log, oldest first.
pub(crate) fn read(trees: &Trees) -> Result<Vec<SetAside>, Error> {
    trees
        .set_aside
        .iter()
        .map(|item| {
            let (_, value) = item?;
            serde_json::from_slice(&value)
                .map_err(|e| Error::Corrupt(format!("a set-aside record: {e}")))
        })
        .collect()
}

fn set_aside_blocking(path: &Path, keep: u64, reason: String, now_ms: i64) -> Result<u64, Error> {
    // Whatever the write-ahead files hold is written into sled first (and
    // checkpointed): they must not bring the tail back at the next open.
    let (trees, files, _) = open_recovered(path, crate::Options::default().cache_capacity)?;
    let last = trees.last_position()?;
    if last <= keep {
        return Ok(0);
    }
    let tail = trees.read_all(keep + 1, usize::MAX)?;
    for (position, e) in (keep + 1..).zip(&tail) {
        if e.global_position != position {
            return Err(Error::Corrupt(format!(
                "the log's global order skips from {} to {}",
                position - 1,
                e.global_position
            )));
        }
    }

    // Each stream's head goes back to its event before its first one set
    // aside (or the stream is gone, when it began in the tail).
    let mut first_seq: HashMap<StreamId, u64> = HashMap::new();
    for e in &tail {
        first_seq.entry(e.stream_id).or_insert(e.seq);
    }
    let mut heads: Vec<(StreamId, Option<(u64, ChainHash)>)> = Vec::new();
    for (stream, seq) in first_seq {
        let head = if seq <= 1 {
            None
        } else {
            let before = trees.event(stream, seq - 1)?.ok_or_else(|| {
                Error::Corrupt(format!("{stream} has no event {} before its tail", seq - 1))
            })?;
            Some((before.seq, before.hash))
        };
        heads.push((stream, head));
    }

    // The stored answers of the commands that wrote the tail.
    let mut commands: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for e in tail.iter().filter(|e| !e.command_id.is_empty()) {
        if commands.contains_key(&e.command_id) {
            continue;
        }
        let Some(stored) = trees.commands.get(e.command_id.as_bytes())? else {
            continue;
        };
        let mut answer: Appended = serde_json::from_slice(&stored)
            .map_err(|err| Error::Corrupt(format!("command record {}: {err}", e.command_id)))?;
        let kept = if answer.first_position > keep {
            None
        } else if answer.last_position > keep {
            // Its first events stay: it ends at `keep`, which is its own.
            let at = trees.read_all(keep, 1)?;
            let Some(kept) = at.first().filter(|k| k.stream_id == answer.stream) else {
                return Err(Error::Corrupt(format!(
                    "command {} spans position {keep}, which holds another stream's event",
                    e.command_id
                )));
            };
            answer.last_seq = kept.seq;
            answer.last_position = keep;
            answer.head_hash = kept.hash;
            Some(
                serde_json::to_vec(&answer)
                    .map_err(|err| Error::Storage(format!("command record: {err}")))?,
            )
        } else {
            continue;
        };
        commands.insert(e.command_id.clone(), kept);
    }

    let number = match trees.set_aside.last()? {
        Some((key, _)) => layout::decode_u64(&key)? + 1,
        None => 1,
    };
    let count = tail.len() as u64;
    let removed: Vec<([u8; 8], [u8; 24])> = tail
        .iter()
        .map(|e| {
            (
                e.global_position.to_be_bytes(),
                layout::event_key(e.stream_id, e.seq),
            )
        })
        .collect();
    let record = serde_json::to_vec(&SetAside {
        reason,
        set_aside_at_ms: now_ms,
        events: tail,
    })
    .map_err(|e| Error::Storage(format!("set-aside record: {e}")))?;

    // The derived Merkle tree first: a crash before the transaction leaves
    // a tree the next growth rebuilds, and the same call can be made again.
    crate::tlog::truncate(&trees.tree, keep)?;
    use sled::Transactional as _;
    let noted = trees.db.open_tree(layout::WAL)?;
    (
        &trees.events,
        &trees.global,
        &trees.heads,
        &trees.commands,
        &trees.outbox,
        &trees.published,
        &trees.set_aside,
        &noted,
    )
        .transaction(
            |(events, global, heads_tree, commands_tree, outbox, published, set_aside, noted)| {
                for (position, key) in &removed {
                    events.remove(&key[..])?;
                    global.remove(&position[..])?;
                    outbox.remove(&position[..])?;
                    published.remove(&position[..])?;
                }
                for (stream, head) in &heads {
                    match head {
                        Some((version, hash)) => {
                            heads_tree.insert(
                                stream.as_bytes(),
                                &layout::encode_head(*version, *hash)[..],
                            )?;
                        }
                        None => {
                            heads_tree.remove(stream.as_bytes())?;
                        }
                    }
                }
                for (id, answer) in &commands {
                    match answer {
                        Some(answer) => commands_tree.insert(id.as_bytes(), answer.as_slice())?,
                        None => commands_tree.remove(id.as_bytes())?,
                    };
                }
                set_aside.insert(&number.to_be_bytes(), record.as_slice())?;
                // The log now ends at `keep`: a later open must cut sled
                // back to there, not to the end the last checkpoint noted.
                noted.insert(crate::log::CHECKPOINTED_POSITION, &keep.to_be_bytes()[..])?;
                noted.insert(crate::log::WHOLE, &keep.to_be_bytes()[..])?;
                Ok(())
            },
        )
        .map_err(|e: sled::transaction::TransactionError<()>| {
            Error::Storage(format!("setting aside the tail: {e:?}"))
        })?;
    trees.db.flush()?;
    files.sync().map_err(Error::Storage)?;
    Ok(count)
}
