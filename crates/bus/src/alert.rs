//! Alerts: what a person must act on now, on the `BAOVE_ALERT` stream. One
//! typed payload per kind (JSON), one subject per kind and recipient:
//!
//! - [`DeadlineAlert`] on `baove.alert.deadline.<commune unit id>`: a legal
//!   deadline of a case is near or missed (casework);
//! - [`ReferralAlert`] on `baove.alert.referral.<agency id>`: a referral was
//!   not acknowledged in time (referral), to the supervising agency, or the
//!   receiving agency when it has none.
//!
//! Each alert is published once per event it comes from: the message id is
//! `alert:<event id>`, so a redelivered event does not alert twice.
//!
//! In a partition (a province's processes, [`crate::partition`]) the
//! alerts go on the partition's own alert stream, `BAOVE_ALERT_<P>`, on
//! `baove.p.<p>.alert.<kind>.<recipient>` (`baove.p.vn-92.alert.deadline.vn:31135`):
//! whoever watches a unit across partitions subscribes to
//! `baove.p.*.alert.deadline.<unit>`.

use async_nats::jetstream::{self, message::PublishMessage};
use baove_domain::case::DeadlineKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StreamSpec;

/// A payload published on the alert stream.
pub trait Alert: Serialize {
    /// The subject's kind: `baove.alert.<KIND>.<recipient>`.
    const KIND: &'static str;

    /// The event the alert comes from (its message id).
    fn event_id(&self) -> Uuid;
}

/// A case's legal deadline is near (`missed` false) or has passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineAlert {
    /// The case.
    pub case_id: Uuid,
    /// Which deadline (`emergency`, `plan_drafted`, `plan_approved`).
    pub kind: DeadlineKind,
    /// True when it has passed; false for the warning before it.
    pub missed: bool,
    /// When it is (was) due, Unix milliseconds.
    pub due_at_ms: i64,
    /// The same moment in Vietnam's time, in words.
    pub due: String,
    /// The step that meets it, in words.
    pub satisfied_by: String,
    /// The commune responsible for the case (the subject's recipient).
    pub unit_id: String,
    /// The officer assigned, if any.
    pub officer_id: Option<String>,
    /// The `DeadlineWarned` / `DeadlineMissed` event.
    pub event_id: Uuid,
}

impl Alert for DeadlineAlert {
    const KIND: &'static str = "deadline";

    fn event_id(&self) -> Uuid {
        self.event_id
    }
}

/// A referral was not acknowledged by its deadline and was escalated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralAlert {
    /// The referral.
    pub referral_id: Uuid,
    /// Its case.
    pub case_id: Uuid,
    /// The receiving agency that did not acknowledge it.
    pub not_acknowledged_by: String,
    /// When acknowledgement was due, Unix milliseconds.
    pub ack_due_at_ms: i64,
    /// The same moment in Vietnam's time, in words.
    pub due: String,
    /// The requesting commune.
    pub from_unit_id: String,
    /// Whether the referral was urgent (2 hours) rather than normal (1
    /// working day).
    pub urgent: bool,
    /// The `ReferralEscalated` event.
    pub event_id: Uuid,
}

impl Alert for ReferralAlert {
    const KIND: &'static str = "referral";

    fn event_id(&self) -> Uuid {
        self.event_id
    }
}

/// The subject of an alert of kind `A` to `recipient` on `stream`
/// ([`crate::ALERT`], or a partition's: [`crate::partition::Partition::stream`]).
#[must_use]
pub fn subject<A: Alert>(stream: StreamSpec, recipient: &str) -> String {
    format!("{}.{}.{recipient}", stream.prefix, A::KIND)
}

/// Publishes `alert` to `recipient` on `stream` (the alert stream: [`crate::ALERT`]
/// or a partition's) and waits for the stream's ack.
///
/// # Errors
/// The publish or its ack failed (retry: the message id dedupes).
pub async fn publish<A: Alert>(
    js: &jetstream::Context,
    stream: StreamSpec,
    recipient: &str,
    alert: &A,
) -> Result<(), String> {
    let payload = serde_json::to_vec(alert).map_err(|e| format!("alert payload: {e}"))?;
    let message = PublishMessage::build()
        .payload(payload.into())
        .message_id(format!("alert:{}", alert.event_id()));
    js.send_publish(subject::<A>(stream, recipient), message)
        .await
        .map_err(|e| format!("alert publish: {e}"))?
        .await
        .map_err(|e| format!("alert ack: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_keep_their_field_names_and_subjects() {
        let alert = DeadlineAlert {
            case_id: Uuid::from_u128(1),
            kind: DeadlineKind::Emergency,
            missed: true,
            due_at_ms: 1_000,
            due: "07:00 01/01/1970".into(),
            satisfied_by: "an emergency measure".into(),
            unit_id: "vn:31135".into(),
            officer_id: None,
            event_id: Uuid::from_u128(2),
        };
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["kind"], "emergency");
        assert_eq!(json["missed"], true);
        assert_eq!(json["officer_id"], serde_json::Value::Null);
        assert_eq!(json["case_id"], Uuid::from_u128(1).to_string());
        let back: DeadlineAlert = serde_json::from_value(json).unwrap();
        assert_eq!(back, alert);
        assert_eq!(
            subject::<DeadlineAlert>(crate::ALERT, "vn:31135"),
            "baove.alert.deadline.vn:31135"
        );
        assert_eq!(
            subject::<ReferralAlert>(crate::ALERT, "vn:92/cong-an"),
            "baove.alert.referral.vn:92/cong-an"
        );
        let partition = crate::partition::Partition::new("vn:92").unwrap();
        assert_eq!(
            subject::<DeadlineAlert>(partition.stream(crate::ALERT), "vn:31135"),
            "baove.p.vn-92.alert.deadline.vn:31135"
        );
        let referral = ReferralAlert {
            referral_id: Uuid::from_u128(3),
            case_id: Uuid::from_u128(1),
            not_acknowledged_by: "vn:31135/cong-an".into(),
            ack_due_at_ms: 1_000,
            due: "07:00 01/01/1970".into(),
            from_unit_id: "vn:31135".into(),
            urgent: true,
            event_id: Uuid::from_u128(4),
        };
        let json = serde_json::to_value(&referral).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "ack_due_at_ms",
                "case_id",
                "due",
                "event_id",
                "from_unit_id",
                "not_acknowledged_by",
                "referral_id",
                "urgent"
            ]
        );
    }
}
