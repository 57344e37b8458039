//! A case's private free text ([`baove_domain::case::private`] says which
//! strings) sealed under the case's data key ([`crate::keys`]) as its
//! events are appended, and opened as they are read for someone allowed to
//! read the case; and a referral's reasons and outcome
//! ([`baove_domain::referral::private`]) sealed under the referral's data
//! key ([`crate::referral_keys`]), which casework and the referral service
//! share, in the case's log and in the referral's.
//!
//! What is stored, published on NATS, backed up and exported holds the
//! sealed form; only the typed views a reader gets (GetCase, ReplayCase,
//! WatchCase's and StreamHistory's `CaseEvent`, a referral in GetReferral,
//! ListInbox and WatchInbox) are opened, in memory. The raw envelope a
//! client also gets is the stored one, so the chain still verifies. Once
//! the case's key is destroyed (erasure), every private string of it reads
//! as [`ERASED`]; so does every string of its referrals, whose keys are
//! destroyed with it. The rest of the case, its procedure and its
//! deadlines, stays readable and verifiable.
//!
//! [`PrivateText::ready`] takes the keys of the page about to be opened: a
//! case's from sled, off the async executor, into memory
//! ([`KeyStore::prepare`]); a referral's from the bucket, several at once. When NATS does
//! not answer, a referral's key this process read before still opens its
//! text (an erasure made meanwhile holds once NATS answers again); one it
//! never read is UNAVAILABLE.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baove_domain::case::private::{
    ERASED, SEALED_PREFIX, SEALED_SCHEMA_VERSION, associated_data, for_each_private,
    is_sealed_version, private_paths,
};
use baove_domain::referral::private::{for_each_referral_private, referral_paths};
use baove_eventlog::{Envelope, StreamId};
use baove_security::seal::{Key, Sealed};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::Value;
use tonic::Status;
use uuid::Uuid;

use crate::keys::{KeyStore, KeyUse};
use crate::referral_keys::ReferralKeys;

/// Referral keys read from the bucket at once when a page of events is
/// made ready ([`PrivateText::ready`]).
const REFERRAL_KEY_READS: usize = 16;

/// Seals and opens the private text of one service's logs: casework's
/// (the case's key, and the referrals' for their strings), or the
/// referral service's (the referrals' keys only).
pub struct PrivateText {
    keys: Option<Arc<KeyStore>>,
    referrals: Option<Arc<ReferralKeys>>,
    /// The referral keys read by the last [`Self::ready`] of a page that
    /// needed them (none: erased), for [`Self::open`].
    fetched: Mutex<HashMap<Uuid, Option<Key>>>,
}

/// An event about to be stored: its type, schema version and payload.
pub type Outgoing = (&'static str, u32, Value);

/// The referral a string of `payload`, an event of stream `stream`, is
/// sealed for: the payload's `referral_id` (a case's request or step), else
/// the stream (a referral's own event).
fn referral_of(stream: StreamId, payload: &Value) -> Uuid {
    payload
        .get("referral_id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or(*stream.as_uuid())
}

/// Whether a stored event holds strings sealed under a referral's key: a
/// referral's step, or a case's request, at the sealed version.
fn has_referral_text(event_type: &str, schema_version: u32) -> bool {
    schema_version == SEALED_SCHEMA_VERSION && !referral_paths(event_type).is_empty()
}

impl PrivateText {
    /// Private text sealed with the case data keys of `keys`.
    #[must_use]
    pub fn new(keys: Arc<KeyStore>) -> Self {
        Self {
            keys: Some(keys),
            referrals: None,
            fetched: Mutex::default(),
        }
    }

    /// A referral service's: its referrals' strings only.
    #[must_use]
    pub fn for_referrals(referrals: Arc<ReferralKeys>) -> Self {
        Self {
            keys: None,
            referrals: Some(referrals),
            fetched: Mutex::default(),
        }
    }

    /// The same, also sealing and opening the strings of the case's
    /// referrals with their keys (casework).
    #[must_use]
    pub fn with_referrals(mut self, referrals: Arc<ReferralKeys>) -> Self {
        self.referrals = Some(referrals);
        self
    }

    /// The case key store (casework; for erasure and a standby's keys).
    #[must_use]
    pub const fn keys(&self) -> Option<&Arc<KeyStore>> {
        self.keys.as_ref()
    }

    /// The referral keys, when this service seals referral text.
    #[must_use]
    pub const fn referral_keys(&self) -> Option<&Arc<ReferralKeys>> {
        self.referrals.as_ref()
    }

    /// Seals each non-empty private string of `events`, about to be
    /// appended to `stream`, and marks each event that has one as
    /// [`SEALED_SCHEMA_VERSION`]: a referral's strings under the
    /// referral's key (made by casework if new), then a case's under the
    /// case's key (made, and in a cluster held by the quorum, first).
    ///
    /// # Errors
    /// UNAVAILABLE when a key cannot be made or kept: nothing is appended,
    /// and a retry with the same request id is safe; FAILED_PRECONDITION
    /// when the referral's text was erased with its case (a decline's
    /// reason cannot be written on it any more).
    pub async fn seal(&self, stream: StreamId, events: &mut [Outgoing]) -> Result<(), Status> {
        if let Some(referrals) = &self.referrals {
            for (event_type, version, payload) in events.iter_mut() {
                if referral_paths(event_type).is_empty() {
                    continue;
                }
                let mut any = false;
                for_each_referral_private(event_type, &mut payload.clone(), &mut |_, text| {
                    any |= !text.is_empty();
                });
                if any {
                    let referral = referral_of(stream, payload);
                    let key = referrals.for_sealing(referral).await.map_err(|e| match e {
                        crate::referral_keys::NoKey::Erased(m) => Status::failed_precondition(m),
                        crate::referral_keys::NoKey::Unavailable(m) => {
                            Status::unavailable(format!("cannot keep the referral's data key: {m}"))
                        }
                    })?;
                    let at = StreamId::from_uuid(referral);
                    for_each_referral_private(event_type, payload, &mut |path, text| {
                        if !text.is_empty() {
                            *text = seal_text(&key, at, path, text);
                        }
                    });
                }
                *version = SEALED_SCHEMA_VERSION;
            }
        }
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        let private = |(event_type, _, payload): &Outgoing| {
            let mut any = false;
            for_each_private(event_type, &mut payload.clone(), &mut |_, text| {
                any |= !text.is_empty();
            });
            any
        };
        if !events.iter().any(private) {
            return Ok(());
        }
        let key = keys
            .key_for_sealing(stream)
            .await
            .map_err(|e| Status::unavailable(format!("cannot keep the case's data key: {e}")))?;
        for (event_type, version, payload) in events.iter_mut() {
            if private_paths(event_type).is_empty() {
                continue;
            }
            for_each_private(event_type, payload, &mut |path, text| {
                if !text.is_empty() {
                    *text = seal_text(&key, stream, path, text);
                }
            });
            *version = SEALED_SCHEMA_VERSION;
        }
        Ok(())
    }

    /// Makes sure this process holds the keys `events` were sealed with:
    /// in a cluster, a case key this process has not taken from the
    /// cluster yet (a standby, or an active just promoted, whose read model
    /// has not reached these events) is taken now, so that a reader never
    /// sees as erased what is only not fetched; and the key of each
    /// referral whose strings they hold is read from the bucket now (an
    /// erasure since the last read holds).
    ///
    /// # Errors
    /// UNAVAILABLE when a bucket cannot be read.
    pub async fn ready(&self, events: &[Envelope]) -> Result<(), Status> {
        if let Some(referrals) = &self.referrals {
            let mut wanted = Vec::new();
            for event in events {
                if let Some(referral) = referral_text_of(event)
                    && !wanted.contains(&referral)
                {
                    wanted.push(referral);
                }
            }
            // At most REFERRAL_KEY_READS round trips to the bucket at once.
            futures_util::stream::iter(
                wanted
                    .into_iter()
                    .map(|referral| self.fetch_referral_key(referrals, referral)),
            )
            .buffer_unordered(REFERRAL_KEY_READS)
            .try_collect::<()>()
            .await?;
        }
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        let sealed: Vec<Envelope> = events
            .iter()
            .filter(|e| {
                is_sealed_version(&e.event_type, e.schema_version)
                    && !private_paths(&e.event_type).is_empty()
            })
            .cloned()
            .collect();
        if sealed.is_empty() {
            return Ok(());
        }
        keys.prepare(sealed, |_| Some(KeyUse::Needs))
            .await
            .map_err(|e| Status::unavailable(format!("cannot take a case's data key: {e}")))
    }

    /// `envelopes` with their private strings opened ([`ERASED`] where the
    /// key was destroyed), after [`Self::ready`].
    ///
    /// # Errors
    /// DATA_LOSS when a sealed string does not open with its key (altered,
    /// or sealed under another master key); UNAVAILABLE when the key cannot
    /// be read.
    pub async fn open_all(&self, envelopes: Vec<Envelope>) -> Result<Vec<Envelope>, Status> {
        self.ready(&envelopes).await?;
        self.open_held(envelopes)
    }

    /// [`Self::open_all`] with the keys this process holds now.
    fn open_held(&self, mut envelopes: Vec<Envelope>) -> Result<Vec<Envelope>, Status> {
        let mut keys = HashMap::new();
        for envelope in &mut envelopes {
            self.open_in_place(envelope, &mut keys)?;
        }
        Ok(envelopes)
    }

    /// One envelope, opened with the keys this process holds: call
    /// [`Self::ready`] on it (or its page) first.
    ///
    /// # Errors
    /// As [`Self::open_all`].
    pub fn open(&self, envelope: &Envelope) -> Result<Envelope, Status> {
        let mut opened = envelope.clone();
        self.open_in_place(&mut opened, &mut HashMap::new())?;
        Ok(opened)
    }

    /// Opens, in place, `strings` of referral `referral` (each with its
    /// path in its event) sealed under the referral's key, read from the
    /// bucket now; a string not sealed stays as it is (written before
    /// referral text was sealed).
    ///
    /// # Errors
    /// UNAVAILABLE when the bucket cannot be read; DATA_LOSS when a sealed
    /// string does not open with the referral's key.
    pub async fn open_referral_strings(
        &self,
        referral: Uuid,
        strings: Vec<(&str, &mut String)>,
    ) -> Result<(), Status> {
        if !strings
            .iter()
            .any(|(_, text)| text.starts_with(SEALED_PREFIX))
        {
            return Ok(());
        }
        let referrals = self.referrals.as_ref().ok_or_else(|| {
            Status::internal("this service holds no referral keys to open referral text")
        })?;
        self.fetch_referral_key(referrals, referral).await?;
        for (path, text) in strings {
            self.open_referral_string(referral, path, text)?;
        }
        Ok(())
    }

    /// Reads the key of `referral` from the bucket now, for
    /// [`Self::open_referral_string`].
    async fn fetch_referral_key(
        &self,
        referrals: &ReferralKeys,
        referral: Uuid,
    ) -> Result<(), Status> {
        let key = match referrals.key(referral).await {
            Ok(key) => key,
            Err(e) => {
                // NATS is down: a key this process read before still opens
                // (an erasure made meanwhile holds once NATS answers);
                // one it never read cannot.
                let known = self
                    .fetched
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&referral)
                    .cloned();
                let Some(known) = known else {
                    return Err(Status::unavailable(format!(
                        "cannot read the data key of referral {referral}: {e}"
                    )));
                };
                tracing::warn!(referral_id = %referral, error = %e, "the bucket of referral keys does not answer: opening with the key read before");
                known
            }
        };
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(referral, key);
        Ok(())
    }

    /// Opens `text`, the string at `path` of an event of `referral` sealed
    /// under the referral's key, with the key [`Self::ready`] read
    /// ([`ERASED`] when that read found none).
    ///
    /// # Errors
    /// DATA_LOSS when it does not open (altered, or sealed under another
    /// referral key); UNAVAILABLE when the key was not read first.
    fn open_referral_string(
        &self,
        referral: Uuid,
        path: &str,
        text: &mut String,
    ) -> Result<(), Status> {
        if !text.starts_with(SEALED_PREFIX) {
            return Ok(());
        }
        let fetched = self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(key) = fetched.get(&referral).cloned() else {
            // Never read: not shown as erased, which it may not be.
            return Err(Status::unavailable(format!(
                "the data key of referral {referral} was not read before opening its {path}; read again"
            )));
        };
        match key.map(|key| open_text(&key, StreamId::from_uuid(referral), path, text)) {
            None | Some(Opened::OtherKey) => ERASED.clone_into(text),
            Some(Opened::Text(open)) => *text = open,
            Some(Opened::Fails) => {
                return Err(Status::data_loss(format!(
                    "the sealed {path} of referral {referral} does not open with its key: altered, or sealed under another referral key"
                )));
            }
        }
        Ok(())
    }

    fn open_in_place(
        &self,
        envelope: &mut Envelope,
        keys: &mut HashMap<StreamId, Option<Key>>,
    ) -> Result<(), Status> {
        let stream = envelope.stream_id;
        let case_sealed = self.keys.is_some()
            && is_sealed_version(&envelope.event_type, envelope.schema_version)
            && !private_paths(&envelope.event_type).is_empty();
        let referral_sealed = self.referrals.is_some()
            && has_referral_text(&envelope.event_type, envelope.schema_version);
        let step_detail = self.referrals.is_some()
            && envelope.event_type == "ReferralStepRecorded"
            && envelope.schema_version == SEALED_SCHEMA_VERSION;
        if !case_sealed && !referral_sealed && !step_detail {
            return Ok(());
        }
        let mut payload: Value = serde_json::from_str(&envelope.payload).map_err(|e| {
            Status::data_loss(format!(
                "event {} of {stream} is not JSON: {e}",
                envelope.seq
            ))
        })?;
        if case_sealed {
            let store = self
                .keys
                .as_ref()
                .ok_or_else(|| Status::internal("no case keys"))?;
            let key = match keys.get(&stream) {
                Some(key) => key.clone(),
                None => {
                    let key = store.key(stream).map_err(|e| {
                        Status::unavailable(format!(
                            "cannot read the data key of case {stream}: {e}"
                        ))
                    })?;
                    keys.insert(stream, key.clone());
                    key
                }
            };
            let mut failed = None;
            for_each_private(&envelope.event_type, &mut payload, &mut |path, text| {
                if failed.is_some() || !text.starts_with(SEALED_PREFIX) {
                    return;
                }
                match key.as_ref().map(|key| open_text(key, stream, path, text)) {
                    // The case's key was destroyed, or replaced after an
                    // erasure: what it sealed is gone.
                    None | Some(Opened::OtherKey) => ERASED.clone_into(text),
                    Some(Opened::Text(open)) => *text = open,
                    Some(Opened::Fails) => failed = Some(path.to_owned()),
                }
            });
            if let Some(path) = failed {
                return Err(Status::data_loss(format!(
                    "the sealed {path} of event {} of case {stream} does not open with the case's key: altered, or sealed under another master key",
                    envelope.seq
                )));
            }
        }
        let referral = referral_of(stream, &payload);
        let mut failed: Option<Status> = None;
        if referral_sealed {
            for_each_referral_private(&envelope.event_type, &mut payload, &mut |path, text| {
                if failed.is_none() {
                    failed = self.open_referral_string(referral, path, text).err();
                }
            });
        }
        if step_detail {
            // A referral's step as the case copied it: the step's payload,
            // whose strings are sealed under the referral's key.
            let step = payload
                .get("step")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if let Some(Value::String(detail)) = payload.get_mut("detail")
                && let Ok(mut inner) = serde_json::from_str::<Value>(detail)
            {
                for_each_referral_private(&step, &mut inner, &mut |path, text| {
                    if failed.is_none() {
                        // The path it was sealed at is the step's own.
                        failed = self
                            .open_referral_string(referral, path, text)
                            .err()
                            .map(|s| Status::new(s.code(), format!("detail: {}", s.message())));
                    }
                });
                *detail = inner.to_string();
            }
        }
        if let Some(status) = failed {
            return Err(Status::new(
                status.code(),
                format!("event {} of {stream}: {}", envelope.seq, status.message()),
            ));
        }
        envelope.payload = payload.to_string();
        Ok(())
    }
}

/// The referral whose key opens strings of `event`, when it holds any: a
/// referral's step or a case's request at the sealed version, or a step
/// the case copied (its detail may hold some).
fn referral_text_of(event: &Envelope) -> Option<Uuid> {
    let copied_step =
        event.event_type == "ReferralStepRecorded" && event.schema_version == SEALED_SCHEMA_VERSION;
    if !copied_step && !has_referral_text(&event.event_type, event.schema_version) {
        return None;
    }
    let payload: Value = serde_json::from_str(&event.payload).ok()?;
    Some(referral_of(event.stream_id, &payload))
}

/// The stored form of `events` about to be appended to `stream`, their
/// private text sealed by `private` when given.
///
/// # Errors
/// Those of [`PrivateText::seal`]; INVALID_ARGUMENT if a payload does not
/// serialise (it does, for these types).
pub async fn stored<E: baove_domain::event::StoredEvent>(
    private: Option<&PrivateText>,
    stream: StreamId,
    events: &[E],
) -> Result<Vec<baove_eventlog::NewEvent>, Status> {
    let mut outgoing: Vec<Outgoing> = events
        .iter()
        .map(|e| (e.event_type(), e.schema_version(), e.payload()))
        .collect();
    if let Some(private) = private {
        private.seal(stream, &mut outgoing).await?;
    }
    outgoing
        .into_iter()
        .map(|(event_type, version, payload)| {
            baove_eventlog::NewEvent::new(event_type, version, &payload).map_err(|e| match e {
                // A Value we built serialises, and is valid JSON: the only
                // refusal of its payload is its size.
                baove_eventlog::Error::InvalidArgument {
                    field: "payload", ..
                } => too_long_to_store(event_type, &payload, private.is_some()),
                e => crate::status::from_log(&e),
            })
        })
        .collect()
}

/// The refusal of a step each of whose fields is within its limit but
/// whose event as stored (`sealed`: its private text sealed) is larger
/// than one event may be ([`baove_eventlog::envelope::MAX_PAYLOAD_BYTES`]):
/// names the longest text of the event (its path in the event, as in the
/// request: `text`, `measures[2].description`) and the two next longest, rather than a
/// `payload` the caller never sent.
fn too_long_to_store(event_type: &str, payload: &Value, sealed: bool) -> Status {
    fn strings(value: &Value, path: String, out: &mut Vec<(usize, String)>) {
        match value {
            Value::String(text) => out.push((text.len(), path)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    strings(item, format!("{path}[{i}]"), out);
                }
            }
            Value::Object(fields) => {
                for (name, field) in fields {
                    let inner = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    strings(field, inner, out);
                }
            }
            _ => {}
        }
    }
    let mut texts = Vec::new();
    strings(payload, String::new(), &mut texts);
    texts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut longest = texts.into_iter().map(|(_, path)| path);
    let field = longest.next().unwrap_or_else(|| "request".to_owned());
    let others: Vec<String> = longest.take(2).collect();
    crate::status::invalid_argument(
        &field,
        &format!(
            "makes the step too long to store as one {event_type} event: stored{}, its text \
             takes more than {} KiB; shorten this text{}",
            if sealed { " (sealed)" } else { "" },
            baove_eventlog::envelope::MAX_PAYLOAD_BYTES / 1024,
            if others.is_empty() {
                String::new()
            } else {
                format!(" (the next longest: {})", others.join(", "))
            }
        ),
    )
}

/// `text` sealed as the string at `path` of `stream`:
/// `sealed:<algorithm>:<key id>:<nonce>:<ciphertext>`.
pub(crate) fn seal_text(key: &Key, stream: StreamId, path: &str, text: &str) -> String {
    let sealed = key.seal(&associated_data(stream.as_bytes(), path), text.as_bytes());
    format!(
        "{SEALED_PREFIX}{}:{}:{}:{}",
        sealed.alg,
        key.id(),
        sealed.nonce,
        sealed.ciphertext
    )
}

/// What a sealed string holds.
enum Opened {
    /// The text.
    Text(String),
    /// It was sealed under another key of the case, since destroyed.
    OtherKey,
    /// It does not open: altered, or malformed.
    Fails,
}

/// The text `sealed` holds, opened with `key` as the string at `path` of
/// `stream`.
fn open_text(key: &Key, stream: StreamId, path: &str, sealed: &str) -> Opened {
    // The algorithm's name, the key id and base64 have no ':'.
    let mut parts = sealed
        .strip_prefix(SEALED_PREFIX)
        .unwrap_or("")
        .splitn(4, ':');
    let (Some(alg), Some(key_id), Some(nonce), Some(ciphertext)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Opened::Fails;
    };
    if key_id != key.id() {
        return Opened::OtherKey;
    }
    let sealed = Sealed {
        alg: alg.to_owned(),
        nonce: nonce.to_owned(),
        ciphertext: ciphertext.to_owned(),
    };
    key.open(&associated_data(stream.as_bytes(), path), &sealed)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map_or(Opened::Fails, Opened::Text)
}

#[cfg(test)]
mod tests {
    //! Sealing and opening on a real sled log and key store.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use baove_domain::case::CaseEvent;
    use baove_eventlog::{Actor, AppendRequest, EventLog, ExpectedVersion, NewEvent};
    use tonic_types::StatusExt as _;
    use uuid::Uuid;

    use super::*;

    struct Kit {
        _dir: tempfile::TempDir,
        log: EventLog,
        private: PrivateText,
    }

    async fn kit() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("log")).await.unwrap();
        let keys = KeyStore::open(&log, Key::generate(), None).unwrap();
        Kit {
            _dir: dir,
            private: PrivateText::new(Arc::new(keys)),
            log,
        }
    }

    const NOTE: &str = "Cháu kể bố đánh bằng roi, vết bầm ở lưng";

    fn note(text: &str) -> Outgoing {
        ("NoteAdded", 1, serde_json::json!({ "text": text }))
    }

    fn plan() -> Outgoing {
        (
            "PlanDrafted",
            1,
            serde_json::json!({
                "plan_no": 1,
                "measures": [{"id": "m1", "description": "khám tâm lý cho cháu", "responsible": "Trạm y tế", "due_date": "2026-03-01"}]
            }),
        )
    }

    /// Seals `events` for `stream` and appends them; returns what is stored.
    async fn append(kit: &Kit, stream: StreamId, mut events: Vec<Outgoing>) -> Vec<Envelope> {
        kit.private.seal(stream, &mut events).await.unwrap();
        let next = kit.log.head(stream).await.unwrap().map_or(0, |h| h.version);
        kit.log
            .append(AppendRequest {
                stream,
                expected: ExpectedVersion::Any,
                command_id: Uuid::now_v7().to_string(),
                actor: Actor {
                    user_id: "officer-1".into(),
                    role: "commune_officer".into(),
                    agency_id: String::new(),
                },
                causation_id: String::new(),
                correlation_id: String::new(),
                events: events
                    .into_iter()
                    .map(|(t, v, p)| NewEvent::new(t, v, &p).unwrap())
                    .collect(),
                publish: false,
            })
            .await
            .unwrap();
        kit.log.read_stream(stream, next + 1, 100).await.unwrap()
    }

    #[tokio::test]
    async fn given_a_note_and_a_plan_when_appended_then_no_private_text_is_stored_and_a_reader_gets_it_back()
     {
        let kit = kit().await;
        let case = StreamId::from_uuid(Uuid::now_v7());
        let stored = append(&kit, case, vec![note(NOTE), plan()]).await;
        for event in &stored {
            assert_eq!(event.schema_version, SEALED_SCHEMA_VERSION);
            assert!(!event.payload.contains("roi"), "{}", event.payload);
            assert!(!event.payload.contains("tâm lý"), "{}", event.payload);
            // What no rule reads stays as it was.
            assert!(event.payload.contains(SEALED_PREFIX));
        }
        assert!(stored[1].payload.contains("\"m1\"") && stored[1].payload.contains("Trạm y tế"));
        assert!(matches!(
            kit.log.verify(case).await.unwrap(),
            baove_eventlog::Verification::Intact(_)
        ));

        let opened = kit.private.open_all(stored.clone()).await.unwrap();
        let decoded: Vec<CaseEvent> = opened
            .iter()
            .map(|e| CaseEvent::decode(&e.event_type, e.schema_version, &e.payload).unwrap())
            .collect();
        assert!(matches!(&decoded[0], CaseEvent::NoteAdded(n) if n.text == NOTE));
        assert!(
            matches!(&decoded[1], CaseEvent::PlanDrafted(p) if p.measures[0].description == "khám tâm lý cho cháu")
        );
    }

    /// Given a note within the log's limit as typed but past it once
    /// sealed, when stored, then the refusal names the note's text and
    /// the event, not a `payload` the caller never sent.
    #[tokio::test]
    async fn given_text_too_long_once_sealed_when_stored_then_the_refusal_names_the_text() {
        let kit = kit().await;
        let text = "x".repeat(60_000);
        assert!(text.len() < baove_eventlog::envelope::MAX_PAYLOAD_BYTES);
        let event = CaseEvent::NoteAdded(baove_domain::case::NoteAdded { text });
        let refused = stored(Some(&kit.private), StreamId::new(), &[event])
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        let details = refused.get_error_details();
        let fields: Vec<String> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["text"]);
        assert!(
            refused.message().contains("NoteAdded") && refused.message().contains("64 KiB"),
            "{}",
            refused.message()
        );
        // Nothing was appended.
        assert_eq!(kit.log.last_position(), 0);
    }

    #[tokio::test]
    async fn given_events_without_free_text_when_appended_then_they_stay_version_1_and_no_key_is_made()
     {
        let kit = kit().await;
        let case = StreamId::from_uuid(Uuid::now_v7());
        let approved = (
            "PlanApproved",
            1,
            serde_json::json!({"plan_no": 1, "decision_ref": "QĐ 12/UBND"}),
        );
        let stored = append(&kit, case, vec![approved, note("")]).await;
        assert!(stored.iter().all(|e| e.schema_version == 1));
        assert!(kit.private.keys().unwrap().key(case).unwrap().is_none());
    }

    #[tokio::test]
    async fn given_a_destroyed_key_when_read_then_the_private_text_reads_as_erased_and_new_text_opens_under_a_new_key()
     {
        let kit = kit().await;
        let case = StreamId::from_uuid(Uuid::now_v7());
        let before = append(&kit, case, vec![note(NOTE)]).await;
        assert!(kit.private.keys().unwrap().destroy(case).await.unwrap());
        let erased = kit.private.open(&before[0]).unwrap();
        assert!(erased.payload.contains(ERASED), "{}", erased.payload);
        assert!(!erased.payload.contains("roi"));

        let after = append(&kit, case, vec![note("ghi chú sau khi xoá")]).await;
        let all = kit
            .private
            .open_all(vec![before[0].clone(), after[0].clone()])
            .await
            .unwrap();
        assert!(all[0].payload.contains(ERASED));
        assert!(all[1].payload.contains("ghi chú sau khi xoá"));
    }

    #[tokio::test]
    async fn given_a_sealed_string_moved_to_another_case_or_altered_when_opened_then_it_is_data_loss()
     {
        let kit = kit().await;
        let (a, b) = (
            StreamId::from_uuid(Uuid::now_v7()),
            StreamId::from_uuid(Uuid::now_v7()),
        );
        let in_a = append(&kit, a, vec![note(NOTE)]).await;
        let in_b = append(&kit, b, vec![note("khác")]).await;
        // Case a's sealed note copied over case b's, under b's key id: the
        // stream is associated data, so it does not open there.
        let sealed_a: Value = serde_json::from_str(&in_a[0].payload).unwrap();
        let sealed_b: Value = serde_json::from_str(&in_b[0].payload).unwrap();
        let key_b = sealed_b["text"]
            .as_str()
            .unwrap()
            .split(':')
            .nth(2)
            .unwrap();
        let mut parts: Vec<&str> = sealed_a["text"].as_str().unwrap().split(':').collect();
        parts[2] = key_b;
        let mut moved = in_b[0].clone();
        moved.payload = serde_json::json!({ "text": parts.join(":") }).to_string();
        let status = kit.private.open(&moved).unwrap_err();
        assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
        assert!(status.message().contains("text"), "{status:?}");
        // One ciphertext character changed.
        let mut altered = in_a[0].clone();
        let text = sealed_a["text"].as_str().unwrap();
        let last = text.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &text[..text.len() - 1],
            if last == 'A' { 'B' } else { 'A' }
        );
        altered.payload = serde_json::json!({ "text": flipped }).to_string();
        assert_eq!(
            kit.private.open(&altered).unwrap_err().code(),
            tonic::Code::DataLoss
        );
    }

    #[test]
    fn given_a_referral_string_whose_key_was_not_read_when_opened_then_unavailable_not_erased() {
        let (_, bus) = tokio::sync::watch::channel(None);
        let keys = crate::referral_keys::ReferralKeys::new(bus, 1, Key::generate(), false);
        let private = PrivateText::for_referrals(Arc::new(keys));
        let referral = Uuid::now_v7();
        let key = Key::generate();
        let sealed = seal_text(
            &key,
            StreamId::from_uuid(referral),
            "reason",
            "không đúng địa bàn",
        );
        let mut text = sealed.clone();
        let status = private
            .open_referral_string(referral, "reason", &mut text)
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert_eq!(text, sealed, "left as it was");
        // Read, and found erased: erased.
        private.fetched.lock().unwrap().insert(referral, None);
        private
            .open_referral_string(referral, "reason", &mut text)
            .unwrap();
        assert_eq!(text, ERASED);
        // Read, found: opened, at the path it was sealed at only.
        private.fetched.lock().unwrap().insert(referral, Some(key));
        let mut text = sealed.clone();
        let moved = private
            .open_referral_string(referral, "outcome", &mut text)
            .unwrap_err();
        assert_eq!(moved.code(), tonic::Code::DataLoss);
        private
            .open_referral_string(referral, "reason", &mut text)
            .unwrap();
        assert_eq!(text, "không đúng địa bàn");
    }
}
