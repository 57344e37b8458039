//! What deciding a step needs besides the case: the working-day calendar,
//! the service clock, the warning share, the reference data.

use std::sync::Arc;

use baove_domain::calendar::Calendar;
use baove_domain::case::procedure::Context;
use baove_eventlog::Clock;

/// What deciding a step needs that is not in the case.
#[derive(Clone)]
pub struct Rules {
    /// Working days.
    pub calendar: Arc<Calendar>,
    /// The service clock.
    pub clock: Clock,
    /// Share of a deadline's time before the warning.
    pub warn_share: f64,
    /// Agencies and units, to check the ones a referral names.
    pub directory: Arc<baove_domain::reference::Directory>,
}

impl Rules {
    /// Runs `f` with a decision context at the current time.
    pub fn with_context<T>(&self, f: impl FnOnce(&Context<'_>) -> T) -> T {
        f(&Context {
            now_ms: (self.clock)(),
            calendar: &self.calendar,
            warn_share: self.warn_share,
        })
    }
}
