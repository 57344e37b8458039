//! Possible duplicates: an earlier intake about what may be the same child.

use super::*;
use std::borrow::Borrow;
use std::collections::HashSet;

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
///
/// The earlier reports come in two runs, each **newest first** by
/// [`compared_at`]: `handed_over` is read for the cases and `waiting` for
/// the reports not handed over yet (a report of the other kind in a run is
/// passed over). Each run is read only as far as its answer needs: up to
/// its [`MAX_POSSIBLE_DUPLICATES`]th distinct candidate and the ones of
/// the same time, and not past the window's start; so a child reported
/// thousands of times in a month, each report its own case, costs the next
/// report no more than one reported twenty times. (Reports of one case
/// count as one candidate: a case's follow-ups are all read.) A read
/// model hands its reports in that order from an index
/// ([`duplicate_window`]).
#[must_use]
pub fn possible_duplicates(
    facts: &ReportFacts,
    handed_over: impl IntoIterator<Item = impl Borrow<Prior>>,
    waiting: impl IntoIterator<Item = impl Borrow<Prior>>,
) -> (Vec<Uuid>, Vec<Uuid>) {
    if facts.child.name_key.is_empty() {
        return (Vec::new(), Vec::new());
    }
    (
        most_recent(facts, handed_over, |p| p.case.map(|(case, _)| case)),
        most_recent(facts, waiting, |p| p.case.is_none().then_some(p.intake_id)),
    )
}

/// Whether `prior` may be about the same child as `facts`, whatever its
/// time.
fn same_child(facts: &ReportFacts, prior: &Prior) -> bool {
    let child = &facts.child;
    let same_age = match (child.age, prior.age) {
        (Age::DateOfBirth(a), Age::DateOfBirth(b)) => a == b,
        _ => child.age_years.abs_diff(prior.age_years) <= 1,
    };
    !prior.case_closed
        && prior.name_key == child.name_key
        && same_age
        && prior.incident_unit_id == facts.incident_place.unit_id
}

/// The ids (`id_of`) of the [`MAX_POSSIBLE_DUPLICATES`] most recent
/// candidates among `priors` (newest first), latest first then lowest id,
/// each once, sorted by id; reading `priors` no further than that needs.
fn most_recent(
    facts: &ReportFacts,
    priors: impl IntoIterator<Item = impl Borrow<Prior>>,
    id_of: impl Fn(&Prior) -> Option<Uuid>,
) -> Vec<Uuid> {
    let window = duplicate_window(facts.received_at_ms);
    // (when, id) of each candidate, once per id at its latest time: the
    // first seen, newest first. Many may tie at the last time needed, so
    // an id is looked up in a set, not in the list.
    let mut found: Vec<(i64, Uuid)> = Vec::new();
    let mut seen: HashSet<Uuid> = HashSet::new();
    // The time of the MAX_POSSIBLE_DUPLICATES-th distinct id: only ties
    // of it may still rank before a found one.
    let mut last_needed: Option<i64> = None;
    let mut previous = i64::MAX;
    for prior in priors {
        let prior = prior.borrow();
        let when = compared_at(prior.received_at_ms, prior.case);
        debug_assert!(when <= previous, "earlier reports must come newest first");
        previous = when;
        if when < *window.start() || last_needed.is_some_and(|last| when < last) {
            break;
        }
        if when > *window.end() || !same_child(facts, prior) {
            continue;
        }
        let Some(id) = id_of(prior) else { continue };
        if seen.insert(id) {
            found.push((when, id));
            if found.len() == MAX_POSSIBLE_DUPLICATES {
                last_needed = Some(when);
            }
        }
    }
    found.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    found.truncate(MAX_POSSIBLE_DUPLICATES);
    let mut ids: Vec<Uuid> = found.into_iter().map(|(_, id)| id).collect();
    ids.sort_unstable();
    ids
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

/// Whether a child of this age is outside the Law on Children (16 or 17).
#[must_use]
pub const fn outside_child_law(age_years: u32) -> bool {
    age_years >= CHILD_LAW_AGE_LIMIT
}
