//! Signed checkpoints of a service's transparency log, witness
//! cosignatures and export bundles.
//!
//! A service's event log is a Merkle tree over every event in global order
//! ([`baove_eventlog::tlog`]). A [`Checkpoint`] is its tree head in the
//! C2SP `tlog-checkpoint` format (origin line, tree size, base64 root hash),
//! signed as a C2SP `signed-note` with the service's Ed25519 key: any
//! signed-note implementation checks it with the service's verifier key
//! ([`verifier_key`], `<name>+<key id>+<base64 key>`). Two checkpoints are
//! compared with a consistency proof (`AuditService.ProveConsistency`):
//! the later tree extends the earlier, or the log was rewritten.
//!
//! A **witness** (`baove witness`) keeps the newest checkpoint it accepted
//! per log, accepts a new one only with a consistency proof from it
//! ([`Witness::accept`]), and then adds its own signed-note signature (an
//! Ed25519 signature over the same checkpoint text, by the witness's key).
//! That is the essence of C2SP `tlog-witness`; the protocol's timestamped
//! `cosignature/v1` form is not used.
//!
//! A [`Bundle`] (`ExportCase`) carries one stream's events, a checkpoint and
//! each event's inclusion proof under it; [`Bundle::verify`] checks it with
//! nothing but the bundle and the keys the auditor trusts.

use baove_eventlog::Envelope;
use baove_eventlog::tlog::{self, Hash};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};

/// The signed-note algorithm byte of Ed25519 keys.
const ALG_ED25519: u8 = 1;

/// The signed-note verifier key of `key` under `name` (a checkpoint's
/// origin): `<name>+<key id, 8 hex>+<base64 of 0x01 ‖ key>`, the form every
/// signed-note implementation reads.
#[must_use]
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut encoded = vec![ALG_ED25519];
    encoded.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{:08x}+{}",
        signed_note::key_id(name, &encoded),
        BASE64.encode(&encoded)
    )
}

/// The signed-note signer key (`PRIVATE+KEY+<name>+<id>+<base64>`) of
/// `key` under `name`: what `baove witness keygen` writes.
#[must_use]
pub fn signer_key(name: &str, key: &SigningKey) -> String {
    let mut public = vec![ALG_ED25519];
    public.extend_from_slice(key.verifying_key().as_bytes());
    let mut private = vec![ALG_ED25519];
    private.extend_from_slice(&key.to_bytes());
    format!(
        "PRIVATE+KEY+{name}+{:08x}+{}",
        signed_note::key_id(name, &public),
        BASE64.encode(&private)
    )
}

fn standard_verifier(vkey: &str) -> Result<StandardVerifier, String> {
    StandardVerifier::new(vkey.trim())
        .map_err(|e| format!("{:?} is not a signed-note verifier key ({e})", vkey.trim()))
}

/// A signed checkpoint, as kept (JSON) and sent (proto `Checkpoint`). The
/// note is the whole truth; the other fields repeat what it says, for
/// reading, and [`Checkpoint::verify`] checks that they do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The service.
    pub service: String,
    /// The checkpoint's origin line: `<deployment>/<service>`.
    #[serde(default)]
    pub origin: String,
    /// The global position covered: every event up to it.
    pub global_position: u64,
    /// Number of leaves (events); equals `global_position`.
    pub tree_size: u64,
    /// Merkle root, hex.
    pub root_hash: String,
    /// When signed, Unix ms (not part of the signed text).
    pub signed_at_unix_ms: i64,
    /// The service's Ed25519 public key, hex.
    pub public_key: String,
    /// The service's Ed25519 signature in the note, hex.
    pub signature: String,
    /// The C2SP signed note: the checkpoint text, a blank line, then one
    /// signature line per signer (the service's first, then witnesses').
    #[serde(default)]
    pub note: String,
}

/// What a checkpoint's note says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// The origin line.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root.
    pub root: [u8; 32],
}

/// Parses the checkpoint text of a signed note (C2SP `tlog-checkpoint`).
///
/// # Errors
/// When the note or its text is malformed.
pub fn tree_head(note: &str) -> Result<TreeHead, String> {
    let note = Note::from_bytes(note.as_bytes())
        .map_err(|e| format!("the checkpoint note is malformed ({e})"))?;
    let head = tlog_tiles::Checkpoint::from_bytes(note.text())
        .map_err(|e| format!("the note's text is not a C2SP checkpoint ({e})"))?;
    Ok(TreeHead {
        origin: head.origin().to_owned(),
        size: head.size(),
        root: head.hash().0,
    })
}

impl Checkpoint {
    /// Signs a checkpoint of the tree of `size` events with `root`, under
    /// `origin`.
    ///
    /// # Errors
    /// When `origin` is not a valid signed-note name (empty, with spaces
    /// or `+`).
    pub fn sign(
        key: &SigningKey,
        service: &str,
        origin: &str,
        size: u64,
        root: &Hash,
        signed_at_unix_ms: i64,
    ) -> Result<Self, String> {
        let text = tlog_tiles::Checkpoint::new(origin, size, *root, "")
            .map_err(|_| format!("origin {origin:?} cannot start a checkpoint"))?
            .to_bytes();
        let mut note =
            Note::new(&text, &[]).map_err(|e| format!("cannot make the checkpoint note: {e}"))?;
        let signer = StandardSigner::new(&signer_key(origin, key)).map_err(|e| {
            format!("origin {origin:?} is not a valid signed-note key name (no spaces or '+'): {e}")
        })?;
        note.add_sigs(&[&signer]).map_err(|e| {
            format!("origin {origin:?} is not a valid signed-note key name (no spaces or '+'): {e}")
        })?;
        let signature = key.sign(note.text()).to_bytes();
        Ok(Self {
            service: service.to_owned(),
            origin: origin.to_owned(),
            global_position: size,
            tree_size: size,
            root_hash: hex::encode(root.0),
            signed_at_unix_ms,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature),
            note: String::from_utf8(note.to_bytes()).map_err(|e| e.to_string())?,
        })
    }

    /// Checks the note's signature by the key the checkpoint names, or by
    /// `trusted` when given (which must then be that key), and that the
    /// other fields say what the note says.
    ///
    /// # Errors
    /// What does not hold, in words.
    pub fn verify(&self, trusted: Option<&VerifyingKey>) -> Result<VerifyingKey, String> {
        if self.note.is_empty() {
            return Err("the checkpoint has no signed note: it was signed by a version of baove before the transparency log, over stream heads, and cannot be checked by this one".into());
        }
        let named = decode32(&self.public_key, "public_key")?;
        let key = VerifyingKey::from_bytes(&named)
            .map_err(|e| format!("checkpoint public_key is not an Ed25519 key: {e}"))?;
        if let Some(trusted) = trusted
            && trusted != &key
        {
            return Err("the checkpoint is signed by another key than the trusted one".into());
        }
        let head = self.verify_note(&verifier_key(&self.origin, &key))?;
        if head.origin != self.origin
            || head.size != self.tree_size
            || head.size != self.global_position
            || hex::encode(head.root) != self.root_hash
        {
            return Err("the checkpoint's fields do not say what its signed note says".into());
        }
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or("checkpoint signature is not 64 hex-encoded bytes")?;
        let text = Note::from_bytes(self.note.as_bytes())
            .map_err(|e| e.to_string())?
            .text()
            .to_vec();
        key.verify(&text, &signature)
            .map_err(|_| "the checkpoint signature does not verify".to_owned())?;
        Ok(key)
    }

    /// Checks the note against a signed-note verifier key (the log's or a
    /// witness's) and returns what it says.
    ///
    /// # Errors
    /// A malformed note or key, or no valid signature by that key.
    pub fn verify_note(&self, vkey: &str) -> Result<TreeHead, String> {
        let verifier = standard_verifier(vkey)?;
        let name = signed_note::Verifier::name(&verifier).to_owned();
        let note = Note::from_bytes(self.note.as_bytes())
            .map_err(|e| format!("the checkpoint note is malformed ({e})"))?;
        note.verify(&VerifierList::new(vec![Box::new(verifier)]))
            .map_err(|e| format!("the checkpoint is not signed by {name} ({e})"))?;
        tree_head(&self.note)
    }

    /// The names of the witnesses among `vkeys` whose signature the note
    /// carries; every one of them must verify.
    ///
    /// # Errors
    /// A key that is malformed, or a witness whose signature is missing or
    /// does not verify.
    pub fn witnessed_by(&self, vkeys: &[String]) -> Result<Vec<String>, String> {
        vkeys
            .iter()
            .map(|vkey| {
                let verifier = standard_verifier(vkey)?;
                let name = signed_note::Verifier::name(&verifier).to_owned();
                self.verify_note(vkey)
                    .map_err(|_| format!("the checkpoint is not cosigned by witness {name}"))?;
                Ok(name)
            })
            .collect()
    }

    /// The root as bytes.
    ///
    /// # Errors
    /// When it is not 32 hex-encoded bytes.
    pub fn root(&self) -> Result<Hash, String> {
        decode32(&self.root_hash, "root_hash").map(Hash)
    }

    /// Whether the log given as `events` (global order, from the start)
    /// still is what this checkpoint signed: the signature holds, every
    /// event's content matches its hash and continues its stream's chain,
    /// and the root recomputed over the first `tree_size` events is the
    /// signed one.
    ///
    /// # Errors
    /// What does not hold, in words.
    pub fn check_log(
        &self,
        events: impl IntoIterator<Item = Envelope>,
        trusted: Option<&VerifyingKey>,
    ) -> Result<(), String> {
        self.verify(trusted)?;
        let (root, size) = root_at(events, self.tree_size)?;
        if size < self.tree_size {
            return Err(format!(
                "the log ends at position {size}, but the checkpoint signed at {}ms covers {}: events were removed",
                self.signed_at_unix_ms, self.tree_size
            ));
        }
        if root != self.root()? {
            return Err(format!(
                "the log's first {} events no longer give the root signed at {}ms: it was rewritten",
                self.tree_size, self.signed_at_unix_ms
            ));
        }
        Ok(())
    }
}

fn decode32(text: &str, field: &str) -> Result<[u8; 32], String> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("{field} is not 32 hex-encoded bytes"))
}

/// Recomputes, from a log's events in global order (as `ReadAll` returns
/// them), the Merkle root over the first `size` events, checking each
/// event's hash, its position and its stream's chain on the way: what an
/// auditor does with a checkpoint kept from earlier, trusting nothing the
/// service says. Returns the root and how many events it covers (fewer
/// than `size` when the log ends before).
///
/// # Errors
/// An event that does not verify, a gap, or a stream out of order, in words.
pub fn root_at(
    events: impl IntoIterator<Item = Envelope>,
    size: u64,
) -> Result<(Hash, u64), String> {
    let mut heads: std::collections::HashMap<[u8; 16], (u64, [u8; 32])> =
        std::collections::HashMap::new();
    let mut hashes = Vec::new();
    for event in events {
        if event.global_position > size {
            break;
        }
        let position = hashes.len() as u64 + 1;
        if event.global_position != position {
            return Err(format!(
                "position {position} is missing from the log (the next event is at {})",
                event.global_position
            ));
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
        hashes.push(event.hash.0);
    }
    Ok(tlog::root_of(&hashes))
}

/// Why a witness refuses a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not signed by the log's key, or malformed.
    #[error("not the log's checkpoint: {0}")]
    NotTheLogs(String),
    /// Another origin than the one the witness follows.
    #[error("the checkpoint's origin is {got:?}, not {expected:?}")]
    Origin {
        /// What the witness follows.
        expected: String,
        /// What came.
        got: String,
    },
    /// A smaller tree than one already accepted: the log shrank.
    #[error(
        "the log shrank: the checkpoint has {size} events, but {accepted} were already witnessed"
    )]
    Smaller {
        /// The new size.
        size: u64,
        /// The size accepted before.
        accepted: u64,
    },
    /// Same size, another root, or a consistency proof that fails.
    #[error(
        "the log was rewritten: its tree of {size} events does not extend the {accepted} already witnessed ({reason})"
    )]
    Inconsistent {
        /// The new size.
        size: u64,
        /// The size accepted before.
        accepted: u64,
        /// What failed.
        reason: String,
    },
}

/// A witness of one log: the log's verifier key, the witness's signer, and
/// the newest checkpoint it cosigned.
pub struct Witness {
    log_key: String,
    signer: StandardSigner,
}

impl Witness {
    /// A witness of the log with verifier key `log_key` signing with the
    /// signed-note signer key `signer_key` (`PRIVATE+KEY+...`).
    ///
    /// # Errors
    /// A malformed key, named.
    pub fn new(log_key: &str, signer_key: &str) -> Result<Self, String> {
        standard_verifier(log_key)?;
        let signer = StandardSigner::new(signer_key.trim())
            .map_err(|e| format!("the witness key is not a signed-note signer key ({e})"))?;
        Ok(Self {
            log_key: log_key.trim().to_owned(),
            signer,
        })
    }

    /// The origin of the log it follows (the verifier key's name).
    #[must_use]
    pub fn origin(&self) -> &str {
        self.log_key.split('+').next().unwrap_or_default()
    }

    /// What the witness needs before it can accept `checkpoint` after
    /// `accepted`: the sizes of the consistency proof to ask for (none on
    /// first sight or when the size did not change).
    ///
    /// # Errors
    /// A checkpoint that is not the log's, of another origin, or smaller
    /// than the accepted one: refused without asking anything.
    pub fn needs(
        &self,
        accepted: Option<&Checkpoint>,
        checkpoint: &Checkpoint,
    ) -> Result<Option<(u64, u64)>, Refusal> {
        let head = checkpoint
            .verify_note(&self.log_key)
            .map_err(Refusal::NotTheLogs)?;
        if head.origin != self.origin() {
            return Err(Refusal::Origin {
                expected: self.origin().to_owned(),
                got: head.origin,
            });
        }
        let Some(accepted) = accepted else {
            return Ok(None);
        };
        let old = tree_head(&accepted.note).map_err(Refusal::NotTheLogs)?;
        if head.size < old.size {
            return Err(Refusal::Smaller {
                size: head.size,
                accepted: old.size,
            });
        }
        if head.size == old.size || old.size == 0 {
            return Ok(None);
        }
        Ok(Some((old.size, head.size)))
    }

    /// Accepts `checkpoint` after `accepted` with the consistency `proof`
    /// between them (empty when [`Witness::needs`] asked for none) and
    /// returns it cosigned: the note with the witness's signature added.
    ///
    /// # Errors
    /// Any [`Refusal`]; nothing is signed then.
    pub fn accept(
        &self,
        accepted: Option<&Checkpoint>,
        checkpoint: &Checkpoint,
        proof: &[[u8; 32]],
    ) -> Result<Checkpoint, Refusal> {
        let needs = self.needs(accepted, checkpoint)?;
        let head = tree_head(&checkpoint.note).map_err(Refusal::NotTheLogs)?;
        if let Some(accepted) = accepted {
            let old = tree_head(&accepted.note).map_err(Refusal::NotTheLogs)?;
            let inconsistent = |reason: String| Refusal::Inconsistent {
                size: head.size,
                accepted: old.size,
                reason,
            };
            match needs {
                None if old.size == head.size && old.root != head.root => {
                    return Err(inconsistent("another root for the same size".into()));
                }
                None => {}
                Some((m, n)) => {
                    let proof = proof.iter().copied().map(Hash).collect();
                    tlog_tiles::check_tree(&proof, n, Hash(head.root), m, Hash(old.root))
                        .map_err(|e| inconsistent(format!("consistency proof: {e}")))?;
                }
            }
        }
        let mut note = Note::from_bytes(checkpoint.note.as_bytes())
            .map_err(|e| Refusal::NotTheLogs(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| Refusal::NotTheLogs(format!("cannot cosign: {e}")))?;
        let mut cosigned = checkpoint.clone();
        cosigned.note =
            String::from_utf8(note.to_bytes()).map_err(|e| Refusal::NotTheLogs(e.to_string()))?;
        Ok(cosigned)
    }
}

/// The export format name.
pub const BUNDLE_FORMAT: &str = "baove-export/2";

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
    /// The checkpoint covering them (cosigned by witnesses when the newest
    /// witnessed checkpoint covered the whole stream).
    pub checkpoint: Checkpoint,
    /// For each event, its inclusion proof under the checkpoint's root, hex,
    /// from the leaf up (leaf index: the event's global position - 1).
    pub proofs: Vec<Vec<String>>,
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
    /// The checkpoint's service.
    pub service: String,
    /// The tree size (global position) of the checkpoint.
    pub global_position: u64,
    /// The key that signed, hex.
    pub public_key: String,
    /// The witnesses, among those given, that cosigned the checkpoint.
    pub witnesses: Vec<String>,
}

impl Bundle {
    /// Checks everything the bundle claims, offline: each event's hash and
    /// chain, each event under the signed root, the service's signature
    /// (by `trusted` when given) and every witness in `witness_keys`.
    ///
    /// # Errors
    /// The first thing that does not hold, in words (which seq, which part).
    pub fn verify(
        &self,
        trusted: Option<&VerifyingKey>,
        witness_keys: &[String],
    ) -> Result<Verified, String> {
        if self.format != BUNDLE_FORMAT {
            return Err(format!("format {:?} is not {BUNDLE_FORMAT}", self.format));
        }
        let key = self.checkpoint.verify(trusted)?;
        let witnesses = self.checkpoint.witnessed_by(witness_keys)?;
        let root = self.checkpoint.root()?;
        if self.proofs.len() != self.events.len() {
            return Err(format!(
                "the bundle has {} events but {} inclusion proofs",
                self.events.len(),
                self.proofs.len()
            ));
        }
        let mut prev = [0u8; 32];
        for (i, (event, proof)) in self.events.iter().zip(&self.proofs).enumerate() {
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
            let proof = proof
                .iter()
                .map(|p| decode32(p, "proof").map(Hash))
                .collect::<Result<Vec<_>, _>>()?;
            let position = event.global_position;
            if position == 0
                || tlog_tiles::check_record(
                    &proof,
                    self.checkpoint.tree_size,
                    root,
                    position - 1,
                    tlog::leaf(&event.hash.0),
                )
                .is_err()
            {
                return Err(format!(
                    "seq {seq} (position {position}) is not under the checkpoint's root: the event or its proof was changed"
                ));
            }
            prev = event.hash.0;
        }
        if self.events.is_empty() {
            return Err("the bundle has no events".into());
        }
        Ok(Verified {
            stream_id: self.stream_id.clone(),
            events: self.events.len() as u64,
            head_hash: hex::encode(prev),
            service: self.checkpoint.service.clone(),
            global_position: self.checkpoint.global_position,
            public_key: hex::encode(key.as_bytes()),
            witnesses,
        })
    }
}

/// The envelope as the proto message, every field as stored.
#[must_use]
pub fn envelope_to_proto(e: &Envelope) -> baove_proto::v1::EventEnvelope {
    use baove_proto::v1;
    v1::EventEnvelope {
        event_id: e.event_id.to_string(),
        stream_id: e.stream_id.to_string(),
        seq: e.seq,
        global_position: e.global_position,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        recorded_at_unix_ms: e.recorded_at_ms,
        actor: Some(v1::Actor {
            user_id: e.actor.user_id.clone(),
            role: e.actor.role.clone(),
            agency_id: e.actor.agency_id.clone(),
        }),
        command_id: e.command_id.clone(),
        causation_id: e.causation_id.clone(),
        correlation_id: e.correlation_id.clone(),
        payload_json: e.payload.clone(),
        prev_hash: e.prev_hash.0.to_vec(),
        hash: e.hash.0.to_vec(),
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
        origin: c.origin.clone(),
        global_position: c.global_position,
        tree_size: c.tree_size,
        root_hash: hex::encode(&c.root_hash),
        signed_at_unix_ms: c.signed_at_unix_ms,
        public_key: hex::encode(&c.public_key),
        signature: hex::encode(&c.signature),
        note: c.note.clone(),
    }
}

/// The proto message of a checkpoint.
#[must_use]
pub fn checkpoint_to_proto(c: &Checkpoint) -> baove_proto::v1::Checkpoint {
    let verifier = decode32(&c.public_key, "public_key")
        .ok()
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .map(|k| verifier_key(&c.origin, &k))
        .unwrap_or_default();
    baove_proto::v1::Checkpoint {
        service: c.service.clone(),
        global_position: c.global_position,
        tree_size: c.tree_size,
        root_hash: hex::decode(&c.root_hash).unwrap_or_default(),
        signed_at_unix_ms: c.signed_at_unix_ms,
        public_key: hex::decode(&c.public_key).unwrap_or_default(),
        signature: hex::decode(&c.signature).unwrap_or_default(),
        origin: c.origin.clone(),
        note: c.note.clone(),
        verifier_key: verifier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baove_security::token::new_signing_key;
    use tlog_tiles::{HashReader, prove_tree, stored_hashes, tree_hash};

    /// A tree kept in memory: stored hashes are dense in index order.
    struct Tree(Vec<Hash>);

    impl HashReader for Tree {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            Ok(indexes.iter().map(|i| self.0[*i as usize]).collect())
        }
    }

    impl Tree {
        fn of(records: u64) -> Self {
            let mut tree = Self(Vec::new());
            for n in 0..records {
                let hashes = stored_hashes(n, &n.to_be_bytes(), &tree).unwrap();
                tree.0.extend(hashes);
            }
            tree
        }
        fn root(&self, size: u64) -> Hash {
            tree_hash(size, self).unwrap()
        }
        fn proof(&self, old: u64, new: u64) -> Vec<[u8; 32]> {
            prove_tree(new, old, self)
                .unwrap()
                .iter()
                .map(|h| h.0)
                .collect()
        }
    }

    const ORIGIN: &str = "baove.test/casework";

    fn signed(key: &SigningKey, tree: &Tree, size: u64) -> Checkpoint {
        Checkpoint::sign(key, "casework", ORIGIN, size, &tree.root(size), 1_000).unwrap()
    }

    fn witness() -> (Witness, String, SigningKey) {
        let log = new_signing_key();
        let w = new_signing_key();
        let name = "thanh-tra.test";
        let witness = Witness::new(
            &verifier_key(ORIGIN, &log.verifying_key()),
            &signer_key(name, &w),
        )
        .unwrap();
        (witness, verifier_key(name, &w.verifying_key()), log)
    }

    #[test]
    fn given_a_tree_when_signed_then_the_note_is_a_c2sp_checkpoint_any_signed_note_verifier_reads()
    {
        let key = new_signing_key();
        let tree = Tree::of(5);
        let checkpoint = signed(&key, &tree, 5);
        let text = format!("{ORIGIN}\n5\n{}\n", BASE64.encode(tree.root(5).0));
        assert!(
            checkpoint
                .note
                .starts_with(&format!("{text}\n\u{2014} {ORIGIN} "))
        );
        let vkey = verifier_key(ORIGIN, &key.verifying_key());
        let head = checkpoint.verify_note(&vkey).unwrap();
        assert_eq!((head.size, head.root), (5, tree.root(5).0));
        assert_eq!(
            checkpoint.verify(Some(&key.verifying_key())).unwrap(),
            key.verifying_key()
        );
    }

    /// C2SP signed-note verification written from the spec, without the
    /// `signed_note` crate: text up to the blank line; each signature line
    /// `— <name> <base64(key id ‖ signature)>`; key id = the first 4 bytes
    /// of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
    fn verified_by_hand(note: &str, name: &str, key: &VerifyingKey) -> Option<TreeHead> {
        use sha2::{Digest as _, Sha256};
        let (text, signatures) = note.split_once("\n\n")?;
        let text = format!("{text}\n");
        let mut id_input = format!("{name}\n").into_bytes();
        id_input.push(1);
        id_input.extend_from_slice(key.as_bytes());
        let id = &Sha256::digest(&id_input)[..4];
        let signed = signatures.lines().any(|line| {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return false;
            };
            let Some((who, blob)) = rest.split_once(' ') else {
                return false;
            };
            let Ok(blob) = BASE64.decode(blob) else {
                return false;
            };
            who == name
                && blob.len() == 68
                && &blob[..4] == id
                && Signature::from_slice(&blob[4..])
                    .is_ok_and(|sig| key.verify(text.as_bytes(), &sig).is_ok())
        });
        let mut lines = text.lines();
        let head = TreeHead {
            origin: lines.next()?.to_owned(),
            size: lines.next()?.parse().ok()?,
            root: BASE64.decode(lines.next()?).ok()?.try_into().ok()?,
        };
        signed.then_some(head)
    }

    #[test]
    fn given_a_checkpoint_and_its_cosignature_when_checked_by_a_second_implementation_then_both_verify()
     {
        let (witness, witness_vkey, log) = witness();
        let tree = Tree::of(11);
        let cosigned = witness.accept(None, &signed(&log, &tree, 11), &[]).unwrap();
        let head = verified_by_hand(&cosigned.note, ORIGIN, &log.verifying_key()).unwrap();
        assert_eq!(
            (head.origin.as_str(), head.size, head.root),
            (ORIGIN, 11, tree.root(11).0)
        );
        // The witness's line too, with the key its verifier key names
        // (`<name>+<id>+<base64>`; base64 itself may hold '+').
        let public = BASE64
            .decode(witness_vkey.splitn(3, '+').nth(2).unwrap())
            .unwrap();
        let key = VerifyingKey::from_bytes(&public[1..].try_into().unwrap()).unwrap();
        assert!(verified_by_hand(&cosigned.note, "thanh-tra.test", &key).is_some());
        // An edited size is no longer signed.
        let edited = cosigned.note.replacen("\n11\n", "\n12\n", 1);
        assert!(verified_by_hand(&edited, ORIGIN, &log.verifying_key()).is_none());
    }

    #[test]
    fn given_a_signed_checkpoint_when_any_field_or_the_note_is_edited_then_it_is_refused() {
        let key = new_signing_key();
        let tree = Tree::of(8);
        let checkpoint = signed(&key, &tree, 8);
        let mut edited = checkpoint.clone();
        edited.tree_size = 9;
        assert!(edited.verify(None).unwrap_err().contains("note says"));
        let mut edited = checkpoint.clone();
        edited.note = edited.note.replacen("\n8\n", "\n7\n", 1);
        assert!(edited.verify(None).is_err());
        let other = new_signing_key();
        assert!(
            checkpoint
                .verify(Some(&other.verifying_key()))
                .unwrap_err()
                .contains("another key")
        );
        let mut legacy = checkpoint;
        legacy.note.clear();
        assert!(
            legacy
                .verify(None)
                .unwrap_err()
                .contains("before the transparency log")
        );
    }

    #[test]
    fn given_no_state_when_a_witness_first_sees_a_log_then_it_cosigns_it() {
        let (witness, witness_key, log) = witness();
        let tree = Tree::of(3);
        let cosigned = witness.accept(None, &signed(&log, &tree, 3), &[]).unwrap();
        assert_eq!(
            cosigned
                .witnessed_by(std::slice::from_ref(&witness_key))
                .unwrap(),
            vec!["thanh-tra.test".to_owned()]
        );
        // Still the log's checkpoint, and nobody else's cosignature.
        cosigned.verify(Some(&log.verifying_key())).unwrap();
        let stranger = verifier_key("stranger", &new_signing_key().verifying_key());
        assert!(
            cosigned
                .witnessed_by(&[stranger])
                .unwrap_err()
                .contains("stranger")
        );
    }

    #[test]
    fn given_an_accepted_checkpoint_when_the_log_grew_with_a_valid_proof_then_the_witness_cosigns()
    {
        let (witness, _, log) = witness();
        let tree = Tree::of(20);
        let old = witness.accept(None, &signed(&log, &tree, 7), &[]).unwrap();
        let new = signed(&log, &tree, 20);
        assert_eq!(witness.needs(Some(&old), &new).unwrap(), Some((7, 20)));
        witness
            .accept(Some(&old), &new, &tree.proof(7, 20))
            .unwrap();
    }

    #[test]
    fn given_an_accepted_checkpoint_when_the_log_shrank_then_the_witness_refuses() {
        let (witness, _, log) = witness();
        let tree = Tree::of(20);
        let old = witness.accept(None, &signed(&log, &tree, 20), &[]).unwrap();
        let shorter = signed(&log, &tree, 12);
        assert_eq!(
            witness.accept(Some(&old), &shorter, &[]).unwrap_err(),
            Refusal::Smaller {
                size: 12,
                accepted: 20
            }
        );
    }

    #[test]
    fn given_an_accepted_checkpoint_when_the_log_was_rewritten_then_the_witness_refuses() {
        let (witness, _, log) = witness();
        let tree = Tree::of(20);
        let old = witness.accept(None, &signed(&log, &tree, 10), &[]).unwrap();
        // Another log of the same size (record 4 changed), then grown.
        let mut rewritten = Tree(Vec::new());
        for n in 0..20u64 {
            let data = if n == 4 {
                b"changed".to_vec()
            } else {
                n.to_be_bytes().to_vec()
            };
            let hashes = stored_hashes(n, &data, &rewritten).unwrap();
            rewritten.0.extend(hashes);
        }
        let same_size = signed(&log, &rewritten, 10);
        assert!(matches!(
            witness.accept(Some(&old), &same_size, &[]),
            Err(Refusal::Inconsistent { .. })
        ));
        let grown = signed(&log, &rewritten, 20);
        assert!(matches!(
            witness.accept(Some(&old), &grown, &rewritten.proof(10, 20)),
            Err(Refusal::Inconsistent { .. })
        ));
    }

    #[test]
    fn given_a_witness_when_a_checkpoint_is_signed_by_another_key_or_origin_then_it_refuses() {
        let (witness, _, _) = witness();
        let tree = Tree::of(4);
        let forged = signed(&new_signing_key(), &tree, 4);
        assert!(matches!(
            witness.accept(None, &forged, &[]),
            Err(Refusal::NotTheLogs(_))
        ));
    }
}
