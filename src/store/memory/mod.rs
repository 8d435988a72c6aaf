//! [`MemoryStore`]: the embedded, in-memory [`PlanStore`].

use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{PlanStore, StoreFuture};
use crate::catalog::{Action, Catalog};
use crate::hash::Map;
use crate::subscriber::{AddonGrant, Assignment, Subscriber};
#[cfg(doc)]
use crate::{
    store::{Counted, UsageStore},
    subscriber::Usage,
};

mod counters;
mod load;

use counters::{adopt_counts, Counters};
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) use load::json_kind;
pub use load::{LoadError, UnknownAddon};

/// An in-memory [`PlanStore`] and [`UsageStore`]: a catalog and a map of subscriber records that
/// the application can change while serving.
///
/// Clones share their state: keep one clone in the layer and another wherever plans and usage
/// change (a handler that creates an item, a webhook). Every read and write takes a short,
/// synchronous lock that is never held across an `.await`; a lock poisoned by a panic elsewhere is
/// recovered rather than propagated, so the store never panics. Users are spread over 16 locks by
/// the hash of their id, so that requests for different users on different threads seldom meet
/// on one lock; each change to one user is atomic, and [`len`](Self::len) adds up the parts.
///
/// Records are shared: [`subscriber`](Self::subscriber) and [`PlanStore::user`] hand out an
/// [`Arc`] clone, and a mutation copies a record only while such a clone is still alive.
///
/// A change is visible to the next call of [`PlanStore::user`]. A layer with a user cache keeps
/// serving its cached copy until the entry expires or is invalidated (call
/// [`Invalidator::user`](crate::Invalidator::user) after [`set_plan`](Self::set_plan),
/// [`grant_addon`](Self::grant_addon) and the like).
///
/// # Add-ons
///
/// The loaders check every record's [add-on grants](crate::subscriber::AddonGrant) against the
/// catalog, and [`grant_addon`](Self::grant_addon) refuses an add-on the catalog does not know.
/// [`insert_user`](Self::insert_user), [`update_user`](Self::update_user) and
/// [`set_catalog`](Self::set_catalog) do not check: a grant the catalog does not know is ignored
/// by the decision, with a warning.
///
/// # Counted usage
///
/// The store is also a [`UsageStore`], and its subscriber records *are* the counters, so that
/// after a commit [`PlanStore::user`] returns the raised usage, and
/// [`add_action_usage`](Self::add_action_usage), [`UsageStore::adjust`] and [`UsageStore::set`]
/// change the same counts. A counter reads what the decision reads in the record
/// ([`Usage::get`]):
///
/// * [`Counted::Items`] is the resource's item count: its plain count, or, for a resource
///   counted per action, its `create` count. In this store
///   [`Counted::Action`]`(`[`Action::Create`]`)` and [`Counted::Items`] are one counter.
/// * [`Counted::Action`] is the count of its action, which gains a count of its own
///   ([`Usage::action_count`]) when it is first changed.
/// * A plain count is the item count and the usage of every action without a count of its own,
///   before and after other counters of the resource exist: `{"projects": 5}` whose `show`s are
///   counted reads 5 for its other actions still, and 6 once a counted create succeeded.
///
/// [`set_usage`](Self::set_usage) and [`add_usage`](Self::add_usage) change the plain count, as
/// an application that keeps its own counts does.
///
/// A user's record is the truth for every counter without a period: a counter of a user with a
/// record always exists, reads what the decision reads in the record, and the `seed` given to
/// [`reserve`](UsageStore::reserve) or [`adjust`](UsageStore::adjust) is not used (the layer's
/// seed comes from the same record, and agrees). A reservation writes nothing in the record;
/// only a commit, an adjustment or a set does, so a refused or released request leaves the
/// record as it was: an action gains a count of its own at its first counted success.
///
/// A user without a record (the store serving as a [`UsageStore`] beside another
/// [`PlanStore`]) is counted in an entry of its own, seeded the same way. Such a user is not a
/// user of the [`PlanStore`]: [`PlanStore::user`] still returns `None` and [`len`](Self::len)
/// does not count them. A record created for them later ([`insert_user`](Self::insert_user), or
/// any method that creates a user) takes over these counts, except those it holds itself.
///
/// Reservations are held beside the records, in the user's shard: reserving, committing and
/// releasing take only that shard's write lock, so users on different shards do not wait for
/// one another. A reservation whose lease has passed no longer counts, and is forgotten when its
/// counter is next touched; committing it then counts nothing (see [`UsageStore::commit`]).
/// Leases run on tokio's monotonic clock ([`tokio::time::Instant`]), so a test that pauses time
/// expires them with `tokio::time::advance`.
///
/// # Example
///
/// ```
/// use tower_plans::{MemoryStore, subscriber::Assignment};
///
/// let store = MemoryStore::from_json(
///     r#"{"plans": [{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]}"#,
///     r#"{"john": {"name": "john", "plan": "free", "usage": {"clients": 2}}}"#,
/// )?;
/// assert_eq!(store.len(), 1);
///
/// // John creates a client: his usage goes up.
/// assert_eq!(store.add_usage("john", "clients", 1), 3);
///
/// // John upgrades.
/// store.set_plan("john", Some(Assignment::new("pro")));
/// assert_eq!(store.subscriber("john").unwrap().plan_name(), Some("pro"));
/// # Ok::<(), tower_plans::store::LoadError>(())
/// ```
///
/// Add-ons:
///
/// ```
/// use tower_plans::{MemoryStore, subscriber::AddonGrant};
///
/// let store = MemoryStore::from_json(
///     r#"{"plans": [{"name": "free", "clients": 3}],
///         "addons": [{"name": "more-clients", "limits": {"clients": 10}}]}"#,
///     r#"{"jane": {"plan": "free", "usage": {"clients": 3}}}"#,
/// )?;
/// // Jane buys two packs of 10 more clients for December 2023.
/// let packs = AddonGrant::new("more-clients")
///     .starts_at(1_701_388_800_000)
///     .expires_at(1_704_067_200_000)
///     .quantity(2);
/// store.grant_addon("jane", packs)?;
/// assert_eq!(store.subscriber("jane").unwrap().addons[0].quantity, 2);
/// // An add-on the catalog does not know is refused.
/// assert!(store.grant_addon("jane", AddonGrant::new("more-client")).is_err());
/// // A refund.
/// assert_eq!(store.revoke_addon("jane", "more-clients"), 1);
/// assert!(store.subscriber("jane").unwrap().addons.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    state: Arc<State>,
}

/// How many locks the users are spread over (a power of two).
const SHARDS: usize = 16;

/// What the clones of one store share.
#[derive(Debug)]
struct State {
    catalog: RwLock<Arc<Catalog>>,
    shards: [Shard; SHARDS],
    /// Picks a user's shard (the maps inside hash with seeds of their own).
    hasher: foldhash::fast::RandomState,
}

/// Some of the users, behind a lock of their own, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(RwLock<Users>);

/// One shard's users: their records, and the counters kept beside them.
#[derive(Debug, Default)]
struct Users {
    /// Subscriber records by user id, each with its counters: a counted request looks its user
    /// up once.
    records: Map<Arc<str>, User>,
    /// By user id: the counters of users without a record (the store serving as a
    /// [`UsageStore`](crate::UsageStore) beside another [`PlanStore`]), which go when they
    /// empty.
    counters: Map<Arc<str>, Counters>,
    /// The alert markers set on counters ([`UsageStore::mark`](crate::UsageStore::mark)).
    markers: Map<(crate::store::Counter, Box<str>), ()>,
}

/// A user with a record.
#[derive(Debug)]
struct User {
    record: Arc<Subscriber>,
    /// The reservations held on the user's counters, and the counts of its period counters;
    /// `None` until the user is first counted. The entries stay when they empty, so that
    /// counting allocates nothing once a counter was used.
    counters: Option<Box<Counters>>,
}

impl User {
    fn new(record: Subscriber, counters: Option<Box<Counters>>) -> Self {
        Self {
            record: Arc::new(record),
            counters,
        }
    }
}

impl State {
    fn new(catalog: Catalog) -> Self {
        Self {
            catalog: RwLock::new(Arc::new(catalog)),
            shards: Default::default(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, id: &str) -> &Shard {
        // Always in bounds: the index is taken modulo the number of shards.
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }
}

impl MemoryStore {
    /// A store with this catalog and no users.
    pub fn new(catalog: Catalog) -> Self {
        Self {
            state: Arc::new(State::new(catalog)),
        }
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(
            &self
                .state
                .catalog
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replaces the catalog. A layer sees it when its cached catalog expires or is invalidated.
    pub fn set_catalog(&self, catalog: Catalog) {
        *self
            .state
            .catalog
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    /// The record of this user, or `None` for an unknown user.
    pub fn subscriber(&self, id: &str) -> Option<Arc<Subscriber>> {
        read(self.state.shard(id))
            .records
            .get(id)
            .map(|user| Arc::clone(&user.record))
    }

    /// Adds or replaces a user's record, returning the previous one.
    ///
    /// A new record takes over the counts this store kept for the user without a record, for
    /// the counters it does not hold itself (see [counted usage](Self#counted-usage)).
    pub fn insert_user(
        &self,
        id: impl Into<Arc<str>>,
        mut subscriber: Subscriber,
    ) -> Option<Arc<Subscriber>> {
        let id = id.into();
        let mut users = write(self.state.shard(&id));
        let Users {
            records, counters, ..
        } = &mut *users;
        if let Some(user) = records.get_mut(&id) {
            return Some(std::mem::replace(&mut user.record, Arc::new(subscriber)));
        }
        let kept = adopt_counts(counters, &id, &mut subscriber.usage);
        records.insert(id, User::new(subscriber, kept));
        None
    }

    /// Removes a user's record, returning it. The record's counts go with it; reservations
    /// held for the user stay.
    pub fn remove_user(&self, id: &str) -> Option<Arc<Subscriber>> {
        let mut users = write(self.state.shard(id));
        let Users {
            records, counters, ..
        } = &mut *users;
        let (id, user) = records.remove_entry(id)?;
        if let Some(mut kept) = user.counters {
            kept.retain(|(_, _, entry)| !entry.is_empty());
            if !kept.is_empty() {
                counters.insert(id, *kept);
            }
        }
        Some(user.record)
    }

    /// Sets (`Some`) or removes (`None`) a user's plan.
    ///
    /// Setting a plan of an unknown user creates the user, named by `id`, without usage; removing
    /// the plan of an unknown user does nothing.
    pub fn set_plan(&self, id: impl AsRef<str>, assignment: Option<Assignment>) {
        let id = id.as_ref();
        match assignment {
            Some(assignment) => self.update_user(id, |subscriber| {
                subscriber.assignment = Some(assignment);
            }),
            None => {
                let mut users = write(self.state.shard(id));
                if let Some(user) = users.records.get_mut(id) {
                    Arc::make_mut(&mut user.record).assignment = None;
                }
            }
        }
    }

    /// Grants an add-on to a user: `grant` replaces every grant of the same add-on the user
    /// holds, so that granting again (a renewal, a changed quantity, a redelivered event) leaves
    /// one grant rather than adding up. Creates the user, named by `id`, when unknown. To keep
    /// several grants of one add-on (two separate periods), use
    /// [`update_user`](Self::update_user).
    ///
    /// # Errors
    /// [`UnknownAddon`] when the store's catalog has no add-on of that name; nothing changes.
    pub fn grant_addon(&self, id: impl AsRef<str>, grant: AddonGrant) -> Result<(), UnknownAddon> {
        if self.catalog().addon(&grant.name).is_none() {
            return Err(UnknownAddon { name: grant.name });
        }
        self.update_user(id, |subscriber| {
            let addons = &mut subscriber.addons;
            // The first grant's place is kept: nothing before it moves.
            let first = addons.iter().position(|held| held.name == grant.name);
            addons.retain(|held| held.name != grant.name);
            match first {
                Some(at) => addons.insert(at, grant),
                None => addons.push(grant),
            }
        });
        Ok(())
    }

    /// Takes every grant of the add-on `name` away from a user and returns how many there were
    /// (0 for an unknown user, who stays unknown).
    pub fn revoke_addon(&self, id: &str, name: &str) -> usize {
        let mut users = write(self.state.shard(id));
        let Some(User {
            record: subscriber, ..
        }) = users.records.get_mut(id)
        else {
            return 0;
        };
        let held = subscriber
            .addons
            .iter()
            .filter(|grant| &*grant.name == name)
            .count();
        if held > 0 {
            Arc::make_mut(subscriber)
                .addons
                .retain(|grant| &*grant.name != name);
        }
        held
    }

    /// Sets the plain count of `resource` for a user (replacing per-action counts, if any),
    /// creating the user when unknown.
    pub fn set_usage(&self, id: impl AsRef<str>, resource: impl Into<Arc<str>>, count: u64) {
        let resource = resource.into();
        self.update_user(id, |subscriber| subscriber.usage.set(resource, count));
    }

    /// Adds `delta` (negative to subtract) to the plain count of `resource` for a user and
    /// returns the new count, saturating at 0. Creates the user when unknown; an unrecorded
    /// resource starts at 0 (see [`Usage::add`](crate::subscriber::Usage::add)).
    pub fn add_usage(&self, id: impl AsRef<str>, resource: &str, delta: i64) -> u64 {
        self.update_user(id, |subscriber| subscriber.usage.add(resource, delta))
    }

    /// Adds `delta` to the count of `action` on `resource` for a user and returns the new count,
    /// saturating at 0. Creates the user when unknown (see
    /// [`Usage::add_action`](crate::subscriber::Usage::add_action)).
    pub fn add_action_usage(
        &self,
        id: impl AsRef<str>,
        resource: &str,
        action: &Action,
        delta: i64,
    ) -> u64 {
        self.update_user(id, |subscriber| {
            subscriber.usage.add_action(resource, action, delta)
        })
    }

    /// Changes a user's record in place and returns what `f` returns.
    ///
    /// An unknown user is created first, named by `id`, with no plan, and with the counts this
    /// store kept for the user without a record (none, unless it served as a
    /// [`UsageStore`] for them; see [counted usage](Self#counted-usage)). A lock of the store is
    /// held while `f` runs, so `f` should be short and must not call back into the store.
    pub fn update_user<R>(&self, id: impl AsRef<str>, f: impl FnOnce(&mut Subscriber) -> R) -> R {
        let id = id.as_ref();
        let mut users = write(self.state.shard(id));
        let Users {
            records, counters, ..
        } = &mut *users;
        if let Some(user) = records.get_mut(id) {
            return f(Arc::make_mut(&mut user.record));
        }
        let id: Arc<str> = Arc::from(id);
        let mut subscriber = Subscriber::new().with_name(Arc::clone(&id));
        let kept = adopt_counts(counters, &id, &mut subscriber.usage);
        let result = f(&mut subscriber);
        records.insert(id, User::new(subscriber, kept));
        result
    }

    /// Removes a known user's plan when `matches` accepts it; returns whether it was removed.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn remove_plan_if(
        &self,
        id: &str,
        matches: impl FnOnce(&Assignment) -> bool,
    ) -> bool {
        let mut users = write(self.state.shard(id));
        let Some(User {
            record: subscriber, ..
        }) = users.records.get_mut(id)
        else {
            return false;
        };
        match &subscriber.assignment {
            Some(assignment) if matches(assignment) => {
                Arc::make_mut(subscriber).assignment = None;
                true
            }
            _ => false,
        }
    }

    /// The number of users with a record (while other threads change the store, a count of its
    /// parts taken one after the other). Users counted without a record are not included.
    pub fn len(&self) -> usize {
        self.state
            .shards
            .iter()
            .map(|shard| read(shard).records.len())
            .sum()
    }

    /// Whether the store has no user records.
    pub fn is_empty(&self) -> bool {
        self.state
            .shards
            .iter()
            .all(|shard| read(shard).records.is_empty())
    }
}

fn read(shard: &Shard) -> RwLockReadGuard<'_, Users> {
    shard.0.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, Users> {
    shard.0.write().unwrap_or_else(PoisonError::into_inner)
}

impl PlanStore for MemoryStore {
    fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
        StoreFuture::ready(Ok(self.catalog()))
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::ready(Ok(self.subscriber(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_is_send_sync_and_a_plan_store() {
        fn assert_store<T: PlanStore + Clone + Send + Sync>() {}
        assert_store::<MemoryStore>();
    }
}
