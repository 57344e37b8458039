//! sled's blob files, made durable with the log.
//!
//! sled 0.34 writes a log message larger than a quarter of a segment
//! (128 KiB with the default 512 KiB segments) to a file of its own under
//! `blobs/`, and never fsyncs it (`pagecache/blob_io.rs`, `write_blob`):
//! the segment that points to it is made durable by our flush, the blob
//! itself is not. Such a message is typically a leaf of the events tree
//! rewritten whole, up to 17 events: with events of 20 KiB (a long report)
//! blobs appear, and a leaf's rewrite carries events acknowledged long
//! before. After a power cut (not a process crash: the kernel still holds
//! the pages) the log would point at a blob the disk never got, and sled
//! could not read those events back. So before each flush every blob file
//! that is new, or has grown since it was last synced, is fsynced, and the
//! directory with it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What has been synced of `blobs/`: each file's length when synced.
#[derive(Debug)]
pub(crate) struct Blobs {
    dir: PathBuf,
    synced: HashMap<OsString, u64>,
}

impl Blobs {
    /// The blob files of the database in `path`, none synced yet.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            dir: path.join("blobs"),
            synced: HashMap::new(),
        }
    }

    /// The blob files present, with their lengths (none when sled has not
    /// made the directory).
    fn present(&self) -> std::io::Result<Vec<(OsString, u64)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut present = Vec::new();
        for entry in entries {
            let entry = entry?;
            match entry.metadata() {
                Ok(meta) if meta.is_file() => present.push((entry.file_name(), meta.len())),
                Ok(_) => {}
                // Removed by sled's collection between listing and reading.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(present)
    }

    /// Fsyncs every blob file that is new or has grown since it was last
    /// synced, then the directory when any was; forgets the files sled has
    /// removed. Returns how many files it synced.
    ///
    /// # Errors
    /// When a file or the directory cannot be read or synced.
    pub(crate) fn sync_new(&mut self) -> std::io::Result<usize> {
        let present = self.present()?;
        let mut synced = 0;
        for (name, len) in &present {
            if self.synced.get(name) == Some(len) {
                continue;
            }
            match File::open(self.dir.join(name)) {
                Ok(file) => file.sync_all()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            // The length seen before the sync: a file still being written
            // is longer next time, and synced again.
            self.synced.insert(name.clone(), *len);
            synced += 1;
        }
        if synced > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        self.synced
            .retain(|name, _| present.iter().any(|(p, _)| p == name));
        Ok(synced)
    }

    /// The blob files present that are not synced as they stand.
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub(crate) fn unsynced(&self) -> std::io::Result<Vec<PathBuf>> {
        Ok(self
            .present()?
            .into_iter()
            .filter(|(name, len)| self.synced.get(name) != Some(len))
            .map(|(name, _)| self.dir.join(name))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write as _;

    #[test]
    fn given_blob_files_then_new_and_grown_ones_are_synced_and_removed_ones_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut blobs = Blobs::new(dir.path());
        // No blobs directory yet: nothing to do.
        assert_eq!(blobs.sync_new().unwrap(), 0);
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        let path = dir.path().join("blobs").join("4096");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        assert_eq!(blobs.unsynced().unwrap(), std::slice::from_ref(&path));
        assert_eq!(blobs.sync_new().unwrap(), 1);
        assert!(blobs.unsynced().unwrap().is_empty());
        assert_eq!(
            blobs.sync_new().unwrap(),
            0,
            "a synced file is not synced again"
        );
        // Still being written when it was synced: synced again.
        file.write_all(b" and the rest").unwrap();
        assert_eq!(blobs.unsynced().unwrap(), std::slice::from_ref(&path));
        assert_eq!(blobs.sync_new().unwrap(), 1);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(blobs.sync_new().unwrap(), 0);
        assert!(blobs.synced.is_empty(), "a removed blob is forgotten");
    }
}
