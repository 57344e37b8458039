//! The data keys of confidential fields: one per report (intake stream),
//! random, kept wrapped under the master key in a side tree of intake's
//! sled database, outside the hash chain, so that it can be destroyed.
//!
//! Limits: sled is log-structured, so a destroyed key's old bytes may stay
//! in a segment file until sled reclaims it; for erasure that must hold
//! against a copy of the disk, keep the master key in an HSM/KMS and
//! rotate it after erasures (not done here).

use baove_eventlog::{EventLog, StreamId};
use baove_security::seal::{Key, Sealed};

/// Where data keys live.
pub struct KeyStore {
    tree: sled::Tree,
    master: Key,
}

/// The fields of this report were erased (its key destroyed).
#[derive(Debug)]
pub struct Erased;

impl KeyStore {
    /// The store in `log`'s database, wrapping with `master`.
    ///
    /// # Errors
    /// When sled cannot open the tree.
    pub fn open(log: &EventLog, master: Key) -> Result<Self, baove_eventlog::Error> {
        Ok(Self {
            tree: log.side_tree("data-keys")?,
            master,
        })
    }

    /// Creates the key of `stream` and seals `plaintext` with it. The key
    /// is written before the event that carries the blob is appended, and
    /// that append's flush makes both durable.
    ///
    /// # Errors
    /// When sled cannot write.
    pub fn seal_new(&self, stream: StreamId, plaintext: &[u8]) -> Result<Sealed, sled::Error> {
        let key = match self.key(stream) {
            Ok(Some(key)) => key,
            _ => {
                let key = Key::generate();
                self.tree
                    .insert(stream.as_bytes(), key.wrap(&self.master, stream.as_bytes()))?;
                key
            }
        };
        Ok(key.seal(stream.as_bytes(), plaintext))
    }

    fn key(&self, stream: StreamId) -> Result<Option<Key>, String> {
        match self
            .tree
            .get(stream.as_bytes())
            .map_err(|e| e.to_string())?
        {
            None => Ok(None),
            Some(wrapped) => Key::unwrap_key(&self.master, stream.as_bytes(), &wrapped)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }

    /// Opens the blob of `stream`.
    ///
    /// # Errors
    /// [`Erased`] when its key was destroyed; a message when it does not
    /// open (wrong master key, altered blob).
    pub fn open_sealed(
        &self,
        stream: StreamId,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, Result<Erased, String>> {
        match self.key(stream) {
            Ok(Some(key)) => key
                .open(stream.as_bytes(), sealed)
                .map_err(|e| Err(e.to_string())),
            Ok(None) => Err(Ok(Erased)),
            Err(e) => Err(Err(e)),
        }
    }

    /// Destroys the key of `stream`: its sealed fields can no longer be
    /// read anywhere. Durable with the next append (the erasure event).
    ///
    /// # Errors
    /// When sled cannot write.
    pub fn destroy(&self, stream: StreamId) -> Result<bool, sled::Error> {
        Ok(self.tree.remove(stream.as_bytes())?.is_some())
    }
}
