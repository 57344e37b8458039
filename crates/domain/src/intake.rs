//! Intake: Mẫu 01 reports to the 111 hotline and police notifications.
//!
//! Raw input (`Raw*`, plain fields as a request carries them) is parsed into
//! the report types with every violation collected at once; the report types
//! can only be built that way. [`IntakeRecorded`] and [`IntakeHandedOver`]
//! are the intake stream's events.
//!
//! This file holds the report types and the events; `parse.rs` the raw
//! input and its parsing; `duplicates.rs` the possible-duplicate search.

use ::time::Date;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::{DAY_MS, date_serde, parse_date, vietnam_date};

mod duplicates;
mod parse;

pub use duplicates::*;
pub use parse::*;

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

#[cfg(test)]
mod tests;
