//! What every aggregate's events share: a stored name and schema version
//! per event, decoding by that name and version (with upcasting from older
//! versions in one place per event), and the payload as stored.
//!
//! One enum per aggregate implements [`StoredEvent`]:
//! [`crate::intake::IntakeEvent`], [`crate::case::CaseEvent`],
//! [`crate::referral::ReferralEvent`] and
//! [`crate::reference::DirectoryEvent`]. Stored names never change and are
//! never reused; a renamed field gets a new schema version and an upcaster
//! from the old one. `tests/stored/` keeps one stored payload per event
//! type and version, and a test decodes each: changing a stored shape
//! breaks that test.

/// Why a stored event could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No event of this aggregate has that stored name.
    #[error("unknown event type {0}")]
    UnknownType(String),
    /// The name is known but not this schema version (newer than this
    /// code, or never written).
    #[error("{event_type} has no schema version {version} here")]
    UnknownVersion {
        /// The stored name.
        event_type: String,
        /// The stored version.
        version: u32,
    },
    /// The payload does not have the stored shape.
    #[error("{event_type} v{version}: {reason}")]
    Payload {
        /// The stored name.
        event_type: String,
        /// The stored version.
        version: u32,
        /// What the decoder said.
        reason: String,
    },
}

/// The events of one aggregate, as they are stored.
pub trait StoredEvent: Sized {
    /// Every stored name of this aggregate's events.
    const EVENT_TYPES: &'static [&'static str];

    /// The stored name of this event. Never changes for a variant.
    fn event_type(&self) -> &'static str;

    /// The schema version this code writes for this event.
    fn schema_version(&self) -> u32;

    /// Decodes a stored event by its name and schema version, upcasting
    /// older versions.
    ///
    /// # Errors
    /// [`DecodeError`], saying why.
    fn decode(event_type: &str, schema_version: u32, payload: &str) -> Result<Self, DecodeError>;

    /// The payload as stored (JSON).
    fn payload(&self) -> serde_json::Value;
}

/// One aggregate: a record whose state is the fold of its stream's
/// events (a case, a referral). Implemented on the state type, so that one
/// generic path in the services loads any of them, decides a command on
/// it and appends what was decided.
pub trait Aggregate: Sized {
    /// Its events.
    type Event: StoredEvent;
    /// What a person calls one ("case", "referral"): in errors.
    const KIND: &'static str;
    /// The stored name of the event every stream of this aggregate starts
    /// with; a stream starting otherwise is not one of these.
    const FIRST_EVENT: &'static str;

    /// Folds one event into the state (`None` before the first).
    fn apply(state: Option<Self>, event: &Self::Event) -> Option<Self>;

    /// The correlation id every event appended to this record carries (a
    /// case's intake, a referral's case).
    fn correlation_id(&self) -> String;

    /// The case this record is, or belongs to (access log entries name it).
    fn case_id(&self) -> uuid::Uuid;

    /// Whether `event` changes nothing a decision rests on, so that a
    /// command decided on a version made stale only by such events may be
    /// decided again on the current state. None by default.
    fn is_bookkeeping(_event: &Self::Event) -> bool {
        false
    }
}

/// Why a command was refused by an aggregate's `decide`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Bad input (gRPC `INVALID_ARGUMENT`): every bad field.
    Invalid(crate::Violations),
    /// The procedure does not allow this step now (gRPC
    /// `FAILED_PRECONDITION`): the rule, in words.
    NotAllowed(String),
}

impl From<crate::Violations> for Refusal {
    fn from(v: crate::Violations) -> Self {
        Self::Invalid(v)
    }
}

/// Decodes `payload` as `T` for the stored `event_type` at `version`.
///
/// # Errors
/// [`DecodeError::Payload`].
pub fn payload_as<T: serde::de::DeserializeOwned>(
    event_type: &str,
    version: u32,
    payload: &str,
) -> Result<T, DecodeError> {
    serde_json::from_str(payload).map_err(|e| DecodeError::Payload {
        event_type: event_type.to_owned(),
        version,
        reason: crate::text::clip(&e.to_string(), 300).into_owned(),
    })
}

/// Serialises a plain event struct (which cannot fail for these types).
#[must_use]
pub fn to_payload<T: serde::Serialize>(event: &T) -> serde_json::Value {
    serde_json::to_value(event).unwrap_or(serde_json::Value::Null)
}

/// Declares an aggregate's enum of events (one variant per event, each
/// holding its payload struct) as [`StoredEvent`], with the stored name of
/// each variant, in one place so that names, decoding and encoding cannot
/// drift apart; and the inherent `event_type`, `payload` and `decode`.
/// Every event is at the aggregate's schema version; an event that gets a
/// version 2 gets its upcaster here. `$version; $also` names a function
/// `(event_type, schema_version) -> bool` for other versions whose payload
/// has the current shape (a case's sealed events).
macro_rules! stored_events {
    ($enum:ident, $version:expr $(; $also:path)?, $($variant:ident => $name:literal),+ $(,)?) => {
        impl $crate::event::StoredEvent for $enum {
            const EVENT_TYPES: &'static [&'static str] = &[$($name,)+];

            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            fn schema_version(&self) -> u32 {
                $version
            }

            fn decode(
                event_type: &str,
                schema_version: u32,
                payload: &str,
            ) -> Result<Self, $crate::event::DecodeError> {
                if !Self::EVENT_TYPES.contains(&event_type) {
                    return Err($crate::event::DecodeError::UnknownType(event_type.to_owned()));
                }
                if schema_version != $version $(&& !$also(event_type, schema_version))? {
                    return Err($crate::event::DecodeError::UnknownVersion {
                        event_type: event_type.to_owned(),
                        version: schema_version,
                    });
                }
                match event_type {
                    $($name => $crate::event::payload_as(event_type, schema_version, payload).map(Self::$variant),)+
                    other => Err($crate::event::DecodeError::UnknownType(other.to_owned())),
                }
            }

            fn payload(&self) -> serde_json::Value {
                match self {
                    $(Self::$variant(e) => $crate::event::to_payload(e),)+
                }
            }
        }

        impl $enum {
            /// The stored type name ([`crate::event::StoredEvent::event_type`]).
            #[must_use]
            pub fn event_type(&self) -> &'static str {
                $crate::event::StoredEvent::event_type(self)
            }

            /// The payload as JSON ([`crate::event::StoredEvent::payload`]).
            #[must_use]
            pub fn payload(&self) -> serde_json::Value {
                $crate::event::StoredEvent::payload(self)
            }

            /// Decodes a stored event ([`crate::event::StoredEvent::decode`]).
            ///
            /// # Errors
            /// [`crate::event::DecodeError`].
            pub fn decode(
                event_type: &str,
                schema_version: u32,
                payload: &str,
            ) -> Result<Self, $crate::event::DecodeError> {
                <Self as $crate::event::StoredEvent>::decode(event_type, schema_version, payload)
            }
        }
    };
}

pub(crate) use stored_events;
