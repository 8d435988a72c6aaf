//! What a plan sets on one action or pool beside its [`Limit`]: how far past it a request may go
//! ([`Overage`]), whether its periods follow the subscription ([`Anchor`]) and how fast its
//! requests may come ([`Rate`]): together a [`Rule`].

use std::fmt;
use std::time::Duration;

use super::Limit;

/// A plan's limit on one action (or one credit pool) with the terms around it.
///
/// The JSON form is the limit's, with optional keys beside `max` and `per`:
/// `{"max": 1000, "per": "month", "anchor": "subscription", "overage": 200, "rate": {"max": 60,
/// "per": "minute"}}`. A rule with only a rate, `{"rate": {"max": 60, "per": "minute"}}`, leaves
/// the action unlimited in number and limits how fast it may be called.
///
/// The catalog checks a rule when it is read or built
/// ([`CatalogBuilder::build`](super::CatalogBuilder::build)): an anchor without a period
/// (`per`), a rate of 0 or a burst outside `1..=max`, and a rate on a credit pool are
/// [`FormatError`](crate::format::FormatError)s naming their path. An add-on's limits take
/// none of these terms. The guide's chapter
/// [Billing cycles, rate limits, soft limits and usage alerts](crate::guide::cycles) shows
/// them at work.
///
/// ```
/// use tower_plans::catalog::{Anchor, Limit, Overage, Period, Rate, RatePer, Rule};
///
/// let rule = Rule::new(Limit::per(1000, Period::Month))
///     .with_overage(Overage::Up(200))
///     .with_anchor(Anchor::Subscription)
///     .with_rate(Rate::new(60, RatePer::Minute));
/// assert_eq!(rule.hard_maximum(), Some(1200));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Rule {
    /// How many the plan allows (the soft limit when [`overage`](Self::overage) lets requests
    /// go past it).
    pub limit: Limit,
    /// How far past the limit requests may go, flagged.
    pub overage: Overage,
    /// Whether the limit's periods follow the calendar or the subscription; `None` follows the
    /// plan's `anchor` (calendar when the plan sets none).
    pub anchor: Option<Anchor>,
    /// How fast the action may be called, whatever its limit.
    pub rate: Option<Rate>,
}

impl Rule {
    /// `limit`, hard, on the plan's anchor, without a rate.
    pub const fn new(limit: Limit) -> Self {
        Self {
            limit,
            overage: Overage::Off,
            anchor: None,
            rate: None,
        }
    }

    /// Sets how far past the limit requests may go, builder style.
    #[must_use]
    pub const fn with_overage(mut self, overage: Overage) -> Self {
        self.overage = overage;
        self
    }

    /// Sets what the limit's periods follow, builder style.
    #[must_use]
    pub const fn with_anchor(mut self, anchor: Anchor) -> Self {
        self.anchor = Some(anchor);
        self
    }

    /// Sets the rate, builder style.
    #[must_use]
    pub const fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// The most a request may bring the count to: the limit's maximum plus the overage, `None`
    /// when there is no end (an unlimited limit, or an overage without end).
    pub fn hard_maximum(&self) -> Option<u64> {
        self.overage.past(self.limit.maximum()?)
    }
}

impl From<Limit> for Rule {
    fn from(limit: Limit) -> Self {
        Rule::new(limit)
    }
}

/// How far past its limit a soft limit lets requests go: they pass, flagged as overage
/// ([`Allowed::overage`](crate::Allowed::overage), the `Plan-Overage` response header), and
/// are refused beyond it.
///
/// JSON: absent for a hard limit, a number of units (`"overage": 200`), or `null` for no end.
/// On a credit pool, the overage is spent after the allowance and the user's grants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overage {
    /// A hard limit: refused at the limit.
    #[default]
    Off,
    /// Up to this many units past the limit.
    Up(u64),
    /// Past the limit without end.
    Unbounded,
}

impl Overage {
    /// The hard maximum of a limit of `max` with this overage, `None` without end.
    pub fn past(self, max: u64) -> Option<u64> {
        match self {
            Overage::Off => Some(max),
            Overage::Up(units) => Some(max.saturating_add(units)),
            Overage::Unbounded => None,
        }
    }

    /// Whether the limit is soft.
    pub fn is_soft(self) -> bool {
        self != Overage::Off
    }
}

impl serde::Serialize for Overage {
    /// `0` for a hard limit, the units, or `null` for no end.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Overage::Off => serializer.serialize_u64(0),
            Overage::Up(units) => serializer.serialize_u64(*units),
            Overage::Unbounded => serializer.serialize_none(),
        }
    }
}

/// What a quota's (or a renewing pool's) periods follow.
///
/// JSON: `"anchor": "calendar"` or `"anchor": "subscription"`, on a limit, a pool or a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// UTC calendar periods: the count starts again on the 1st of the month, at midnight, ...
    #[default]
    Calendar,
    /// The subscription's billing cycle: periods start at the record's `cycle_anchor`
    /// ([`Subscriber::cycle_anchor`](crate::Subscriber::cycle_anchor)), else at its plan
    /// assignment's `join` ([`Assignment::joined`](crate::subscriber::Assignment::joined)),
    /// and repeat from there (a month runs from the anchor's day in one month to the same day
    /// in the next, clamped to the month's last day: see [`Period::anchored_window`]). Without
    /// either, the calendar.
    ///
    /// [`Period::anchored_window`]: super::Period::anchored_window
    Subscription,
}

impl Anchor {
    /// The anchor's name in the catalog: `"calendar"` or `"subscription"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Anchor::Calendar => "calendar",
            Anchor::Subscription => "subscription",
        }
    }

    /// The anchor with this catalog name, or `None`.
    pub fn from_name(name: &str) -> Option<Anchor> {
        [Anchor::Calendar, Anchor::Subscription]
            .into_iter()
            .find(|anchor| anchor.as_str() == name)
    }
}

/// How fast requests may come: `max` per `per`, with bursts of up to `burst`, enforced as a
/// generic cell rate (GCRA, as the `governor` crate does): the requests are spread evenly over
/// the period, and `burst` of them may come at once.
///
/// JSON: `{"max": 60, "per": "minute"}`, with `"burst": 10` to allow fewer at once than `max`.
///
/// A request the rate does not let through is refused with `429 Too Many Requests`
/// ([`Denial::RateLimited`](crate::Denial::RateLimited)), and takes nothing of its quota; the
/// layer keeps the rates in its [`RateStore`](crate::rate::RateStore) (see
/// [`rate`](crate::rate) for the algorithm, [`Gcra`](crate::rate::Gcra)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Rate {
    /// How many requests each period allows (at least 1).
    pub max: u64,
    /// The period.
    pub per: RatePer,
    /// How many may come at once (1 to `max`).
    pub burst: u64,
}

impl Rate {
    /// `max` requests per `per`, all of which may come at once.
    pub const fn new(max: u64, per: RatePer) -> Self {
        Self {
            max,
            per,
            burst: max,
        }
    }

    /// Sets how many requests may come at once, builder style.
    #[must_use]
    pub const fn with_burst(mut self, burst: u64) -> Self {
        self.burst = burst;
        self
    }
}

/// The period of a [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RatePer {
    /// A second.
    Second,
    /// A minute.
    Minute,
    /// An hour.
    Hour,
    /// A day.
    Day,
}

impl RatePer {
    /// Every rate period, shortest first.
    pub const ALL: [RatePer; 4] = [
        RatePer::Second,
        RatePer::Minute,
        RatePer::Hour,
        RatePer::Day,
    ];

    /// The period's name in the catalog: `"second"`, `"minute"`, `"hour"` or `"day"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RatePer::Second => "second",
            RatePer::Minute => "minute",
            RatePer::Hour => "hour",
            RatePer::Day => "day",
        }
    }

    /// The period with this catalog name, or `None`.
    pub fn from_name(name: &str) -> Option<RatePer> {
        RatePer::ALL.into_iter().find(|per| per.as_str() == name)
    }

    /// The period's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            RatePer::Second => 1,
            RatePer::Minute => 60,
            RatePer::Hour => 3_600,
            RatePer::Day => 86_400,
        })
    }
}

impl fmt::Display for RatePer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for RatePer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Period;

    #[test]
    fn hard_maxima() {
        let soft = Rule::new(Limit::Limited(1000)).with_overage(Overage::Up(200));
        assert_eq!(soft.hard_maximum(), Some(1200));
        let endless = Rule::new(Limit::per(10, Period::Day)).with_overage(Overage::Unbounded);
        assert_eq!(endless.hard_maximum(), None);
        assert_eq!(Rule::new(Limit::Limited(3)).hard_maximum(), Some(3));
        assert_eq!(Rule::new(Limit::Unlimited).hard_maximum(), None);
        let edge = Rule::new(Limit::Limited(u64::MAX)).with_overage(Overage::Up(5));
        assert_eq!(edge.hard_maximum(), Some(u64::MAX));
    }

    #[test]
    fn names_round_trip() {
        for per in RatePer::ALL {
            assert_eq!(RatePer::from_name(per.as_str()), Some(per));
        }
        assert_eq!(RatePer::from_name("week"), None);
        assert_eq!(RatePer::Minute.duration(), Duration::from_secs(60));
        for anchor in [Anchor::Calendar, Anchor::Subscription] {
            assert_eq!(Anchor::from_name(anchor.as_str()), Some(anchor));
        }
        assert_eq!(Anchor::from_name("stripe"), None);
        assert_eq!(
            serde_json::to_string(&[Overage::Off, Overage::Up(7), Overage::Unbounded]).unwrap(),
            "[0,7,null]"
        );
    }
}
