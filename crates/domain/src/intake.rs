//! Intake: Mẫu 01 reports to the 111 hotline and police notifications.
//!
//! Raw input (`Raw*`, plain fields as a request carries them) is parsed into
//! the report types with every violation collected at once; the report types
//! can only be built that way. [`IntakeRecorded`] and [`IntakeHandedOver`]
//! are the intake stream's events.

use ::time::Date;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::reference::Directory;
use crate::text;
use crate::time::{DAY_MS, age_on, date_serde, parse_date, vietnam_date};
use crate::violation::Violations;

/// Stored name of the event that records a report. Never changes.
pub const INTAKE_RECORDED: &str = "IntakeRecorded";
/// Stored name of the event that closes the hand-over. Never changes.
pub const INTAKE_HANDED_OVER: &str = "IntakeHandedOver";
/// Stored name of the event that notes a case closing or reopening (for
/// the duplicate check). Never changes.
pub const CASE_STATUS_NOTED: &str = "CaseStatusNoted";
/// Schema version of the intake events.
pub const SCHEMA_VERSION: u32 = 1;

/// An intake event, decoded: the events of an intake's stream, and the
/// notes intake keeps in a case's stream of its own log. (The report is
/// far larger than the notes; events are decoded one at a time, so the
/// size of the enum does not matter.)
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum IntakeEvent {
    /// [`IntakeRecorded`].
    Recorded(IntakeRecorded),
    /// [`IntakeHandedOver`].
    HandedOver(IntakeHandedOver),
    /// [`CaseStatusNoted`].
    CaseStatusNoted(CaseStatusNoted),
    /// [`ConfidentialErased`].
    ConfidentialErased(ConfidentialErased),
    /// [`ReferralNoted`].
    ReferralNoted(ReferralNoted),
    /// [`ReferralStatusNoted`].
    ReferralStatusNoted(ReferralStatusNoted),
}

crate::event::stored_events! {
    IntakeEvent, SCHEMA_VERSION,
    Recorded => "IntakeRecorded",
    HandedOver => "IntakeHandedOver",
    CaseStatusNoted => "CaseStatusNoted",
    ConfidentialErased => "ConfidentialErased",
    ReferralNoted => "ReferralNoted",
    ReferralStatusNoted => "ReferralStatusNoted",
}

/// Oldest age baove records: the Law on Children covers under 16; 16 and
/// 17 are recorded for general support.
pub const MAX_AGE: u32 = 17;
/// Ages from this one are outside the Law on Children (Điều 1).
pub const CHILD_LAW_AGE_LIMIT: u32 = 16;
/// Clock skew tolerated on "not in the future" checks.
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Window of the possible-duplicate check.
pub const DUPLICATE_WINDOW_MS: i64 = 30 * DAY_MS;

/// How a report arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Channel {
    Phone,
    Zalo,
    App,
    Web,
    InPerson,
    Letter,
    Press,
    /// Police notifications only.
    Police,
}

/// Sex on Mẫu 01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Sex {
    Male,
    Female,
    Unknown,
}

/// Forms of abuse (Law on Children Điều 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AbuseType {
    Violence,
    SexualAbuse,
    Exploitation,
    Trafficking,
    Abandonment,
    Neglect,
    Other,
}

/// The five forms of sexual abuse (Decree 56).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SexualAbuseForm {
    Rape,
    CoercedIntercourse,
    IntercourseWithChild,
    IndecentActs,
    ProstitutionOrPornography,
}

/// Injury causes (QĐ 25/2006/QĐ-BYT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum InjuryCause {
    Traffic,
    Work,
    Fall,
    Drowning,
    Burn,
    Poisoning,
    Animal,
    Suicide,
    Violence,
    Other,
}

/// Injury outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum InjuryOutcome {
    Died,
    PermanentlyDisabled,
    NotDisabled,
    Undetermined,
}

/// Special-circumstance groups a–o (Law on Children Điều 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SpecialCircumstance {
    AOrphaned,
    BAbandoned,
    CWithoutCarer,
    DDisabled,
    DdHivAids,
    EInConflictWithLaw,
    GDrugAddicted,
    HOutOfSchoolWorking,
    IHarmedByViolence,
    KExploited,
    LSexuallyAbused,
    MTrafficked,
    NSeriouslyIllPoor,
    OMigrantUnaccompanied,
}

/// The child's age as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Age {
    /// A known date of birth.
    DateOfBirth(#[serde(with = "date_serde")] Date),
    /// A birth date known only to the month, or only to the year.
    PartialDateOfBirth {
        /// The year.
        year: i32,
        /// The month (1–12), when known.
        month: Option<u8>,
    },
    /// An estimate in whole years.
    EstimatedYears(u32),
}

impl Age {
    /// A date of birth as written: `YYYY-MM-DD`, or `YYYY-MM` / `YYYY` when
    /// only the month or the year is known.
    ///
    /// # Errors
    /// The rule, when it is none of these.
    pub fn parse_birth(text: &str) -> Result<Self, String> {
        let rule = || {
            "must be a date YYYY-MM-DD, or YYYY-MM or YYYY when only the month or the year is known"
                .to_owned()
        };
        let parts: Vec<&str> = text.split('-').collect();
        let year = |t: &str| -> Result<i32, String> {
            (t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
                .ok_or_else(rule)
        };
        match parts.as_slice() {
            [_, _, _] => parse_date(text).map(Self::DateOfBirth).map_err(|_| rule()),
            [y, m] => {
                let month: u8 = (m.len() == 2)
                    .then(|| m.parse().ok())
                    .flatten()
                    .filter(|m| (1..=12).contains(m))
                    .ok_or_else(rule)?;
                Ok(Self::PartialDateOfBirth {
                    year: year(y)?,
                    month: Some(month),
                })
            }
            [y] => Ok(Self::PartialDateOfBirth {
                year: year(y)?,
                month: None,
            }),
            _ => Err(rule()),
        }
    }

    /// The birth date as written (see [`Age::parse_birth`]); none for an
    /// estimate.
    #[must_use]
    pub fn birth_text(&self) -> Option<String> {
        match *self {
            Self::DateOfBirth(date) => Some(crate::time::format_date(date)),
            Self::PartialDateOfBirth {
                year,
                month: Some(month),
            } => Some(format!("{year:04}-{month:02}")),
            Self::PartialDateOfBirth { year, month: None } => Some(format!("{year:04}")),
            Self::EstimatedYears(_) => None,
        }
    }

    /// The earliest and the latest birth date the report allows; the
    /// latest is not after `on`. None for an estimate or an impossible
    /// date.
    fn birth_range(&self, on: Date) -> Option<(Date, Date)> {
        let (first, last) = match *self {
            Self::DateOfBirth(date) => (date, date),
            Self::PartialDateOfBirth { year, month } => {
                let (from, to) = month.map_or((1, 12), |m| (m, m));
                let first =
                    Date::from_calendar_date(year, ::time::Month::try_from(from).ok()?, 1).ok()?;
                let to_month = ::time::Month::try_from(to).ok()?;
                let last = Date::from_calendar_date(year, to_month, to_month.length(year)).ok()?;
                (first, last)
            }
            Self::EstimatedYears(_) => return None,
        };
        Some((first, last.min(on.max(first))))
    }

    /// The first day from which the child may be old enough to consent
    /// herself (Law on Children: from [`crate::referral::CHILD_CONSENT_AGE`]),
    /// as of a report received on `received_on`: the first of the month in
    /// which the oldest birth date the report allows reaches that age. None
    /// when she may be that old already (the age on the report decides).
    /// Only the month, not the birth date, leaves intake with the case.
    #[must_use]
    pub fn consent_possible_from(&self, received_on: Date) -> Option<Date> {
        let years = i32::try_from(crate::referral::CHILD_CONSENT_AGE).unwrap_or(7);
        let oldest_birth = match *self {
            Self::EstimatedYears(n) => {
                // "n years old" may be a day short of n + 1.
                let n = i32::try_from(n).ok()?;
                add_years(received_on, -(n + 1))?.next_day()?
            }
            _ => self.birth_range(received_on)?.0,
        };
        let reaches = add_years(oldest_birth, years)?;
        (reaches > received_on)
            .then(|| reaches.replace_day(1).ok())
            .flatten()
    }
}

/// `date` moved by `years` (29 February to 28 February in a common year).
fn add_years(date: Date, years: i32) -> Option<Date> {
    let year = date.year() + years;
    let day = date.day().min(date.month().length(year));
    Date::from_calendar_date(year, date.month(), day).ok()
}

/// The child, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// Full name (NFC), empty when unknown.
    pub full_name: String,
    /// Search key of the name (no diacritics, lowercase).
    pub name_key: String,
    /// Age as reported.
    pub age: Age,
    /// Age in whole years when the report was received.
    pub age_years: u32,
    /// Sex.
    pub sex: Sex,
    /// Ethnicity, if given.
    pub ethnicity: String,
    /// Current condition.
    pub current_condition: String,
}

impl Child {
    /// The youngest age the child may be, in whole years: the age from a
    /// known birth date, or one year under an estimate (an estimated "16"
    /// may be 15). Where the law turns on an age (the Law on Children
    /// covers under 16), an uncertain age counts as the youngest possible,
    /// as the criminal procedure code treats victims under 18 (Đ417).
    #[must_use]
    pub const fn youngest_possible_age(&self) -> u32 {
        match self.age {
            // Computed from the latest birth date allowed: the youngest.
            Age::DateOfBirth(_) | Age::PartialDateOfBirth { .. } => self.age_years,
            Age::EstimatedYears(years) => years.saturating_sub(1),
        }
    }
}

/// A place: a unit in force when the report was received, and an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Administrative unit id.
    pub unit_id: String,
    /// Address text.
    pub address: String,
}

/// An injury.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injury {
    /// Cause.
    pub cause: InjuryCause,
    /// Outcome.
    pub outcome: InjuryOutcome,
    /// Details.
    pub detail: String,
}

/// What the child is at risk of or suffered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concerns {
    /// Forms of abuse.
    pub abuse_types: Vec<AbuseType>,
    /// Forms of sexual abuse (only with [`AbuseType::SexualAbuse`]).
    pub sexual_abuse_forms: Vec<SexualAbuseForm>,
    /// An injury.
    pub injury: Option<Injury>,
    /// Special-circumstance groups.
    pub special_circumstances: Vec<SpecialCircumstance>,
}

impl Concerns {
    /// No concern at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.abuse_types.is_empty()
            && self.injury.is_none()
            && self.special_circumstances.is_empty()
    }
}

/// A parent or caregiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Full name (NFC).
    pub full_name: String,
    /// Phone as +84..., if given.
    pub phone: Option<String>,
    /// Address.
    pub address: String,
    /// Relation to the child.
    pub relation: String,
}

/// The informant, recorded with consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Informant {
    /// Full name.
    pub full_name: String,
    /// Phone as +84..., if given.
    pub phone: Option<String>,
    /// Relation to the child.
    pub relation: String,
}

/// The facts of a report (Mẫu 01), parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFacts {
    /// When received, Unix ms.
    pub received_at_ms: i64,
    /// The child.
    pub child: Child,
    /// Where it happened.
    pub incident_place: Place,
    /// Where the child lives, if known.
    pub residence_place: Option<Place>,
    /// Concerns.
    pub concerns: Concerns,
    /// What happened.
    pub narrative: String,
    /// Immediate danger.
    pub immediate_danger: bool,
    /// The caregiver is the alleged abuser.
    pub caregiver_is_alleged_abuser: bool,
    /// Father.
    pub father: Option<Person>,
    /// Mother.
    pub mother: Option<Person>,
    /// Current caregiver.
    pub caregiver: Option<Person>,
    /// Actions already taken.
    pub actions_taken: String,
    /// Likely consequence without intervention.
    pub likely_consequence: String,
    /// An open case this report adds to.
    pub follow_up_case_id: Option<Uuid>,
    /// Where the abuse happened. Absent in events written before it existed.
    #[serde(default)]
    pub setting: Setting,
    /// When it happened, if known (Unix ms). Absent in events written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at_ms: Option<i64>,
    /// The commune responsible for the case when the report was received:
    /// the incident unit, or its successor when that unit had ended (see
    /// [`crate::reference::Directory::responsible_unit`]). Absent in events
    /// written before it existed: the incident unit then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_unit_id: Option<String>,
    /// The province-level unit of the responsible commune: the province the
    /// report is routed to. Absent in events written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province_id: Option<String>,
    /// What the report says the child is (Mẫu 01): abused, at risk of
    /// abuse, or in special circumstances. A report's word, not a finding:
    /// indicator 0101 counts abuse verification confirmed. Absent in events
    /// written before it existed: unknown.
    #[serde(default, skip_serializing_if = "ReportStatus::is_unknown")]
    pub report_status: ReportStatus,
}

/// The status a report gives the child (Mẫu 01).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Bị xâm hại: abused.
    Abused,
    /// Có nguy cơ bị xâm hại: at risk of abuse.
    AtRisk,
    /// Có hoàn cảnh đặc biệt: in special circumstances.
    SpecialCircumstances,
    /// Not given.
    #[default]
    Unknown,
}

impl ReportStatus {
    /// Not given.
    #[must_use]
    pub fn is_unknown(&self) -> bool {
        *self == Self::Unknown
    }
}

impl ReportFacts {
    /// The commune responsible when the report was received.
    #[must_use]
    pub fn responsible_unit(&self) -> &str {
        self.responsible_unit_id
            .as_deref()
            .unwrap_or(&self.incident_place.unit_id)
    }
}

/// Where abuse happened (the setting of TT 13 indicator 0101).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Setting {
    Home,
    School,
    PublicPlace,
    Online,
    Workplace,
    CareInstitution,
    Other,
    #[default]
    Unknown,
}

/// A report as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Report {
    /// To the 111 hotline.
    Hotline {
        /// How it came in (never police).
        channel: Channel,
        /// The operator.
        operator_id: String,
        /// The facts.
        facts: ReportFacts,
        /// The informant, only with consent.
        informant: Option<Informant>,
    },
    /// From the police.
    Police {
        /// The police unit.
        police_agency_id: String,
        /// The officer.
        officer_id: String,
        /// The officer's name.
        officer_name: String,
        /// Case / OB number.
        case_number: String,
        /// Criminal Code article.
        offence_article: String,
        /// The offence in words.
        offence_description: String,
        /// When it happened, Unix ms.
        occurred_at_ms: i64,
        /// Proceedings opened.
        criminal_proceedings_opened: bool,
        /// Support the victim needs.
        support_needed: String,
        /// The facts.
        facts: ReportFacts,
        /// When the police received the information, Unix ms: the 12-hour
        /// clock runs from it. Absent in reports recorded before it
        /// existed (the clock then runs from `facts.received_at_ms`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        police_received_at_ms: Option<i64>,
    },
}

impl Report {
    /// The facts.
    #[must_use]
    pub const fn facts(&self) -> &ReportFacts {
        match self {
            Self::Hotline { facts, .. } | Self::Police { facts, .. } => facts,
        }
    }

    /// The channel (police for notifications).
    #[must_use]
    pub const fn channel(&self) -> Channel {
        match self {
            Self::Hotline { channel, .. } => *channel,
            Self::Police { .. } => Channel::Police,
        }
    }

    /// When the 12-hour clock of this report starts: when the police
    /// received the information, for a notification that says so; else
    /// when the report was received.
    #[must_use]
    pub fn clock_start_ms(&self) -> i64 {
        match self {
            Self::Police {
                police_received_at_ms: Some(at),
                facts,
                ..
            } => (*at).min(facts.received_at_ms),
            _ => self.facts().received_at_ms,
        }
    }

    /// The police case number, for notifications.
    #[must_use]
    pub fn police_case_number(&self) -> Option<&str> {
        match self {
            Self::Police { case_number, .. } => Some(case_number),
            Self::Hotline { .. } => None,
        }
    }
}

/// The event that records a report in its intake stream (seq 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeRecorded {
    /// The intake id (= the stream id).
    pub intake_id: Uuid,
    /// The report.
    pub report: Report,
    /// The child is 16 or 17.
    pub outside_child_law: bool,
    /// Cases that may be about the same child.
    pub possible_duplicate_case_ids: Vec<Uuid>,
    /// Intakes not yet handed over that may be about the same child.
    pub possible_duplicate_intake_ids: Vec<Uuid>,
    /// The first day the child may be old enough to consent herself
    /// ([`Age::consent_possible_from`]); none when she may be already.
    /// Absent in events written before it existed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::optional_date_serde"
    )]
    pub consent_possible_from: Option<Date>,
    /// The confidential fields, sealed ([`Confidential`] as JSON, encrypted
    /// by the intake service with the case's data key). When present, those
    /// fields are blank in `report`. Opaque here: the domain holds no keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<serde_json::Value>,
}

/// The event that erases a report's confidential fields: its data key was
/// destroyed (a lawful deletion request or the end of retention).
pub const CONFIDENTIAL_ERASED: &str = "ConfidentialErased";

/// Payload of [`CONFIDENTIAL_ERASED`]; who erased is the event's actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfidentialErased {
    /// The case the erasure was asked for.
    pub case_id: Option<Uuid>,
    /// Why: the legal ground (deletion request, end of retention...).
    pub reason: String,
}

/// The confidential fields of a report (Law on Children Điều 6.11, Decree
/// 56 Điều 33, Decree 13/2023): what identifies the child, the family and
/// the informant, the child's health and condition, ethnicity (sensitive
/// data under Decree 13), what was done and is needed, and the free text
/// that may name them. Everything else (units, concerns, age in years, sex,
/// dates) stays in clear for the procedure and the statistics.
///
/// The fields added later are options: a report sealed before they were
/// sealed has them in clear, and `None` leaves them as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confidential {
    /// The child's full name.
    pub child_full_name: String,
    /// Its search key.
    pub child_name_key: String,
    /// The date of birth, when one was given.
    pub child_date_of_birth: Option<String>,
    /// Where it happened: the address.
    pub incident_address: String,
    /// Where the child lives: the address.
    pub residence_address: Option<String>,
    /// What happened.
    pub narrative: String,
    /// Father.
    pub father: Option<Person>,
    /// Mother.
    pub mother: Option<Person>,
    /// Caregiver.
    pub caregiver: Option<Person>,
    /// The informant (hotline reports).
    pub informant: Option<Informant>,
    /// The offence in words (police notifications).
    pub offence_description: Option<String>,
    /// The child's ethnicity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_ethnicity: Option<String>,
    /// The child's current condition (health, injuries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_current_condition: Option<String>,
    /// Actions already taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_taken: Option<String>,
    /// The likely consequence without intervention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likely_consequence: Option<String>,
    /// The injury's details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injury_detail: Option<String>,
    /// The support the victim needs (police notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_needed: Option<String>,
}

impl IntakeRecorded {
    /// Whether the duplicate check flagged an earlier case or report.
    #[must_use]
    pub fn has_possible_duplicates(&self) -> bool {
        !self.possible_duplicate_case_ids.is_empty()
            || !self.possible_duplicate_intake_ids.is_empty()
    }

    /// Takes the confidential fields out of the report, leaving them blank
    /// (a date of birth becomes the age in years).
    pub fn take_confidential(&mut self) -> Confidential {
        let age_years = self.report.facts().child.age_years;
        let (facts, informant, offence, support) = match &mut self.report {
            Report::Hotline {
                facts, informant, ..
            } => (facts, informant.take(), None, None),
            Report::Police {
                facts,
                offence_description,
                support_needed,
                ..
            } => (
                facts,
                None,
                Some(std::mem::take(offence_description)),
                Some(std::mem::take(support_needed)),
            ),
        };
        let date_of_birth = facts.child.age.birth_text();
        facts.child.age = Age::EstimatedYears(age_years);
        Confidential {
            child_full_name: std::mem::take(&mut facts.child.full_name),
            child_name_key: std::mem::take(&mut facts.child.name_key),
            child_date_of_birth: date_of_birth,
            incident_address: std::mem::take(&mut facts.incident_place.address),
            residence_address: facts
                .residence_place
                .as_mut()
                .map(|p| std::mem::take(&mut p.address)),
            narrative: std::mem::take(&mut facts.narrative),
            father: facts.father.take(),
            mother: facts.mother.take(),
            caregiver: facts.caregiver.take(),
            informant,
            offence_description: offence,
            child_ethnicity: Some(std::mem::take(&mut facts.child.ethnicity)),
            child_current_condition: Some(std::mem::take(&mut facts.child.current_condition)),
            actions_taken: Some(std::mem::take(&mut facts.actions_taken)),
            likely_consequence: Some(std::mem::take(&mut facts.likely_consequence)),
            injury_detail: facts
                .concerns
                .injury
                .as_mut()
                .map(|i| std::mem::take(&mut i.detail)),
            support_needed: support,
        }
    }

    /// Puts confidential fields back (the inverse of
    /// [`IntakeRecorded::take_confidential`]).
    pub fn restore_confidential(&mut self, c: Confidential) {
        let facts = match &mut self.report {
            Report::Hotline {
                facts, informant, ..
            } => {
                *informant = c.informant;
                facts
            }
            Report::Police {
                facts,
                offence_description,
                support_needed,
                ..
            } => {
                *offence_description = c.offence_description.unwrap_or_default();
                if let Some(support) = c.support_needed {
                    *support_needed = support;
                }
                facts
            }
        };
        if let Some(ethnicity) = c.child_ethnicity {
            facts.child.ethnicity = ethnicity;
        }
        if let Some(condition) = c.child_current_condition {
            facts.child.current_condition = condition;
        }
        if let Some(actions) = c.actions_taken {
            facts.actions_taken = actions;
        }
        if let Some(consequence) = c.likely_consequence {
            facts.likely_consequence = consequence;
        }
        if let (Some(injury), Some(detail)) = (facts.concerns.injury.as_mut(), c.injury_detail) {
            injury.detail = detail;
        }
        if let Some(age) = c
            .child_date_of_birth
            .as_deref()
            .and_then(|d| Age::parse_birth(d).ok())
        {
            facts.child.age = age;
        }
        facts.child.full_name = c.child_full_name;
        facts.child.name_key = c.child_name_key;
        facts.incident_place.address = c.incident_address;
        if let (Some(place), Some(address)) = (facts.residence_place.as_mut(), c.residence_address)
        {
            place.address = address;
        }
        facts.narrative = c.narrative;
        facts.father = c.father;
        facts.mother = c.mother;
        facts.caregiver = c.caregiver;
    }
}

/// The event that closes the hand-over: casework's event about this intake
/// came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeHandedOver {
    /// The case it went to.
    pub case_id: Uuid,
    /// Casework's event that named this intake.
    pub case_event_id: Uuid,
    /// That event's type (`CaseOpened` or `IntakeAttached`).
    pub case_event_type: String,
}

/// Casework closed or reopened a case that one of intake's reports went
/// to. Kept in intake's log (a stream per case id) so that the duplicate
/// check knows which cases are still open, also after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseStatusNoted {
    /// The case.
    pub case_id: Uuid,
    /// Closed (true) or reopened (false).
    pub closed: bool,
    /// Casework's event that said so.
    pub case_event_id: Uuid,
}

/// The event type of [`ReferralNoted`].
pub const REFERRAL_NOTED: &str = "ReferralNoted";

/// Casework asked a referral on a case one of intake's reports went to.
/// Kept in intake's log (the case's stream) so that intake knows which
/// agency may read the report, and whether the child's identity is shared
/// with it (the referral's consent or legal basis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralNoted {
    /// The case.
    pub case_id: Uuid,
    /// The referral.
    pub referral_id: Uuid,
    /// The agency asked.
    pub to_agency_id: String,
    /// The child's identifying information is shared with it.
    pub shares_identifying_information: bool,
    /// The informant's details are shared with it. Absent in events
    /// written before it existed: not shared.
    #[serde(default)]
    pub shares_informant: bool,
    /// Casework's event that asked it.
    pub case_event_id: Uuid,
}

/// The event type of [`ReferralStatusNoted`].
pub const REFERRAL_STATUS_NOTED: &str = "ReferralStatusNoted";

/// A referral intake noted ([`ReferralNoted`]) took a step: access to the
/// report follows the referral's life (granted while it is offered,
/// acknowledged, accepted or in progress, for 30 days after completion,
/// never once declined or revoked: [`crate::referral::grants_access`]).
/// Kept in the case's stream of intake's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralStatusNoted {
    /// The case.
    pub case_id: Uuid,
    /// The referral.
    pub referral_id: Uuid,
    /// The step's stored name (`ReferralRevoked`...).
    pub step: String,
    /// When the referral service recorded it, Unix ms.
    pub at_ms: Option<i64>,
    /// For `ReferralOffered`: the agency that received it.
    pub to_agency_id: Option<String>,
    /// Casework's event that recorded the step.
    pub case_event_id: Uuid,
}

// ---------------------------------------------------------------------------
// Raw input and parsing

/// A child as a request carries it. Enum fields are `None` when the request
/// left them unspecified.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawChild {
    pub full_name: String,
    pub date_of_birth: Option<String>,
    pub estimated_age_years: Option<u32>,
    pub sex: Option<Sex>,
    pub ethnicity: String,
    pub current_condition: String,
}

/// A place as a request carries it.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawPlace {
    pub unit_id: String,
    pub address: String,
}

/// An injury as a request carries it.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawInjury {
    pub cause: Option<InjuryCause>,
    pub outcome: Option<InjuryOutcome>,
    pub detail: String,
}

/// Concerns as a request carries them; `None` entries were unspecified.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawConcerns {
    pub abuse_types: Vec<Option<AbuseType>>,
    pub sexual_abuse_forms: Vec<Option<SexualAbuseForm>>,
    pub injury: Option<RawInjury>,
    pub special_circumstances: Vec<Option<SpecialCircumstance>>,
}

/// A person as a request carries it.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawPerson {
    pub full_name: String,
    pub phone: String,
    pub address: String,
    pub relation: String,
}

/// An informant as a request carries it.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawInformant {
    pub consent: bool,
    pub full_name: String,
    pub phone: String,
    pub relation: String,
}

/// The facts as a request carries them.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawFacts {
    pub received_at_ms: Option<i64>,
    pub child: Option<RawChild>,
    pub incident_place: Option<RawPlace>,
    pub residence_place: Option<RawPlace>,
    pub concerns: Option<RawConcerns>,
    pub narrative: String,
    pub immediate_danger: bool,
    pub caregiver_is_alleged_abuser: bool,
    pub father: Option<RawPerson>,
    pub mother: Option<RawPerson>,
    pub caregiver: Option<RawPerson>,
    pub actions_taken: String,
    pub likely_consequence: String,
    pub follow_up_case_id: String,
    pub setting: Option<Setting>,
    pub occurred_at_ms: Option<i64>,
    pub responsible_unit_id: String,
    pub report_status: Option<ReportStatus>,
}

/// A hotline report as a request carries it.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawHotlineReport {
    pub channel: Option<Channel>,
    pub operator_id: String,
    pub facts: Option<RawFacts>,
    pub informant: Option<RawInformant>,
}

/// A police notification as a request carries it.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct RawPoliceNotification {
    pub police_agency_id: String,
    pub officer_id: String,
    pub officer_name: String,
    pub case_number: String,
    pub offence_article: String,
    pub offence_description: String,
    pub occurred_at_ms: Option<i64>,
    pub criminal_proceedings_opened: bool,
    pub support_needed: String,
    pub facts: Option<RawFacts>,
    pub police_received_at_ms: Option<i64>,
}

/// What parsing needs besides the request: the reference data and the time.
pub struct Context<'a> {
    /// Units and agencies.
    pub directory: &'a Directory,
    /// Now, Unix ms (injected: tests choose it).
    pub now_ms: i64,
}

const NAME_MAX: usize = 200;
const SHORT_MAX: usize = 500;
const TEXT_MAX: usize = 4000;
const NARRATIVE_MAX: usize = 8000;
const ID_MAX: usize = 128;

/// Parses a hotline report; `path` prefixes field names (e.g. `report`).
///
/// # Errors
/// Every violation found.
pub fn parse_hotline(
    raw: RawHotlineReport,
    path: &str,
    ctx: &Context<'_>,
) -> Result<Report, Violations> {
    let mut v = Violations::default();
    let channel = match raw.channel {
        None => {
            v.add(format!("{path}.channel"), "is required");
            None
        }
        Some(Channel::Police) => {
            v.add(
                format!("{path}.channel"),
                "police notifications go through SubmitPoliceNotification",
            );
            None
        }
        Some(channel) => Some(channel),
    };
    let operator_id = required_id(&mut v, &format!("{path}.operator_id"), &raw.operator_id);
    let facts = parse_facts(raw.facts, &format!("{path}.facts"), ctx, None, &mut v);
    let informant = raw
        .informant
        .and_then(|i| parse_informant(i, &format!("{path}.informant"), &mut v));
    match (channel, operator_id, facts) {
        (Some(channel), Some(operator_id), Some(facts)) if v.is_empty() => Ok(Report::Hotline {
            channel,
            operator_id,
            facts,
            informant,
        }),
        _ => Err(v),
    }
}

/// Parses a police notification; `path` prefixes field names.
///
/// # Errors
/// Every violation found.
pub fn parse_police(
    raw: RawPoliceNotification,
    path: &str,
    ctx: &Context<'_>,
) -> Result<Report, Violations> {
    let mut v = Violations::default();
    let facts = parse_facts(
        raw.facts,
        &format!("{path}.facts"),
        ctx,
        raw.occurred_at_ms
            .filter(|ms| *ms <= ctx.now_ms + CLOCK_SKEW_MS),
        &mut v,
    );
    let on = vietnam_date(facts.as_ref().map_or(ctx.now_ms, |f| f.received_at_ms));
    let agency_field = format!("{path}.police_agency_id");
    let agency = if raw.police_agency_id.trim().is_empty() {
        v.add(agency_field, "is required");
        None
    } else {
        v.check(
            agency_field,
            ctx.directory
                .agency_in_force(raw.police_agency_id.trim(), "police", on)
                .map(|a| a.id.clone()),
        )
    };
    let officer_id = required_id(&mut v, &format!("{path}.officer_id"), &raw.officer_id);
    let officer_name = v.check(
        format!("{path}.officer_name"),
        text::bounded(&raw.officer_name, NAME_MAX),
    );
    let case_number = v.check(
        format!("{path}.case_number"),
        required_text(&raw.case_number, 100),
    );
    let article = v.check(
        format!("{path}.offence.article"),
        text::bounded(&raw.offence_article, 50),
    );
    let description = v.check(
        format!("{path}.offence.description"),
        text::bounded(&raw.offence_description, SHORT_MAX),
    );
    let occurred_at_ms = match raw.occurred_at_ms {
        None => {
            v.add(format!("{path}.occurred_at"), "is required");
            None
        }
        Some(ms) if ms > ctx.now_ms + CLOCK_SKEW_MS => {
            v.add(format!("{path}.occurred_at"), "must not be in the future");
            None
        }
        Some(ms) => Some(ms),
    };
    if let (Some(occurred), Some(facts)) = (occurred_at_ms, &facts)
        && occurred > facts.received_at_ms + CLOCK_SKEW_MS
    {
        v.add(
            format!("{path}.occurred_at"),
            "must not be after facts.received_at",
        );
    }
    let support_needed = v.check(
        format!("{path}.support_needed"),
        text::bounded(&raw.support_needed, TEXT_MAX),
    );
    let police_received_at_ms = raw.police_received_at_ms;
    if let Some(at) = police_received_at_ms {
        if at > ctx.now_ms + CLOCK_SKEW_MS {
            v.add(
                format!("{path}.police_received_at"),
                "must not be in the future",
            );
        } else if let Some(facts) = &facts
            && at > facts.received_at_ms + CLOCK_SKEW_MS
        {
            v.add(
                format!("{path}.police_received_at"),
                "must not be after facts.received_at: the police received the information before they passed it on",
            );
        }
    }
    match (
        agency,
        officer_id,
        officer_name,
        case_number,
        article,
        description,
        occurred_at_ms,
        support_needed,
        facts,
    ) {
        (
            Some(police_agency_id),
            Some(officer_id),
            Some(officer_name),
            Some(case_number),
            Some(offence_article),
            Some(offence_description),
            Some(occurred_at_ms),
            Some(support_needed),
            Some(facts),
        ) if v.is_empty() => Ok(Report::Police {
            police_agency_id,
            officer_id,
            officer_name,
            case_number,
            offence_article,
            offence_description,
            occurred_at_ms,
            criminal_proceedings_opened: raw.criminal_proceedings_opened,
            support_needed,
            facts,
            police_received_at_ms,
        }),
        _ => Err(v),
    }
}

fn required_id(v: &mut Violations, field: &str, raw: &str) -> Option<String> {
    let id = raw.trim();
    if id.is_empty() {
        v.add(field, "is required");
        None
    } else if id.len() > ID_MAX {
        v.add(field, format!("must be at most {ID_MAX} characters"));
        None
    } else {
        Some(id.to_owned())
    }
}

fn required_text(raw: &str, max: usize) -> Result<String, String> {
    let text = text::bounded(raw, max)?;
    if text.is_empty() {
        return Err("is required".into());
    }
    Ok(text)
}

/// `occurred_hint`: when it happened, from outside the facts (a police
/// notification's `occurred_at`), used when the facts do not say.
fn parse_facts(
    raw: Option<RawFacts>,
    path: &str,
    ctx: &Context<'_>,
    occurred_hint: Option<i64>,
    v: &mut Violations,
) -> Option<ReportFacts> {
    let Some(raw) = raw else {
        v.add(path, "is required");
        return None;
    };
    let received_at_ms = match raw.received_at_ms {
        None => {
            v.add(format!("{path}.received_at"), "is required");
            None
        }
        Some(ms) if ms > ctx.now_ms + CLOCK_SKEW_MS => {
            v.add(format!("{path}.received_at"), "must not be in the future");
            None
        }
        Some(ms) => Some(ms),
    };
    let received_on = vietnam_date(received_at_ms.unwrap_or(ctx.now_ms));
    let occurred_at_ms = match raw.occurred_at_ms {
        Some(ms) if ms > ctx.now_ms + CLOCK_SKEW_MS => {
            v.add(format!("{path}.occurred_at"), "must not be in the future");
            None
        }
        Some(ms) if received_at_ms.is_some_and(|r| ms > r + CLOCK_SKEW_MS) => {
            v.add(
                format!("{path}.occurred_at"),
                "must not be after received_at",
            );
            None
        }
        other => other,
    };
    let occurred_on = occurred_at_ms.or(occurred_hint).map(vietnam_date);
    let child = match raw.child {
        None => {
            v.add(format!("{path}.child"), "is required");
            None
        }
        Some(child) => parse_child(child, &format!("{path}.child"), received_on, v),
    };
    let incident_place = match raw.incident_place {
        None => {
            v.add(
                format!("{path}.incident_place"),
                "is required: the commune where it happened handles the case",
            );
            None
        }
        Some(place) => parse_place(
            place,
            &format!("{path}.incident_place"),
            (received_on, occurred_on),
            ctx,
            v,
        ),
    };
    let chosen = raw.responsible_unit_id.trim();
    let responsible_unit_id = incident_place.as_ref().and_then(|place| {
        v.check(
            format!("{path}.responsible_unit_id"),
            ctx.directory.responsible_unit(
                &place.unit_id,
                received_on,
                (!chosen.is_empty()).then_some(chosen),
            ),
        )
    });
    let province_id = responsible_unit_id.as_deref().and_then(|unit| {
        v.check(
            format!("{path}.incident_place.unit_id"),
            ctx.directory
                .province_of(unit)
                .map(|p| p.id.clone())
                .ok_or_else(|| format!("{unit:?} belongs to no province in the reference data")),
        )
    });
    let residence_place = raw
        .residence_place
        .filter(|p| !p.unit_id.trim().is_empty() || !p.address.trim().is_empty())
        .and_then(|p| {
            parse_place(
                p,
                &format!("{path}.residence_place"),
                (received_on, None),
                ctx,
                v,
            )
        });
    let concerns = parse_concerns(
        raw.concerns.unwrap_or_default(),
        &format!("{path}.concerns"),
        v,
    );
    let narrative = v.check(
        format!("{path}.narrative"),
        text::bounded(&raw.narrative, NARRATIVE_MAX),
    );
    if let (Some(concerns), Some(narrative)) = (&concerns, &narrative)
        && concerns.is_empty()
        && narrative.is_empty()
    {
        v.add(
            format!("{path}.concerns"),
            "a report needs at least one concern or a narrative",
        );
    }
    let father = raw
        .father
        .and_then(|p| parse_person(p, &format!("{path}.father"), v));
    let mother = raw
        .mother
        .and_then(|p| parse_person(p, &format!("{path}.mother"), v));
    let caregiver = raw
        .caregiver
        .and_then(|p| parse_person(p, &format!("{path}.caregiver"), v));
    let actions_taken = v.check(
        format!("{path}.actions_taken"),
        text::bounded(&raw.actions_taken, TEXT_MAX),
    );
    let likely_consequence = v.check(
        format!("{path}.likely_consequence"),
        text::bounded(&raw.likely_consequence, TEXT_MAX),
    );
    let follow_up_case_id = if raw.follow_up_case_id.trim().is_empty() {
        Some(None)
    } else {
        v.check(
            format!("{path}.follow_up_case_id"),
            Uuid::parse_str(raw.follow_up_case_id.trim())
                .map(Some)
                .map_err(|_| "must be a case id (UUID)".to_owned()),
        )
    };
    Some(ReportFacts {
        received_at_ms: received_at_ms?,
        child: child?,
        incident_place: incident_place?,
        residence_place,
        concerns: concerns?,
        narrative: narrative?,
        immediate_danger: raw.immediate_danger,
        caregiver_is_alleged_abuser: raw.caregiver_is_alleged_abuser,
        father,
        mother,
        caregiver,
        actions_taken: actions_taken?,
        likely_consequence: likely_consequence?,
        follow_up_case_id: follow_up_case_id?,
        setting: raw.setting.unwrap_or_default(),
        occurred_at_ms,
        responsible_unit_id,
        province_id,
        report_status: raw.report_status.unwrap_or_default(),
    })
}

fn parse_child(raw: RawChild, path: &str, received_on: Date, v: &mut Violations) -> Option<Child> {
    let full_name = v.check(
        format!("{path}.full_name"),
        text::bounded(&raw.full_name, NAME_MAX),
    );
    let age = match (raw.date_of_birth, raw.estimated_age_years) {
        (Some(dob), None) => {
            let field = format!("{path}.date_of_birth");
            match Age::parse_birth(dob.trim()).and_then(|age| {
                age.birth_range(received_on)
                    .map(|range| (age, range))
                    .ok_or_else(|| "is not a date".to_owned())
            }) {
                Err(rule) => {
                    v.add(field, rule);
                    None
                }
                Ok((_, (first, _))) if first > received_on => {
                    v.add(field, "must not be in the future");
                    None
                }
                Ok((age, (_, latest))) => {
                    // Known to the month or year only: the youngest possible.
                    let years = u32::try_from(age_on(latest, received_on)).unwrap_or(0);
                    if years > MAX_AGE {
                        v.add(
                            field,
                            format!("the child must be 0 to {MAX_AGE} years old; this is {years}"),
                        );
                        None
                    } else {
                        Some((age, years))
                    }
                }
            }
        }
        (None, Some(years)) if years <= MAX_AGE => Some((Age::EstimatedYears(years), years)),
        (None, Some(years)) => {
            v.add(
                format!("{path}.estimated_age_years"),
                format!("must be 0 to {MAX_AGE}, not {years}"),
            );
            None
        }
        (None, None) => {
            v.add(
                format!("{path}.age"),
                "date_of_birth or estimated_age_years is required",
            );
            None
        }
        (Some(_), Some(_)) => {
            v.add(
                format!("{path}.age"),
                "give date_of_birth or estimated_age_years, not both",
            );
            None
        }
    };
    let sex = raw.sex.or_else(|| {
        v.add(
            format!("{path}.sex"),
            "is required (male, female or unknown)",
        );
        None
    });
    let ethnicity = v.check(
        format!("{path}.ethnicity"),
        text::bounded(&raw.ethnicity, 100),
    );
    let current_condition = v.check(
        format!("{path}.current_condition"),
        text::bounded(&raw.current_condition, TEXT_MAX),
    );
    let full_name = full_name?;
    let (age, age_years) = age?;
    Some(Child {
        name_key: text::search_key(&full_name),
        full_name,
        age,
        age_years,
        sex: sex?,
        ethnicity: ethnicity?,
        current_condition: current_condition?,
    })
}

/// `days`: the day received and, when known, the day it happened; the unit
/// must be a commune in force on one of them.
fn parse_place(
    raw: RawPlace,
    path: &str,
    (received_on, occurred_on): (Date, Option<Date>),
    ctx: &Context<'_>,
    v: &mut Violations,
) -> Option<Place> {
    let field = format!("{path}.unit_id");
    let unit = if raw.unit_id.trim().is_empty() {
        v.add(field, "is required");
        None
    } else {
        v.check(
            field,
            ctx.directory
                .unit_for_report(raw.unit_id.trim(), received_on, occurred_on)
                .map(|u| u.id.clone()),
        )
    };
    let address = v.check(
        format!("{path}.address"),
        text::bounded(&raw.address, SHORT_MAX),
    );
    Some(Place {
        unit_id: unit?,
        address: address?,
    })
}

fn listed<T: Copy + PartialEq>(
    items: Vec<Option<T>>,
    field: &str,
    v: &mut Violations,
) -> Option<Vec<T>> {
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        match item {
            None => {
                v.add(format!("{field}[{i}]"), "is unspecified or unknown");
                ok = false;
            }
            Some(value) if out.contains(&value) => {
                v.add(format!("{field}[{i}]"), "is listed twice");
                ok = false;
            }
            Some(value) => out.push(value),
        }
    }
    ok.then_some(out)
}

fn parse_concerns(raw: RawConcerns, path: &str, v: &mut Violations) -> Option<Concerns> {
    let abuse_types = listed(raw.abuse_types, &format!("{path}.abuse_types"), v);
    let forms = listed(
        raw.sexual_abuse_forms,
        &format!("{path}.sexual_abuse_forms"),
        v,
    );
    if let (Some(types), Some(forms)) = (&abuse_types, &forms)
        && !forms.is_empty()
        && !types.contains(&AbuseType::SexualAbuse)
    {
        v.add(
            format!("{path}.sexual_abuse_forms"),
            "only with abuse type sexual abuse",
        );
    }
    let special = listed(
        raw.special_circumstances,
        &format!("{path}.special_circumstances"),
        v,
    );
    let injury = match raw.injury {
        None => Some(None),
        Some(injury) => {
            let cause = injury.cause.or_else(|| {
                v.add(format!("{path}.injury.cause"), "is required for an injury");
                None
            });
            let outcome = injury.outcome.or_else(|| {
                v.add(
                    format!("{path}.injury.outcome"),
                    "is required for an injury",
                );
                None
            });
            let detail = v.check(
                format!("{path}.injury.detail"),
                text::bounded(&injury.detail, SHORT_MAX),
            );
            match (cause, outcome, detail) {
                (Some(cause), Some(outcome), Some(detail)) => Some(Some(Injury {
                    cause,
                    outcome,
                    detail,
                })),
                _ => None,
            }
        }
    };
    Some(Concerns {
        abuse_types: abuse_types?,
        sexual_abuse_forms: forms?,
        injury: injury?,
        special_circumstances: special?,
    })
}

fn optional_phone(raw: &str, field: String, v: &mut Violations) -> Option<Option<String>> {
    if raw.trim().is_empty() {
        Some(None)
    } else {
        v.check(field, text::phone(raw).map(Some))
    }
}

fn parse_person(raw: RawPerson, path: &str, v: &mut Violations) -> Option<Person> {
    let full_name = v.check(
        format!("{path}.full_name"),
        text::bounded(&raw.full_name, NAME_MAX),
    );
    let phone = optional_phone(&raw.phone, format!("{path}.phone"), v);
    let address = v.check(
        format!("{path}.address"),
        text::bounded(&raw.address, SHORT_MAX),
    );
    let relation = v.check(
        format!("{path}.relation"),
        text::bounded(&raw.relation, NAME_MAX),
    );
    Some(Person {
        full_name: full_name?,
        phone: phone?,
        address: address?,
        relation: relation?,
    })
}

fn parse_informant(raw: RawInformant, path: &str, v: &mut Violations) -> Option<Informant> {
    let has_details = !(raw.full_name.trim().is_empty()
        && raw.phone.trim().is_empty()
        && raw.relation.trim().is_empty());
    if !raw.consent {
        if has_details {
            v.add(
                format!("{path}.consent"),
                "the informant's details may be recorded only with their consent",
            );
        }
        return None;
    }
    let full_name = v.check(
        format!("{path}.full_name"),
        text::bounded(&raw.full_name, NAME_MAX),
    );
    let phone = optional_phone(&raw.phone, format!("{path}.phone"), v);
    let relation = v.check(
        format!("{path}.relation"),
        text::bounded(&raw.relation, NAME_MAX),
    );
    Some(Informant {
        full_name: full_name?,
        phone: phone?,
        relation: relation?,
    })
}

// ---------------------------------------------------------------------------
// Possible duplicates

/// What the duplicate check knows of an earlier intake.
#[derive(Clone, Debug)]
pub struct Prior {
    /// Its intake id.
    pub intake_id: Uuid,
    /// Its child's name key.
    pub name_key: String,
    /// Its child's age as reported.
    pub age: Age,
    /// Its child's age in years when received.
    pub age_years: u32,
    /// Its incident commune.
    pub incident_unit_id: String,
    /// When it was received.
    pub received_at_ms: i64,
    /// Its case and when that case was opened, once handed over.
    pub case: Option<(Uuid, i64)>,
    /// That case has been closed (and not reopened).
    pub case_closed: bool,
}

/// The earlier reports that may be about the same child as `facts`: same
/// name without diacritics (a name is needed), same birth date or ages
/// within one year, same incident commune, and an open case opened (or a report
/// received, if not yet handed over) within 30 days before `facts` was
/// received. Closed cases are not candidates. Returns (case ids, intake ids not yet handed over), each sorted
/// and without repeats. Flagged only: never merged.
#[must_use]
pub fn possible_duplicates<'a>(
    facts: &ReportFacts,
    priors: impl IntoIterator<Item = &'a Prior>,
) -> (Vec<Uuid>, Vec<Uuid>) {
    let child = &facts.child;
    let mut cases = Vec::new();
    let mut intakes = Vec::new();
    if child.name_key.is_empty() {
        return (cases, intakes);
    }
    for prior in priors {
        let same_age = match (child.age, prior.age) {
            (Age::DateOfBirth(a), Age::DateOfBirth(b)) => a == b,
            _ => child.age_years.abs_diff(prior.age_years) <= 1,
        };
        let when = prior
            .case
            .map_or(prior.received_at_ms, |(_, opened)| opened);
        let recent = when <= facts.received_at_ms + CLOCK_SKEW_MS
            && facts.received_at_ms - when <= DUPLICATE_WINDOW_MS;
        if !prior.case_closed
            && prior.name_key == child.name_key
            && same_age
            && prior.incident_unit_id == facts.incident_place.unit_id
            && recent
        {
            match prior.case {
                Some((case, _)) => cases.push(case),
                None => intakes.push(prior.intake_id),
            }
        }
    }
    cases.sort_unstable();
    cases.dedup();
    intakes.sort_unstable();
    intakes.dedup();
    (cases, intakes)
}

/// Whether a child of this age is outside the Law on Children (16 or 17).
#[must_use]
pub const fn outside_child_law(age_years: u32) -> bool {
    age_years >= CHILD_LAW_AGE_LIMIT
}

#[cfg(test)]
mod tests;
