//! Counted usage: the [`UsageStore`] trait, the [`Counter`] it keys by and the
//! [`ReservationId`]s of its reservations.
//!
//! A request under a finite limit first *reserves* one unit of its counter, which succeeds only if
//! `used + held + 1 <= limit`, atomically; after the response it *commits* the unit (it becomes
//! used) or *releases* it (nothing happened). Concurrent requests at `limit - 1` therefore let
//! exactly one through, and a failed request costs nothing.
//! [`count_usage`](crate::PlanLimitLayerBuilder::count_usage) describes how the layer uses it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use tower_plans::{Catalog, MemoryStore, PlanStore, store::{Counter, Reserve, ReservationId, Seed, UsageStoreExt}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_plans::BoxError> {
//! let store = MemoryStore::new(Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#)?);
//! store.set_usage("john", "clients", 2);
//!
//! // A create under the limit of 3: one unit is left, and this request holds it.
//! let clients = Counter::items("john", "clients");
//! let lease = Duration::from_secs(300);
//! let first = ReservationId::new();
//! let reserved = store.reserve_unit(&clients, Some(3), Seed::Count(0), first, lease).await?;
//! assert_eq!(reserved, Reserve::Reserved { used: 2, held: 0 });
//!
//! // A concurrent create finds nothing left.
//! let second = ReservationId::new();
//! let refused = store.reserve_unit(&clients, Some(3), Seed::Count(0), second, lease).await?;
//! assert_eq!(refused, Reserve::Refused { used: 2, held: 1 });
//! assert_eq!(refused.usage(), 3);
//!
//! // The first create succeeded: its unit becomes used, and the record shows it.
//! assert_eq!(store.commit_unit(&clients, first).await?, 3);
//! let john = store.user("john").await?.expect("john has a record");
//! assert_eq!(john.usage.count("clients"), Some(3));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::hold::{Held, Hold};
#[cfg(doc)]
use super::hold::{Line, Spill, UsageStoreExt};
use super::StoreFuture;
use crate::catalog::{Action, Window};
use crate::decision::Name;

/// Which count a [`Counter`] keeps: a resource's items, or one action's successful calls.
///
/// See [`UsageStore`] for how a reservation uses it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Counted {
    /// How many items of the resource the user has: up by one on a successful create, down by
    /// one on a successful delete.
    Items,
    /// How many successful calls of this action the user made.
    Action(Action),
    /// The credits the user drew from a pool: the counter's `resource` is the pool's name.
    Credits,
    /// The credits the user spent from one-off grant `id` of a pool (the counter's
    /// `resource`), which never resets.
    Grant(Arc<str>),
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Counted::Items => f.write_str("items"),
            Counted::Action(action) => f.write_str(action.as_str()),
            Counted::Credits => f.write_str("credits"),
            Counted::Grant(id) => write!(f, "grant:{id}"),
        }
    }
}

/// The key of one counter: whose, which resource, what it counts and, for a quota that resets,
/// in which period.
///
/// Build one with [`Counter::items`] or [`Counter::action`], and [`Counter::in_period`] for a
/// period counter. It displays as `user/resource/counted` (`john/clients/items`), with the
/// period after an `@` (`john/reports/create@2026-11`), for logs.
///
/// A period counter is a counter of its own: it starts from nothing in each period (the layer
/// seeds it with 0), and the counters of earlier periods are no longer read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Counter {
    /// The user's id.
    pub user: Arc<str>,
    /// The resource's name, as the catalog spells it (a credit pool's, for
    /// [`Counted::Credits`] and [`Counted::Grant`]).
    pub resource: Name,
    /// What is counted.
    pub counted: Counted,
    /// The period of a [`Limit::Periodic`](crate::catalog::Limit::Periodic) quota's counter;
    /// `None` for a count that never resets.
    pub period: Option<Window>,
}

impl Counter {
    /// The count of `user`'s items of `resource`.
    pub fn items(user: impl Into<Arc<str>>, resource: impl Into<Name>) -> Self {
        Self {
            user: user.into(),
            resource: resource.into(),
            counted: Counted::Items,
            period: None,
        }
    }

    /// The count of `user`'s successful `action` calls on `resource`.
    ///
    /// An [`Action::Custom`] carrying a REST name is that REST action
    /// (`Action::Custom("destroy")` counts [`Action::Delete`]), as in the catalog and in
    /// [`Usage`](crate::subscriber::Usage).
    pub fn action(user: impl Into<Arc<str>>, resource: impl Into<Name>, action: Action) -> Self {
        Self {
            user: user.into(),
            resource: resource.into(),
            counted: Counted::Action(action.normalised().into_owned()),
            period: None,
        }
    }

    /// The credits `user` drew from `pool`.
    pub fn credits(user: impl Into<Arc<str>>, pool: impl Into<Name>) -> Self {
        Self {
            user: user.into(),
            resource: pool.into(),
            counted: Counted::Credits,
            period: None,
        }
    }

    /// The credits `user` spent from the one-off grant `id` of `pool`.
    pub fn grant(
        user: impl Into<Arc<str>>,
        pool: impl Into<Name>,
        id: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            user: user.into(),
            resource: pool.into(),
            counted: Counted::Grant(id.into()),
            period: None,
        }
    }

    /// The same count, kept per period: the counter of `window` (see
    /// [`Period::window`](crate::catalog::Period::window)).
    #[must_use]
    pub fn in_period(mut self, window: Window) -> Self {
        self.period = Some(window);
        self
    }

    /// Until when a store keeps the alert markers of this counter
    /// ([`UsageStore::mark`]), in milliseconds since the Unix epoch: one period's length after
    /// its period ends (a calendar month's markers, a month after the month), long after the
    /// last late commit of the period; `None` for a counter without a period, whose markers
    /// are kept for good.
    pub fn marks_kept_until(&self) -> Option<u64> {
        self.period.map(|window| {
            let length = window.end().saturating_sub(window.start());
            window.end().saturating_add(length)
        })
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.user, self.resource, self.counted)?;
        match &self.period {
            Some(window) => write!(f, "@{window}"),
            None => Ok(()),
        }
    }
}

/// The id of one reservation: unique across processes, so that a store shared by several
/// instances can tell their reservations apart, and a retried call can be recognised.
///
/// [`ReservationId::new`] joins a random 64-bit prefix, drawn once per process, to a 64-bit
/// sequence number, unique in the process. It displays as 32 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(u128);

impl ReservationId {
    /// A fresh id, different from every other one this process made and, with overwhelming
    /// likelihood, from those of other processes.
    // No `Default`: a default value that differs on every call would surprise.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(u128::from(process_prefix()) << 64 | u128::from(next_sequence()))
    }

    /// The id with this value (one read back from a remote store, say).
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// The id's value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

/// The low half of a new reservation id: unique in the process.
fn next_sequence() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The random high half of this process's reservation ids.
///
/// `RandomState` draws its keys from the operating system's randomness; the process id, the
/// time and the thread are hashed in as well, for platforms where those keys are weak.
fn process_prefix() -> u64 {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        std::process::id().hash(&mut hasher);
        std::time::SystemTime::now().hash(&mut hasher);
        std::thread::current().id().hash(&mut hasher);
        hasher.finish()
    })
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReservationId({self})")
    }
}

/// A counter's state: the used count and the units held by live reservations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Count {
    /// The units used (committed, adjusted or set).
    pub used: u64,
    /// The units held by reservations neither committed, released nor expired.
    pub held: u64,
}

impl Count {
    /// `used + held`, what counts against a limit (saturating).
    pub fn total(&self) -> u64 {
        self.used.saturating_add(self.held)
    }
}

/// Where a counter that does not exist yet starts: what the subscriber record gives it, as the
/// decision reads the record.
///
/// A resource's plain count (`"projects": 5`) is its item count and the usage of every action
/// without a count of its own. So the counter of such an action, until it exists, reads the
/// item count as the usage store has it: [`Seed::Items`]. Every other counter starts at a
/// number: [`Seed::Count`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seed {
    /// This count.
    Count(u64),
    /// For a counter without a period: the used count of the same user's [`Counted::Items`]
    /// counter of the same resource (without a period) when that counter exists, else this
    /// count. A period counter starts at this count.
    Items(u64),
}

impl Seed {
    /// The count to start at when the item counter does not exist (or is not asked).
    pub fn count(self) -> u64 {
        match self {
            Seed::Count(count) | Seed::Items(count) => count,
        }
    }

    /// Whether the counter starts at the item count.
    pub fn follows_items(self) -> bool {
        matches!(self, Seed::Items(_))
    }
}

impl From<u64> for Seed {
    /// [`Seed::Count`].
    fn from(count: u64) -> Self {
        Seed::Count(count)
    }
}

/// The outcome of [`UsageStore::reserve`], with the counter's state as seen *before* this
/// reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reserve {
    /// One unit is now held for the reservation: `used + held + 1 <= limit` held.
    Reserved {
        /// The used count.
        used: u64,
        /// The units held by other reservations.
        held: u64,
    },
    /// Nothing is held: `used + held` already reached the limit.
    Refused {
        /// The used count.
        used: u64,
        /// The units held by other reservations.
        held: u64,
    },
}

impl Reserve {
    /// Whether a unit is held.
    pub fn is_reserved(&self) -> bool {
        matches!(self, Reserve::Reserved { .. })
    }

    /// The counter's state before this reservation.
    pub fn count(&self) -> Count {
        match *self {
            Reserve::Reserved { used, held } | Reserve::Refused { used, held } => {
                Count { used, held }
            }
        }
    }

    /// `used + held` before this reservation: the usage a denial reports.
    pub fn usage(&self) -> u64 {
        self.count().total()
    }
}

/// The pluggable store of counted usage: counters and their reservations.
///
/// A counter ([`Counter`]) holds a *used* count and units *held* by reservations. A reservation
/// ([`Hold`]) takes units on one or more counters at once ([`Line`]s), all or none, atomically:
/// two concurrent reservations never both take the last units. [`MemoryStore`](crate::MemoryStore)
/// implements it in memory, beside its subscriber records; a store shared by several instances
/// (Redis) implements it remotely. Each method returns a [`StoreFuture`], ready at once or to be
/// awaited (see [implementing a store](super#implementing-a-store)). [`UsageStoreExt`] adds
/// one-counter shorthands.
///
/// # Seeds
///
/// A counter that does not exist yet starts at the [`Seed`] that [`reserve`](Self::reserve) and
/// [`adjust`](Self::adjust) are given: the count the subscriber record shows, so that an
/// application that kept its own counts moves to counted usage without a data move. A
/// reservation creates the counters it holds units on; a refused one creates nothing. Once a
/// counter exists, its count is the truth and later seeds are ignored.
///
/// # Reservations
///
/// A reservation is named by its [`ReservationId`]. Reserving, committing and releasing are
/// idempotent by id: a retried call does nothing more than the first one did. A reservation that
/// is neither committed nor released expires after its lease, so that a crashed instance does
/// not hold units for ever; an expired reservation is forgotten, and committing it afterwards
/// counts nothing (see [`commit`](Self::commit)).
///
/// ## Lines and grants
///
/// A line takes its `units` on its counter: it fits when its limit is unlimited or
/// `used + held + units <= limit`, `held` being the units of the counter's live reservations.
///
/// A line with grants (a credit pool and the one-off grants that top it up, [`Spill`]) takes
/// what fits under its limit on its counter, `min(units, limit - used - held)`, and the rest
/// from its grants in their order, from each what its room allows (`amount - used - held` of
/// the grant's counter): it fits when its grants cover the rest. An unlimited line takes
/// everything on its counter.
///
/// The reservation holds the parts each line took, under its id, on each counter (a part of 0
/// holds nothing), or nothing at all when a line does not fit.
///
/// Errors are boxed; the layer logs their text and never sends it to a client.
///
/// # Example
///
/// A request's reservation from start to end, and one of a request that failed:
///
/// ```
/// use std::time::Duration;
///
/// use tower_plans::{Action, Catalog, MemoryStore, UsageStore};
/// use tower_plans::store::{Count, Counter, Hold, ReservationId, Seed};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_plans::BoxError> {
/// let store = MemoryStore::new(Catalog::from_json(
///     r#"{"actions": ["export"], "plans": [{"name": "free", "reports": {"export": 2}}]}"#,
/// )?);
/// let exports = Counter::action("john", "reports", Action::custom("export"));
/// let lease = Duration::from_secs(300);
///
/// // The first export: reserved, the handler succeeds, committed.
/// let first = Hold::unit(exports.clone(), Some(2), Seed::Count(0), ReservationId::new());
/// assert!(store.reserve(&first, lease).await?.is_reserved());
/// store.commit(&first, &[1]).await?;
/// // A retried commit counts nothing more.
/// store.commit(&first, &[1]).await?;
/// assert_eq!(store.get(&exports).await?, Some(Count { used: 1, held: 0 }));
///
/// // The second: reserved, the handler fails, released: it costs nothing.
/// let second = Hold::unit(exports.clone(), Some(2), Seed::Count(0), ReservationId::new());
/// assert!(store.reserve(&second, lease).await?.is_reserved());
/// assert_eq!(store.get(&exports).await?, Some(Count { used: 1, held: 1 }));
/// store.release(&second).await?;
/// assert_eq!(store.get(&exports).await?, Some(Count { used: 1, held: 0 }));
/// # Ok(())
/// # }
/// ```
pub trait UsageStore: Send + Sync + 'static {
    /// Reserves every line of `hold` (see [Lines and grants](UsageStore#lines-and-grants)) for
    /// its id, all or none, atomically, until [`commit`](Self::commit),
    /// [`release`](Self::release) or the end of `lease`, whichever comes first.
    ///
    /// Answers [`Held::Reserved`] with each line's count before (used, and held by other
    /// reservations), or [`Held::Refused`] with the first line that does not fit and its
    /// count, holding nothing.
    ///
    /// A counter that does not exist yet counts from its line's seed (see the
    /// [trait docs](UsageStore#seeds)); a refusal leaves it as it was.
    ///
    /// Reserving an id that is already held holds nothing more, renews its lease and answers
    /// [`Held::Reserved`] with the counts of the other reservations. An id is remembered only
    /// while it is held: once committed, released or expired, reserving it again is a new
    /// reservation.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held>;

    /// Commits what `hold` held: each line `i` spent `spent[i]` units (its held units when
    /// `spent` is shorter), which become used, and the rest of its hold is released.
    ///
    /// A line's spent units are counted on the parts it held first, in order: its counter,
    /// then its grants. Units spent beyond what it held go to its counter while its limit
    /// allows, then to its grants while their amounts allow, and the rest to its counter past
    /// its limit: the work is done, and the next reservation finds less.
    ///
    /// Idempotent: committing an id that is not held (unknown, already committed or released,
    /// or expired) changes nothing. A reservation whose lease has passed is not counted: its
    /// units may already have gone to another request, and counting them would need the store
    /// to remember every settled id.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()>;

    /// Gives back everything `hold` held. Idempotent: releasing an id that is not held does
    /// nothing.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()>;

    /// Adds `delta` (negative to subtract) to the used count, saturating at 0 and at
    /// `u64::MAX`, starting a counter that does not exist yet at `seed`. Returns the used
    /// count after. Holds are not touched.
    ///
    /// The layer subtracts one from a resource's [`Counted::Items`] on a successful delete;
    /// applications that change counts themselves (imports, admin tools) use it too.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64>;

    /// Sets the used count, creating the counter if need be. Holds are not touched.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()>;

    /// The used count and the units held by live reservations, or `None` when the counter does
    /// not exist yet (its count is then what its seed says).
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>>;

    /// Sets the marker `mark` on `counter` (of its period, for a period counter) and answers
    /// whether it was not set before: `true` for exactly one call per counter, period and
    /// marker, across every instance that shares the store, however many call at once. Usage
    /// alerts use it so that each threshold fires once
    /// ([`alerts`](crate::PlanLimitLayerBuilder::alerts)). A marker of a period counter may be
    /// forgotten once the period is over; the stores of the crate keep it until
    /// [`Counter::marks_kept_until`]. A marker is one counter's: where a store keeps two
    /// counters as one (the items and the `create` action), they share their markers too.
    ///
    /// The memory store keeps markers beside its counters, the Redis store in a hash per
    /// counter (`HSETNX`), the Postgres store in the table `alert_marks`
    /// (`INSERT ... ON CONFLICT DO NOTHING`).
    ///
    /// The default keeps no markers and fails, so that a store written before alerts existed
    /// still builds: its alerts are logged as failed, never fired twice.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly; the default always.
    fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
        let _ = (counter, mark);
        StoreFuture::ready(Err("this usage store keeps no alert markers".into()))
    }
}

/// Forwards every method of [`UsageStore`] through a smart pointer.
macro_rules! forward_usage_store {
    ($($pointer:ident),+) => {$(
        impl<T: UsageStore + ?Sized> UsageStore for $pointer<T> {
            fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
                (**self).reserve(hold, lease)
            }

            fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
                (**self).commit(hold, spent)
            }

            fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
                (**self).release(hold)
            }

            fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
                (**self).adjust(counter, delta, seed)
            }

            fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
                (**self).set(counter, used)
            }

            fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
                (**self).get(counter)
            }

            fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
                (**self).mark(counter, mark)
            }
        }
    )+};
}

forward_usage_store!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_ids_are_distinct_and_share_the_process_prefix() {
        let ids: Vec<ReservationId> = (0..1000).map(|_| ReservationId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        let prefix = ids[0].as_u128() >> 64;
        assert!(ids.iter().all(|id| id.as_u128() >> 64 == prefix));
        // Drawn at random: a zero prefix is a sign it was not.
        assert_ne!(prefix, 0);
    }

    #[test]
    fn reservation_ids_from_many_threads_are_distinct() {
        let mut ids: Vec<ReservationId> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..500).map(|_| ReservationId::new()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().expect("no panic"))
                .collect()
        });
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 2000);
    }

    #[test]
    fn reservation_id_round_trips_and_displays_in_hex() {
        let id = ReservationId::from_u128(0xabc);
        assert_eq!(id.as_u128(), 0xabc);
        assert_eq!(id.to_string(), "00000000000000000000000000000abc");
        assert_eq!(
            format!("{id:?}"),
            "ReservationId(00000000000000000000000000000abc)"
        );
        assert_eq!(ReservationId::from_u128(u128::MAX).to_string().len(), 32);
    }

    #[test]
    fn counter_constructors_and_display() {
        let items = Counter::items("john", "clients");
        assert_eq!(&*items.user, "john");
        assert_eq!(&*items.resource, "clients");
        assert_eq!(items.counted, Counted::Items);
        assert_eq!(items.to_string(), "john/clients/items");

        let show = Counter::action("john", "tasks", Action::Show);
        assert_eq!(show.counted, Counted::Action(Action::Show));
        assert_eq!(show.to_string(), "john/tasks/show");

        let archive = Counter::action("john", "tasks", Action::custom("archive"));
        assert_eq!(archive.to_string(), "john/tasks/archive");
    }

    #[test]
    fn counter_action_reads_a_custom_rest_name_as_the_rest_action() {
        let destroy = Counter::action("john", "tasks", Action::Custom(Arc::from("destroy")));
        assert_eq!(destroy, Counter::action("john", "tasks", Action::Delete));
        let create = Counter::action("john", "tasks", Action::Custom(Arc::from("create")));
        assert_eq!(create.counted, Counted::Action(Action::Create));
    }

    #[test]
    fn reserve_reports_the_count_before() {
        let reserved = Reserve::Reserved { used: 2, held: 1 };
        assert!(reserved.is_reserved());
        assert_eq!(reserved.count(), Count { used: 2, held: 1 });
        assert_eq!(reserved.usage(), 3);
        let refused = Reserve::Refused {
            used: u64::MAX,
            held: 1,
        };
        assert!(!refused.is_reserved());
        assert_eq!(refused.usage(), u64::MAX);
    }

    #[test]
    fn seeds_give_their_count_and_say_whether_they_follow_the_items() {
        assert_eq!(Seed::from(3), Seed::Count(3));
        assert_eq!(Seed::Count(3).count(), 3);
        assert_eq!(Seed::Items(4).count(), 4);
        assert!(Seed::Items(4).follows_items());
        assert!(!Seed::Count(4).follows_items());
    }

    #[test]
    fn usage_store_is_object_safe_and_wraps() {
        fn assert_store<T: UsageStore>() {}
        assert_store::<Box<dyn UsageStore>>();
        assert_store::<Arc<dyn UsageStore>>();
        assert_store::<Arc<crate::MemoryStore>>();
    }
}
