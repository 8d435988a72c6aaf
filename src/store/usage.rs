//! Counted usage: the [`UsageStore`] trait, the [`Counter`] it keys by and the
//! [`ReservationId`]s of its reservations.
//!
//! A request under a finite limit first *reserves* one unit of its counter, which succeeds only if
//! `used + held + 1 <= limit`, atomically; after the response it *commits* the unit (it becomes
//! used) or *releases* it (nothing happened). Concurrent requests at `limit - 1` therefore let
//! exactly one through, and a failed request costs nothing. Section 10 of `DESIGN.md` describes
//! how the layer uses it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use tower_plans::{Catalog, MemoryStore, PlanStore, UsageStore, store::{Counter, Reserve, ReservationId}};
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
//! let reserved = store.reserve(&clients, Some(3), 0, first, lease).await?;
//! assert_eq!(reserved, Reserve::Reserved { used: 2, held: 0 });
//!
//! // A concurrent create finds nothing left.
//! let second = ReservationId::new();
//! let refused = store.reserve(&clients, Some(3), 0, second, lease).await?;
//! assert_eq!(refused, Reserve::Refused { used: 2, held: 1 });
//! assert_eq!(refused.usage(), 3);
//!
//! // The first create succeeded: its unit becomes used, and the record shows it.
//! assert_eq!(store.commit(&clients, first).await?, 3);
//! let john = store.user("john").await?.expect("john has a record");
//! assert_eq!(john.usage.count("clients"), Some(3));
//! # Ok(())
//! # }
//! ```

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use super::BoxError;
use crate::catalog::{Action, Window};

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
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Counted::Items => f.write_str("items"),
            Counted::Action(action) => f.write_str(action.as_str()),
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
    /// The resource's name, as the catalog spells it.
    pub resource: Arc<str>,
    /// What is counted.
    pub counted: Counted,
    /// The period of a [`Limit::Periodic`](crate::catalog::Limit::Periodic) quota's counter;
    /// `None` for a count that never resets.
    pub period: Option<Window>,
}

impl Counter {
    /// The count of `user`'s items of `resource`.
    pub fn items(user: impl Into<Arc<str>>, resource: impl Into<Arc<str>>) -> Self {
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
    pub fn action(
        user: impl Into<Arc<str>>,
        resource: impl Into<Arc<str>>,
        action: Action,
    ) -> Self {
        Self {
            user: user.into(),
            resource: resource.into(),
            counted: Counted::Action(action.normalised().into_owned()),
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
/// sequence number, unique in the process (each thread draws from a block of its own). It
/// displays as 32 hexadecimal digits.
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

/// How many sequence numbers a thread takes from the process's counter at a time.
const SEQUENCE_BLOCK: u64 = 1 << 16;

/// The low half of a new reservation id: unique in the process. Each thread takes a block of
/// [`SEQUENCE_BLOCK`] numbers from a process-wide counter and hands them out alone, so that
/// threads making reservations do not all write one counter (one cache line) per id.
fn next_sequence() -> u64 {
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        /// The next number of this thread's block, and the end of the block.
        static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    let from_block = BLOCK.try_with(|block| {
        let (mut next, mut end) = block.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(SEQUENCE_BLOCK, Ordering::Relaxed);
            end = next.wrapping_add(SEQUENCE_BLOCK);
        }
        block.set((next.wrapping_add(1), end));
        next
    });
    // As the thread ends: a block of one number.
    from_block.unwrap_or_else(|_| NEXT_BLOCK.fetch_add(1, Ordering::Relaxed))
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

/// The pluggable, asynchronous store of counted usage: counters and their reservations.
///
/// A counter ([`Counter`]) holds a *used* count and units *held* by reservations. Every method
/// acts on one counter atomically: two concurrent [`reserve`](Self::reserve) calls never both
/// take the last unit. [`MemoryStore`](crate::MemoryStore) implements it in memory, beside its
/// subscriber records; a store shared by several instances (Redis) implements it remotely.
///
/// # Seeds
///
/// A counter that does not exist yet starts at the `seed` that [`reserve`](Self::reserve) and
/// [`adjust`](Self::adjust) are given: the count the subscriber record shows, so that an
/// application that kept its own counts moves to counted usage without a data move. Once a
/// counter exists, its count is the truth and later seeds are ignored.
///
/// # Reservations
///
/// A reservation is named by a [`ReservationId`] and scoped to its counter. Reserving, committing
/// and releasing are idempotent by id: a retried call does nothing more than the first one did.
/// A reservation that is neither committed nor released expires after its lease, so that a
/// crashed instance does not hold units for ever; an expired reservation is forgotten, and
/// committing it afterwards counts nothing (see [`commit`](Self::commit)).
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
/// use tower_plans::{Action, Catalog, MemoryStore, UsageStore, store::{Count, Counter, ReservationId}};
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
/// let id = ReservationId::new();
/// assert!(store.reserve(&exports, Some(2), 0, id, lease).await?.is_reserved());
/// assert_eq!(store.commit(&exports, id).await?, 1);
/// // A retried commit counts nothing more.
/// assert_eq!(store.commit(&exports, id).await?, 1);
///
/// // The second: reserved, the handler fails, released: it costs nothing.
/// let id = ReservationId::new();
/// assert!(store.reserve(&exports, Some(2), 0, id, lease).await?.is_reserved());
/// assert_eq!(store.get(&exports).await?, Some(Count { used: 1, held: 1 }));
/// store.release(&exports, id).await?;
/// assert_eq!(store.get(&exports).await?, Some(Count { used: 1, held: 0 }));
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Reserves one unit of `counter` for the reservation `id`: it succeeds only if
    /// `used + held + 1 <= limit`; `limit` `None` is unlimited, where it always succeeds and
    /// still holds the unit. `Some(0)` always refuses.
    ///
    /// A counter that does not exist yet is created at `seed` (see the
    /// [trait docs](UsageStore#seeds)). The unit is held until [`commit`](Self::commit),
    /// [`release`](Self::release) or the end of `lease`, whichever comes first.
    ///
    /// Reserving an id that is already held holds nothing more, renews its lease and answers
    /// [`Reserve::Reserved`] with the counts of the other reservations. An id is remembered only
    /// while it is held: once committed, released or expired, reserving it again is a new
    /// reservation.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    async fn reserve(
        &self,
        counter: &Counter,
        limit: Option<u64>,
        seed: u64,
        id: ReservationId,
        lease: Duration,
    ) -> Result<Reserve, BoxError>;

    /// Turns the unit held by `id` into a used one, and returns the used count after.
    ///
    /// Idempotent: committing an id that is not held (unknown, already committed or released,
    /// or expired) changes nothing and returns the used count (0 for a counter that does not
    /// exist). A reservation whose lease has passed is not counted: its unit may already have
    /// gone to another request, and counting it would need the store to remember every settled
    /// id.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    async fn commit(&self, counter: &Counter, id: ReservationId) -> Result<u64, BoxError>;

    /// Gives back the unit held by `id`. Idempotent: releasing an id that is not held does
    /// nothing.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    async fn release(&self, counter: &Counter, id: ReservationId) -> Result<(), BoxError>;

    /// Adds `delta` (negative to subtract) to the used count, saturating at 0 and at
    /// `u64::MAX`, creating a counter that does not exist yet at `seed` first. Returns the used
    /// count after. Holds are not touched.
    ///
    /// The layer subtracts one from a resource's [`Counted::Items`] on a successful delete;
    /// applications that change counts themselves (imports, admin tools) use it too.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    async fn adjust(&self, counter: &Counter, delta: i64, seed: u64) -> Result<u64, BoxError>;

    /// Sets the used count, creating the counter if need be. Holds are not touched.
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    async fn set(&self, counter: &Counter, used: u64) -> Result<(), BoxError>;

    /// The used count and the units held by live reservations, or `None` when the counter does
    /// not exist yet (its count is then the seed the caller would give).
    ///
    /// # Errors
    /// When the store cannot be reached or answers badly.
    async fn get(&self, counter: &Counter) -> Result<Option<Count>, BoxError>;

    /// [`reserve`](Self::reserve) answered without waiting, for a store that keeps its counters
    /// in this process; `None` (the default) when the store has to be awaited.
    ///
    /// The layer tries the `_now` methods first, so that a counted request on an in-memory store
    /// makes no boxed future. A store that implements one answers exactly as its async
    /// counterpart would.
    fn reserve_now(
        &self,
        counter: &Counter,
        limit: Option<u64>,
        seed: u64,
        id: ReservationId,
        lease: Duration,
    ) -> Option<Result<Reserve, BoxError>> {
        let _ = (counter, limit, seed, id, lease);
        None
    }

    /// [`commit`](Self::commit) answered without waiting; see [`reserve_now`](Self::reserve_now).
    fn commit_now(&self, counter: &Counter, id: ReservationId) -> Option<Result<u64, BoxError>> {
        let _ = (counter, id);
        None
    }

    /// [`release`](Self::release) answered without waiting; see
    /// [`reserve_now`](Self::reserve_now).
    fn release_now(&self, counter: &Counter, id: ReservationId) -> Option<Result<(), BoxError>> {
        let _ = (counter, id);
        None
    }

    /// [`adjust`](Self::adjust) answered without waiting; see [`reserve_now`](Self::reserve_now).
    fn adjust_now(
        &self,
        counter: &Counter,
        delta: i64,
        seed: u64,
    ) -> Option<Result<u64, BoxError>> {
        let _ = (counter, delta, seed);
        None
    }
}

/// Forwards every method of [`UsageStore`] through a smart pointer, `_now` methods included.
macro_rules! forward_usage_store {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: UsageStore + ?Sized> UsageStore for $pointer<T> {
            async fn reserve(
                &self,
                counter: &Counter,
                limit: Option<u64>,
                seed: u64,
                id: ReservationId,
                lease: Duration,
            ) -> Result<Reserve, BoxError> {
                (**self).reserve(counter, limit, seed, id, lease).await
            }

            async fn commit(&self, counter: &Counter, id: ReservationId) -> Result<u64, BoxError> {
                (**self).commit(counter, id).await
            }

            async fn release(&self, counter: &Counter, id: ReservationId) -> Result<(), BoxError> {
                (**self).release(counter, id).await
            }

            async fn adjust(&self, counter: &Counter, delta: i64, seed: u64) -> Result<u64, BoxError> {
                (**self).adjust(counter, delta, seed).await
            }

            async fn set(&self, counter: &Counter, used: u64) -> Result<(), BoxError> {
                (**self).set(counter, used).await
            }

            async fn get(&self, counter: &Counter) -> Result<Option<Count>, BoxError> {
                (**self).get(counter).await
            }

            fn reserve_now(
                &self,
                counter: &Counter,
                limit: Option<u64>,
                seed: u64,
                id: ReservationId,
                lease: Duration,
            ) -> Option<Result<Reserve, BoxError>> {
                (**self).reserve_now(counter, limit, seed, id, lease)
            }

            fn commit_now(&self, counter: &Counter, id: ReservationId) -> Option<Result<u64, BoxError>> {
                (**self).commit_now(counter, id)
            }

            fn release_now(&self, counter: &Counter, id: ReservationId) -> Option<Result<(), BoxError>> {
                (**self).release_now(counter, id)
            }

            fn adjust_now(
                &self,
                counter: &Counter,
                delta: i64,
                seed: u64,
            ) -> Option<Result<u64, BoxError>> {
                (**self).adjust_now(counter, delta, seed)
            }
        }
    )+};
}

forward_usage_store!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_ids_made_on_several_threads_are_distinct() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..2 * SEQUENCE_BLOCK + 10)
                        .map(|_| ReservationId::new())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<ReservationId> = threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        let made = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), made);
    }

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
    fn usage_store_is_object_safe_and_wraps() {
        fn assert_store<T: UsageStore>() {}
        assert_store::<Box<dyn UsageStore>>();
        assert_store::<Arc<dyn UsageStore>>();
        assert_store::<Arc<crate::MemoryStore>>();
    }
}
