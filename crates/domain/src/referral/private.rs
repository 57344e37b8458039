//! What of a referral is private: the request's reason (why the child is
//! handed to the police or a hospital), a decline's reason, an outcome and
//! its reference (a police case number), a revocation's reason. Each such
//! string is sealed under the referral's own data key, which casework and
//! the referral service share (the key is made by casework when it records
//! the request, kept wrapped in the cluster's bucket of referral keys), so
//! that the referral service's log, the case's log, both NATS streams and
//! every backup hold these strings only sealed, and both services can open
//! them for a reader allowed to see the referral.
//!
//! A sealed string has the form of [`crate::case::private`]'s, with the
//! referral's id (as a stream id) and the string's path as associated
//! data: the request's reason is sealed once, by casework, at
//! `request.reason`, and copied as it is into the referral's offer, whose
//! path is the same. An event with a sealed string is stored at
//! [`SEALED_SCHEMA_VERSION`]; its payload has the shape of version 1, so it
//! decodes alike and no rule reads the text.

pub use crate::case::private::{ERASED, SEALED_PREFIX, SEALED_SCHEMA_VERSION};

/// The strings sealed under a referral's key, per event type: the case's
/// request, and the referral's own steps.
const PRIVATE: &[(&str, &[&str])] = &[
    ("ReferralRequested", &["request.reason"]),
    ("ReferralOffered", &["request.reason"]),
    ("ReferralDeclined", &["reason"]),
    ("ReferralOutcomeReported", &["outcome", "reference"]),
    ("ReferralRevoked", &["reason"]),
];

/// The paths of `event_type`'s strings sealed under its referral's key
/// (none for an event without them).
#[must_use]
pub fn referral_paths(event_type: &str) -> &'static [&'static str] {
    PRIVATE
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(&[], |(_, paths)| paths)
}

/// Calls `f` with the path and the value of each string of `payload`, an
/// event of `event_type`, sealed under its referral's key.
pub fn for_each_referral_private(
    event_type: &str,
    payload: &mut serde_json::Value,
    f: &mut dyn FnMut(&str, &mut String),
) {
    crate::case::private::for_each_path(referral_paths(event_type), payload, f);
}

/// Whether a referral event of `event_type` stored at `schema_version` has
/// its private strings sealed (decoded as version 1).
#[must_use]
pub fn is_sealed_version(event_type: &str, schema_version: u32) -> bool {
    schema_version == SEALED_SCHEMA_VERSION && !referral_paths(event_type).is_empty()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::event::StoredEvent;
    use crate::referral::ReferralEvent;
    use serde_json::Value;

    fn found(event_type: &str, mut payload: Value) -> Vec<String> {
        let mut seen = Vec::new();
        for_each_referral_private(event_type, &mut payload, &mut |path, _| {
            seen.push(path.to_owned());
        });
        seen
    }

    #[test]
    fn every_private_path_names_a_string_of_its_event_as_stored() {
        // A path that finds nothing would leave that text in clear.
        for (event_type, paths) in PRIVATE {
            let fixture = std::fs::read_to_string(format!(
                "{}/tests/stored/{event_type}.v1.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let stored: Value = serde_json::from_str(&fixture).unwrap();
            let payload = stored["payload"].clone();
            assert_eq!(&found(event_type, payload), paths, "{event_type}");
        }
    }

    #[test]
    fn given_a_request_when_its_private_strings_are_listed_then_only_the_reason_is() {
        let request = serde_json::json!({
            "referral_id": "9a0c9d1e-3f4b-5c6d-8e7f-0a1b2c3d4e5f",
            "from_unit_id": "vn-ct.p-ninh-kieu",
            "request": {"kind": {"kind": "refer", "service": "health_care"}, "to_agency_id": "ct.bv", "reason": "bé bị bỏng", "urgency": "urgent", "sharing": {}}
        });
        assert_eq!(found("ReferralRequested", request), ["request.reason"]);
        assert!(found("ReferralAccepted", serde_json::json!({"by": "x"})).is_empty());
    }

    #[test]
    fn given_a_sealed_decline_when_decoded_then_it_decodes_as_version_1_and_a_step_without_text_has_no_version_2()
     {
        let sealed = r#"{"step":"declined","by":"ca-1","reason":"sealed:XChaCha20-Poly1305:AAAA:BBBB:CCCC"}"#;
        let event =
            ReferralEvent::decode("ReferralDeclined", SEALED_SCHEMA_VERSION, sealed).unwrap();
        assert!(
            matches!(event, ReferralEvent::Declined { reason, .. } if reason.starts_with(SEALED_PREFIX))
        );
        assert!(
            ReferralEvent::decode(
                "ReferralAccepted",
                SEALED_SCHEMA_VERSION,
                r#"{"step":"accepted","by":"ca-1"}"#
            )
            .is_err()
        );
        assert!(is_sealed_version("ReferralRevoked", 2));
        assert!(!is_sealed_version("ReferralRevoked", 1));
        assert!(!is_sealed_version("ReferralEscalated", 2));
    }
}
