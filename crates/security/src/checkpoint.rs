//! Signed checkpoints and export bundles.
//!
//! A [`Checkpoint`] states, signed with the service's Ed25519 key, the
//! Merkle root over the heads of every stream of its log at a global
//! position ([`crate::merkle`]). Kept and published, it later proves the
//! log at that point was not rewritten: recompute the heads and compare.
//!
//! A [`Bundle`] (`ExportCase`) carries one stream's events, a checkpoint
//! and the inclusion proof of that stream's head; [`Bundle::verify`]
//! checks it with nothing but the bundle (and, better, a trusted public
//! key): each event's hash, the chain, the leaf under the signed root and
//! the signature.

use baove_eventlog::Envelope;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::merkle::{self, Hash};

/// The leaf of a stream head: `stream id ‖ version (u64 BE) ‖ head hash`.
#[must_use]
pub fn head_leaf(stream: &[u8; 16], version: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(56);
    leaf.extend_from_slice(stream);
    leaf.extend_from_slice(&version.to_be_bytes());
    leaf.extend_from_slice(hash);
    leaf
}

/// A signed checkpoint (hex for bytes, as in bundles and on NATS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The service.
    pub service: String,
    /// The global position covered.
    pub global_position: u64,
    /// Number of leaves.
    pub tree_size: u64,
    /// Merkle root, hex.
    pub root_hash: String,
    /// When signed, Unix ms.
    pub signed_at_unix_ms: i64,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Signature, hex.
    pub signature: String,
}

impl Checkpoint {
    /// The text that is signed.
    #[must_use]
    pub fn signed_text(&self) -> String {
        format!(
            "baove-checkpoint/1\n{}\n{}\n{}\n{}\n{}",
            self.service,
            self.global_position,
            self.tree_size,
            self.root_hash,
            self.signed_at_unix_ms
        )
    }

    /// Signs a checkpoint of `root` over `tree_size` heads at `position`.
    #[must_use]
    pub fn sign(
        key: &SigningKey,
        service: &str,
        global_position: u64,
        tree_size: u64,
        root: &Hash,
        signed_at_unix_ms: i64,
    ) -> Self {
        let mut checkpoint = Self {
            service: service.to_owned(),
            global_position,
            tree_size,
            root_hash: hex::encode(root),
            signed_at_unix_ms,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: String::new(),
        };
        checkpoint.signature =
            hex::encode(key.sign(checkpoint.signed_text().as_bytes()).to_bytes());
        checkpoint
    }

    /// Checks the signature with the key it names, or with `trusted` when
    /// given (which must then be that key).
    ///
    /// # Errors
    /// What does not hold, in words.
    pub fn verify(&self, trusted: Option<&VerifyingKey>) -> Result<VerifyingKey, String> {
        let named = decode32(&self.public_key, "public_key")?;
        let key = VerifyingKey::from_bytes(&named)
            .map_err(|e| format!("checkpoint public_key is not an Ed25519 key: {e}"))?;
        if let Some(trusted) = trusted
            && trusted != &key
        {
            return Err("the checkpoint is signed by another key than the trusted one".into());
        }
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or("checkpoint signature is not 64 hex-encoded bytes")?;
        key.verify(self.signed_text().as_bytes(), &signature)
            .map_err(|_| "the checkpoint signature does not verify".to_owned())?;
        Ok(key)
    }

    /// The root as bytes.
    ///
    /// # Errors
    /// When it is not 32 hex-encoded bytes.
    pub fn root(&self) -> Result<Hash, String> {
        decode32(&self.root_hash, "root_hash")
    }
}

fn decode32(text: &str, field: &str) -> Result<[u8; 32], String> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("{field} is not 32 hex-encoded bytes"))
}

/// The export format name.
pub const BUNDLE_FORMAT: &str = "baove-export/1";

/// An export of one stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bundle {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The stream (case) id.
    pub stream_id: String,
    /// Every event of the stream up to the checkpoint, in seq order, as
    /// stored (payload as stored, confidential fields sealed).
    pub events: Vec<Envelope>,
    /// The checkpoint covering them.
    pub checkpoint: Checkpoint,
    /// Index of the stream's leaf in the checkpoint's tree.
    pub leaf_index: u64,
    /// The inclusion proof, hex, from the leaf up.
    pub proof: Vec<String>,
}

/// What a verified bundle shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The stream.
    pub stream_id: String,
    /// Its events.
    pub events: u64,
    /// The head hash, hex.
    pub head_hash: String,
    /// The checkpoint's service, position and signing time.
    pub service: String,
    /// The global position.
    pub global_position: u64,
    /// The key that signed, hex.
    pub public_key: String,
}

impl Bundle {
    /// Checks everything the bundle claims, offline.
    ///
    /// # Errors
    /// The first thing that does not hold, in words (which seq, which part).
    pub fn verify(&self, trusted: Option<&VerifyingKey>) -> Result<Verified, String> {
        if self.format != BUNDLE_FORMAT {
            return Err(format!("format {:?} is not {BUNDLE_FORMAT}", self.format));
        }
        let mut prev = [0u8; 32];
        let mut stream_bytes = None;
        for (i, event) in self.events.iter().enumerate() {
            let seq = i as u64 + 1;
            if event.stream_id.to_string() != self.stream_id {
                return Err(format!(
                    "event {seq} belongs to stream {}, not {}",
                    event.stream_id, self.stream_id
                ));
            }
            if event.seq != seq {
                return Err(format!(
                    "event {seq} has seq {}: events are missing or out of order",
                    event.seq
                ));
            }
            if event.prev_hash.0 != prev {
                return Err(format!(
                    "seq {seq}: prev_hash does not match the hash of seq {}",
                    seq - 1
                ));
            }
            if event.compute_hash() != event.hash {
                return Err(format!(
                    "seq {seq}: the event's content does not match its hash"
                ));
            }
            prev = event.hash.0;
            stream_bytes = Some(*event.stream_id.as_bytes());
        }
        let stream = stream_bytes.ok_or("the bundle has no events")?;
        let key = self.checkpoint.verify(trusted)?;
        let leaf = merkle::leaf_hash(&head_leaf(&stream, self.events.len() as u64, &prev));
        let proof = self
            .proof
            .iter()
            .map(|p| decode32(p, "proof"))
            .collect::<Result<Vec<_>, _>>()?;
        if !merkle::verify_inclusion(
            &leaf,
            self.leaf_index,
            self.checkpoint.tree_size,
            &proof,
            &self.checkpoint.root()?,
        ) {
            return Err("the stream's head is not under the checkpoint's root: the events or the proof were changed".into());
        }
        Ok(Verified {
            stream_id: self.stream_id.clone(),
            events: self.events.len() as u64,
            head_hash: hex::encode(prev),
            service: self.checkpoint.service.clone(),
            global_position: self.checkpoint.global_position,
            public_key: hex::encode(key.as_bytes()),
        })
    }
}

/// Recomputes, from a log's events in global order (as `ReadAll` returns
/// them), the Merkle root over every stream's head at `position`, checking
/// each event's hash and chain on the way: what an auditor does with a
/// checkpoint kept from earlier, trusting nothing the service says.
///
/// # Errors
/// An event that does not verify, or a gap in a stream, in words.
pub fn root_at(
    events: impl IntoIterator<Item = Envelope>,
    position: u64,
) -> Result<(Hash, u64), String> {
    let mut heads: std::collections::BTreeMap<[u8; 16], (u64, [u8; 32])> =
        std::collections::BTreeMap::new();
    for event in events {
        if event.global_position > position {
            break;
        }
        let stream = *event.stream_id.as_bytes();
        let (seq, prev) = heads.get(&stream).copied().unwrap_or((0, [0; 32]));
        if event.seq != seq + 1 || event.prev_hash.0 != prev {
            return Err(format!(
                "stream {} seq {}: does not follow seq {seq} (missing, reordered or rewritten)",
                event.stream_id, event.seq
            ));
        }
        if event.compute_hash() != event.hash {
            return Err(format!(
                "stream {} seq {}: the content does not match its hash",
                event.stream_id, event.seq
            ));
        }
        heads.insert(stream, (event.seq, event.hash.0));
    }
    let leaves: Vec<Hash> = heads
        .iter()
        .map(|(s, (v, h))| merkle::leaf_hash(&head_leaf(s, *v, h)))
        .collect();
    Ok((merkle::root(&leaves), leaves.len() as u64))
}

impl Checkpoint {
    /// Whether the log given as `events` (global order, from the start)
    /// still is what this checkpoint signed: the signature holds and the
    /// root recomputed at its position is the signed one.
    ///
    /// # Errors
    /// What does not hold, in words.
    pub fn check_log(
        &self,
        events: impl IntoIterator<Item = Envelope>,
        trusted: Option<&VerifyingKey>,
    ) -> Result<(), String> {
        self.verify(trusted)?;
        let (root, size) = root_at(events, self.global_position)?;
        if size != self.tree_size || root != self.root()? {
            return Err(format!(
                "the log at position {} no longer matches the checkpoint signed at {}ms: it was rewritten",
                self.global_position, self.signed_at_unix_ms
            ));
        }
        Ok(())
    }
}

/// The stored envelope of a proto `EventEnvelope` (as `ReadAll` returns
/// it), for checking it offline.
///
/// # Errors
/// A field that is not what the log writes (ids, hash lengths).
pub fn envelope_from_proto(e: &baove_proto::v1::EventEnvelope) -> Result<Envelope, String> {
    let uuid = |field: &str, text: &str| {
        uuid::Uuid::parse_str(text).map_err(|_| format!("{field} {text:?} is not a UUID"))
    };
    let hash = |field: &str, bytes: &[u8]| {
        <[u8; 32]>::try_from(bytes)
            .map(baove_eventlog::ChainHash)
            .map_err(|_| format!("{field} is not 32 bytes"))
    };
    let actor = e.actor.clone().unwrap_or_default();
    Ok(Envelope {
        event_id: uuid("event_id", &e.event_id)?,
        stream_id: baove_eventlog::StreamId::from_uuid(uuid("stream_id", &e.stream_id)?),
        seq: e.seq,
        global_position: e.global_position,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        recorded_at_ms: e.recorded_at_unix_ms,
        actor: baove_eventlog::Actor {
            user_id: actor.user_id,
            role: actor.role,
            agency_id: actor.agency_id,
        },
        command_id: e.command_id.clone(),
        causation_id: e.causation_id.clone(),
        correlation_id: e.correlation_id.clone(),
        payload: e.payload_json.clone(),
        prev_hash: hash("prev_hash", &e.prev_hash)?,
        hash: hash("hash", &e.hash)?,
    })
}

/// The checkpoint of its proto message (`GetCheckpoint`).
#[must_use]
pub fn checkpoint_from_proto(c: &baove_proto::v1::Checkpoint) -> Checkpoint {
    Checkpoint {
        service: c.service.clone(),
        global_position: c.global_position,
        tree_size: c.tree_size,
        root_hash: hex::encode(&c.root_hash),
        signed_at_unix_ms: c.signed_at_unix_ms,
        public_key: hex::encode(&c.public_key),
        signature: hex::encode(&c.signature),
    }
}
