//! Given/when/then tests of referrals.

use super::*;

fn request(identifying: bool) -> ReferralRequest {
    ReferralRequest {
        kind: ReferralKind::Refer {
            service: Service::PoliceInvestigation,
        },
        to_agency_id: "vn:31135/cong-an".into(),
        reason: "dấu hiệu tội phạm dâm ô".into(),
        urgency: Urgency::Urgent,
        sharing: Sharing {
            identifying,
            child_consent: false,
            guardian_consent: false,
            legal_basis: None,
            informant: false,
        },
    }
}

#[test]
fn given_the_informant_shared_without_the_childs_identity_then_refused_naming_the_field() {
    let mut r = request(false);
    r.sharing.informant = true;
    let Err(RequestRefusal::Invalid(v)) = check_request(&r, 9) else {
        panic!("accepted");
    };
    assert_eq!(v.0[0].field, "shares_informant");
    let mut r = request(true);
    r.sharing.informant = true;
    r.sharing.legal_basis = Some(LegalBasis::CriminalInvestigation);
    assert_eq!(check_request(&r, 9), Ok(()));
}

#[test]
fn given_an_unknown_completion_time_then_a_completed_referral_grants_nothing() {
    assert!(!grants_access(Status::Completed, None, 0));
    assert!(grants_access(Status::Offered, None, i64::MAX));
    assert_eq!(status_after("ReferralEscalated"), None);
    assert_eq!(status_after("ReferralRevoked"), Some(Status::Revoked));
}

fn offered() -> ReferralState {
    apply(
        None,
        &ReferralEvent::Offered {
            referral_id: Uuid::from_u128(1),
            case_id: Uuid::from_u128(2),
            from_unit_id: "vn:31135".into(),
            to_agency_id: "vn:31135/cong-an".into(),
            request: request(false),
            ack_due_at_ms: 1_000 + URGENT_ACK_MS,
            supervisor_agency_id: Some("vn:92/cong-an".into()),
        },
    )
    .unwrap()
}

fn step(state: ReferralState, command: Command) -> Result<ReferralState, Refusal> {
    let event = decide(&state, command, "ca-301")?;
    Ok(apply(Some(state), &event).unwrap())
}

fn rule(result: Result<ReferralState, Refusal>) -> String {
    match result {
        Err(Refusal::NotAllowed(rule)) => rule,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn given_identifying_information_without_consent_or_legal_basis_then_the_request_is_refused() {
    let refused = check_request(&request(true), 9).unwrap_err();
    let RequestRefusal::NoConsent(rule) = refused else {
        panic!()
    };
    assert!(rule.contains("the child, who is 7 or older"), "{rule}");
    // The guardian alone is not enough from age 7, enough below it.
    let mut r = request(true);
    r.sharing.guardian_consent = true;
    assert!(check_request(&r, 9).is_err());
    assert!(check_request(&r, 6).is_ok());
    r.sharing.child_consent = true;
    assert!(check_request(&r, 9).is_ok());
    // A legal basis allows it without consent; sharing nothing needs none.
    let mut r = request(true);
    r.sharing.legal_basis = Some(LegalBasis::CriminalInvestigation);
    assert!(check_request(&r, 12).is_ok());
    assert!(check_request(&request(false), 12).is_ok());
}

#[test]
fn given_a_request_without_a_reason_or_target_then_every_field_is_named() {
    let mut r = request(false);
    r.reason = " ".into();
    r.to_agency_id = String::new();
    let RequestRefusal::Invalid(v) = check_request(&r, 9).unwrap_err() else {
        panic!()
    };
    assert_eq!(
        v.0.iter().map(|x| x.field.as_str()).collect::<Vec<_>>(),
        ["to_agency_id", "reason"]
    );
}

#[test]
fn the_police_flow_from_offer_to_completion() {
    let s = offered();
    assert_eq!(
        rule(step(s.clone(), Command::Accept)),
        "acknowledge the referral before accepting it"
    );
    let s = step(s, Command::Acknowledge).unwrap();
    assert_eq!(
        rule(step(s.clone(), Command::Complete)),
        "report the outcome before completing the referral"
    );
    let s = step(s, Command::Accept).unwrap();
    assert_eq!(
        rule(step(s.clone(), Command::Revoke { reason: "x".into() })),
        "a referral can be revoked only before it is accepted"
    );
    let s = step(
        s,
        Command::ReportOutcome {
            outcome: "đã khởi tố vụ án".into(),
            reference: "VA-2026/77".into(),
        },
    )
    .unwrap();
    let s = step(s, Command::Complete).unwrap();
    assert_eq!(s.status, Status::Completed);
    assert_eq!(
        rule(step(s, Command::Acknowledge)),
        "only a referral still offered can be acknowledged"
    );
}

#[test]
fn given_a_decline_without_a_reason_then_refused_and_with_one_it_returns_to_the_requester() {
    let s = step(offered(), Command::Acknowledge).unwrap();
    assert!(matches!(
        step(
            s.clone(),
            Command::Decline {
                reason: "  ".into()
            }
        ),
        Err(Refusal::Invalid(_))
    ));
    let s = step(
        s,
        Command::Decline {
            reason: "không thuộc thẩm quyền".into(),
        },
    )
    .unwrap();
    assert_eq!(s.status, Status::Declined);
    assert_eq!(
        rule(step(s, Command::Accept)),
        "only an acknowledged referral can be accepted"
    );
}

#[test]
fn given_an_unacknowledged_urgent_referral_then_one_escalation_after_two_hours() {
    let s = offered();
    assert_eq!(due_escalation(&s, 1_000 + URGENT_ACK_MS - 1), None);
    let escalation = due_escalation(&s, 1_000 + URGENT_ACK_MS).unwrap();
    let s = apply(Some(s), &escalation).unwrap();
    assert_eq!(due_escalation(&s, i64::MAX), None, "once");
    let acknowledged = step(offered(), Command::Acknowledge).unwrap();
    assert_eq!(
        due_escalation(&acknowledged, i64::MAX),
        None,
        "acknowledged in time: nothing to escalate"
    );
}

#[test]
fn a_normal_referral_has_one_working_day() {
    let calendar =
        Calendar::parse(include_str!("../../../../deploy/calendar/vietnam.json")).unwrap();
    // Friday 2026-11-27 17:00 in Vietnam → end of Monday 30 November.
    let friday = 1_795_705_200_000 + 19 * 3_600_000;
    assert_eq!(
        crate::calendar::describe(ack_due(Urgency::Normal, friday, &calendar)),
        "2026-12-01 00:00 (UTC+7)"
    );
    assert_eq!(
        ack_due(Urgency::Urgent, friday, &calendar),
        friday + URGENT_ACK_MS
    );
}

#[test]
fn referral_events_round_trip_through_their_stored_json() {
    let event = ReferralEvent::Declined {
        by: "ca-1".into(),
        reason: "r".into(),
        case_id: Some(Uuid::from_u128(2)),
    };
    assert_eq!(event.case_id(), Some(Uuid::from_u128(2)));
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(serde_json::from_str::<ReferralEvent>(&json).unwrap(), event);
    assert_eq!(event.event_type(), "ReferralDeclined");
}

#[test]
fn given_a_referral_as_an_aggregate_then_its_stream_starts_with_the_offer_and_its_events_carry_the_case()
 {
    use crate::event::Aggregate;
    let state = offered();
    assert_eq!(ReferralState::FIRST_EVENT, "ReferralOffered");
    assert_eq!(state.correlation_id(), Uuid::from_u128(2).to_string());
    assert_eq!(Aggregate::case_id(&state), Uuid::from_u128(2));
    let acknowledged = decide(&state, Command::Acknowledge, "u1").unwrap();
    assert!(!ReferralState::is_bookkeeping(&acknowledged));
}
