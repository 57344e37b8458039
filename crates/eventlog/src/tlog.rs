//! The log as a transparency log: a Merkle tree over every event in global
//! order (RFC 6962 / RFC 9162 hashing, through the `tlog_tiles` crate, a
//! port of Go's `golang.org/x/mod/sumdb/tlog`).
//!
//! Leaf *i* (0-based) is the 32-byte envelope hash of the event at global
//! position *i + 1*; the tree of size *n* covers positions 1..=n. Its root
//! is what a C2SP checkpoint signs; an inclusion proof shows one event
//! under a root, a consistency proof that a larger tree extends a smaller
//! one (the log only grew).
//!
//! The tree's stored hashes (`tlog` tree, [`crate::layout::TREE`]) are
//! derived data: they are added when first needed, from the events, in
//! one sled batch per 1,024 events, never on the append path. A check that
//! must not trust them ([`root_of`]) recomputes a root from the events
//! themselves.

use std::collections::BTreeMap;

pub use tlog_tiles::Hash;
use tlog_tiles::{
    HashReader, prove_record, prove_tree, record_hash, split_stored_hash_index, stored_hash_count,
    stored_hash_index, stored_hashes_for_record_hash, tree_hash,
};

use crate::{Envelope, Error};

/// The key under which the number of events the stored hashes cover is
/// kept (4 bytes: no stored-hash key, 8 bytes, can equal it).
const SIZE_KEY: &[u8] = b"size";

/// Events read and hashed per sled batch while the tree grows.
const GROW_PAGE: usize = 1024;

/// The leaf hash of an event: `SHA-256(0x00 ‖ envelope hash)`.
#[must_use]
pub fn leaf(event_hash: &[u8; 32]) -> Hash {
    record_hash(event_hash)
}

/// Hashes kept in memory over a sled tree: what a batch being built adds.
struct Reader<'a> {
    stored: &'a sled::Tree,
    pending: Option<&'a BTreeMap<u64, Hash>>,
}

impl HashReader for Reader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                if let Some(h) = self.pending.and_then(|p| p.get(i)) {
                    return Ok(*h);
                }
                let stored = self
                    .stored
                    .get(i.to_be_bytes())
                    .ok()
                    .flatten()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                <[u8; 32]>::try_from(stored.as_ref())
                    .map(Hash)
                    .map_err(|_| tlog_tiles::Error::MalformedHash)
            })
            .collect()
    }
}

impl<'a> Reader<'a> {
    /// The hashes stored in `tree`, nothing pending.
    fn stored(tree: &'a sled::Tree) -> Self {
        Self {
            stored: tree,
            pending: None,
        }
    }
}

/// The number of events the stored hashes of `tree` cover.
pub(crate) fn covered(tree: &sled::Tree) -> Result<u64, Error> {
    match tree.get(SIZE_KEY)? {
        None => Ok(0),
        Some(v) => <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Corrupt("malformed Merkle tree size".into())),
    }
}

/// Drops the stored hashes of every event after the first `size`: the
/// events after them were set aside ([`crate::set_aside_after`]). The
/// hashes of a tree of `n` events are the first `stored_hash_count(n)`
/// indexes, so what stays is exactly the tree of `size`.
pub(crate) fn truncate(tree: &sled::Tree, size: u64) -> Result<(), Error> {
    if covered(tree)? <= size {
        return Ok(());
    }
    let keep = stored_hash_count(size);
    let mut batch = sled::Batch::default();
    for key in tree.range(keep.to_be_bytes()..) {
        let (key, _) = key?;
        if key.len() == 8 {
            batch.remove(key);
        }
    }
    batch.insert(SIZE_KEY, &size.to_be_bytes());
    tree.apply_batch(batch)?;
    Ok(())
}

/// Adds the stored hashes of the events after those `tree` covers, up to
/// `target`, reading them with `read_all(from, limit)`.
pub(crate) fn grow(
    tree: &sled::Tree,
    target: u64,
    read_all: impl Fn(u64, usize) -> Result<Vec<Envelope>, Error>,
) -> Result<(), Error> {
    let mut n = covered(tree)?;
    while n < target {
        let events = read_all(n + 1, GROW_PAGE)?;
        if events.is_empty() {
            return Err(Error::Corrupt(format!(
                "the Merkle tree needs event {} of the log, which is missing",
                n + 1
            )));
        }
        let mut pending = BTreeMap::new();
        for event in events
            .into_iter()
            .take_while(|e| e.global_position <= target)
        {
            if event.global_position != n + 1 {
                return Err(Error::Corrupt(format!(
                    "the log's global order skips from {n} to {}",
                    event.global_position
                )));
            }
            let reader = Reader {
                stored: tree,
                pending: Some(&pending),
            };
            let hashes = stored_hashes_for_record_hash(n, leaf(&event.hash.0), &reader)
                .map_err(|e| Error::Corrupt(format!("Merkle tree at {n}: {e}")))?;
            let base = stored_hash_index(0, n);
            for (k, h) in (base..).zip(hashes) {
                pending.insert(k, h);
            }
            n += 1;
        }
        let mut batch = sled::Batch::default();
        for (k, h) in &pending {
            batch.insert(&k.to_be_bytes(), &h.0);
        }
        batch.insert(SIZE_KEY, &n.to_be_bytes());
        tree.apply_batch(batch)?;
    }
    Ok(())
}

fn check_size(tree: &sled::Tree, size: u64, last: u64) -> Result<(), Error> {
    let covered = covered(tree)?;
    if covered > last {
        return Err(Error::Corrupt(format!(
            "the Merkle tree covers {covered} events but the log holds {last}: events were removed from the log"
        )));
    }
    if size > last {
        return Err(Error::InvalidArgument {
            field: "tree_size",
            rule: format!("must be at most the log's size, {last}"),
        });
    }
    Ok(())
}

fn proof_error(e: &tlog_tiles::Error) -> Error {
    Error::Corrupt(format!("the Merkle tree's stored hashes: {e}"))
}

/// The root of the tree of the first `size` events (the log holds `last`).
pub(crate) fn root(tree: &sled::Tree, size: u64, last: u64) -> Result<Hash, Error> {
    check_size(tree, size, last)?;
    tree_hash(size, &Reader::stored(tree)).map_err(|e| proof_error(&e))
}

/// The inclusion proof of the event at `position` in the tree of `size`.
pub(crate) fn inclusion(
    tree: &sled::Tree,
    position: u64,
    size: u64,
    last: u64,
) -> Result<Vec<Hash>, Error> {
    check_size(tree, size, last)?;
    if position == 0 || position > size {
        return Err(Error::InvalidArgument {
            field: "position",
            rule: format!("must be between 1 and the tree size, {size}"),
        });
    }
    prove_record(size, position - 1, &Reader::stored(tree)).map_err(|e| proof_error(&e))
}

/// The consistency proof from the tree of `old` events to that of `new`.
pub(crate) fn consistency(
    tree: &sled::Tree,
    old: u64,
    new: u64,
    last: u64,
) -> Result<Vec<Hash>, Error> {
    check_size(tree, new, last)?;
    if old == 0 || old > new {
        return Err(Error::InvalidArgument {
            field: "old_size",
            rule: format!("must be between 1 and the new size, {new}"),
        });
    }
    prove_tree(new, old, &Reader::stored(tree)).map_err(|e| proof_error(&e))
}

/// The root over the given event hashes, in order, computed from them
/// alone (nothing stored is trusted): what a start-up check or an auditor
/// compares with a signed checkpoint. Keeps only the right edge of the tree
/// (one hash per level), so memory stays flat however long the log is.
#[must_use]
pub fn root_of<'a>(event_hashes: impl IntoIterator<Item = &'a [u8; 32]>) -> (Hash, u64) {
    let mut edge = Edge::default();
    let mut n = 0u64;
    for h in event_hashes {
        // Reads only the newest hash of each level, which `edge` keeps.
        let Ok(hashes) = stored_hashes_for_record_hash(n, leaf(h), &edge) else {
            unreachable!("the right edge holds every hash an append reads")
        };
        for (k, h) in (stored_hash_index(0, n)..).zip(hashes) {
            let (level, index) = split_stored_hash_index(k);
            edge.0.insert(level, (index, h));
        }
        n += 1;
    }
    let Ok(root) = tree_hash(n, &edge) else {
        unreachable!("the right edge holds every complete subtree of the root")
    };
    (root, n)
}

/// The newest stored hash of each level: `level -> (index, hash)`.
#[derive(Default)]
struct Edge(BTreeMap<u8, (u64, Hash)>);

impl HashReader for Edge {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|k| {
                let (level, index) = split_stored_hash_index(*k);
                match self.0.get(&level) {
                    Some((i, h)) if *i == index => Ok(*h),
                    _ => Err(tlog_tiles::Error::IndexesNotInTree),
                }
            })
            .collect()
    }
}
