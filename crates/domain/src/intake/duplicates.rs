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
/// received. Closed cases are not candidates. Returns (case ids, intake ids
/// not yet handed over), each sorted and without repeats, and each at most
/// the [`MAX_POSSIBLE_DUPLICATES`] most recent (latest opened or received;
/// of equal times, the lowest ids): a child reported hundreds of times
/// within the window must not make the next report's event too large to
/// store. Flagged only: never merged.
#[must_use]
pub fn possible_duplicates<'a>(
    facts: &ReportFacts,
    priors: impl IntoIterator<Item = &'a Prior>,
) -> (Vec<Uuid>, Vec<Uuid>) {
    let child = &facts.child;
    // (when, id) of each candidate; a case may be named by several priors.
    let mut cases: Vec<(i64, Uuid)> = Vec::new();
    let mut intakes: Vec<(i64, Uuid)> = Vec::new();
    if child.name_key.is_empty() {
        return (Vec::new(), Vec::new());
    }
    for prior in priors {
        let same_age = match (child.age, prior.age) {
            (Age::DateOfBirth(a), Age::DateOfBirth(b)) => a == b,
            _ => child.age_years.abs_diff(prior.age_years) <= 1,
        };
        let when = compared_at(prior.received_at_ms, prior.case);
        let recent = duplicate_window(facts.received_at_ms).contains(&when);
        if !prior.case_closed
            && prior.name_key == child.name_key
            && same_age
            && prior.incident_unit_id == facts.incident_place.unit_id
            && recent
        {
            match prior.case {
                Some((case, _)) => cases.push((when, case)),
                None => intakes.push((when, prior.intake_id)),
            }
        }
    }
    (most_recent(cases), most_recent(intakes))
}

/// The time of an earlier report that [`duplicate_window`] is compared
/// with: its case's opening once handed over (`case`: the case and when it
/// was opened), else its receipt.
#[must_use]
pub const fn compared_at(received_at_ms: i64, case: Option<(Uuid, i64)>) -> i64 {
    match case {
        Some((_, opened_at_ms)) => opened_at_ms,
        None => received_at_ms,
    }
}

/// When an earlier report must have had its case opened (or, not handed
/// over yet, have been received) to be a possible duplicate of a report
/// received at `received_at_ms`: from [`DUPLICATE_WINDOW_MS`] before to
/// [`CLOCK_SKEW_MS`] after, both included. A read model keeps its reports
/// ordered by that time, so that it hands [`possible_duplicates`] only
/// these, however many reports it holds.
#[must_use]
pub const fn duplicate_window(received_at_ms: i64) -> std::ops::RangeInclusive<i64> {
    (received_at_ms - DUPLICATE_WINDOW_MS)..=(received_at_ms + CLOCK_SKEW_MS)
}

/// Most possible duplicates of each kind one report names.
pub const MAX_POSSIBLE_DUPLICATES: usize = 20;

/// The ids of the [`MAX_POSSIBLE_DUPLICATES`] most recent `candidates`
/// (latest first, then lowest id), each once, sorted by id.
fn most_recent(mut candidates: Vec<(i64, Uuid)>) -> Vec<Uuid> {
    candidates.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut ids: Vec<Uuid> = Vec::with_capacity(MAX_POSSIBLE_DUPLICATES);
    for (_, id) in candidates {
        if ids.len() == MAX_POSSIBLE_DUPLICATES {
            break;
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids
}

/// Whether a child of this age is outside the Law on Children (16 or 17).
#[must_use]
pub const fn outside_child_law(age_years: u32) -> bool {
    age_years >= CHILD_LAW_AGE_LIMIT
}
