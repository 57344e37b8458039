//! Side trees: a service's deletable data beside the log, written through
//! the log's write-ahead file.

use std::sync::{Arc, Mutex};

use super::wal::SideWrite;

/// A named side tree of a log's sled database ([`super::EventLog::side_tree`]),
/// outside the events and the hash chain, for data that must stay
/// deletable (intake's wrapped data keys, casework's copies of referral
/// keys).
///
/// Each write goes to sled at once and is queued for the next group's
/// write-ahead record, so it becomes durable with the next append (write
/// it before the append that depends on it) or the next checkpoint. A
/// write and its place in the queue are taken under one lock: two writes
/// to one key are replayed in the order sled applied them.
#[derive(Clone)]
pub struct SideTree {
    name: String,
    tree: sled::Tree,
    queue: Arc<Mutex<Vec<SideWrite>>>,
}

impl std::fmt::Debug for SideTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideTree")
            .field("name", &self.name)
            .finish()
    }
}

impl SideTree {
    pub(super) fn new(name: String, tree: sled::Tree, queue: Arc<Mutex<Vec<SideWrite>>>) -> Self {
        Self { name, tree, queue }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<SideWrite>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value under `key`.
    ///
    /// # Errors
    /// When sled cannot read.
    pub fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<sled::IVec>> {
        self.tree.get(key)
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    /// When sled cannot read.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> sled::Result<bool> {
        self.tree.contains_key(key)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> sled::Iter {
        self.tree.iter()
    }

    /// Sets `key` to `value`; returns the value it had.
    ///
    /// # Errors
    /// When sled cannot write.
    pub fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<sled::IVec>,
    ) -> sled::Result<Option<sled::IVec>> {
        let value = value.into();
        let mut queue = self.queue();
        let old = self.tree.insert(key.as_ref(), value.clone())?;
        queue.push((
            self.name.clone(),
            key.as_ref().to_vec(),
            Some(value.to_vec()),
        ));
        Ok(old)
    }

    /// Removes `key`; returns the value it had.
    ///
    /// # Errors
    /// When sled cannot write.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<sled::IVec>> {
        let mut queue = self.queue();
        let old = self.tree.remove(key.as_ref())?;
        queue.push((self.name.clone(), key.as_ref().to_vec(), None));
        Ok(old)
    }

    /// Sets `key` to `new` only if its value is `old` (none: absent), as
    /// [`sled::Tree::compare_and_swap`].
    ///
    /// # Errors
    /// When sled cannot write.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl Into<sled::IVec>>,
    ) -> sled::Result<Result<(), sled::CompareAndSwapError>> {
        let new: Option<sled::IVec> = new.map(Into::into);
        let mut queue = self.queue();
        let swapped = self.tree.compare_and_swap(key.as_ref(), old, new.clone())?;
        if swapped.is_ok() {
            queue.push((
                self.name.clone(),
                key.as_ref().to_vec(),
                new.map(|v| v.to_vec()),
            ));
        }
        Ok(swapped)
    }
}
