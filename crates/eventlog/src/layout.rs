//! How the log is laid out in sled: tree names and key/value encodings.
//!
//! Public so that an outside tool (an auditor's verifier, a repair script)
//! can read a copy of the database without this crate's writer.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `events` | stream id (16 bytes) ‖ seq (u64 BE) | the envelope in its compact form ([`crate::Envelope::encode_stored`]: the byte [`crate::envelope::STORED_FORM`], then postcard); logs written before it hold JSON, which still reads |
//! | `global` | position (u64 BE) | stream id ‖ seq |
//! | `heads` | stream id | last seq (u64 BE) ‖ last hash (32 bytes) |
//! | `commands` | command id (UTF-8) | the first answer ([`crate::Appended`]) as JSON; none in a log that keeps no answers ([`crate::Options::keep_answers`]: the access log) |
//! | `outbox` | position (u64 BE) | stream id ‖ seq, until the relay delivered it |
//! | `published` | position (u64 BE) | the bus's sequence (u64 BE) of its delivery: what was once published, to publish again if the bus loses its store |
//! | `inbox` | consumer ‖ 0x00 ‖ message id | empty: that message was applied |
//! | `set-aside` | n (u64 BE): the n-th tail set aside | a [`crate::SetAside`] as JSON: events the cluster never stored, moved out of the log ([`crate::set_aside_after`]) |
//! | `tlog` | stored-hash index (u64 BE), or `size` | a Merkle tree hash (32 bytes); under `size` the events covered (u64 BE) ([`crate::tlog`]) |
//! | `wal` | `checkpointed` | the number (u64 BE) of the last write-ahead record a checkpoint made durable in sled; records up to it are not replayed (`log/wal.rs`) |
//! | `side:<name>` | the service's | a side tree ([`side_tree`]): a service's deletable data outside the log (data keys), carried by backups |
//!
//! One `events` tree holds every stream: a tree per stream blows up sled's
//! disk use (sled #1484).

use crate::envelope::{ChainHash, StreamId};
use crate::{Error, Head};

/// Every stream's events.
pub const EVENTS: &str = "events";
/// The total order of the log.
pub const GLOBAL: &str = "global";
/// The last seq and hash of each stream.
pub const HEADS: &str = "heads";
/// The answer to each applied command id, kept forever.
pub const COMMANDS: &str = "commands";
/// Events still to be published.
pub const OUTBOX: &str = "outbox";
/// Incoming messages already applied, per consumer.
pub const INBOX: &str = "inbox";
/// Events delivered by the relay, with the bus's sequence of the delivery.
pub const PUBLISHED: &str = "published";
/// Incoming messages a consumer could not apply (undecodable or refused),
/// kept aside whole for an engineer to look at.
pub const PARKED: &str = "parked";
/// Tails of the log the cluster never stored, moved out of it
/// ([`crate::set_aside_after`]), kept for an auditor.
pub const SET_ASIDE: &str = "set-aside";
/// The stored hashes of the log's Merkle tree ([`crate::tlog`]).
pub const TREE: &str = "tlog";
/// Where the write-ahead files stand: the last record checkpointed.
pub const WAL: &str = "wal";

/// The sled name of the side tree `name` ([`crate::EventLog::side_tree`]).
#[must_use]
pub fn side_tree(name: &str) -> String {
    format!("side:{name}")
}

/// The `parked` key of the `n`th message `consumer` set aside.
#[must_use]
pub fn parked_key(consumer: &str, n: u64) -> Vec<u8> {
    let mut key = parked_prefix(consumer);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// The prefix of every `parked` key of `consumer`.
#[must_use]
pub fn parked_prefix(consumer: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(consumer.len() + 9);
    key.extend_from_slice(consumer.as_bytes());
    key.push(0);
    key
}

/// The `events` key of `stream` at `seq`.
#[must_use]
pub fn event_key(stream: StreamId, seq: u64) -> [u8; 24] {
    pointer(stream, seq)
}

/// The `global`/`outbox` value pointing at `stream` / `seq`.
#[must_use]
pub fn pointer(stream: StreamId, seq: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(stream.as_bytes());
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Splits an `events` key into stream and seq.
///
/// # Errors
/// [`Error::Corrupt`] if the key is not 24 bytes.
pub fn decode_event_key(key: &[u8]) -> Result<(StreamId, u64), Error> {
    decode_pointer(key)
}

/// Splits a `global`/`outbox` value into stream and seq.
///
/// # Errors
/// [`Error::Corrupt`] if the value is not 24 bytes.
pub fn decode_pointer(bytes: &[u8]) -> Result<(StreamId, u64), Error> {
    let (stream, seq) = bytes
        .split_first_chunk::<16>()
        .ok_or_else(|| Error::Corrupt("short event pointer".into()))?;
    let stream = StreamId::from_uuid(uuid::Uuid::from_bytes(*stream));
    Ok((stream, decode_u64(seq)?))
}

/// Decodes a big-endian u64.
///
/// # Errors
/// [`Error::Corrupt`] if `bytes` is not 8 bytes long.
pub fn decode_u64(bytes: &[u8]) -> Result<u64, Error> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("expected 8 bytes, found {}", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

/// The `heads` value for a version and hash.
#[must_use]
pub fn encode_head(version: u64, hash: ChainHash) -> [u8; 40] {
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&version.to_be_bytes());
    value[8..].copy_from_slice(&hash.0);
    value
}

/// Decodes a `heads` value.
///
/// # Errors
/// [`Error::Corrupt`] if the value is not 40 bytes.
pub fn decode_head(stream: StreamId, value: &[u8]) -> Result<Head, Error> {
    if value.len() != 40 {
        return Err(Error::Corrupt(format!(
            "head of {stream} is {} bytes, not 40",
            value.len()
        )));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&value[8..]);
    Ok(Head {
        stream,
        version: decode_u64(&value[..8])?,
        hash: ChainHash(hash),
    })
}

/// The `inbox` key of a consumer's message.
#[must_use]
pub fn inbox_key(consumer: &str, message_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(consumer.len() + 1 + message_id.len());
    key.extend_from_slice(consumer.as_bytes());
    key.push(0);
    key.extend_from_slice(message_id.as_bytes());
    key
}
