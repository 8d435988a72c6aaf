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

use crate::metrics::{Call, Stopwatch};
use crate::store::{Counter, Held, Hold, ReservationId, Seed, UsageStore};
use crate::timeout::{timed, StoreError};

mod settle;
mod tally;

pub(crate) use settle::{Reservation, Settle};
pub(crate) use tally::Tally;

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

/// A usage store's answer to a reservation: what was reserved and what the store said, or
/// `None` when the tally reserves nothing.
pub(crate) type Answer = Option<(Hold, Held)>;

/// What a reservation attempt found.
pub(crate) enum Outcome {
    /// Everything is held; `usage` is what the first line's counter had before (used + held).
    Reserved {
        reservation: Reservation,
        usage: u64,
    },
    /// Line `line` does not fit; `usage` is its counter's used + held.
    Refused { line: usize, usage: u64 },
}

impl Counting {
    /// Reserves what `tally` needs when the store answers at once (an in-memory store); `None`
    /// when it has to be awaited with [`reserve`](Self::reserve).
    pub(crate) fn reserve_now(&self, tally: &Tally) -> Option<Result<Answer, StoreError>> {
        let Some(hold) = tally.hold(ReservationId::new()) else {
            return Some(Ok(None));
        };
        let stopwatch = Stopwatch::start();
        // Not ready: dropped unpolled, and asked again by `reserve`.
        let answer = self.store.reserve(&hold, self.lease).into_ready().ok()?;
        stopwatch.stop_now(Call::RESERVE, &answer);
        Some(
            answer
                .map(|held| Some((hold, held)))
                .map_err(StoreError::Failed),
        )
    }

    /// Reserves what `tally` needs (a delete without a finite limit reserves nothing).
    ///
    /// # Errors
    /// When the usage store fails or times out; nothing is held then.
    pub(crate) async fn reserve(self: &Arc<Self>, tally: &Tally) -> Result<Answer, StoreError> {
        let Some(hold) = tally.hold(ReservationId::new()) else {
            return Ok(None);
        };
        let call = self.store.reserve(&hold, self.lease);
        match timed(Call::RESERVE, self.timeout, call).await {
            Ok(held) => Ok(Some((hold, held))),
            Err(error) => {
                // A remote store may have applied a reservation whose answer was lost or came
                // too late: release the id (idempotent) rather than leave the units held until
                // its lease ends.
                settle::release_detached(Arc::clone(self), hold);
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
        let items = Counter::items(Arc::clone(&counter.user), Arc::clone(&counter.resource));
        let count = timed(Call::GET, self.timeout, self.store.get(&items)).await?;
        Ok(count.map_or(start, |count| count.used))
    }

    /// What the store's `answer` to `tally` means for the request.
    pub(crate) fn conclude(self: &Arc<Self>, tally: Tally, answer: Answer) -> Outcome {
        let (hold, usage) = match answer {
            Some((hold, Held::Reserved(counts))) => {
                let usage = counts.first().map_or(0, |count| count.total());
                (Some(hold), usage)
            }
            Some((_, Held::Refused { line, count })) => {
                return Outcome::Refused {
                    line,
                    usage: count.total(),
                }
            }
            None => (None, tally.unreserved_usage),
        };
        Outcome::Reserved {
            reservation: Reservation::new(Arc::clone(self), hold, tally.items),
            usage,
        }
    }

    fn commits(&self, status: StatusCode) -> bool {
        match &self.commit_when {
            Some(commit_when) => commit_when(status),
            None => status.is_success(),
        }
    }
}
