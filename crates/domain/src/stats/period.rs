//! [`Period`]: a range of days in Asia/Ho_Chi_Minh time.

use time::{Date, Month, UtcOffset};

/// Vietnam's offset from UTC (no daylight saving).
pub(super) const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// A range of days in Asia/Ho_Chi_Minh time: `[from_ms, to_ms)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// As asked, e.g. `2022-H1`.
    pub label: String,
    /// First day.
    pub first_day: Date,
    /// Last day (inclusive).
    pub last_day: Date,
}

pub(super) fn start_ms(day: Date) -> i64 {
    let at = day.midnight().assume_offset(VIETNAM);
    // Whole seconds since the epoch fit i64 milliseconds for any date here.
    at.unix_timestamp().saturating_mul(1000)
}

pub(super) fn month_days(year: i32, month: Month) -> Result<(Date, Date), String> {
    let first = Date::from_calendar_date(year, month, 1).map_err(|e| e.to_string())?;
    let last =
        Date::from_calendar_date(year, month, month.length(year)).map_err(|e| e.to_string())?;
    Ok((first, last))
}

impl Period {
    /// Parses `2022`, `2022-H1`/`2022-H2`, `2022-Q1`..`Q4`, `2022-05` or
    /// `2022-01-01..2022-06-30` (both days included).
    ///
    /// # Errors
    /// The rule, when it is none of these.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let rule = || {
            format!(
                "period {raw:?} must be a year (2022), a half (2022-H1), a quarter (2022-Q3), a month (2022-05) or days (2022-01-01..2022-06-30)"
            )
        };
        let months = |year: i32, first: u8, last: u8| -> Result<(Date, Date), String> {
            let first = Month::try_from(first).map_err(|e| e.to_string())?;
            let last = Month::try_from(last).map_err(|e| e.to_string())?;
            Ok((month_days(year, first)?.0, month_days(year, last)?.1))
        };
        let (first_day, last_day) = if let Some((a, b)) = raw.split_once("..") {
            (
                crate::time::parse_date(a.trim()).map_err(|_| rule())?,
                crate::time::parse_date(b.trim()).map_err(|_| rule())?,
            )
        } else {
            let (year, rest) = raw.split_once('-').unwrap_or((raw, ""));
            let year: i32 = year.parse().map_err(|_| rule())?;
            if !(1900..=9999).contains(&year) {
                return Err(rule());
            }
            match rest {
                "" => months(year, 1, 12)?,
                "H1" => months(year, 1, 6)?,
                "H2" => months(year, 7, 12)?,
                "Q1" => months(year, 1, 3)?,
                "Q2" => months(year, 4, 6)?,
                "Q3" => months(year, 7, 9)?,
                "Q4" => months(year, 10, 12)?,
                month => {
                    let m: u8 = month.parse().map_err(|_| rule())?;
                    if !(1..=12).contains(&m) || month.len() != 2 {
                        return Err(rule());
                    }
                    months(year, m, m)?
                }
            }
        };
        if last_day < first_day {
            return Err(format!("period {raw:?}: the last day is before the first"));
        }
        Ok(Self {
            label: raw.to_owned(),
            first_day,
            last_day,
        })
    }

    /// `[from_ms, to_ms)` in Unix milliseconds.
    #[must_use]
    pub fn range_ms(&self) -> (i64, i64) {
        let after_last = self.last_day.next_day().unwrap_or(self.last_day);
        (start_ms(self.first_day), start_ms(after_last))
    }

    /// Whether `ms` falls in it.
    #[must_use]
    pub fn contains(&self, ms: i64) -> bool {
        let (from, to) = self.range_ms();
        (from..to).contains(&ms)
    }

    /// The same days one year earlier (29 February becomes 28).
    #[must_use]
    pub fn year_earlier(&self) -> Self {
        let back = |d: Date| {
            Date::from_calendar_date(d.year() - 1, d.month(), d.day())
                .or_else(|_| Date::from_calendar_date(d.year() - 1, d.month(), d.day() - 1))
                .unwrap_or(d)
        };
        Self {
            label: format!("{} (a year earlier)", self.label),
            first_day: back(self.first_day),
            last_day: back(self.last_day),
        }
    }
}
