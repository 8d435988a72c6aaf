//! What one reservation holds ([`Hold`]: its [`Line`]s, each a counter, its limit, the units it
//! takes, where it starts and, for a credit pool, the grants it spills over to), what a store
//! answers ([`Held`]), and the one-counter shorthands of [`UsageStoreExt`].

use std::time::Duration;

use smallvec::SmallVec;

use super::usage::{Count, Counter, ReservationId, Reserve, Seed, UsageStore};
use super::StoreFuture;

/// One reservation: its id and its lines, reserved all or none.
///
/// A counted request holds one line (its action's counter, or its resource's items); a
/// request that draws credits holds the pool's line and, when its action also has a finite
/// limit, the action's line too. See [`UsageStore`] for what a store does with it.
///
/// ```
/// use tower_plans::store::{Counter, Hold, Line, ReservationId, Seed, Spill};
///
/// let id = ReservationId::new();
/// let hold = Hold::new(id)
///     .with(Line::new(Counter::credits("john", "ai"), 5).limit(Some(1000)).grant(
///         Spill::new(Counter::grant("john", "ai", "g1"), 500),
///     ))
///     .with(Line::new(Counter::action("john", "images", tower_plans::Action::Create), 1).limit(Some(50)));
/// assert_eq!(hold.lines().len(), 2);
/// assert_eq!(hold.lines()[0].units(), 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    id: ReservationId,
    lines: SmallVec<[Line; 2]>,
}

impl Hold {
    /// A reservation named `id`, with no lines yet.
    pub fn new(id: ReservationId) -> Self {
        Self {
            id,
            lines: SmallVec::new(),
        }
    }

    /// One unit of `counter` under `limit`, starting at `seed`: the reservation of a request
    /// counted on one counter.
    pub fn unit(counter: Counter, limit: Option<u64>, seed: Seed, id: ReservationId) -> Self {
        Hold::new(id).with(Line::new(counter, 1).limit(limit).seed(seed))
    }

    /// Adds `line`, builder style.
    #[must_use]
    pub fn with(mut self, line: Line) -> Self {
        self.lines.push(line);
        self
    }

    /// Adds `line`.
    pub fn push(&mut self, line: Line) {
        self.lines.push(line);
    }

    /// The reservation's id.
    pub fn id(&self) -> ReservationId {
        self.id
    }

    /// The lines, in order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }
}

/// One counter of a [`Hold`]: how many units it takes, under which limit, where it starts when
/// it does not exist yet, and (for a credit pool) the grants it spills over to once its limit
/// is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    counter: Counter,
    units: u64,
    limit: Option<u64>,
    seed: Seed,
    grants: Vec<Spill>,
}

impl Line {
    /// `units` of `counter`, unlimited, starting at 0, without grants.
    pub fn new(counter: Counter, units: u64) -> Self {
        Self {
            counter,
            units,
            limit: None,
            seed: Seed::Count(0),
            grants: Vec::new(),
        }
    }

    /// The limit (`None`: unlimited), builder style.
    #[must_use]
    pub fn limit(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }

    /// Where the counter starts when it does not exist yet, builder style.
    #[must_use]
    pub fn seed(mut self, seed: Seed) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a grant the line spills over to once its limit is reached, after those added
    /// before, builder style.
    #[must_use]
    pub fn grant(mut self, grant: Spill) -> Self {
        self.grants.push(grant);
        self
    }

    /// The counter.
    pub fn counter(&self) -> &Counter {
        &self.counter
    }

    /// The units the line takes.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The limit of the counter, `None` when unlimited.
    pub fn max(&self) -> Option<u64> {
        self.limit
    }

    /// Where the counter starts when it does not exist yet.
    pub fn start(&self) -> Seed {
        self.seed
    }

    /// The grants the line spills over to, in the order they are spent.
    pub fn grants(&self) -> &[Spill] {
        &self.grants
    }
}

/// A one-off grant of credits that a [`Line`] spills over to: its counter (a
/// [`Counted::Grant`](super::Counted::Grant), which never resets) and the amount it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spill {
    counter: Counter,
    amount: u64,
}

impl Spill {
    /// The grant counted on `counter`, of `amount` units.
    pub fn new(counter: Counter, amount: u64) -> Self {
        Self { counter, amount }
    }

    /// The grant's counter.
    pub fn counter(&self) -> &Counter {
        &self.counter
    }

    /// The amount it grants.
    pub fn amount(&self) -> u64 {
        self.amount
    }
}

/// What [`UsageStore::reserve`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// Every line is held. The count of each line's counter before the reservation, in the
    /// order of the lines (excluding the reservation itself when it was held already).
    Reserved(SmallVec<[Count; 2]>),
    /// Nothing is held: line `line` could not take its units. Its counter's count.
    Refused {
        /// The index of the line that could not take its units.
        line: usize,
        /// Its counter's count.
        count: Count,
    },
}

impl Held {
    /// Whether every line is held.
    pub fn is_reserved(&self) -> bool {
        matches!(self, Held::Reserved(_))
    }
}

/// One-counter shorthands over any [`UsageStore`]: a reservation of one unit, and its commit or
/// release. For tools and tests; the layer reserves [`Hold`]s.
///
/// ```
/// use std::time::Duration;
///
/// use tower_plans::store::{Counter, Reserve, ReservationId, Seed, UsageStoreExt};
/// use tower_plans::{Catalog, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_plans::BoxError> {
/// let store = MemoryStore::new(Catalog::default());
/// let exports = Counter::action("john", "reports", tower_plans::Action::custom("export"));
/// let id = ReservationId::new();
/// let lease = Duration::from_secs(60);
/// let reserved = store.reserve_unit(&exports, Some(2), Seed::Count(0), id, lease).await?;
/// assert_eq!(reserved, Reserve::Reserved { used: 0, held: 0 });
/// assert_eq!(store.commit_unit(&exports, id).await?, 1);
/// # Ok(())
/// # }
/// ```
pub trait UsageStoreExt: UsageStore {
    /// Reserves one unit of `counter` under `limit` for `id` (see [`UsageStore::reserve`]).
    fn reserve_unit<'a>(
        &'a self,
        counter: &'a Counter,
        limit: Option<u64>,
        seed: Seed,
        id: ReservationId,
        lease: Duration,
    ) -> StoreFuture<'a, Reserve> {
        let hold = Hold::unit(counter.clone(), limit, seed, id);
        StoreFuture::new(async move {
            Ok(match self.reserve(&hold, lease).await? {
                Held::Reserved(counts) => {
                    let count = counts.first().copied().unwrap_or_default();
                    Reserve::Reserved {
                        used: count.used,
                        held: count.held,
                    }
                }
                Held::Refused { count, .. } => Reserve::Refused {
                    used: count.used,
                    held: count.held,
                },
            })
        })
    }

    /// Commits the unit `id` holds on `counter`, and returns its used count after (see
    /// [`UsageStore::commit`]).
    fn commit_unit<'a>(&'a self, counter: &'a Counter, id: ReservationId) -> StoreFuture<'a, u64> {
        let hold = Hold::unit(counter.clone(), None, Seed::Count(0), id);
        StoreFuture::new(async move {
            self.commit(&hold, &[1]).await?;
            Ok(self.get(counter).await?.map_or(0, |count| count.used))
        })
    }

    /// Releases the unit `id` holds on `counter` (see [`UsageStore::release`]).
    fn release_unit<'a>(&'a self, counter: &'a Counter, id: ReservationId) -> StoreFuture<'a, ()> {
        let hold = Hold::unit(counter.clone(), None, Seed::Count(0), id);
        StoreFuture::new(async move { self.release(&hold).await })
    }
}

impl<T: UsageStore + ?Sized> UsageStoreExt for T {}
