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
//! `Definitions` is in this file; `Period` in `stats/period.rs`, `Records`
//! and the breakdowns' keys and labels in `stats/records.rs`, the table in
//! `stats/table.rs`.
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
use time::{Date, OffsetDateTime};
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

mod period;
mod records;
mod table;

pub use period::*;
pub use records::*;
pub use table::*;

#[cfg(test)]
mod tests;
