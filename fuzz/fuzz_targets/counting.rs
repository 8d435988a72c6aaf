//! The counting arithmetic: `MemoryStore` as a `UsageStore`, against a plain model.
//!
//! A sequence of reserve, commit, release, adjust, set and get calls, and of clock steps, on a
//! handful of counters (two users, one with a subscriber record and one without; two resources,
//! their item count and some action counts; two credit pools, their allowance counters and three
//! grants each), on the store itself, through an `Arc` and through a `Box<dyn UsageStore>`,
//! taking each answer at once (`StoreFuture::into_ready`) or awaiting it. The memory store always
//! answers at once. After every call the store answers as the model does and every counter reads
//! as the model's:
//!
//! * A reservation is a `Hold` shaped as the layer builds one: an action line (an action's
//!   counter or the item count, `n` units, or 1 when a pool line follows), then a pool line (the
//!   pool's `Counted::Credits` counter, lifetime or of a month or a day, `n` units, topped up by
//!   some of the pool's `Counted::Grant` counters, which never reset), or either line alone; `n`
//!   is at least 1, as a cost is. The layer lists the active grants soonest-expiring first; which
//!   one expires first is the record's, so the target lists them in any order, and they are
//!   spent in the line's. Lines are held all or none. A line without grants fits when
//!   `used + held + n <= limit`; a pool line takes `min(n, limit - used - held)` on its counter
//!   and the rest from its grants in order, from each what `amount - used - held` allows, and
//!   fits when they cover it. After a fresh reservation no counter that gained a hold has
//!   `used + held` above its limit (or amount), and each line holds exactly its units.
//! * A commit counts, line by line, the units spent (below, equal to or above what was held):
//!   on the parts held first (the counter, then the grants); beyond, on the counter while its
//!   limit allows, then on the grants while their amounts allow, then on the counter past its
//!   limit. What a line held and did not spend is given back; a line that holds nothing (never
//!   held, settled, expired) counts nothing. A committed line's used counts grow by exactly what
//!   it spent. Reserving, committing and releasing are idempotent by reservation id: a
//!   reservation of an id already held holds nothing more, renews its lease and answers the
//!   counts of the others. Adjustments saturate at 0 and at `u64::MAX`; a reservation whose
//!   lease has passed stops counting and commits nothing.
//! * The user with a record: every action counter without a period exists and reads what the
//!   decision reads in the record (the action's own count, else the plain count, else 0; the
//!   item count is the `create` count, which for a plainly counted resource is its plain count);
//!   the seed is not used. A reservation writes nothing in the record; a commit, an adjustment
//!   or a set writes the action's own count, or the item count (the `create` count when the
//!   resource has one or is counted per action only, else the plain count). A resource the
//!   record does not name becomes a plain count of 0 first, so that the other actions go on
//!   reading 0. Pools and grants are never in the record. The record, resource by resource, is
//!   the model's.
//! * The user without a record stays unknown to the plan store. A counter of theirs starts at
//!   its seed at its first successful reservation that holds units on it (a refused one creates
//!   nothing), or at an adjustment or set: `Seed::Count(n)` at n, `Seed::Items(n)` at the used
//!   count of the user's item counter of the resource when that exists, else n. A grant's
//!   counter starts at 0.
//! * Each action counter and each pool also has period counters (`Counter::in_period`: two
//!   months and a day), kept beside the record and never in it, which start at their seed's
//!   count; a call that touches a month's counter (every call but `get`) forgets the same
//!   count's counter of an earlier month.
//!
//! Leases run on tokio's clock, paused here and stepped by the input, so expiry is covered.
//!
//! The input is bytes: seven of setup, as [`run`] reads them (the record's usage of each
//! resource, as [`record_usage`] reads them, then the grants' amounts), then six per call
//! `[op, which, a, b, c, d]`, as [`run`] reads them.

#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower_plans::catalog::{Period, Window};
use tower_plans::store::{
    Count, Counter, Held, Hold, Line, ReservationId, Seed, Spill, StoreFuture,
};
use tower_plans::{Action, Catalog, MemoryStore, PlanStore, Subscriber, UsageStore};

const USERS: [&str; 2] = ["rec", "bare"];
const RESOURCES: [&str; 2] = ["clients", "tasks"];
const POOLS: [&str; 2] = ["ai", "img"];
/// Each pool's grants: the same ids in both pools, which are still different grants.
const GRANTS: [&str; 3] = ["g0", "g1", "g2"];

/// What a counter counts, and where the memory store keeps it: the item count and the
/// `create` count are one counter in this store; `destroy` is `delete`.
fn counted(index: u8) -> (Option<Action>, Slot) {
    match index % 5 {
        0 => (None, Slot::Items),
        1 => (Some(Action::Create), Slot::Items),
        2 => (Some(Action::Show), Slot::Show),
        3 => (Some(Action::Custom(Arc::from("destroy"))), Slot::Delete),
        _ => (Some(Action::custom("export")), Slot::Export),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Slot {
    Items,
    Show,
    Delete,
    Export,
}

impl Slot {
    /// The per-action key of the slot in a subscriber record.
    fn key(self) -> &'static str {
        match self {
            Slot::Items => "create",
            Slot::Show => "show",
            Slot::Delete => "delete",
            Slot::Export => "export",
        }
    }

    /// The action whose usage the decision reads for the slot.
    fn action(self) -> Action {
        match self {
            Slot::Items => Action::Create,
            Slot::Show => Action::Show,
            Slot::Delete => Action::Delete,
            Slot::Export => Action::custom("export"),
        }
    }
}

/// What one counter counts: an action slot of a resource, a pool's allowance, or one grant of
/// a pool (by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum What {
    Slot(usize, Slot),
    Credits(usize),
    Grant(usize, usize),
}

/// One counter: user, what it counts and period (0: none, 1: November 2026, 2: December 2026,
/// 3: the day 2026-11-29; a grant's is always 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    user: usize,
    what: What,
    period: u8,
}

/// 2026-11-29T12:00:00Z.
const NOON: u64 = 1_795_953_600_000;

/// The window of a period index.
fn window(period: u8) -> Option<Window> {
    match period {
        1 => Some(Period::Month.window(NOON)),
        2 => Some(Period::Month.window(Period::Month.window(NOON).end())),
        3 => Some(Period::Day.window(NOON)),
        _ => None,
    }
}

/// The model of one resource in the record: its plain count and the counts actions have of
/// their own (the item count's own is the `create` count).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Recorded {
    plain: Option<u64>,
    own: BTreeMap<Slot, u64>,
}

impl Recorded {
    /// What the decision reads for the slot's action: its own count, else the plain count,
    /// else 0.
    fn read(&self, slot: Slot) -> u64 {
        self.own.get(&slot).copied().or(self.plain).unwrap_or(0)
    }

    /// Writes the slot's count: the action's own count; for the item count, the `create`
    /// count when there is one or there is no plain count, else the plain count.
    fn write(&mut self, slot: Slot, count: u64) {
        if slot == Slot::Items && !self.own.contains_key(&Slot::Items) && self.plain.is_some() {
            self.plain = Some(count);
        } else {
            self.own.insert(slot, count);
        }
    }
}

/// What one reservation holds on one counter, and the instant (ns since the start) its lease
/// ends (`None`: never).
#[derive(Clone, Copy, Debug)]
struct Part {
    id: u128,
    units: u64,
    end: Option<u128>,
}

impl Part {
    fn live(&self, now: u128) -> bool {
        self.end.is_none_or(|end| now < end)
    }
}

/// One counter kept beside the records: its used count (`None` until the counter exists; only
/// for counters the record does not hold) and what reservations hold on it.
#[derive(Clone, Debug, Default)]
struct Entry {
    used: Option<u64>,
    parts: Vec<Part>,
}

/// One line of a reservation, as the target builds it: the counter (as the store and as the
/// model name it), its units, limit and seed, and its grants with their amounts.
#[derive(Clone, Debug)]
struct LineSpec {
    counter: Counter,
    key: Key,
    units: u64,
    limit: Option<u64>,
    seed: Seed,
    grants: Vec<(Counter, Key, u64)>,
}

impl LineSpec {
    /// The line's parts, in the order they are spent: its counter (with its limit and seed),
    /// then its grants (with their amounts; a grant starts at 0).
    fn parts(&self) -> Vec<(Key, Option<u64>, Seed)> {
        std::iter::once((self.key, self.limit, self.seed))
            .chain(
                self.grants
                    .iter()
                    .map(|(_, key, amount)| (*key, Some(*amount), Seed::Count(0))),
            )
            .collect()
    }

    fn line(&self) -> Line {
        let mut line = Line::new(self.counter.clone(), self.units)
            .limit(self.limit)
            .seed(self.seed);
        for (counter, _, amount) in &self.grants {
            line = line.grant(Spill::new(counter.clone(), *amount));
        }
        line
    }
}

/// One reservation: its id and its lines.
#[derive(Clone, Debug)]
struct HoldSpec {
    id: u128,
    lines: Vec<LineSpec>,
}

impl HoldSpec {
    fn hold(&self) -> Hold {
        let mut hold = Hold::new(ReservationId::from_u128(self.id));
        for line in &self.lines {
            hold.push(line.line());
        }
        hold
    }

    fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.lines
            .iter()
            .flat_map(|line| line.parts().into_iter().map(|(key, _, _)| key))
    }
}

/// What a reservation answers: each line's count, or the line that did not fit and its count.
type Answer = Result<Vec<Count>, (usize, Count)>;

/// The model: the record's usage of each resource (`None`: not named), the other counters and
/// what is held on all of them, and the time.
#[derive(Debug, Default)]
struct Model {
    record: [Option<Recorded>; 2],
    entries: HashMap<Key, Entry>,
    now: u128,
}

impl Model {
    /// Whether the record holds the counter's count: an action counter without a period of the
    /// user with a record.
    fn in_record(key: Key) -> bool {
        key.user == 0 && key.period == 0 && matches!(key.what, What::Slot(..))
    }

    /// The used count, `None` while the counter does not exist.
    fn used(&self, key: Key) -> Option<u64> {
        match key.what {
            What::Slot(resource, slot) if Self::in_record(key) => Some(
                self.record[resource]
                    .as_ref()
                    .map_or(0, |usage| usage.read(slot)),
            ),
            _ => self.entries.get(&key).and_then(|entry| entry.used),
        }
    }

    fn set_used(&mut self, key: Key, used: u64) {
        match key.what {
            What::Slot(resource, slot) if Self::in_record(key) => self.record[resource]
                .get_or_insert_with(|| Recorded {
                    plain: Some(0),
                    own: BTreeMap::new(),
                })
                .write(slot, used),
            _ => self.entries.entry(key).or_default().used = Some(used),
        }
    }

    /// Where a counter that does not exist yet starts.
    fn seeded(&self, key: Key, seed: Seed) -> u64 {
        match (seed, key.what) {
            (Seed::Count(n), _) => n,
            // Only an action counter without a period follows the item counter.
            (Seed::Items(n), What::Slot(resource, _)) if key.period == 0 => self
                .used(Key {
                    user: key.user,
                    what: What::Slot(resource, Slot::Items),
                    period: 0,
                })
                .unwrap_or(n),
            (Seed::Items(n), _) => n,
        }
    }

    /// The used count, or where `seed` starts it.
    fn used_or(&self, key: Key, seed: Seed) -> u64 {
        self.used(key).unwrap_or_else(|| self.seeded(key, seed))
    }

    /// The units held on the counter by live reservations other than `except`.
    fn held(&self, key: Key, except: Option<u128>) -> u64 {
        self.entries.get(&key).map_or(0, |entry| {
            entry
                .parts
                .iter()
                .filter(|part| part.live(self.now) && Some(part.id) != except)
                .fold(0u64, |sum, part| sum.saturating_add(part.units))
        })
    }

    /// The live part `id` holds on the counter.
    fn part(&mut self, key: Key, id: u128) -> Option<&mut Part> {
        let now = self.now;
        self.entries
            .get_mut(&key)?
            .parts
            .iter_mut()
            .find(|part| part.id == id && part.live(now))
    }

    /// Takes the live part `id` holds on the counter away, and returns its units.
    fn take(&mut self, key: Key, id: u128) -> Option<u64> {
        let now = self.now;
        let entry = self.entries.get_mut(&key)?;
        let at = entry
            .parts
            .iter()
            .position(|part| part.id == id && part.live(now))?;
        Some(entry.parts.remove(at).units)
    }

    fn count(&self, key: Key) -> Option<Count> {
        let held = self.held(key, None);
        match self.used(key) {
            None if held == 0 => None,
            used => Some(Count {
                used: used.unwrap_or(0),
                held,
            }),
        }
    }

    /// What a call that changes the counter does first: it forgets what expired, and
    /// December's counter replaces November's.
    fn touch(&mut self, key: Key) {
        if key.period == 2 {
            self.entries.remove(&Key { period: 1, ..key });
        }
        let now = self.now;
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.parts.retain(|part| part.live(now));
        }
    }

    /// What each part of `line` takes when it fits: `count` is its counter's.
    fn fit(&self, line: &LineSpec, count: Count, id: u128) -> Option<Vec<u64>> {
        let room = |limit: Option<u64>, total: u128| match limit {
            None => u128::MAX,
            Some(limit) => u128::from(limit).saturating_sub(total),
        };
        let own_room = room(line.limit, u128::from(count.used) + u128::from(count.held));
        let units = u128::from(line.units);
        if line.grants.is_empty() {
            return (units <= own_room).then(|| vec![line.units]);
        }
        let own = units.min(own_room);
        let mut rest = units - own;
        let mut takes = vec![own as u64];
        for (_, key, amount) in &line.grants {
            let total =
                u128::from(self.used(*key).unwrap_or(0)) + u128::from(self.held(*key, Some(id)));
            let take = rest.min(room(Some(*amount), total));
            takes.push(take as u64);
            rest -= take;
        }
        (rest == 0).then_some(takes)
    }

    /// `UsageStore::reserve`, with the lease ending at `end`; also whether it is a fresh
    /// reservation that holds its units (not a refusal, nor a renewal).
    fn reserve(&mut self, hold: &HoldSpec, end: Option<u128>) -> (Answer, bool) {
        let id = hold.id;
        let keys: Vec<Key> = hold.keys().collect();
        for &key in &keys {
            self.touch(key);
        }
        let renewed = keys.iter().any(|&key| self.part(key, id).is_some());
        let mut counts = Vec::new();
        let mut takes = Vec::new();
        for (index, line) in hold.lines.iter().enumerate() {
            let count = Count {
                used: self.used_or(line.key, line.seed),
                held: self.held(line.key, Some(id)),
            };
            counts.push(count);
            if renewed {
                continue;
            }
            match self.fit(line, count, id) {
                Some(parts) => takes.push(parts),
                None => return (Err((index, count)), false),
            }
        }
        if renewed {
            // Nothing more is held; the lease is renewed.
            for &key in &keys {
                if let Some(part) = self.part(key, id) {
                    part.end = end;
                }
            }
            return (Ok(counts), false);
        }
        for (line, parts) in hold.lines.iter().zip(&takes) {
            for ((key, _, seed), &units) in line.parts().into_iter().zip(parts) {
                if units == 0 {
                    continue;
                }
                if self.used(key).is_none() {
                    let start = self.seeded(key, seed);
                    self.set_used(key, start);
                }
                self.entries
                    .entry(key)
                    .or_default()
                    .parts
                    .push(Part { id, units, end });
            }
        }
        (Ok(counts), true)
    }

    /// `UsageStore::commit`.
    fn commit(&mut self, hold: &HoldSpec, spent: &[u64]) {
        let id = hold.id;
        for (index, line) in hold.lines.iter().enumerate() {
            let parts = line.parts();
            let mut held = Vec::new();
            for &(key, _, _) in &parts {
                self.touch(key);
                held.push(self.take(key, id));
            }
            if held.iter().all(Option::is_none) {
                continue;
            }
            let mut rest = spent.get(index).copied().unwrap_or(line.units);
            // On what was held first, in order.
            let mut takes: Vec<u64> = held
                .iter()
                .map(|held| {
                    let take = rest.min(held.unwrap_or(0));
                    rest -= take;
                    take
                })
                .collect();
            // Beyond: the counter while its limit allows, then the grants while their amounts
            // allow, then the counter past its limit.
            for (at, &(key, cap, seed)) in parts.iter().enumerate() {
                if rest == 0 {
                    break;
                }
                let take = match cap {
                    None => rest,
                    Some(cap) => {
                        let total = u128::from(self.used_or(key, seed))
                            + u128::from(self.held(key, Some(id)))
                            + u128::from(takes[at]);
                        u128::from(rest).min(u128::from(cap).saturating_sub(total)) as u64
                    }
                };
                takes[at] += take;
                rest -= take;
            }
            takes[0] += rest;
            for (&(key, _, seed), &units) in parts.iter().zip(&takes) {
                if units > 0 {
                    let used = self.used_or(key, seed).saturating_add(units);
                    self.set_used(key, used);
                }
            }
        }
    }

    /// `UsageStore::release`.
    fn release(&mut self, hold: &HoldSpec) {
        for key in hold.keys().collect::<Vec<_>>() {
            self.touch(key);
            self.take(key, hold.id);
        }
    }
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

const LEASES_MS: [Option<u64>; 8] = [
    Some(0),
    Some(1),
    Some(10),
    Some(100),
    Some(1000),
    Some(5000),
    None,
    None,
];
const SEEDS: [u64; 8] = [0, 1, 2, 3, 5, u64::MAX - 1, u64::MAX, 7];
/// A pool's limit, by the high half of the reservation's `d` byte.
const POOL_LIMITS: [Option<u64>; 16] = [
    Some(0),
    Some(1),
    Some(2),
    Some(3),
    Some(4),
    Some(5),
    Some(6),
    Some(8),
    Some(10),
    Some(12),
    Some(16),
    Some(20),
    Some(24),
    Some(32),
    Some(u64::MAX),
    None,
];
/// The grants a pool line lists, in its order, by the low half of the reservation's `d` byte.
const GRANT_LISTS: [&[usize]; 16] = [
    &[],
    &[0],
    &[1],
    &[2],
    &[0, 1],
    &[1, 0],
    &[0, 2],
    &[2, 0],
    &[1, 2],
    &[2, 1],
    &[0, 1, 2],
    &[0, 2, 1],
    &[1, 0, 2],
    &[1, 2, 0],
    &[2, 0, 1],
    &[2, 1, 0],
];

/// The record's usage of one resource, from two setup bytes: none, a plain count, counts per
/// action, or a plain count with a count of its own for `show` or for `create` (as counted
/// usage and `Usage::set_action` leave a record).
fn record_usage(form: u8, value: u8, resource: &str, record: &mut Subscriber) -> Option<Recorded> {
    let (plain, own) = match form % 5 {
        0 => return None,
        1 => (Some(u64::from(value)), vec![]),
        2 => {
            let mut own = vec![(Slot::Show, u64::from(value & 7))];
            if value & 8 != 0 {
                own.push((Slot::Items, u64::from(value >> 4)));
            }
            (None, own)
        }
        3 => (
            Some(u64::from(value & 15)),
            vec![(Slot::Show, u64::from(value >> 4))],
        ),
        _ => (
            Some(u64::from(value & 15)),
            vec![(Slot::Items, u64::from(value >> 4))],
        ),
    };
    if let Some(plain) = plain {
        record.usage.set(resource, plain);
    }
    for &(slot, count) in &own {
        record.usage.set_action(resource, &slot.action(), count);
    }
    Some(Recorded {
        plain,
        own: own.into_iter().collect(),
    })
}

/// Which way a call reaches the store, and how its answer is taken.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The store itself, its answer taken at once.
    Ready,
    /// The store itself, awaited.
    Direct,
    /// Through an `Arc`, awaited.
    Arc,
    /// Through a `Box<dyn UsageStore>`, awaited.
    Dyn,
}

struct Stores {
    direct: MemoryStore,
    arc: Arc<MemoryStore>,
    dyn_store: Box<dyn UsageStore>,
}

/// The answer of one store call, which the memory store knows at once.
async fn answer<T>(via: Via, future: StoreFuture<'_, T>) -> T {
    assert!(future.is_ready(), "the memory store answers at once");
    let result = match via {
        Via::Ready => future.into_ready().expect("a ready answer"),
        Via::Direct | Via::Arc | Via::Dyn => future.await,
    };
    result.expect("the memory store does not fail")
}

/// Calls one `UsageStore` method the way `via` says.
macro_rules! call {
    ($stores:expr, $via:expr, $method:ident($($arg:expr),*)) => {{
        let via = $via;
        let future = match via {
            Via::Ready | Via::Direct => UsageStore::$method(&$stores.direct, $($arg),*),
            Via::Arc => UsageStore::$method(&$stores.arc, $($arg),*),
            Via::Dyn => UsageStore::$method(&$stores.dyn_store, $($arg),*),
        };
        answer(via, future).await
    }};
}

/// The counter a byte names. Bit 7 clear, an action counter: bit 0 the user, bit 1 the
/// resource, bits 2 to 4 what it counts ([`counted`]), bits 5 and 6 its period. Bit 7 set, a
/// pool's counter: bit 0 the user, bit 1 the pool, bits 2 to 4 grant `g0` to `g2` (0 to 2) or
/// the pool's allowance (3 to 7), bits 5 and 6 the allowance's period.
fn counter_of(byte: u8) -> (Counter, Key) {
    let user = usize::from(byte & 1);
    let index = usize::from((byte >> 1) & 1);
    let mut period = (byte >> 5) & 3;
    let (mut counter, what) = if byte & 0x80 == 0 {
        let (action, slot) = counted((byte >> 2) & 7);
        let counter = match action {
            None => Counter::items(USERS[user], RESOURCES[index]),
            Some(action) => Counter::action(USERS[user], RESOURCES[index], action),
        };
        (counter, What::Slot(index, slot))
    } else {
        match usize::from((byte >> 2) & 7) {
            grant @ 0..=2 => {
                period = 0;
                let counter = Counter::grant(USERS[user], POOLS[index], GRANTS[grant]);
                (counter, What::Grant(index, grant))
            }
            _ => (
                Counter::credits(USERS[user], POOLS[index]),
                What::Credits(index),
            ),
        }
    };
    if let Some(window) = window(period) {
        counter = counter.in_period(window);
    }
    (counter, Key { user, what, period })
}

/// Every counter, some under two names (the item count and the `create` count).
fn every_counter() -> impl Iterator<Item = (Counter, Key)> {
    (0..=255u8)
        .filter(|byte| match (byte & 0x80 != 0, (byte >> 2) & 7) {
            (false, counted) => counted < 5,
            (true, grant @ 0..=2) => grant < 3 && byte & 0x60 == 0,
            (true, part) => part == 3,
        })
        .map(counter_of)
}

/// The store's answer to a reservation, as the model gives it.
fn held_answer(held: Held) -> Answer {
    match held {
        Held::Reserved(counts) => Ok(counts.to_vec()),
        Held::Refused { line, count } => Err((line, count)),
    }
}

/// The spent units of a line that held `units`, from one byte of a commit (`None`: the slice
/// of spent units ends before this line).
fn spent_of(byte: u8, units: u64) -> Option<u64> {
    match byte {
        0xFF => None,
        0xFE => Some(u64::MAX),
        0x80..=0xFD => Some(units + u64::from(byte & 0x7F)),
        _ => Some(u64::from(byte)),
    }
}

/// The reservation a call's bytes describe (see [`run`]), named by `id`; `amounts` are the
/// grants' amounts.
fn hold_of(call: [u8; 6], amounts: &[u64; 6], id: u128) -> HoldSpec {
    let [op, which, a, b, c, d] = call;
    let seed_count = SEEDS[usize::from(b >> 5)];
    let units = u64::from(c & 15) + 1;
    let pool = match (c >> 4) & 3 {
        0 => None,
        1 | 3 => Some(0),
        _ => Some(1),
    };
    let (action_counter, action_key) = counter_of(which & 0x7F);
    let mut lines = Vec::new();
    if pool.is_none() || which & 0x80 == 0 {
        let limit = match a {
            0xFF => None,
            0xFE => Some(u64::MAX),
            0xFD => Some(u64::MAX - 1),
            other => Some(u64::from(other % 32)),
        };
        let seed = if op & 0x40 != 0 {
            Seed::Items(seed_count)
        } else {
            Seed::Count(seed_count)
        };
        lines.push(LineSpec {
            counter: action_counter,
            key: action_key,
            // Beside a pool line, the action takes one unit, as the layer reserves it.
            units: if pool.is_some() { 1 } else { units },
            limit,
            seed,
            grants: Vec::new(),
        });
    }
    if let Some(pool) = pool {
        let user = action_key.user;
        let period = c >> 6;
        let mut counter = Counter::credits(USERS[user], POOLS[pool]);
        if let Some(window) = window(period) {
            counter = counter.in_period(window);
        }
        let key = Key {
            user,
            what: What::Credits(pool),
            period,
        };
        let grants = GRANT_LISTS[usize::from(d & 15)]
            .iter()
            .map(|&grant| {
                (
                    Counter::grant(USERS[user], POOLS[pool], GRANTS[grant]),
                    Key {
                        user,
                        what: What::Grant(pool, grant),
                        period: 0,
                    },
                    amounts[pool * 3 + grant],
                )
            })
            .collect();
        lines.push(LineSpec {
            counter,
            key,
            units,
            limit: POOL_LIMITS[usize::from(d >> 4)],
            // The layer starts a pool at 0; the seed's count, when asked.
            seed: Seed::Count(if op & 0x80 != 0 { seed_count } else { 0 }),
            grants,
        });
    }
    HoldSpec { id, lines }
}

/// The counts of a hold's parts, line by line, as the store reads them.
type Snapshot = Vec<Vec<Option<Count>>>;

/// The state of the counters of `hold`'s parts.
async fn snapshot(stores: &Stores, hold: &HoldSpec) -> Snapshot {
    let mut lines = Vec::new();
    for line in &hold.lines {
        let mut parts = vec![call!(stores, Via::Ready, get(&line.counter))];
        for (counter, _, _) in &line.grants {
            parts.push(call!(stores, Via::Ready, get(counter)));
        }
        lines.push(parts);
    }
    lines
}

/// What a reservation did, from the counts of its parts before and after, whatever the model
/// says. A fresh one: each line holds its units (while its lease runs), and no counter that
/// gained a hold is past its limit (or amount). A refusal changes nothing; a renewal holds
/// nothing more (and a lease renewed for no time ends at once).
fn check_reserved(
    hold: &HoldSpec,
    before: &Snapshot,
    after: &Snapshot,
    fresh: bool,
    reserved: bool,
    live: bool,
) {
    if !fresh {
        if !reserved || live {
            assert_eq!(before, after, "{hold:?} changed something");
        } else {
            let used = |counts: &Snapshot| -> Vec<Option<u64>> {
                counts
                    .iter()
                    .flatten()
                    .map(|count| count.map(|count| count.used))
                    .collect()
            };
            assert_eq!(used(before), used(after), "{hold:?} used something");
        }
        return;
    }
    for ((line, before), after) in hold.lines.iter().zip(before).zip(after) {
        let mut gained = 0;
        for (((_, cap, _), before), after) in line.parts().iter().zip(before).zip(after) {
            let (before, after) = (before.unwrap_or_default(), after.unwrap_or_default());
            let grew = after
                .held
                .checked_sub(before.held)
                .unwrap_or_else(|| panic!("{line:?} freed held units: {before:?} {after:?}"));
            gained += grew;
            if let (true, Some(cap)) = (grew > 0, cap) {
                assert!(
                    u128::from(after.used) + u128::from(after.held) <= u128::from(*cap),
                    "{line:?}: {after:?} over {cap}"
                );
            }
        }
        if live {
            assert_eq!(gained, line.units, "{line:?} holds its units");
        }
    }
}

/// What a commit did, whatever the model says: a line that held units counts what it spent, in
/// full, on its parts; one that held nothing counts nothing. Lines whose counter did not exist
/// before, or that reached `u64::MAX`, are left to the model.
fn check_committed(hold: &HoldSpec, spent: &[u64], before: &Snapshot, after: &Snapshot) {
    let sum = |counts: &Vec<Option<Count>>, of: fn(&Count) -> u64| -> u128 {
        counts
            .iter()
            .flatten()
            .map(|count| u128::from(of(count)))
            .sum()
    };
    for (index, ((line, before), after)) in hold.lines.iter().zip(before).zip(after).enumerate() {
        if before[0].is_none() || after.iter().flatten().any(|count| count.used == u64::MAX) {
            continue;
        }
        let freed = sum(before, |count| count.held)
            .checked_sub(sum(after, |count| count.held))
            .expect("a commit holds nothing more");
        let spent = spent.get(index).copied().unwrap_or(line.units);
        let want = if freed > 0 { u128::from(spent) } else { 0 };
        let counted = sum(after, |count| count.used) - sum(before, |count| count.used);
        assert_eq!(counted, want, "commit of {line:?}");
    }
}

/// Runs the calls.
///
/// Setup: bytes 0 to 3 the record's usage of each resource ([`record_usage`], two bytes a
/// resource), bytes 4 to 6 the amounts of the grants (a half byte each, low half first: pool
/// `ai`'s `g0`, `g1`, `g2`, then `img`'s).
///
/// A call is `[op, which, a, b, c, d]`. `op` bits 0 to 2 say which (0 and 7 reserve, 1
/// commit, 2 release, 3 adjust, 4 set, 5 get, 6 a clock step), bits 3 and 4 the way
/// ([`Via`]), bit 5 a retry (of a reservation's last hold, or a commit or release made twice),
/// bit 6 the seed's kind (`Seed::Items` when set, for an action counter), bit 7 a reservation's
/// pool line starting at the seed's count (else at 0, as the layer starts it). `which` names a
/// counter ([`counter_of`]).
///
/// * Reserve: `b` bits 0 and 1 the reservation (four, each with an id and its last hold),
///   bits 2 to 4 the lease ([`LEASES_MS`]), bits 5 to 7 the seed's count ([`SEEDS`]). `c` bits
///   0 to 3 the units less one, bits 4 and 5 the pool (none, `ai`, `img`, `ai`), bits 6 and 7
///   its period. `d` bits 0 to 3 the grants the pool line lists ([`GRANT_LISTS`]), bits 4 to
///   7 its limit ([`POOL_LIMITS`]). The action line is `which`'s action counter (bit 7
///   cleared) under `a`'s limit (`0xFF` none, `0xFE` `u64::MAX`, `0xFD` `u64::MAX - 1`, else
///   `a % 32`); with a pool, a `which` with bit 7 set leaves it out.
/// * Commit and release: `b` bits 0 and 1 the reservation, whose last hold is settled (one
///   unit of `which` when it has none); a commit's `c` and `d` are what its lines spent
///   ([`spent_of`]).
/// * Adjust: `a` the delta (as an `i8`; `0x80` `i64::MIN`, `0x7F` `i64::MAX`), `b` bits 5 to 7
///   the seed's count. Set: `a` the count (`0xFF` `u64::MAX`, `0xFE` `u64::MAX - 1`).
/// * Clock step: `a` and `b` a little-endian number of milliseconds, below 10 000.
async fn run(data: &[u8]) {
    let Some((setup, calls)) = data.split_first_chunk::<7>() else {
        return;
    };
    let catalog = Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#).expect("a catalog");
    let store = MemoryStore::new(catalog);
    let mut model = Model::default();
    let mut record = Subscriber::new().with_name("rec");
    for (r, resource) in RESOURCES.iter().enumerate() {
        model.record[r] = record_usage(setup[2 * r], setup[2 * r + 1], resource, &mut record);
    }
    store.insert_user("rec", record);
    let mut amounts = [0; 6];
    for (at, amount) in amounts.iter_mut().enumerate() {
        *amount = u64::from(setup[4 + at / 2] >> (4 * (at % 2)) & 15);
    }
    let stores = Stores {
        direct: store.clone(),
        arc: Arc::new(store.clone()),
        dyn_store: Box::new(store.clone()),
    };
    let counters: Vec<(Counter, Key)> = every_counter().collect();
    // Each reservation's last hold.
    let mut holds: [Option<HoldSpec>; 4] = Default::default();

    for call in calls.chunks_exact(6).take(64) {
        let [op, which, a, b, c, d] = [call[0], call[1], call[2], call[3], call[4], call[5]];
        let via = match (op >> 3) & 3 {
            0 => Via::Ready,
            1 => Via::Direct,
            2 => Via::Arc,
            _ => Via::Dyn,
        };
        let retry = op & 0x20 != 0;
        let (counter, key) = counter_of(which);
        let seed = {
            let n = SEEDS[usize::from(b >> 5)];
            if op & 0x40 != 0 && matches!(key.what, What::Slot(..)) {
                Seed::Items(n)
            } else {
                Seed::Count(n)
            }
        };
        let slot = usize::from(b & 3);
        let id = slot as u128 + 1;
        // The reservation to settle: its last hold, or one unit of `which`.
        let settled = || {
            holds[slot].clone().unwrap_or_else(|| HoldSpec {
                id,
                lines: vec![LineSpec {
                    counter: counter.clone(),
                    key,
                    units: 1,
                    limit: None,
                    seed: Seed::Count(0),
                    grants: Vec::new(),
                }],
            })
        };
        match op % 8 {
            0 | 7 => {
                let spec = match (&holds[slot], retry) {
                    (Some(last), true) => last.clone(),
                    _ => hold_of([op, which, a, b, c, d], &amounts, id),
                };
                holds[slot] = Some(spec.clone());
                let lease_ms = LEASES_MS[usize::from((b >> 2) & 7)];
                let lease = lease_ms.map_or(Duration::MAX, Duration::from_millis);
                let end = lease_ms.map(|ms| model.now + u128::from(ms) * 1_000_000);
                let hold = spec.hold();
                let before = snapshot(&stores, &spec).await;
                let got = held_answer(call!(stores, via, reserve(&hold, lease)));
                let (want, fresh) = model.reserve(&spec, end);
                assert_eq!(got, want, "reserve {hold:?} for {lease:?}");
                let after = snapshot(&stores, &spec).await;
                let live = end.is_none_or(|end| model.now < end);
                check_reserved(&spec, &before, &after, fresh, want.is_ok(), live);
            }
            1 => {
                let spec = settled();
                let hold = spec.hold();
                let mut spent = Vec::new();
                for (byte, line) in [c, d].into_iter().zip(&spec.lines) {
                    match spent_of(byte, line.units) {
                        Some(units) => spent.push(units),
                        None => break,
                    }
                }
                let before = snapshot(&stores, &spec).await;
                call!(stores, via, commit(&hold, &spent));
                model.commit(&spec, &spent);
                let after = snapshot(&stores, &spec).await;
                check_committed(&spec, &spent, &before, &after);
                if retry {
                    call!(stores, via, commit(&hold, &spent));
                    model.commit(&spec, &spent);
                    assert_eq!(
                        snapshot(&stores, &spec).await,
                        after,
                        "a second commit of {hold:?}"
                    );
                }
            }
            2 => {
                let spec = settled();
                let hold = spec.hold();
                call!(stores, via, release(&hold));
                model.release(&spec);
                if retry {
                    let before = snapshot(&stores, &spec).await;
                    call!(stores, via, release(&hold));
                    model.release(&spec);
                    assert_eq!(
                        snapshot(&stores, &spec).await,
                        before,
                        "a second release of {hold:?}"
                    );
                }
            }
            3 => {
                let delta = match a {
                    0x80 => i64::MIN,
                    0x7F => i64::MAX,
                    other => i64::from(other as i8),
                };
                let got = call!(stores, via, adjust(&counter, delta, seed));
                model.touch(key);
                let used = model.used_or(key, seed).saturating_add_signed(delta);
                model.set_used(key, used);
                assert_eq!(got, used, "adjust {counter} by {delta} {seed:?}");
            }
            4 => {
                let used = match a {
                    0xFF => u64::MAX,
                    0xFE => u64::MAX - 1,
                    other => u64::from(other),
                };
                call!(stores, via, set(&counter, used));
                model.touch(key);
                model.set_used(key, used);
            }
            5 => {
                let got = call!(stores, via, get(&counter));
                assert_eq!(got, model.count(key), "get {counter}");
            }
            _ => {
                let ms = u64::from(u16::from_le_bytes([a, b]) % 10_000);
                tokio::time::advance(Duration::from_millis(ms)).await;
                model.now += u128::from(ms) * 1_000_000;
            }
        }

        // Every counter reads as the model's; the record's counters read what the decision
        // reads in the record.
        let rec = store.subscriber("rec").expect("the record stays");
        for (counter, key) in &counters {
            let key = *key;
            let got = call!(stores, Via::Ready, get(counter));
            assert_eq!(got, model.count(key), "{counter} after {call:?}");
            if let (true, What::Slot(resource, slot)) = (Model::in_record(key), key.what) {
                let got = got.expect("a counter of a user with a record exists");
                assert_eq!(
                    got.used,
                    rec.usage.get(RESOURCES[resource], &slot.action()),
                    "{counter} reads what the decision reads in the record"
                );
            }
        }
        // The record holds the model's counts, and nothing else.
        let named = model.record.iter().flatten().count();
        assert_eq!(rec.usage.len(), named, "the record's usage {:?}", rec.usage);
        for (r, resource) in RESOURCES.iter().enumerate() {
            let got = rec.usage.resource(resource).map(|usage| {
                let own: BTreeMap<String, u64> = usage
                    .actions()
                    .map(|(action, n)| (action.to_string(), n))
                    .collect();
                (usage.count(), own)
            });
            let want = model.record[r].as_ref().map(|usage| {
                let own: BTreeMap<String, u64> = usage
                    .own
                    .iter()
                    .map(|(slot, n)| (slot.key().to_owned(), *n))
                    .collect();
                (usage.plain, own)
            });
            assert_eq!(got, want, "the record's {resource} after {call:?}");
        }
    }
    assert!(
        store.subscriber("bare").is_none(),
        "a user without a record got one"
    );
    assert!(store.user("bare").await.expect("no failure").is_none());
    assert_eq!(store.len(), 1);
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(run(data));
});
