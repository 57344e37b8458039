//! The event envelope, its canonical encoding and the chain hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

use crate::Error;

/// Largest accepted payload, in bytes of JSON: 64 KiB, room for a report
/// whose every free-text field is at its limit in Vietnamese as typed,
/// sealed (47 KiB, measured; 32 KiB refused such reports). One stored event
/// (the envelope's compact form, the payload's bytes inside it) stays under
/// sled's blob threshold (segment size / 4 = 128 KiB), which sled writes to
/// a file of its own.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Largest accepted length of the short text fields (event type, actor
/// fields, command, causation and correlation ids), in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// The identity of one stream (for example one case): a UUID, stored as its
/// 16 bytes in keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(Uuid);

impl StreamId {
    /// A new, time-ordered stream id (UUIDv7).
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID.
    #[must_use]
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// Parses the canonical text form of a UUID.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `field` when `text` is not a UUID.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, Error> {
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|_| Error::InvalidArgument {
                field,
                rule: "must be a UUID such as 0192f0c4-8f1e-7c3a-9d2b-3f4e5a6b7c8d".into(),
            })
    }

    /// The UUID.
    #[must_use]
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes used in storage keys and in the canonical encoding.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Default for StreamId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A SHA-256 chain hash. Shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the first event of every stream: 32 zero bytes.
    pub const GENESIS: Self = Self([0; 32]);
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(self.0))
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return <[u8; 32]>::deserialize(d).map(Self);
        }
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(Self(out))
    }
}

/// Who caused a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    /// Stable user id.
    pub user_id: String,
    /// The role the user acted in (`system` for a service's own changes).
    pub role: String,
    /// The agency id; empty for `system`.
    pub agency_id: String,
}

impl Actor {
    /// The actor of changes a service makes on its own, e.g. `intake`.
    #[must_use]
    pub fn system(service: &str) -> Self {
        Self {
            user_id: service.to_owned(),
            role: "system".to_owned(),
            agency_id: String::new(),
        }
    }
}

/// An event to append: its stable type name, schema version and JSON payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
    pub(crate) payload: String,
}

impl NewEvent {
    /// Serialises `payload` as JSON (object keys sorted) under `event_type`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the type name is not 1–256 ASCII
    /// letters, digits or `_`, the schema version is 0, or the payload is not
    /// serialisable or larger than [`MAX_PAYLOAD_BYTES`].
    pub fn new<T: Serialize + ?Sized>(
        event_type: &str,
        schema_version: u32,
        payload: &T,
    ) -> Result<Self, Error> {
        // Through `Value` so that object keys come out sorted: the same
        // payload always serialises to the same bytes.
        let value = serde_json::to_value(payload).map_err(|e| Error::InvalidArgument {
            field: "payload",
            rule: format!("must serialise to JSON: {e}"),
        })?;
        Self::from_json(event_type, schema_version, value.to_string())
    }

    /// Takes an already serialised JSON payload as is.
    ///
    /// # Errors
    /// As [`NewEvent::new`], and when `payload` is not valid JSON.
    pub fn from_json(
        event_type: &str,
        schema_version: u32,
        payload: String,
    ) -> Result<Self, Error> {
        let valid_type = !event_type.is_empty()
            && event_type.len() <= MAX_FIELD_BYTES
            && event_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_type {
            return Err(Error::InvalidArgument {
                field: "event_type",
                rule: "must be 1 to 256 ASCII letters, digits or '_'".into(),
            });
        }
        if schema_version == 0 {
            return Err(Error::InvalidArgument {
                field: "schema_version",
                rule: "must be at least 1".into(),
            });
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::InvalidArgument {
                field: "payload",
                rule: format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"),
            });
        }
        if serde_json::from_str::<&serde_json::value::RawValue>(&payload).is_err() {
            return Err(Error::InvalidArgument {
                field: "payload",
                rule: "must be valid JSON".into(),
            });
        }
        Ok(Self {
            event_type: event_type.to_owned(),
            schema_version,
            payload,
        })
    }

    /// The event type name.
    #[must_use]
    pub fn event_type(&self) -> &str {
        &self.event_type
    }
}

/// One stored event. What is stored in sled is this struct in its compact
/// form ([`Envelope::encode_stored`]); logs written before that form hold
/// it as JSON ([`Envelope::encode`]), which is also the form published on
/// NATS. In both the payload is kept byte for byte as it was appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id (UUIDv7); the `Nats-Msg-Id` when published.
    pub event_id: Uuid,
    /// The stream the event belongs to.
    pub stream_id: StreamId,
    /// Position in the stream, from 1.
    pub seq: u64,
    /// Position in this log's total order, from 1. Not hashed.
    pub global_position: u64,
    /// Stable event type name.
    pub event_type: String,
    /// Payload schema version of this type.
    pub schema_version: u32,
    /// When recorded: milliseconds since the Unix epoch, UTC.
    pub recorded_at_ms: i64,
    /// Who caused it.
    pub actor: Actor,
    /// Idempotency key of the command that produced it.
    pub command_id: String,
    /// The event that caused this one, or empty.
    pub causation_id: String,
    /// The id tying one flow together.
    pub correlation_id: String,
    /// The payload, UTF-8 JSON exactly as appended.
    #[serde(with = "raw_json")]
    pub payload: String,
    /// Hash of the previous event of the stream ([`ChainHash::GENESIS`] for seq 1).
    pub prev_hash: ChainHash,
    /// `SHA-256(prev_hash ‖ canonical_bytes())`.
    pub hash: ChainHash,
}

/// The tag that starts the canonical bytes of every envelope, version 1.
pub const CANONICAL_TAG: &[u8] = b"baove-envelope-v1";

impl Envelope {
    /// The canonical bytes the chain hash covers: [`CANONICAL_TAG`], then each
    /// field below as a 4-byte big-endian length followed by its bytes:
    ///
    /// | # | field | bytes |
    /// |---|---|---|
    /// | 1 | event_id | the UUID's 16 bytes |
    /// | 2 | stream_id | the UUID's 16 bytes |
    /// | 3 | seq | u64 big-endian (8) |
    /// | 4 | event_type | UTF-8 |
    /// | 5 | schema_version | u32 big-endian (4) |
    /// | 6 | recorded_at_ms | i64 big-endian two's complement (8) |
    /// | 7–9 | actor.user_id, actor.role, actor.agency_id | UTF-8 |
    /// | 10–12 | command_id, causation_id, correlation_id | UTF-8 |
    /// | 13 | payload | the JSON's UTF-8 bytes exactly as stored |
    ///
    /// `global_position`, `prev_hash` and `hash` are not part of it.
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CANONICAL_TAG.len() + 160 + self.payload.len());
        out.extend_from_slice(CANONICAL_TAG);
        let mut field = |bytes: &[u8]| {
            // Every field is bounded (MAX_FIELD_BYTES, MAX_PAYLOAD_BYTES), far
            // below u32::MAX, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        field(self.event_id.as_bytes());
        field(self.stream_id.as_bytes());
        field(&self.seq.to_be_bytes());
        field(self.event_type.as_bytes());
        field(&self.schema_version.to_be_bytes());
        field(&self.recorded_at_ms.to_be_bytes());
        field(self.actor.user_id.as_bytes());
        field(self.actor.role.as_bytes());
        field(self.actor.agency_id.as_bytes());
        field(self.command_id.as_bytes());
        field(self.causation_id.as_bytes());
        field(self.correlation_id.as_bytes());
        field(self.payload.as_bytes());
        out
    }

    /// Recomputes `SHA-256(prev_hash ‖ canonical_bytes())` from the fields.
    #[must_use]
    pub fn compute_hash(&self) -> ChainHash {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.0);
        hasher.update(self.canonical_bytes());
        ChainHash(hasher.finalize().into())
    }

    /// Decodes an envelope from either of its forms: the compact stored
    /// form ([`Envelope::encode_stored`], first byte [`STORED_FORM`]) or
    /// JSON ([`Envelope::encode`], first byte `{`).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the bytes are not an envelope.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if let Some((&STORED_FORM, compact)) = bytes.split_first() {
            return match postcard::take_from_bytes::<Self>(compact) {
                Ok((envelope, [])) => Ok(envelope),
                Ok((_, rest)) => Err(Error::Corrupt(format!(
                    "undecodable event: {} bytes after the envelope's last field",
                    rest.len()
                ))),
                Err(e) => Err(Error::Corrupt(format!("undecodable event: {e}"))),
            };
        }
        // serde's message can quote the offending value whole: clip it, so
        // a megabyte of garbage is not echoed into logs and errors.
        serde_json::from_slice(bytes).map_err(|e| {
            Error::Corrupt(format!(
                "undecodable event: {}",
                baove_domain::text::clip(&e.to_string(), 300)
            ))
        })
    }

    /// Encodes the envelope as JSON: the form published on NATS (every
    /// version of baove reads it) and the one logs written before the
    /// compact form hold in sled.
    ///
    /// # Errors
    /// Only if serde_json fails, which it does not for this type; kept as a
    /// `Result` so a future field cannot turn it into a panic.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self).map_err(|e| Error::Corrupt(format!("unencodable event: {e}")))
    }

    /// Encodes the envelope in the compact form it is stored in: the byte
    /// [`STORED_FORM`], then the fields in their declared order in postcard's
    /// wire format (version 1, <https://postcard.jamesmunns.com>): integers as
    /// varints, each text (the payload too) as a varint length and its UTF-8
    /// bytes, the ids as 16 bytes and the hashes as 32. The field names, the
    /// hex and the quoting of the JSON form go (on the bench's events of
    /// ~1 KiB of payload, 1,984 → 1,574 bytes on disk per event), and
    /// reading it back does not parse the payload.
    ///
    /// # Errors
    /// Only if postcard fails, which it does not for this type.
    pub fn encode_stored(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(256 + self.payload.len());
        out.push(STORED_FORM);
        postcard::to_extend(self, out)
            .map_err(|e| Error::Corrupt(format!("unencodable event: {e}")))
    }

    /// Encodes the envelope again in the form `stored` is in, to check that
    /// stored bytes are exactly what this envelope encodes to.
    ///
    /// # Errors
    /// As [`Envelope::encode`] and [`Envelope::encode_stored`].
    pub fn encode_like(&self, stored: &[u8]) -> Result<Vec<u8>, Error> {
        if stored.first() == Some(&STORED_FORM) {
            self.encode_stored()
        } else {
            self.encode()
        }
    }
}

/// The first byte of an envelope in its compact stored form
/// ([`Envelope::encode_stored`]); the JSON form starts with `{`.
pub const STORED_FORM: u8 = 0x01;

/// In JSON, stores a JSON string as embedded raw JSON and reads it back
/// byte for byte; in the compact form, as a plain string. The compact form
/// does not parse the payload again when read: it was checked to be JSON
/// when appended, the chain hash covers its bytes, and every reader parses
/// it as its event type anyway.
mod raw_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(payload: &str, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_str(payload);
        }
        let raw: &RawValue = serde_json::from_str(payload).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        if !d.is_human_readable() {
            return String::deserialize(d);
        }
        let raw = <Box<RawValue>>::deserialize(d)?;
        Ok(raw.get().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut e = Envelope {
            event_id: Uuid::nil(),
            stream_id: StreamId::from_uuid(Uuid::from_u128(1)),
            seq: 1,
            global_position: 7,
            event_type: "IntakeRecorded".into(),
            schema_version: 1,
            recorded_at_ms: 1_700_000_000_000,
            actor: Actor::system("intake"),
            command_id: "c1".into(),
            causation_id: String::new(),
            correlation_id: "k".into(),
            payload: r#"{"b":1,"a":"x y"}"#.into(),
            prev_hash: ChainHash::GENESIS,
            hash: ChainHash::GENESIS,
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn stored_bytes_round_trip_keeps_the_payload_byte_for_byte() {
        let e = sample();
        let back = Envelope::decode(&e.encode().unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.payload, r#"{"b":1,"a":"x y"}"#);
        assert_eq!(back.compute_hash(), e.hash);
    }

    #[test]
    fn the_compact_form_round_trips_the_payload_byte_for_byte_and_is_smaller() {
        let e = sample();
        let compact = e.encode_stored().unwrap();
        assert_eq!(compact[0], STORED_FORM);
        let back = Envelope::decode(&compact).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.payload, r#"{"b":1,"a":"x y"}"#);
        assert_eq!(back.compute_hash(), e.hash);
        let json = e.encode().unwrap();
        assert_eq!(json[0], b'{');
        assert!(
            compact.len() * 2 < json.len(),
            "{} vs {}",
            compact.len(),
            json.len()
        );
        assert_eq!(e.encode_like(&compact).unwrap(), compact);
        assert_eq!(e.encode_like(&json).unwrap(), json);
    }

    #[test]
    fn a_cut_or_lengthened_compact_envelope_does_not_decode() {
        let compact = sample().encode_stored().unwrap();
        for len in 1..compact.len() {
            assert!(
                Envelope::decode(&compact[..len]).is_err(),
                "cut to {len} bytes"
            );
        }
        let mut longer = compact;
        longer.push(0);
        let err = Envelope::decode(&longer).unwrap_err().to_string();
        assert!(err.contains("1 bytes after"), "{err}");
    }

    #[test]
    fn a_huge_undecodable_message_gives_a_short_error() {
        let poison = format!("{{\"seq\": \"{}\"}}", "x".repeat(1_000_000));
        let err = Envelope::decode(poison.as_bytes()).unwrap_err().to_string();
        assert!(err.len() < 1_000, "{} characters", err.len());
        assert!(err.contains("more characters"), "{err}");
    }

    #[test]
    fn global_position_is_not_hashed_but_every_other_field_is() {
        let e = sample();
        let mut moved = e.clone();
        moved.global_position = 99;
        assert_eq!(moved.compute_hash(), e.hash);
        let mut changed = e.clone();
        changed.actor.role = "auditor".into();
        assert_ne!(changed.compute_hash(), e.hash);
        let mut changed = e;
        changed.payload = r#"{"b":2,"a":"x y"}"#.into();
        assert_ne!(changed.compute_hash(), sample().hash);
    }

    #[test]
    fn new_event_sorts_keys_and_rejects_bad_names() {
        #[derive(Serialize)]
        struct P {
            z: u8,
            a: u8,
        }
        let ev = NewEvent::new("CaseOpened", 1, &P { z: 1, a: 2 }).unwrap();
        assert_eq!(ev.payload, r#"{"a":2,"z":1}"#);
        let err = NewEvent::new("case opened", 1, &()).unwrap_err();
        assert!(err.to_string().contains("event_type"), "{err}");
        let err = NewEvent::from_json("X", 1, "{".into()).unwrap_err();
        assert!(err.to_string().contains("payload"), "{err}");
    }
}
