//! [`Records`]: one [`CaseRecord`] per case, folded from its events, and
//! the keys and labels of the breakdowns.

use super::*;
use crate::packed::PackedMap;

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

pub(super) const ABUSE: [(AbuseType, &str, &str, &str); 7] = [
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

pub(super) const SPECIAL: [(SpecialCircumstance, &str, &str, &str); 14] = [
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
pub(super) const INJURY_CAUSES: [(InjuryCause, &str, &str, &str); 10] = [
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

pub(super) const INJURY_OUTCOMES: [(InjuryOutcome, &str, &str, &str); 4] = [
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

pub(super) const CHANNELS: [(Channel, &str, &str, &str); 8] = [
    (Channel::Phone, "111_phone", "111: phone", "111: điện thoại"),
    (Channel::Zalo, "111_zalo", "111: Zalo", "111: Zalo"),
    (Channel::App, "111_app", "111: app", "111: ứng dụng"),
    (Channel::Web, "111_web", "111: web", "111: trang web"),
    (Channel::Police, "police", "Police", "Công an"),
    (Channel::InPerson, "in_person", "In person", "Trực tiếp"),
    (Channel::Letter, "letter", "Letter", "Thư"),
    (Channel::Press, "press", "Press", "Báo chí"),
];

pub(super) const SETTINGS: [(Setting, &str, &str, &str); 8] = [
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

pub(super) const SEXES: [(Sex, &str, &str, &str); 3] = [
    (Sex::Male, "male", "Male", "Nam"),
    (Sex::Female, "female", "Female", "Nữ"),
    (Sex::Unknown, "unknown", "Unknown", "Không biết"),
];

pub(super) const DEADLINES: [(DeadlineKind, &str, &str, &str); 3] = [
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

pub(super) fn abuse_key(a: AbuseType) -> AbuseKey {
    ABUSE
        .iter()
        .position(|(x, ..)| *x == a)
        .map_or(u8::MAX, |i| i as u8)
}

pub(super) fn special_key(s: SpecialCircumstance) -> SpecialKey {
    SPECIAL
        .iter()
        .position(|(x, ..)| *x == s)
        .map_or(u8::MAX, |i| i as u8)
}

pub(super) fn deadline_key(k: DeadlineKind) -> DeadlineKey {
    DEADLINES
        .iter()
        .position(|(x, ..)| *x == k)
        .map_or(u8::MAX, |i| i as u8)
}

/// Every case's record, folded from case events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    /// Packed: case ids are UUIDv7, so cases are added in id order, which
    /// would leave a plain map's nodes half empty.
    cases: PackedMap<Uuid, CaseRecord>,
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
    pub fn cases(&self) -> &BTreeMap<Uuid, CaseRecord> {
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
