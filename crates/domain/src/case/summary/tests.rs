//! The summary agrees with the state: on every procedure test's events
//! (through [`fold_both`]) and on random event sequences, including events
//! out of order and naming deadlines and referrals that do not exist. A
//! summary's lists hold no spare capacity (a read model keeps one summary
//! per case).

use proptest::prelude::*;
use uuid::Uuid;

use super::CaseSummary;
use crate::case::procedure::{
    CaseClosed, CaseReopened, DeadlineCleared, DeadlineKind, DeadlineMet, DeadlineMissed,
    DeadlineSet, DeadlineWarned, NoteAdded, OfficerAssigned, PlanSentBack,
};
use crate::case::{
    CaseEvent, CaseState, IntakeAttached, ReferralRequested, ReferralStepRecorded, apply,
};
use crate::intake::{Channel, Concerns};
use crate::referral::{ReferralKind, Service};

/// Folds `events` into the state and into the summary, and checks after
/// each event that the summary is the state's.
pub(crate) fn fold_both(events: &[CaseEvent]) -> Option<CaseState> {
    let mut state = None;
    let mut summary = None;
    for (i, event) in events.iter().enumerate() {
        state = apply(state, event);
        summary = CaseSummary::apply(summary, event);
        assert_eq!(
            summary,
            state.as_ref().map(CaseSummary::of),
            "after event {i} ({})",
            event.event_type()
        );
        // Kept for every case: no spare room in its lists.
        if let Some(summary) = &summary {
            assert_eq!(summary.deadlines.capacity(), summary.deadlines.len());
            assert_eq!(summary.referrals.capacity(), summary.referrals.len());
        }
    }
    state
}

const KINDS: [DeadlineKind; 3] = [
    DeadlineKind::Emergency,
    DeadlineKind::PlanDrafted,
    DeadlineKind::PlanApproved,
];
const STEPS: [&str; 9] = [
    "ReferralOffered",
    "ReferralAcknowledged",
    "ReferralAccepted",
    "ReferralDeclined",
    "ReferralEscalated",
    "ReferralOutcomeReported",
    "ReferralCompleted",
    "ReferralRevoked",
    "ReferralUnknown",
];

const REFER: ReferralKind = ReferralKind::Refer {
    service: Service::PoliceInvestigation,
};

fn request(kind: ReferralKind) -> crate::referral::ReferralRequest {
    crate::case::procedure::tests::referral_request(kind, false, false)
}

/// An occurrence id from a small set, so that events name the same
/// deadlines; `None` as events written before occurrences existed.
fn deadline_id() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        (0usize..3, 1u32..3).prop_map(|(k, n)| crate::case::procedure::deadline_id(KINDS[k], n)),
    )
}

fn kind() -> impl Strategy<Value = DeadlineKind> {
    (0usize..3).prop_map(|k| KINDS[k])
}

/// Any event after the opening one.
fn event() -> impl Strategy<Value = CaseEvent> {
    prop_oneof![
        any::<bool>().prop_map(|immediate_danger| CaseEvent::Attached(IntakeAttached {
            intake_id: Uuid::from_u128(9),
            intake_event_id: Uuid::from_u128(10),
            channel: Channel::Phone,
            received_at_ms: 0,
            concerns: Concerns::default(),
            immediate_danger,
            caregiver_is_alleged_abuser: false,
            police_case_number: None,
            clock_start_ms: None,
        })),
        (0u8..3).prop_map(|n| CaseEvent::OfficerAssigned(OfficerAssigned {
            officer_id: format!("cb-{n}"),
            previous_officer_id: None,
        })),
        (deadline_id(), kind(), 0i64..100, 0i64..100).prop_map(|(id, kind, start, due)| {
            CaseEvent::DeadlineSet(DeadlineSet {
                id,
                kind,
                start_ms: start,
                due_at_ms: start + due,
                warn_at_ms: start + due / 2,
            })
        }),
        (deadline_id(), kind(), any::<bool>()).prop_map(|(id, kind, late)| {
            CaseEvent::DeadlineMet(DeadlineMet { id, kind, late })
        }),
        (deadline_id(), kind()).prop_map(|(id, kind)| {
            CaseEvent::DeadlineCleared(DeadlineCleared {
                id,
                kind,
                reason: String::new(),
            })
        }),
        (deadline_id(), kind()).prop_map(|(id, kind)| {
            CaseEvent::DeadlineWarned(DeadlineWarned {
                id,
                kind,
                due_at_ms: 0,
            })
        }),
        (deadline_id(), kind()).prop_map(|(id, kind)| {
            CaseEvent::DeadlineMissed(DeadlineMissed {
                id,
                kind,
                due_at_ms: 0,
            })
        }),
        (0u128..3, prop::option::of(0u8..2)).prop_map(|(referral, transfer)| {
            let request = request(transfer.map_or(REFER, |n| ReferralKind::Transfer {
                to_unit_id: format!("vn:3118{n}"),
            }));
            CaseEvent::ReferralRequested(ReferralRequested {
                referral_id: Uuid::from_u128(referral),
                from_unit_id: "vn:31135".into(),
                request,
            })
        }),
        (
            0u128..3,
            0usize..STEPS.len(),
            prop::option::of(0i64..100),
            prop::option::of(0u8..2)
        )
            .prop_map(|(referral, step, at_ms, to)| {
                CaseEvent::ReferralStepRecorded(ReferralStepRecorded {
                    referral_id: Uuid::from_u128(referral),
                    step: STEPS[step].into(),
                    by: "ca-301".into(),
                    agency_id: "vn:31135/cong-an".into(),
                    detail: String::new(),
                    referral_event_id: Uuid::from_u128(11),
                    at_ms,
                    to_agency_id: to.map(|n| format!("agency-{n}")),
                })
            }),
        Just(CaseEvent::Closed(CaseClosed {
            reason: String::new(),
            grounds: None,
            decision_ref: None,
        })),
        Just(CaseEvent::Reopened(CaseReopened {
            reason: String::new(),
        })),
        Just(CaseEvent::PlanSentBack(PlanSentBack {
            plan_no: 1,
            reason: String::new(),
        })),
        Just(CaseEvent::NoteAdded(NoteAdded {
            text: "ghi chú".into(),
        })),
    ]
}

proptest! {
    /// Given any events after an opening, when folded into the state and
    /// into the summary, then the summary is the state's after each one.
    #[test]
    fn given_any_events_when_folded_then_the_summary_is_the_states(
        danger in any::<bool>(),
        events in prop::collection::vec(event(), 0..40),
    ) {
        let opened = CaseEvent::Opened(crate::case::procedure::tests::opened(danger));
        let all: Vec<CaseEvent> = std::iter::once(opened).chain(events).collect();
        prop_assert!(fold_both(&all).is_some());
    }
}

/// Given no opening event, when anything is folded, then there is neither
/// a state nor a summary.
#[test]
fn given_no_opening_when_folded_then_there_is_no_summary() {
    let note = CaseEvent::NoteAdded(NoteAdded { text: "x".into() });
    assert_eq!(fold_both(std::slice::from_ref(&note)), None);
    assert_eq!(CaseSummary::apply(None, &note), None);
}

/// Given an accepted transfer, then the summary names the new commune
/// responsible and still names where it happened.
#[test]
fn given_a_transfer_accepted_then_the_summary_names_the_new_commune() {
    let request = request(ReferralKind::Transfer {
        to_unit_id: "vn:31186".into(),
    });
    let step = |name: &str| {
        CaseEvent::ReferralStepRecorded(ReferralStepRecorded {
            referral_id: Uuid::from_u128(77),
            step: name.into(),
            by: "cb-cai-rang".into(),
            agency_id: "vn:31186".into(),
            detail: String::new(),
            referral_event_id: Uuid::from_u128(78),
            at_ms: Some(5),
            to_agency_id: None,
        })
    };
    let events = [
        CaseEvent::Opened(crate::case::procedure::tests::opened(false)),
        CaseEvent::ReferralRequested(ReferralRequested {
            referral_id: Uuid::from_u128(77),
            from_unit_id: "vn:31135".into(),
            request,
        }),
        step("ReferralOffered"),
        step("ReferralAccepted"),
    ];
    let summary = events.iter().fold(None, CaseSummary::apply).unwrap();
    assert_eq!(summary.responsible_unit_id, "vn:31186");
    assert_eq!(summary.incident_unit_id, "vn:31135");
    assert_eq!(
        fold_both(&events).map(|s| s.responsible_unit_id),
        Some("vn:31186".into())
    );
}
