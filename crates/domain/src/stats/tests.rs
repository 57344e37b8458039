#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use time::macros::date;
use uuid::Uuid;

use super::*;
use crate::case::procedure::{
    CaseClosed, DeadlineMet, DeadlineMissed, DetailedAssessmentRecorded, InitialAssessmentRecorded,
    OfficerAssigned, Verification,
};
use crate::case::{CaseOpened, IntakeAttached, ReferralRequested, ReferralStepRecorded};
use crate::intake::{Concerns, Injury};
use crate::referral::{ReferralKind, ReferralRequest, Service, Sharing, Urgency};

fn defs() -> Definitions {
    Definitions::parse(include_str!(
        "../../../../deploy/statistics/indicators.json"
    ))
    .unwrap()
}

/// Phường I of Vị Thanh (Hậu Giang, vn-pre2025:93) became part of Phường
/// Vị Thanh of Cần Thơ (vn:31321) on 1 July 2025.
fn hau_giang() -> Directory {
    Directory::parse(
        r#"{"units":[
          {"id":"vn:92","kind":"city","parent":null,"names":[{"name":"Thành phố Cần Thơ","valid_from":"2025-07-01","valid_to":null}]},
          {"id":"vn:31321","kind":"ward","parent":"vn:92","names":[{"name":"Phường Vị Thanh","valid_from":"2025-07-01","valid_to":null}]},
          {"id":"vn-pre2025:93","kind":"province","parent":null,"successors":["vn:92"],"names":[{"name":"Tỉnh Hậu Giang","valid_from":null,"valid_to":"2025-06-30"}]},
          {"id":"vn-pre2025:31318","kind":"ward","parent":"vn-pre2025:93","successors":["vn:31321"],"names":[{"name":"Phường I","valid_from":null,"valid_to":"2025-06-30"}]}
        ]}"#,
        r#"{"agencies":[]}"#,
    )
    .unwrap()
}

#[test]
fn given_a_2024_case_in_a_former_ward_then_2024_counts_it_there_and_a_period_ending_after_the_reform_under_the_successor()
 {
    let mut records = Records::default();
    let id = Uuid::from_u128(1);
    // 2024-05-01 in Vietnam.
    let at = 1_714_496_400_000;
    let concerns = Concerns {
        abuse_types: vec![AbuseType::Violence],
        ..Concerns::default()
    };
    let event = opened(
        id,
        at,
        "vn-pre2025:31318",
        Sex::Female,
        Some(9),
        concerns,
        Channel::Phone,
    );
    open_confirmed(&mut records, id, &event, at);
    let d = hau_giang();
    let rows = indicators(&records, &Period::parse("2024").unwrap(), None, &d, &defs());
    assert_eq!(value(&rows, "0101", "unit", "vn-pre2025:31318").0, 1);
    let rows = indicators(
        &records,
        &Period::parse("2024-01-01..2026-06-30").unwrap(),
        None,
        &d,
        &defs(),
    );
    assert_eq!(value(&rows, "0101", "unit", "vn:31321").0, 1);
    assert!(!rows.iter().any(|r| r.key == "vn-pre2025:31318"));
    // Asked by unit: the former ward and province in 2024, the successor
    // and Cần Thơ after.
    for (period, unit, n) in [
        ("2024", "vn-pre2025:31318", 1),
        ("2024", "vn-pre2025:93", 1),
        ("2024", "vn:31321", 0),
        ("2024-01-01..2026-06-30", "vn:31321", 1),
        ("2024-01-01..2026-06-30", "vn:92", 1),
        ("2024-01-01..2026-06-30", "vn-pre2025:31318", 0),
    ] {
        let rows = indicators(
            &records,
            &Period::parse(period).unwrap(),
            Some(unit),
            &d,
            &defs(),
        );
        assert_eq!(
            value(&rows, "0101", "total", "total").0,
            n,
            "{period} {unit}"
        );
    }
}

/// Mẫu 02 with `verification`.
fn assessed(verification: Verification) -> CaseEvent {
    CaseEvent::InitialAssessmentRecorded(InitialAssessmentRecorded {
        ratings: vec![],
        emergency_measures_apply: false,
        summary: "x".into(),
        reassessment: false,
        verification,
    })
}

/// Mẫu 03 with `verification`.
fn assessed_in_detail(verification: Verification) -> CaseEvent {
    CaseEvent::DetailedAssessmentRecorded(DetailedAssessmentRecorded {
        summary: "x".into(),
        needs: "x".into(),
        meeting_participants: vec!["x".into()],
        minutes_ref: "x".into(),
        verification,
    })
}

/// Opens the case, then Mẫu 02 confirms every form it reports.
fn open_confirmed(records: &mut Records, id: Uuid, event: &CaseEvent, at: i64) {
    records.apply(id, event, at);
    if let CaseEvent::Opened(o) = event {
        records.apply(
            id,
            &assessed(Verification {
                confirmed: o.concerns.abuse_types.clone(),
                not_confirmed: vec![],
            }),
            at,
        );
    }
}

fn value(rows: &[Row], indicator: &str, dimension: &str, key: &str) -> (u64, u64) {
    let row = rows
        .iter()
        .find(|r| r.indicator == indicator && r.dimension == dimension && r.key == key)
        .unwrap_or_else(|| panic!("no row {indicator}/{dimension}/{key}"));
    (row.value, row.of)
}

/// 2022-01-01T00:00 in Vietnam, Unix ms.
const JAN_2022: i64 = 1_640_970_000_000;
const DAY: i64 = 86_400_000;

fn opened_in(setting: crate::intake::Setting, event: CaseEvent) -> CaseEvent {
    match event {
        CaseEvent::Opened(mut o) => {
            o.setting = Some(setting);
            CaseEvent::Opened(o)
        }
        other => other,
    }
}

fn opened(
    case_id: Uuid,
    at: i64,
    unit: &str,
    sex: Sex,
    age: Option<u32>,
    concerns: Concerns,
    channel: Channel,
) -> CaseEvent {
    CaseEvent::Opened(CaseOpened {
        case_id,
        intake_id: case_id,
        intake_event_id: case_id,
        channel,
        received_at_ms: at,
        incident_unit_id: unit.into(),
        residence_unit_id: None,
        concerns,
        immediate_danger: false,
        caregiver_is_alleged_abuser: false,
        outside_child_law: age.is_some_and(|a| a >= 16),
        possible_duplicate_case_ids: vec![],
        police_case_number: None,
        follow_up_case_not_found: None,
        child_age_years: age,
        child_sex: Some(sex),
        setting: None,
        clock_start_ms: None,
        responsible_unit_id: None,
        province_id: None,
        report_status: Default::default(),
        consent_possible_from: None,
    })
}

#[test]
fn given_periods_in_vietnam_time_then_their_bounds_are_vietnamese_midnights() {
    let h1 = Period::parse("2022-H1").unwrap();
    assert_eq!(
        (h1.first_day, h1.last_day),
        (date!(2022 - 01 - 01), date!(2022 - 06 - 30))
    );
    let (from, to) = h1.range_ms();
    assert_eq!(from, JAN_2022);
    // 2021-12-31T23:59:59.999+07:00 is outside, 2022-01-01T00:00+07:00 inside.
    assert!(!h1.contains(JAN_2022 - 1) && h1.contains(JAN_2022));
    assert_eq!(to, 1_656_608_400_000, "2022-07-01T00:00+07:00");
    assert_eq!(
        Period::parse("2024-02").unwrap().last_day,
        date!(2024 - 02 - 29)
    );
    assert_eq!(
        Period::parse("2022-Q3").unwrap().first_day,
        date!(2022 - 07 - 01)
    );
    assert_eq!(
        Period::parse("2022-03-05..2022-03-06")
            .unwrap()
            .range_ms()
            .1
            - Period::parse("2022-03-05..2022-03-06")
                .unwrap()
                .range_ms()
                .0,
        2 * DAY
    );
    let earlier = Period::parse("2024-02").unwrap().year_earlier();
    assert_eq!(
        (earlier.first_day, earlier.last_day),
        (date!(2023 - 02 - 01), date!(2023 - 02 - 28))
    );
    for bad in [
        "2022-H3",
        "22",
        "2022-13",
        "2022-5",
        "2022-06-30..2022-01-01",
        "soon",
    ] {
        let err = Period::parse(bad).unwrap_err();
        assert!(err.contains(bad), "{err}");
    }
}

#[test]
fn given_overlapping_age_groups_then_the_definitions_are_refused_naming_the_group() {
    let err = Definitions::parse(
        r#"{"age_groups":[{"key":"a","en":"a","vi":"a","min_years":0,"max_years":6},{"key":"b","en":"b","vi":"b","min_years":6,"max_years":10}],"small_cell_threshold":5}"#,
    )
    .unwrap_err();
    assert!(err.contains("age_groups[1]"), "{err}");
}

#[test]
fn given_a_16_year_old_then_they_are_shown_apart_not_in_the_under_16_total() {
    let mut records = Records::default();
    let concerns = Concerns {
        abuse_types: vec![AbuseType::Violence],
        ..Concerns::default()
    };
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    open_confirmed(
        &mut records,
        a,
        &opened(
            a,
            JAN_2022 + DAY,
            "u1",
            Sex::Female,
            Some(16),
            concerns.clone(),
            Channel::Phone,
        ),
        JAN_2022 + DAY,
    );
    open_confirmed(
        &mut records,
        b,
        &opened(
            b,
            JAN_2022 + DAY,
            "u1",
            Sex::Female,
            Some(9),
            concerns,
            Channel::Phone,
        ),
        JAN_2022 + DAY,
    );
    let rows = indicators(
        &records,
        &Period::parse("2022").unwrap(),
        None,
        &Directory::default(),
        &defs(),
    );
    assert_eq!(value(&rows, "0101", "total", "total").0, 1);
    assert_eq!(value(&rows, "0101", "age_group", "16-17").0, 1);
    assert_eq!(value(&rows, "0101", "age_group", "6-10").0, 1);
    assert_eq!(value(&rows, "0101", "sex", "female").0, 1);
}

#[test]
fn given_small_counts_then_they_are_suppressed_and_larger_ones_kept() {
    let mut records = Records::default();
    for i in 0..7u128 {
        let id = Uuid::from_u128(i + 1);
        let concerns = Concerns {
            abuse_types: vec![if i < 2 {
                AbuseType::Neglect
            } else {
                AbuseType::Violence
            }],
            ..Concerns::default()
        };
        open_confirmed(
            &mut records,
            id,
            &opened(
                id,
                JAN_2022 + DAY,
                "u1",
                Sex::Male,
                Some(8),
                concerns,
                Channel::Zalo,
            ),
            JAN_2022,
        );
    }
    let mut rows = indicators(
        &records,
        &Period::parse("2022").unwrap(),
        None,
        &Directory::default(),
        &defs(),
    );
    suppress_small_cells(&mut rows, defs().small_cell_threshold);
    let neglect = rows
        .iter()
        .find(|r| r.indicator == "0101" && r.key == "neglect")
        .unwrap();
    assert!(neglect.suppressed && neglect.value == 0);
    let violence = rows
        .iter()
        .find(|r| r.indicator == "0101" && r.key == "violence")
        .unwrap();
    assert!(!violence.suppressed && violence.value == 5);
    // Zero is not a small cell; report counts are not children.
    let trafficking = rows
        .iter()
        .find(|r| r.indicator == "0101" && r.key == "trafficking")
        .unwrap();
    assert!(!trafficking.suppressed);
    assert_eq!(value(&rows, "reports", "channel", "111_zalo").0, 7);
}

/// A small deterministic generator (xorshift64*), so that the data set is
/// the same on every run without a dependency.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[test]
#[allow(clippy::too_many_lines)]
fn given_a_province_sized_generated_data_set_then_every_indicator_equals_the_generators_own_count()
{
    let defs = defs();
    let period = Period::parse("2022-H1").unwrap();
    let (from, to) = period.range_ms();
    let units = [
        "vn:31135",
        "vn:31120",
        "vn:31299",
        "vn:31321",
        "vn:92.x-long-my",
    ];
    let sexes = [Sex::Male, Sex::Female, Sex::Unknown];
    let channels = [
        Channel::Phone,
        Channel::Zalo,
        Channel::Police,
        Channel::InPerson,
    ];
    let mut g = Gen(0x00ba_07e0_2022);
    let mut records = Records::default();
    // What the generator knows, counted its own way.
    let mut abused_u16 = 0u64;
    let mut unconfirmed_u16 = 0u64;
    let mut unconfirmed_by_form: std::collections::HashMap<AbuseType, u64> =
        std::collections::HashMap::new();
    let mut abused_16_17 = 0u64;
    let mut by_sex: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_form: std::collections::HashMap<AbuseType, u64> = std::collections::HashMap::new();
    let mut by_unit: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_setting: BTreeMap<&str, u64> = BTreeMap::new();
    let settings = [
        (crate::intake::Setting::Home, "home"),
        (crate::intake::Setting::School, "school"),
        (crate::intake::Setting::Online, "online"),
        (crate::intake::Setting::Unknown, "unknown"),
    ];
    let mut drowning = 0u64;
    let mut deaths = 0u64;
    let mut special_total = 0u64;
    let mut special_supported = 0u64;
    let mut emergency = (0u64, 0u64);
    let mut reports_by_channel: BTreeMap<&str, u64> = BTreeMap::new();
    let mut reports_total = 0u64;
    let mut referral_police = (0u64, 0u64);
    let mut first_action_minutes: Vec<u64> = Vec::new();
    for i in 0..25_000u128 {
        let id = Uuid::from_u128(i + 1);
        // Received over 2021-07..2022-12: some before, some after H1.
        let at = from - 180 * DAY + i64::try_from(g.below(540 * DAY as u64)).unwrap();
        let in_period = (from..to).contains(&at);
        let unit = units[g.below(5) as usize];
        let sex = sexes[g.below(3) as usize];
        let age = if g.chance(5) {
            None
        } else {
            Some(g.below(18) as u32)
        };
        let channel = channels[g.below(4) as usize];
        let mut concerns = Concerns::default();
        for a in [
            AbuseType::Violence,
            AbuseType::SexualAbuse,
            AbuseType::Neglect,
            AbuseType::Trafficking,
        ] {
            if g.chance(20) {
                concerns.abuse_types.push(a);
            }
        }
        if g.chance(10) {
            let cause = if g.chance(40) {
                InjuryCause::Drowning
            } else {
                InjuryCause::Traffic
            };
            let outcome = if g.chance(20) {
                InjuryOutcome::Died
            } else {
                InjuryOutcome::NotDisabled
            };
            concerns.injury = Some(Injury {
                cause,
                outcome,
                detail: String::new(),
            });
            if in_period {
                drowning += u64::from(cause == InjuryCause::Drowning);
                deaths += u64::from(outcome == InjuryOutcome::Died);
            }
        }
        if g.chance(15) {
            concerns
                .special_circumstances
                .push(SpecialCircumstance::DDisabled);
        }
        let (setting, setting_key) = settings[g.below(4) as usize];
        let special = !concerns.special_circumstances.is_empty();
        // Verification: each reported form confirmed (Mẫu 02), confirmed
        // then found untrue (Mẫu 03), found untrue, or not verified yet.
        let mut initial = Verification::default();
        let mut detailed = Verification::default();
        let mut confirmed_forms = Vec::new();
        let mut pending_forms = Vec::new();
        for a in &concerns.abuse_types {
            match g.below(100) {
                0..60 => {
                    initial.confirmed.push(*a);
                    confirmed_forms.push(*a);
                }
                60..70 => {
                    initial.confirmed.push(*a);
                    detailed.not_confirmed.push(*a);
                }
                70..85 => initial.not_confirmed.push(*a),
                _ => pending_forms.push(*a),
            }
        }
        let abused = !confirmed_forms.is_empty();
        if in_period && age.is_none_or(|a| a < 16) {
            if !abused && !pending_forms.is_empty() {
                unconfirmed_u16 += 1;
            }
            for a in &pending_forms {
                *unconfirmed_by_form.entry(*a).or_default() += 1;
            }
        }
        if in_period && abused {
            if age.is_some_and(|a| a >= 16) {
                abused_16_17 += 1;
            } else {
                abused_u16 += 1;
                *by_sex
                    .entry(match sex {
                        Sex::Male => "male",
                        Sex::Female => "female",
                        Sex::Unknown => "unknown",
                    })
                    .or_default() += 1;
                *by_unit.entry(unit).or_default() += 1;
                *by_setting.entry(setting_key).or_default() += 1;
                for a in &confirmed_forms {
                    *by_form.entry(*a).or_default() += 1;
                }
            }
        }
        records.apply(
            id,
            &opened_in(setting, opened(id, at, unit, sex, age, concerns, channel)),
            at + 1_000,
        );
        let mut report = |at: i64, channel: Channel| {
            if (from..to).contains(&at) {
                reports_total += 1;
                *reports_by_channel
                    .entry(match channel {
                        Channel::Phone => "111_phone",
                        Channel::Zalo => "111_zalo",
                        Channel::Police => "police",
                        _ => "in_person",
                    })
                    .or_default() += 1;
            }
        };
        report(at, channel);
        // A follow-up report, sometimes after the period ends.
        if g.chance(10) {
            let later = at + i64::try_from(g.below(60 * DAY as u64)).unwrap();
            records.apply(
                id,
                &CaseEvent::Attached(IntakeAttached {
                    intake_id: Uuid::from_u128(i + 1_000_000),
                    intake_event_id: Uuid::from_u128(i + 1_000_000),
                    channel: Channel::Police,
                    received_at_ms: later,
                    concerns: Concerns::default(),
                    immediate_danger: false,
                    caregiver_is_alleged_abuser: false,
                    police_case_number: None,
                    clock_start_ms: None,
                }),
                later,
            );
            report(later, Channel::Police);
        }
        let mut supported = false;
        let assigned = g.chance(70);
        if assigned {
            let minutes = g.below(3_000);
            records.apply(
                id,
                &CaseEvent::OfficerAssigned(OfficerAssigned {
                    officer_id: "cb".into(),
                    previous_officer_id: None,
                }),
                at + i64::try_from(minutes).unwrap() * 60_000,
            );
            if in_period {
                first_action_minutes.push(minutes);
            }
        }
        if g.chance(30) {
            let in_time = g.chance(80);
            let event = if in_time {
                CaseEvent::DeadlineMet(DeadlineMet {
                    id: None,
                    kind: DeadlineKind::Emergency,
                    late: false,
                })
            } else {
                CaseEvent::DeadlineMissed(DeadlineMissed {
                    id: None,
                    kind: DeadlineKind::Emergency,
                    due_at_ms: at + 12 * 3_600_000,
                })
            };
            records.apply(id, &event, at + 3_600_000);
            if in_period {
                emergency.1 += 1;
                emergency.0 += u64::from(in_time);
            }
        }
        if g.chance(25) {
            let referral = Uuid::from_u128(i + 2_000_000);
            records.apply(
                id,
                &CaseEvent::ReferralRequested(ReferralRequested {
                    referral_id: referral,
                    from_unit_id: unit.into(),
                    request: ReferralRequest {
                        kind: ReferralKind::Refer {
                            service: Service::PoliceInvestigation,
                        },
                        to_agency_id: "vn:92/cong-an".into(),
                        reason: "x".into(),
                        urgency: Urgency::Normal,
                        sharing: Sharing {
                            identifying: false,
                            child_consent: false,
                            guardian_consent: false,
                            legal_basis: None,
                            informant: false,
                        },
                    },
                }),
                at + DAY,
            );
            let step = |name: &str| {
                CaseEvent::ReferralStepRecorded(ReferralStepRecorded {
                    referral_id: referral,
                    step: name.into(),
                    by: "x".into(),
                    agency_id: "vn:92/cong-an".into(),
                    detail: String::new(),
                    referral_event_id: Uuid::nil(),
                    at_ms: None,
                    to_agency_id: None,
                })
            };
            records.apply(id, &step("ReferralOffered"), at + DAY);
            let escalated = g.chance(30);
            if escalated {
                records.apply(id, &step("ReferralEscalated"), at + 2 * DAY);
            }
            records.apply(id, &step("ReferralAcknowledged"), at + 3 * DAY);
            // Support is given when the referral is completed, not when
            // it is asked.
            if g.chance(50) {
                records.apply(id, &step("ReferralAccepted"), at + 3 * DAY);
                records.apply(id, &step("ReferralCompleted"), at + 9 * DAY);
                supported = true;
            }
            if in_period {
                referral_police.1 += 1;
                referral_police.0 += u64::from(!escalated);
            }
        }
        // Mẫu 02 two days after the report (the first action when no
        // officer was assigned), then Mẫu 03.
        records.apply(id, &assessed(initial), at + 2 * DAY);
        records.apply(id, &assessed_in_detail(detailed), at + 3 * DAY);
        if in_period && !assigned {
            first_action_minutes.push(2 * 24 * 60);
        }
        if in_period && special {
            special_total += 1;
            special_supported += u64::from(supported);
        }
        if g.chance(20) {
            records.apply(
                id,
                &CaseEvent::Closed(CaseClosed {
                    reason: "x".into(),
                    grounds: None,
                    decision_ref: None,
                }),
                at + 10 * DAY,
            );
        }
    }

    let rows = indicators(&records, &period, None, &Directory::default(), &defs);
    assert_eq!(value(&rows, "0101", "total", "total").0, abused_u16);
    assert_eq!(value(&rows, "0101", "age_group", "16-17").0, abused_16_17);
    assert_eq!(
        value(&rows, "0101-unconfirmed", "total", "total").0,
        unconfirmed_u16
    );
    for (sex, n) in &by_sex {
        assert_eq!(value(&rows, "0101", "sex", sex).0, *n, "{sex}");
    }
    for (form, key) in [
        (AbuseType::Violence, "violence"),
        (AbuseType::SexualAbuse, "sexual_abuse"),
        (AbuseType::Neglect, "neglect"),
        (AbuseType::Trafficking, "trafficking"),
    ] {
        assert_eq!(value(&rows, "0101", "form", key).0, by_form[&form], "{key}");
        assert_eq!(
            value(&rows, "0101-unconfirmed", "form", key).0,
            unconfirmed_by_form[&form],
            "{key}"
        );
    }
    for (setting, n) in &by_setting {
        assert_eq!(value(&rows, "0101", "setting", setting).0, *n, "{setting}");
    }
    for (unit, n) in &by_unit {
        assert_eq!(value(&rows, "0101", "unit", unit).0, *n, "{unit}");
    }
    assert_eq!(value(&rows, "injuries", "cause", "drowning").0, drowning);
    assert_eq!(value(&rows, "injuries", "outcome", "died").0, deaths);
    assert_eq!(
        value(&rows, "special_circumstances", "supported", "supported"),
        (special_supported, special_total)
    );
    assert_eq!(
        value(&rows, "handling", "deadline", "emergency_12h"),
        emergency
    );
    assert_eq!(
        value(&rows, "referrals", "agency", "vn:92/cong-an"),
        referral_police
    );
    assert_eq!(value(&rows, "reports", "total", "total").0, reports_total);
    for (channel, n) in &reports_by_channel {
        assert_eq!(
            value(&rows, "reports", "channel", channel).0,
            *n,
            "{channel}"
        );
    }
    let group = |key: &str| value(&rows, "reports", "channel_group", key).0;
    assert_eq!(
        group("111"),
        reports_by_channel.get("111_phone").copied().unwrap_or(0)
            + reports_by_channel.get("111_zalo").copied().unwrap_or(0)
    );
    assert_eq!(group("police"), reports_by_channel["police"]);
    assert_eq!(
        group("111") + group("police") + group("other"),
        reports_total
    );
    first_action_minutes.sort_unstable();
    let median = first_action_minutes[first_action_minutes.len().div_ceil(2) - 1];
    assert_eq!(value(&rows, "handling", "first_action", "median").0, median);
    assert_eq!(
        value(&rows, "handling", "first_action", "cases").0,
        first_action_minutes.len() as u64
    );
    // By month: the months add up to the total, and each form's months
    // to the form.
    let sum = |dimension: &str, suffix: &str| -> u64 {
        rows.iter()
            .filter(|r| {
                r.indicator == "0101" && r.dimension == dimension && r.key.ends_with(suffix)
            })
            .map(|r| r.value)
            .sum()
    };
    assert_eq!(sum("month", ""), abused_u16);
    assert_eq!(
        sum("month_form", "/violence"),
        by_form[&AbuseType::Violence]
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.indicator == "0101" && r.dimension == "month")
            .count(),
        6
    );
    // The data set is province-sized and the period holds a good share.
    assert!(abused_u16 > 2_000, "{abused_u16}");
    assert!(unconfirmed_u16 > 200, "{unconfirmed_u16}");
    // Folding the same events again gives the same table.
    assert_eq!(
        indicators(
            &records.clone(),
            &period,
            None,
            &Directory::default(),
            &defs
        ),
        rows
    );
}

#[test]
fn given_definitions_naming_some_breakdowns_then_only_those_are_shown_and_unknown_ones_are_refused()
{
    let mut defs = defs();
    defs.abused_children_breakdowns = vec!["sex".into(), "setting".into()];
    let mut records = Records::default();
    let id = Uuid::from_u128(1);
    let concerns = Concerns {
        abuse_types: vec![AbuseType::Violence],
        ..Concerns::default()
    };
    open_confirmed(
        &mut records,
        id,
        &opened(
            id,
            JAN_2022 + DAY,
            "u1",
            Sex::Male,
            Some(4),
            concerns,
            Channel::Web,
        ),
        JAN_2022,
    );
    let rows = indicators(
        &records,
        &Period::parse("2022").unwrap(),
        None,
        &Directory::default(),
        &defs,
    );
    let dims: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.indicator == "0101")
        .map(|r| r.dimension.as_str())
        .collect();
    assert_eq!(dims, ["setting", "sex", "total"].into_iter().collect());
    // Other indicators are unaffected.
    assert_eq!(value(&rows, "reports", "channel_group", "111").0, 1);
    let err = Definitions::parse(
        r#"{"age_groups":[{"key":"a","en":"a","vi":"a","min_years":0,"max_years":17}],"small_cell_threshold":5,"abused_children_breakdowns":["colour"]}"#,
    )
    .unwrap_err();
    assert!(
        err.contains("abused_children_breakdowns[0]") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn given_reported_abuse_then_0101_counts_it_only_once_verification_confirms_it_and_not_after_it_is_found_untrue()
 {
    let id = Uuid::from_u128(1);
    let concerns = Concerns {
        abuse_types: vec![AbuseType::Violence, AbuseType::Neglect],
        ..Concerns::default()
    };
    let mut records = Records::default();
    let table = |records: &Records| {
        indicators(
            records,
            &Period::parse("2022").unwrap(),
            None,
            &Directory::default(),
            &defs(),
        )
    };
    records.apply(
        id,
        &opened(
            id,
            JAN_2022 + DAY,
            "u1",
            Sex::Female,
            Some(9),
            concerns,
            Channel::Phone,
        ),
        JAN_2022 + DAY,
    );
    // Reported, not verified: beside 0101, not in it.
    let rows = table(&records);
    assert_eq!(value(&rows, "0101", "total", "total").0, 0);
    assert_eq!(value(&rows, "0101-unconfirmed", "total", "total").0, 1);
    assert_eq!(value(&rows, "0101-unconfirmed", "form", "violence").0, 1);
    // Mẫu 02 confirms violence, finds neglect untrue.
    records.apply(
        id,
        &assessed(Verification {
            confirmed: vec![AbuseType::Violence],
            not_confirmed: vec![AbuseType::Neglect],
        }),
        JAN_2022 + 2 * DAY,
    );
    let rows = table(&records);
    assert_eq!(value(&rows, "0101", "total", "total").0, 1);
    assert_eq!(value(&rows, "0101", "form", "violence").0, 1);
    assert_eq!(value(&rows, "0101", "form", "neglect").0, 0);
    assert_eq!(value(&rows, "0101-unconfirmed", "total", "total").0, 0);
    assert_eq!(value(&rows, "0101-unconfirmed", "form", "neglect").0, 0);
    // Mẫu 03 finds the violence untrue after all: out of 0101.
    records.apply(
        id,
        &assessed_in_detail(Verification {
            confirmed: vec![],
            not_confirmed: vec![AbuseType::Violence],
        }),
        JAN_2022 + 3 * DAY,
    );
    let rows = table(&records);
    assert_eq!(value(&rows, "0101", "total", "total").0, 0);
    assert_eq!(value(&rows, "0101-unconfirmed", "total", "total").0, 0);
}

#[test]
fn given_a_child_in_special_circumstances_then_helped_counts_support_given_not_a_referral_asked() {
    let id = Uuid::from_u128(1);
    let concerns = Concerns {
        special_circumstances: vec![SpecialCircumstance::DDisabled],
        ..Concerns::default()
    };
    let mut records = Records::default();
    records.apply(
        id,
        &opened(
            id,
            JAN_2022 + DAY,
            "u1",
            Sex::Male,
            Some(8),
            concerns,
            Channel::Phone,
        ),
        JAN_2022 + DAY,
    );
    let helped = |records: &Records| {
        let rows = indicators(
            records,
            &Period::parse("2022").unwrap(),
            None,
            &Directory::default(),
            &defs(),
        );
        rows.iter()
            .find(|r| r.dimension == "supported")
            .map(|r| r.value)
            .unwrap()
    };
    let referral = Uuid::from_u128(9);
    records.apply(
        id,
        &CaseEvent::ReferralRequested(ReferralRequested {
            referral_id: referral,
            from_unit_id: "u1".into(),
            request: ReferralRequest {
                kind: ReferralKind::Refer {
                    service: Service::MedicalExamination,
                },
                to_agency_id: "a".into(),
                reason: "x".into(),
                urgency: Urgency::Normal,
                sharing: Sharing {
                    identifying: false,
                    child_consent: false,
                    guardian_consent: false,
                    legal_basis: None,
                    informant: false,
                },
            },
        }),
        JAN_2022 + 2 * DAY,
    );
    assert_eq!(helped(&records), 0, "a referral asked is not help given");
    records.apply(
        id,
        &CaseEvent::ReferralStepRecorded(ReferralStepRecorded {
            referral_id: referral,
            step: "ReferralCompleted".into(),
            by: "x".into(),
            agency_id: "a".into(),
            detail: String::new(),
            referral_event_id: Uuid::nil(),
            at_ms: None,
            to_agency_id: None,
        }),
        JAN_2022 + 9 * DAY,
    );
    assert_eq!(helped(&records), 1);
}
