//! The UTC calendar month that usage is counted by (`yyyy-mm`), with the civil-calendar
//! arithmetic that finds a month's first instant and the one after it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{UsageError, USAGE_SK_PREFIX};
use crate::clock::{civil_from_days, days_from_civil};
use crate::ids::TenantId;
use crate::store::Key;

/// A UTC calendar month, written `yyyy-mm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageMonth {
    year: i32,
    month: u8,
}

impl UsageMonth {
    pub fn new(year: i32, month: u8) -> Result<Self, UsageError> {
        if !(1970..=9998).contains(&year) || !(1..=12).contains(&month) {
            return Err(UsageError::Invalid(format!(
                "month: {year:04}-{month:02} is not a month from 1970-01 to 9998-12"
            )));
        }
        Ok(UsageMonth { year, month })
    }

    /// Parses `yyyy-mm` (exactly: `2026-11`).
    pub fn parse(s: &str) -> Result<Self, UsageError> {
        let bad = || UsageError::Invalid(format!("month: {s:?} is not yyyy-mm (e.g. 2026-11)"));
        let b = s.as_bytes();
        if b.len() != 7
            || b[4] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i32 = s[..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..].parse().map_err(|_| bad())?;
        Self::new(year, month)
    }

    /// The month that `now` (Unix seconds) falls in, UTC.
    pub fn current(now: i64) -> Self {
        let (year, month, _) = civil_from_days(now.div_euclid(86_400));
        UsageMonth {
            year: year.clamp(1970, 9998) as i32,
            month: month as u8,
        }
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn month(&self) -> u8 {
        self.month
    }

    /// The month after this one.
    pub fn next(&self) -> Self {
        if self.month == 12 {
            UsageMonth {
                year: self.year + 1,
                month: 1,
            }
        } else {
            UsageMonth {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Unix seconds of the month's first instant (UTC).
    pub fn starts_at(&self) -> i64 {
        days_from_civil(i64::from(self.year), i64::from(self.month), 1) * 86_400
    }

    /// Unix seconds of the first instant of the next month (UTC): when counters restart.
    pub fn resets_at(&self) -> i64 {
        self.next().starts_at()
    }

    pub(super) fn usage_key(&self, tenant: &TenantId) -> Key {
        Key::new(tenant.partition(), format!("{USAGE_SK_PREFIX}{self}"))
    }
}

impl fmt::Display for UsageMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for UsageMonth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UsageMonth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UsageMonth::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339;
    use crate::usage::testing::NOV_2026;

    #[test]
    fn months_parse_and_reset_at_the_next_month() {
        let nov = UsageMonth::parse("2026-11").unwrap();
        assert_eq!(nov.to_string(), "2026-11");
        assert_eq!(UsageMonth::current(NOV_2026), nov);
        assert_eq!(rfc3339(nov.starts_at()), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(nov.resets_at()), "2026-12-01T00:00:00Z");
        // December rolls over into January of the next year.
        let dec = UsageMonth::parse("2026-12").unwrap();
        assert_eq!(nov.next(), dec);
        assert_eq!(dec.next(), UsageMonth::parse("2027-01").unwrap());
        assert_eq!(rfc3339(dec.resets_at()), "2027-01-01T00:00:00Z");
        assert_eq!(dec.resets_at(), 1_798_761_600);
        // Leap February, and the instants around a month's edge.
        let feb = UsageMonth::parse("2028-02").unwrap();
        assert_eq!(rfc3339(feb.resets_at()), "2028-03-01T00:00:00Z");
        assert_eq!(UsageMonth::current(dec.resets_at() - 1), dec);
        assert_eq!(UsageMonth::current(dec.resets_at()), dec.next());
        assert_eq!(UsageMonth::current(0).to_string(), "1970-01");
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-1x", "+026-11", "",
        ] {
            assert!(UsageMonth::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&nov).unwrap();
        assert_eq!(json, "\"2026-11\"");
        assert_eq!(serde_json::from_str::<UsageMonth>(&json).unwrap(), nov);
    }
}
