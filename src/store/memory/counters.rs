//! Counted usage in a [`MemoryStore`]: its records are the counters (see the type's docs),
//! and the reservations are kept beside them, in the user's shard.

use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;

use super::{read, write, MemoryStore, User, Users};
use crate::catalog::{Action, Window};
use crate::decision::Name;
use crate::hash::Map;
use crate::store::{
    BoxError, Count, Counted, Counter, Held, Hold, Line, ReservationId, Seed, StoreFuture,
    UsageStore,
};
use crate::subscriber::{Subscriber, Usage};

/// One user's counters, few: each with its resource and its key, found by a linear search.
pub(super) type Counters = Vec<(Name, Key, Entry)>;

/// Where the counter `key` of `resource` is among `counters`, added when missing. A period
/// counter replaces the counters of the same slot for earlier periods.
fn find_or_add(counters: &mut Counters, resource: &Name, key: Key) -> usize {
    if key.window.is_some() {
        counters.retain(|(held_resource, held, _)| {
            !(held.is_before(&key) && held_resource == resource)
        });
    }
    match find(counters, resource, &key) {
        Some(at) => at,
        None => {
            counters.push((resource.clone(), key, Entry::default()));
            counters.len() - 1
        }
    }
}

/// Where the counter `key` of `resource` is among `counters`.
#[inline]
fn find(counters: &Counters, resource: &Name, key: &Key) -> Option<usize> {
    counters
        .iter()
        .position(|(held_resource, held, _)| held == key && held_resource == resource)
}

/// One reservation's hold on one counter: its id, its units, and when it expires (`None`:
/// never).
type Hold1 = (ReservationId, u64, Option<Instant>);

/// One counter's state kept beside the records.
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// The used count when the record does not hold it (a user without a record, a period, a
    /// credit pool or a grant).
    used: Option<u64>,
    /// The reservations held. Few at a time.
    holds: Vec<Hold1>,
}

impl Entry {
    pub(super) fn is_empty(&self) -> bool {
        self.used.is_none() && self.holds.is_empty()
    }

    /// Forgets the reservations whose lease has passed.
    fn drop_expired(&mut self, now: Instant) {
        self.holds.retain(|(_, _, expires)| live(*expires, now));
    }

    /// Where the hold of `id` is.
    fn hold(&self, id: ReservationId) -> Option<usize> {
        self.holds.iter().position(|(held, ..)| *held == id)
    }

    /// Renews the hold of `id` until `expires`; whether there is one.
    fn renew(&mut self, id: ReservationId, expires: Option<Instant>) -> bool {
        let Some(at) = self.hold(id) else {
            return false;
        };
        self.holds[at].2 = expires;
        true
    }

    /// Forgets the hold of `id`, and returns its units.
    fn take_hold(&mut self, id: ReservationId) -> Option<u64> {
        let at = self.hold(id)?;
        Some(self.holds.swap_remove(at).1)
    }

    /// The units held at `now` by reservations other than `id`.
    fn held_beside(&self, id: ReservationId, now: Instant) -> u64 {
        self.holds
            .iter()
            .filter(|(held, _, expires)| *held != id && live(*expires, now))
            .fold(0u64, |sum, (_, units, _)| sum.saturating_add(*units))
    }
}

/// Whether a hold that expires at `expires` still counts at `now`.
fn live(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_none_or(|at| now < at)
}

/// A counter among a user's counts of one resource (or pool): what it counts, and its period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Key {
    slot: Slot,
    /// The period of a period counter, which is kept in its [`Entry`], never in the record.
    window: Option<Window>,
}

impl Key {
    /// The key of a resource's item counter.
    fn items() -> Key {
        Key {
            slot: Slot::Action(Action::Create),
            window: None,
        }
    }

    fn of(counter: &Counter) -> Key {
        Key {
            slot: Slot::of(&counter.counted),
            window: counter.period,
        }
    }

    /// Whether the record holds this counter's count: an action's count or the item count,
    /// without a period.
    fn in_record(&self) -> bool {
        matches!(self.slot, Slot::Action(_)) && self.window.is_none()
    }

    /// Whether this is the counter of the same slot for a period before `key`'s.
    fn is_before(&self, key: &Key) -> bool {
        match (self.window, key.window) {
            (Some(old), Some(new)) => {
                self.slot == key.slot && old.per() == new.per() && old.start() < new.start()
            }
            _ => false,
        }
    }
}

/// What a counter counts: the count of an action (the item count is the `create` count, see
/// the [`MemoryStore`] docs on counted usage), a pool's credits, or a grant's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Action(Action),
    Credits,
    Grant(Arc<str>),
}

impl Slot {
    fn of(counted: &Counted) -> Slot {
        match counted {
            Counted::Items => Slot::Action(Action::Create),
            Counted::Action(action) => Slot::Action(action.normalised().into_owned()),
            Counted::Credits => Slot::Credits,
            Counted::Grant(id) => Slot::Grant(Arc::clone(id)),
        }
    }

    /// The action whose count the record holds, for an action's slot.
    fn action(&self) -> Option<&Action> {
        match self {
            Slot::Action(action) => Some(action),
            Slot::Credits | Slot::Grant(_) => None,
        }
    }
}

/// A counter's count in a subscriber record: what the decision reads ([`Usage::get`]), 0 for a
/// resource the record does not name.
fn record_count(usage: &Usage, resource: &str, action: &Action) -> u64 {
    usage.get(resource, action)
}

/// Where a counter's own count is in a subscriber record, `None` when it has none yet: an
/// action's own count, or the item count.
fn record_count_mut<'a>(
    usage: &'a mut Usage,
    resource: &str,
    action: &Action,
) -> Option<&'a mut u64> {
    let usage = usage.resource_mut(resource)?;
    if *action == Action::Create {
        usage.items_mut()
    } else {
        usage.action_count_mut(action)
    }
}

/// Writes a counter's count into a subscriber record: an action's own count, or the item count
/// (the `create` count of a resource counted per action only, else the plain count). A resource
/// the record does not name reads 0 for every action, as a plain count of 0 does, and becomes
/// one.
fn set_record_count(usage: &mut Usage, resource: &Name, action: &Action, count: u64) {
    if usage.resource(resource).is_none() {
        usage.set(resource.as_str(), 0);
    }
    if *action == Action::Create {
        if let Some(usage) = usage.resource_mut(resource) {
            usage.set_items(count);
        }
    } else {
        match usage
            .resource_mut(resource)
            .and_then(|usage| usage.action_count_mut(action))
        {
            Some(counted) => *counted = count,
            None => usage.set_action(resource.as_str(), action, count),
        }
    }
}

/// Takes the counters kept for a user without a record, for the record being created for them:
/// their counts move into the record's `usage`, except for counters the record already holds.
pub(super) fn adopt_counts(
    counters: &mut Map<Arc<str>, Counters>,
    id: &str,
    usage: &mut Usage,
) -> Option<Box<Counters>> {
    let mut user = counters.remove(id)?;
    // Period, credit and grant counts stay in their entries.
    for (resource, key, entry) in user.iter_mut().filter(|(_, key, _)| key.in_record()) {
        let Some(action) = key.slot.action() else {
            continue;
        };
        if let Some(used) = entry.used.take() {
            if record_count_mut(usage, resource, action).is_none() {
                set_record_count(usage, resource, action, used);
            }
        }
    }
    Some(Box::new(user))
}

/// One counter, under its shard's write lock: its count (in the record, if the user has one
/// and the record holds it) and its reservations.
struct Cell<'a> {
    record: Option<&'a mut Arc<Subscriber>>,
    resource: &'a Name,
    key: &'a Key,
    entry: &'a mut Entry,
    /// For a user without a record, the used count of the resource's item counter, if it
    /// exists: where a [`Seed::Items`] starts.
    items: Option<u64>,
}

impl Cell<'_> {
    /// The used count, `None` when the counter does not exist yet. A user's record gives
    /// every counter it holds its count.
    fn used(&self) -> Option<u64> {
        match (&self.record, self.key.in_record(), self.key.slot.action()) {
            (Some(record), true, Some(action)) => {
                Some(record_count(&record.usage, self.resource, action))
            }
            _ => self.entry.used,
        }
    }

    /// The used count, or where `seed` starts it.
    fn used_or(&self, seed: Seed) -> u64 {
        self.used().unwrap_or_else(|| self.seeded(seed))
    }

    fn set_used(&mut self, used: u64) {
        let in_record = self.key.in_record();
        match (&mut self.record, in_record, self.key.slot.action()) {
            (Some(record), true, Some(action)) => set_record_count(
                &mut Arc::make_mut(record).usage,
                self.resource,
                action,
                used,
            ),
            _ => self.entry.used = Some(used),
        }
    }

    /// Adds `units` to the used count, in place when it can, and returns the count after; a
    /// counter that does not exist starts at `seed`.
    fn add(&mut self, units: u64, seed: Seed) -> u64 {
        let in_record = self.key.in_record();
        if let (Some(record), true, Some(action)) =
            (&mut self.record, in_record, self.key.slot.action())
        {
            let usage = &mut Arc::make_mut(record).usage;
            if let Some(used) = record_count_mut(usage, self.resource, action) {
                *used = used.saturating_add(units);
                return *used;
            }
        }
        let used = self.used_or(seed).saturating_add(units);
        self.set_used(used);
        used
    }

    /// Where the counter starts when it does not exist yet.
    fn seeded(&self, seed: Seed) -> u64 {
        match seed {
            Seed::Count(count) => count,
            Seed::Items(count) => self.items.unwrap_or(count),
        }
    }
}

/// Runs `f` on the counter `counter` among `users` (a shard under its write lock). A user without
/// a record loses the entries left empty; a user with one keeps them, so that the next use
/// allocates nothing. A period counter replaces the user's counters of the same slot for
/// earlier periods.
fn with_cell<R>(users: &mut Users, counter: &Counter, f: impl FnOnce(&mut Cell<'_>) -> R) -> R {
    let key = Key::of(counter);
    let resource = &counter.resource;
    let Users {
        records, counters, ..
    } = users;
    if let Some(User { record, counters }) = records.get_mut(&*counter.user) {
        let counters = counters.get_or_insert_with(Box::default);
        let at = find_or_add(counters, resource, key);
        let (_, key, entry) = &mut counters[at];
        return f(&mut Cell {
            record: Some(record),
            resource,
            key,
            entry,
            items: None,
        });
    }
    let user = counters.entry(Arc::clone(&counter.user)).or_default();
    // Only a counter without a period follows the item counter (see `Seed::Items`).
    let items = match key.window {
        Some(_) => None,
        None => find(user, resource, &Key::items())
            .and_then(|at| user.get(at))
            .and_then(|(_, _, entry)| entry.used),
    };
    let at = find_or_add(user, resource, key);
    let (_, key, entry) = &mut user[at];
    let result = f(&mut Cell {
        record: None,
        resource,
        key,
        entry,
        items,
    });
    if user[at].2.is_empty() {
        user.swap_remove(at);
        if user.is_empty() {
            counters.remove(&*counter.user);
        }
    }
    result
}

/// The user whose counters `hold` touches: they all belong to one user.
fn user_of(hold: &Hold) -> Result<Option<&Arc<str>>, BoxError> {
    let mut counters = hold.lines().iter().flat_map(|line| {
        std::iter::once(line.counter()).chain(line.grants().iter().map(|g| g.counter()))
    });
    let Some(first) = counters.next() else {
        return Ok(None);
    };
    if counters.any(|counter| counter.user != first.user) {
        return Err("the counters of one reservation belong to one user".into());
    }
    Ok(Some(&first.user))
}

/// The units one line of a reservation takes on each part: its counter, then its grants.
type Parts = SmallVec<[u64; 4]>;

impl MemoryStore {
    /// Runs `f` on one counter under its shard's write lock.
    fn with_counter<R>(&self, counter: &Counter, f: impl FnOnce(&mut Cell<'_>) -> R) -> R {
        let mut users = write(self.state.shard(&counter.user));
        with_cell(&mut users, counter, f)
    }

    /// [`UsageStore::reserve`] at the instant `now`.
    fn reserve_at(&self, hold: &Hold, lease: Duration, now: Instant) -> Result<Held, BoxError> {
        let Some(user) = user_of(hold)? else {
            return Ok(Held::Reserved(SmallVec::new()));
        };
        let id = hold.id();
        let expires = now.checked_add(lease);
        let mut users = write(self.state.shard(user));
        let users = &mut *users;
        // Already held (a retry): renew the leases, and answer the counts beside it. Each
        // line's count is read on the way (the reservation's own hold is not in it).
        let mut renewed = false;
        let mut counts: SmallVec<[Count; 2]> = SmallVec::new();
        for line in hold.lines() {
            let count = with_cell(users, line.counter(), |cell| {
                cell.entry.drop_expired(now);
                renewed |= cell.entry.renew(id, expires);
                Count {
                    used: cell.used_or(line.start()),
                    held: cell.entry.held_beside(id, now),
                }
            });
            counts.push(count);
            for grant in line.grants() {
                with_cell(users, grant.counter(), |cell| {
                    cell.entry.drop_expired(now);
                    renewed |= cell.entry.renew(id, expires);
                });
            }
        }
        if renewed {
            // A counter the record does not hold (any more) starts at its seed.
            for line in hold.lines() {
                with_cell(users, line.counter(), |cell| {
                    if cell.used().is_none() && cell.entry.hold(id).is_some() {
                        let start = cell.seeded(line.start());
                        cell.set_used(start);
                    }
                });
            }
            return Ok(Held::Reserved(counts));
        }
        let mut taken: SmallVec<[Parts; 2]> = SmallVec::new();
        for (index, (line, &count)) in hold.lines().iter().zip(&counts).enumerate() {
            match fit(users, line, count, id, now) {
                Some(parts) => taken.push(parts),
                None => return Ok(Held::Refused { line: index, count }),
            }
        }
        for (line, parts) in hold.lines().iter().zip(&taken) {
            for ((counter, seed), units) in parts_with_seeds(line).zip(parts) {
                if *units == 0 {
                    continue;
                }
                with_cell(users, counter, |cell| {
                    if cell.used().is_none() {
                        // A counter the record does not hold starts at its first reservation.
                        let start = cell.seeded(seed);
                        cell.set_used(start);
                    }
                    cell.entry.holds.push((id, *units, expires));
                });
            }
        }
        Ok(Held::Reserved(counts))
    }

    /// [`UsageStore::commit`] at the instant `now`.
    fn commit_at(&self, hold: &Hold, spent: &[u64], now: Instant) -> Result<(), BoxError> {
        let Some(user) = user_of(hold)? else {
            return Ok(());
        };
        let id = hold.id();
        let mut users = write(self.state.shard(user));
        let users = &mut *users;
        for (index, line) in hold.lines().iter().enumerate() {
            // What each part held, given back.
            let mut held: Parts = SmallVec::new();
            let mut any = false;
            for counter in parts_of(line) {
                let units = with_cell(users, counter, |cell| {
                    cell.entry.drop_expired(now);
                    cell.entry.take_hold(id)
                });
                any |= units.is_some();
                held.push(units.unwrap_or(0));
            }
            if !any {
                // Not held (settled, expired or unknown): nothing to count.
                continue;
            }
            let spent = spent.get(index).copied().unwrap_or(line.units());
            let taken = spend(users, line, &held, spent, id, now);
            for ((counter, seed), units) in parts_with_seeds(line).zip(&taken) {
                if *units > 0 {
                    with_cell(users, counter, |cell| cell.add(*units, seed));
                }
            }
        }
        Ok(())
    }

    /// [`UsageStore::release`] at the instant `now`.
    fn release_at(&self, hold: &Hold, now: Instant) -> Result<(), BoxError> {
        let Some(user) = user_of(hold)? else {
            return Ok(());
        };
        let id = hold.id();
        let mut users = write(self.state.shard(user));
        for line in hold.lines() {
            for counter in parts_of(line) {
                with_cell(&mut users, counter, |cell| {
                    cell.entry.drop_expired(now);
                    cell.entry.take_hold(id);
                });
            }
        }
        Ok(())
    }

    /// [`UsageStore::adjust`].
    fn adjust_with(&self, counter: &Counter, delta: i64, seed: Seed) -> u64 {
        self.with_counter(counter, |cell| {
            let used = cell.used_or(seed).saturating_add_signed(delta);
            cell.set_used(used);
            used
        })
    }

    /// [`UsageStore::get`] at the instant `now`.
    fn count_at(&self, counter: &Counter, now: Instant) -> Option<Count> {
        let key = Key::of(counter);
        let users = read(self.state.shard(&counter.user));
        let (record, kept) = match users.records.get(&*counter.user) {
            Some(user) => (Some(&user.record), user.counters.as_deref()),
            None => (None, users.counters.get(&*counter.user)),
        };
        let entry = kept.and_then(|kept| find(kept, &counter.resource, &key).map(|at| &kept[at].2));
        let used = match (record, key.in_record(), key.slot.action()) {
            (Some(record), true, Some(action)) => {
                Some(record_count(&record.usage, &counter.resource, action))
            }
            _ => entry.and_then(|entry| entry.used),
        };
        let held = entry.map_or(0, |entry| {
            entry.held_beside(ReservationId::from_u128(u128::MAX), now)
        });
        if used.is_none() && held == 0 {
            return None;
        }
        Some(Count {
            used: used.unwrap_or(0),
            held,
        })
    }
}

/// The counters of `line`: its own, then its grants'.
fn parts_of(line: &Line) -> impl Iterator<Item = &Counter> {
    std::iter::once(line.counter()).chain(line.grants().iter().map(|grant| grant.counter()))
}

/// The counters of `line` with where each starts: its own at the line's seed, a grant's at 0.
fn parts_with_seeds(line: &Line) -> impl Iterator<Item = (&Counter, Seed)> {
    std::iter::once((line.counter(), line.start())).chain(
        line.grants()
            .iter()
            .map(|grant| (grant.counter(), Seed::Count(0))),
    )
}

/// The units `line` takes on each of its parts, when it fits (see
/// [Lines and grants](UsageStore#lines-and-grants)); `count` is its counter's.
fn fit(
    users: &mut Users,
    line: &Line,
    count: Count,
    id: ReservationId,
    now: Instant,
) -> Option<Parts> {
    let units = line.units();
    let room = line
        .max()
        .map_or(u64::MAX, |max| max.saturating_sub(count.total()));
    let mut parts = Parts::new();
    if line.grants().is_empty() {
        if units > room {
            return None;
        }
        parts.push(units);
        return Some(parts);
    }
    let own = units.min(room);
    parts.push(own);
    let mut rest = units - own;
    for grant in line.grants() {
        let room = with_cell(users, grant.counter(), |cell| {
            cell.entry.drop_expired(now);
            let count = cell
                .used_or(Seed::Count(0))
                .saturating_add(cell.entry.held_beside(id, now));
            grant.amount().saturating_sub(count)
        });
        let take = rest.min(room);
        parts.push(take);
        rest -= take;
    }
    (rest == 0).then_some(parts)
}

/// How `spent` units of `line` are counted, part by part, given what each part `held`: on the
/// parts held first, in order; beyond, on its counter while its limit allows, then on its
/// grants while their amounts allow, and the rest on its counter past its limit.
fn spend(
    users: &mut Users,
    line: &Line,
    held: &[u64],
    spent: u64,
    id: ReservationId,
    now: Instant,
) -> Parts {
    let mut taken: Parts = held.iter().map(|_| 0).collect();
    let mut rest = spent;
    for (take, held) in taken.iter_mut().zip(held) {
        *take = rest.min(*held);
        rest -= *take;
    }
    if rest == 0 {
        return taken;
    }
    let counters: SmallVec<[(&Counter, Option<u64>); 4]> =
        std::iter::once((line.counter(), line.max()))
            .chain(
                line.grants()
                    .iter()
                    .map(|grant| (grant.counter(), Some(grant.amount()))),
            )
            .collect();
    for (index, (counter, max)) in counters.iter().enumerate() {
        let Some(max) = max else {
            // Unlimited: the rest goes here.
            taken[index] = taken[index].saturating_add(rest);
            return taken;
        };
        let seed = if index == 0 {
            line.start()
        } else {
            Seed::Count(0)
        };
        let count = with_cell(users, counter, |cell| {
            cell.used_or(seed)
                .saturating_add(cell.entry.held_beside(id, now))
        });
        let room = max.saturating_sub(count.saturating_add(taken[index]));
        let take = rest.min(room);
        taken[index] += take;
        rest -= take;
        if rest == 0 {
            return taken;
        }
    }
    // Past every limit: on the counter.
    taken[0] = taken[0].saturating_add(rest);
    taken
}

impl UsageStore for MemoryStore {
    fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
        StoreFuture::ready(self.reserve_at(hold, lease, Instant::now()))
    }

    fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
        StoreFuture::ready(self.commit_at(hold, spent, Instant::now()))
    }

    fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
        StoreFuture::ready(self.release_at(hold, Instant::now()))
    }

    fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
        StoreFuture::ready(Ok(self.adjust_with(counter, delta, seed)))
    }

    fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
        self.with_counter(counter, |cell| cell.set_used(used));
        StoreFuture::ready(Ok(()))
    }

    fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
        StoreFuture::ready(Ok(self.count_at(counter, Instant::now())))
    }

    fn mark<'a>(&'a self, counter: &'a Counter, mark: &'a str) -> StoreFuture<'a, bool> {
        let mut users = write(self.state.shard(&counter.user));
        let markers = &mut users.markers;
        // Markers kept past their time are forgotten as the map grows.
        if markers.len() >= MARKERS_BEFORE_PRUNING && markers.len().is_power_of_two() {
            let now = crate::time::now_ms();
            markers.retain(|(counter, _), _| {
                counter.marks_kept_until().is_none_or(|until| until > now)
            });
        }
        // The items and the `create` action are one counter, with one set of markers.
        let mut counter = counter.clone();
        if counter.counted == Counted::Items {
            counter.counted = Counted::Action(Action::Create);
        }
        let key = (counter, Box::from(mark));
        StoreFuture::ready(Ok(markers.insert(key, ()).is_none()))
    }
}

/// How many alert markers a shard keeps before it starts forgetting those of past periods.
const MARKERS_BEFORE_PRUNING: usize = 1024;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::store::{PlanStore, Reserve, UsageStoreExt};

    /// One-counter forms of the store's steps at an instant, for the tests.
    impl MemoryStore {
        fn reserve_unit_at(
            &self,
            counter: &Counter,
            limit: Option<u64>,
            seed: Seed,
            id: ReservationId,
            lease: Duration,
            now: Instant,
        ) -> Reserve {
            let hold = Hold::unit(counter.clone(), limit, seed, id);
            match self.reserve_at(&hold, lease, now).expect("one user") {
                Held::Reserved(counts) => Reserve::Reserved {
                    used: counts[0].used,
                    held: counts[0].held,
                },
                Held::Refused { count, .. } => Reserve::Refused {
                    used: count.used,
                    held: count.held,
                },
            }
        }

        fn commit_unit_at(&self, counter: &Counter, id: ReservationId, now: Instant) -> u64 {
            let hold = Hold::unit(counter.clone(), None, Seed::Count(0), id);
            self.commit_at(&hold, &[1], now).expect("one user");
            self.count_at(counter, now).map_or(0, |count| count.used)
        }

        fn release_unit_at(&self, counter: &Counter, id: ReservationId, now: Instant) {
            let hold = Hold::unit(counter.clone(), None, Seed::Count(0), id);
            self.release_at(&hold, now).expect("one user");
        }
    }
    use crate::subscriber::Assignment;

    const LEASE: Duration = Duration::from_secs(300);

    fn store() -> MemoryStore {
        MemoryStore::from_json(
            r#"[{"name": "free", "clients": 3}]"#,
            r#"{"john": {"plan": "free", "usage": {"clients": 2}}}"#,
        )
        .expect("valid store")
    }

    fn clients(user: &str) -> Counter {
        Counter::items(user, "clients")
    }

    fn count(used: u64, held: u64) -> Option<Count> {
        Some(Count { used, held })
    }

    /// Whether any counter state (a hold, or the count of a user without a record) is kept
    /// beside the records.
    fn counters_kept(store: &MemoryStore) -> bool {
        store.state.shards.iter().any(|shard| {
            let users = read(shard);
            let with_record = users
                .records
                .values()
                .filter_map(|user| user.counters.as_deref());
            users
                .counters
                .values()
                .chain(with_record)
                .flatten()
                .any(|(_, _, entry)| !entry.is_empty())
        })
    }

    #[tokio::test]
    async fn reserve_succeeds_up_to_the_limit_then_refuses() {
        let store = store();
        let counter = Counter::items("jane", "clients");
        let ids: Vec<ReservationId> = (0..4).map(|_| ReservationId::new()).collect();
        for (held, id) in ids.iter().take(3).enumerate() {
            let held = held as u64;
            let reserved = store
                .reserve_unit(&counter, Some(3), Seed::Count(0), *id, LEASE)
                .await;
            assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 0, held });
        }
        let refused = store
            .reserve_unit(&counter, Some(3), Seed::Count(0), ids[3], LEASE)
            .await;
        assert_eq!(refused.unwrap(), Reserve::Refused { used: 0, held: 3 });

        // Used and held both count: a commit does not free room.
        assert_eq!(store.commit_unit(&counter, ids[0]).await.unwrap(), 1);
        assert_eq!(store.get(&counter).await.unwrap(), count(1, 2));
        let refused = store
            .reserve_unit(&counter, Some(3), Seed::Count(0), ids[3], LEASE)
            .await;
        assert_eq!(refused.unwrap(), Reserve::Refused { used: 1, held: 2 });

        // A release does.
        store.release_unit(&counter, ids[1]).await.unwrap();
        let reserved = store
            .reserve_unit(&counter, Some(3), Seed::Count(0), ids[3], LEASE)
            .await;
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 1, held: 1 });
    }

    #[tokio::test]
    async fn period_counters_stay_out_of_the_record_and_replace_earlier_periods() {
        use crate::catalog::Period;

        let store = store();
        // 2026-11-29T12:00:00Z, and the first millisecond of December.
        let now = 1_795_953_600_000;
        let november = Period::Month.window(now);
        let december = Period::Month.window(november.end());
        let monthly = |window| clients("john").in_period(window);

        // A period counter starts at its seed (the layer gives 0), whatever the record says.
        let id = ReservationId::new();
        let reserved = store
            .reserve_unit(&monthly(november), Some(2), Seed::Count(0), id, LEASE)
            .await;
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 0, held: 0 });
        assert_eq!(store.commit_unit(&monthly(november), id).await.unwrap(), 1);
        assert_eq!(store.get(&monthly(november)).await.unwrap(), count(1, 0));
        // The record's lifetime count is untouched, and is still its own counter.
        let john = store.subscriber("john").unwrap();
        assert_eq!(john.usage.count("clients"), Some(2));
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 0));

        // December's counter is another one, and using it forgets November's.
        assert_eq!(store.get(&monthly(december)).await.unwrap(), None);
        assert_eq!(
            store
                .adjust(&monthly(december), 1, Seed::Count(0))
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.get(&monthly(november)).await.unwrap(), None);
        assert_eq!(store.get(&monthly(december)).await.unwrap(), count(1, 0));
        // A daily counter of the same count is not a month's: it does not replace it.
        let today = clients("john").in_period(Period::Day.window(december.start()));
        assert_eq!(store.adjust(&today, 1, Seed::Count(0)).await.unwrap(), 1);
        assert_eq!(store.get(&monthly(december)).await.unwrap(), count(1, 0));
        let slots = read(store.state.shard("john"))
            .records
            .get("john")
            .and_then(|user| user.counters.as_deref())
            .map_or(0, |kept| {
                kept.iter()
                    .filter(|(resource, ..)| &**resource == "clients")
                    .count()
            });
        assert_eq!(slots, 2, "December's and today's counters, November's gone");
    }

    #[tokio::test]
    async fn a_record_created_later_does_not_adopt_period_counts() {
        use crate::catalog::Period;

        let store = store();
        let window = Period::Week.window(1_795_953_600_000);
        let weekly = clients("jane").in_period(window);
        assert_eq!(store.adjust(&weekly, 4, Seed::Count(0)).await.unwrap(), 4);
        assert_eq!(
            store
                .adjust(&clients("jane"), 2, Seed::Count(0))
                .await
                .unwrap(),
            2
        );
        store.insert_user("jane", Subscriber::new());
        let jane = store.subscriber("jane").unwrap();
        assert_eq!(jane.usage.count("clients"), Some(2));
        assert_eq!(store.get(&weekly).await.unwrap(), count(4, 0));
    }

    #[tokio::test]
    async fn commit_raises_the_record_usage_seen_by_plan_store_user() {
        let store = store();
        let id = ReservationId::new();
        let reserved = store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(0), id, LEASE)
            .await;
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });
        // Held is not used: the record is unchanged until the commit.
        let john = store.user("john").await.unwrap().expect("a record");
        assert_eq!(john.usage.count("clients"), Some(2));

        assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 3);
        let john = store.user("john").await.unwrap().expect("a record");
        assert_eq!(john.usage.count("clients"), Some(3));
        assert_eq!(john.usage.get("clients", &Action::Create), 3);
        // The copy handed out before the commit is not changed behind its holder's back.
        assert_eq!(store.len(), 1);

        // The inherent methods change the same counter.
        assert_eq!(store.add_usage("john", "clients", -1), 2);
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 0));
        store.set(&clients("john"), 7).await.unwrap();
        assert_eq!(
            store.subscriber("john").unwrap().usage.count("clients"),
            Some(7)
        );
        // Nothing is left beside the records once the reservation is settled.
        assert!(!counters_kept(&store));
    }

    #[tokio::test]
    async fn release_gives_the_unit_back() {
        let store = store();
        let first = ReservationId::new();
        let second = ReservationId::new();
        let reserved = store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(0), first, LEASE)
            .await;
        assert!(reserved.unwrap().is_reserved());
        store.release_unit(&clients("john"), first).await.unwrap();
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 0));
        let reserved = store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(0), second, LEASE)
            .await;
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });
        // Releasing the first again, or committing it, changes nothing.
        store.release_unit(&clients("john"), first).await.unwrap();
        assert_eq!(store.commit_unit(&clients("john"), first).await.unwrap(), 2);
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 1));
    }

    #[tokio::test]
    async fn reserve_is_idempotent_by_id() {
        let store = store();
        let id = ReservationId::new();
        for _ in 0..3 {
            let reserved = store
                .reserve_unit(&clients("john"), Some(3), Seed::Count(0), id, LEASE)
                .await;
            // The counts exclude the reservation itself, even at the limit.
            assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });
        }
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 1));
        // The same id on another counter is another reservation.
        let other = Counter::items("john", "groups");
        assert!(store
            .reserve_unit(&other, Some(1), Seed::Count(0), id, LEASE)
            .await
            .unwrap()
            .is_reserved());
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 1));
    }

    #[tokio::test]
    async fn commit_and_release_are_idempotent_by_id() {
        let store = store();
        let id = ReservationId::new();
        store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(0), id, LEASE)
            .await
            .unwrap();
        assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 3);
        assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 3);
        store.release_unit(&clients("john"), id).await.unwrap();
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(3, 0));

        // Unknown ids and counters.
        let unknown = ReservationId::new();
        assert_eq!(
            store.commit_unit(&clients("john"), unknown).await.unwrap(),
            3
        );
        store.release_unit(&clients("john"), unknown).await.unwrap();
        assert_eq!(
            store
                .commit_unit(&clients("nobody"), unknown)
                .await
                .unwrap(),
            0
        );
        store
            .release_unit(&clients("nobody"), unknown)
            .await
            .unwrap();
        assert_eq!(store.get(&clients("nobody")).await.unwrap(), None);
        assert!(!counters_kept(&store));
    }

    #[tokio::test]
    async fn adjust_saturates_at_zero() {
        let store = store();
        assert_eq!(
            store
                .adjust(&clients("john"), -5, Seed::Count(0))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .adjust(&clients("john"), 3, Seed::Count(0))
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            store
                .adjust(&clients("john"), i64::MIN, Seed::Count(0))
                .await
                .unwrap(),
            0
        );
        store.set(&clients("john"), u64::MAX - 1).await.unwrap();
        assert_eq!(
            store
                .adjust(&clients("john"), i64::MAX, Seed::Count(0))
                .await
                .unwrap(),
            u64::MAX
        );
        // A missing counter starts at the seed.
        assert_eq!(
            store
                .adjust(&clients("ghost"), -1, Seed::Count(4))
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            store
                .adjust(&clients("ghost"), -1, Seed::Count(40))
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn adjust_and_set_leave_holds_alone() {
        let store = store();
        let id = ReservationId::new();
        store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(0), id, LEASE)
            .await
            .unwrap();
        assert_eq!(
            store
                .adjust(&clients("john"), -1, Seed::Count(0))
                .await
                .unwrap(),
            1
        );
        store.set(&clients("john"), 0).await.unwrap();
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(0, 1));
        assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn users_without_a_record_are_seeded_and_stay_unknown_to_the_plan_store() {
        let store = store();
        let ghost = clients("ghost");
        assert_eq!(store.get(&ghost).await.unwrap(), None);
        let id = ReservationId::new();
        let reserved = store
            .reserve_unit(&ghost, Some(3), Seed::Count(2), id, LEASE)
            .await
            .unwrap();
        assert_eq!(reserved, Reserve::Reserved { used: 2, held: 0 });
        assert_eq!(store.get(&ghost).await.unwrap(), count(2, 1));
        assert_eq!(store.commit_unit(&ghost, id).await.unwrap(), 3);

        // The counter exists now: later seeds are ignored.
        let refused = store
            .reserve_unit(&ghost, Some(3), Seed::Count(0), ReservationId::new(), LEASE)
            .await
            .unwrap();
        assert_eq!(refused, Reserve::Refused { used: 3, held: 0 });
        assert_eq!(store.adjust(&ghost, -1, Seed::Count(100)).await.unwrap(), 2);

        assert!(store.user("ghost").await.unwrap().is_none());
        assert!(store.subscriber("ghost").is_none());
        assert_eq!(store.len(), 1);
        let empty = MemoryStore::new((*store.catalog()).clone());
        empty.set(&ghost, 1).await.unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
    }

    #[tokio::test]
    async fn a_record_holding_the_count_wins_over_the_seed() {
        let store = store();
        let reserved = store
            .reserve_unit(
                &clients("john"),
                Some(3),
                Seed::Count(9),
                ReservationId::new(),
                LEASE,
            )
            .await
            .unwrap();
        assert_eq!(reserved, Reserve::Reserved { used: 2, held: 0 });

        // A record without the count gives it 0, as the decision reads it: the seed is not
        // used, and a reservation writes nothing; the commit writes the count.
        let groups = Counter::items("john", "groups");
        assert_eq!(store.get(&groups).await.unwrap(), Some(Count::default()));
        let id = ReservationId::new();
        let reserved = store
            .reserve_unit(&groups, Some(5), Seed::Count(4), id, LEASE)
            .await
            .unwrap();
        assert_eq!(reserved, Reserve::Reserved { used: 0, held: 0 });
        assert_eq!(
            store.subscriber("john").unwrap().usage.count("groups"),
            None
        );
        assert_eq!(store.commit_unit(&groups, id).await.unwrap(), 1);
        assert_eq!(
            store.subscriber("john").unwrap().usage.count("groups"),
            Some(1)
        );
    }

    #[tokio::test]
    async fn a_record_created_later_takes_over_the_counts() {
        let store = store();
        store.set(&clients("jane"), 5).await.unwrap();
        let tasks = Counter::action("jane", "tasks", Action::Show);
        store.set(&tasks, 8).await.unwrap();
        let id = ReservationId::new();
        store
            .reserve_unit(&clients("jane"), None, Seed::Count(0), id, LEASE)
            .await
            .unwrap();

        store.set_plan("jane", Some(Assignment::new("free")));
        let jane = store.subscriber("jane").expect("a record");
        assert_eq!(jane.usage.count("clients"), Some(5));
        assert_eq!(jane.usage.action_count("tasks", &Action::Show), Some(8));
        // The reservation survives the move.
        assert_eq!(store.get(&clients("jane")).await.unwrap(), count(5, 1));
        assert_eq!(store.commit_unit(&clients("jane"), id).await.unwrap(), 6);
        assert_eq!(
            store.subscriber("jane").unwrap().usage.count("clients"),
            Some(6)
        );

        // An inserted record keeps the counts it holds itself.
        store.set(&clients("joe"), 5).await.unwrap();
        store
            .set(&Counter::items("joe", "groups"), 2)
            .await
            .unwrap();
        store.insert_user("joe", Subscriber::new().with_usage("clients", 1));
        let joe = store.subscriber("joe").expect("a record");
        assert_eq!(joe.usage.count("clients"), Some(1));
        assert_eq!(joe.usage.count("groups"), Some(2));
        assert!(!counters_kept(&store));

        // Removing the record removes its counts.
        store.remove_user("joe");
        assert_eq!(store.get(&clients("joe")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn removing_a_record_keeps_its_reservations_and_period_counts() {
        use crate::catalog::Period;

        let store = store();
        let weekly = clients("john").in_period(Period::Week.window(1_795_953_600_000));
        assert_eq!(store.adjust(&weekly, 3, Seed::Count(0)).await.unwrap(), 3);
        let id = ReservationId::new();
        let reserved = store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(0), id, LEASE)
            .await;
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });

        store.remove_user("john");
        assert_eq!(store.len(), 0);
        // The record's count went with it; the hold and the period count stay.
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(0, 1));
        assert_eq!(store.get(&weekly).await.unwrap(), count(3, 0));
        let reserved = store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(1), id, LEASE)
            .await;
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 1, held: 0 });

        // A new record takes the counts over, and the reservation still commits.
        store.insert_user("john", Subscriber::new());
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(1, 1));
        assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 2);
        let john = store.subscriber("john").expect("a record");
        assert_eq!(john.usage.count("clients"), Some(2));
        assert_eq!(store.get(&weekly).await.unwrap(), count(3, 0));
    }

    #[tokio::test]
    async fn commit_counts_in_a_record_counted_per_action() {
        let store = store();
        store.update_user("jane", |jane| {
            jane.usage.set_action("tasks", &Action::Create, 4);
            jane.usage
                .set_action("tasks", &Action::custom("destroy"), 1);
        });
        let items = Counter::items("jane", "tasks");
        let deletes = Counter::action("jane", "tasks", Action::Delete);
        let shows = Counter::action("jane", "tasks", Action::Show);
        for counter in [&items, &deletes, &shows] {
            let id = ReservationId::new();
            let reserved = store
                .reserve_unit(counter, None, Seed::Count(0), id, LEASE)
                .await;
            assert!(reserved.unwrap().is_reserved());
            store.commit_unit(counter, id).await.unwrap();
        }
        let usage = store.subscriber("jane").unwrap().usage.clone();
        assert_eq!(usage.action_count("tasks", &Action::Create), Some(5));
        assert_eq!(usage.action_count("tasks", &Action::Delete), Some(2));
        assert_eq!(usage.action_count("tasks", &Action::Show), Some(1));
        assert_eq!(usage.count("tasks"), None);

        // A plain count is the usage of every action: an action's counter starts there,
        // and the plain count stays the usage of the others.
        store.set_usage("jane", "clients", 2);
        let shows = Counter::action("jane", "clients", Action::Show);
        let id = ReservationId::new();
        store
            .reserve_unit(&shows, None, Seed::Count(0), id, LEASE)
            .await
            .unwrap();
        assert_eq!(store.commit_unit(&shows, id).await.unwrap(), 3);
        let usage = store.subscriber("jane").unwrap().usage.clone();
        assert_eq!(usage.action_count("clients", &Action::Show), Some(3));
        assert_eq!(usage.count("clients"), Some(2));
        assert_eq!(usage.get("clients", &Action::Create), 2);
        assert_eq!(usage.get("clients", &Action::Update), 2);
    }

    #[tokio::test]
    async fn item_and_action_counts_share_a_record_without_losing_either() {
        let store = store();
        store.set_usage("john", "tasks", 3);
        let show = Counter::action("john", "tasks", Action::Show);
        let items = Counter::items("john", "tasks");
        // The record's plain count is the usage of every action, shows and creates alike.
        assert_eq!(store.get(&show).await.unwrap(), count(3, 0));
        assert_eq!(store.adjust(&show, 1, Seed::Count(0)).await.unwrap(), 4);
        let usage = store.subscriber("john").unwrap().usage.clone();
        assert_eq!(usage.get("tasks", &Action::Create), 3);
        assert_eq!(usage.get("tasks", &Action::Show), 4);
        assert_eq!(store.get(&items).await.unwrap(), count(3, 0));

        // The item count is the plain count: the actions without a count of their own read
        // it as it moves; the show keeps its own.
        assert_eq!(store.adjust(&items, 2, Seed::Count(0)).await.unwrap(), 5);
        let usage = store.subscriber("john").unwrap().usage.clone();
        assert_eq!(usage.count("tasks"), Some(5));
        assert_eq!(usage.get("tasks", &Action::Create), 5);
        assert_eq!(usage.get("tasks", &Action::Show), 4);
        assert_eq!(usage.get("tasks", &Action::Update), 5);
        assert_eq!(store.adjust(&items, -5, Seed::Count(0)).await.unwrap(), 0);
        let usage = store.subscriber("john").unwrap().usage.clone();
        assert_eq!(usage.get("tasks", &Action::Update), 0);
        assert_eq!(usage.get("tasks", &Action::Show), 4);

        // In this store a `create` count and the item count are one counter.
        let create = Counter::action("john", "tasks", Action::Create);
        assert_eq!(store.get(&create).await.unwrap(), count(0, 0));
        let custom = Counter::action("ghost", "tasks", Action::Custom("create".into()));
        store.set(&custom, 2).await.unwrap();
        assert_eq!(
            store.get(&Counter::items("ghost", "tasks")).await.unwrap(),
            count(2, 0)
        );
    }

    #[tokio::test]
    async fn action_counters_use_the_per_action_counts() {
        let store = store();
        let delete = Counter::action("john", "tasks", Action::Custom("destroy".into()));
        let id = ReservationId::new();
        let reserved = store
            .reserve_unit(&delete, Some(2), Seed::Count(0), id, LEASE)
            .await
            .unwrap();
        assert_eq!(reserved, Reserve::Reserved { used: 0, held: 0 });
        assert_eq!(store.commit_unit(&delete, id).await.unwrap(), 1);
        let usage = store.subscriber("john").unwrap().usage.clone();
        assert_eq!(usage.action_count("tasks", &Action::Delete), Some(1));
        assert_eq!(usage.get("tasks", &Action::Delete), 1);
        assert_eq!(
            store.add_action_usage("john", "tasks", &Action::Delete, 1),
            2
        );
        let counter = Counter::action("john", "tasks", Action::Delete);
        assert_eq!(store.get(&counter).await.unwrap(), count(2, 0));
    }

    #[tokio::test]
    async fn limit_zero_always_refuses_and_no_limit_always_holds() {
        let store = store();
        let id = ReservationId::new();
        for seed in [0, 5] {
            let refused = store
                .reserve_unit(
                    &clients(&format!("u{seed}")),
                    Some(0),
                    Seed::Count(seed),
                    id,
                    LEASE,
                )
                .await
                .unwrap();
            assert_eq!(
                refused,
                Reserve::Refused {
                    used: seed,
                    held: 0
                }
            );
        }
        for held in 0..3 {
            let reserved = store
                .reserve_unit(
                    &clients("john"),
                    None,
                    Seed::Count(0),
                    ReservationId::new(),
                    LEASE,
                )
                .await
                .unwrap();
            assert_eq!(reserved, Reserve::Reserved { used: 2, held });
        }
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 3));
    }

    #[test]
    fn an_expired_lease_frees_its_hold() {
        let store = store();
        let t0 = Instant::now();
        let lease = Duration::from_secs(10);
        let at = |secs| t0 + Duration::from_secs(secs);
        let (first, second) = (ReservationId::new(), ReservationId::new());
        let reserved =
            store.reserve_unit_at(&clients("john"), Some(3), Seed::Count(0), first, lease, t0);
        assert!(reserved.is_reserved());
        assert_eq!(store.count_at(&clients("john"), at(9)), count(2, 1));
        let refused = store.reserve_unit_at(
            &clients("john"),
            Some(3),
            Seed::Count(0),
            second,
            lease,
            at(9),
        );
        assert_eq!(refused, Reserve::Refused { used: 2, held: 1 });

        // At the end of the lease the hold no longer counts, even before it is dropped.
        assert_eq!(store.count_at(&clients("john"), at(10)), count(2, 0));
        let reserved = store.reserve_unit_at(
            &clients("john"),
            Some(3),
            Seed::Count(0),
            second,
            lease,
            at(10),
        );
        assert_eq!(reserved, Reserve::Reserved { used: 2, held: 0 });

        // Committing the expired reservation counts nothing; the live one counts.
        assert_eq!(store.commit_unit_at(&clients("john"), first, at(11)), 2);
        assert_eq!(store.commit_unit_at(&clients("john"), second, at(11)), 3);
        assert!(!counters_kept(&store));
    }

    #[test]
    fn reserving_again_renews_the_lease() {
        let store = store();
        let t0 = Instant::now();
        let lease = Duration::from_secs(10);
        let id = ReservationId::new();
        store.reserve_unit_at(&clients("john"), Some(3), Seed::Count(0), id, lease, t0);
        let later = t0 + Duration::from_secs(8);
        store.reserve_unit_at(&clients("john"), Some(3), Seed::Count(0), id, lease, later);
        let after_first_lease = t0 + Duration::from_secs(15);
        assert_eq!(
            store.count_at(&clients("john"), after_first_lease),
            count(2, 1)
        );
        assert_eq!(
            store.commit_unit_at(&clients("john"), id, after_first_lease),
            3
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leases_run_on_tokio_clock() {
        let store = store();
        let id = ReservationId::new();
        let lease = Duration::from_secs(60);
        let reserve = store
            .reserve_unit(&clients("john"), Some(3), Seed::Count(0), id, lease)
            .await;
        assert!(reserve.unwrap().is_reserved());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 0));
        assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 2);
    }

    #[test]
    fn an_endless_lease_never_expires() {
        let store = store();
        let t0 = Instant::now();
        let id = ReservationId::new();
        store.reserve_unit_at(
            &clients("john"),
            Some(3),
            Seed::Count(0),
            id,
            Duration::MAX,
            t0,
        );
        let much_later = t0 + Duration::from_secs(100 * 365 * 24 * 3600);
        assert_eq!(store.count_at(&clients("john"), much_later), count(2, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_hundred_concurrent_creates_at_limit_minus_one_let_exactly_one_through() {
        const TASKS: usize = 200;
        let store = store();
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let store = store.clone();
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    let counter = clients("john");
                    let id = ReservationId::new();
                    start.wait().await;
                    let reserve = store
                        .reserve_unit(&counter, Some(3), Seed::Count(0), id, LEASE)
                        .await;
                    let reserve = reserve.expect("the memory store does not fail");
                    tokio::task::yield_now().await;
                    if reserve.is_reserved() {
                        store.commit_unit(&counter, id).await.expect("no failure");
                    }
                    reserve
                })
            })
            .collect();
        let mut reserved = 0;
        for task in tasks {
            let reserve = task.await.expect("no panic");
            assert!(reserve.usage() <= 3, "{reserve:?}");
            reserved += usize::from(reserve.is_reserved());
        }
        assert_eq!(reserved, 1);
        assert_eq!(store.get(&clients("john")).await.unwrap(), count(3, 0));
        assert_eq!(
            store.subscriber("john").unwrap().usage.count("clients"),
            Some(3)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_users_are_counted_apart() {
        let store = store();
        let tasks: Vec<_> = (0..64)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let counter = clients(&format!("user{}", n % 8));
                    let id = ReservationId::new();
                    let reserve = store
                        .reserve_unit(&counter, Some(5), Seed::Count(0), id, LEASE)
                        .await;
                    if reserve.unwrap().is_reserved() {
                        store.commit_unit(&counter, id).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("no panic");
        }
        for n in 0..8 {
            let counter = clients(&format!("user{n}"));
            assert_eq!(store.get(&counter).await.unwrap(), count(5, 0));
        }
        assert_eq!(store.len(), 1);
    }

    /// How the counter's user starts in the property tests.
    #[derive(Clone, Copy, Debug)]
    enum Start {
        /// No record: the counter is seeded.
        NoRecord,
        /// A record without the counter: the counter is seeded, in the record.
        RecordWithout,
        /// A record holding the counter at the seed; the seed given is ignored.
        RecordWith,
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Reserve(usize),
        Commit(usize),
        Release(usize),
        Wait(u64),
    }

    const IDS: usize = 5;
    const MODEL_LEASE: u64 = 10;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..IDS).prop_map(Op::Reserve),
            3 => (0..IDS).prop_map(Op::Commit),
            2 => (0..IDS).prop_map(Op::Release),
            1 => (1u64..6).prop_map(Op::Wait),
        ]
    }

    fn start() -> impl Strategy<Value = Start> {
        prop_oneof![
            Just(Start::NoRecord),
            Just(Start::RecordWithout),
            Just(Start::RecordWith),
        ]
    }

    /// The counter and the store, set up as `start` says, the seed to give, and the count
    /// the counter starts at: the seed without a record, what the record gives otherwise.
    fn setup(start: Start, items: bool, seed: u64) -> (MemoryStore, Counter, u64, u64) {
        let store = store();
        let counter = if items {
            Counter::items("jane", "tasks")
        } else {
            Counter::action("jane", "tasks", Action::Show)
        };
        let (given_seed, start_at) = match start {
            Start::NoRecord => (seed, seed),
            Start::RecordWithout => {
                // The record gives the counter nothing: it reads 0, whatever the seed.
                store.insert_user("jane", Subscriber::new().with_usage("clients", 1));
                (seed, 0)
            }
            Start::RecordWith => {
                let record = if items {
                    Subscriber::new().with_usage("tasks", seed)
                } else {
                    Subscriber::new().with_action_usage("tasks", &Action::Show, seed)
                };
                store.insert_user("jane", record);
                (seed + 7, seed)
            }
        };
        (store, counter, given_seed, start_at)
    }

    /// What the store should do: one counter, reservations by index, time in seconds.
    #[derive(Debug)]
    struct Model {
        exists: bool,
        used: u64,
        holds: HashMap<usize, u64>,
        now: u64,
        commits: u64,
    }

    impl Model {
        fn drop_expired(&mut self) {
            let now = self.now;
            self.holds.retain(|_, expires| now < *expires);
        }

        fn count(&self) -> Option<Count> {
            self.exists.then_some(Count {
                used: self.used,
                held: self.holds.len() as u64,
            })
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random interleavings of reservations, against a model.
        #[test]
        fn reservations_follow_the_model(
            start in start(),
            items in any::<bool>(),
            limit in prop_oneof![Just(None), (0u64..6).prop_map(Some)],
            seed in 0u64..4,
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let (store, counter, given_seed, start_at) = setup(start, items, seed);
            let ids: Vec<ReservationId> = (0..IDS).map(|_| ReservationId::new()).collect();
            let t0 = Instant::now();
            let lease = Duration::from_secs(MODEL_LEASE);
            let mut model = Model {
                exists: !matches!(start, Start::NoRecord),
                used: start_at,
                holds: HashMap::new(),
                now: 0,
                commits: 0,
            };
            for op in ops {
                let now = t0 + Duration::from_secs(model.now);
                match op {
                    Op::Reserve(task) => {
                        let got =
                            store.reserve_unit_at(&counter, limit, Seed::Count(given_seed), ids[task], lease, now);
                        model.drop_expired();
                        let (used, held) = (model.used, model.holds.len() as u64);
                        let expected = if model.holds.contains_key(&task) {
                            model.holds.insert(task, model.now + MODEL_LEASE);
                            Reserve::Reserved { used, held: held - 1 }
                        } else if limit.is_some_and(|limit| used + held >= limit) {
                            Reserve::Refused { used, held }
                        } else {
                            model.holds.insert(task, model.now + MODEL_LEASE);
                            Reserve::Reserved { used, held }
                        };
                        // A refusal creates no counter.
                        model.exists |= expected.is_reserved();
                        prop_assert_eq!(got, expected);
                    }
                    Op::Commit(task) => {
                        let got = store.commit_unit_at(&counter, ids[task], now);
                        model.drop_expired();
                        if model.holds.remove(&task).is_some() {
                            model.used += 1;
                            model.commits += 1;
                        }
                        prop_assert_eq!(got, if model.exists { model.used } else { 0 });
                    }
                    Op::Release(task) => {
                        store.release_unit_at(&counter, ids[task], now);
                        model.drop_expired();
                        model.holds.remove(&task);
                    }
                    Op::Wait(secs) => model.now += secs,
                }
                let now = t0 + Duration::from_secs(model.now);
                model.drop_expired();
                let count = store.count_at(&counter, now);
                prop_assert_eq!(count, model.count());
                if let (Some(limit), Some(count)) = (limit, count) {
                    prop_assert!(count.total() <= limit.max(start_at), "{count:?}");
                }
            }
            // The count ends where it started plus the commits, and so does the record.
            let used = store.count_at(&counter, t0 + Duration::from_secs(model.now))
                .map_or(start_at, |count| count.used);
            prop_assert_eq!(used, start_at + model.commits);
            if let Some(limit) = limit {
                prop_assert!(used <= limit.max(start_at));
            }
            if !matches!(start, Start::NoRecord) {
                let record = store.subscriber("jane").expect("a record");
                let slot = Slot::of(&counter.counted);
                let action = slot.action().expect("an action's counter");
                prop_assert_eq!(record_count(&record.usage, "tasks", action), used);
            }
            // John, and Jane if she has a record.
            prop_assert_eq!(store.len(), 1 + usize::from(!matches!(start, Start::NoRecord)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Threads reserving at once, each committing or releasing: never past the limit,
        /// and the count ends where it started plus the commits.
        #[test]
        fn concurrent_reservations_never_overshoot(
            start in start(),
            limit in 0u64..8,
            seed in 0u64..4,
            plans in proptest::collection::vec(
                proptest::collection::vec(any::<bool>(), 1..8),
                2..5,
            ),
        ) {
            let (store, counter, given_seed, start_at) = setup(start, true, seed);
            let committed: u64 = std::thread::scope(|scope| {
                let threads: Vec<_> = plans
                    .iter()
                    .map(|plan| {
                        let (store, counter) = (&store, &counter);
                        scope.spawn(move || {
                            let mut committed = 0;
                            for &commit in plan {
                                let id = ReservationId::new();
                                let reserve = store.reserve_unit_at(
                                    counter, Some(limit), Seed::Count(given_seed), id, LEASE, Instant::now(),
                                );
                                if let Reserve::Reserved { used, held } = reserve {
                                    assert!(used + held < limit, "{reserve:?}");
                                    if commit {
                                        store.commit_unit_at(counter, id, Instant::now());
                                        committed += 1;
                                    } else {
                                        store.release_unit_at(counter, id, Instant::now());
                                    }
                                }
                            }
                            committed
                        })
                    })
                    .collect();
                threads.into_iter().map(|thread| thread.join().expect("no panic")).sum()
            });
            let count = store.count_at(&counter, Instant::now());
            let count = count.unwrap_or(Count { used: start_at, held: 0 });
            prop_assert_eq!(count, Count { used: start_at + committed, held: 0 });
            prop_assert!(committed <= limit.saturating_sub(start_at));
        }
    }

    #[tokio::test]
    async fn a_seed_follows_the_item_counter_only_for_a_counter_without_a_period() {
        use crate::catalog::Period;

        let store = store();
        let today = Period::Day.window(1_795_953_600_000);
        let show = Counter::action("jane", "clients", Action::Show);
        let update = Counter::action("jane", "clients", Action::Update);
        let daily = show.clone().in_period(today);
        let johns_daily = Counter::action("john", "clients", Action::Show).in_period(today);
        let id = ReservationId::new();
        let reserved = |used| Reserve::Reserved { used, held: 0 };

        // Jane has no record. Before her item counter exists, a counter starts at the seed's
        // count; after, a counter without a period starts at the item count.
        let answer = store
            .reserve_unit(&show, None, Seed::Items(4), id, LEASE)
            .await;
        assert_eq!(answer.unwrap(), reserved(4));
        store.release_unit(&show, id).await.unwrap();
        let items = store.adjust(&clients("jane"), 1, Seed::Count(0)).await;
        assert_eq!(items.unwrap(), 1);
        let answer = store.adjust(&update, 1, Seed::Items(4)).await;
        assert_eq!(answer.unwrap(), 2, "the item count and one");

        // A period counter starts at the seed's count, as it does for a user with a record.
        let answer = store
            .reserve_unit(&daily, None, Seed::Items(4), id, LEASE)
            .await;
        assert_eq!(answer.unwrap(), reserved(4));
        let answer = store
            .reserve_unit(&johns_daily, None, Seed::Items(4), id, LEASE)
            .await;
        assert_eq!(answer.unwrap(), reserved(4));
    }
}
