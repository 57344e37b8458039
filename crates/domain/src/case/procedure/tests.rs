//! Given/when/then tests of the procedure: given these events, when this
//! command, then these events or this refusal.

use ::time::macros::date;
use uuid::Uuid;

use super::*;
use crate::case::{CaseEvent, CaseOpened};
use crate::intake::{AbuseType, Channel, Concerns};

/// Thursday 2026-11-26 22:00 in Vietnam.
const RECEIVED: i64 = 1_795_705_200_000;

fn calendar() -> Calendar {
    Calendar::parse(include_str!("../../../../../deploy/calendar/vietnam.json")).unwrap()
}

pub(crate) fn opened(immediate_danger: bool) -> CaseOpened {
    CaseOpened {
        case_id: Uuid::from_u128(1),
        intake_id: Uuid::from_u128(2),
        intake_event_id: Uuid::from_u128(3),
        channel: Channel::Phone,
        received_at_ms: RECEIVED,
        incident_unit_id: "vn:31135".into(),
        residence_unit_id: None,
        concerns: Concerns::default(),
        immediate_danger,
        caregiver_is_alleged_abuser: false,
        outside_child_law: false,
        possible_duplicate_case_ids: vec![],
        police_case_number: None,
        follow_up_case_not_found: None,
        child_age_years: Some(9),
        child_sex: None,
        setting: None,
        clock_start_ms: None,
        responsible_unit_id: None,
        province_id: None,
        report_status: Default::default(),
        consent_possible_from: None,
    }
}

/// The state the events fold to. Every test's events also fold into the
/// summary a read model keeps, which must agree with the state after each
/// event ([`crate::case::summary`]).
fn fold(events: &[CaseEvent]) -> CaseState {
    crate::case::summary::tests::fold_both(events).unwrap()
}

struct Case {
    events: Vec<CaseEvent>,
    calendar: Calendar,
    now_ms: i64,
}

impl Case {
    /// Given a case opened from a report received at RECEIVED.
    fn given(immediate_danger: bool) -> Self {
        let calendar = calendar();
        let events = {
            let ctx = Context {
                now_ms: RECEIVED,
                calendar: &calendar,
                warn_share: 0.75,
            };
            opening_events(opened(immediate_danger), &ctx)
        };
        Self {
            events,
            calendar,
            now_ms: RECEIVED + 60_000,
        }
    }

    fn state(&self) -> CaseState {
        fold(&self.events)
    }

    /// When `command`: the events it produces (also appended) or the refusal.
    fn when(&mut self, command: Command) -> Result<Vec<CaseEvent>, Refusal> {
        let ctx = Context {
            now_ms: self.now_ms,
            calendar: &self.calendar,
            warn_share: 0.75,
        };
        let events = decide(&self.state(), command, &ctx)?;
        self.events.extend(events.clone());
        Ok(events)
    }

    fn ok(&mut self, command: Command) -> Vec<CaseEvent> {
        self.when(command).unwrap()
    }

    fn refused(&mut self, command: Command) -> String {
        match self.when(command) {
            Err(Refusal::NotAllowed(rule)) => rule,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn invalid(&mut self, command: Command) -> Vec<String> {
        match self.when(command) {
            Err(Refusal::Invalid(v)) => v.0.into_iter().map(|x| x.field).collect(),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }
}

fn rate(level: RiskLevel) -> Vec<RiskRating> {
    vec![RiskRating {
        factor: "cha dượng bạo lực".into(),
        level,
    }]
}

fn initial(apply: bool) -> Command {
    Command::RecordInitialAssessment {
        ratings: rate(RiskLevel::High),
        emergency_measures_apply: apply,
        summary: "nguy cơ cao".into(),
        verification: Verification::default(),
    }
}

fn detailed() -> Command {
    Command::RecordDetailedAssessment {
        summary: "đánh giá chi tiết".into(),
        needs: "chăm sóc y tế, tâm lý".into(),
        meeting_participants: vec!["cán bộ xã".into(), "mẹ".into()],
        minutes_ref: "BB-01/2026".into(),
        verification: Verification::default(),
    }
}

fn plan() -> Command {
    Command::DraftPlan {
        measures: vec![PlanMeasure {
            id: "m1".into(),
            description: "tư vấn tâm lý hằng tuần".into(),
            responsible: "Trung tâm Công tác xã hội".into(),
            due_date: date!(2026 - 12 - 31),
        }],
        by: "cb-ninh-kieu-1".into(),
        keep_despite_residence: None,
    }
}

fn approve() -> Command {
    Command::ApprovePlan {
        decision_ref: "QĐ 12/QĐ-UBND".into(),
        by: "chu-tich-ninh-kieu".into(),
    }
}

fn intervention(measure: &str) -> Command {
    Command::RecordIntervention {
        measure_id: measure.into(),
        description: "buổi tư vấn 1".into(),
        date: date!(2026 - 12 - 02),
    }
}

fn review(level: RiskLevel) -> Command {
    Command::RecordReview {
        ratings: rate(level),
        summary: "rà soát".into(),
    }
}

fn kinds(events: &[CaseEvent]) -> Vec<&'static str> {
    events.iter().map(CaseEvent::event_type).collect()
}

#[test]
fn given_a_report_with_immediate_danger_when_opened_then_three_deadlines_run() {
    let case = Case::given(true);
    assert_eq!(
        kinds(&case.events),
        ["CaseOpened", "DeadlineSet", "DeadlineSet", "DeadlineSet"]
    );
    let state = case.state();
    let emergency = &state.deadlines["emergency-1"];
    assert_eq!(
        emergency.due_at_ms,
        RECEIVED + TWELVE_HOURS_MS,
        "12 hours, across midnight"
    );
    assert_eq!(describe(emergency.due_at_ms), "2026-11-27 10:00 (UTC+7)");
    // Thu 26 Nov: Fri 27, Mon 30, Tue 1, Wed 2, Thu 3 → end of Thu 3 Dec; 7 → end of Mon 7 Dec.
    assert_eq!(
        describe(state.deadlines["plan_drafted-1"].due_at_ms),
        "2026-12-04 00:00 (UTC+7)"
    );
    assert_eq!(
        describe(state.deadlines["plan_approved-1"].due_at_ms),
        "2026-12-08 00:00 (UTC+7)"
    );
    assert_eq!(emergency.warn_at_ms, RECEIVED + TWELVE_HOURS_MS * 3 / 4);
}

#[test]
fn given_a_child_of_16_when_opened_then_no_plan_deadlines_but_danger_still_gets_its_12_hours() {
    let calendar = calendar();
    let ctx = Context {
        now_ms: RECEIVED,
        calendar: &calendar,
        warn_share: 0.75,
    };
    let mut older = opened(false);
    older.outside_child_law = true;
    assert_eq!(kinds(&opening_events(older.clone(), &ctx)), ["CaseOpened"]);
    older.immediate_danger = true;
    let events = opening_events(older, &ctx);
    assert_eq!(kinds(&events), ["CaseOpened", "DeadlineSet"]);
    assert!(matches!(
        &events[1],
        CaseEvent::DeadlineSet(DeadlineSet {
            kind: DeadlineKind::Emergency,
            ..
        })
    ));
}

#[test]
fn given_an_open_case_when_a_follow_up_reports_danger_then_a_second_12_hour_clock_runs_from_its_receipt_and_one_measure_meets_both()
 {
    let mut case = Case::given(true);
    let follow_up_at = RECEIVED + 3 * 3_600_000;
    let attached = crate::case::IntakeAttached {
        intake_id: Uuid::from_u128(20),
        intake_event_id: Uuid::from_u128(21),
        channel: Channel::Phone,
        received_at_ms: follow_up_at,
        concerns: Concerns::default(),
        immediate_danger: true,
        caregiver_is_alleged_abuser: false,
        police_case_number: None,
        clock_start_ms: None,
    };
    let ctx = Context {
        now_ms: follow_up_at,
        calendar: &case.calendar,
        warn_share: 0.75,
    };
    let events = attaching_events(&case.state(), attached.clone(), &ctx);
    assert_eq!(kinds(&events), ["IntakeAttached", "DeadlineSet"]);
    case.events.extend(events);
    let state = case.state();
    assert_eq!(
        state.deadlines["emergency-1"].due_at_ms,
        RECEIVED + 12 * 3_600_000
    );
    assert_eq!(state.deadlines["emergency-2"].start_ms, follow_up_at);
    assert_eq!(
        state.deadlines["emergency-2"].due_at_ms,
        follow_up_at + 12 * 3_600_000
    );
    // A follow-up with neither danger nor the caregiver as abuser: no clock.
    let calm = crate::case::IntakeAttached {
        immediate_danger: false,
        intake_id: Uuid::from_u128(22),
        ..attached.clone()
    };
    assert_eq!(
        kinds(&attaching_events(&state, calm, &ctx)),
        ["IntakeAttached"]
    );
    // The caregiver named as the abuser, without "immediate danger": a clock.
    let caregiver = crate::case::IntakeAttached {
        immediate_danger: false,
        caregiver_is_alleged_abuser: true,
        intake_id: Uuid::from_u128(23),
        ..attached
    };
    assert_eq!(
        kinds(&attaching_events(&state, caregiver, &ctx)),
        ["IntakeAttached", "DeadlineSet"]
    );
    // One emergency measure answers both reports.
    case.ok(initial(true));
    let met = case.ok(Command::RecordEmergencyMeasure {
        kind: MeasureKind::SafeShelter,
        description: "đưa trẻ đến nơi an toàn".into(),
        decision_ref: "QĐ-1".into(),
        separation: None,
        grounds: MeasureGrounds::AssessedDanger,
    });
    assert_eq!(
        kinds(&met),
        ["EmergencyMeasureRecorded", "DeadlineMet", "DeadlineMet"]
    );
    assert!(
        case.state()
            .deadlines
            .values()
            .filter(|d| d.kind == DeadlineKind::Emergency)
            .all(|d| d.state == DeadlineState::Met)
    );
}

#[test]
fn given_a_closed_case_when_reopened_then_a_new_12_hour_clock_runs_from_the_reopening() {
    let mut case = Case::given(false);
    case.ok(initial(false));
    case.ok(detailed());
    case.ok(plan());
    case.ok(approve());
    case.ok(review(RiskLevel::Low));
    case.ok(Command::Close {
        reason: "hết nguy cơ".into(),
        grounds: CloseGrounds::NoRiskAfterReview,
        decision_ref: "QĐ-30/UBND".into(),
    });
    case.now_ms = RECEIVED + 90 * 24 * 3_600_000;
    let events = case.ok(Command::Reopen {
        reason: "tái diễn bạo lực".into(),
    });
    assert_eq!(kinds(&events), ["CaseReopened", "DeadlineSet"]);
    let state = case.state();
    let clock = state
        .deadlines
        .values()
        .find(|d| d.kind == DeadlineKind::Emergency && d.state == DeadlineState::Open)
        .unwrap();
    assert_eq!(clock.start_ms, case.now_ms);
    // Not missed at once: it runs 12 hours from the reopening.
    assert!(due_deadline_events(&state, case.now_ms + 60_000).is_empty());
}

#[test]
fn the_whole_procedure_with_a_plan_sent_back_and_a_new_plan_after_review() {
    let mut case = Case::given(true);
    case.ok(Command::Assign {
        officer_id: "cb-ninh-kieu-1".into(),
    });
    assert_eq!(
        kinds(&case.ok(initial(true))),
        ["InitialAssessmentRecorded"]
    );
    let measure = Command::RecordEmergencyMeasure {
        kind: MeasureKind::SafeShelter,
        description: "đưa cháu đến nhà bà ngoại".into(),
        decision_ref: "QĐ 01/QĐ-UBND".into(),
        separation: None,
        grounds: MeasureGrounds::AssessedDanger,
    };
    assert_eq!(
        kinds(&case.ok(measure)),
        ["EmergencyMeasureRecorded", "DeadlineMet"]
    );
    case.ok(detailed());
    assert_eq!(kinds(&case.ok(plan())), ["PlanDrafted", "DeadlineMet"]);
    assert_eq!(
        kinds(&case.ok(Command::SendBackPlan {
            reason: "thiếu biện pháp hỗ trợ học tập".into()
        })),
        ["PlanSentBack"]
    );
    assert_eq!(
        case.refused(intervention("m1")),
        "the plan must be approved before interventions are recorded"
    );
    let second = case.ok(plan());
    assert!(matches!(&second[0], CaseEvent::PlanDrafted(p) if p.plan_no == 2));
    assert_eq!(second.len(), 1, "the plan deadline was already met");
    assert_eq!(kinds(&case.ok(approve())), ["PlanApproved", "DeadlineMet"]);
    case.ok(intervention("m1"));
    case.ok(review(RiskLevel::Medium));
    assert_eq!(
        case.refused(Command::Close {
            reason: "xong".into(),
            grounds: CloseGrounds::NoRiskAfterReview,
            decision_ref: "QĐ-30/UBND".into(),
        }),
        "a case closes for no risk remaining only after a review (Mẫu 06) that found none; otherwise draft a new plan"
    );
    let third = case.ok(plan());
    assert!(matches!(&third[0], CaseEvent::PlanDrafted(p) if p.plan_no == 3));
    case.ok(approve());
    case.ok(review(RiskLevel::Low));
    assert_eq!(
        kinds(&case.ok(Command::Close {
            reason: "không còn nguy cơ".into(),
            grounds: CloseGrounds::NoRiskAfterReview,
            decision_ref: "QĐ-30/UBND".into(),
        })),
        ["CaseClosed"]
    );
    assert_eq!(case.state().status, CaseStatus::Closed);
    assert_eq!(case.state().officer_id.as_deref(), Some("cb-ninh-kieu-1"));
}

#[test]
fn given_a_new_case_when_steps_come_out_of_order_then_each_is_refused_naming_the_rule() {
    let mut case = Case::given(false);
    assert!(
        case.refused(detailed())
            .contains("follows the initial assessment")
    );
    assert!(
        case.refused(plan())
            .contains("a plan (Mẫu 04) is drafted after the detailed assessment")
    );
    assert!(
        case.refused(approve())
            .contains("awaiting the commune chair")
    );
    assert!(
        case.refused(Command::SendBackPlan { reason: "x".into() })
            .contains("awaiting the commune chair")
    );
    assert!(
        case.refused(review(RiskLevel::Low))
            .contains("follows an approved plan")
    );
    assert!(
        case.refused(Command::Reopen { reason: "x".into() })
            .contains("only a closed case")
    );
    case.ok(initial(false));
    // A second Mẫu 02 is a reassessment, allowed (it does not move the
    // case back).
    let again = case.ok(initial(false));
    assert!(matches!(
        &again[0],
        CaseEvent::InitialAssessmentRecorded(a) if a.reassessment
    ));
    assert_eq!(case.state().phase, Phase::InitiallyAssessed);
    let measure = Command::RecordEmergencyMeasure {
        kind: MeasureKind::MedicalCare,
        description: "khám".into(),
        decision_ref: "QĐ 2".into(),
        separation: None,
        grounds: MeasureGrounds::AssessedDanger,
    };
    assert!(case.refused(measure).contains("found they apply"));
}

#[test]
fn given_bad_input_then_every_bad_field_is_named() {
    let mut case = Case::given(true);
    case.ok(initial(true));
    let fields = case.invalid(Command::RecordEmergencyMeasure {
        kind: MeasureKind::TemporarySeparation,
        description: " ".into(),
        decision_ref: String::new(),
        separation: Some(Separation {
            start_date: date!(2026 - 11 - 27),
            end_date: date!(2026 - 12 - 20),
            extension_decision_ref: None,
        }),
        grounds: MeasureGrounds::AssessedDanger,
    });
    assert_eq!(
        fields,
        ["description", "decision_ref", "separation.end_date"]
    );
    assert_eq!(
        case.invalid(Command::AddNote {
            text: String::new()
        }),
        ["text"]
    );
    case.ok(detailed());
    let twice = Command::DraftPlan {
        measures: vec![
            PlanMeasure {
                id: "m1".into(),
                description: "a".into(),
                responsible: "b".into(),
                due_date: date!(2026 - 12 - 01),
            },
            PlanMeasure {
                id: "m1".into(),
                description: "c".into(),
                responsible: " ".into(),
                due_date: date!(2026 - 12 - 01),
            },
        ],
        by: String::new(),
        keep_despite_residence: None,
    };
    assert_eq!(
        case.invalid(twice),
        ["measures[1].responsible", "measures[1].id"]
    );
    case.ok(plan());
    case.ok(approve());
    assert_eq!(case.invalid(intervention("m9")), ["measure_id"]);
}

#[test]
fn given_a_temporary_separation_then_15_days_unless_an_extension_is_named() {
    let mut case = Case::given(true);
    case.ok(initial(true));
    let separation = |end, extension: Option<&str>| Command::RecordEmergencyMeasure {
        kind: MeasureKind::TemporarySeparation,
        description: "tạm thời cách ly khỏi cha dượng".into(),
        decision_ref: "QĐ 03/QĐ-UBND (Mẫu 07)".into(),
        separation: Some(Separation {
            start_date: date!(2026 - 11 - 27),
            end_date: end,
            extension_decision_ref: extension.map(str::to_owned),
        }),
        grounds: MeasureGrounds::AssessedDanger,
    };
    // 27 Nov to 11 Dec inclusive is 15 days: allowed.
    assert_eq!(
        kinds(&case.ok(separation(date!(2026 - 12 - 11), None))),
        ["EmergencyMeasureRecorded", "DeadlineMet"]
    );
    assert_eq!(
        case.invalid(separation(date!(2026 - 12 - 12), None)),
        ["separation.end_date"]
    );
    assert_eq!(
        kinds(&case.ok(separation(date!(2026 - 12 - 20), Some("QĐ gia hạn 5/2026")))),
        ["EmergencyMeasureRecorded"]
    );
}

#[test]
fn given_no_danger_flag_when_mau_02_finds_emergency_measures_apply_then_the_12_hours_start_from_receipt()
 {
    let mut case = Case::given(false);
    assert!(!case.state().deadlines.contains_key("emergency-1"));
    let events = case.ok(initial(true));
    let CaseEvent::DeadlineSet(set) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (set.kind, set.due_at_ms),
        (DeadlineKind::Emergency, RECEIVED + TWELVE_HOURS_MS)
    );
}

#[test]
fn given_danger_flagged_when_mau_02_finds_no_emergency_measure_applies_then_the_emergency_deadline_is_met()
 {
    let mut case = Case::given(true);
    assert_eq!(
        kinds(&case.ok(initial(false))),
        ["InitialAssessmentRecorded", "DeadlineMet"]
    );
    assert_eq!(
        case.state().deadlines["emergency-1"].state,
        DeadlineState::Met
    );
}

#[test]
fn given_the_clock_moves_then_one_warning_and_one_miss_per_deadline() {
    let case = Case::given(true);
    let state = case.state();
    let due = RECEIVED + TWELVE_HOURS_MS;
    assert!(due_deadline_events(&state, RECEIVED + 60_000).is_empty());
    assert_eq!(
        next_deadline_check(&state),
        Some(RECEIVED + TWELVE_HOURS_MS * 3 / 4)
    );

    let warned = due_deadline_events(&state, due - 1);
    assert_eq!(
        warned,
        [CaseEvent::DeadlineWarned(DeadlineWarned {
            id: Some("emergency-1".into()),
            kind: DeadlineKind::Emergency,
            due_at_ms: due
        })]
    );
    let state = fold(&[case.events.clone(), warned].concat());
    assert!(
        due_deadline_events(&state, due - 1).is_empty(),
        "warned once"
    );
    assert_eq!(next_deadline_check(&state), Some(due));

    let missed = due_deadline_events(&state, due);
    assert_eq!(
        missed,
        [CaseEvent::DeadlineMissed(DeadlineMissed {
            id: Some("emergency-1".into()),
            kind: DeadlineKind::Emergency,
            due_at_ms: due
        })]
    );
    let state = fold(&[case.events.clone(), missed.clone()].concat());
    assert!(
        due_deadline_events(&state, due + 3_600_000).is_empty(),
        "missed once, however often the clock ticks"
    );
    // Five working days later both plan deadlines are missed too, once each.
    let later = state.deadlines["plan_approved-1"].due_at_ms;
    assert_eq!(
        kinds(&due_deadline_events(&state, later)),
        ["DeadlineMissed", "DeadlineMissed"]
    );
}

#[test]
fn given_a_missed_deadline_when_the_step_is_done_late_then_it_is_met_late() {
    let mut case = Case::given(true);
    case.events.push(CaseEvent::DeadlineMissed(DeadlineMissed {
        id: Some("emergency-1".into()),
        kind: DeadlineKind::Emergency,
        due_at_ms: RECEIVED + TWELVE_HOURS_MS,
    }));
    case.ok(initial(true));
    let events = case.ok(Command::RecordEmergencyMeasure {
        kind: MeasureKind::MedicalCare,
        description: "khám tại bệnh viện Nhi đồng".into(),
        decision_ref: "QĐ 4".into(),
        separation: None,
        grounds: MeasureGrounds::AssessedDanger,
    });
    assert_eq!(
        events[1],
        CaseEvent::DeadlineMet(DeadlineMet {
            id: Some("emergency-1".into()),
            kind: DeadlineKind::Emergency,
            late: true
        })
    );
}

#[test]
fn given_a_closed_case_then_only_notes_and_reopening_are_allowed() {
    let mut case = Case::given(false);
    case.ok(initial(false));
    case.ok(detailed());
    case.ok(plan());
    case.ok(approve());
    case.ok(review(RiskLevel::Low));
    case.ok(Command::Close {
        reason: "hết nguy cơ".into(),
        grounds: CloseGrounds::NoRiskAfterReview,
        decision_ref: "QĐ-30/UBND".into(),
    });
    assert!(
        case.refused(Command::Assign {
            officer_id: "cb-2".into()
        })
        .contains("reopened")
    );
    case.ok(Command::AddNote {
        text: "mẹ gọi điện cảm ơn".into(),
    });
    assert!(
        due_deadline_events(&case.state(), i64::MAX).is_empty(),
        "closed cases raise no alarms"
    );
    case.ok(Command::Reopen {
        reason: "tái diễn bạo lực".into(),
    });
    assert_eq!(case.state().phase, Phase::AwaitingInitialAssessment);
    case.ok(initial(true));
}

#[test]
fn case_events_round_trip_through_their_stored_names() {
    let mut case = Case::given(true);
    case.ok(initial(true));
    for event in &case.events {
        let back = CaseEvent::decode(
            event.event_type(),
            crate::case::SCHEMA_VERSION,
            &event.payload().to_string(),
        )
        .unwrap();
        assert_eq!(&back, event);
    }
}

#[test]
fn every_refusal_of_the_procedure_names_its_rule() {
    // Given a case at each phase, when a step that phase does not allow,
    // then FAILED_PRECONDITION with the rule.
    let mut case = Case::given(true);
    case.ok(Command::Assign {
        officer_id: "cb-1".into(),
    });
    assert_eq!(
        case.refused(Command::Assign {
            officer_id: "cb-1".into()
        }),
        "the case is already assigned to this officer"
    );
    assert!(
        case.refused(intervention("m1"))
            .contains("the plan must be approved")
    );
    assert!(
        case.refused(Command::Close {
            reason: "x".into(),
            grounds: CloseGrounds::NoRiskAfterReview,
            decision_ref: "QĐ-30/UBND".into()
        })
        .contains("only after a review")
    );
    case.ok(initial(true));
    case.ok(detailed());
    assert!(case.refused(detailed()).contains("once"));
    assert!(
        case.refused(review(RiskLevel::Low))
            .contains("follows an approved plan")
    );
    case.ok(plan());
    assert!(
        case.refused(plan())
            .contains("a plan (Mẫu 04) is drafted after"),
        "no second draft while one awaits the chair"
    );
    case.ok(approve());
    assert!(
        case.refused(approve())
            .contains("awaiting the commune chair")
    );
    assert!(
        case.refused(plan())
            .contains("a plan (Mẫu 04) is drafted after"),
        "no new plan before a review"
    );
    case.ok(review(RiskLevel::Low));
    assert!(
        case.refused(intervention("m1"))
            .contains("the plan must be approved"),
        "the reviewed plan is done"
    );
    case.ok(Command::Close {
        reason: "hết nguy cơ".into(),
        grounds: CloseGrounds::NoRiskAfterReview,
        decision_ref: "QĐ-30/UBND".into(),
    });
    let measure = Command::RecordEmergencyMeasure {
        kind: MeasureKind::MedicalCare,
        description: "khám".into(),
        decision_ref: "QĐ 9".into(),
        separation: None,
        grounds: MeasureGrounds::AssessedDanger,
    };
    assert!(case.refused(measure).contains("reopened"));
    assert!(
        case.refused(initial(true)).contains("reopened"),
        "a closed case is reopened first"
    );
}

#[test]
fn a_separation_field_on_another_measure_or_a_missing_one_is_invalid() {
    let mut case = Case::given(true);
    case.ok(initial(true));
    let dates = Separation {
        start_date: date!(2026 - 11 - 27),
        end_date: date!(2026 - 11 - 30),
        extension_decision_ref: None,
    };
    let on_shelter = Command::RecordEmergencyMeasure {
        kind: MeasureKind::SafeShelter,
        description: "nhà tạm lánh".into(),
        decision_ref: "QĐ 5".into(),
        separation: Some(dates),
        grounds: MeasureGrounds::AssessedDanger,
    };
    assert_eq!(case.invalid(on_shelter), ["separation"]);
    let without = Command::RecordEmergencyMeasure {
        kind: MeasureKind::TemporarySeparation,
        description: "cách ly".into(),
        decision_ref: "QĐ 6".into(),
        separation: None,
        grounds: MeasureGrounds::AssessedDanger,
    };
    assert_eq!(case.invalid(without), ["separation"]);
}

/// A request of `kind` to the Ninh Kiều police, sharing identifying
/// information or not, with the child's and guardian's consent or not.
pub(crate) fn referral_request(
    kind: crate::referral::ReferralKind,
    identifying: bool,
    consent: bool,
) -> crate::referral::ReferralRequest {
    use crate::referral::{ReferralRequest, Sharing, Urgency};
    ReferralRequest {
        kind,
        to_agency_id: "vn:31135/cong-an".into(),
        reason: "dấu hiệu tội phạm".into(),
        urgency: Urgency::Urgent,
        sharing: Sharing {
            identifying,
            child_consent: consent,
            guardian_consent: consent,
            legal_basis: None,
            informant: false,
        },
    }
}

fn referral(kind: crate::referral::ReferralKind, identifying: bool, consent: bool) -> Command {
    Command::RequestReferral {
        referral_id: Uuid::from_u128(77),
        request: referral_request(kind, identifying, consent),
    }
}

#[test]
fn given_no_consent_when_a_referral_would_share_identifying_information_then_refused_and_nothing_recorded()
 {
    use crate::referral::{ReferralKind, Service};
    let mut case = Case::given(false);
    let police = ReferralKind::Refer {
        service: Service::PoliceInvestigation,
    };
    let rule = case.refused(referral(police.clone(), true, false));
    assert!(
        rule.contains("consent of the parent or guardian and of the child"),
        "{rule}"
    );
    assert!(case.state().referrals.is_empty());
    assert_eq!(
        kinds(&case.ok(referral(police, true, true))),
        ["ReferralRequested"]
    );
}

#[test]
fn given_an_accepted_transfer_then_the_case_belongs_to_the_childs_commune() {
    use crate::case::ReferralStepRecorded;
    use crate::referral::ReferralKind;
    let mut case = Case::given(false);
    case.ok(referral(
        ReferralKind::Transfer {
            to_unit_id: "vn:31186".into(),
        },
        false,
        false,
    ));
    assert_eq!(case.state().responsible_unit_id, "vn:31135");
    let step = |name: &str| ReferralStepRecorded {
        referral_id: Uuid::from_u128(77),
        step: name.into(),
        by: "cb-cai-rang".into(),
        agency_id: "vn:31186/ubnd".into(),
        detail: "{}".into(),
        referral_event_id: Uuid::now_v7(),
        at_ms: Some(1_000),
        to_agency_id: None,
    };
    for name in [
        "ReferralOffered",
        "ReferralAcknowledged",
        "ReferralAccepted",
    ] {
        let event = record_referral_step(&case.state(), step(name)).unwrap();
        case.events.push(event);
    }
    assert_eq!(case.state().responsible_unit_id, "vn:31186");
    let mut unknown = step("ReferralAccepted");
    unknown.referral_id = Uuid::from_u128(78);
    assert_eq!(
        record_referral_step(&case.state(), unknown),
        None,
        "a referral this case did not request"
    );
}

#[test]
fn given_a_referral_when_it_is_revoked_declined_or_completed_then_the_agency_reads_the_case_only_while_it_lasts()
 {
    use crate::case::ReferralStepRecorded;
    use crate::referral::{READ_AFTER_COMPLETION_MS, ReferralKind, Service};
    let police = "vn:31135/cong-an";
    let step = |name: &str, at: i64| ReferralStepRecorded {
        referral_id: Uuid::from_u128(77),
        step: name.into(),
        by: "ca-301".into(),
        agency_id: police.into(),
        detail: "{}".into(),
        referral_event_id: Uuid::now_v7(),
        at_ms: Some(at),
        to_agency_id: (name == "ReferralOffered").then(|| "vn:31120/cong-an".into()),
    };
    let lets_read = |case: &Case, agency: &str, now: i64| {
        case.state().referrals[&Uuid::from_u128(77)].lets_read(agency, now)
    };
    let kind = ReferralKind::Refer {
        service: Service::PoliceInvestigation,
    };
    // Given a referral offered (to the successor of the agency asked),
    // acknowledged, accepted and in progress: both may read.
    let mut case = Case::given(false);
    case.ok(referral(kind.clone(), false, false));
    assert!(lets_read(&case, police, 1));
    for name in [
        "ReferralOffered",
        "ReferralAcknowledged",
        "ReferralAccepted",
        "ReferralOutcomeReported",
        "ReferralEscalated",
    ] {
        let event = record_referral_step(&case.state(), step(name, 10)).unwrap();
        case.events.push(event);
        assert!(lets_read(&case, police, 20), "{name}");
        assert!(lets_read(&case, "vn:31120/cong-an", 20), "{name}");
        assert!(!lets_read(&case, "vn:92/so-gd-dt", 20), "{name}");
        assert!(!lets_read(&case, "", 20), "{name}");
    }
    // When completed: for 30 days, then no more.
    let event = record_referral_step(&case.state(), step("ReferralCompleted", 1_000)).unwrap();
    case.events.push(event);
    assert!(lets_read(
        &case,
        police,
        1_000 + READ_AFTER_COMPLETION_MS - 1
    ));
    assert!(!lets_read(&case, police, 1_000 + READ_AFTER_COMPLETION_MS));
    // When revoked or declined: at once.
    for end in ["ReferralRevoked", "ReferralDeclined"] {
        let mut case = Case::given(false);
        case.ok(referral(kind.clone(), false, false));
        let event = record_referral_step(&case.state(), step(end, 10)).unwrap();
        case.events.push(event);
        assert!(!lets_read(&case, police, 11), "{end}");
    }
}

#[test]
fn given_an_assessed_report_found_unfounded_then_it_closes_with_the_chairs_decision_and_without_a_plan()
 {
    let close = |grounds, decision: &str| Command::Close {
        reason: "kiểm tra không có dấu hiệu xâm hại".into(),
        grounds,
        decision_ref: decision.into(),
    };
    // Before Mẫu 02: not yet.
    let mut case = Case::given(false);
    assert!(
        case.refused(close(CloseGrounds::Unfounded, "QĐ-1"))
            .contains("Mẫu 02")
    );
    // After Mẫu 02 finding no emergency: closed as unfounded, open
    // deadlines cleared; the chair's decision is required.
    case.ok(initial(false));
    assert_eq!(
        case.invalid(close(CloseGrounds::Unfounded, "")),
        ["decision_ref"]
    );
    let events = case.ok(close(CloseGrounds::Unfounded, "QĐ-1"));
    assert_eq!(kinds(&events)[0], "CaseClosed");
    assert!(matches!(
        &events[0],
        CaseEvent::Closed(CaseClosed { grounds: Some(CloseGrounds::Unfounded), decision_ref: Some(d), .. }) if d == "QĐ-1"
    ));
    assert_eq!(case.state().status, CaseStatus::Closed);
    assert!(
        case.state()
            .deadlines
            .values()
            .all(|d| d.state != DeadlineState::Open)
    );
    // After Mẫu 03: a child who needs no support.
    let mut case = Case::given(false);
    case.ok(initial(false));
    case.ok(detailed());
    case.ok(close(CloseGrounds::NoSupportNeeded, "QĐ-2"));
    // Not when Mẫu 02 found emergency measures apply.
    let mut case = Case::given(true);
    case.ok(initial(true));
    assert!(
        case.refused(close(CloseGrounds::Unfounded, "QĐ-3"))
            .contains("not unfounded")
    );
    // Not once a plan is drafted: that case ends by review.
    let mut case = Case::given(false);
    case.ok(initial(false));
    case.ok(detailed());
    case.ok(plan());
    assert!(
        case.refused(close(CloseGrounds::NoSupportNeeded, "QĐ-4"))
            .contains("before a plan")
    );
    assert!(
        case.refused(close(CloseGrounds::NoRiskAfterReview, "QĐ-4"))
            .contains("review")
    );
}

#[test]
fn given_a_plan_when_its_drafter_approves_it_then_refused_the_chair_decides() {
    let mut case = Case::given(false);
    case.ok(initial(false));
    case.ok(detailed());
    case.ok(plan());
    let rule = case.refused(Command::ApprovePlan {
        decision_ref: "QĐ 1".into(),
        by: "cb-ninh-kieu-1".into(),
    });
    assert!(rule.contains("cannot approve"), "{rule}");
    case.ok(approve());
}

#[test]
fn given_a_review_finding_risk_then_a_new_plan_runs_against_new_5_and_7_working_days() {
    let mut case = Case::given(false);
    case.ok(initial(false));
    case.ok(detailed());
    case.ok(plan());
    case.ok(approve());
    case.now_ms = RECEIVED + 30 * 24 * 3_600_000;
    let events = case.ok(review(RiskLevel::High));
    assert_eq!(
        kinds(&events),
        ["ReviewRecorded", "DeadlineSet", "DeadlineSet"]
    );
    let state = case.state();
    let second = &state.deadlines["plan_drafted-2"];
    assert_eq!(second.start_ms, case.now_ms);
    assert_eq!(second.state, DeadlineState::Open);
    assert_eq!(state.deadlines["plan_approved-2"].start_ms, case.now_ms);
    // The new plan meets it.
    let met = case.ok(plan());
    assert_eq!(kinds(&met), ["PlanDrafted", "DeadlineMet"]);
}

#[test]
fn given_a_child_living_in_another_commune_when_a_plan_is_drafted_then_the_transfer_is_prompted_or_the_decision_to_keep_it_recorded()
 {
    let calendar = calendar();
    let ctx = Context {
        now_ms: RECEIVED,
        calendar: &calendar,
        warn_share: 0.75,
    };
    let mut elsewhere = opened(false);
    elsewhere.residence_unit_id = Some("vn:31186".into());
    let mut case = Case {
        events: opening_events(elsewhere, &ctx),
        calendar: calendar.clone(),
        now_ms: RECEIVED + 60_000,
    };
    case.ok(initial(false));
    case.ok(detailed());
    let rule = case.refused(plan());
    assert!(
        rule.contains("vn:31186") && rule.contains("Đ52.2"),
        "{rule}"
    );
    let kept = case.ok(Command::DraftPlan {
        measures: vec![PlanMeasure {
            id: "m1".into(),
            description: "tư vấn".into(),
            responsible: "UBND".into(),
            due_date: date!(2026 - 12 - 31),
        }],
        by: "cb-ninh-kieu-1".into(),
        keep_despite_residence: Some("QĐ 7: gia đình tạm trú tại Ninh Kiều".into()),
    });
    assert!(matches!(
        &kept[0],
        CaseEvent::PlanDrafted(p) if p.kept_despite_residence.as_deref() == Some("QĐ 7: gia đình tạm trú tại Ninh Kiều")
    ));
}

#[test]
fn given_a_first_assessment_finding_no_danger_when_the_parents_refuse_the_plan_then_separation_is_allowed_on_the_article_32_ground()
 {
    let mut case = Case::given(false);
    case.ok(initial(false));
    let separate = |grounds| Command::RecordEmergencyMeasure {
        kind: MeasureKind::TemporarySeparation,
        description: "tạm thời cách ly".into(),
        decision_ref: "QĐ 9 (Mẫu 07)".into(),
        separation: Some(Separation {
            start_date: date!(2026 - 11 - 27),
            end_date: date!(2026 - 12 - 05),
            extension_decision_ref: None,
        }),
        grounds,
    };
    // On assessed danger: the assessment found none.
    assert!(
        case.refused(separate(MeasureGrounds::AssessedDanger))
            .contains("Article 32")
    );
    // The parents refuse the plan: allowed (Đ32).
    let events = case.ok(separate(MeasureGrounds::ParentsRefusePlan));
    assert!(matches!(
        &events[0],
        CaseEvent::EmergencyMeasureRecorded(m) if m.grounds == Some(MeasureGrounds::ParentsRefusePlan)
    ));
}

#[test]
fn given_a_case_in_progress_when_the_risk_is_reassessed_then_it_stays_where_it_is_and_new_danger_gets_a_clock_from_now()
 {
    let mut case = Case::given(false);
    case.ok(initial(false));
    case.ok(detailed());
    case.now_ms = RECEIVED + 5 * 24 * 3_600_000;
    let events = case.ok(initial(true));
    assert_eq!(kinds(&events), ["InitialAssessmentRecorded", "DeadlineSet"]);
    assert!(matches!(
        &events[0],
        CaseEvent::InitialAssessmentRecorded(a) if a.reassessment
    ));
    let state = case.state();
    assert_eq!(
        state.phase,
        Phase::DetailedAssessed,
        "a reassessment does not move the case back"
    );
    let clock = state
        .deadlines
        .values()
        .find(|d| d.kind == DeadlineKind::Emergency && d.state == DeadlineState::Open)
        .unwrap();
    assert_eq!(clock.start_ms, case.now_ms);
    // Measures on the assessed danger are now allowed.
    case.ok(Command::RecordEmergencyMeasure {
        kind: MeasureKind::SafeShelter,
        description: "nơi an toàn".into(),
        decision_ref: "QĐ 10".into(),
        separation: None,
        grounds: MeasureGrounds::AssessedDanger,
    });
}

#[test]
fn given_assessments_when_they_verify_forms_of_abuse_then_the_case_keeps_the_latest_finding_per_form()
 {
    let mut case = Case::given(false);
    let verified = |confirmed: Vec<AbuseType>, not_confirmed: Vec<AbuseType>| Verification {
        confirmed,
        not_confirmed,
    };
    // A form cannot be both.
    let mut both = initial(false);
    if let Command::RecordInitialAssessment { verification, .. } = &mut both {
        *verification = verified(vec![AbuseType::Violence], vec![AbuseType::Violence]);
    }
    assert_eq!(case.invalid(both), ["unconfirmed_abuse_types"]);
    let mut first = initial(false);
    if let Command::RecordInitialAssessment { verification, .. } = &mut first {
        *verification = verified(vec![AbuseType::Violence], vec![AbuseType::Neglect]);
    }
    let events = case.ok(first);
    assert!(matches!(
        &events[0],
        CaseEvent::InitialAssessmentRecorded(a) if a.verification.confirmed == [AbuseType::Violence]
    ));
    let mut then = detailed();
    if let Command::RecordDetailedAssessment { verification, .. } = &mut then {
        *verification = verified(vec![AbuseType::Neglect], vec![AbuseType::Violence]);
    }
    case.ok(then);
    let state = case.state();
    assert_eq!(state.verification.confirmed, [AbuseType::Neglect]);
    assert_eq!(state.verification.not_confirmed, [AbuseType::Violence]);
}

#[test]
fn given_a_child_of_6_who_may_be_7_by_the_referral_then_her_own_consent_is_needed_from_that_month()
{
    use crate::referral::{ReferralKind, Service};
    // Reported at 6 (born in March 2020, say): she may be 7 from March 2027.
    let mut opened = opened(false);
    opened.child_age_years = Some(6);
    opened.consent_possible_from = Some(date!(2027 - 03 - 01));
    let calendar = calendar();
    let ctx = Context {
        now_ms: RECEIVED,
        calendar: &calendar,
        warn_share: 0.75,
    };
    let events = opening_events(opened, &ctx);
    let police = ReferralKind::Refer {
        service: Service::PoliceInvestigation,
    };
    let only_guardian = |mut command: Command| {
        if let Command::RequestReferral { request, .. } = &mut command {
            request.sharing.child_consent = false;
        }
        command
    };
    // Before: the guardian's consent is enough.
    let mut before = Case {
        events: events.clone(),
        calendar: calendar.clone(),
        now_ms: RECEIVED + 60_000,
    };
    before.ok(only_guardian(referral(police.clone(), true, true)));
    // From 1 March 2027 (Vietnam time): hers too.
    let mut after = Case {
        events,
        calendar,
        now_ms: 1_803_834_000_000, // 2027-03-01 00:00 in Vietnam
    };
    let rule = after.refused(only_guardian(referral(police.clone(), true, true)));
    assert!(rule.contains("and of the child"), "{rule}");
    after.ok(referral(police, true, true));
}
