//! The log's sled trees and the reads over them.

use super::*;

#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) db: sled::Db,
    pub(crate) events: sled::Tree,
    pub(crate) global: sled::Tree,
    pub(crate) heads: sled::Tree,
    pub(crate) commands: sled::Tree,
    pub(crate) outbox: sled::Tree,
    pub(crate) inbox: sled::Tree,
    pub(crate) published: sled::Tree,
    pub(crate) parked: sled::Tree,
    pub(crate) tree: sled::Tree,
    pub(crate) set_aside: sled::Tree,
    /// The write-ahead bookkeeping (tree [`layout::WAL`]): the checkpoint's
    /// notes and the mark of the last group written whole (`log/wal.rs`).
    pub(crate) noted: sled::Tree,
    /// One growth of the Merkle tree at a time.
    pub(crate) growing: Arc<Mutex<()>>,
}

impl Trees {
    pub(crate) fn open(db: sled::Db) -> Result<Self, Error> {
        Ok(Self {
            set_aside: db.open_tree(layout::SET_ASIDE)?,
            noted: db.open_tree(layout::WAL)?,
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

    pub(crate) fn head(&self, stream: StreamId) -> Result<Option<Head>, Error> {
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

    pub(crate) fn event_at(&self, pointer: &[u8]) -> Result<Envelope, Error> {
        let (stream, seq) = layout::decode_pointer(pointer)?;
        self.event(stream, seq)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "global index points at missing event {stream}/{seq}"
            ))
        })
    }

    /// The events of `stream` from seq `from` on, up to `limit`, stopping
    /// at the first one past the global position `durable` (a stream's
    /// positions grow with its seqs).
    pub(crate) fn read_stream(
        &self,
        stream: StreamId,
        from: u64,
        limit: usize,
        durable: u64,
    ) -> Result<Vec<Envelope>, Error> {
        let start = layout::event_key(stream, from.max(1));
        let end = layout::event_key(stream, u64::MAX);
        let mut events = Vec::new();
        for item in self.events.range(start..=end).take(limit) {
            let event = Envelope::decode(&item?.1)?;
            if event.global_position > durable {
                break;
            }
            events.push(event);
        }
        Ok(events)
    }

    /// The events of `stream` from seq `from` (or its last) down, up to
    /// `limit`, leaving out those past the global position `durable`.
    pub(crate) fn read_stream_backward(
        &self,
        stream: StreamId,
        from: Option<u64>,
        limit: usize,
        durable: u64,
    ) -> Result<Vec<Envelope>, Error> {
        let start = layout::event_key(stream, 1);
        let end = layout::event_key(stream, from.unwrap_or(u64::MAX));
        let mut events = Vec::new();
        for item in self.events.range(start..=end).rev() {
            if events.len() == limit {
                break;
            }
            let event = Envelope::decode(&item?.1)?;
            if event.global_position <= durable {
                events.push(event);
            }
        }
        Ok(events)
    }

    pub(crate) fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, Error> {
        self.global
            .range(from.max(1).to_be_bytes()..)
            .take(limit)
            .map(|item| self.event_at(&item?.1))
            .collect()
    }

    pub(crate) fn grow_tree(&self, target: u64) -> Result<(), Error> {
        let _one = self
            .growing
            .lock()
            .map_err(|_| Error::Storage("a Merkle tree growth panicked".into()))?;
        crate::tlog::grow(&self.tree, target, |from, limit| self.read_all(from, limit))
    }

    pub(crate) fn check_tree(&self, size: u64, root: crate::tlog::Hash) -> Result<(), Error> {
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

    /// Recomputes the chain of `stream` up to its head. `durable` is the
    /// log's durable position, read before this call (`u64::MAX` for a log
    /// no process writes): an event past the head whose position is past
    /// it, and which the global index names, is of a group being written
    /// now (its events go into sled before its head, `wal::commit`), not
    /// damage, and ends the chain here; the head is read first, so every
    /// event up to it is there.
    pub(crate) fn verify(&self, stream: StreamId, durable: u64) -> Result<Verification, Error> {
        let head = self.head(stream)?;
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
            if head.is_none_or(|h| key_seq > h.version)
                && event.global_position > durable
                && self
                    .global
                    .get(event.global_position.to_be_bytes())?
                    .as_deref()
                    == Some(&layout::pointer(stream, key_seq)[..])
            {
                break;
            }
            if event.encode_like(&value)? != value.as_ref() {
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
        match head {
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
