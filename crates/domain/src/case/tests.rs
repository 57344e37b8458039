//! Given/when/then tests of the hand-over to casework.

use super::*;
use crate::intake::{Age, Child, Place, Report, ReportFacts, Sex};

fn recorded(follow_up: Option<Uuid>) -> IntakeRecorded {
    IntakeRecorded {
        intake_id: Uuid::from_u128(42),
        report: Report::Police {
            police_agency_id: "vn:92/cong-an".into(),
            officer_id: "ca-1".into(),
            officer_name: "Lê Văn Dũng".into(),
            case_number: "BB-1".into(),
            offence_article: "146".into(),
            offence_description: String::new(),
            occurred_at_ms: 0,
            criminal_proceedings_opened: true,
            support_needed: String::new(),
            facts: ReportFacts {
                received_at_ms: 1_000,
                child: Child {
                    full_name: "An".into(),
                    name_key: "an".into(),
                    age: Age::EstimatedYears(9),
                    age_years: 9,
                    sex: Sex::Male,
                    ethnicity: String::new(),
                    current_condition: String::new(),
                },
                incident_place: Place {
                    unit_id: "u1".into(),
                    address: String::new(),
                },
                residence_place: Some(Place {
                    unit_id: "u2".into(),
                    address: String::new(),
                }),
                concerns: Concerns::default(),
                narrative: "n".into(),
                immediate_danger: true,
                caregiver_is_alleged_abuser: false,
                father: None,
                mother: None,
                caregiver: None,
                actions_taken: String::new(),
                likely_consequence: String::new(),
                follow_up_case_id: follow_up,
                setting: crate::intake::Setting::Unknown,
                occurred_at_ms: None,
                responsible_unit_id: None,
                province_id: None,
                report_status: Default::default(),
            },
            police_received_at_ms: None,
        },
        outside_child_law: false,
        possible_duplicate_case_ids: vec![Uuid::from_u128(9)],
        possible_duplicate_intake_ids: vec![],
        consent_possible_from: None,
        sealed: None,
    }
}

fn opened_case(id: Uuid) -> CaseState {
    let Routing::Open(mut opened) = route_intake(&recorded(None), Uuid::from_u128(1), None) else {
        panic!()
    };
    opened.case_id = id;
    apply(None, &CaseEvent::Opened(opened)).unwrap()
}

#[test]
fn given_a_new_report_when_routed_then_a_case_opens_with_an_id_derived_from_the_intake() {
    let Routing::Open(opened) = route_intake(&recorded(None), Uuid::from_u128(1), None) else {
        panic!()
    };
    assert_eq!(opened.case_id, case_id_for_intake(Uuid::from_u128(42)));
    assert_eq!(
        opened.case_id,
        case_id_for_intake(Uuid::from_u128(42)),
        "same intake, same case, always"
    );
    assert_ne!(opened.case_id, case_id_for_intake(Uuid::from_u128(43)));
    assert_eq!(opened.incident_unit_id, "u1");
    assert_eq!(opened.residence_unit_id.as_deref(), Some("u2"));
    assert_eq!(opened.police_case_number.as_deref(), Some("BB-1"));
    assert_eq!(
        opened.possible_duplicate_case_ids,
        [Uuid::from_u128(9)],
        "flagged, not merged"
    );
    assert_eq!(opened.follow_up_case_not_found, None);
    let state = apply(None, &CaseEvent::Opened(opened)).unwrap();
    assert_eq!(state.intake_ids, [Uuid::from_u128(42)]);
    assert!(state.immediate_danger);
}

#[test]
fn given_a_follow_up_naming_an_open_case_when_routed_then_attached_to_it() {
    let case = opened_case(Uuid::from_u128(5));
    let mut follow_up = recorded(Some(case.case_id));
    follow_up.intake_id = Uuid::from_u128(43);
    let routing = route_intake(&follow_up, Uuid::from_u128(2), Some((&case, 1)));
    let Routing::Attach {
        case_id,
        version,
        event,
    } = routing
    else {
        panic!("{routing:?}")
    };
    assert_eq!((case_id, version), (case.case_id, 1));
    let state = apply(Some(case), &CaseEvent::Attached(event)).unwrap();
    assert_eq!(state.intake_ids, [Uuid::from_u128(42), Uuid::from_u128(43)]);
    assert_eq!(
        state.police_case_numbers,
        ["BB-1"],
        "the same police case is not listed twice"
    );
}

#[test]
fn given_a_follow_up_already_attached_when_redelivered_then_nothing_to_do() {
    let mut case = opened_case(Uuid::from_u128(5));
    case.intake_ids = vec![Uuid::from_u128(7), Uuid::from_u128(42)];
    let routing = route_intake(
        &recorded(Some(case.case_id)),
        Uuid::from_u128(2),
        Some((&case, 2)),
    );
    assert_eq!(
        routing,
        Routing::AlreadyIn {
            case_id: case.case_id
        }
    );
}

#[test]
fn given_a_follow_up_naming_an_unknown_case_when_routed_then_a_new_case_says_so() {
    let missing = Uuid::from_u128(77);
    let Routing::Open(opened) = route_intake(&recorded(Some(missing)), Uuid::from_u128(1), None)
    else {
        panic!()
    };
    assert_eq!(opened.follow_up_case_not_found, Some(missing));
}

#[test]
fn case_events_decode_by_their_stored_names() {
    let Routing::Open(opened) = route_intake(&recorded(None), Uuid::from_u128(1), None) else {
        panic!()
    };
    let json = serde_json::to_string(&opened).unwrap();
    assert_eq!(
        CaseEvent::decode(CASE_OPENED, SCHEMA_VERSION, &json).unwrap(),
        CaseEvent::Opened(opened)
    );
    assert_eq!(
        CaseEvent::decode("CaseMerged", SCHEMA_VERSION, &json).unwrap_err(),
        crate::event::DecodeError::UnknownType("CaseMerged".into())
    );
    assert!(matches!(
        CaseEvent::decode(CASE_OPENED, 7, &json).unwrap_err(),
        crate::event::DecodeError::UnknownVersion { version: 7, .. }
    ));
}

#[test]
fn given_events_since_an_officers_version_then_only_bookkeeping_lets_her_step_be_decided_again() {
    use crate::case::procedure::{DeadlineKind, DeadlineWarned, NoteAdded, OfficerAssigned};
    let step = |name: &str| {
        CaseEvent::ReferralStepRecorded(ReferralStepRecorded {
            referral_id: Uuid::nil(),
            step: name.into(),
            by: "ca-301".into(),
            agency_id: "vn:31135/cong-an".into(),
            detail: "{}".into(),
            referral_event_id: Uuid::nil(),
            at_ms: None,
            to_agency_id: None,
        })
    };
    let warned = CaseEvent::DeadlineWarned(DeadlineWarned {
        id: None,
        kind: DeadlineKind::Emergency,
        due_at_ms: 0,
    });
    let note = CaseEvent::NoteAdded(NoteAdded {
        text: "đã gọi".into(),
    });
    for event in [
        warned,
        note,
        step("ReferralAcknowledged"),
        step("ReferralEscalated"),
    ] {
        assert!(event.is_bookkeeping(), "{event:?}");
    }
    let assigned = CaseEvent::OfficerAssigned(OfficerAssigned {
        officer_id: "cb-2".into(),
        previous_officer_id: None,
    });
    for event in [assigned, step("ReferralAccepted"), step("ReferralRevoked")] {
        assert!(!event.is_bookkeeping(), "{event:?}");
    }
}

#[test]
fn given_a_police_notification_when_the_police_received_it_earlier_then_the_12_hour_clock_runs_from_then()
 {
    let mut police = recorded(None);
    if let Report::Police {
        police_received_at_ms,
        ..
    } = &mut police.report
    {
        *police_received_at_ms = Some(400);
    }
    let Routing::Open(opened) = route_intake(&police, Uuid::from_u128(1), None) else {
        panic!()
    };
    assert_eq!(opened.received_at_ms, 1_000);
    assert_eq!(opened.clock_start_ms, Some(400));
    let calendar =
        crate::calendar::Calendar::parse(include_str!("../../../../deploy/calendar/vietnam.json"))
            .unwrap();
    let ctx = crate::case::procedure::Context {
        now_ms: 1_000,
        calendar: &calendar,
        warn_share: 0.75,
    };
    let events = crate::case::procedure::opening_events(opened, &ctx);
    let emergency = events
        .iter()
        .find_map(|e| match e {
            CaseEvent::DeadlineSet(d) if d.kind == crate::case::DeadlineKind::Emergency => Some(d),
            _ => None,
        })
        .unwrap();
    assert_eq!(emergency.start_ms, 400);
    assert_eq!(emergency.due_at_ms, 400 + 12 * 3_600_000);
    // Without the police's time, the clock runs from the receipt.
    let Routing::Open(plain) = route_intake(&recorded(None), Uuid::from_u128(1), None) else {
        panic!()
    };
    assert_eq!(plain.clock_start_ms, None);
}

#[test]
fn given_a_case_as_an_aggregate_then_its_stream_starts_with_the_opening_and_its_events_carry_the_intake()
 {
    use crate::event::Aggregate;
    let Routing::Open(opened) = route_intake(&recorded(None), Uuid::from_u128(1), None) else {
        panic!()
    };
    let first = CaseEvent::Opened(opened);
    assert_eq!(first.event_type(), <CaseState as Aggregate>::FIRST_EVENT);
    let state = <CaseState as Aggregate>::apply(None, &first).unwrap();
    assert_eq!(state.correlation_id(), Uuid::from_u128(42).to_string());
    assert_eq!(Aggregate::case_id(&state), state.case_id);
    let note = CaseEvent::decode("NoteAdded", SCHEMA_VERSION, r#"{"text":"gọi lại"}"#).unwrap();
    assert!(<CaseState as Aggregate>::is_bookkeeping(&note));
    assert!(!<CaseState as Aggregate>::is_bookkeeping(&first));
}
