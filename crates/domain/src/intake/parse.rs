//! Raw input (`Raw*`, plain fields as a request carries them) parsed into
//! the report types, every violation collected at once.

use ::time::Date;

use super::*;
use crate::reference::Directory;
use crate::text;
use crate::time::age_on;
use crate::violation::Violations;

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
    /// The province whose reports this intake takes (its partition's unit
    /// id), or `None`: every province. A report for another province is
    /// refused, naming the province it belongs to.
    pub partition: Option<&'a str>,
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
        let field = format!("{path}.incident_place.unit_id");
        let Some(province) = ctx.directory.province_of(unit).map(|p| p.id.clone()) else {
            v.add(
                field,
                format!("{unit:?} belongs to no province in the reference data"),
            );
            return None;
        };
        match ctx.partition {
            // Said apart from the other rules (`add_elsewhere`): the
            // report is right as it is, for that province's intake, to
            // which a client knowing its processes sends it unchanged.
            Some(partition) if partition != province => {
                let named = |id: &str| {
                    ctx.directory
                        .unit_name(id, received_on)
                        .map_or_else(|| id.to_owned(), |name| format!("{id} ({name})"))
                };
                v.add_elsewhere(
                    field,
                    format!(
                        "lies in province {}, and this intake takes the reports of province {} only (its partition): send the report to province {province}'s intake",
                        named(&province),
                        named(partition),
                    ),
                    &province,
                    ctx.directory
                        .unit_name(&province, received_on)
                        .map(str::to_owned),
                );
                None
            }
            _ => Some(province),
        }
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
