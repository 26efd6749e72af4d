//! Points in time as plain numbers, and their reading in Vietnam's civil time.
//!
//! `schema` never reads a clock: every time comes in as a [`Timestamp`] from the caller.
//! Vietnam keeps one time zone (UTC+7) with no daylight saving, so the offset is a constant
//! of the country, not configuration.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Vietnam's civil time offset from UTC, in seconds (UTC+7, no daylight saving).
pub const VIETNAM_OFFSET_SECONDS: i32 = 7 * 3600;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

fn vietnam_offset() -> UtcOffset {
    UtcOffset::from_whole_seconds(VIETNAM_OFFSET_SECONDS).expect("UTC+7 is a valid offset")
}

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The local (Vietnam) date and time of this instant.
    pub fn local(self) -> PrimitiveDateTime {
        let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let local = utc.to_offset(vietnam_offset());
        PrimitiveDateTime::new(local.date(), local.time())
    }

    /// The local (Vietnam) calendar date of this instant.
    pub fn local_date(self) -> Date {
        self.local().date()
    }

    /// The instant at which Vietnam's clocks show `date` and `time`.
    pub fn from_local(date: Date, time: Time) -> Timestamp {
        let odt = PrimitiveDateTime::new(date, time).assume_offset(vietnam_offset());
        Timestamp((odt.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Local midnight at the start of `date`.
    pub fn start_of_local_day(date: Date) -> Timestamp {
        Timestamp::from_local(date, Time::MIDNIGHT)
    }

    /// This instant plus `ms` milliseconds.
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// RFC 3339 text in Vietnam's offset, e.g. `2025-11-16T08:30:00+07:00`.
    pub fn to_rfc3339(self) -> String {
        let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        utc.to_offset(vietnam_offset())
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// Parses RFC 3339 text (any offset).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let odt =
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        Some(Timestamp((odt.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

/// A local date as the number `YYYYMMDD`, the key layout used for per-day documents and counters.
pub fn date_key(date: Date) -> u32 {
    date.year() as u32 * 10_000 + u32::from(u8::from(date.month())) * 100 + u32::from(date.day())
}

/// The inverse of [`date_key`].
pub fn date_from_key(key: u32) -> Option<Date> {
    let year = (key / 10_000) as i32;
    let month = time::Month::try_from(((key / 100) % 100) as u8).ok()?;
    Date::from_calendar_date(year, month, (key % 100) as u8).ok()
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// Formats `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    date.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// Formats the Vietnamese way, `DD/MM/YYYY`.
pub fn format_date_vn(date: Date) -> String {
    date.format(time::macros::format_description!("[day]/[month]/[year]"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, time};

    #[test]
    fn local_time_is_utc_plus_seven() {
        // Why: every due date and per-day key depends on reading instants in Vietnam's time.
        let t = Timestamp::from_local(date!(2025 - 11 - 16), time!(0:30));
        assert_eq!(t.local_date(), date!(2025 - 11 - 16));
        assert_eq!(
            Timestamp(t.0 - 3_600_000).local_date(),
            date!(2025 - 11 - 15)
        );
        assert_eq!(t.to_rfc3339(), "2025-11-16T00:30:00+07:00");
        assert_eq!(Timestamp::parse_rfc3339("2025-11-15T17:30:00Z"), Some(t));
    }

    #[test]
    fn date_keys_round_trip() {
        // Why: per-day counters and documents are keyed by this number.
        let d = date!(2027 - 02 - 28);
        assert_eq!(date_key(d), 20270228);
        assert_eq!(date_from_key(20270228), Some(d));
        assert_eq!(date_from_key(20270230), None);
    }
}
