//! Block leases: counted requests over a remote usage store (Redis, Postgres) without a store
//! round trip per request while their counter is far from its limit.
//!
//! Without leases, every counted request pays two store calls (reserve, then commit or
//! release). [`Leased`] wraps any [`UsageStore`] and, for a counter far from its limit,
//! reserves a *block* of B units for this instance in one store call: a hold on the store like
//! any other (with the layer's lease), so `used + held <= max` still holds there and no other
//! instance can take those units (save for a renewal's round trip, below). Requests then
//! reserve, commit and release against the block in memory, with no store call.
//!
//! # Settlements
//!
//! The instance *settles* a block: it commits what the block spent and holds what it keeps
//! under a fresh lease (two store calls, off the requests' path: a hold of the rest, then the
//! commit of the old hold). Between the two calls the store holds the kept units twice: for that
//! one round trip `used + held` can pass `max` by them, and another instance's reservation near
//! the limit can be refused. Never the other way: no unit is free on the store while a block
//! still counts on it.
//! - On a timer: every [`settle_every`](LeasedBuilder::settle_every) (100 ms by default) for a
//!   block taken near its limit (smaller than [`block_max`](LeasedBuilder::block_max)), every
//!   [`settle_far_every`](LeasedBuilder::settle_far_every) (1 s by default) for one of the
//!   largest size: far from the limit no decision depends on it, and the other instances count
//!   the units as held until then. A lease half gone is renewed the same way.
//! - When a block is spent, or unused for an interval near its limit (ten far from it): it is
//!   committed once its requests end, and the rest given back; the next request takes a new
//!   block.
//! - When a request of the same counter has to go to the store (near the limit, under another
//!   limit, or with a line no block serves): this instance's blocks of the counter are committed
//!   or shrunk to what their requests hold first, so that the store's answer is exact.
//! - On [`Leased::settle`], [`Leased::settle_user`] (for an application that learns that a
//!   user's rights changed), [`Leased::shutdown`], and when the last clone is dropped inside a
//!   Tokio runtime.
//!
//! The settle interval must be well below the layer's
//! [`lease`](crate::PlanLimitLayerBuilder::lease) (minutes by default): a block that could not
//! be renewed for half its lease serves no more.
//!
//! # Block sizes
//!
//! `B = clamp(floor(remaining / (2 × instances)), 1, block_max)`, where `remaining` is
//! `max - used - held` as this instance last saw it and `instances` the estimate given to
//! [`instances`](LeasedBuilder::instances). An unlimited counter takes `block_max` units. A
//! request whose block would be a single unit (or smaller than its own cost) goes to the store
//! exactly as without leases: near its limit a counter is counted request by request, so item
//! counts near their limits (5 clients) never use blocks, and blocks serve high-volume quotas
//! and credit pools.
//!
//! # Guarantees
//!
//! - **Never an overshoot.** Every unit spent from a block is held on the store first.
//! - **False denials are bounded**: another instance's block parks at most B units; near the
//!   limit for about one settle interval (an unused block goes back then), far from it for ten
//!   (where the units parked are a small share of what is left). This instance's own parked
//!   units are given back before one of its requests goes to the store.
//! - **A crashed instance under-counts at most B units per counter it held a block of**: what
//!   it spent from a block and did not settle is lost when the block's lease ends (the lease of
//!   [`lease`](crate::PlanLimitLayerBuilder::lease)); its parked units come back then too. The
//!   requests it served from those units passed without being counted. A clean stop
//!   ([`Leased::shutdown`], or dropping the store inside a runtime) loses nothing.
//! - **The store unreachable**: a block keeps serving its units for at most half its lease
//!   (renewals fail meanwhile); a request that needs the store fails as without leases. What
//!   the blocks spent is settled once the store answers again, or lost with their leases,
//!   within the bound above.
//! - **Counts stay honest on this instance**: [`get`](UsageStore::get) (entitlements) and the
//!   counts a reservation answers (`RateLimit` headers) count what this instance spent from its
//!   blocks as used, settled or not, and only its requests in flight as held. Another
//!   instance's unsettled units show there as held until it settles.
//!
//! # Reservations of several lines
//!
//! A reservation with several lines (an action's limit and a credit pool) is served from blocks
//! only when every line has a block with room; otherwise the whole reservation goes to the
//! store, all or none as before. A line with grants (a pool topped up by one-off grants) always
//! goes to the store: the store keeps the order grants are spent in.
//!
//! # Commits off the response path
//!
//! Off by default, [`commit_in_background`](LeasedBuilder::commit_in_background) makes the
//! commit or release of a reservation that no block served (near a limit) in a task of its
//! own, in order per counter, so that the layer's response waits for no store call after the
//! handler. The hold covers the units until the commit lands, so no count passes its limit;
//! this instance still reads its own writes (a read waits for the commits of its counter),
//! while the other instances see the units as held rather than used until they land.
//!
//! # Runtime
//!
//! The settle timer runs on the Tokio runtime of the first reservation. Without a runtime the
//! store never takes blocks: every call goes to the wrapped store.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use tower_plans::lease::Leased;
//! use tower_plans::store::{Count, Counter, Hold, Line, ReservationId};
//! use tower_plans::{Catalog, MemoryStore, UsageStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_plans::BoxError> {
//! // In production the wrapped store is remote: `redis.usage_store()`, or a `PostgresStore`.
//! let remote = MemoryStore::new(Catalog::default());
//! let leased = Leased::builder(remote.clone())
//!     .block_max(50)
//!     .instances(4)
//!     .settle_every(Duration::from_millis(100))
//!     .build();
//!
//! // A pool of 10 000 credits: far from its limit, the first call takes a block of 50.
//! let calls = Counter::credits("ann", "calls");
//! let lease = Duration::from_secs(300);
//! for _ in 0..3 {
//!     let hold = Hold::new(ReservationId::new()).with(Line::new(calls.clone(), 1).limit(Some(10_000)));
//!     assert!(leased.reserve(&hold, lease).await?.is_reserved());
//!     leased.commit(&hold, &[]).await?;
//! }
//! // The store holds the block; this instance counts what it spent.
//! assert_eq!(remote.get(&calls).await?, Some(Count { used: 0, held: 50 }));
//! assert_eq!(leased.get(&calls).await?, Some(Count { used: 3, held: 0 }));
//!
//! // A clean stop settles: 3 used, the rest of the block given back.
//! leased.shutdown().await?;
//! assert_eq!(remote.get(&calls).await?, Some(Count { used: 3, held: 0 }));
//! # Ok(())
//! # }
//! ```

mod acquire;
mod background;
mod settle;
mod size;
mod slot;
mod state;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use state::{Config, Inner};

use crate::store::{BoxError, Count, Counter, Held, Hold, Seed, StoreFuture, UsageStore};

/// The default largest block: 64 units.
pub const DEFAULT_BLOCK_MAX: u64 = 64;

/// The default settle interval: 100 ms.
pub const DEFAULT_SETTLE_EVERY: Duration = Duration::from_millis(100);

/// The default settle interval of blocks far from their limits: 1 s.
pub const DEFAULT_SETTLE_FAR_EVERY: Duration = Duration::from_secs(1);

/// A [`UsageStore`] that serves counters far from their limits from blocks held on the
/// wrapped store; see the [module docs](self).
///
/// Cloning it is a pointer copy: clones share their blocks. Keep a clone to call
/// [`shutdown`](Self::shutdown) when the instance stops.
pub struct Leased<S: UsageStore> {
    inner: Arc<Inner<S>>,
}

impl<S: UsageStore> Leased<S> {
    /// `store` with block leases, with the default settings.
    pub fn new(store: S) -> Self {
        Self::builder(store).build()
    }

    /// A builder for `store` with block leases.
    pub fn builder(store: S) -> LeasedBuilder<S> {
        LeasedBuilder {
            store,
            config: Config {
                block_max: DEFAULT_BLOCK_MAX,
                settle_every: DEFAULT_SETTLE_EVERY,
                settle_far_every: DEFAULT_SETTLE_FAR_EVERY,
                in_background: false,
                instances: 1,
            },
        }
    }

    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Settles every block now: what they spent is committed and the rest given back (a block
    /// with requests in flight is settled when they end). New blocks are taken as needed.
    ///
    /// # Errors
    /// When the store fails to settle a block (it is retried at the next settlement).
    pub async fn settle(&self) -> Result<(), BoxError> {
        let jobs = self.inner.retire_all();
        if settle::run_all(&self.inner, jobs).await {
            Ok(())
        } else {
            Err("the usage store failed to settle a block".into())
        }
    }

    /// Settles the blocks of `user`'s counters now (those with requests in flight when they
    /// end): for an application that learns that the user's rights changed (a plan change, an
    /// admin action) and wants the other instances to see this one's units at once. A request
    /// under a changed limit settles its counter's block by itself.
    ///
    /// # Errors
    /// When the store fails to settle a block (it is retried at the next settlement).
    pub async fn settle_user(&self, user: &str) -> Result<(), BoxError> {
        let jobs = self.inner.flush_user(user);
        if settle::run_all(&self.inner, jobs).await {
            Ok(())
        } else {
            Err("the usage store failed to settle a block".into())
        }
    }

    /// Stops taking blocks and settles every block, waiting for the requests served from them
    /// to end; afterwards every reservation goes to the wrapped store. Call it when the
    /// instance stops (bound it with a timeout if requests may hang).
    ///
    /// # Errors
    /// When the store fails to settle blocks three times in a row; their leases free them.
    pub async fn shutdown(&self) -> Result<(), BoxError> {
        settle::shutdown(&self.inner).await
    }
}

impl<S: UsageStore> Clone for Leased<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: UsageStore> fmt::Debug for Leased<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leased")
            .field("block_max", &self.inner.config.block_max)
            .field("settle_every", &self.inner.config.settle_every)
            .field("settle_far_every", &self.inner.config.settle_far_every)
            .field("instances", &self.inner.config.instances)
            .field("commit_in_background", &self.inner.config.in_background)
            .finish_non_exhaustive()
    }
}

impl<S: UsageStore> UsageStore for Leased<S> {
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
        if let Some(held) = self.inner.try_local(hold, lease) {
            return StoreFuture::ready(Ok(held));
        }
        StoreFuture::new(acquire::reserve(&self.inner, hold, lease))
    }

    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
        match self.inner.end_local(hold, Some(spent)) {
            Some(jobs) => {
                drop(settle::spawn(&self.inner, jobs));
                StoreFuture::ready(Ok(()))
            }
            None if self.inner.config.in_background
                && background::queue(&self.inner, hold, Some(spent)) =>
            {
                StoreFuture::ready(Ok(()))
            }
            None => self.inner.store.commit(hold, spent),
        }
    }

    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
        match self.inner.end_local(hold, None) {
            Some(jobs) => {
                drop(settle::spawn(&self.inner, jobs));
                StoreFuture::ready(Ok(()))
            }
            None if self.inner.config.in_background
                && background::queue(&self.inner, hold, None) =>
            {
                StoreFuture::ready(Ok(()))
            }
            None => self.inner.store.release(hold),
        }
    }

    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
        StoreFuture::new(async move {
            let used = self.inner.store.adjust(counter, delta, seed).await?;
            Ok(used.saturating_add(self.inner.unsettled(counter)))
        })
    }

    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        StoreFuture::new(acquire::set(&self.inner, counter, used))
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        StoreFuture::new(acquire::get(&self.inner, counter))
    }

    fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
        self.inner.store.mark(counter, mark)
    }
}

/// Builds a [`Leased`] store; see [`Leased::builder`].
#[must_use]
pub struct LeasedBuilder<S> {
    store: S,
    config: Config,
}

impl<S: UsageStore> LeasedBuilder<S> {
    /// The largest block, in units (default [`DEFAULT_BLOCK_MAX`]). It bounds the units a
    /// crashed instance may leave uncounted per counter, and those parked away from the other
    /// instances. 1 (or 0) turns blocks off.
    pub fn block_max(mut self, units: u64) -> Self {
        self.config.block_max = units.max(1);
        self
    }

    /// How often every block is settled (default [`DEFAULT_SETTLE_EVERY`]): how long units
    /// spent here stay unseen by the other instances, and how long a block parks units it does
    /// not use. At least a millisecond.
    pub fn settle_every(mut self, every: Duration) -> Self {
        self.config.settle_every = every.max(Duration::from_millis(1));
        self
    }

    /// How often a block of the largest size ([`block_max`](Self::block_max): its counter was
    /// far from its limit when it was taken) commits what it spent (default
    /// [`DEFAULT_SETTLE_FAR_EVERY`]; rounded up to a multiple of
    /// [`settle_every`](Self::settle_every)). Far from the limit, no decision depends on it:
    /// until then the other instances count those units as held rather than used. The same as
    /// `settle_every` settles every block at every interval.
    pub fn settle_far_every(mut self, every: Duration) -> Self {
        self.config.settle_far_every = every;
        self
    }

    /// Whether a reservation that no block served is committed or released on the store in a
    /// task of its own, the call answering at once (default `false`): the layer's response
    /// then waits for no store call after the handler. The hold covers the units until the
    /// commit lands, so no count passes its limit. What changes, for that short while: on this
    /// instance a read of the counter ([`get`](UsageStore::get), entitlements) waits for the
    /// commit, so it still reads its own writes; on the others the units show as held, not
    /// used (the total is the same). A commit that fails is only logged (its lease frees the
    /// units, uncounted), and the layer's metrics count it as made. With
    /// [`block_max(1)`](Self::block_max) this is all the wrapper does.
    pub fn commit_in_background(mut self, yes: bool) -> Self {
        self.config.in_background = yes;
        self
    }

    /// How many instances share the store, an estimate (default 1): near a limit each
    /// instance's block is at most what is left divided by twice this number.
    pub fn instances(mut self, instances: u64) -> Self {
        self.config.instances = instances.max(1);
        self
    }

    /// The store.
    pub fn build(self) -> Leased<S> {
        Leased {
            inner: Arc::new(Inner::new(self.store, self.config)),
        }
    }
}

impl<S> fmt::Debug for LeasedBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeasedBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
