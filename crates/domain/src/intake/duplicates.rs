//! Possible duplicates: an earlier intake about what may be the same child.

use super::*;

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
