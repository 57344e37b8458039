//! Dates and instants. Instants are milliseconds since the Unix epoch (UTC);
//! dates are calendar dates in Vietnam (Asia/Ho_Chi_Minh, UTC+7, no DST).

use ::time::{Date, OffsetDateTime, UtcOffset, macros::format_description};

/// Vietnam's offset from UTC.
pub const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Parses `YYYY-MM-DD`.
///
/// # Errors
/// The rule, when it is not such a date.
pub fn parse_date(raw: &str) -> Result<Date, String> {
    Date::parse(raw, format_description!("[year]-[month]-[day]"))
        .map_err(|_| "must be a date YYYY-MM-DD".to_owned())
}

/// Formats a date as `YYYY-MM-DD`.
#[must_use]
pub fn format_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The date in Vietnam at instant `ms`.
#[must_use]
pub fn vietnam_date(ms: i64) -> Date {
    let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    instant.to_offset(VIETNAM).date()
}

/// Whole years from `birth` to `on`.
#[must_use]
pub fn age_on(birth: Date, on: Date) -> i32 {
    let mut years = on.year() - birth.year();
    if (u8::from(on.month()), on.day()) < (u8::from(birth.month()), birth.day()) {
        years -= 1;
    }
    years
}

/// serde for `Date` as `YYYY-MM-DD`.
pub mod date_serde {
    use ::time::Date;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as `YYYY-MM-DD`.
    ///
    /// # Errors
    /// Never, but serde's signature requires a `Result`.
    pub fn serialize<S: Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_date(*date))
    }

    /// Parses `YYYY-MM-DD`.
    ///
    /// # Errors
    /// When the text is not such a date.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_date(&text).map_err(serde::de::Error::custom)
    }
}

/// serde for `Option<Date>` as `YYYY-MM-DD` or null.
pub mod optional_date_serde {
    use ::time::Date;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as `YYYY-MM-DD`, or null.
    ///
    /// # Errors
    /// Never, but serde's signature requires a `Result`.
    pub fn serialize<S: Serializer>(date: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(date) => s.serialize_str(&super::format_date(*date)),
            None => s.serialize_none(),
        }
    }

    /// Parses `YYYY-MM-DD` or null.
    ///
    /// # Errors
    /// When the text is not such a date.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::parse_date(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::macros::date;

    #[test]
    fn ages_count_whole_years() {
        assert_eq!(age_on(date!(2010 - 05 - 20), date!(2026 - 05 - 19)), 15);
        assert_eq!(age_on(date!(2010 - 05 - 20), date!(2026 - 05 - 20)), 16);
    }

    #[test]
    fn vietnam_dates_are_seven_hours_ahead() {
        // 2026-01-01 17:30 UTC is already 2 January in Vietnam.
        let ms = 1_767_288_600_000;
        assert_eq!(vietnam_date(ms), date!(2026 - 01 - 02));
        assert_eq!(format_date(date!(2026 - 01 - 02)), "2026-01-02");
        assert_eq!(parse_date("2026-01-02").unwrap(), date!(2026 - 01 - 02));
        assert!(parse_date("02/01/2026").is_err());
    }
}
