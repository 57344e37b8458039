//! The working-day calendar of Decree 56 deadlines, in Vietnam time.
//!
//! "N working days" counts from the day after the start (the start day does
//! not count), skipping weekends and public holidays; the deadline is the
//! end of the Nth working day, 24:00 in Vietnam. Which days are holidays is
//! configuration (`deploy/calendar/vietnam.json`): Tết moves every year.

use std::collections::{BTreeMap, BTreeSet};

use ::time::{Date, Duration, Time, Weekday};
use serde::Deserialize;

use crate::time::{VIETNAM, format_date, parse_date, vietnam_date};

/// Weekends, public holidays and swapped working days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    weekend: Vec<Weekday>,
    holidays: BTreeSet<Date>,
    working_days: BTreeSet<Date>,
    /// For each year, the notices its days follow.
    basis: BTreeMap<i32, String>,
}

#[derive(Deserialize)]
struct CalendarFile {
    weekend: Vec<String>,
    holidays: Vec<String>,
    #[serde(default)]
    working_days: Vec<String>,
    #[serde(default)]
    years: Vec<YearBasis>,
}

#[derive(Deserialize)]
struct YearBasis {
    year: i32,
    basis: String,
}

/// Public holidays a year under the Labour Code 2019 (Art. 112): New Year
/// 1, Tết 5, Hùng Kings 1, 30 April 1, 1 May 1, National Day 2.
pub const LABOUR_CODE_HOLIDAYS: usize = 11;

/// Paid days off in `year`: the Labour Code's [`LABOUR_CODE_HOLIDAYS`],
/// and from 2026 Vietnam Culture Day (24 November, Resolution 80-NQ/TW).
#[must_use]
pub const fn public_holidays(year: i32) -> usize {
    if year >= 2026 {
        LABOUR_CODE_HOLIDAYS + 1
    } else {
        LABOUR_CODE_HOLIDAYS
    }
}

impl Calendar {
    /// Parses the calendar file's JSON text.
    ///
    /// # Errors
    /// What is wrong: bad JSON, an unknown weekday, a bad date.
    pub fn parse(json: &str) -> Result<Self, String> {
        let file: CalendarFile =
            serde_json::from_str(json).map_err(|e| format!("calendar: {e}"))?;
        let weekend = file
            .weekend
            .iter()
            .map(|day| match day.to_lowercase().as_str() {
                "monday" => Ok(Weekday::Monday),
                "tuesday" => Ok(Weekday::Tuesday),
                "wednesday" => Ok(Weekday::Wednesday),
                "thursday" => Ok(Weekday::Thursday),
                "friday" => Ok(Weekday::Friday),
                "saturday" => Ok(Weekday::Saturday),
                "sunday" => Ok(Weekday::Sunday),
                other => Err(format!("calendar: unknown weekday {other:?}")),
            })
            .collect::<Result<_, _>>()?;
        let dates = |list: &[String], what: &str| -> Result<BTreeSet<Date>, String> {
            list.iter()
                .map(|d| parse_date(d).map_err(|rule| format!("calendar: {what} {d:?} {rule}")))
                .collect()
        };
        Ok(Self {
            weekend,
            holidays: dates(&file.holidays, "holiday")?,
            working_days: dates(&file.working_days, "working day")?,
            basis: file.years.into_iter().map(|y| (y.year, y.basis)).collect(),
        })
    }

    /// The notices `year`'s days follow, as the file records them.
    #[must_use]
    pub fn basis(&self, year: i32) -> Option<&str> {
        self.basis.get(&year).map(String::as_str)
    }

    /// The years the file lists holidays for.
    #[must_use]
    pub fn years(&self) -> BTreeSet<i32> {
        self.holidays.iter().map(|d| d.year()).collect()
    }

    /// `year`'s days off that fall on weekdays, less its swapped working
    /// days: [`public_holidays`] of the year when the year is
    /// right (a holiday on a weekend is compensated by a weekday; a
    /// weekday swapped off is paid back by a working Saturday).
    #[must_use]
    pub fn net_weekday_holidays(&self, year: i32) -> usize {
        let off = self
            .holidays
            .iter()
            .filter(|d| d.year() == year && !self.weekend.contains(&d.weekday()))
            .count();
        let worked = self
            .working_days
            .iter()
            .filter(|d| d.year() == year)
            .count();
        off.saturating_sub(worked)
    }

    /// Whether `date` is a working day.
    #[must_use]
    pub fn is_working_day(&self, date: Date) -> bool {
        self.working_days.contains(&date)
            || !(self.weekend.contains(&date.weekday()) || self.holidays.contains(&date))
    }

    /// The instant (Unix ms) at the end of the `n`th working day after the
    /// Vietnam date of `start_ms`.
    #[must_use]
    pub fn working_days_after(&self, start_ms: i64, n: u32) -> i64 {
        let mut date = vietnam_date(start_ms);
        let mut counted = 0;
        while counted < n {
            date = date.next_day().unwrap_or(date);
            if self.is_working_day(date) {
                counted += 1;
            }
        }
        end_of_day_ms(date)
    }

    /// The years the calendar lists holidays for, to warn when a deadline
    /// falls outside them.
    #[must_use]
    pub fn covers(&self, date: Date) -> bool {
        self.holidays.iter().any(|h| h.year() == date.year())
    }
}

/// 24:00 at the end of `date` in Vietnam, as Unix ms.
#[must_use]
pub fn end_of_day_ms(date: Date) -> i64 {
    let next = date
        .next_day()
        .unwrap_or(date)
        .with_time(Time::MIDNIGHT)
        .assume_offset(VIETNAM);
    i64::try_from(next.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// For messages: the Vietnam date and time of `ms`.
#[must_use]
pub fn describe(ms: i64) -> String {
    let at = ::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| t.to_offset(VIETNAM))
        .unwrap_or(::time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{} {:02}:{:02} (UTC+7)",
        format_date(at.date()),
        at.hour(),
        at.minute()
    )
}

/// Twelve hours, the emergency clock of Decree 56 Đ26.3.
pub const TWELVE_HOURS_MS: i64 = Duration::hours(12).whole_milliseconds() as i64;

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::macros::date;

    fn calendar() -> Calendar {
        Calendar::parse(include_str!("../../../deploy/calendar/vietnam.json")).unwrap()
    }

    fn at(date: Date, hour: u8) -> i64 {
        let t = date.with_hms(hour, 0, 0).unwrap().assume_offset(VIETNAM);
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
    }

    #[test]
    fn given_a_report_on_thursday_then_five_working_days_skip_the_weekend() {
        // Thu 2026-11-26: Fri 27, Mon 30, Tue 1, Wed 2, Thu 3 Dec → end of 3 Dec.
        let due = calendar().working_days_after(at(date!(2026 - 11 - 26), 15), 5);
        assert_eq!(due, end_of_day_ms(date!(2026 - 12 - 03)));
        assert_eq!(describe(due), "2026-12-04 00:00 (UTC+7)");
    }

    #[test]
    fn given_a_report_before_tet_then_the_holiday_does_not_count() {
        // Wed 2026-02-11: Thu 12, Fri 13, then Tết 14–22 Feb, Mon 23, Tue 24.
        let due = calendar().working_days_after(at(date!(2026 - 02 - 11), 9), 5);
        assert_eq!(due, end_of_day_ms(date!(2026 - 02 - 25)));
        // 7 working days: … Wed 25, Thu 26, Fri 27.
        let due = calendar().working_days_after(at(date!(2026 - 02 - 11), 9), 7);
        assert_eq!(due, end_of_day_ms(date!(2026 - 02 - 27)));
    }

    #[test]
    fn given_a_report_late_at_night_utc_then_the_vietnam_date_counts() {
        // 2026-11-26 18:00 UTC is already Friday 27 in Vietnam.
        let start = at(date!(2026 - 11 - 27), 1);
        let due = calendar().working_days_after(start, 1);
        assert_eq!(due, end_of_day_ms(date!(2026 - 11 - 30)));
    }

    #[test]
    fn swapped_saturdays_and_holidays_are_configuration() {
        let c = calendar();
        assert!(
            c.is_working_day(date!(2025 - 04 - 26)),
            "a swapped Saturday"
        );
        assert!(!c.is_working_day(date!(2025 - 04 - 30)));
        assert!(!c.is_working_day(date!(2026 - 11 - 28)));
        assert!(c.covers(date!(2027 - 03 - 01)));
        assert!(!c.covers(date!(2028 - 03 - 01)));
        assert!(
            Calendar::parse(r#"{"weekend":["caturday"],"holidays":[]}"#)
                .unwrap_err()
                .contains("caturday")
        );
    }

    #[test]
    fn given_each_year_of_the_file_then_its_days_off_equal_the_labour_codes_and_it_names_its_notices()
     {
        let c = calendar();
        assert!(c.years().contains(&2026), "{:?}", c.years());
        for year in c.years() {
            assert_eq!(
                c.net_weekday_holidays(year),
                public_holidays(year),
                "{year}: weekday holidays less swapped Saturdays"
            );
            assert!(c.basis(year).is_some_and(|b| !b.is_empty()), "{year}");
        }
        // Every swapped working day is a weekend day.
        for day in &c.working_days {
            assert!(c.weekend.contains(&day.weekday()), "{day}");
        }
    }

    #[test]
    fn given_national_day_and_culture_day_2026_then_monday_31_august_is_off_for_saturday_22_and_24_november_is_off()
     {
        let c = calendar();
        for day in [
            date!(2026 - 08 - 31),
            date!(2026 - 09 - 01),
            date!(2026 - 09 - 02),
            date!(2026 - 11 - 24),
            date!(2027 - 11 - 24),
        ] {
            assert!(!c.is_working_day(day), "{day}");
        }
        assert!(
            c.is_working_day(date!(2026 - 08 - 22)),
            "Saturday 22 August is worked"
        );
        assert!(c.is_working_day(date!(2026 - 09 - 03)));
        // A plan's 5 working days from Friday 28 August 2026: Sat 29, Sun 30,
        // Mon 31, Tue 1 and Wed 2 are off; Thu 3, Fri 4, Mon 7, Tue 8, Wed 9.
        let due = c.working_days_after(at(date!(2026 - 08 - 28), 3), 5);
        assert_eq!(due, end_of_day_ms(date!(2026 - 09 - 09)));
        assert_eq!((public_holidays(2025), public_holidays(2026)), (11, 12));
    }

    #[test]
    fn given_new_year_2026_then_friday_2_january_is_off_and_saturday_10_january_worked() {
        let c = calendar();
        assert!(!c.is_working_day(date!(2026 - 01 - 02)));
        assert!(c.is_working_day(date!(2026 - 01 - 10)));
        // Tết 2027: five weekdays; 1 May 2027 is a Saturday, Monday 3 off.
        for day in [
            date!(2027 - 02 - 05),
            date!(2027 - 02 - 08),
            date!(2027 - 02 - 11),
            date!(2027 - 05 - 03),
        ] {
            assert!(!c.is_working_day(day), "{day}");
        }
    }

    #[test]
    fn twelve_hours_cross_midnight_as_instants() {
        let start = at(date!(2026 - 11 - 28), 21);
        assert_eq!(
            describe(start + TWELVE_HOURS_MS),
            "2026-11-29 09:00 (UTC+7)"
        );
    }
}
