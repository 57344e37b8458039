//! Given/when/then tests of the intake rules.

use super::*;
use crate::reference::Directory;
use crate::violation::Violations;
use ::time::macros::date;

const UNITS: &str = r#"{"units":[
  {"id":"vn:92","kind":"city","parent":null,"names":[{"name":"Thành phố Cần Thơ","valid_from":"2025-07-01","valid_to":null}]},
  {"id":"vn:31135","kind":"ward","parent":"vn:92","names":[{"name":"Phường Ninh Kiều","valid_from":"2025-07-01","valid_to":null}]},
  {"id":"vn:31321","kind":"ward","parent":"vn:92","names":[{"name":"Phường Vị Thanh","valid_from":"2025-07-01","valid_to":null}]},
  {"id":"vn:31408","kind":"commune","parent":"vn:92","names":[{"name":"Xã Thạnh Hòa","valid_from":"2025-07-01","valid_to":null}]},
  {"id":"vn:31741","kind":"commune","parent":"vn:92","names":[{"name":"Xã Tân Long","valid_from":"2025-07-01","valid_to":null}]},
  {"id":"vn:01","kind":"city","parent":null,"names":[{"name":"Thành phố Hà Nội","valid_from":"2025-07-01","valid_to":null}]},
  {"id":"vn:00070","kind":"ward","parent":"vn:01","names":[{"name":"Phường Hoàn Kiếm","valid_from":"2025-07-01","valid_to":null}]},
  {"id":"vn-pre2025:93","kind":"province","parent":null,"successors":["vn:92"],"names":[{"name":"Tỉnh Hậu Giang","valid_from":null,"valid_to":"2025-06-30"}]},
  {"id":"vn-pre2025:930","kind":"district","parent":"vn-pre2025:93","successors":["vn:92"],"names":[{"name":"Thành phố Vị Thanh","valid_from":null,"valid_to":"2025-06-30"}]},
  {"id":"vn-pre2025:31318","kind":"ward","parent":"vn-pre2025:930","successors":["vn:31321"],"names":[{"name":"Phường I","valid_from":null,"valid_to":"2025-06-30"}]},
  {"id":"vn-pre2025:31438","kind":"commune","parent":"vn-pre2025:930","successors":["vn:31408","vn:31741"],"names":[{"name":"Xã Tân Long","valid_from":null,"valid_to":"2025-06-30"}]}
]}"#;
const AGENCIES: &str = r#"{"agencies":[
  {"id":"vn:92/cong-an","kind":"police","unit":"vn:92","successor":null,"names":[{"name":"Công an thành phố Cần Thơ","valid_from":"2004-01-01","valid_to":null}]},
  {"id":"vn:92/so-y-te","kind":"health","unit":"vn:92","successor":null,"names":[{"name":"Sở Y tế","valid_from":"2004-01-01","valid_to":null}]}
]}"#;

/// 2026-11-29 02:00 in Vietnam (a 3 a.m. call would be a little later).
const NOW: i64 = 1_764_356_400_000 + 365 * DAY_MS;

fn directory() -> Directory {
    Directory::parse(UNITS, AGENCIES).unwrap()
}

fn facts() -> RawFacts {
    RawFacts {
        received_at_ms: Some(NOW - 60_000),
        child: Some(RawChild {
            full_name: "Nguyễn Văn An".into(),
            estimated_age_years: Some(9),
            sex: Some(Sex::Male),
            ..Default::default()
        }),
        incident_place: Some(RawPlace {
            unit_id: "vn:31135".into(),
            address: "hẻm 51, đường 3/2".into(),
        }),
        concerns: Some(RawConcerns {
            abuse_types: vec![Some(AbuseType::Violence)],
            ..Default::default()
        }),
        narrative: "Hàng xóm nghe tiếng trẻ khóc và tiếng đánh đập".into(),
        immediate_danger: true,
        ..Default::default()
    }
}

fn hotline(facts: RawFacts) -> RawHotlineReport {
    RawHotlineReport {
        channel: Some(Channel::Phone),
        operator_id: "op-17".into(),
        facts: Some(facts),
        informant: None,
    }
}

fn parse(raw: RawHotlineReport) -> Result<Report, Violations> {
    parse_for(raw, None)
}

/// Parses `raw` as the intake of `partition` does (`None`: every province).
fn parse_for(raw: RawHotlineReport, partition: Option<&str>) -> Result<Report, Violations> {
    let d = directory();
    parse_hotline(
        raw,
        "report",
        &Context {
            directory: &d,
            now_ms: NOW,
            partition,
        },
    )
}

fn fields(v: &Violations) -> Vec<&str> {
    v.0.iter().map(|x| x.field.as_str()).collect()
}

#[test]
fn given_a_complete_call_when_parsed_then_the_report_is_normalised() {
    let mut raw = facts();
    raw.child.as_mut().unwrap().full_name = "  Nguye\u{0302}\u{0303}n  Va\u{0306}n An ".into();
    raw.father = Some(RawPerson {
        full_name: "Nguyễn Văn Bình".into(),
        phone: "0912 345 678".into(),
        ..Default::default()
    });
    let report = parse(hotline(raw)).unwrap();
    let facts = report.facts();
    assert_eq!(facts.child.full_name, "Nguyễn Văn An");
    assert_eq!(facts.child.name_key, "nguyen van an");
    assert_eq!(facts.child.age_years, 9);
    assert_eq!(
        facts.father.as_ref().unwrap().phone.as_deref(),
        Some("+84912345678")
    );
    assert_eq!(report.channel(), Channel::Phone);
}

#[test]
fn given_several_bad_fields_when_parsed_then_every_one_is_reported_at_once() {
    let mut raw = facts();
    raw.received_at_ms = Some(NOW + DAY_MS);
    raw.child.as_mut().unwrap().estimated_age_years = Some(19);
    raw.child.as_mut().unwrap().sex = None;
    raw.incident_place.as_mut().unwrap().unit_id = "vn:99999".into();
    raw.narrative = "x".repeat(8001);
    let mut report = hotline(raw);
    report.channel = None;
    report.informant = Some(RawInformant {
        consent: false,
        full_name: "Trần Thị Cúc".into(),
        ..Default::default()
    });
    let v = parse(report).unwrap_err();
    assert_eq!(
        fields(&v),
        [
            "report.channel",
            "report.facts.received_at",
            "report.facts.child.estimated_age_years",
            "report.facts.child.sex",
            "report.facts.incident_place.unit_id",
            "report.facts.narrative",
            "report.informant.consent",
        ],
        "{v}"
    );
}

#[test]
fn given_no_concern_and_no_narrative_when_parsed_then_the_empty_report_is_refused() {
    let mut raw = facts();
    raw.concerns = None;
    raw.narrative = "   ".into();
    let v = parse(hotline(raw)).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.concerns"]);
    assert!(v.0[0].rule.contains("at least one concern or a narrative"));
}

#[test]
fn given_a_birth_date_in_the_future_or_an_adult_then_refused() {
    let mut raw = facts();
    let child = raw.child.as_mut().unwrap();
    child.estimated_age_years = None;
    child.date_of_birth = Some("2030-01-01".into());
    let v = parse(hotline(raw.clone())).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.child.date_of_birth"]);
    assert!(v.0[0].rule.contains("future"));
    raw.child.as_mut().unwrap().date_of_birth = Some("2000-01-01".into());
    let v = parse(hotline(raw)).unwrap_err();
    assert!(v.0[0].rule.contains("0 to 17"), "{v}");
}

#[test]
fn given_a_16_year_old_then_recorded_but_outside_the_child_law() {
    let mut raw = facts();
    raw.child.as_mut().unwrap().estimated_age_years = Some(16);
    let report = parse(hotline(raw)).unwrap();
    assert!(outside_child_law(report.facts().child.age_years));
    assert!(!outside_child_law(15));
}

#[test]
fn given_an_informant_with_consent_then_recorded_and_without_details_then_nothing() {
    let mut raw = hotline(facts());
    raw.informant = Some(RawInformant {
        consent: true,
        full_name: "Trần Thị Cúc".into(),
        phone: "+84 903 111 222".into(),
        relation: "hàng xóm".into(),
    });
    let Report::Hotline { informant, .. } = parse(raw.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(informant.unwrap().phone.as_deref(), Some("+84903111222"));
    raw.informant = Some(RawInformant::default());
    let Report::Hotline { informant, .. } = parse(raw).unwrap() else {
        panic!()
    };
    assert_eq!(informant, None);
}

#[test]
fn given_a_unit_abolished_before_the_report_then_refused_naming_its_successor() {
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn-pre2025:31318".into();
    let v = parse(hotline(raw)).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.incident_place.unit_id"]);
    assert!(v.0[0].rule.contains("vn:31321"), "{v}");
}

/// 2024-11-02 in Vietnam, when Phường I of Vị Thanh (Hậu Giang) existed.
const IN_2024: i64 = 1_730_505_600_000;

#[test]
fn given_a_2024_incident_in_a_former_hau_giang_ward_then_it_is_recorded_there_and_routed_to_its_successor()
 {
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn-pre2025:31318".into();
    raw.occurred_at_ms = Some(IN_2024);
    raw.report_status = Some(ReportStatus::Abused);
    let report = parse(hotline(raw)).unwrap();
    let facts = report.facts();
    assert_eq!(facts.report_status, ReportStatus::Abused);
    assert_eq!(facts.incident_place.unit_id, "vn-pre2025:31318");
    assert_eq!(facts.occurred_at_ms, Some(IN_2024));
    assert_eq!(facts.responsible_unit(), "vn:31321");
    assert_eq!(facts.province_id.as_deref(), Some("vn:92"));
}

#[test]
fn given_a_report_from_another_province_then_it_is_routed_to_that_province() {
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn:00070".into();
    let report = parse(hotline(raw)).unwrap();
    assert_eq!(report.facts().responsible_unit(), "vn:00070");
    assert_eq!(report.facts().province_id.as_deref(), Some("vn:01"));
}

#[test]
fn given_the_intake_of_one_province_when_a_report_from_another_province_comes_then_it_is_refused_naming_that_province()
 {
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn:00070".into();
    let v = parse_for(hotline(raw), Some("vn:92")).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.incident_place.unit_id"]);
    assert!(
        v.0[0]
            .rule
            .contains("lies in province vn:01 (Thành phố Hà Nội)"),
        "{v}"
    );
    assert!(
        v.0[0]
            .rule
            .contains("province vn:92 (Thành phố Cần Thơ) only"),
        "{v}"
    );
    // All that is wrong with it: a client may send it to vn:01 unchanged,
    // and a person be told its name.
    assert_eq!(v.only_elsewhere(), Some("vn:01"));
    assert_eq!(v.only_elsewhere_name(), Some("Thành phố Hà Nội"));
}

#[test]
fn given_the_intake_of_one_province_when_a_report_from_another_province_has_another_fault_then_it_is_not_sent_on()
 {
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn:00070".into();
    raw.occurred_at_ms = Some(NOW + 86_400_000);
    let v = parse_for(hotline(raw), Some("vn:92")).unwrap_err();
    assert_eq!(
        fields(&v),
        [
            "report.facts.occurred_at",
            "report.facts.incident_place.unit_id"
        ]
    );
    // Sent to vn:01's intake, it would be refused there for the date.
    assert_eq!(v.only_elsewhere(), None);
}

#[test]
fn given_a_report_refused_for_a_rule_of_its_own_then_no_other_partition_takes_it() {
    let mut raw = facts();
    raw.occurred_at_ms = Some(NOW + 86_400_000);
    let v = parse_for(hotline(raw), Some("vn:92")).unwrap_err();
    assert_eq!(v.only_elsewhere(), None, "{v}");
}

#[test]
fn given_the_intake_of_one_province_when_a_report_routed_there_comes_then_it_is_taken() {
    // A 2024 report from a ward of former Hậu Giang goes to Cần Thơ (vn:92).
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn-pre2025:31318".into();
    raw.occurred_at_ms = Some(IN_2024);
    let report = parse_for(hotline(raw), Some("vn:92")).unwrap();
    assert_eq!(report.facts().province_id.as_deref(), Some("vn:92"));
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn:00070".into();
    let report = parse_for(hotline(raw), Some("vn:01")).unwrap();
    assert_eq!(report.facts().province_id.as_deref(), Some("vn:01"));
}

#[test]
fn given_a_former_commune_split_in_two_then_the_successor_of_the_address_is_required_and_checked() {
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn-pre2025:31438".into();
    raw.occurred_at_ms = Some(IN_2024);
    let v = parse(hotline(raw.clone())).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.responsible_unit_id"]);
    assert!(v.0[0].rule.contains("Xã Tân Long (vn:31741)"), "{v}");
    raw.responsible_unit_id = "vn:31135".into();
    let v = parse(hotline(raw.clone())).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.responsible_unit_id"]);
    assert!(v.0[0].rule.contains("one of the successors"), "{v}");
    raw.responsible_unit_id = "vn:31408".into();
    let report = parse(hotline(raw)).unwrap();
    assert_eq!(report.facts().responsible_unit(), "vn:31408");
}

#[test]
fn given_an_incident_day_in_the_future_or_after_the_report_then_refused() {
    let mut raw = facts();
    raw.occurred_at_ms = Some(NOW + DAY_MS);
    let v = parse(hotline(raw.clone())).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.occurred_at"]);
    raw.received_at_ms = Some(NOW - DAY_MS);
    raw.occurred_at_ms = Some(NOW - 1_000);
    let v = parse(hotline(raw)).unwrap_err();
    assert!(v.0[0].rule.contains("after received_at"), "{v}");
}

#[test]
fn given_a_province_as_the_incident_place_then_refused_as_not_a_commune() {
    let mut raw = facts();
    raw.incident_place.as_mut().unwrap().unit_id = "vn:92".into();
    let v = parse(hotline(raw)).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.incident_place.unit_id"]);
    assert!(v.0[0].rule.contains("ward, commune or special zone"), "{v}");
}

#[test]
fn given_sexual_abuse_forms_without_sexual_abuse_then_refused() {
    let mut raw = facts();
    raw.concerns.as_mut().unwrap().sexual_abuse_forms = vec![Some(SexualAbuseForm::IndecentActs)];
    let v = parse(hotline(raw.clone())).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.concerns.sexual_abuse_forms"]);
    raw.concerns
        .as_mut()
        .unwrap()
        .abuse_types
        .push(Some(AbuseType::SexualAbuse));
    assert!(parse(hotline(raw.clone())).is_ok());
    raw.concerns
        .as_mut()
        .unwrap()
        .abuse_types
        .push(Some(AbuseType::Violence));
    let v = parse(hotline(raw)).unwrap_err();
    assert_eq!(fields(&v), ["report.facts.concerns.abuse_types[2]"]);
}

#[test]
fn given_a_police_notification_then_agency_kind_and_case_number_are_checked() {
    let d = directory();
    let ctx = Context {
        directory: &d,
        now_ms: NOW,
        partition: None,
    };
    let raw = RawPoliceNotification {
        police_agency_id: "vn:92/so-y-te".into(),
        officer_id: "ca-301".into(),
        officer_name: "Lê Văn Dũng".into(),
        case_number: " ".into(),
        offence_article: "146".into(),
        offence_description: "Tội dâm ô đối với người dưới 16 tuổi".into(),
        occurred_at_ms: Some(NOW - 2 * DAY_MS),
        facts: Some(facts()),
        ..Default::default()
    };
    let v = parse_police(raw.clone(), "notification", &ctx).unwrap_err();
    assert_eq!(
        fields(&v),
        ["notification.police_agency_id", "notification.case_number"]
    );
    assert!(v.0[0].rule.contains("not police"));
    let ok = parse_police(
        RawPoliceNotification {
            police_agency_id: "vn:92/cong-an".into(),
            case_number: "BB-2026/118".into(),
            ..raw
        },
        "notification",
        &ctx,
    )
    .unwrap();
    assert_eq!(ok.channel(), Channel::Police);
    assert_eq!(ok.police_case_number(), Some("BB-2026/118"));
}

#[test]
fn given_a_police_notification_of_a_2024_offence_then_its_occurred_at_lets_the_former_ward_be_named()
 {
    let d = directory();
    let ctx = Context {
        directory: &d,
        now_ms: NOW,
        partition: None,
    };
    let mut facts = facts();
    facts.incident_place.as_mut().unwrap().unit_id = "vn-pre2025:31318".into();
    let raw = RawPoliceNotification {
        police_agency_id: "vn:92/cong-an".into(),
        officer_id: "ca-301".into(),
        officer_name: "Lê Văn Dũng".into(),
        case_number: "BB-2026/7".into(),
        offence_article: "146".into(),
        offence_description: "Tội dâm ô đối với người dưới 16 tuổi".into(),
        occurred_at_ms: Some(IN_2024),
        facts: Some(facts),
        ..Default::default()
    };
    let ok = parse_police(raw.clone(), "notification", &ctx).unwrap();
    assert_eq!(ok.facts().responsible_unit(), "vn:31321");
    // Without it the former ward is refused, naming its successor.
    let v = parse_police(
        RawPoliceNotification {
            occurred_at_ms: Some(NOW - DAY_MS),
            ..raw
        },
        "notification",
        &ctx,
    )
    .unwrap_err();
    assert_eq!(fields(&v), ["notification.facts.incident_place.unit_id"]);
    assert!(v.0[0].rule.contains("vn:31321"), "{v}");
}

fn prior(
    name: &str,
    age: Age,
    years: u32,
    unit: &str,
    received: i64,
    case: Option<(Uuid, i64)>,
) -> Prior {
    Prior {
        intake_id: Uuid::from_u128(u128::from(years) + received as u128),
        name_key: crate::text::search_key(name),
        age,
        age_years: years,
        incident_unit_id: unit.into(),
        received_at_ms: received,
        case,
        case_closed: false,
    }
}

/// The duplicate check over `priors` in any order, as a read model hands
/// them: each kind newest first.
fn check(facts: &ReportFacts, priors: &[Prior]) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut newest_first: Vec<&Prior> = priors.iter().collect();
    newest_first.sort_by_key(|p| std::cmp::Reverse(compared_at(p.received_at_ms, p.case)));
    possible_duplicates(
        facts,
        newest_first.iter().copied(),
        newest_first.iter().copied(),
    )
}

#[test]
fn given_an_open_case_about_the_same_child_within_30_days_then_flagged_not_merged() {
    let report = parse(hotline(facts())).unwrap();
    let case = Uuid::from_u128(7);
    let other_case = Uuid::from_u128(8);
    let unit = "vn:31135";
    let priors = [
        // same child, case opened 10 days ago: flagged
        prior(
            "NGUYEN VAN AN",
            Age::EstimatedYears(10),
            10,
            unit,
            NOW - 11 * DAY_MS,
            Some((case, NOW - 10 * DAY_MS)),
        ),
        // same child but case opened 40 days ago: not flagged
        prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(9),
            9,
            unit,
            NOW - 41 * DAY_MS,
            Some((other_case, NOW - 40 * DAY_MS)),
        ),
        // another commune: not flagged
        prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(9),
            9,
            "vn:92",
            NOW - DAY_MS,
            Some((other_case, NOW - DAY_MS)),
        ),
        // age differs by 2: not flagged
        prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(11),
            11,
            unit,
            NOW - DAY_MS,
            Some((other_case, NOW - DAY_MS)),
        ),
        // same child, not yet handed over: flagged as an intake
        prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(8),
            8,
            unit,
            NOW - 3_600_000,
            None,
        ),
    ];
    let (cases, intakes) = check(report.facts(), &priors);
    assert_eq!(cases, [case]);
    assert_eq!(intakes, [priors[4].intake_id]);
}

#[test]
fn given_the_same_child_reported_hundreds_of_times_then_only_the_most_recent_are_named() {
    // Found by the whole-node load test, which reports one child over and
    // over: past about 840 open cases the list made the next report's
    // event larger than an event may be, and every report was refused.
    let report = parse(hotline(facts())).unwrap();
    let unit = "vn:31135";
    let minute = 60_000;
    let mut priors = Vec::new();
    for i in 0..900_i64 {
        let received = NOW - (i + 1) * minute;
        let case = (i % 2 == 0).then(|| (Uuid::from_u128(1_000_000 + i as u128), received));
        priors.push(prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(9),
            9,
            unit,
            received,
            case,
        ));
    }
    // A case named by two reports counts once.
    priors.push(prior(
        "Nguyễn Văn An",
        Age::EstimatedYears(9),
        9,
        unit,
        NOW - 30 * minute,
        Some((Uuid::from_u128(1_000_000), NOW - minute)),
    ));
    let (cases, intakes) = check(report.facts(), &priors);
    let newest = |case: bool| -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = priors
            .iter()
            .take(2 * MAX_POSSIBLE_DUPLICATES)
            .filter_map(|p| match (case, p.case) {
                (true, Some((id, _))) => Some(id),
                (false, None) => Some(p.intake_id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(cases.len(), MAX_POSSIBLE_DUPLICATES);
    assert_eq!(cases, newest(true));
    assert_eq!(intakes.len(), MAX_POSSIBLE_DUPLICATES);
    assert_eq!(intakes, newest(false));
}

/// `priors` counting how many the check reads.
fn counted<'a>(
    priors: &'a [Prior],
    read: &'a std::cell::Cell<usize>,
) -> impl Iterator<Item = &'a Prior> {
    priors.iter().inspect(move |_| read.set(read.get() + 1))
}

#[test]
fn given_a_child_reported_thousands_of_times_in_a_month_when_checked_then_only_the_newest_are_read()
{
    // A flood of calls about one child (a viral video, a bench) made every
    // next report read every earlier one of the month: each report cost
    // more than the one before.
    let report = parse(hotline(facts())).unwrap();
    let unit = "vn:31135";
    let minute = 60_000;
    let one = |i: i64, case: bool| {
        let received = NOW - (i + 1) * minute;
        let case = case.then(|| (Uuid::from_u128(1_000_000 + i as u128), received + 1));
        prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(9),
            9,
            unit,
            received,
            case,
        )
    };
    let handed: Vec<Prior> = (0..5_000).map(|i| one(i, true)).collect();
    let waiting: Vec<Prior> = (0..3).map(|i| one(i, false)).collect();
    let (read_handed, read_waiting) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let (cases, intakes) = possible_duplicates(
        report.facts(),
        counted(&handed, &read_handed),
        counted(&waiting, &read_waiting),
    );
    let newest: Vec<Uuid> = handed[..MAX_POSSIBLE_DUPLICATES]
        .iter()
        .map(|p| p.case.unwrap().0)
        .collect();
    assert_eq!(cases, sorted(newest));
    assert_eq!(
        intakes,
        sorted(waiting.iter().map(|p| p.intake_id).collect())
    );
    // Twenty cases and the one that shows no later one can rank higher.
    assert_eq!(read_handed.get(), MAX_POSSIBLE_DUPLICATES + 1);
    assert_eq!(read_waiting.get(), 3);
    // The same answer as reading all of them in any order.
    let mut all = handed.clone();
    all.extend(waiting.iter().cloned());
    all.reverse();
    assert_eq!(check(report.facts(), &all), (cases, intakes));
}

#[test]
fn given_more_cases_of_one_time_than_named_when_checked_then_all_of_that_time_are_read_and_the_lowest_ids_named()
 {
    let report = parse(hotline(facts())).unwrap();
    let unit = "vn:31135";
    let at = NOW - DAY_MS;
    let case = |n: u128, opened: i64| {
        prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(9),
            9,
            unit,
            opened - 1,
            Some((Uuid::from_u128(n), opened)),
        )
    };
    // Ten newer cases, then 30 opened in the same millisecond (highest
    // ids first, as they may come), then older ones.
    let mut priors: Vec<Prior> = (0..10)
        .map(|n| case(500 + n, at + 1_000 - n as i64))
        .collect();
    priors.extend((0..30).rev().map(|n| case(100 + n, at)));
    priors.extend((0..50).map(|n| case(900 + n, at - 1 - n as i64)));
    let read = std::cell::Cell::new(0);
    let (cases, _) = possible_duplicates(report.facts(), counted(&priors, &read), [] as [Prior; 0]);
    let mut expected: Vec<Uuid> = (0..10).map(|n| Uuid::from_u128(500 + n)).collect();
    expected.extend((0..10).map(|n| Uuid::from_u128(100 + n)));
    assert_eq!(cases, sorted(expected));
    assert_eq!(read.get(), 10 + 30 + 1);
}

#[test]
fn given_earlier_reports_of_another_child_or_closed_cases_when_checked_then_they_do_not_count_towards_the_twenty()
 {
    let report = parse(hotline(facts())).unwrap();
    let unit = "vn:31135";
    let mut priors = Vec::new();
    for i in 0..150_i64 {
        let opened = NOW - (i + 1) * 60_000;
        let mut p = prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(if i % 3 == 0 { 9 } else { 14 }),
            if i % 3 == 0 { 9 } else { 14 },
            unit,
            opened - 1,
            Some((Uuid::from_u128(2_000 + i as u128), opened)),
        );
        p.case_closed = i % 3 == 0 && i % 2 == 0;
        priors.push(p);
    }
    let (cases, _) = check(report.facts(), &priors);
    // Of every third (the same age), the odd ones (open): the 20 newest
    // of those 25.
    let expected: Vec<Uuid> = (0..150)
        .filter(|i| i % 3 == 0 && i % 2 == 1)
        .take(MAX_POSSIBLE_DUPLICATES)
        .map(|i| Uuid::from_u128(2_000 + i))
        .collect();
    assert_eq!(cases, sorted(expected));
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort_unstable();
    ids
}

#[test]
fn given_birth_dates_on_both_then_they_must_match_and_an_unnamed_child_is_never_matched() {
    let mut raw = facts();
    let child = raw.child.as_mut().unwrap();
    child.estimated_age_years = None;
    child.date_of_birth = Some("2017-03-04".into());
    let report = parse(hotline(raw.clone())).unwrap();
    let unit = "vn:31135";
    let dob = |d| Age::DateOfBirth(d);
    let priors = [
        prior(
            "Nguyễn Văn An",
            dob(date!(2017 - 03 - 05)),
            9,
            unit,
            NOW - DAY_MS,
            Some((Uuid::from_u128(1), NOW - DAY_MS)),
        ),
        prior(
            "Nguyễn Văn An",
            dob(date!(2017 - 03 - 04)),
            9,
            unit,
            NOW - DAY_MS,
            Some((Uuid::from_u128(2), NOW - DAY_MS)),
        ),
    ];
    assert_eq!(check(report.facts(), &priors).0, [Uuid::from_u128(2)]);
    raw.child.as_mut().unwrap().full_name = String::new();
    let unnamed = parse(hotline(raw)).unwrap();
    assert_eq!(check(unnamed.facts(), &priors), (vec![], vec![]));
}

#[test]
fn events_round_trip_through_their_stored_json() {
    let report = parse(hotline(facts())).unwrap();
    let event = IntakeRecorded {
        intake_id: Uuid::from_u128(1),
        report,
        outside_child_law: false,
        possible_duplicate_case_ids: vec![],
        possible_duplicate_intake_ids: vec![],
        consent_possible_from: None,
        sealed: None,
    };
    let json = serde_json::to_string(&event).unwrap();
    assert!(json.contains(r#""kind":"hotline""#), "{json}");
    assert!(json.contains(r#""estimated_years":9"#), "{json}");
    assert_eq!(
        serde_json::from_str::<IntakeRecorded>(&json).unwrap(),
        event
    );
}

#[test]
fn given_the_matching_case_was_closed_then_it_is_not_a_candidate() {
    let report = parse(hotline(facts())).unwrap();
    let unit = "vn:31135";
    let mut closed = prior(
        "Nguyễn Văn An",
        Age::EstimatedYears(9),
        9,
        unit,
        NOW - DAY_MS,
        Some((Uuid::from_u128(5), NOW - DAY_MS)),
    );
    closed.case_closed = true;
    assert_eq!(
        check(report.facts(), std::slice::from_ref(&closed)),
        (vec![], vec![])
    );
    closed.case_closed = false;
    assert_eq!(
        check(report.facts(), std::slice::from_ref(&closed)).0,
        [Uuid::from_u128(5)]
    );
}

#[test]
fn given_a_report_when_its_confidential_fields_are_taken_then_none_is_left_and_they_restore_exactly()
 {
    let report = parse(hotline(facts())).unwrap();
    let mut event = IntakeRecorded {
        intake_id: Uuid::from_u128(1),
        report,
        outside_child_law: false,
        possible_duplicate_case_ids: vec![],
        possible_duplicate_intake_ids: vec![],
        consent_possible_from: None,
        sealed: None,
    };
    let original = event.clone();
    let name = original.report.facts().child.full_name.clone();
    let address = original.report.facts().incident_place.address.clone();
    assert!(!name.is_empty() && !address.is_empty());
    let confidential = event.take_confidential();
    let left = serde_json::to_string(&event).unwrap();
    assert!(!left.contains(&name), "{left}");
    assert!(!left.contains(&address), "{left}");
    assert!(!left.contains(&original.report.facts().narrative), "{left}");
    // What the procedure and the statistics need stays in clear.
    assert_eq!(
        event.report.facts().child.age_years,
        original.report.facts().child.age_years
    );
    assert_eq!(
        event.report.facts().incident_place.unit_id,
        original.report.facts().incident_place.unit_id
    );
    assert_eq!(
        event.report.facts().concerns,
        original.report.facts().concerns
    );
    event.restore_confidential(confidential);
    assert_eq!(event, original);
}

#[test]
fn given_an_estimated_age_then_the_youngest_possible_age_decides_whether_the_child_law_applies() {
    let child = |age: Age, years: u32| Child {
        full_name: String::new(),
        name_key: String::new(),
        age,
        age_years: years,
        sex: Sex::Female,
        ethnicity: String::new(),
        current_condition: String::new(),
    };
    // A guessed 16 may be 15: inside the Law on Children, with its clocks.
    let guessed = child(Age::EstimatedYears(16), 16);
    assert_eq!(guessed.youngest_possible_age(), 15);
    assert!(!outside_child_law(guessed.youngest_possible_age()));
    // A guessed 17 is at least 16.
    assert!(outside_child_law(
        child(Age::EstimatedYears(17), 17).youngest_possible_age()
    ));
    // A known birth date decides exactly.
    let born = child(Age::DateOfBirth(::time::macros::date!(2010 - 01 - 01)), 16);
    assert_eq!(born.youngest_possible_age(), 16);
    assert!(outside_child_law(born.youngest_possible_age()));
    assert_eq!(child(Age::EstimatedYears(0), 0).youngest_possible_age(), 0);
}

#[test]
fn given_health_ethnicity_and_what_was_done_then_they_are_sealed_too_and_an_older_seal_leaves_them_in_clear()
 {
    let mut raw = facts();
    if let Some(child) = raw.child.as_mut() {
        child.ethnicity = "Khmer".into();
        child.current_condition = "gãy tay trái".into();
    }
    raw.actions_taken = "đã báo công an xã".into();
    raw.likely_consequence = "tiếp tục bị đánh".into();
    let report = parse(hotline(raw)).unwrap();
    let mut event = IntakeRecorded {
        intake_id: Uuid::from_u128(1),
        report,
        outside_child_law: false,
        possible_duplicate_case_ids: vec![],
        possible_duplicate_intake_ids: vec![],
        consent_possible_from: None,
        sealed: None,
    };
    let original = event.clone();
    let confidential = event.take_confidential();
    let left = serde_json::to_string(&event).unwrap();
    for secret in [
        "Khmer",
        "gãy tay trái",
        "đã báo công an xã",
        "tiếp tục bị đánh",
    ] {
        assert!(!left.contains(secret), "{secret} left in clear: {left}");
    }
    event.restore_confidential(confidential.clone());
    assert_eq!(event, original);
    // A report sealed before these fields were: its blob has none of them,
    // and the clear values stay.
    let mut older = original.clone();
    let mut old_blob = confidential;
    old_blob.child_ethnicity = None;
    old_blob.child_current_condition = None;
    old_blob.actions_taken = None;
    old_blob.likely_consequence = None;
    older.restore_confidential(old_blob);
    assert_eq!(older.report.facts().child.ethnicity, "Khmer");
    assert_eq!(older.report.facts().actions_taken, "đã báo công an xã");
}

#[test]
fn given_a_birth_date_known_only_to_the_month_or_year_then_the_youngest_possible_age_counts() {
    // NOW is 29 November 2026 in Vietnam.
    let age_of = |dob: &str| {
        let mut raw = facts();
        raw.child.as_mut().unwrap().estimated_age_years = None;
        raw.child.as_mut().unwrap().date_of_birth = Some(dob.into());
        parse(hotline(raw)).map(|r| r.facts().child.clone())
    };
    // Born some time in 2010: may have turned 16 only on 31 December.
    let child = age_of("2010").unwrap();
    assert_eq!(
        child.age,
        Age::PartialDateOfBirth {
            year: 2010,
            month: None
        }
    );
    assert_eq!(child.age_years, 15);
    assert!(!outside_child_law(child.youngest_possible_age()));
    // An exact date in January 2010 would be 16.
    assert_eq!(age_of("2010-01-05").unwrap().age_years, 16);
    assert_eq!(age_of("2014-06").unwrap().age_years, 12);
    // This month of this year: not in the future, age 0.
    assert_eq!(age_of("2026-11").unwrap().age_years, 0);
    for bad in ["2026-13", "14-06", "2014-6", "2014-06-31", "2014/06"] {
        let v = age_of(bad).unwrap_err();
        assert_eq!(fields(&v), ["report.facts.child.date_of_birth"], "{bad}");
        assert!(v.0[0].rule.contains("YYYY-MM or YYYY"), "{bad}: {v}");
    }
    let v = age_of("2027").unwrap_err();
    assert!(v.0[0].rule.contains("future"), "{v}");
}

#[test]
fn given_a_partial_birth_date_when_sealed_and_restored_then_it_comes_back_as_written() {
    let mut raw = facts();
    raw.child.as_mut().unwrap().estimated_age_years = None;
    raw.child.as_mut().unwrap().date_of_birth = Some("2014-06".into());
    let original = IntakeRecorded {
        intake_id: Uuid::from_u128(1),
        report: parse(hotline(raw)).unwrap(),
        outside_child_law: false,
        possible_duplicate_case_ids: vec![],
        possible_duplicate_intake_ids: vec![],
        consent_possible_from: None,
        sealed: None,
    };
    let mut event = original.clone();
    let confidential = event.take_confidential();
    assert_eq!(confidential.child_date_of_birth.as_deref(), Some("2014-06"));
    assert_eq!(event.report.facts().child.age, Age::EstimatedYears(12));
    event.restore_confidential(confidential);
    assert_eq!(event, original);
}

#[test]
fn given_a_young_child_then_the_month_she_may_first_be_7_leaves_intake_not_her_birth_date() {
    let on = date!(2026 - 11 - 29);
    let born = |d| Age::DateOfBirth(d);
    // Born 15 March 2020: 7 on 15 March 2027; from 1 March on.
    assert_eq!(
        born(date!(2020 - 03 - 15)).consent_possible_from(on),
        Some(date!(2027 - 03 - 01))
    );
    // Already 7: the age on the report decides.
    assert_eq!(born(date!(2019 - 01 - 01)).consent_possible_from(on), None);
    // Known to the year: the oldest she may be, from 1 January 2027.
    assert_eq!(
        Age::PartialDateOfBirth {
            year: 2020,
            month: None
        }
        .consent_possible_from(on),
        Some(date!(2027 - 01 - 01))
    );
    // An estimated 6 may turn 7 tomorrow: from this month.
    assert_eq!(
        Age::EstimatedYears(6).consent_possible_from(on),
        Some(date!(2026 - 11 - 01))
    );
    assert_eq!(Age::EstimatedYears(7).consent_possible_from(on), None);
    assert_eq!(
        Age::EstimatedYears(3).consent_possible_from(on),
        Some(date!(2029 - 11 - 01))
    );
}

#[test]
fn given_a_report_when_its_duplicate_window_is_asked_then_it_holds_exactly_the_times_the_check_accepts()
 {
    // A read model hands the check only the reports whose time is in the
    // window: so the window must not leave out one the check would flag.
    let report = parse(hotline(facts())).unwrap();
    let received = report.facts().received_at_ms;
    let window = duplicate_window(received);
    for (when, flagged) in [
        (received - DUPLICATE_WINDOW_MS - 1, false),
        (received - DUPLICATE_WINDOW_MS, true),
        (received, true),
        (received + CLOCK_SKEW_MS, true),
        (received + CLOCK_SKEW_MS + 1, false),
    ] {
        let priors = [prior(
            "Nguyễn Văn An",
            Age::EstimatedYears(9),
            9,
            "vn:31135",
            when,
            None,
        )];
        let (_, intakes) = check(report.facts(), &priors);
        assert_eq!(!intakes.is_empty(), flagged, "received at {when}");
        assert_eq!(window.contains(&when), flagged, "window at {when}");
    }
}
