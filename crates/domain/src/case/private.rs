//! What of a case's log is private (Decree 56 Đ33; Law on Children Đ33:
//! the child's health, family, school and the services given to her): the
//! free text of assessments (their summaries and the risk factors rated),
//! measures, plans, interventions, reviews, closing and reopening, notes,
//! and the details of referral steps copied into the case (a decline's
//! reason, an outcome). Each such string is stored sealed
//! under the case's data key (the service seals and opens it; this module
//! only says which strings, and how a sealed one is written), so that the
//! log, its backups, its stream in NATS and an audit export hold no private
//! text in clear, and erasing the key erases all of it at once.
//!
//! An event whose private strings are sealed is stored at
//! [`SEALED_SCHEMA_VERSION`]; its payload has the same shape as at
//! [`super::SCHEMA_VERSION`] (a sealed string is a string), so the domain
//! decodes both alike and folds a sealed case as it folds an open one:
//! no rule of the procedure reads free text. Events stored before sealing
//! existed stay at version 1, in clear, as they were written.
//!
//! A sealed string is `sealed:<algorithm>:<key id>:<nonce>:<ciphertext>`
//! (base64; the key id tells a string sealed under a key since destroyed),
//! sealed with the case's stream id and the string's path as associated
//! data, so a sealed string cannot be moved to another case or field. A
//! string whose key was destroyed reads as [`ERASED`].
//!
//! The request of a referral (`ReferralRequested.request.reason`) is the
//! referral's as much as the case's: it is sealed under the referral's own
//! key, shared with the referral service ([`crate::referral::private`]),
//! and stored at [`SEALED_SCHEMA_VERSION`] too.

use serde_json::Value;

/// The schema version of a case event whose private strings are sealed.
pub const SEALED_SCHEMA_VERSION: u32 = 2;

/// How a sealed string starts.
pub const SEALED_PREFIX: &str = "sealed:";

/// What a private string reads as once its case's key is destroyed.
pub const ERASED: &str = "[erased]";

/// The private strings of each event type: a field (`summary`), each
/// string of a list (`meeting_participants[]`), or a field of each object
/// of a list (`measures[].description`).
const PRIVATE: &[(&str, &[&str])] = &[
    (
        "InitialAssessmentRecorded",
        &["summary", "ratings[].factor"],
    ),
    ("EmergencyMeasureRecorded", &["description"]),
    (
        "DetailedAssessmentRecorded",
        &["summary", "needs", "meeting_participants[]"],
    ),
    ("PlanDrafted", &["measures[].description"]),
    ("PlanSentBack", &["reason"]),
    ("InterventionRecorded", &["description"]),
    ("ReviewRecorded", &["summary", "ratings[].factor"]),
    ("CaseClosed", &["reason"]),
    ("CaseReopened", &["reason"]),
    ("NoteAdded", &["text"]),
    // The referral event's payload as copied into the case: a decline's
    // reason, an outcome in words.
    ("ReferralStepRecorded", &["detail"]),
];

/// The private paths of `event_type` (none for an event without free
/// text).
#[must_use]
pub fn private_paths(event_type: &str) -> &'static [&'static str] {
    PRIVATE
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(&[], |(_, paths)| paths)
}

/// Whether an event of `event_type` stored at `schema_version` is one this
/// module's sealing wrote, or whose referral text is sealed under the
/// referral's key ([`crate::referral::private`]: `ReferralRequested`);
/// decoded as the current version.
#[must_use]
pub fn is_sealed_version(event_type: &str, schema_version: u32) -> bool {
    schema_version == SEALED_SCHEMA_VERSION
        && (!private_paths(event_type).is_empty()
            || !crate::referral::private::referral_paths(event_type).is_empty())
}

/// Calls `f` with the path (`measures[1].description`) and the value of
/// each private string of `payload`, an event of `event_type`.
pub fn for_each_private(
    event_type: &str,
    payload: &mut Value,
    f: &mut dyn FnMut(&str, &mut String),
) {
    for_each_path(private_paths(event_type), payload, f);
}

/// Calls `f` with the path and the value of each string of `payload` that
/// `paths` name: a field (`summary`), a field of a field
/// (`request.reason`), each string of a list (`meeting_participants[]`),
/// or a field of each object of a list (`measures[].description`).
pub fn for_each_path(paths: &[&str], payload: &mut Value, f: &mut dyn FnMut(&str, &mut String)) {
    for path in paths {
        let (list, field) = match path.split_once("[]") {
            None => (None, *path),
            Some((list, rest)) => (Some(list), rest.trim_start_matches('.')),
        };
        match list {
            None => visit(field_at(payload, field), field, f),
            Some(list) => {
                let Some(Value::Array(items)) = payload.get_mut(list) else {
                    continue;
                };
                for (i, item) in items.iter_mut().enumerate() {
                    if field.is_empty() {
                        visit(Some(item), &format!("{list}[{i}]"), f);
                    } else {
                        visit(field_at(item, field), &format!("{list}[{i}].{field}"), f);
                    }
                }
            }
        }
    }
}

/// The value at `field` of `value`, following dots into objects.
fn field_at<'a>(value: &'a mut Value, field: &str) -> Option<&'a mut Value> {
    field.split('.').try_fold(value, |v, name| v.get_mut(name))
}

fn visit(value: Option<&mut Value>, path: &str, f: &mut dyn FnMut(&str, &mut String)) {
    if let Some(Value::String(text)) = value {
        f(path, text);
    }
}

/// The associated data a private string of `stream` at `path` is sealed
/// with.
#[must_use]
pub fn associated_data(stream: &[u8], path: &str) -> Vec<u8> {
    let mut aad = stream.to_vec();
    aad.push(b'/');
    aad.extend_from_slice(path.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::case::CaseEvent;
    use crate::event::StoredEvent;

    fn paths_of(event_type: &str, mut payload: Value) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        for_each_private(event_type, &mut payload, &mut |path, text| {
            seen.push((path.to_owned(), text.clone()));
        });
        seen
    }

    #[test]
    fn given_a_plan_when_its_private_strings_are_listed_then_each_measures_description_is_and_nothing_else()
     {
        let plan = serde_json::json!({
            "plan_no": 1,
            "drafted_by": "officer-1",
            "measures": [
                {"id": "m1", "description": "khám tâm lý", "responsible": "Trạm y tế", "due_date": "2026-03-01"},
                {"id": "m2", "description": "đi học lại", "responsible": "Trường", "due_date": "2026-03-05"}
            ]
        });
        assert_eq!(
            paths_of("PlanDrafted", plan),
            vec![
                ("measures[0].description".into(), "khám tâm lý".into()),
                ("measures[1].description".into(), "đi học lại".into()),
            ]
        );
    }

    #[test]
    fn given_a_detailed_assessment_when_listed_then_summary_needs_and_each_participant_are_private()
    {
        let assessment = serde_json::json!({
            "summary": "s", "needs": "n", "meeting_participants": ["mẹ", "cô giáo"], "minutes_ref": "BB-1"
        });
        let paths: Vec<String> = paths_of("DetailedAssessmentRecorded", assessment)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            paths,
            [
                "summary",
                "needs",
                "meeting_participants[0]",
                "meeting_participants[1]"
            ]
        );
    }

    #[test]
    fn given_events_without_free_text_when_listed_then_nothing_is_private_and_version_2_is_not_theirs()
     {
        for event_type in [
            "CaseOpened",
            "DeadlineSet",
            "PlanApproved",
            "OfficerAssigned",
        ] {
            assert!(private_paths(event_type).is_empty(), "{event_type}");
            assert!(!is_sealed_version(event_type, SEALED_SCHEMA_VERSION));
        }
        assert!(is_sealed_version("NoteAdded", SEALED_SCHEMA_VERSION));
        assert!(!is_sealed_version("NoteAdded", 1));
    }

    #[test]
    fn every_private_path_names_a_field_of_its_event() {
        // A path that names no field would leave that text in clear: each
        // path must find a string in an event of its type as the domain
        // writes it.
        for (event_type, paths) in PRIVATE {
            assert!(
                CaseEvent::EVENT_TYPES.contains(event_type),
                "{event_type} is not a case event"
            );
            let fixture = std::fs::read_to_string(format!(
                "{}/tests/stored/{event_type}.v1.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let stored: Value = serde_json::from_str(&fixture).unwrap();
            let event = CaseEvent::decode(event_type, 1, &stored["payload"].to_string()).unwrap();
            let found: Vec<String> = paths_of(event_type, event.payload())
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            for path in *paths {
                let stem = path.split("[]").next().unwrap();
                assert!(
                    found.iter().any(|f| f.starts_with(stem)),
                    "{event_type}: {path} finds no string in {found:?}"
                );
            }
        }
    }

    #[test]
    fn given_a_sealed_event_when_decoded_then_it_decodes_as_version_1_does() {
        let sealed = r#"{"text":"sealed:XChaCha20-Poly1305:AAAA:BBBB"}"#;
        let event = CaseEvent::decode("NoteAdded", SEALED_SCHEMA_VERSION, sealed).unwrap();
        assert!(matches!(event, CaseEvent::NoteAdded(n) if n.text.starts_with(SEALED_PREFIX)));
        // A type with no private text has no version 2.
        assert!(
            CaseEvent::decode("PlanApproved", 2, r#"{"plan_no":1,"decision_ref":"QĐ"}"#).is_err()
        );
    }
}
