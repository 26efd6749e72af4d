//! The working-day calendar and the due dates computed from it.
//!
//! Vietnam's public holidays (Tết, Hùng Kings, 30/4, 1/5, National Day) and the Saturdays worked
//! in compensation for bridged days are decided each year by the government and sometimes
//! changed after publication. So the calendar is data, published by the province in the
//! replicated `calendar` document as versions with an effective date, never constants.
//!
//! **Rules** (DOMAIN.md "Time"):
//! - A day is a working day when it is listed as a compensatory working day, or when it is not a
//!   holiday and not a weekend day.
//! - A dossier received on a working day before the cut-off (the procedure's, else the
//!   calendar's, commonly 15:00) starts counting at once; otherwise it starts at the opening of
//!   the next working day.
//! - `N` working days: the due instant is the same clock time on the `N`-th working day after
//!   the start day. `0` working days: the close of the start day. `N` working hours: `N` hours
//!   counted inside the working periods (07:30-11:30 and 13:00-17:00 unless configured).
//! - Time waiting for the citizen's supplement does not count: the due instant moves forward by
//!   the working time that passed while the dossier waited.
//! - A due computation uses the calendar version in force on the day the clock started.
//!
//! Every loop here is bounded by [`WORKING_DAY_SEARCH_DAYS_MAX`]; a calendar that would need more
//! (for instance one with every day a holiday) is an error, not a hang.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, PrimitiveDateTime, Time, Weekday};

use crate::catalog::ProcessingTime;
use crate::timestamp::{Timestamp, format_date, parse_date};

/// Longest stretch of days any calendar computation walks before giving up.
pub const WORKING_DAY_SEARCH_DAYS_MAX: i64 = 3_700;
/// Most holidays plus compensatory working days in one calendar version.
pub const CALENDAR_DAYS_COUNT_MAX: usize = 2_000;
/// Most versions in one calendar.
pub const CALENDAR_VERSIONS_COUNT_MAX: usize = 200;
/// Most working periods in one day.
pub const WORKING_PERIODS_COUNT_MAX: usize = 4;

/// Early / on time / overdue: the outcome of a finished dossier against its due instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Trước hạn: finished before the due day.
    Early,
    /// Đúng hạn: finished on the due day, by the due time.
    OnTime,
    /// Quá hạn: finished after the due instant.
    Overdue,
}

impl Outcome {
    /// All outcomes, in report order.
    pub const ALL: [Outcome; 3] = [Outcome::Early, Outcome::OnTime, Outcome::Overdue];

    /// The Vietnamese label.
    pub fn label_vi(self) -> &'static str {
        match self {
            Outcome::Early => "Trước hạn",
            Outcome::OnTime => "Đúng hạn",
            Outcome::Overdue => "Quá hạn",
        }
    }
}

/// The outcome of a dossier finished at `finished` against due instant `due`.
pub fn outcome(finished: Timestamp, due: Timestamp) -> Outcome {
    if finished > due {
        Outcome::Overdue
    } else if finished.local_date() < due.local_date() {
        Outcome::Early
    } else {
        Outcome::OnTime
    }
}

/// A dated entry of a calendar: a holiday or a compensatory working day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayEntry {
    /// The day.
    #[serde(with = "date_text")]
    pub date: Date,
    /// Why (e.g. `Tết Nguyên đán`, `Làm bù cho ngày 02/5`).
    #[serde(default)]
    pub name: String,
}

/// One working period of a day, e.g. 07:30-11:30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start, `HH:MM`.
    #[serde(with = "time_text")]
    pub start: Time,
    /// End, `HH:MM`.
    #[serde(with = "time_text")]
    pub end: Time,
}

/// One version of the calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarVersion {
    /// Version number.
    pub version: u32,
    /// First day this version governs (`YYYY-MM-DD`); the newest version whose date is not after
    /// a day governs that day.
    #[serde(with = "date_text")]
    pub effective_from: Date,
    /// Marked as sample data that the province has not confirmed.
    #[serde(default)]
    pub sample: bool,
    /// A note for people (the decision it follows).
    #[serde(default)]
    pub note: String,
    /// Weekend days, ISO numbers (1 = Monday ... 7 = Sunday).
    pub weekend: Vec<u8>,
    /// Public holidays (days off).
    pub holidays: Vec<DayEntry>,
    /// Compensatory working days (weekend days worked in exchange for a bridged day).
    #[serde(default)]
    pub working_days: Vec<DayEntry>,
    /// Working periods of a working day, in order.
    pub periods: Vec<Period>,
    /// Afternoon cut-off: received after it, counting starts the next working day.
    #[serde(with = "time_text")]
    pub cutoff: Time,
}

/// The whole calendar: every version the province published.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Calendar {
    /// The versions, in any order.
    pub versions: Vec<CalendarVersion>,
}

/// Why a calendar computation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// No version governs the day.
    #[error("no calendar version is in force on {0}")]
    NoVersion(String),
    /// No working day within the search bound.
    #[error("no working day within {WORKING_DAY_SEARCH_DAYS_MAX} days of {0}")]
    NoWorkingDay(String),
    /// The version is malformed.
    #[error("calendar version {version}: {message}")]
    Invalid {
        /// The version.
        version: u32,
        /// What is wrong.
        message: String,
    },
    /// A span is longer than the search bound.
    #[error("span longer than {WORKING_DAY_SEARCH_DAYS_MAX} days")]
    TooLong,
}

/// Parses `HH:MM`.
pub fn parse_hhmm(text: &str) -> Option<Time> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    Time::from_hms(h.parse().ok()?, m.parse().ok()?, 0).ok()
}

mod date_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_date(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_date(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid date {text:?}, expected YYYY-MM-DD"))
        })
    }
}

mod time_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Time;

    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02}:{:02}", t.hour(), t.minute()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_hhmm(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid time {text:?}, expected HH:MM"))
        })
    }
}

impl CalendarVersion {
    /// Checks bounds and the shape of the working periods.
    pub fn validate(&self) -> Result<(), CalendarError> {
        let invalid = |message: &str| CalendarError::Invalid {
            version: self.version,
            message: message.to_owned(),
        };
        if self.holidays.len() + self.working_days.len() > CALENDAR_DAYS_COUNT_MAX {
            return Err(invalid("too many dated entries"));
        }
        if self.weekend.iter().any(|d| !(1..=7).contains(d)) || self.weekend.len() >= 7 {
            return Err(invalid(
                "weekend days are ISO numbers 1-7 and at least one day must be worked",
            ));
        }
        if self.periods.is_empty() || self.periods.len() > WORKING_PERIODS_COUNT_MAX {
            return Err(invalid("a working day needs one to four periods"));
        }
        let mut last_end = Time::MIDNIGHT;
        for (i, p) in self.periods.iter().enumerate() {
            if p.start >= p.end || (i > 0 && p.start < last_end) {
                return Err(invalid(
                    "working periods must be ordered and must not overlap",
                ));
            }
            last_end = p.end;
        }
        Ok(())
    }

    fn opening(&self) -> Time {
        self.periods.first().map_or(Time::MIDNIGHT, |p| p.start)
    }

    fn closing(&self) -> Time {
        self.periods.last().map_or(Time::MIDNIGHT, |p| p.end)
    }

    /// Whether `date` is a working day under this version.
    pub fn is_working_day(&self, date: Date) -> bool {
        if self.working_days.iter().any(|e| e.date == date) {
            return true;
        }
        if self.holidays.iter().any(|e| e.date == date) {
            return false;
        }
        !self.weekend.contains(&date.weekday().number_from_monday())
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: Date) -> Result<Date, CalendarError> {
        let mut d = date;
        for _ in 0..WORKING_DAY_SEARCH_DAYS_MAX {
            d = d.next_day().ok_or(CalendarError::TooLong)?;
            if self.is_working_day(d) {
                return Ok(d);
            }
        }
        Err(CalendarError::NoWorkingDay(format_date(date)))
    }

    /// The local instant at which the clock starts for a dossier received at `received`.
    fn clock_start(
        &self,
        received: Timestamp,
        cutoff: Time,
    ) -> Result<PrimitiveDateTime, CalendarError> {
        let local = received.local();
        let (date, t) = (local.date(), local.time());
        if self.is_working_day(date) && t < cutoff && t < self.closing() {
            return Ok(PrimitiveDateTime::new(date, t.max(self.opening())));
        }
        Ok(PrimitiveDateTime::new(
            self.next_working_day(date)?,
            self.opening(),
        ))
    }

    /// Working milliseconds of `date` between local times `from` and `to`.
    fn working_ms_in_day(&self, date: Date, from: Time, to: Time) -> i64 {
        if !self.is_working_day(date) || from >= to {
            return 0;
        }
        self.periods
            .iter()
            .map(|p| {
                let (s, e) = (p.start.max(from), p.end.min(to));
                if s < e {
                    (e - s).whole_milliseconds() as i64
                } else {
                    0
                }
            })
            .sum()
    }

    /// `ms` working milliseconds after local instant `start`.
    fn add_working_ms(
        &self,
        start: PrimitiveDateTime,
        ms: i64,
    ) -> Result<PrimitiveDateTime, CalendarError> {
        let mut left = ms;
        let mut date = start.date();
        let mut from = start.time();
        for _ in 0..WORKING_DAY_SEARCH_DAYS_MAX {
            if self.is_working_day(date) {
                for p in &self.periods {
                    let s = p.start.max(from);
                    if s >= p.end {
                        continue;
                    }
                    let room = (p.end - s).whole_milliseconds() as i64;
                    if left <= room {
                        return Ok(PrimitiveDateTime::new(date, s) + Duration::milliseconds(left));
                    }
                    left -= room;
                }
            }
            date = date.next_day().ok_or(CalendarError::TooLong)?;
            from = Time::MIDNIGHT;
        }
        Err(CalendarError::TooLong)
    }
}

fn to_timestamp(local: PrimitiveDateTime) -> Timestamp {
    Timestamp::from_local(local.date(), local.time())
}

impl Calendar {
    /// Checks every version.
    pub fn validate(&self) -> Result<(), CalendarError> {
        if self.versions.len() > CALENDAR_VERSIONS_COUNT_MAX {
            return Err(CalendarError::Invalid {
                version: 0,
                message: "too many versions".into(),
            });
        }
        self.versions.iter().try_for_each(CalendarVersion::validate)
    }

    /// The version governing `date`: the newest effective date not after it, the highest
    /// version number among equals.
    pub fn version_at(&self, date: Date) -> Result<&CalendarVersion, CalendarError> {
        self.versions
            .iter()
            .filter(|v| v.effective_from <= date)
            .max_by_key(|v| (v.effective_from, v.version))
            .ok_or_else(|| CalendarError::NoVersion(format_date(date)))
    }

    /// The statutory due instant of a dossier received at `received` with processing time
    /// `processing`; `cutoff` overrides the calendar's cut-off (a procedure's own).
    pub fn due_at(
        &self,
        received: Timestamp,
        processing: ProcessingTime,
        cutoff: Option<Time>,
    ) -> Result<Timestamp, CalendarError> {
        let v = self.version_at(received.local_date())?;
        let start = v.clock_start(received, cutoff.unwrap_or(v.cutoff))?;
        let due = match processing {
            ProcessingTime::WorkingDays(0) => PrimitiveDateTime::new(start.date(), v.closing()),
            ProcessingTime::WorkingDays(n) => {
                let mut d = start.date();
                for _ in 0..n {
                    d = v.next_working_day(d)?;
                }
                PrimitiveDateTime::new(d, start.time().min(v.closing()))
            }
            ProcessingTime::WorkingHours(h) => v.add_working_ms(start, i64::from(h) * 3_600_000)?,
        };
        Ok(to_timestamp(due))
    }

    /// Working milliseconds between two instants (0 when `to` is not after `from`), under the
    /// version governing `from`'s day.
    pub fn working_ms_between(&self, from: Timestamp, to: Timestamp) -> Result<i64, CalendarError> {
        if to <= from {
            return Ok(0);
        }
        let v = self.version_at(from.local_date())?;
        let (a, b) = (from.local(), to.local());
        if (b.date() - a.date()).whole_days() > WORKING_DAY_SEARCH_DAYS_MAX {
            return Err(CalendarError::TooLong);
        }
        let mut total = 0;
        let mut date = a.date();
        loop {
            let from_t = if date == a.date() {
                a.time()
            } else {
                Time::MIDNIGHT
            };
            if date == b.date() {
                total += v.working_ms_in_day(date, from_t, b.time());
                return Ok(total);
            }
            total += v.working_ms_in_day(date, from_t, Time::MAX);
            date = date.next_day().ok_or(CalendarError::TooLong)?;
        }
    }

    /// The due instant after a supplement pause from `paused_at` to `resumed_at`: `due` moved
    /// forward by the working time of the pause.
    pub fn extend_for_pause(
        &self,
        due: Timestamp,
        paused_at: Timestamp,
        resumed_at: Timestamp,
    ) -> Result<Timestamp, CalendarError> {
        let paused_ms = self.working_ms_between(paused_at, resumed_at)?;
        if paused_ms == 0 {
            return Ok(due);
        }
        let v = self.version_at(paused_at.local_date())?;
        Ok(to_timestamp(v.add_working_ms(due.local(), paused_ms)?))
    }

    /// Whether `date` is a working day (false when no version governs it).
    pub fn is_working_day(&self, date: Date) -> bool {
        self.version_at(date).is_ok_and(|v| v.is_working_day(date))
    }
}

/// The Vietnamese name of a weekday, for slips and pages.
pub fn weekday_vi(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Thứ Hai",
        Weekday::Tuesday => "Thứ Ba",
        Weekday::Wednesday => "Thứ Tư",
        Weekday::Thursday => "Thứ Năm",
        Weekday::Friday => "Thứ Sáu",
        Weekday::Saturday => "Thứ Bảy",
        Weekday::Sunday => "Chủ Nhật",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, time};

    fn calendar() -> Calendar {
        let entry = |date, name: &str| DayEntry {
            date,
            name: name.into(),
        };
        Calendar {
            versions: vec![CalendarVersion {
                version: 1,
                effective_from: date!(2025 - 01 - 01),
                sample: true,
                note: String::new(),
                weekend: vec![6, 7],
                holidays: vec![
                    entry(date!(2025 - 04 - 30), "Giải phóng miền Nam"),
                    entry(date!(2025 - 05 - 01), "Quốc tế lao động"),
                    entry(date!(2025 - 05 - 02), "Nghỉ bù"),
                ],
                working_days: vec![entry(date!(2025 - 04 - 26), "Làm bù cho ngày 02/5")],
                periods: vec![
                    Period {
                        start: time!(7:30),
                        end: time!(11:30),
                    },
                    Period {
                        start: time!(13:00),
                        end: time!(17:00),
                    },
                ],
                cutoff: time!(15:00),
            }],
        }
    }

    fn at(d: Date, t: Time) -> Timestamp {
        Timestamp::from_local(d, t)
    }

    #[test]
    fn working_days_skip_weekends_and_holidays_and_count_compensatory_saturdays() {
        // Why: a due date that lands on 30/4 or ignores a compensatory Saturday misleads citizens.
        let c = calendar();
        let days3 = ProcessingTime::WorkingDays(3);
        // Friday 25/4 at 09:00 + 3 working days: Sat 26/4 (compensatory), Mon 28/4, Tue 29/4.
        assert_eq!(
            c.due_at(at(date!(2025 - 04 - 25), time!(9:00)), days3, None)
                .unwrap(),
            at(date!(2025 - 04 - 29), time!(9:00))
        );
        // Tuesday 29/4 + 3: skips 30/4, 1/5, 2/5 and the weekend: Mon 5/5, Tue 6/5, Wed 7/5.
        assert_eq!(
            c.due_at(at(date!(2025 - 04 - 29), time!(10:15)), days3, None)
                .unwrap(),
            at(date!(2025 - 05 - 07), time!(10:15))
        );
    }

    #[test]
    fn after_cutoff_counting_starts_next_working_day() {
        // Why: a dossier received at 16:00 must not lose most of a day of its processing time.
        let c = calendar();
        let due = c
            .due_at(
                at(date!(2025 - 06 - 06), time!(15:30)),
                ProcessingTime::WorkingDays(1),
                None,
            )
            .unwrap();
        // Friday after cut-off: starts Monday 9/6 07:30, due Tuesday 10/6 07:30.
        assert_eq!(due, at(date!(2025 - 06 - 10), time!(7:30)));
        // A procedure may set a later cut-off.
        let due = c
            .due_at(
                at(date!(2025 - 06 - 06), time!(15:30)),
                ProcessingTime::WorkingDays(1),
                Some(time!(16:00)),
            )
            .unwrap();
        assert_eq!(due, at(date!(2025 - 06 - 09), time!(15:30)));
        // Received on a Sunday: starts Monday.
        let due = c
            .due_at(
                at(date!(2025 - 06 - 08), time!(10:00)),
                ProcessingTime::WorkingDays(0),
                None,
            )
            .unwrap();
        assert_eq!(due, at(date!(2025 - 06 - 09), time!(17:00)));
    }

    #[test]
    fn working_hours_count_inside_periods() {
        // Why: some procedures are due in hours; lunch and nights do not count.
        let c = calendar();
        let due = c
            .due_at(
                at(date!(2025 - 06 - 06), time!(10:30)),
                ProcessingTime::WorkingHours(8),
                None,
            )
            .unwrap();
        // 10:30-11:30 (1 h) + 13:00-17:00 (4 h) Friday, then Monday 07:30-10:30 (3 h).
        assert_eq!(due, at(date!(2025 - 06 - 09), time!(10:30)));
    }

    #[test]
    fn supplement_pause_moves_due_by_working_time() {
        // Why: time waiting for the citizen's supplement does not count against the office.
        let c = calendar();
        let due = at(date!(2025 - 06 - 11), time!(9:00));
        // Paused Friday 6/6 16:00, resumed Monday 9/6 08:30: 1 h Friday + 1 h Monday of working time.
        let moved = c
            .extend_for_pause(
                due,
                at(date!(2025 - 06 - 06), time!(16:00)),
                at(date!(2025 - 06 - 09), time!(8:30)),
            )
            .unwrap();
        assert_eq!(moved, at(date!(2025 - 06 - 11), time!(11:00)));
        assert_eq!(
            c.working_ms_between(
                at(date!(2025 - 06 - 07), time!(8:00)),
                at(date!(2025 - 06 - 08), time!(9:00))
            )
            .unwrap(),
            0
        );
    }

    #[test]
    fn outcomes_against_due_instant() {
        // Why: early / on time / overdue are the figures every report publishes.
        let due = at(date!(2025 - 06 - 11), time!(9:00));
        assert_eq!(
            outcome(at(date!(2025 - 06 - 10), time!(16:00)), due),
            Outcome::Early
        );
        assert_eq!(
            outcome(at(date!(2025 - 06 - 11), time!(8:00)), due),
            Outcome::OnTime
        );
        assert_eq!(outcome(due, due), Outcome::OnTime);
        assert_eq!(
            outcome(at(date!(2025 - 06 - 11), time!(9:01)), due),
            Outcome::Overdue
        );
    }

    #[test]
    fn newest_version_in_force_governs() {
        // Why: holidays are sometimes changed after publication; the change applies from its date.
        let mut c = calendar();
        let mut v2 = c.versions[0].clone();
        v2.version = 2;
        v2.effective_from = date!(2025 - 06 - 01);
        v2.holidays.push(DayEntry {
            date: date!(2025 - 06 - 10),
            name: "Nghỉ đột xuất".into(),
        });
        c.versions.push(v2);
        assert!(c.is_working_day(date!(2025 - 06 - 09)));
        assert!(!c.is_working_day(date!(2025 - 06 - 10)));
        assert_eq!(c.version_at(date!(2025 - 05 - 30)).unwrap().version, 1);
        assert!(c.version_at(date!(2024 - 12 - 31)).is_err());
        c.validate().unwrap();
    }

    #[test]
    fn a_calendar_with_no_working_day_is_an_error_not_a_hang() {
        // Why: bad configuration must fail clearly and quickly.
        let mut c = calendar();
        c.versions[0].weekend = vec![1, 2, 3, 4, 5, 6];
        c.versions[0].working_days.clear();
        c.versions[0].holidays = (0..3_800)
            .map(|i| DayEntry {
                date: date!(2025 - 01 - 01) + Duration::days(i),
                name: String::new(),
            })
            .filter(|e| e.date.weekday() == Weekday::Sunday)
            .collect();
        assert!(
            c.due_at(
                at(date!(2025 - 01 - 02), time!(9:00)),
                ProcessingTime::WorkingDays(1),
                None
            )
            .is_err()
        );
    }
}
