//! The generic cell rate algorithm: a [`Gcra`] rate and the pure step that decides one request.

use std::time::Duration;

/// The longest `per` a [`Gcra`] takes, in microseconds: 2^52 (about 142 years).
///
/// Every time a rate computes then stays below 2^63 microseconds for clocks before the year
/// 292,000, so nothing saturates, and below 2^53 (exact in a 64-bit float, as a Lua script keeps
/// numbers) for clocks before the year 2100.
const MAX_PER_US: u64 = 1 << 52;

/// How often a rate lets requests through: `max` per `per`, a burst of `burst` (1..=max).
///
/// The generic cell rate algorithm, as the `governor` crate keeps it: one number per key, the
/// *theoretical arrival time* (TAT) of the next request, in microseconds. Each request the rate
/// lets through moves it on by the *emission interval* `T = per / max`; a request is let through
/// while the TAT is no more than the *tolerance* `tau = T * (burst - 1)` ahead of now. A full
/// bucket (a TAT in the past, or never used) lets `burst` requests through at once, then one
/// every `T`. See [`Gcra::step`] and the [module docs](super).
///
/// `T` is kept in whole microseconds, rounded down: a rate whose interval is not a whole number
/// of microseconds (7 per second: 142,857.14 µs) lets requests through a little more often than
/// it says (7.00005 per second), never less often.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gcra {
    /// The emission interval `T`, in microseconds (at least 1).
    t_us: u64,
    /// The tolerance `tau = T * (burst - 1)`, in microseconds.
    tau_us: u64,
    /// The rate as given, for [`Gcra::max`], [`Gcra::per`] and [`Gcra::burst`].
    max: u64,
    per_us: u64,
    burst: u64,
}

impl Gcra {
    /// `max` requests per `per`, with a burst of `burst`; `None` when max or burst is 0, burst >
    /// max, or per is zero/too large.
    ///
    /// `per` is kept in whole microseconds (a fraction of a microsecond is dropped); it is "zero"
    /// below one microsecond and "too large" above 2^52 microseconds (about 142 years). A rate
    /// of more than one request per microsecond (`per / max` below 1 µs) is `None` too:
    /// 1,000,000 per second is the fastest.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_plans::rate::Gcra;
    ///
    /// let minute = Duration::from_secs(60);
    /// let rate = Gcra::new(60, minute, 10).expect("a valid rate");
    /// assert_eq!((rate.max(), rate.per(), rate.burst()), (60, minute, 10));
    /// assert_eq!(rate.emission_interval(), Duration::from_secs(1));
    /// assert_eq!(rate.tolerance(), Duration::from_secs(9));
    ///
    /// assert_eq!(Gcra::new(60, minute, 61), None);
    /// assert_eq!(Gcra::new(0, minute, 0), None);
    /// assert_eq!(Gcra::new(2_000_000, Duration::from_secs(1), 1), None);
    /// ```
    pub fn new(max: u64, per: Duration, burst: u64) -> Option<Gcra> {
        if max == 0 || burst == 0 || burst > max {
            return None;
        }
        let per_us = u64::try_from(per.as_micros())
            .ok()
            .filter(|us| (1..=MAX_PER_US).contains(us))?;
        let t_us = per_us / max;
        if t_us == 0 {
            return None;
        }
        // At most `per_us`, as `burst - 1 < max`: never `None`.
        let tau_us = t_us.checked_mul(burst - 1)?;
        Some(Gcra {
            t_us,
            tau_us,
            max,
            per_us,
            burst,
        })
    }

    /// How many requests each `per` lets through.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The period `max` is counted over (in whole microseconds).
    pub fn per(&self) -> Duration {
        Duration::from_micros(self.per_us)
    }

    /// How many requests a full bucket lets through at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The emission interval `T = per / max` (rounded down to a microsecond): how far each
    /// request moves the theoretical arrival time on.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.t_us)
    }

    /// The tolerance `tau = T * (burst - 1)`: how far ahead of now the theoretical arrival time
    /// may be for a request to pass.
    pub fn tolerance(&self) -> Duration {
        Duration::from_micros(self.tau_us)
    }

    /// The pure GCRA step: given the stored theoretical arrival time (µs; 0 = never used) and now
    /// (µs), the decision and the new TAT to store (None when refused: store nothing).
    ///
    /// A request is let through when `max(tat, now) - now <= tau`; the new TAT is then
    /// `max(tat, now) + T`. Any `u64`s are accepted: nothing panics or wraps (sums saturate, which
    /// only happens for clocks past the year 292,000).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_plans::rate::{Gcra, RateDecision};
    ///
    /// // 2 per second, a burst of 2: T = 500 ms, tau = 500 ms.
    /// let rate = Gcra::new(2, Duration::from_secs(1), 2).expect("a valid rate");
    /// let now = 1_000_000_000; // µs
    ///
    /// let (first, tat) = rate.step(0, now);
    /// assert_eq!(first, RateDecision::Allowed { remaining: 1, reset_ms: 500 });
    /// let (second, tat) = rate.step(tat.unwrap(), now);
    /// assert_eq!(second, RateDecision::Allowed { remaining: 0, reset_ms: 1000 });
    /// let (third, nothing) = rate.step(tat.unwrap(), now);
    /// assert_eq!(third, RateDecision::Limited { retry_after_ms: 500 });
    /// assert_eq!(nothing, None);
    /// ```
    pub fn step(&self, tat_us: u64, now_us: u64) -> (RateDecision, Option<u64>) {
        let start = tat_us.max(now_us);
        let ahead = start - now_us;
        if ahead > self.tau_us {
            // The next request fits once `ahead` is down to `tau`: at least 1 µs away.
            let wait_us = ahead - self.tau_us;
            let retry_after_ms = wait_us.div_ceil(1000).max(1);
            return (RateDecision::Limited { retry_after_ms }, None);
        }
        // After this one, the `k`-th request at `now` passes while `ahead + k * T <= tau`.
        let remaining = (self.tau_us - ahead) / self.t_us;
        let tat = start.saturating_add(self.t_us);
        let reset_ms = (tat - now_us).div_ceil(1000);
        (
            RateDecision::Allowed {
                remaining,
                reset_ms,
            },
            Some(tat),
        )
    }

    /// The TAT to store to give back one request that [`step`](Gcra::step) let through: `tat - T`
    /// (saturating at 0, "never used").
    ///
    /// Given back right after the step that took it (nothing else stepped in between), every
    /// later step at that time or after decides as if the request had never been taken. See
    /// [`RateStore::refund`](super::RateStore::refund) for steps in between.
    pub fn refund(&self, tat_us: u64) -> u64 {
        tat_us.saturating_sub(self.t_us)
    }
}

/// What a rate decided for one request: see [`Gcra::step`] and
/// [`RateStore::acquire`](super::RateStore::acquire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Let through: `remaining` requests could follow at once; the bucket is full again after
    /// `reset_ms`.
    Allowed {
        /// How many more requests the rate would let through right now (at most `burst - 1`).
        remaining: u64,
        /// Milliseconds until the bucket is full again (`burst` requests at once), rounded up.
        reset_ms: u64,
    },
    /// Refused: the next request fits after `retry_after_ms` (at least 1).
    Limited {
        /// Milliseconds until a request fits, rounded up; at least 1.
        retry_after_ms: u64,
    },
}

impl RateDecision {
    /// Whether the request was let through.
    pub fn is_allowed(&self) -> bool {
        matches!(self, RateDecision::Allowed { .. })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    fn allowed(remaining: u64, reset_ms: u64) -> RateDecision {
        RateDecision::Allowed {
            remaining,
            reset_ms,
        }
    }

    fn limited(retry_after_ms: u64) -> RateDecision {
        RateDecision::Limited { retry_after_ms }
    }

    #[test]
    fn new_refuses_what_is_not_a_rate() {
        assert_eq!(Gcra::new(0, MINUTE, 1), None);
        assert_eq!(Gcra::new(60, MINUTE, 0), None);
        assert_eq!(Gcra::new(60, MINUTE, 61), None);
        assert_eq!(Gcra::new(1, Duration::ZERO, 1), None);
        assert_eq!(Gcra::new(1, Duration::from_nanos(999), 1), None);
        assert_eq!(Gcra::new(1, Duration::MAX, 1), None);
        assert_eq!(Gcra::new(1, Duration::from_micros(MAX_PER_US + 1), 1), None);
        assert_eq!(Gcra::new(1_000_001, SECOND, 1), None);
        assert_eq!(Gcra::new(u64::MAX, SECOND, u64::MAX), None);

        let fastest = Gcra::new(1_000_000, SECOND, 1_000_000).expect("1 per µs");
        assert_eq!(fastest.emission_interval(), Duration::from_micros(1));
        assert_eq!(fastest.tolerance(), Duration::from_micros(999_999));
        let slowest = Gcra::new(1, Duration::from_micros(MAX_PER_US), 1).expect("the longest");
        assert_eq!(slowest.per(), Duration::from_micros(MAX_PER_US));
        assert_eq!(slowest.tolerance(), Duration::ZERO);
        let widest = Gcra::new(MAX_PER_US, Duration::from_micros(MAX_PER_US), MAX_PER_US)
            .expect("1 per µs over the longest period");
        assert_eq!(widest.tolerance(), Duration::from_micros(MAX_PER_US - 1));
    }

    #[test]
    fn the_rate_reads_back_as_given_and_rounds_its_interval_down() {
        let rate = Gcra::new(7, SECOND, 3).expect("a valid rate");
        assert_eq!((rate.max(), rate.per(), rate.burst()), (7, SECOND, 3));
        assert_eq!(rate.emission_interval(), Duration::from_micros(142_857));
        assert_eq!(rate.tolerance(), Duration::from_micros(2 * 142_857));
        // A fraction of a microsecond of `per` is dropped.
        let rate = Gcra::new(1, Duration::from_nanos(1_500), 1).expect("a valid rate");
        assert_eq!(rate.per(), Duration::from_micros(1));
    }

    #[test]
    fn sixty_a_minute_lets_sixty_through_then_one_a_second() {
        let rate = Gcra::new(60, MINUTE, 60).expect("a valid rate");
        let now = 1_700_000_000_000_000;
        let mut tat = 0;
        for taken in 1..=60 {
            let (decision, next) = rate.step(tat, now);
            assert_eq!(decision, allowed(60 - taken, taken * 1000));
            tat = next.expect("stored");
        }
        assert_eq!(rate.step(tat, now), (limited(1000), None));
        assert_eq!(rate.step(tat, now + 999_999), (limited(1), None));
        assert_eq!(rate.step(tat, now + 999_001), (limited(1), None));
        assert_eq!(rate.step(tat, now + 999_000), (limited(1), None));
        assert_eq!(rate.step(tat, now + 998_999), (limited(2), None));
        let (decision, next) = rate.step(tat, now + 1_000_000);
        assert_eq!(decision, allowed(0, 60_000));
        assert_eq!(next, Some(tat + 1_000_000));
        // A minute later the bucket is full again.
        let (decision, _) = rate.step(tat, now + 60_000_000);
        assert_eq!(decision, allowed(59, 1000));
    }

    #[test]
    fn a_burst_smaller_than_max_lets_the_burst_through_then_the_rate() {
        // 60 a minute, at most 10 at once.
        let rate = Gcra::new(60, MINUTE, 10).expect("a valid rate");
        let now = 5_000_000;
        let mut tat = 0;
        for taken in 1..=10 {
            let (decision, next) = rate.step(tat, now);
            assert_eq!(decision, allowed(10 - taken, taken * 1000));
            tat = next.expect("stored");
        }
        assert_eq!(rate.step(tat, now), (limited(1000), None));
        // Then one a second: half a second in, still nothing.
        assert_eq!(rate.step(tat, now + 500_000), (limited(500), None));
        let (decision, next) = rate.step(tat, now + 1_000_000);
        assert_eq!(decision, allowed(0, 10_000));
        let tat = next.expect("stored");
        // 3.5 seconds on, three and a half have come back: this one and two more pass, and
        // the bucket is full 7.5 seconds after.
        let (decision, _) = rate.step(tat, now + 4_500_000);
        assert_eq!(decision, allowed(2, 7_500));
    }

    #[test]
    fn a_burst_of_one_spaces_requests_evenly() {
        let rate = Gcra::new(4, SECOND, 1).expect("a valid rate");
        let (decision, tat) = rate.step(0, 0);
        assert_eq!(decision, allowed(0, 250));
        let tat = tat.expect("stored");
        assert_eq!(rate.step(tat, 0), (limited(250), None));
        assert_eq!(rate.step(tat, 249_999), (limited(1), None));
        assert_eq!(rate.step(tat, 250_000).0, allowed(0, 250));
        // A stale clock (an earlier `now`) waits longer.
        assert_eq!(rate.step(tat, 0), (limited(250), None));
    }

    #[test]
    fn the_fastest_rate_counts_microseconds() {
        let rate = Gcra::new(1_000_000, SECOND, 3).expect("a valid rate");
        let now = 10_000_000;
        let (_, tat) = rate.step(0, now);
        let (_, tat) = rate.step(tat.expect("stored"), now);
        let (decision, tat) = rate.step(tat.expect("stored"), now);
        // 3 µs ahead: the bucket is full again within the millisecond.
        assert_eq!(decision, allowed(0, 1));
        let tat = tat.expect("stored");
        assert_eq!(rate.step(tat, now), (limited(1), None));
        assert!(rate.step(tat, now + 1).0.is_allowed());
    }

    #[test]
    fn refund_gives_back_one_interval_and_saturates() {
        let rate = Gcra::new(60, MINUTE, 60).expect("a valid rate");
        assert_eq!(rate.refund(5_000_000), 4_000_000);
        assert_eq!(rate.refund(999_999), 0);
        assert_eq!(rate.refund(0), 0);
    }

    #[test]
    fn edges_of_u64_neither_panic_nor_wrap() {
        let rates = [
            Gcra::new(1, SECOND, 1),
            Gcra::new(1_000_000, SECOND, 1_000_000),
            Gcra::new(1, Duration::from_micros(MAX_PER_US), 1),
            Gcra::new(MAX_PER_US, Duration::from_micros(MAX_PER_US), MAX_PER_US),
            Gcra::new(3, Duration::from_micros(MAX_PER_US), 2),
        ];
        let times = [
            0,
            1,
            999,
            1000,
            MAX_PER_US,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ];
        for rate in rates.into_iter().map(|rate| rate.expect("a valid rate")) {
            for &tat in &times {
                for &now in &times {
                    let (decision, next) = rate.step(tat, now);
                    match decision {
                        RateDecision::Allowed { remaining, .. } => {
                            assert!(remaining < rate.burst());
                            assert!(next.is_some_and(|next| next >= tat.max(now)));
                        }
                        RateDecision::Limited { retry_after_ms } => {
                            assert!(retry_after_ms >= 1);
                            assert_eq!(next, None);
                        }
                    }
                    let _ = rate.refund(tat);
                }
            }
        }
    }

    /// The textbook GCRA written the other way: the continuous-state leaky bucket of ITU-T
    /// I.371, a bucket level `x` that drains by the time elapsed since the last conforming
    /// request (`lct`) and fills by `T` for each conforming request, in signed wide integers.
    #[derive(Clone, Copy, Debug)]
    struct LeakyBucket {
        t: i128,
        limit: i128,
        x: i128,
        lct: i128,
    }

    impl LeakyBucket {
        fn new(max: u64, per_us: u64, burst: u64) -> Self {
            let t = i128::from(per_us / max);
            Self {
                t,
                limit: t * (i128::from(burst) - 1),
                x: 0,
                lct: 0,
            }
        }

        /// The level the bucket would have at `now`, drained, never below empty.
        fn level(&self, now: i128) -> i128 {
            (self.x - (now - self.lct)).max(0)
        }

        fn conforms(&self, now: i128) -> bool {
            self.level(now) <= self.limit
        }

        /// Takes a request at `now` if it conforms.
        fn arrive(&mut self, now: i128) -> bool {
            if !self.conforms(now) {
                return false;
            }
            self.x = self.level(now) + self.t;
            self.lct = now;
            true
        }
    }

    /// What the model decides at `now` (µs), each figure found by asking the model, not by the
    /// formulas of `step`: `remaining` by taking requests until one is refused, `reset_ms` as the
    /// first whole millisecond at which the bucket is empty, `retry_after_ms` as the first whole
    /// millisecond (at least 1) at which a request conforms.
    fn model_decision(bucket: &mut LeakyBucket, now: i128, burst: u64) -> RateDecision {
        let millis_until = |bucket: &LeakyBucket, ok: &dyn Fn(&LeakyBucket, i128) -> bool| {
            // The first `ms` that works, by doubling then bisecting.
            let mut high: i128 = 1;
            while !ok(bucket, now + high * 1000) {
                high *= 2;
            }
            let mut low = high / 2; // fails, or 0
            while high - low > 1 {
                let mid = (low + high) / 2;
                if ok(bucket, now + mid * 1000) {
                    high = mid;
                } else {
                    low = mid;
                }
            }
            if low == 0 && ok(bucket, now) {
                0
            } else {
                high
            }
        };
        if !bucket.arrive(now) {
            let retry = millis_until(bucket, &|b, at| b.conforms(at)).max(1);
            return limited(u64::try_from(retry).expect("small"));
        }
        let mut probe = *bucket;
        let mut remaining = 0;
        while remaining < burst && probe.arrive(now) {
            remaining += 1;
        }
        let reset = millis_until(bucket, &|b, at| b.level(at) == 0);
        allowed(remaining, u64::try_from(reset).expect("small"))
    }

    fn rate_strategy() -> impl Strategy<Value = (u64, u64, u64)> {
        let per = prop_oneof![
            Just(1_000_000u64),
            Just(60_000_000),
            Just(3_600_000_000),
            Just(86_400_000_000),
            1u64..=10_000_000,
        ];
        (per, 1u64..=2_000)
            .prop_filter("at most one per µs", |(per, max)| per / max >= 1)
            .prop_flat_map(|(per, max)| (Just(max), Just(per), 1..=max))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The step agrees with the leaky bucket on every decision and figure, also when the
        /// clock goes back a little (requests decided out of order).
        #[test]
        fn step_agrees_with_the_leaky_bucket(
            (max, per_us, burst) in rate_strategy(),
            start in 0u64..(1 << 51),
            moves in proptest::collection::vec((0u64..3_000_000, any::<bool>(), 0u8..8), 1..200),
        ) {
            let rate = Gcra::new(max, Duration::from_micros(per_us), burst).expect("valid");
            let mut model = LeakyBucket::new(max, per_us, burst);
            let mut tat = 0;
            let mut now = start;
            for (step, back, batch) in moves {
                // Mostly forward; now and then a little back, as a stale clock reads.
                now = if back { now.saturating_sub(step / 8) } else { now + step / 8 };
                for _ in 0..=batch {
                    let (decision, next) = rate.step(tat, now);
                    let expected = model_decision(&mut model, i128::from(now), burst);
                    prop_assert_eq!(decision, expected);
                    prop_assert_eq!(next.is_some(), decision.is_allowed());
                    if let Some(next) = next {
                        tat = next;
                    }
                    // The model's TAT is `lct + x`.
                    prop_assert_eq!(i128::from(tat).max(i128::from(now)), (model.lct + model.x).max(i128::from(now)));
                }
            }
        }

        /// Over any sequence of requests on a moving clock, no window of `per` lets more than
        /// `burst + max` through (`max` when the interval is exact and the window starts from a
        /// full bucket), and a full bucket always lets `burst` through.
        #[test]
        fn windows_of_per_let_at_most_burst_plus_max_through(
            (max, per_us, burst) in rate_strategy(),
            gaps in proptest::collection::vec(0u64..2_000_000, 1..400),
        ) {
            let rate = Gcra::new(max, Duration::from_micros(per_us), burst).expect("valid");
            let t = per_us / max;
            let mut tat = 0;
            let mut now = 1u64 << 40;
            let mut passed = Vec::new();
            for gap in gaps {
                now += gap % (2 * t + 1);
                if let (_, Some(next)) = rate.step(tat, now) {
                    tat = next;
                    passed.push(now);
                }
            }
            for (i, &from) in passed.iter().enumerate() {
                let within = passed[i..].iter().take_while(|&&at| at < from + per_us).count();
                // `burst` at once, then one per `T` over the window.
                let bound = burst + (per_us - 1) / t;
                prop_assert!(u64::try_from(within).expect("small") <= bound);
            }
            let (first, _) = rate.step(0, now);
            prop_assert_eq!(first, allowed(burst - 1, t.div_ceil(1000)));
        }
    }
}
