//! The legal deadlines: their kinds, their events, their state on a case,
//! and which of their events fall due when.

use serde::{Deserialize, Serialize};

use super::*;

/// The legal deadlines a case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    /// Emergency measures within 12 hours (Đ26.3).
    Emergency,
    /// Plan drafted within 5 working days (Đ28.1).
    PlanDrafted,
    /// Plan approved within 7 working days in total (Đ28.2).
    PlanApproved,
}

impl DeadlineKind {
    /// What satisfies it, in words.
    #[must_use]
    pub const fn satisfied_by(self) -> &'static str {
        match self {
            Self::Emergency => {
                "an emergency measure, or an initial assessment finding none applies"
            }
            Self::PlanDrafted => "a drafted plan (Mẫu 04)",
            Self::PlanApproved => "the plan's approval (Mẫu 05)",
        }
    }
}

/// Which occurrence of a deadline: one case can run several 12-hour clocks
/// over its life (one per report of new danger, one per reopening), so a
/// deadline is named by its kind and its number, `emergency-2`. Events
/// written before occurrences existed name none: they mean the latest
/// occurrence of their kind.
#[must_use]
pub fn deadline_id(kind: DeadlineKind, n: u32) -> String {
    let name = match kind {
        DeadlineKind::Emergency => "emergency",
        DeadlineKind::PlanDrafted => "plan_drafted",
        DeadlineKind::PlanApproved => "plan_approved",
    };
    format!("{name}-{n}")
}

/// A deadline was set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineSet {
    /// Which occurrence ([`deadline_id`]); absent in events written before
    /// occurrences existed (the first of its kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Which.
    pub kind: DeadlineKind,
    /// When its clock started, Unix ms.
    pub start_ms: i64,
    /// When it falls due, Unix ms.
    pub due_at_ms: i64,
    /// When the early warning is due, Unix ms.
    pub warn_at_ms: i64,
}

/// A deadline was satisfied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineMet {
    /// Which occurrence; absent in events written before occurrences
    /// existed (the latest of its kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Which.
    pub kind: DeadlineKind,
    /// Met after it had been missed.
    pub late: bool,
}

/// A deadline no longer applies (the case closed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineCleared {
    /// Which occurrence; absent in events written before occurrences
    /// existed (the latest of its kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Which.
    pub kind: DeadlineKind,
    /// Why.
    pub reason: String,
}

/// The configured share of a deadline's time has passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineWarned {
    /// Which occurrence; absent in events written before occurrences
    /// existed (the latest of its kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Which.
    pub kind: DeadlineKind,
    /// When it falls due.
    pub due_at_ms: i64,
}

/// A deadline passed unmet. Appended once per deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineMissed {
    /// Which occurrence; absent in events written before occurrences
    /// existed (the latest of its kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Which.
    pub kind: DeadlineKind,
    /// When it fell due.
    pub due_at_ms: i64,
}

/// Where a deadline stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineState {
    /// Running (possibly already missed).
    Open,
    /// Satisfied.
    Met,
    /// No longer applies.
    Cleared,
}

/// A deadline of a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// Which occurrence ([`deadline_id`]).
    pub id: String,
    /// Which.
    pub kind: DeadlineKind,
    /// When its clock started.
    pub start_ms: i64,
    /// When it falls due.
    pub due_at_ms: i64,
    /// When the early warning is due.
    pub warn_at_ms: i64,
    /// Where it stands.
    pub state: DeadlineState,
    /// The early warning was raised.
    pub warned: bool,
    /// It was missed (it may still be met, late).
    pub missed: bool,
}

/// The deadline events due at `now_ms`: `DeadlineMissed` for each open
/// deadline past due and not yet marked missed, `DeadlineWarned` for each
/// past its warning time and not yet warned. Empty when nothing is due, so
/// a scheduler tick that finds them already appended appends nothing.
#[must_use]
pub fn due_deadline_events(state: &CaseState, now_ms: i64) -> Vec<CaseEvent> {
    let mut events = Vec::new();
    if state.status == CaseStatus::Closed {
        return events;
    }
    for d in state
        .deadlines
        .values()
        .filter(|d| d.state == DeadlineState::Open)
    {
        if now_ms >= d.due_at_ms {
            if !d.missed {
                events.push(CaseEvent::DeadlineMissed(DeadlineMissed {
                    id: Some(d.id.clone()),
                    kind: d.kind,
                    due_at_ms: d.due_at_ms,
                }));
            }
        } else if now_ms >= d.warn_at_ms && !d.warned {
            events.push(CaseEvent::DeadlineWarned(DeadlineWarned {
                id: Some(d.id.clone()),
                kind: d.kind,
                due_at_ms: d.due_at_ms,
            }));
        }
    }
    events
}

/// The earliest instant at which [`due_deadline_events`] would return
/// something, if any: when the scheduler needs to look at this case next.
#[must_use]
pub fn next_deadline_check(state: &CaseState) -> Option<i64> {
    next_check(state.status, state.deadlines.values())
}

/// [`next_deadline_check`] of a case at `status` with `deadlines`.
pub(crate) fn next_check<'a>(
    status: CaseStatus,
    deadlines: impl Iterator<Item = &'a Deadline>,
) -> Option<i64> {
    if status == CaseStatus::Closed {
        return None;
    }
    deadlines
        .filter(|d| d.state == DeadlineState::Open && !d.missed)
        .map(|d| if d.warned { d.due_at_ms } else { d.warn_at_ms })
        .min()
}

/// A deadline in words, for alerts and messages.
#[must_use]
pub fn describe_deadline(d: &Deadline) -> String {
    format!(
        "{:?} due {} ({})",
        d.kind,
        describe(d.due_at_ms),
        d.kind.satisfied_by()
    )
}
