//! Timestamps as the API and the table write them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::{Invalid, invalid};

/// A UTC instant with millisecond precision, written as fixed-width RFC 3339
/// (`2026-11-24T05:00:00.000Z`) so that strings sort in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        // Drop sub-millisecond digits so a value survives a round trip through its text form.
        let millis = now.millisecond();
        Timestamp(now.replace_millisecond(millis).unwrap_or(now))
    }

    pub fn parse(value: &str) -> Result<Self, Invalid> {
        time::PrimitiveDateTime::parse(value, TIMESTAMP_FORMAT)
            .map(|t| Timestamp(t.assume_utc()))
            .map_err(|_| invalid("malformed timestamp"))
    }

    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs).ok().map(Timestamp)
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn plus(&self, d: std::time::Duration) -> Self {
        Timestamp(self.0 + d)
    }

    pub fn minus(&self, d: std::time::Duration) -> Self {
        Timestamp(self.0 - d)
    }

    /// The UTC day, `2026-11-24`.
    pub fn day(&self) -> String {
        self.to_string()[..10].to_owned()
    }

    /// The UTC month, `2026-11`.
    pub fn month(&self) -> String {
        self.to_string()[..7].to_owned()
    }

    /// The UTC minute, `2026-11-24T05:00`.
    pub fn minute(&self) -> String {
        self.to_string()[..16].to_owned()
    }

    /// Whole seconds (at least 1) until the next UTC minute, day or month begins.
    pub fn seconds_to_next(&self, period: Period) -> u64 {
        let t = self.0;
        let start_of_day = t.replace_time(time::Time::MIDNIGHT);
        let next = match period {
            Period::Minute => t.replace_second(0).and_then(|m| m.replace_nanosecond(0)).map(|m| m + time::Duration::MINUTE).unwrap_or(t),
            Period::Day => start_of_day + time::Duration::DAY,
            Period::Month => {
                let (year, month) = match t.month() {
                    time::Month::December => (t.year() + 1, time::Month::January),
                    m => (t.year(), m.next()),
                };
                time::Date::from_calendar_date(year, month, 1).map(|d| d.midnight().assume_utc()).unwrap_or(start_of_day)
            }
        };
        let left = next - t;
        let secs = left.whole_seconds() + i64::from(left.subsec_nanoseconds() > 0);
        (secs.max(0) as u64).max(1)
    }
}

/// A calendar period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Minute,
    Day,
    Month,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(TIMESTAMP_FORMAT).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_begin_at_the_next_utc_boundary() {
        let t = Timestamp::parse("2026-12-31T23:59:30.500Z").unwrap();
        assert_eq!((t.day(), t.month(), t.minute()), ("2026-12-31".to_owned(), "2026-12".to_owned(), "2026-12-31T23:59".to_owned()));
        assert_eq!(t.seconds_to_next(Period::Minute), 30, "rounded up");
        assert_eq!(t.seconds_to_next(Period::Day), 30);
        assert_eq!(t.seconds_to_next(Period::Month), 30);
        let t = Timestamp::parse("2026-02-10T00:00:00.000Z").unwrap();
        assert_eq!(t.seconds_to_next(Period::Month), 19 * 86_400);
        assert_eq!(t.seconds_to_next(Period::Minute), 60);
    }
}
