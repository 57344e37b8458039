//! [`indicators`]: the table for a period and a unit, the year-earlier
//! comparison and the small-cell suppression.

use super::*;

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The indicator, e.g. `0101`, `injuries`, `handling`.
    pub indicator: String,
    /// Its name in English.
    pub indicator_en: String,
    /// Its name in Vietnamese.
    pub indicator_vi: String,
    /// The dimension: `total`, `sex`, `age_group`, `form`, `unit`, ...
    pub dimension: String,
    /// The cell's key within the dimension.
    pub key: String,
    /// The cell's label in English.
    pub label_en: String,
    /// The cell's label in Vietnamese.
    pub label_vi: String,
    /// The count, or the numerator of a share, or minutes for a duration.
    pub value: u64,
    /// The denominator of a share; 0 for a count or a duration.
    pub of: u64,
    /// `children`, `cases`, `reports`, `share` or `minutes`.
    pub unit: String,
    /// The same cell a year earlier, when asked.
    pub previous: Option<u64>,
    /// Hidden: a count of children below the small-cell threshold.
    pub suppressed: bool,
}

pub(super) struct Builder {
    rows: Vec<Row>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        indicator: (&str, &str, &str),
        dimension: &str,
        key: &str,
        label_en: &str,
        label_vi: &str,
        value: u64,
        of: u64,
        unit: &str,
    ) {
        self.rows.push(Row {
            indicator: indicator.0.to_owned(),
            indicator_en: indicator.1.to_owned(),
            indicator_vi: indicator.2.to_owned(),
            dimension: dimension.to_owned(),
            key: key.to_owned(),
            label_en: label_en.to_owned(),
            label_vi: label_vi.to_owned(),
            value,
            of,
            unit: unit.to_owned(),
            previous: None,
            suppressed: false,
        });
    }
}

pub(super) fn count<'a>(
    cases: impl Iterator<Item = &'a CaseRecord>,
    f: impl Fn(&CaseRecord) -> bool,
) -> u64 {
    cases.filter(|c| f(c)).count() as u64
}

/// The nearest-rank percentile `p` (0–100) of sorted minutes.
pub(super) fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1);
    sorted[(rank - 1) as usize]
}

pub(super) const ABUSED: (&str, &str, &str) = ("0101", "Abused children", "Số trẻ em bị xâm hại");
pub(super) const UNCONFIRMED: (&str, &str, &str) = (
    "0101-unconfirmed",
    "Reported abuse not (yet) confirmed (not in 0101)",
    "Tin báo xâm hại chưa được xác minh (không tính vào 0101)",
);
pub(super) const INJURED: (&str, &str, &str) = (
    "injuries",
    "Child injuries",
    "Trẻ em bị tai nạn thương tích",
);
pub(super) const SPECIAL_IND: (&str, &str, &str) = (
    "special_circumstances",
    "Children in special circumstances",
    "Trẻ em có hoàn cảnh đặc biệt",
);
pub(super) const HANDLING: (&str, &str, &str) = (
    "handling",
    "Case handling against the law's clocks",
    "Xử lý vụ việc theo thời hạn luật định",
);
pub(super) const REFERRALS: (&str, &str, &str) = (
    "referrals",
    "Referrals acknowledged in time",
    "Chuyển tuyến được tiếp nhận đúng hạn",
);
pub(super) const REPORTS: (&str, &str, &str) =
    ("reports", "Reports received", "Số tin báo tiếp nhận");

/// The table for `period`, for the cases of `unit` (a commune or a
/// province; `None`: every case).
///
/// A case counts under its incident unit while that unit was in force on
/// the period's last day, and under its successor for periods ending after
/// the unit ended ([`Directory::roll_up`]): a 2024 case in a former Hậu
/// Giang ward counts under that ward in 2024 and under today's commune (and
/// Cần Thơ) in a period ending in 2026. A province counts the cases of its
/// communes as rolled up.
#[must_use]
pub fn indicators(
    records: &Records,
    period: &Period,
    unit: Option<&str>,
    directory: &Directory,
    defs: &Definitions,
) -> Vec<Row> {
    let unit = unit.map(|u| directory.canonical_unit(u));
    let unit_of =
        |c: &CaseRecord| directory.roll_up(&c.unit_id, &c.responsible_unit_id, period.last_day);
    let in_unit = |c: &&CaseRecord| {
        unit.is_none_or(|u| {
            let at = unit_of(c);
            at == u || directory.province_of(&at).is_some_and(|p| p.id == u)
        })
    };
    let cases: Vec<&CaseRecord> = records
        .cases()
        .values()
        .filter(in_unit)
        .filter(|c| period.contains(c.received_at_ms))
        .collect();
    let mut b = Builder { rows: Vec::new() };

    // 0101: abused children under 16; 16–17 apart.
    let apart = |c: &CaseRecord| defs.age_group(c.age_years).is_some_and(|g| g.apart);
    let abused: Vec<&CaseRecord> = cases
        .iter()
        .copied()
        .filter(|c| !c.abuse.is_empty())
        .collect();
    let under16: Vec<&CaseRecord> = abused.iter().copied().filter(|c| !apart(c)).collect();
    b.push(
        ABUSED,
        "total",
        "total",
        "Total (under 16)",
        "Tổng số (dưới 16 tuổi)",
        under16.len() as u64,
        0,
        "children",
    );
    for (sex, key, en, vi) in SEXES {
        b.push(
            ABUSED,
            "sex",
            key,
            en,
            vi,
            count(under16.iter().copied(), |c| c.sex == sex),
            0,
            "children",
        );
    }
    for group in &defs.age_groups {
        let n = count(abused.iter().copied(), |c| {
            defs.age_group(c.age_years)
                .is_some_and(|g| g.key == group.key)
        });
        b.push(
            ABUSED,
            "age_group",
            &group.key,
            &group.en,
            &group.vi,
            n,
            0,
            "children",
        );
    }
    b.push(
        ABUSED,
        "age_group",
        "unknown",
        "Age unknown",
        "Không rõ tuổi",
        count(abused.iter().copied(), |c| {
            defs.age_group(c.age_years).is_none()
        }),
        0,
        "children",
    );
    for (a, key, en, vi) in ABUSE {
        let k = abuse_key(a);
        b.push(
            ABUSED,
            "form",
            key,
            en,
            vi,
            count(under16.iter().copied(), |c| c.abuse.contains(&k)),
            0,
            "children",
        );
    }
    for (setting, key, en, vi) in SETTINGS {
        b.push(
            ABUSED,
            "setting",
            key,
            en,
            vi,
            count(under16.iter().copied(), |c| c.setting == setting),
            0,
            "children",
        );
    }
    // By month of the report, and by month and form (for charts).
    let mut by_month: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_month_form: BTreeMap<(String, AbuseKey), u64> = BTreeMap::new();
    for c in &under16 {
        let month = month_of(c.received_at_ms);
        *by_month.entry(month.clone()).or_default() += 1;
        for form in &c.abuse {
            *by_month_form.entry((month.clone(), *form)).or_default() += 1;
        }
    }
    for (month, n) in by_month {
        b.push(
            ABUSED,
            "month",
            &month,
            &month,
            &format!("Tháng {month}"),
            n,
            0,
            "children",
        );
    }
    for ((month, form), n) in by_month_form {
        let (_, key, en, vi) = ABUSE[usize::from(form).min(ABUSE.len() - 1)];
        b.push(
            ABUSED,
            "month_form",
            &format!("{month}/{key}"),
            &format!("{month} {en}"),
            &format!("Tháng {month} {vi}"),
            n,
            0,
            "children",
        );
    }
    let mut units: BTreeMap<String, u64> = BTreeMap::new();
    for c in &under16 {
        *units.entry(unit_of(c)).or_default() += 1;
    }
    for (u, n) in &units {
        b.push(ABUSED, "unit", u, u, u, *n, 0, "children");
    }

    // Beside 0101: reported abuse not verified yet, never counted in it.
    let young: Vec<&CaseRecord> = cases.iter().copied().filter(|c| !apart(c)).collect();
    b.push(
        UNCONFIRMED,
        "total",
        "total",
        "Total (under 16, no form confirmed)",
        "Tổng số (dưới 16 tuổi, chưa xác minh hình thức nào)",
        count(young.iter().copied(), |c| {
            c.abuse.is_empty() && !c.unverified_abuse().is_empty()
        }),
        0,
        "children",
    );
    for (a, key, en, vi) in ABUSE {
        let k = abuse_key(a);
        b.push(
            UNCONFIRMED,
            "form",
            key,
            en,
            vi,
            count(young.iter().copied(), |c| c.unverified_abuse().contains(&k)),
            0,
            "children",
        );
    }

    // Only the breakdowns the definitions ask for.
    b.rows.retain(|r| {
        r.indicator != ABUSED.0
            || r.dimension == "total"
            || defs.abused_children_breakdowns.contains(&r.dimension)
    });

    // Injuries, by cause (drowning first) and outcome; deaths apart.
    let injured: Vec<&CaseRecord> = cases
        .iter()
        .copied()
        .filter(|c| c.injury.is_some())
        .collect();
    b.push(
        INJURED,
        "total",
        "total",
        "Total",
        "Tổng số",
        injured.len() as u64,
        0,
        "children",
    );
    for (cause, key, en, vi) in INJURY_CAUSES {
        b.push(
            INJURED,
            "cause",
            key,
            en,
            vi,
            count(injured.iter().copied(), |c| {
                c.injury.is_some_and(|i| i.0 == cause)
            }),
            0,
            "children",
        );
    }
    for (outcome, key, en, vi) in INJURY_OUTCOMES {
        b.push(
            INJURED,
            "outcome",
            key,
            en,
            vi,
            count(injured.iter().copied(), |c| {
                c.injury.is_some_and(|i| i.1 == outcome)
            }),
            0,
            "children",
        );
    }

    // Special circumstances, by group; the share supported.
    let special: Vec<&CaseRecord> = cases
        .iter()
        .copied()
        .filter(|c| !c.special.is_empty())
        .collect();
    b.push(
        SPECIAL_IND,
        "total",
        "total",
        "Total",
        "Tổng số",
        special.len() as u64,
        0,
        "children",
    );
    for (s, key, en, vi) in SPECIAL {
        let k = special_key(s);
        b.push(
            SPECIAL_IND,
            "group",
            key,
            en,
            vi,
            count(special.iter().copied(), |c| c.special.contains(&k)),
            0,
            "children",
        );
    }
    b.push(
        SPECIAL_IND,
        "supported",
        "supported",
        "Helped: an emergency measure, an intervention or a completed referral",
        "Được trợ giúp: biện pháp khẩn cấp, can thiệp hoặc chuyển tuyến đã hoàn thành",
        count(special.iter().copied(), |c| c.supported),
        special.len() as u64,
        "share",
    );

    // Handling: deadlines met in time; time to first action and closure.
    for (kind, key, en, vi) in DEADLINES {
        let k = deadline_key(kind);
        let decided: Vec<DeadlineOutcome> = cases
            .iter()
            .filter_map(|c| c.deadlines.get(&k).copied())
            .collect();
        let in_time = decided
            .iter()
            .filter(|o| **o == DeadlineOutcome::InTime)
            .count() as u64;
        b.push(
            HANDLING,
            "deadline",
            key,
            en,
            vi,
            in_time,
            decided.len() as u64,
            "share",
        );
    }
    let minutes = |f: &dyn Fn(&CaseRecord) -> Option<i64>| -> Vec<u64> {
        let mut m: Vec<u64> = cases
            .iter()
            .filter_map(|c| f(c).map(|at| (at - c.received_at_ms).max(0) as u64 / 60_000))
            .collect();
        m.sort_unstable();
        m
    };
    let first = minutes(&|c| c.first_action_ms);
    let closed = minutes(&|c| c.closed_ms);
    for (name, en, vi, sorted) in [
        (
            "first_action",
            "report to first action",
            "từ tin báo đến hành động đầu tiên",
            &first,
        ),
        (
            "closure",
            "report to closure",
            "từ tin báo đến đóng hồ sơ",
            &closed,
        ),
    ] {
        b.push(
            HANDLING,
            name,
            "median",
            &format!("Median, {en}"),
            &format!("Trung vị, {vi}"),
            percentile(sorted, 50),
            0,
            "minutes",
        );
        b.push(
            HANDLING,
            name,
            "p90",
            &format!("90th percentile, {en}"),
            &format!("Bách phân vị 90, {vi}"),
            percentile(sorted, 90),
            0,
            "minutes",
        );
        b.push(
            HANDLING,
            name,
            "cases",
            &format!("Cases measured, {en}"),
            &format!("Số vụ việc, {vi}"),
            sorted.len() as u64,
            0,
            "cases",
        );
    }

    // Referrals acknowledged in time, by agency.
    let mut by_agency: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in cases
        .iter()
        .flat_map(|c| c.referrals.values())
        .filter(|r| r.offered)
    {
        let entry = by_agency.entry(r.agency_id.as_str()).or_default();
        entry.1 += 1;
        if r.acknowledged && !r.escalated_first {
            entry.0 += 1;
        }
    }
    for (agency, (in_time, all)) in by_agency {
        b.push(
            REFERRALS, "agency", agency, agency, agency, in_time, all, "share",
        );
    }

    // Reports by channel and by month (every report in the period, of the
    // unit's cases, whenever the case was opened).
    let reports: Vec<(i64, Channel)> = records
        .cases()
        .values()
        .filter(in_unit)
        .flat_map(|c| c.reports.iter().copied())
        .filter(|(at, _)| period.contains(*at))
        .collect();
    b.push(
        REPORTS,
        "total",
        "total",
        "Total",
        "Tổng số",
        reports.len() as u64,
        0,
        "reports",
    );
    for (channel, key, en, vi) in CHANNELS {
        b.push(
            REPORTS,
            "channel",
            key,
            en,
            vi,
            reports.iter().filter(|r| r.1 == channel).count() as u64,
            0,
            "reports",
        );
    }
    // The plan's grouping: the 111 hotline (any of its channels), the
    // police, anything else.
    for (key, en, vi, matches) in [
        (
            "111",
            "Hotline 111",
            "Tổng đài 111",
            &(|c: Channel| {
                matches!(
                    c,
                    Channel::Phone | Channel::Zalo | Channel::App | Channel::Web
                )
            }) as &dyn Fn(Channel) -> bool,
        ),
        ("police", "Police", "Công an", &|c| c == Channel::Police),
        ("other", "Other", "Khác", &|c| {
            matches!(c, Channel::InPerson | Channel::Letter | Channel::Press)
        }),
    ] {
        let n = reports.iter().filter(|r| matches(r.1)).count() as u64;
        b.push(REPORTS, "channel_group", key, en, vi, n, 0, "reports");
    }
    let mut months: BTreeMap<String, u64> = BTreeMap::new();
    for (at, _) in &reports {
        *months.entry(month_of(*at)).or_default() += 1;
    }
    for (month, n) in months {
        b.push(
            REPORTS,
            "month",
            &month,
            &month,
            &format!("Tháng {month}"),
            n,
            0,
            "reports",
        );
    }
    b.rows
}

/// `YYYY-MM` of an instant, in Vietnam.
pub(super) fn month_of(ms: i64) -> String {
    let day = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map_or(Date::MIN, |t| t.to_offset(VIETNAM).date());
    format!("{:04}-{:02}", day.year(), u8::from(day.month()))
}

/// Adds the same cells of `earlier` as `previous` (0 where it has none).
pub fn compare(rows: &mut [Row], earlier: &[Row]) {
    let index: BTreeMap<(&str, &str, &str), u64> = earlier
        .iter()
        .map(|r| {
            (
                (r.indicator.as_str(), r.dimension.as_str(), r.key.as_str()),
                r.value,
            )
        })
        .collect();
    for row in rows {
        row.previous = Some(
            index
                .get(&(
                    row.indicator.as_str(),
                    row.dimension.as_str(),
                    row.key.as_str(),
                ))
                .copied()
                .unwrap_or(0),
        );
    }
}

/// Hides counts of children from 1 to `threshold - 1` (and their year
/// earlier figure): a small count in a small unit can name a child.
pub fn suppress_small_cells(rows: &mut [Row], threshold: u64) {
    for row in rows.iter_mut().filter(|r| r.unit == "children") {
        let small = |n: u64| n > 0 && n < threshold;
        if small(row.value) || row.previous.is_some_and(small) {
            row.value = 0;
            row.previous = row.previous.map(|_| 0);
            row.suppressed = true;
        }
    }
}
