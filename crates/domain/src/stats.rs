//! Statistics: the Thông tư 13/2021 indicators and the plan's handling
//! figures, computed from case events only, so that the same events give
//! the same table, byte for byte.
//!
//! - [`Definitions`]: what can change without a release (age groups, the
//!   small-cell threshold), read from a configuration file
//!   (`deploy/statistics/indicators.json`).
//! - [`Period`]: a range of days in Asia/Ho_Chi_Minh time (UTC+7, no
//!   daylight saving): `2022`, `2022-H1`, `2022-Q3`, `2022-05`, or
//!   `2022-01-01..2022-06-30`.
//! - [`Records`]: one [`CaseRecord`] per case, folded from the case's
//!   events ([`Records::apply`]), incrementally.
//! - [`indicators`]: the table for a period and a unit.
//!
//! What counts (each case is one child: follow-up reports join the case of
//! the same child; possible duplicates are flagged, not merged, so a child
//! reported twice into two cases counts twice until an officer closes one):
//! - a case counts in a period when its first report was received in it;
//! - abused children (0101): cases where verification (Mẫu 02 or Mẫu 03)
//!   confirmed at least one form of abuse, children under 16 (Thông tư 13);
//!   16–17-year-olds are shown apart; a form found untrue leaves the count;
//! - reported abuse not (yet) confirmed (`0101-unconfirmed`, beside 0101,
//!   never in it): under-16 children with no confirmed form and a reported
//!   form not yet verified either way, and by form every reported form not
//!   yet verified;
//! - injuries: cases reporting an injury, by cause and by outcome;
//! - special circumstances: cases naming a group; helped when support was
//!   given: an emergency measure taken, an intervention carried out, or a
//!   referral completed (not a plan approved or a referral merely asked);
//! - deadlines: met in time (`DeadlineMet` not late) over those met or
//!   missed; cleared ones (no longer applicable) are left out;
//! - first action: the first officer step (assignment, assessment,
//!   emergency measure) after the report; closure: the first `CaseClosed`;
//! - referrals: acknowledged before any escalation, over the referrals
//!   offered, by receiving agency;
//! - reports: every report (opening or follow-up) by channel and by month
//!   of receipt.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::case::CaseEvent;
use crate::case::DeadlineKind;
use crate::intake::{
    AbuseType, Channel, InjuryCause, InjuryOutcome, Setting, Sex, SpecialCircumstance,
};
use crate::reference::Directory;

/// One age group of the breakdown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeGroup {
    /// Stable key, e.g. `0-5`.
    pub key: String,
    /// English label.
    pub en: String,
    /// Vietnamese label.
    pub vi: String,
    /// Youngest age in the group, in whole years.
    pub min_years: u32,
    /// Oldest age in the group.
    pub max_years: u32,
    /// Shown apart from the under-16 total (16–17: outside the Law on
    /// Children).
    #[serde(default)]
    pub apart: bool,
}

/// What the configuration file defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    /// Age groups, in order.
    pub age_groups: Vec<AgeGroup>,
    /// Counts of children below this (and above 0) are suppressed for
    /// readers outside the child-protection department and auditors.
    pub small_cell_threshold: u64,
    /// The breakdowns of abused children (0101) shown, besides the total:
    /// any of `sex`, `age_group`, `form`, `setting`, `unit`, `month`,
    /// `month_form` (the ministry's breakdowns beyond sex, age and setting
    /// are not fixed). Default: all.
    #[serde(default = "all_breakdowns")]
    pub abused_children_breakdowns: Vec<String>,
}

/// Every breakdown of indicator 0101.
pub const BREAKDOWNS: [&str; 7] = [
    "sex",
    "age_group",
    "form",
    "setting",
    "unit",
    "month",
    "month_form",
];

fn all_breakdowns() -> Vec<String> {
    BREAKDOWNS.iter().map(|b| (*b).to_owned()).collect()
}

impl Definitions {
    /// Parses the configuration file's text.
    ///
    /// # Errors
    /// When it is not valid JSON for [`Definitions`], or the age groups
    /// overlap or are empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        let defs: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (i, b) in defs.abused_children_breakdowns.iter().enumerate() {
            if !BREAKDOWNS.contains(&b.as_str()) {
                return Err(format!(
                    "abused_children_breakdowns[{i}]: {b:?} is not one of {}",
                    BREAKDOWNS.join(", ")
                ));
            }
        }
        if defs.age_groups.is_empty() {
            return Err("age_groups: at least one group is required".into());
        }
        for (i, a) in defs.age_groups.iter().enumerate() {
            if a.min_years > a.max_years {
                return Err(format!("age_groups[{i}]: min_years is above max_years"));
            }
            if defs.age_groups[..i]
                .iter()
                .any(|b| a.min_years <= b.max_years && b.min_years <= a.max_years)
            {
                return Err(format!(
                    "age_groups[{i}] ({}) overlaps an earlier group",
                    a.key
                ));
            }
        }
        Ok(defs)
    }

    fn age_group(&self, years: Option<u32>) -> Option<&AgeGroup> {
        years.and_then(|y| {
            self.age_groups
                .iter()
                .find(|g| g.min_years <= y && y <= g.max_years)
        })
    }
}

/// Vietnam's offset from UTC (no daylight saving).
const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// A range of days in Asia/Ho_Chi_Minh time: `[from_ms, to_ms)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// As asked, e.g. `2022-H1`.
    pub label: String,
    /// First day.
    pub first_day: Date,
    /// Last day (inclusive).
    pub last_day: Date,
}

fn start_ms(day: Date) -> i64 {
    let at = day.midnight().assume_offset(VIETNAM);
    // Whole seconds since the epoch fit i64 milliseconds for any date here.
    at.unix_timestamp().saturating_mul(1000)
}

fn month_days(year: i32, month: Month) -> Result<(Date, Date), String> {
    let first = Date::from_calendar_date(year, month, 1).map_err(|e| e.to_string())?;
    let last =
        Date::from_calendar_date(year, month, month.length(year)).map_err(|e| e.to_string())?;
    Ok((first, last))
}

impl Period {
    /// Parses `2022`, `2022-H1`/`2022-H2`, `2022-Q1`..`Q4`, `2022-05` or
    /// `2022-01-01..2022-06-30` (both days included).
    ///
    /// # Errors
    /// The rule, when it is none of these.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let rule = || {
            format!(
                "period {raw:?} must be a year (2022), a half (2022-H1), a quarter (2022-Q3), a month (2022-05) or days (2022-01-01..2022-06-30)"
            )
        };
        let months = |year: i32, first: u8, last: u8| -> Result<(Date, Date), String> {
            let first = Month::try_from(first).map_err(|e| e.to_string())?;
            let last = Month::try_from(last).map_err(|e| e.to_string())?;
            Ok((month_days(year, first)?.0, month_days(year, last)?.1))
        };
        let (first_day, last_day) = if let Some((a, b)) = raw.split_once("..") {
            (
                crate::time::parse_date(a.trim()).map_err(|_| rule())?,
                crate::time::parse_date(b.trim()).map_err(|_| rule())?,
            )
        } else {
            let (year, rest) = raw.split_once('-').unwrap_or((raw, ""));
            let year: i32 = year.parse().map_err(|_| rule())?;
            if !(1900..=9999).contains(&year) {
                return Err(rule());
            }
            match rest {
                "" => months(year, 1, 12)?,
                "H1" => months(year, 1, 6)?,
                "H2" => months(year, 7, 12)?,
                "Q1" => months(year, 1, 3)?,
                "Q2" => months(year, 4, 6)?,
                "Q3" => months(year, 7, 9)?,
                "Q4" => months(year, 10, 12)?,
                month => {
                    let m: u8 = month.parse().map_err(|_| rule())?;
                    if !(1..=12).contains(&m) || month.len() != 2 {
                        return Err(rule());
                    }
                    months(year, m, m)?
                }
            }
        };
        if last_day < first_day {
            return Err(format!("period {raw:?}: the last day is before the first"));
        }
        Ok(Self {
            label: raw.to_owned(),
            first_day,
            last_day,
        })
    }

    /// `[from_ms, to_ms)` in Unix milliseconds.
    #[must_use]
    pub fn range_ms(&self) -> (i64, i64) {
        let after_last = self.last_day.next_day().unwrap_or(self.last_day);
        (start_ms(self.first_day), start_ms(after_last))
    }

    /// Whether `ms` falls in it.
    #[must_use]
    pub fn contains(&self, ms: i64) -> bool {
        let (from, to) = self.range_ms();
        (from..to).contains(&ms)
    }

    /// The same days one year earlier (29 February becomes 28).
    #[must_use]
    pub fn year_earlier(&self) -> Self {
        let back = |d: Date| {
            Date::from_calendar_date(d.year() - 1, d.month(), d.day())
                .or_else(|_| Date::from_calendar_date(d.year() - 1, d.month(), d.day() - 1))
                .unwrap_or(d)
        };
        Self {
            label: format!("{} (a year earlier)", self.label),
            first_day: back(self.first_day),
            last_day: back(self.last_day),
        }
    }
}

/// How a deadline ended, for the handling figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineOutcome {
    /// Met before it fell due.
    InTime,
    /// Missed (met late or not at all).
    Late,
}

/// A referral as the statistics see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralRecord {
    /// The agency it was offered to (the successor after a merger).
    pub agency_id: String,
    /// Acknowledged.
    pub acknowledged: bool,
    /// Escalated for a missed acknowledgement before it was acknowledged.
    pub escalated_first: bool,
    /// Offered (the referral service took it).
    pub offered: bool,
}

/// One case (one child) as the statistics see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRecord {
    /// When the first report was received.
    pub received_at_ms: i64,
    /// Where it happened.
    pub unit_id: String,
    /// The commune responsible when it opened (the incident unit's
    /// successor for a unit that had ended).
    pub responsible_unit_id: String,
    /// Sex (unknown for cases opened before it was recorded).
    pub sex: Sex,
    /// Where the abuse happened (unknown when not reported).
    pub setting: Setting,
    /// Age in years when reported.
    pub age_years: Option<u32>,
    /// Forms of abuse confirmed by verification (what 0101 counts).
    pub abuse: BTreeSet<AbuseKey>,
    /// Forms of abuse reported, over all its reports.
    pub reported_abuse: BTreeSet<AbuseKey>,
    /// Forms of abuse reported and found untrue.
    pub ruled_out: BTreeSet<AbuseKey>,
    /// The injury reported first, if any.
    pub injury: Option<(InjuryCause, InjuryOutcome)>,
    /// Special-circumstance groups, over all its reports.
    pub special: BTreeSet<SpecialKey>,
    /// Support given: an emergency measure, an intervention or a completed
    /// referral.
    pub supported: bool,
    /// How each deadline ended.
    pub deadlines: BTreeMap<DeadlineKey, DeadlineOutcome>,
    /// The first officer step.
    pub first_action_ms: Option<i64>,
    /// The first closure.
    pub closed_ms: Option<i64>,
    /// Referrals, by id.
    pub referrals: BTreeMap<Uuid, ReferralRecord>,
    /// Every report: when received and how.
    pub reports: Vec<(i64, Channel)>,
}

/// An ordered key for [`AbuseType`].
pub type AbuseKey = u8;
/// An ordered key for [`SpecialCircumstance`].
pub type SpecialKey = u8;
/// An ordered key for [`DeadlineKind`].
pub type DeadlineKey = u8;

const ABUSE: [(AbuseType, &str, &str, &str); 7] = [
    (AbuseType::Violence, "violence", "Violence", "Bạo lực"),
    (
        AbuseType::SexualAbuse,
        "sexual_abuse",
        "Sexual abuse",
        "Xâm hại tình dục",
    ),
    (
        AbuseType::Exploitation,
        "exploitation",
        "Exploitation",
        "Bóc lột",
    ),
    (
        AbuseType::Trafficking,
        "trafficking",
        "Trafficking",
        "Mua bán",
    ),
    (
        AbuseType::Abandonment,
        "abandonment",
        "Abandonment",
        "Bỏ rơi",
    ),
    (AbuseType::Neglect, "neglect", "Neglect", "Bỏ mặc"),
    (
        AbuseType::Other,
        "other",
        "Other harm",
        "Hình thức gây tổn hại khác",
    ),
];

const SPECIAL: [(SpecialCircumstance, &str, &str, &str); 14] = [
    (
        SpecialCircumstance::AOrphaned,
        "a",
        "a) Orphaned",
        "a) Mồ côi cả cha và mẹ",
    ),
    (
        SpecialCircumstance::BAbandoned,
        "b",
        "b) Abandoned",
        "b) Bị bỏ rơi",
    ),
    (
        SpecialCircumstance::CWithoutCarer,
        "c",
        "c) Without a carer",
        "c) Không nơi nương tựa",
    ),
    (
        SpecialCircumstance::DDisabled,
        "d",
        "d) Disabled",
        "d) Khuyết tật",
    ),
    (
        SpecialCircumstance::DdHivAids,
        "dd",
        "đ) Infected with HIV",
        "đ) Nhiễm HIV/AIDS",
    ),
    (
        SpecialCircumstance::EInConflictWithLaw,
        "e",
        "e) In conflict with the law",
        "e) Vi phạm pháp luật",
    ),
    (
        SpecialCircumstance::GDrugAddicted,
        "g",
        "g) Drug-addicted",
        "g) Nghiện ma túy",
    ),
    (
        SpecialCircumstance::HOutOfSchoolWorking,
        "h",
        "h) Left school to earn a living before completing lower-secondary education",
        "h) Bỏ học kiếm sống chưa hoàn thành phổ cập giáo dục trung học cơ sở",
    ),
    (
        SpecialCircumstance::IHarmedByViolence,
        "i",
        "i) Seriously harmed by violence",
        "i) Bị tổn hại nghiêm trọng do bạo lực",
    ),
    (
        SpecialCircumstance::KExploited,
        "k",
        "k) Exploited",
        "k) Bị bóc lột",
    ),
    (
        SpecialCircumstance::LSexuallyAbused,
        "l",
        "l) Sexually abused",
        "l) Bị xâm hại tình dục",
    ),
    (
        SpecialCircumstance::MTrafficked,
        "m",
        "m) Trafficked",
        "m) Bị mua bán",
    ),
    (
        SpecialCircumstance::NSeriouslyIllPoor,
        "n",
        "n) Seriously ill, poor household",
        "n) Mắc bệnh hiểm nghèo, hộ nghèo",
    ),
    (
        SpecialCircumstance::OMigrantUnaccompanied,
        "o",
        "o) Migrant without a carer",
        "o) Di cư, lánh nạn không có người chăm sóc",
    ),
];

// Drowning first, as the plan asks.
const INJURY_CAUSES: [(InjuryCause, &str, &str, &str); 10] = [
    (InjuryCause::Drowning, "drowning", "Drowning", "Đuối nước"),
    (
        InjuryCause::Traffic,
        "traffic",
        "Traffic",
        "Tai nạn giao thông",
    ),
    (InjuryCause::Fall, "fall", "Fall", "Ngã"),
    (InjuryCause::Burn, "burn", "Burn", "Bỏng"),
    (InjuryCause::Poisoning, "poisoning", "Poisoning", "Ngộ độc"),
    (
        InjuryCause::Animal,
        "animal",
        "Animal bite or sting",
        "Động vật cắn, đốt",
    ),
    (InjuryCause::Violence, "violence", "Violence", "Bạo lực"),
    (InjuryCause::Suicide, "suicide", "Suicide", "Tự tử"),
    (InjuryCause::Work, "work", "Work", "Tai nạn lao động"),
    (InjuryCause::Other, "other", "Other", "Khác"),
];

const INJURY_OUTCOMES: [(InjuryOutcome, &str, &str, &str); 4] = [
    (InjuryOutcome::Died, "died", "Died", "Tử vong"),
    (
        InjuryOutcome::PermanentlyDisabled,
        "permanently_disabled",
        "Permanently disabled",
        "Tàn tật vĩnh viễn",
    ),
    (
        InjuryOutcome::NotDisabled,
        "not_disabled",
        "Not disabled",
        "Không tàn tật",
    ),
    (
        InjuryOutcome::Undetermined,
        "undetermined",
        "Undetermined",
        "Chưa xác định",
    ),
];

const CHANNELS: [(Channel, &str, &str, &str); 8] = [
    (Channel::Phone, "111_phone", "111: phone", "111: điện thoại"),
    (Channel::Zalo, "111_zalo", "111: Zalo", "111: Zalo"),
    (Channel::App, "111_app", "111: app", "111: ứng dụng"),
    (Channel::Web, "111_web", "111: web", "111: trang web"),
    (Channel::Police, "police", "Police", "Công an"),
    (Channel::InPerson, "in_person", "In person", "Trực tiếp"),
    (Channel::Letter, "letter", "Letter", "Thư"),
    (Channel::Press, "press", "Press", "Báo chí"),
];

const SETTINGS: [(Setting, &str, &str, &str); 8] = [
    (Setting::Home, "home", "Home", "Gia đình"),
    (Setting::School, "school", "School", "Trường học"),
    (
        Setting::PublicPlace,
        "public_place",
        "Public place",
        "Nơi công cộng",
    ),
    (Setting::Online, "online", "Online", "Môi trường mạng"),
    (Setting::Workplace, "workplace", "Workplace", "Nơi làm việc"),
    (
        Setting::CareInstitution,
        "care_institution",
        "Care institution",
        "Cơ sở trợ giúp xã hội",
    ),
    (Setting::Other, "other", "Other", "Khác"),
    (Setting::Unknown, "unknown", "Unknown", "Không rõ"),
];

const SEXES: [(Sex, &str, &str, &str); 3] = [
    (Sex::Male, "male", "Male", "Nam"),
    (Sex::Female, "female", "Female", "Nữ"),
    (Sex::Unknown, "unknown", "Unknown", "Không biết"),
];

const DEADLINES: [(DeadlineKind, &str, &str, &str); 3] = [
    (
        DeadlineKind::Emergency,
        "emergency_12h",
        "Emergency measures within 12 hours",
        "Biện pháp khẩn cấp trong 12 giờ",
    ),
    (
        DeadlineKind::PlanDrafted,
        "plan_5_working_days",
        "Plan within 5 working days",
        "Kế hoạch trong 5 ngày làm việc",
    ),
    (
        DeadlineKind::PlanApproved,
        "approval_7_working_days",
        "Plan approved within 7 working days",
        "Phê duyệt kế hoạch trong 7 ngày làm việc",
    ),
];

fn abuse_key(a: AbuseType) -> AbuseKey {
    ABUSE
        .iter()
        .position(|(x, ..)| *x == a)
        .map_or(u8::MAX, |i| i as u8)
}

fn special_key(s: SpecialCircumstance) -> SpecialKey {
    SPECIAL
        .iter()
        .position(|(x, ..)| *x == s)
        .map_or(u8::MAX, |i| i as u8)
}

fn deadline_key(k: DeadlineKind) -> DeadlineKey {
    DEADLINES
        .iter()
        .position(|(x, ..)| *x == k)
        .map_or(u8::MAX, |i| i as u8)
}

/// Every case's record, folded from case events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    cases: BTreeMap<Uuid, CaseRecord>,
}

impl Records {
    /// Folds one event of case `case_id`, recorded at `at_ms`.
    pub fn apply(&mut self, case_id: Uuid, event: &CaseEvent, at_ms: i64) {
        if let CaseEvent::Opened(opened) = event {
            let mut record = CaseRecord {
                received_at_ms: opened.received_at_ms,
                unit_id: opened.incident_unit_id.clone(),
                responsible_unit_id: opened
                    .responsible_unit_id
                    .clone()
                    .unwrap_or_else(|| opened.incident_unit_id.clone()),
                sex: opened.child_sex.unwrap_or(Sex::Unknown),
                setting: opened.setting.unwrap_or_default(),
                age_years: opened.child_age_years,
                abuse: BTreeSet::new(),
                reported_abuse: BTreeSet::new(),
                ruled_out: BTreeSet::new(),
                injury: None,
                special: BTreeSet::new(),
                supported: false,
                deadlines: BTreeMap::new(),
                first_action_ms: None,
                closed_ms: None,
                referrals: BTreeMap::new(),
                reports: vec![(opened.received_at_ms, opened.channel)],
            };
            record.add_concerns(&opened.concerns);
            self.cases.insert(case_id, record);
            return;
        }
        let Some(record) = self.cases.get_mut(&case_id) else {
            return;
        };
        match event {
            CaseEvent::Attached(attached) => {
                record.add_concerns(&attached.concerns);
                record
                    .reports
                    .push((attached.received_at_ms, attached.channel));
            }
            CaseEvent::OfficerAssigned(_)
            | CaseEvent::InitialAssessmentRecorded(_)
            | CaseEvent::EmergencyMeasureRecorded(_) => {
                record.first_action_ms.get_or_insert(at_ms);
                if matches!(event, CaseEvent::EmergencyMeasureRecorded(_)) {
                    record.supported = true;
                }
                if let CaseEvent::InitialAssessmentRecorded(a) = event {
                    record.verified(&a.verification);
                }
            }
            CaseEvent::DetailedAssessmentRecorded(a) => record.verified(&a.verification),
            CaseEvent::InterventionRecorded(_) => record.supported = true,
            CaseEvent::ReferralRequested(r) => {
                record.referrals.insert(
                    r.referral_id,
                    ReferralRecord {
                        agency_id: r.request.to_agency_id.clone(),
                        acknowledged: false,
                        escalated_first: false,
                        offered: false,
                    },
                );
            }
            CaseEvent::Closed(_) => {
                record.closed_ms.get_or_insert(at_ms);
            }
            CaseEvent::DeadlineMet(met) => {
                record.deadlines.insert(
                    deadline_key(met.kind),
                    if met.late {
                        DeadlineOutcome::Late
                    } else {
                        DeadlineOutcome::InTime
                    },
                );
            }
            CaseEvent::DeadlineMissed(missed) => {
                record
                    .deadlines
                    .insert(deadline_key(missed.kind), DeadlineOutcome::Late);
            }
            CaseEvent::DeadlineCleared(cleared) => {
                // No longer applicable, unless it had already been missed.
                let key = deadline_key(cleared.kind);
                if record.deadlines.get(&key) != Some(&DeadlineOutcome::Late) {
                    record.deadlines.remove(&key);
                }
            }
            CaseEvent::ReferralStepRecorded(step) => {
                if let Some(r) = record.referrals.get_mut(&step.referral_id) {
                    match step.step.as_str() {
                        "ReferralOffered" => {
                            r.offered = true;
                            if !step.agency_id.is_empty() {
                                r.agency_id.clone_from(&step.agency_id);
                            }
                        }
                        "ReferralAcknowledged" => r.acknowledged = true,
                        "ReferralCompleted" => record.supported = true,
                        "ReferralEscalated" if !r.acknowledged => r.escalated_first = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// The records, by case id.
    #[must_use]
    pub const fn cases(&self) -> &BTreeMap<Uuid, CaseRecord> {
        &self.cases
    }
}

impl CaseRecord {
    /// Forms reported and not yet verified either way.
    #[must_use]
    pub fn unverified_abuse(&self) -> BTreeSet<AbuseKey> {
        self.reported_abuse
            .iter()
            .filter(|k| !self.abuse.contains(k) && !self.ruled_out.contains(k))
            .copied()
            .collect()
    }

    fn verified(&mut self, verification: &crate::case::procedure::Verification) {
        for a in &verification.confirmed {
            let k = abuse_key(*a);
            self.abuse.insert(k);
            self.ruled_out.remove(&k);
        }
        for a in &verification.not_confirmed {
            let k = abuse_key(*a);
            self.ruled_out.insert(k);
            self.abuse.remove(&k);
        }
    }

    fn add_concerns(&mut self, concerns: &crate::intake::Concerns) {
        self.reported_abuse
            .extend(concerns.abuse_types.iter().map(|a| abuse_key(*a)));
        self.special.extend(
            concerns
                .special_circumstances
                .iter()
                .map(|s| special_key(*s)),
        );
        if self.injury.is_none() {
            self.injury = concerns.injury.as_ref().map(|i| (i.cause, i.outcome));
        }
    }
}

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

struct Builder {
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

fn count<'a>(cases: impl Iterator<Item = &'a CaseRecord>, f: impl Fn(&CaseRecord) -> bool) -> u64 {
    cases.filter(|c| f(c)).count() as u64
}

/// The nearest-rank percentile `p` (0–100) of sorted minutes.
fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1);
    sorted[(rank - 1) as usize]
}

const ABUSED: (&str, &str, &str) = ("0101", "Abused children", "Số trẻ em bị xâm hại");
const UNCONFIRMED: (&str, &str, &str) = (
    "0101-unconfirmed",
    "Reported abuse not (yet) confirmed (not in 0101)",
    "Tin báo xâm hại chưa được xác minh (không tính vào 0101)",
);
const INJURED: (&str, &str, &str) = (
    "injuries",
    "Child injuries",
    "Trẻ em bị tai nạn thương tích",
);
const SPECIAL_IND: (&str, &str, &str) = (
    "special_circumstances",
    "Children in special circumstances",
    "Trẻ em có hoàn cảnh đặc biệt",
);
const HANDLING: (&str, &str, &str) = (
    "handling",
    "Case handling against the law's clocks",
    "Xử lý vụ việc theo thời hạn luật định",
);
const REFERRALS: (&str, &str, &str) = (
    "referrals",
    "Referrals acknowledged in time",
    "Chuyển tuyến được tiếp nhận đúng hạn",
);
const REPORTS: (&str, &str, &str) = ("reports", "Reports received", "Số tin báo tiếp nhận");

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
        .cases
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
        .cases
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
fn month_of(ms: i64) -> String {
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

#[cfg(test)]
mod tests;
