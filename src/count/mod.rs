//! Counted usage in the layer: which counters a request reserves on ([`Tally`]), the
//! reservation that its response settles ([`Reservation`]), and the usage store they go to
//! ([`Counting`]).
//!
//! A governed, allowed request that is counted reserves one unit before the inner service is
//! called. Its [`Reservation`] then travels with the response future: a success commits it, any
//! other response or an inner error releases it, and a future dropped before the end releases it
//! too (or commits it, with `commit_dropped`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::alerts::Alerts;
use crate::metrics::{Call, Stopwatch};
use crate::store::{Count, Counter, Held, Seed, UsageStore};
use crate::timeout::{timed, StoreError};

mod meter;
mod settle;
mod tally;

pub use meter::Meter;
pub(crate) use settle::{Reservation, Settle};
pub(crate) use tally::{overage_counter, Tally};

/// Whether a response status commits a reservation.
pub(crate) type CommitWhen = dyn Fn(StatusCode) -> bool + Send + Sync + 'static;

/// The layer's counting configuration: the usage store and how reservations are settled.
pub(crate) struct Counting {
    pub(crate) store: Box<dyn UsageStore>,
    /// How long a reservation holds its unit when it is never settled (a crashed instance).
    pub(crate) lease: Duration,
    /// The time limit of each usage store call.
    pub(crate) timeout: Duration,
    /// Which responses commit (default: 2xx).
    pub(crate) commit_when: Option<Box<CommitWhen>>,
    /// Whether a response future dropped after the inner service was called commits (the
    /// handler may have written) instead of releasing.
    pub(crate) commit_dropped: bool,
    /// Usage alerts, when they are on.
    pub(crate) alerts: Option<Arc<Alerts>>,
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counting")
            .field("lease", &self.lease)
            .field("custom_commit_when", &self.commit_when.is_some())
            .field("commit_dropped", &self.commit_dropped)
            .finish_non_exhaustive()
    }
}

/// A usage store's answer to the reservation of a tally's hold, `None` when the tally reserves
/// nothing.
pub(crate) type Answer = Option<Held>;

/// What a reservation attempt found.
pub(crate) enum Outcome {
    /// Everything is held: `usage` is what the action's counter had before (used + held; the
    /// record's usage when the request reserves nothing on its action), `pool_usage` the pool's
    /// (0 without one), and `meter` the handle a handler reports on, for a reported meter.
    Reserved {
        reservation: Reservation,
        usage: u64,
        pool_usage: u64,
        meter: Option<Meter>,
    },
    /// The pool (`pool`) or the action's limit does not fit; `usage` is its counter's used +
    /// held.
    Refused { pool: bool, usage: u64 },
}

impl Counting {
    /// Reserves what `tally` needs when the store answers at once (an in-memory store); `None`
    /// when it has to be awaited with [`reserve`](Self::reserve).
    pub(crate) fn reserve_now(&self, tally: &Tally) -> Option<Result<Answer, StoreError>> {
        let Some(hold) = tally.hold() else {
            return Some(Ok(None));
        };
        let stopwatch = Stopwatch::start();
        // Not ready: dropped unpolled, and asked again by `reserve`.
        let answer = self.store.reserve(hold, self.lease).into_ready().ok()?;
        stopwatch.stop_now(Call::RESERVE, &answer);
        Some(answer.map(Some).map_err(StoreError::Failed))
    }

    /// Reserves what `tally` needs (a delete without a finite limit reserves nothing).
    ///
    /// # Errors
    /// When the usage store fails or times out; nothing is held then.
    pub(crate) async fn reserve(self: &Arc<Self>, tally: &Tally) -> Result<Answer, StoreError> {
        let Some(hold) = tally.hold() else {
            return Ok(None);
        };
        let call = self.store.reserve(hold, self.lease);
        match timed(Call::RESERVE, self.timeout, call).await {
            Ok(held) => Ok(Some(held)),
            Err(error) => {
                // A remote store may have applied a reservation whose answer was lost or came
                // too late: release the id (idempotent) rather than leave the units held until
                // its lease ends.
                settle::release_detached(Arc::clone(self), hold.clone());
                Err(error)
            }
        }
    }

    /// The count that `tally` would reserve against (used + held), or what its seed says when
    /// the counter does not exist yet; the record's usage when it reserves nothing.
    ///
    /// # Errors
    /// When the usage store fails or times out.
    pub(crate) async fn usage(&self, tally: &Tally) -> Result<u64, StoreError> {
        let Some((counter, seed)) = tally.counter() else {
            return Ok(tally.unreserved_usage);
        };
        if let Some(count) = timed(Call::GET, self.timeout, self.store.get(counter)).await? {
            return Ok(count.total());
        }
        let Seed::Items(start) = seed else {
            return Ok(seed.count());
        };
        // The counter follows the item counter until it exists.
        let items = Counter::items(Arc::clone(&counter.user), counter.resource.clone());
        let count = timed(Call::GET, self.timeout, self.store.get(&items)).await?;
        Ok(count.map_or(start, |count| count.used))
    }

    /// What `counter` holds when the store answers at once; `None` when it has to be awaited
    /// with [`count`](Self::count).
    pub(crate) fn count_now(&self, counter: &Counter) -> Option<Result<Option<Count>, StoreError>> {
        let answer = self.store.get(counter).into_ready().ok()?;
        Some(answer.map_err(StoreError::Failed))
    }

    /// What `counter` holds (used and held), `None` when it does not exist.
    ///
    /// # Errors
    /// When the usage store fails or times out.
    pub(crate) async fn count(&self, counter: &Counter) -> Result<Option<Count>, StoreError> {
        timed(Call::GET, self.timeout, self.store.get(counter)).await
    }

    /// What the store's `answer` to `tally` means for the request.
    pub(crate) fn conclude(self: &Arc<Self>, tally: Tally, answer: Answer) -> Outcome {
        let total = |counts: &[Count], line: Option<usize>| {
            line.and_then(|line| counts.get(line))
                .map(|count| count.total())
        };
        let (hold, usage, pool_usage) = match answer {
            Some(Held::Reserved(counts)) => {
                let usage = total(&counts, tally.action_line).unwrap_or(tally.unreserved_usage);
                let pool_usage = total(&counts, tally.pool_line).unwrap_or(0);
                (Some(tally.hold), usage, pool_usage)
            }
            Some(Held::Refused { line, count }) => {
                return Outcome::Refused {
                    pool: tally.pool_line == Some(line),
                    usage: count.total(),
                }
            }
            None => (None, tally.unreserved_usage, 0),
        };
        let meter = tally.reported_line.map(|_| Meter::new());
        let reported = tally.reported_line.zip(meter.clone());
        Outcome::Reserved {
            reservation: Reservation::new(Arc::clone(self), hold, tally.items, reported),
            usage,
            pool_usage,
            meter,
        }
    }

    fn commits(&self, status: StatusCode) -> bool {
        match &self.commit_when {
            Some(commit_when) => commit_when(status),
            None => status.is_success(),
        }
    }
}
