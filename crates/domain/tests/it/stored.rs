//! Every event type as it is stored, decoded by today's code: one file per
//! event type and schema version in `tests/stored/` (`<Event>.v<N>.json`,
//! or `<Event>.<variant>.v<N>.json` where one type has several shapes),
//! each `{"event_type", "schema_version", "payload"}`.
//!
//! A renamed or retyped field fails here: give the event a new schema
//! version with an upcaster instead, and keep the old fixture.

use baove_domain::case::CaseEvent;
use baove_domain::event::StoredEvent;
use baove_domain::intake::IntakeEvent;
use baove_domain::reference::DirectoryEvent;
use baove_domain::referral::ReferralEvent;

struct Fixture {
    file: String,
    event_type: String,
    schema_version: u32,
    payload: String,
}

fn fixtures() -> Vec<Fixture> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stored");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        out.push(Fixture {
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            event_type: value["event_type"].as_str().unwrap().to_owned(),
            schema_version: u32::try_from(value["schema_version"].as_u64().unwrap()).unwrap(),
            payload: value["payload"].to_string(),
        });
    }
    out
}

/// Decodes each fixture of `E`'s types, checks it encodes back to the same
/// payload, and that every type of `E` has a fixture.
fn check<E: StoredEvent>(fixtures: &[Fixture]) {
    for event_type in E::EVENT_TYPES {
        let mine: Vec<&Fixture> = fixtures
            .iter()
            .filter(|f| f.event_type == *event_type)
            .collect();
        assert!(!mine.is_empty(), "no stored fixture for {event_type}");
        for f in mine {
            assert!(
                f.file.starts_with(event_type)
                    && f.file.ends_with(&format!(".v{}.json", f.schema_version)),
                "{} is not named after its type and version",
                f.file
            );
            let event = E::decode(&f.event_type, f.schema_version, &f.payload)
                .unwrap_or_else(|e| panic!("{}: {e}", f.file));
            assert_eq!(event.event_type(), *event_type, "{}", f.file);
            let stored: serde_json::Value = serde_json::from_str(&f.payload).unwrap();
            if f.schema_version == event.schema_version() {
                // Written back, every stored field is still there with its
                // value (fields added since, with defaults, may be too).
                let written = event.payload();
                assert!(
                    kept(&stored, &written),
                    "{} loses or changes stored fields: stored {stored}, written {written}",
                    f.file
                );
            }
        }
    }
}

/// Whether every field of `stored` is in `written` with the same value
/// (recursively; `written` may have more fields).
fn kept(stored: &serde_json::Value, written: &serde_json::Value) -> bool {
    match (stored, written) {
        (serde_json::Value::Object(s), serde_json::Value::Object(w)) => s
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| kept(v, wv))),
        (serde_json::Value::Array(s), serde_json::Value::Array(w)) => {
            s.len() == w.len() && s.iter().zip(w).all(|(a, b)| kept(a, b))
        }
        (s, w) => s == w,
    }
}

#[test]
fn every_stored_event_type_has_a_fixture_that_todays_code_decodes() {
    let all = fixtures();
    check::<CaseEvent>(&all);
    check::<IntakeEvent>(&all);
    check::<ReferralEvent>(&all);
    check::<DirectoryEvent>(&all);
    // Nothing stored under a name no aggregate knows.
    let known: Vec<&str> = [
        CaseEvent::EVENT_TYPES,
        IntakeEvent::EVENT_TYPES,
        ReferralEvent::EVENT_TYPES,
        DirectoryEvent::EVENT_TYPES,
    ]
    .concat();
    for f in &all {
        assert!(
            known.contains(&f.event_type.as_str()),
            "{}: unknown type",
            f.file
        );
    }
}

#[test]
fn a_payload_stored_under_another_name_or_a_newer_version_is_refused_with_a_typed_error() {
    use baove_domain::event::DecodeError;
    let all = fixtures();
    let accepted = all
        .iter()
        .find(|f| f.event_type == "ReferralAccepted")
        .unwrap();
    assert!(matches!(
        ReferralEvent::decode(
            &accepted.event_type,
            accepted.schema_version,
            &accepted.payload
        ),
        Ok(ReferralEvent::Accepted { .. })
    ));
    // The payload says "accepted"; stored as a decline it is no decline.
    assert!(matches!(
        <ReferralEvent as StoredEvent>::decode("ReferralDeclined", 1, &accepted.payload),
        Err(DecodeError::Payload { .. })
    ));
    assert!(matches!(
        <ReferralEvent as StoredEvent>::decode("ReferralAccepted", 2, &accepted.payload),
        Err(DecodeError::UnknownVersion { version: 2, .. })
    ));
    let note = all.iter().find(|f| f.event_type == "NoteAdded").unwrap();
    let renamed = note.payload.replace("\"text\"", "\"body\"");
    assert!(matches!(
        CaseEvent::decode("NoteAdded", 1, &renamed),
        Err(DecodeError::Payload { .. })
    ));
}
