//! Proto ↔ domain for intake: requests become the domain's raw input (the
//! domain parses and judges them); recorded reports become proto messages.

use baove_domain::intake::{
    self as d, RawChild, RawConcerns, RawFacts, RawHotlineReport, RawInformant, RawInjury,
    RawPerson, RawPlace, RawPoliceNotification, Report,
};
use baove_proto::v1 as p;

pub use baove_runtime::{timestamp, unix_ms as ms};

use baove_runtime::convert::{
    abuse_type, concerns_to_proto, injury_cause, injury_outcome, report_status,
    report_status_to_proto, setting, setting_to_proto, sex, sex_to_proto, sexual_form, special,
};
pub use baove_runtime::convert::{channel, channel_to_proto};

fn raw_child(c: p::Child) -> RawChild {
    let (date_of_birth, estimated_age_years) = match c.age {
        Some(p::child::Age::DateOfBirth(dob)) => (Some(dob), None),
        Some(p::child::Age::EstimatedAgeYears(years)) => (None, Some(years)),
        None => (None, None),
    };
    RawChild {
        full_name: c.full_name,
        date_of_birth,
        estimated_age_years,
        sex: sex(c.sex),
        ethnicity: c.ethnicity,
        current_condition: c.current_condition,
    }
}

fn raw_place(place: p::Place) -> RawPlace {
    RawPlace {
        unit_id: place.unit_id,
        address: place.address,
    }
}

fn raw_person(person: p::Person) -> RawPerson {
    RawPerson {
        full_name: person.full_name,
        phone: person.phone,
        address: person.address,
        relation: person.relation,
    }
}

fn raw_facts(f: p::ReportFacts) -> RawFacts {
    RawFacts {
        received_at_ms: f.received_at.as_ref().map(ms),
        child: f.child.map(raw_child),
        incident_place: f.incident_place.map(raw_place),
        residence_place: f.residence_place.map(raw_place),
        concerns: f.concerns.map(|c| RawConcerns {
            abuse_types: c.abuse_types.into_iter().map(abuse_type).collect(),
            sexual_abuse_forms: c.sexual_abuse_forms.into_iter().map(sexual_form).collect(),
            injury: c.injury.map(|i| RawInjury {
                cause: injury_cause(i.cause),
                outcome: injury_outcome(i.outcome),
                detail: i.detail,
            }),
            special_circumstances: c.special_circumstances.into_iter().map(special).collect(),
        }),
        narrative: f.narrative,
        immediate_danger: f.immediate_danger,
        caregiver_is_alleged_abuser: f.caregiver_is_alleged_abuser,
        father: f.father.map(raw_person),
        mother: f.mother.map(raw_person),
        caregiver: f.caregiver.map(raw_person),
        actions_taken: f.actions_taken,
        likely_consequence: f.likely_consequence,
        setting: setting(f.setting),
        follow_up_case_id: f.follow_up_case_id,
        occurred_at_ms: f.occurred_at.as_ref().map(ms),
        responsible_unit_id: f.responsible_unit_id,
        report_status: report_status(f.report_status),
    }
}

/// A hotline report request → raw input.
#[must_use]
pub fn raw_hotline(r: p::HotlineReport) -> RawHotlineReport {
    RawHotlineReport {
        channel: channel(r.channel),
        operator_id: r.operator_id,
        facts: r.facts.map(raw_facts),
        informant: r.informant.map(|i| RawInformant {
            consent: i.consent,
            full_name: i.full_name,
            phone: i.phone,
            relation: i.relation,
        }),
    }
}

/// A police notification request → raw input.
#[must_use]
pub fn raw_police(n: p::PoliceNotification) -> RawPoliceNotification {
    let offence = n.offence.unwrap_or_default();
    RawPoliceNotification {
        police_agency_id: n.police_agency_id,
        officer_id: n.officer_id,
        officer_name: n.officer_name,
        case_number: n.case_number,
        offence_article: offence.article,
        offence_description: offence.description,
        occurred_at_ms: n.occurred_at.as_ref().map(ms),
        criminal_proceedings_opened: n.criminal_proceedings_opened,
        support_needed: n.support_needed,
        facts: n.facts.map(raw_facts),
        police_received_at_ms: n.police_received_at.as_ref().map(ms),
    }
}

fn child_to_proto(c: &d::Child) -> p::Child {
    p::Child {
        full_name: c.full_name.clone(),
        age: Some(match (c.age.birth_text(), c.age) {
            (Some(text), _) => p::child::Age::DateOfBirth(text),
            (None, d::Age::EstimatedYears(years)) => p::child::Age::EstimatedAgeYears(years),
            (None, _) => p::child::Age::EstimatedAgeYears(c.age_years),
        }),
        sex: sex_to_proto(c.sex),
        ethnicity: c.ethnicity.clone(),
        current_condition: c.current_condition.clone(),
    }
}

fn place_to_proto(place: &d::Place) -> p::Place {
    p::Place {
        unit_id: place.unit_id.clone(),
        address: place.address.clone(),
    }
}

fn person_to_proto(person: &d::Person) -> p::Person {
    p::Person {
        full_name: person.full_name.clone(),
        phone: person.phone.clone().unwrap_or_default(),
        address: person.address.clone(),
        relation: person.relation.clone(),
    }
}

fn facts_to_proto(f: &d::ReportFacts) -> p::ReportFacts {
    p::ReportFacts {
        received_at: Some(timestamp(f.received_at_ms)),
        child: Some(child_to_proto(&f.child)),
        incident_place: Some(place_to_proto(&f.incident_place)),
        residence_place: f.residence_place.as_ref().map(place_to_proto),
        concerns: Some(concerns_to_proto(&f.concerns)),
        narrative: f.narrative.clone(),
        immediate_danger: f.immediate_danger,
        caregiver_is_alleged_abuser: f.caregiver_is_alleged_abuser,
        father: f.father.as_ref().map(person_to_proto),
        mother: f.mother.as_ref().map(person_to_proto),
        caregiver: f.caregiver.as_ref().map(person_to_proto),
        actions_taken: f.actions_taken.clone(),
        likely_consequence: f.likely_consequence.clone(),
        setting: setting_to_proto(f.setting),
        occurred_at: f.occurred_at_ms.map(timestamp),
        responsible_unit_id: f.responsible_unit().to_owned(),
        province_id: f.province_id.clone().unwrap_or_default(),
        report_status: report_status_to_proto(f.report_status),
        follow_up_case_id: f
            .follow_up_case_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

/// A recorded report → the proto `oneof report` of `Intake`.
#[must_use]
pub fn report_to_proto(report: &Report) -> p::intake::Report {
    match report {
        Report::Hotline {
            channel,
            operator_id,
            facts,
            informant,
        } => p::intake::Report::Hotline(p::HotlineReport {
            channel: channel_to_proto(*channel) as i32,
            operator_id: operator_id.clone(),
            facts: Some(facts_to_proto(facts)),
            informant: informant.as_ref().map(|i| p::Informant {
                consent: true,
                full_name: i.full_name.clone(),
                phone: i.phone.clone().unwrap_or_default(),
                relation: i.relation.clone(),
            }),
        }),
        Report::Police {
            police_agency_id,
            officer_id,
            officer_name,
            case_number,
            offence_article,
            offence_description,
            occurred_at_ms,
            criminal_proceedings_opened,
            support_needed,
            facts,
            police_received_at_ms,
        } => p::intake::Report::Police(p::PoliceNotification {
            police_received_at: police_received_at_ms.map(timestamp),
            police_agency_id: police_agency_id.clone(),
            officer_id: officer_id.clone(),
            officer_name: officer_name.clone(),
            case_number: case_number.clone(),
            offence: Some(p::Offence {
                article: offence_article.clone(),
                description: offence_description.clone(),
            }),
            occurred_at: Some(timestamp(*occurred_at_ms)),
            criminal_proceedings_opened: *criminal_proceedings_opened,
            support_needed: support_needed.clone(),
            facts: Some(facts_to_proto(facts)),
        }),
    }
}

/// Every enum field of a report's facts (under `prefix`) whose number is
/// not a value of its enum: a client sending `setting = 55` is told so,
/// naming the field, instead of having it stored as "unknown".
#[must_use]
pub fn invalid_enums(facts: &p::ReportFacts, prefix: &str) -> baove_domain::Violations {
    fn check<E: TryFrom<i32>>(
        v: &mut baove_domain::Violations,
        field: String,
        raw: i32,
        name: &str,
    ) {
        if E::try_from(raw).is_err() {
            v.add(field, format!("{raw} is not a valid {name}"));
        }
    }
    let mut v = baove_domain::Violations::default();
    if let Some(child) = &facts.child {
        check::<p::Sex>(&mut v, format!("{prefix}.child.sex"), child.sex, "Sex");
    }
    if let Some(c) = &facts.concerns {
        for (i, raw) in c.abuse_types.iter().enumerate() {
            check::<p::AbuseType>(
                &mut v,
                format!("{prefix}.concerns.abuse_types[{i}]"),
                *raw,
                "AbuseType",
            );
        }
        for (i, raw) in c.sexual_abuse_forms.iter().enumerate() {
            check::<p::SexualAbuseForm>(
                &mut v,
                format!("{prefix}.concerns.sexual_abuse_forms[{i}]"),
                *raw,
                "SexualAbuseForm",
            );
        }
        for (i, raw) in c.special_circumstances.iter().enumerate() {
            check::<p::SpecialCircumstance>(
                &mut v,
                format!("{prefix}.concerns.special_circumstances[{i}]"),
                *raw,
                "SpecialCircumstance",
            );
        }
        if let Some(injury) = &c.injury {
            check::<p::InjuryCause>(
                &mut v,
                format!("{prefix}.concerns.injury.cause"),
                injury.cause,
                "InjuryCause",
            );
            check::<p::InjuryOutcome>(
                &mut v,
                format!("{prefix}.concerns.injury.outcome"),
                injury.outcome,
                "InjuryOutcome",
            );
        }
    }
    check::<p::AbuseSetting>(
        &mut v,
        format!("{prefix}.setting"),
        facts.setting,
        "AbuseSetting",
    );
    v
}

/// `parsed`, unless `bad_enums` found something: then every violation, the
/// enum ones first and none twice for the same field.
///
/// # Errors
/// The violations.
pub fn with_enum_checks<T>(
    bad_enums: baove_domain::Violations,
    parsed: Result<T, baove_domain::Violations>,
) -> Result<T, baove_domain::Violations> {
    if bad_enums.is_empty() {
        return parsed;
    }
    let mut all = bad_enums;
    if let Err(more) = parsed {
        for v in more.0 {
            if !all.0.iter().any(|seen| seen.field == v.field) {
                all.0.push(v);
            }
        }
    }
    Err(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_milliseconds() {
        for value in [0, 1, 999, 1_764_356_400_123, -1, -1001] {
            assert_eq!(ms(&timestamp(value)), value);
        }
    }
}
