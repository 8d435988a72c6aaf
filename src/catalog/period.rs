//! Reset periods of quota limits: UTC calendar days, ISO weeks, months and years.

use std::fmt;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// How often a quota limit starts again from zero: a UTC calendar period.
///
/// A limit `{"max": 20, "per": "day"}` allows 20 in each UTC day; the count starts from 0 at
/// midnight UTC. Weeks are ISO weeks, from Monday 00:00 UTC; months and years are calendar
/// months and years.
///
/// ```
/// use tower_plans::catalog::Period;
///
/// // 2026-11-29T12:00:00Z, a Sunday.
/// let now = 1_795_953_600_000;
/// let month = Period::Month.window(now);
/// assert_eq!(month.start(), 1_793_491_200_000); // 2026-11-01T00:00:00Z
/// assert_eq!(month.end(), 1_796_083_200_000); // 2026-12-01T00:00:00Z
/// assert_eq!(month.to_string(), "2026-11");
/// assert_eq!(Period::Week.window(now).to_string(), "2026-W48");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// An ISO week: Monday 00:00 UTC to the next Monday.
    Week,
    /// A UTC calendar month.
    Month,
    /// A UTC calendar year.
    Year,
}

/// One period of a [`Period`]: the one that holds a given instant.
///
/// Its bounds are milliseconds since the Unix epoch, `start` inclusive and `end` exclusive (the
/// next period's start, when the count resets). It displays as a label that names the period:
/// `2026-11-29`, `2026-W48` (ISO week-numbering year and week), `2026-11` or `2026`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    per: Period,
    start: u64,
    end: u64,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Year];

    /// The period's name as the catalog spells it: `"day"`, `"week"`, `"month"` or `"year"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// The period with this catalog name, or `None`.
    pub fn from_name(name: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The period that holds `now_ms` (milliseconds since the Unix epoch).
    ///
    /// Bounds that would fall before the epoch are the epoch (the ISO week of 1970-01-01 began
    /// on a Monday in 1969); bounds past `u64::MAX` milliseconds are `u64::MAX`.
    pub fn window(self, now_ms: u64) -> Window {
        // `now_ms / DAY_MS` is below 2^38, well inside `i64`.
        let day = (now_ms / DAY_MS as u64) as i64;
        let (start, end) = match self {
            Period::Day => (day, day + 1),
            Period::Week => {
                // 1970-01-01 was a Thursday: 3 days after a Monday.
                let monday = day - (day + 3).rem_euclid(7);
                (monday, monday + 7)
            }
            Period::Month => {
                let (year, month, _) = civil_from_days(day);
                let next = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (
                    days_from_civil(year, month, 1),
                    days_from_civil(next.0, next.1, 1),
                )
            }
            Period::Year => {
                let (year, _, _) = civil_from_days(day);
                (days_from_civil(year, 1, 1), days_from_civil(year + 1, 1, 1))
            }
        };
        Window {
            per: self,
            start: day_ms(start),
            end: day_ms(end),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Window {
    /// Which kind of period this is.
    pub fn per(&self) -> Period {
        self.per
    }

    /// The first millisecond of the period.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The first millisecond of the next period: when the count resets.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The period's length in whole seconds.
    pub fn seconds(&self) -> u64 {
        (self.end - self.start) / 1000
    }

    /// Whole seconds from `now_ms` until the period ends, rounded up (at least 1 before the
    /// end, 0 at or after it).
    pub fn seconds_left(&self, now_ms: u64) -> u64 {
        self.end.saturating_sub(now_ms).div_ceil(1000)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = (self.start / DAY_MS as u64) as i64;
        match self.per {
            Period::Day => {
                let (y, m, d) = civil_from_days(day);
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
            Period::Week => {
                // The ISO week-numbering year is the year of the week's Thursday.
                let thursday = day + 3;
                let (year, _, _) = civil_from_days(thursday);
                let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
                write!(f, "{year:04}-W{week:02}")
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                write!(f, "{y:04}-{m:02}")
            }
            Period::Year => {
                let (y, _, _) = civil_from_days(day);
                write!(f, "{y:04}")
            }
        }
    }
}

/// Milliseconds since the epoch at the start of `day`, clamped to `0..=u64::MAX`.
fn day_ms(day: i64) -> u64 {
    u64::try_from(day)
        .ok()
        .and_then(|day| day.checked_mul(DAY_MS as u64))
        .unwrap_or(if day < 0 { 0 } else { u64::MAX })
}

/// The proleptic Gregorian (year, month, day) of a day number (days since 1970-01-01).
///
/// Howard Hinnant's `civil_from_days`, exact for every `i64` day number this module makes.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day number (days since 1970-01-01) of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC date at midnight.
    fn at(year: i64, month: u32, day: u32) -> u64 {
        day_ms(days_from_civil(year, month, day))
    }

    #[test]
    fn civil_round_trip() {
        // Every day from 1900 to 2400, both ways.
        let first = days_from_civil(1900, 1, 1);
        let last = days_from_civil(2400, 12, 31);
        let mut expected = (1900, 1, 1);
        for day in first..=last {
            assert_eq!(civil_from_days(day), expected, "day {day}");
            assert_eq!(days_from_civil(expected.0, expected.1, expected.2), day);
            let (y, m, d) = expected;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_days = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = if d < month_days {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn month_bounds_and_the_last_millisecond() {
        let start = at(2026, 11, 1);
        let end = at(2026, 12, 1);
        for now in [start, start + 1, end - 1] {
            let window = Period::Month.window(now);
            assert_eq!((window.start(), window.end()), (start, end), "at {now}");
        }
        let next = Period::Month.window(end);
        assert_eq!((next.start(), next.end()), (end, at(2027, 1, 1)));
        assert_eq!(next.to_string(), "2026-12");
        assert_eq!(Period::Month.window(at(2026, 12, 31)).end(), at(2027, 1, 1));
    }

    #[test]
    fn leap_days() {
        let leap = at(2028, 2, 29);
        assert_eq!(Period::Day.window(leap).end(), at(2028, 3, 1));
        assert_eq!(Period::Day.window(leap).to_string(), "2028-02-29");
        let feb = Period::Month.window(leap + 5);
        assert_eq!((feb.start(), feb.end()), (at(2028, 2, 1), at(2028, 3, 1)));
        assert_eq!(feb.seconds(), 29 * 86_400);
        assert_eq!(Period::Month.window(at(2027, 2, 10)).seconds(), 28 * 86_400);
        // 2100 is not a leap year; 2000 was.
        assert_eq!(Period::Month.window(at(2100, 2, 28)).end(), at(2100, 3, 1));
        assert_eq!(Period::Month.window(at(2000, 2, 28)).end(), at(2000, 3, 1));
        assert_eq!(Period::Day.window(at(2000, 2, 28)).end(), at(2000, 2, 29));
        assert_eq!(Period::Year.window(leap).seconds(), 366 * 86_400);
    }

    #[test]
    fn iso_weeks_across_a_year_boundary() {
        // 2026-01-01 is a Thursday: ISO week 1 of 2026 began on Monday 2025-12-29.
        let new_year = Period::Week.window(at(2025, 12, 31) + 5);
        assert_eq!(
            (new_year.start(), new_year.end()),
            (at(2025, 12, 29), at(2026, 1, 5))
        );
        assert_eq!(new_year.to_string(), "2026-W01");
        // The last millisecond of that week, then the first of week 2.
        assert_eq!(Period::Week.window(at(2026, 1, 5) - 1), new_year);
        assert_eq!(Period::Week.window(at(2026, 1, 5)).to_string(), "2026-W02");
        // 2021-01-01 was a Friday: it belongs to week 53 of 2020.
        let late = Period::Week.window(at(2021, 1, 1));
        assert_eq!(late.start(), at(2020, 12, 28));
        assert_eq!(late.to_string(), "2020-W53");
        // A Sunday belongs to the week that began six days before.
        let sunday = Period::Week.window(at(2026, 11, 29) + 43_200_000);
        assert_eq!(sunday.start(), at(2026, 11, 23));
        assert_eq!(sunday.to_string(), "2026-W48");
    }

    #[test]
    fn days_and_years() {
        let now = at(2026, 11, 29) + 1;
        let day = Period::Day.window(now);
        assert_eq!(
            (day.start(), day.end()),
            (at(2026, 11, 29), at(2026, 11, 30))
        );
        assert_eq!(day.seconds(), 86_400);
        assert_eq!(day.seconds_left(at(2026, 11, 30) - 1), 1);
        assert_eq!(day.seconds_left(at(2026, 11, 30) - 1000), 1);
        assert_eq!(day.seconds_left(at(2026, 11, 30) - 1001), 2);
        assert_eq!(day.seconds_left(at(2026, 11, 30)), 0);
        let year = Period::Year.window(now);
        assert_eq!((year.start(), year.end()), (at(2026, 1, 1), at(2027, 1, 1)));
        assert_eq!(year.to_string(), "2026");
        assert_eq!(Period::Year.window(at(2027, 1, 1) - 1), year);
    }

    #[test]
    fn extremes_saturate() {
        let first = Period::Week.window(0);
        assert_eq!(first.start(), 0, "the week of 1970-01-01 began in 1969");
        assert_eq!(first.end(), at(1970, 1, 5));
        assert_eq!(first.to_string(), "1970-W01");
        for per in Period::ALL {
            let last = per.window(u64::MAX);
            assert!(u64::MAX - last.start() < 367 * DAY_MS as u64, "{per}");
            assert_eq!(last.end(), u64::MAX, "{per}");
            assert!(last.to_string().starts_with("58"), "{per}: {last}");
            assert_eq!(per.window(0).start(), 0);
        }
        assert_eq!(Period::Year.window(u64::MAX).end(), u64::MAX);
    }

    #[test]
    fn names() {
        for per in Period::ALL {
            assert_eq!(Period::from_name(per.as_str()), Some(per));
        }
        assert_eq!(Period::from_name("fortnight"), None);
        assert_eq!(Period::from_name("Month"), None);
    }
}
