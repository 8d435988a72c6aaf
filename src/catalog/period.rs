//! Reset periods of quota limits: UTC calendar hours, days, ISO weeks, months and years, and
//! billing cycles that start from an anchor instead of the calendar.

use std::fmt;

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// How often a quota limit starts again from zero: a UTC calendar period, or a billing cycle.
///
/// A limit `{"max": 20, "per": "day"}` allows 20 in each UTC day; the count starts from 0 at
/// midnight UTC. Hours are UTC hours; weeks are ISO weeks, from Monday 00:00 UTC; months and
/// years are calendar months and years. [`Period::window`] gives the calendar period that holds
/// an instant.
///
/// A period may instead follow a subscription's billing cycle, which starts at an anchor (the
/// instant the subscription began, say) rather than at midnight or on the 1st:
/// [`Period::anchored_window`] gives the cycle that holds an instant. A quota or a credit pool
/// with `"anchor": "subscription"` ([`Anchor::Subscription`](super::Anchor::Subscription))
/// counts in these cycles, anchored at the user's record; see the guide's
/// [billing cycles](crate::guide::cycles#billing-cycles).
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
///
/// // A monthly cycle anchored at 2026-10-15T09:30:00Z.
/// let cycle = Period::Month.anchored_window(1_792_056_600_000, now);
/// assert_eq!(cycle.start(), 1_794_735_000_000); // 2026-11-15T09:30:00Z
/// assert_eq!(cycle.end(), 1_797_327_000_000); // 2026-12-15T09:30:00Z
/// assert_eq!(cycle.to_string(), "m1794735000000");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// A UTC hour (catalog name `"hour"`), from minute 0 to the next hour.
    ///
    /// ```
    /// use tower_plans::catalog::Period;
    ///
    /// assert_eq!(Period::from_name("hour"), Some(Period::Hour));
    /// // 2026-11-29T12:34:56.789Z.
    /// let hour = Period::Hour.window(1_795_955_696_789);
    /// assert_eq!(hour.start(), 1_795_953_600_000); // 12:00:00
    /// assert_eq!(hour.end(), 1_795_957_200_000); // 13:00:00
    /// assert_eq!(hour.seconds(), 3600);
    /// assert_eq!(hour.to_string(), "2026-11-29T12");
    /// ```
    Hour,
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
/// next period's start, when the count resets). It displays as a label that names the period.
/// A calendar period's label is its date: `2026-11-29T12` (an hour), `2026-11-29`, `2026-W48`
/// (ISO week-numbering year and week), `2026-11` or `2026`. A billing cycle's label (from
/// [`Period::anchored_window`]) is the letter of its kind (`h`, `d`, `w`, `m` or `y`) followed
/// by its start in milliseconds: `m1794735000000`. Labels of different kinds never coincide,
/// and no calendar label equals a cycle's; two cycles of one kind differ as their starts do.
///
/// Two windows are equal when their kind, their anchoring and their bounds are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    per: Period,
    anchored: bool,
    start: u64,
    end: u64,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 5] = [
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Year,
    ];

    /// The period's name as the catalog spells it: `"hour"`, `"day"`, `"week"`, `"month"` or
    /// `"year"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
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

    /// The calendar period that holds `now_ms` (milliseconds since the Unix epoch).
    ///
    /// Bounds that would fall before the epoch are the epoch (the ISO week of 1970-01-01 began
    /// on a Monday in 1969); bounds past `u64::MAX` milliseconds are `u64::MAX`.
    pub fn window(self, now_ms: u64) -> Window {
        // `now_ms / DAY_MS` is below 2^38, well inside `i64`.
        let day = (now_ms / DAY_MS as u64) as i64;
        let (start, end) = match self {
            Period::Hour => {
                let start = i128::from(now_ms - now_ms % HOUR_MS as u64);
                (start, start + i128::from(HOUR_MS))
            }
            Period::Day => (day_ms(day), day_ms(day + 1)),
            Period::Week => {
                // 1970-01-01 was a Thursday: 3 days after a Monday.
                let monday = day - (day + 3).rem_euclid(7);
                (day_ms(monday), day_ms(monday + 7))
            }
            Period::Month => {
                let (year, month, _) = civil_from_days(day);
                let index = month_index(year, month);
                (
                    day_ms(first_of_month(index)),
                    day_ms(first_of_month(index + 1)),
                )
            }
            Period::Year => {
                let (year, _, _) = civil_from_days(day);
                (
                    day_ms(days_from_civil(year, 1, 1)),
                    day_ms(days_from_civil(year + 1, 1, 1)),
                )
            }
        };
        Window {
            per: self,
            anchored: false,
            start: saturate(start),
            end: saturate(end),
        }
    }

    /// The billing cycle anchored at `anchor_ms` that holds `now_ms` (both milliseconds since
    /// the Unix epoch).
    ///
    /// One cycle starts at the anchor, and the others follow it without gaps, each computed from
    /// the anchor itself rather than from the cycle before:
    ///
    /// - an hour runs from the anchor's minute, second and millisecond to the same in the next
    ///   hour;
    /// - a day runs from the anchor's time of day, 24 hours;
    /// - a week runs from the anchor's weekday and time of day, 7 days;
    /// - a month runs from the anchor's day of the month and time of day to the same in the next
    ///   month, the day clamped to the month's last day: a cycle anchored on January 31 at 10:00
    ///   runs to February 28 (29 in a leap year) at 10:00, then to March 31, April 30 and May 31
    ///   at 10:00, as Stripe bills;
    /// - a year runs from the anchor's month, day and time of day to the same in the next year,
    ///   an anchor on February 29 falling on February 28 in common years.
    ///
    /// An instant before the anchor falls in one of the cycles that lead up to it, counted back
    /// the same way. As for [`window`](Period::window), bounds that would fall before the epoch
    /// are the epoch and bounds past `u64::MAX` milliseconds are `u64::MAX`; every pair of
    /// instants gives a window.
    ///
    /// The window [is anchored](Window::is_anchored) and displays as the letter of its kind
    /// followed by its start in milliseconds (`m1803808800000`), a label no calendar period has.
    ///
    /// ```
    /// use tower_plans::catalog::Period;
    ///
    /// let anchor = 1_801_389_600_000; // 2027-01-31T10:00:00Z
    /// let now = 1_804_636_800_000; // 2027-03-10T00:00:00Z
    /// let cycle = Period::Month.anchored_window(anchor, now);
    /// assert_eq!(cycle.start(), 1_803_808_800_000); // 2027-02-28T10:00:00Z
    /// assert_eq!(cycle.end(), 1_806_487_200_000); // 2027-03-31T10:00:00Z
    /// assert!(cycle.is_anchored());
    /// assert_eq!(cycle.to_string(), "m1803808800000");
    /// assert_eq!(cycle.seconds_left(now), 1_850_400); // 21 days and 10 hours
    ///
    /// // The next cycle starts where this one ends, and runs to April 30.
    /// let next = Period::Month.anchored_window(anchor, cycle.end());
    /// assert_eq!(next.start(), cycle.end());
    /// assert_eq!(next.end(), 1_809_079_200_000); // 2027-04-30T10:00:00Z
    ///
    /// // Before the anchor, the cycles run backwards: December 31 to January 31.
    /// let before = Period::Month.anchored_window(anchor, anchor - 1);
    /// assert_eq!(before.end(), anchor);
    /// assert_eq!(before.start(), 1_798_711_200_000); // 2026-12-31T10:00:00Z
    /// ```
    pub fn anchored_window(self, anchor_ms: u64, now_ms: u64) -> Window {
        let (start, end) = match self {
            Period::Hour => every(HOUR_MS, anchor_ms, now_ms),
            Period::Day => every(DAY_MS, anchor_ms, now_ms),
            Period::Week => every(7 * DAY_MS, anchor_ms, now_ms),
            Period::Month => every_months(1, anchor_ms, now_ms),
            Period::Year => every_months(12, anchor_ms, now_ms),
        };
        Window {
            per: self,
            anchored: true,
            start: saturate(start),
            end: saturate(end),
        }
    }

    /// The letter that starts the label of an anchored window of this kind.
    fn letter(self) -> char {
        match self {
            Period::Hour => 'h',
            Period::Day => 'd',
            Period::Week => 'w',
            Period::Month => 'm',
            Period::Year => 'y',
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

    /// Whether this is a billing cycle ([`Period::anchored_window`]) rather than a calendar
    /// period ([`Period::window`]).
    pub fn is_anchored(&self) -> bool {
        self.anchored
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
        if self.anchored {
            return write!(f, "{}{}", self.per.letter(), self.start);
        }
        let day = (self.start / DAY_MS as u64) as i64;
        match self.per {
            Period::Hour => {
                let (y, m, d) = civil_from_days(day);
                let hour = self.start % DAY_MS as u64 / HOUR_MS as u64;
                write!(f, "{y:04}-{m:02}-{d:02}T{hour:02}")
            }
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

/// The cycle of `length` milliseconds that holds `now_ms`, when one starts at `anchor_ms`.
fn every(length: i64, anchor_ms: u64, now_ms: u64) -> (i128, i128) {
    let (length, now) = (i128::from(length), i128::from(now_ms));
    let start = now - (now - i128::from(anchor_ms)).rem_euclid(length);
    (start, start + length)
}

/// The cycle of `months` calendar months that holds `now_ms`, when one starts at `anchor_ms`:
/// each bound is the anchor's day of the month (clamped to the month's last day) and time of
/// day, a whole number of cycles from the anchor's month.
fn every_months(months: i64, anchor_ms: u64, now_ms: u64) -> (i128, i128) {
    // Day numbers of `u64` milliseconds are below 2^38, and their years below 2^30: the month
    // indexes and day numbers below stay far inside `i64`.
    let (year, month, day) = civil_from_days((anchor_ms / DAY_MS as u64) as i64);
    let time = i128::from(anchor_ms % DAY_MS as u64);
    let anchor_month = month_index(year, month);
    // The start of the cycle `n` cycles after the anchor's (before it, when negative).
    let bound = |n: i64| {
        let (year, month) = month_of(anchor_month + n * months);
        let day = day.min(days_in_month(year, month));
        day_ms(days_from_civil(year, month, day)) + time
    };
    // The last cycle that starts in or before the month of `now_ms`; if that start is still
    // after `now_ms`, the one before (which starts in an earlier month).
    let (year, month, _) = civil_from_days((now_ms / DAY_MS as u64) as i64);
    let mut n = (month_index(year, month) - anchor_month).div_euclid(months);
    if bound(n) > i128::from(now_ms) {
        n -= 1;
    }
    (bound(n), bound(n + 1))
}

/// Milliseconds since the epoch at the start of `day` (days since 1970-01-01).
fn day_ms(day: i64) -> i128 {
    i128::from(day) * i128::from(DAY_MS)
}

/// Milliseconds clamped to `0..=u64::MAX`.
fn saturate(ms: i128) -> u64 {
    u64::try_from(ms).unwrap_or(if ms < 0 { 0 } else { u64::MAX })
}

/// Months since the start of year 0: `year * 12 + month - 1`.
fn month_index(year: i64, month: u32) -> i64 {
    year * 12 + i64::from(month) - 1
}

/// The (year, month) of a [`month_index`].
fn month_of(index: i64) -> (i64, u32) {
    (index.div_euclid(12), index.rem_euclid(12) as u32 + 1)
}

/// The day number of the 1st of a [`month_index`].
fn first_of_month(index: i64) -> i64 {
    let (year, month) = month_of(index);
    days_from_civil(year, month, 1)
}

/// How many days the month has in the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: u32) -> u32 {
    let index = month_index(year, month);
    (first_of_month(index + 1) - first_of_month(index)) as u32
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

    const HOUR: u64 = HOUR_MS as u64;
    const DAY: u64 = DAY_MS as u64;

    /// Milliseconds of a UTC date at midnight.
    fn at(year: i64, month: u32, day: u32) -> u64 {
        saturate(day_ms(days_from_civil(year, month, day)))
    }

    /// Milliseconds of a UTC date and time (hours and minutes).
    fn at_time(year: i64, month: u32, day: u32, hour: u64, minute: u64) -> u64 {
        at(year, month, day) + hour * HOUR + minute * 60_000
    }

    /// The starts of `count` successive cycles, from the one that holds `now`.
    fn starts(per: Period, anchor: u64, now: u64, count: usize) -> Vec<u64> {
        let mut window = per.anchored_window(anchor, now);
        let mut starts = Vec::new();
        for _ in 0..count {
            starts.push(window.start());
            let next = per.anchored_window(anchor, window.end());
            assert_eq!(next.start(), window.end(), "{per} cycles tile");
            window = next;
        }
        starts
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
        assert!(Period::Hour.window(u64::MAX).start() > u64::MAX - HOUR);
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

    #[test]
    fn calendar_hours() {
        let noon = at_time(2026, 11, 29, 12, 0);
        let hour = Period::Hour.window(noon + 34 * 60_000 + 56_789);
        assert_eq!((hour.start(), hour.end()), (noon, noon + HOUR));
        assert_eq!(hour.to_string(), "2026-11-29T12");
        assert_eq!(hour.seconds(), 3600);
        assert_eq!(hour.seconds_left(noon + HOUR - 1), 1);
        assert!(!hour.is_anchored());
        assert_eq!(Period::Hour.window(noon - 1).to_string(), "2026-11-29T11");
        assert_eq!(Period::Hour.window(noon + HOUR), {
            let next = Period::Hour.window(noon + HOUR + 1);
            assert_eq!(next.start(), hour.end());
            next
        });
        assert_eq!(
            Period::Hour.window(at(2027, 1, 1) - 1).to_string(),
            "2026-12-31T23"
        );
        assert_eq!(Period::Hour.window(0).to_string(), "1970-01-01T00");
        assert_eq!(Period::Hour.window(0).end(), HOUR);
    }

    #[test]
    fn a_monthly_cycle_from_the_31st_clamps_each_month_from_the_anchor() {
        let anchor = at_time(2027, 1, 31, 10, 0);
        assert_eq!(
            starts(Period::Month, anchor, anchor + 1, 7),
            [
                anchor,
                at_time(2027, 2, 28, 10, 0),
                at_time(2027, 3, 31, 10, 0),
                at_time(2027, 4, 30, 10, 0),
                at_time(2027, 5, 31, 10, 0),
                at_time(2027, 6, 30, 10, 0),
                at_time(2027, 7, 31, 10, 0),
            ]
        );
        // In a leap year February ends on the 29th.
        let anchor = at_time(2028, 1, 31, 10, 0);
        let february = Period::Month.anchored_window(anchor, at(2028, 2, 15));
        assert_eq!(
            (february.start(), february.end()),
            (at_time(2028, 1, 31, 10, 0), at_time(2028, 2, 29, 10, 0))
        );
        let march = Period::Month.anchored_window(anchor, february.end());
        assert_eq!(march.end(), at_time(2028, 3, 31, 10, 0));
        assert_eq!(march.seconds(), 31 * 86_400);
        // The last millisecond before a bound belongs to the cycle that ends there.
        assert_eq!(
            Period::Month.anchored_window(anchor, march.start() - 1),
            february
        );
        // A cycle anchored on the 30th ends on February's last day, then goes back to the 30th.
        assert_eq!(
            starts(Period::Month, at(2026, 11, 30), at(2027, 2, 1), 3),
            [at(2027, 1, 30), at(2027, 2, 28), at(2027, 3, 30)]
        );
    }

    #[test]
    fn a_cycle_anchored_on_february_29() {
        let anchor = at_time(2028, 2, 29, 8, 15);
        assert_eq!(
            starts(Period::Year, anchor, anchor, 6),
            [
                anchor,
                at_time(2029, 2, 28, 8, 15),
                at_time(2030, 2, 28, 8, 15),
                at_time(2031, 2, 28, 8, 15),
                at_time(2032, 2, 29, 8, 15),
                at_time(2033, 2, 28, 8, 15),
            ]
        );
        assert_eq!(
            Period::Year.anchored_window(anchor, anchor).seconds(),
            365 * 86_400
        );
        // 2100 is not a leap year.
        assert_eq!(
            starts(Period::Year, at(2096, 2, 29), at(2100, 3, 1), 2),
            [at(2100, 2, 28), at(2101, 2, 28)]
        );
        assert_eq!(
            starts(Period::Year, at(2096, 2, 29), at(2104, 3, 1), 1),
            [at(2104, 2, 29)]
        );
        // Monthly, the 29th of every month, and February 28 in a common year.
        assert_eq!(
            starts(Period::Month, anchor, at(2028, 12, 30), 4),
            [
                at_time(2028, 12, 29, 8, 15),
                at_time(2029, 1, 29, 8, 15),
                at_time(2029, 2, 28, 8, 15),
                at_time(2029, 3, 29, 8, 15),
            ]
        );
    }

    #[test]
    fn cycles_across_the_end_of_a_year() {
        // Thursday 2026-12-31T23:30.
        let anchor = at_time(2026, 12, 31, 23, 30);
        assert_eq!(
            starts(Period::Month, anchor, anchor, 4),
            [
                anchor,
                at_time(2027, 1, 31, 23, 30),
                at_time(2027, 2, 28, 23, 30),
                at_time(2027, 3, 31, 23, 30),
            ]
        );
        let year = Period::Year.anchored_window(anchor, at(2027, 6, 1));
        assert_eq!(
            (year.start(), year.end()),
            (anchor, at_time(2027, 12, 31, 23, 30))
        );
        let week = Period::Week.anchored_window(anchor, at_time(2027, 1, 7, 23, 29));
        assert_eq!(
            (week.start(), week.end()),
            (anchor, at_time(2027, 1, 7, 23, 30))
        );
        let day = Period::Day.anchored_window(anchor, at_time(2027, 1, 1, 5, 0));
        assert_eq!((day.start(), day.end()), (anchor, anchor + DAY));
        let hour = Period::Hour.anchored_window(anchor, at_time(2027, 1, 1, 0, 10));
        assert_eq!((hour.start(), hour.end()), (anchor, anchor + HOUR));
        // A year anchored on December 31 of a leap year stays on December 31.
        assert_eq!(
            starts(Period::Year, at(2028, 12, 31), at(2029, 1, 1), 2),
            [at(2028, 12, 31), at(2029, 12, 31)]
        );
        // Monthly cycles that start on the 31st cross into the next year on December 31.
        assert_eq!(
            starts(Period::Month, at(2027, 1, 31), at(2027, 11, 29), 3),
            [at(2027, 10, 31), at(2027, 11, 30), at(2027, 12, 31)]
        );
    }

    #[test]
    fn anchors_at_the_epoch() {
        // 1970-01-01T00:00 is a midnight, the 1st of January and a Thursday: hourly, daily,
        // monthly and yearly cycles anchored there have the calendar's bounds, but are other
        // windows, with other labels.
        for now in [
            0,
            1,
            at(1970, 1, 31),
            at_time(2026, 11, 29, 12, 34),
            u64::MAX,
        ] {
            for per in [Period::Hour, Period::Day, Period::Month, Period::Year] {
                let cycle = per.anchored_window(0, now);
                let calendar = per.window(now);
                assert_eq!(
                    (cycle.start(), cycle.end()),
                    (calendar.start(), calendar.end()),
                    "{per} at {now}"
                );
                assert_ne!(cycle, calendar);
                assert_ne!(cycle.to_string(), calendar.to_string());
            }
        }
        // Weekly cycles from the epoch start on Thursdays.
        let week = Period::Week.anchored_window(0, at(2026, 11, 29));
        assert_eq!(
            (week.start(), week.end()),
            (at(2026, 11, 26), at(2026, 12, 3))
        );
        assert_eq!(Period::Week.anchored_window(0, 0).start(), 0);
        assert_eq!(Period::Week.anchored_window(0, 0).end(), 7 * DAY);
        // At the epoch, a cycle anchored later began before 1970: it starts at the epoch.
        let day = Period::Day.anchored_window(10 * HOUR, 0);
        assert_eq!((day.start(), day.end()), (0, 10 * HOUR));
        let month = Period::Month.anchored_window(at(1970, 1, 15), at(1970, 1, 14));
        assert_eq!((month.start(), month.end()), (0, at(1970, 1, 15)));
        let year = Period::Year.anchored_window(at(2000, 3, 1), 5);
        assert_eq!((year.start(), year.end()), (0, at(1970, 3, 1)));
    }

    #[test]
    fn instants_before_the_anchor() {
        let anchor = at_time(2027, 1, 31, 10, 0);
        let month = Period::Month.anchored_window(anchor, at(2026, 11, 15));
        assert_eq!(
            (month.start(), month.end()),
            (at_time(2026, 10, 31, 10, 0), at_time(2026, 11, 30, 10, 0))
        );
        let last = Period::Month.anchored_window(anchor, anchor - 1);
        assert_eq!(
            (last.start(), last.end()),
            (at_time(2026, 12, 31, 10, 0), anchor)
        );
        assert_eq!(
            Period::Month.anchored_window(anchor, anchor).start(),
            anchor
        );
        // Backwards from March 31, February's cycle starts on its last day.
        let march = at(2027, 3, 31);
        assert_eq!(
            starts(Period::Month, march, at(2026, 12, 31), 4),
            [at(2026, 12, 31), at(2027, 1, 31), at(2027, 2, 28), march]
        );
        let year = Period::Year.anchored_window(at(2028, 2, 29), at(2027, 3, 1));
        assert_eq!(
            (year.start(), year.end()),
            (at(2027, 2, 28), at(2028, 2, 29))
        );
        let week = Period::Week.anchored_window(anchor, anchor - 1);
        assert_eq!((week.start(), week.end()), (anchor - 7 * DAY, anchor));
        let day = Period::Day.anchored_window(anchor, anchor - 30 * DAY - 1);
        assert_eq!(day.end(), anchor - 30 * DAY);
        // Hourly cycles at minute 45, two hours and a minute before the anchor.
        let anchor = at_time(2027, 1, 31, 10, 45);
        let hour = Period::Hour.anchored_window(anchor, anchor - 2 * HOUR - 60_000);
        assert_eq!(
            (hour.start(), hour.end()),
            (at_time(2027, 1, 31, 7, 45), at_time(2027, 1, 31, 8, 45))
        );
    }

    #[test]
    fn labels_tell_windows_apart() {
        let now = at_time(2026, 11, 29, 12, 0);
        let anchor = at_time(2026, 10, 15, 9, 30);
        let mut labels = Vec::new();
        for per in Period::ALL {
            let cycle = per.anchored_window(anchor, now);
            assert!(cycle.is_anchored());
            assert_eq!(cycle.per(), per);
            let label = cycle.to_string();
            assert_eq!(label[1..].parse::<u64>(), Ok(cycle.start()), "{label}");
            assert!(label.starts_with(per.letter()), "{label}");
            assert!(
                label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{label}"
            );
            labels.push(label);
            labels.push(per.window(now).to_string());
            // Another start, another label; another anchor with the same start, the same one.
            labels.push(per.anchored_window(anchor + 1, now).to_string());
            assert_eq!(per.anchored_window(cycle.start(), now), cycle);
        }
        assert_eq!(
            &labels[9..12],
            ["m1794735000000", "2026-11", "m1794735000001"]
        );
        assert_eq!(labels[1], "2026-11-29T12");
        let count = labels.len();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), count, "{labels:?}");
        // Equal bounds, anchored or not, of one kind or another: different windows.
        let day = Period::Day.anchored_window(0, at(2026, 11, 29));
        assert_eq!(
            (day.start(), day.end()),
            (at(2026, 11, 29), at(2026, 11, 30))
        );
        assert_ne!(day, Period::Day.window(at(2026, 11, 29)));
        let week = Period::Week.anchored_window(at(2026, 11, 29), at(2026, 11, 29));
        assert_ne!(
            week,
            Period::Week.anchored_window(at(2026, 11, 23), at(2026, 11, 29))
        );
        assert_eq!(
            week,
            Period::Week.anchored_window(at(2026, 11, 22), at(2026, 11, 29) + 7 * DAY - 1)
        );
    }

    #[test]
    fn extreme_anchors_and_instants() {
        let edges = [
            0,
            1,
            HOUR - 1,
            DAY - 1,
            DAY,
            at(1970, 1, 31),
            at(2028, 2, 29),
            u64::MAX / 2,
            u64::MAX - DAY,
            u64::MAX - 1,
            u64::MAX,
        ];
        for per in Period::ALL {
            for anchor in edges {
                for now in edges {
                    let cycle = per.anchored_window(anchor, now);
                    assert!(cycle.start() <= now, "{per} {anchor} {now}: {cycle:?}");
                    assert!(now < cycle.end() || cycle.end() == u64::MAX);
                    assert!(cycle.seconds_left(now) <= cycle.seconds() + 1);
                    assert!(cycle.to_string().len() <= 21);
                }
            }
            let last = per.anchored_window(u64::MAX, u64::MAX);
            assert_eq!(last.start(), u64::MAX);
            assert_eq!(last.seconds(), 0);
            assert_eq!(last.seconds_left(u64::MAX), 0);
            let last = per.anchored_window(0, u64::MAX);
            assert_eq!(last.end(), u64::MAX);
            if per != Period::Week {
                assert_eq!(last.start(), per.window(u64::MAX).start());
            }
        }
    }

    /// An independent calendar: chrono's.
    mod reference {
        use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, TimeDelta};

        use super::super::Period;

        fn epoch() -> NaiveDateTime {
            NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .expect("the epoch")
        }

        /// The date and time `ms` milliseconds after the epoch.
        pub(super) fn date_time(ms: u64) -> NaiveDateTime {
            epoch() + TimeDelta::milliseconds(i64::try_from(ms).expect("before year 2^20"))
        }

        /// The start of the cycle `n` cycles from the one that starts at `anchor`.
        fn nth(per: Period, anchor: NaiveDateTime, n: i64) -> NaiveDateTime {
            let months = match per {
                Period::Hour => return anchor + TimeDelta::hours(n),
                Period::Day => return anchor + TimeDelta::days(n),
                Period::Week => return anchor + TimeDelta::weeks(n),
                Period::Month => n,
                Period::Year => 12 * n,
            };
            let shift = Months::new(u32::try_from(months.unsigned_abs()).expect("few months"));
            // chrono clamps the day to the month's last day.
            if months >= 0 {
                anchor.checked_add_months(shift)
            } else {
                anchor.checked_sub_months(shift)
            }
            .expect("inside chrono's years")
        }

        /// The bounds of the cycle that holds `now_ms`, anchored at `anchor_ms`, clamped to the
        /// epoch.
        pub(super) fn cycle(per: Period, anchor_ms: u64, now_ms: u64) -> (u64, u64) {
            let (anchor, now) = (date_time(anchor_ms), date_time(now_ms));
            let months = i64::from(now.year() - anchor.year()) * 12 + i64::from(now.month())
                - i64::from(anchor.month());
            // A guess from the calendar, then the cycle whose bounds hold `now`.
            let mut n = match per {
                Period::Hour => (now - anchor).num_hours(),
                Period::Day => (now - anchor).num_days(),
                Period::Week => (now - anchor).num_weeks(),
                Period::Month => months,
                Period::Year => months / 12,
            };
            while nth(per, anchor, n) > now {
                n -= 1;
            }
            while nth(per, anchor, n + 1) <= now {
                n += 1;
            }
            let ms = |at: NaiveDateTime| (at - epoch()).num_milliseconds().max(0) as u64;
            (ms(nth(per, anchor, n)), ms(nth(per, anchor, n + 1)))
        }
    }

    /// 2400-12-31T23:59:59.999Z.
    const LAST_2400: u64 = 13_601_087_999_999;

    /// An instant from 1970 to 2400, often an edge: the epoch, the end of 2400, the end of a
    /// month (where monthly cycles clamp), or a midnight.
    fn instant() -> impl Strategy<Value = u64> {
        let date = (1970..=2400i32, 1..=12u32, 1..=31u32).prop_filter_map(
            "a real date",
            |(year, month, day)| {
                chrono::NaiveDate::from_ymd_opt(year, month, day)
                    .or_else(|| chrono::NaiveDate::from_ymd_opt(year, month, 28))
            },
        );
        let ms_of = |date: chrono::NaiveDate, time: u64| {
            let start = date.and_hms_opt(0, 0, 0).expect("midnight");
            (start - reference::date_time(0)).num_milliseconds() as u64 + time
        };
        prop_oneof![
            4 => 0..=LAST_2400,
            1 => Just(0),
            1 => Just(LAST_2400),
            1 => 0..=2 * DAY,
            2 => (date.clone(), 0..DAY).prop_map(move |(date, time)| ms_of(date, time)),
            2 => (date, 28..=31u32).prop_map(move |(date, day)| {
                let last = (day..=31)
                    .rev()
                    .find_map(|d| date.with_day(d))
                    .unwrap_or(date);
                ms_of(last, 0)
            }),
        ]
    }

    fn period() -> impl Strategy<Value = Period> {
        proptest::sample::select(Period::ALL.to_vec())
    }

    use chrono::Datelike as _;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn anchored_windows_match_chrono(per in period(), anchor in instant(), now in instant()) {
            let cycle = per.anchored_window(anchor, now);
            prop_assert_eq!((cycle.start(), cycle.end()), reference::cycle(per, anchor, now));
            prop_assert!(cycle.is_anchored());
            prop_assert_eq!(cycle.per(), per);
            // Both neighbours, from their first and last milliseconds.
            let next = per.anchored_window(anchor, cycle.end());
            prop_assert_eq!((next.start(), next.end()), reference::cycle(per, anchor, cycle.end()));
            prop_assert_eq!(next.start(), cycle.end());
            if cycle.start() > 0 {
                let before = per.anchored_window(anchor, cycle.start() - 1);
                prop_assert_eq!(before.end(), cycle.start());
                prop_assert_eq!(
                    (before.start(), before.end()),
                    reference::cycle(per, anchor, cycle.start() - 1)
                );
            }
        }

        #[test]
        fn anchored_windows_hold_now_and_tile_over_all_of_u64(
            per in period(),
            anchor in prop_oneof![any::<u64>(), Just(0), Just(u64::MAX), instant()],
            now in prop_oneof![any::<u64>(), Just(0), Just(u64::MAX), instant()],
        ) {
            let cycle = per.anchored_window(anchor, now);
            prop_assert!(cycle.start() <= now);
            prop_assert!(now < cycle.end() || cycle.end() == u64::MAX);
            prop_assert!(cycle.seconds() <= 366 * 86_400);
            prop_assert!(cycle.seconds_left(now) <= cycle.seconds() + 1);
            if cycle.end() < u64::MAX {
                prop_assert_eq!(per.anchored_window(anchor, cycle.end()).start(), cycle.end());
                prop_assert_eq!(per.anchored_window(anchor, cycle.end() - 1), cycle);
            }
            if cycle.start() > 0 {
                prop_assert_eq!(per.anchored_window(anchor, cycle.start() - 1).end(), cycle.start());
                prop_assert_eq!(per.anchored_window(anchor, cycle.start()), cycle);
            }
            let label = cycle.to_string();
            prop_assert!(label.starts_with(per.letter()));
            prop_assert_eq!(label[1..].parse::<u64>(), Ok(cycle.start()));
        }

        #[test]
        fn calendar_windows_hold_now_and_tile(per in period(), now in any::<u64>()) {
            let window = per.window(now);
            prop_assert!(!window.is_anchored());
            prop_assert!(window.start() <= now);
            prop_assert!(now < window.end() || window.end() == u64::MAX);
            if window.end() < u64::MAX {
                prop_assert_eq!(per.window(window.end()).start(), window.end());
            }
            let label = window.to_string();
            prop_assert!(label.bytes().next().is_some_and(|b| b.is_ascii_digit()));
        }
    }
}
