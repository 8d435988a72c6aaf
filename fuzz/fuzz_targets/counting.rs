//! The counting arithmetic: `MemoryStore` as a `UsageStore`, against a plain model.
//!
//! A sequence of reserve, commit, release, adjust, set and get calls, and of clock steps, on a
//! handful of counters (two users, one with a subscriber record and one without; two resources;
//! the item count and some action counts), on the store itself, through an `Arc` and through a
//! `Box<dyn UsageStore>`, taking each answer at once (`StoreFuture::into_ready`) or awaiting it.
//! The memory store always answers at once. After every call the store answers as the model
//! does and every counter reads as the model's:
//!
//! * a fresh reservation succeeds exactly when `used + held + 1 <= limit`, and then
//!   `used + held <= limit` holds; commit and release are idempotent by reservation id;
//!   adjustments saturate at 0 and at `u64::MAX`; a reservation whose lease has passed stops
//!   counting and commits nothing.
//! * The user with a record: every counter without a period exists and reads what the decision
//!   reads in the record (the action's own count, else the plain count, else 0; the item count
//!   is the `create` count, which for a plainly counted resource is its plain count); the seed
//!   is not used. A reservation writes nothing in the record; a commit, an adjustment or a set
//!   writes the action's own count, or the item count (the `create` count when the resource has
//!   one or is counted per action only, else the plain count). A resource the record does not
//!   name becomes a plain count of 0 first, so that the other actions go on reading 0. The
//!   record, resource by resource, is the model's.
//! * The user without a record stays unknown to the plan store. A counter of theirs starts at
//!   its seed at its first successful reservation (a refused one creates nothing), adjustment
//!   or set: `Seed::Count(n)` at n, `Seed::Items(n)` at the used count of the user's item
//!   counter of the resource when that exists, else n.
//! * Each counter also has period counters (`Counter::in_period`: two months and a day), kept
//!   beside the record and never in it, which start at their seed's count; a change to a
//!   month's counter forgets the same count's counter of an earlier month.
//!
//! Leases run on tokio's clock, paused here and stepped by the input, so expiry is covered.
//!
//! The input is bytes: four of setup (the record's usage of each resource, as [`record_usage`]
//! reads them), then four per call `[op, counter, a, b]`, as [`run`] reads them.

#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower_plans::catalog::{Period, Window};
use tower_plans::store::{Count, Counter, ReservationId, Reserve, Seed, StoreFuture};
use tower_plans::{Action, Catalog, MemoryStore, PlanStore, Subscriber, UsageStore};

const USERS: [&str; 2] = ["rec", "bare"];
const RESOURCES: [&str; 2] = ["clients", "tasks"];

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

/// User, resource, slot and period (0: none, 1: November 2026, 2: December 2026, 3: the day
/// 2026-11-29).
type Key = (usize, usize, Slot, u8);

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

/// One counter kept beside the records: its used count (`None` until the counter exists; only
/// for counters the record does not hold) and the reservations held, with the instant (ns
/// since the start) their lease ends (`None`: never).
#[derive(Clone, Debug, Default)]
struct Entry {
    used: Option<u64>,
    holds: Vec<(u128, Option<u128>)>,
}

impl Entry {
    fn live(&self, now: u128) -> u64 {
        self.holds
            .iter()
            .filter(|(_, end)| end.is_none_or(|end| now < end))
            .count() as u64
    }

    fn drop_expired(&mut self, now: u128) {
        self.holds
            .retain(|(_, end)| end.is_none_or(|end| now < end));
    }
}

/// The model: the record's usage of each resource (`None`: not named), the other counters and
/// the reservations of all, and the time.
#[derive(Debug, Default)]
struct Model {
    record: [Option<Recorded>; 2],
    entries: HashMap<Key, Entry>,
    now: u128,
}

impl Model {
    /// Whether the record holds the counter's count: a counter without a period of the user
    /// with a record.
    fn in_record(key: Key) -> bool {
        key.0 == 0 && key.3 == 0
    }

    /// The used count, `None` while the counter does not exist.
    fn used(&self, key: Key) -> Option<u64> {
        if Self::in_record(key) {
            Some(
                self.record[key.1]
                    .as_ref()
                    .map_or(0, |usage| usage.read(key.2)),
            )
        } else {
            self.entries.get(&key).and_then(|entry| entry.used)
        }
    }

    fn set_used(&mut self, key: Key, used: u64) {
        if Self::in_record(key) {
            self.record[key.1]
                .get_or_insert_with(|| Recorded {
                    plain: Some(0),
                    own: BTreeMap::new(),
                })
                .write(key.2, used);
        } else {
            self.entries.entry(key).or_default().used = Some(used);
        }
    }

    /// Where a counter that does not exist yet starts.
    fn seeded(&self, key: Key, seed: Seed) -> u64 {
        match seed {
            Seed::Count(n) => n,
            // Only a counter without a period follows the item counter.
            Seed::Items(n) if key.3 == 0 => self.used((key.0, key.1, Slot::Items, 0)).unwrap_or(n),
            Seed::Items(n) => n,
        }
    }

    /// The counter's entry, its expired reservations forgotten.
    fn entry(&mut self, key: Key) -> &mut Entry {
        let now = self.now;
        let entry = self.entries.entry(key).or_default();
        entry.drop_expired(now);
        entry
    }

    fn count(&self, key: Key) -> Option<Count> {
        let held = self
            .entries
            .get(&key)
            .map_or(0, |entry| entry.live(self.now));
        match self.used(key) {
            None if held == 0 => None,
            used => Some(Count {
                used: used.unwrap_or(0),
                held,
            }),
        }
    }

    /// What a change to `key`'s counter forgets: December's counter replaces November's.
    fn forget_earlier(&mut self, key: Key) {
        if key.3 == 2 {
            self.entries.remove(&(key.0, key.1, key.2, 1));
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

/// The counter a byte names: bit 0 the user, bit 1 the resource, bits 2 to 4 what it counts,
/// bits 5 and 6 its period.
fn counter_of(byte: u8) -> (Counter, Key) {
    let user = usize::from(byte & 1);
    let resource = usize::from((byte >> 1) & 1);
    let (action, slot) = counted((byte >> 2) & 7);
    let period = (byte >> 5) & 3;
    let mut counter = match action {
        None => Counter::items(USERS[user], RESOURCES[resource]),
        Some(action) => Counter::action(USERS[user], RESOURCES[resource], action),
    };
    if let Some(window) = window(period) {
        counter = counter.in_period(window);
    }
    (counter, (user, resource, slot, period))
}

fn every_counter() -> impl Iterator<Item = (Counter, Key)> {
    (0..128u8)
        .filter(|byte| (byte >> 2) & 7 < 5)
        .map(counter_of)
}

/// Runs the calls: `op` bits 0 to 2 say which (0 and 7 reserve, 1 commit, 2 release, 3
/// adjust, 4 set, 5 get, 6 a clock step), bits 3 and 4 the way ([`Via`]), bit 5 a retry of a
/// commit or release, bit 6 the seed's kind (`Seed::Items` when set); `counter` names the
/// counter ([`counter_of`]); `a` and `b` are the arguments.
async fn run(data: &[u8]) {
    let Some((setup, calls)) = data.split_first_chunk::<4>() else {
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
    let stores = Stores {
        direct: store.clone(),
        arc: Arc::new(store.clone()),
        dyn_store: Box::new(store.clone()),
    };

    for call in calls.chunks_exact(4).take(64) {
        let [op, which, a, b] = [call[0], call[1], call[2], call[3]];
        let via = match (op >> 3) & 3 {
            0 => Via::Ready,
            1 => Via::Direct,
            2 => Via::Arc,
            _ => Via::Dyn,
        };
        let retry = op & 0x20 != 0;
        let seed_of = |byte: u8| {
            let n = SEEDS[usize::from(byte >> 5)];
            if op & 0x40 != 0 {
                Seed::Items(n)
            } else {
                Seed::Count(n)
            }
        };
        let (counter, key) = counter_of(which);
        // Every call but `get` changes the counter, which forgets an earlier period's.
        if op % 8 != 5 && op % 8 != 6 {
            model.forget_earlier(key);
        }
        let id_of = |byte: u8| ReservationId::from_u128(u128::from(byte & 3) + 1);
        match op % 8 {
            0 | 7 => {
                let limit = match a {
                    0xFF => None,
                    0xFE => Some(u64::MAX),
                    0xFD => Some(u64::MAX - 1),
                    other => Some(u64::from(other % 8)),
                };
                let id = id_of(b);
                let lease_ms = LEASES_MS[usize::from((b >> 2) & 7)];
                let lease = lease_ms.map_or(Duration::MAX, Duration::from_millis);
                let seed = seed_of(b);
                let got = call!(stores, via, reserve(&counter, limit, seed, id, lease));

                let now = model.now;
                model.entry(key);
                let existing = model.used(key);
                let used = existing.unwrap_or_else(|| model.seeded(key, seed));
                let entry = model.entry(key);
                let held = entry.holds.len() as u64;
                let end = lease_ms.map(|ms| now + u128::from(ms) * 1_000_000);
                let renewed = entry.holds.iter().any(|(h, _)| *h == id.as_u128());
                let want =
                    if let Some(hold) = entry.holds.iter_mut().find(|(h, _)| *h == id.as_u128()) {
                        // Renewed: nothing more is held.
                        hold.1 = end;
                        Reserve::Reserved {
                            used,
                            held: held - 1,
                        }
                    } else if limit.is_some_and(|limit| {
                        u128::from(used) + u128::from(held) + 1 > u128::from(limit)
                    }) {
                        Reserve::Refused { used, held }
                    } else {
                        entry.holds.push((id.as_u128(), end));
                        Reserve::Reserved { used, held }
                    };
                // The counter starts at its first successful reservation; a refusal creates
                // nothing, and the record is not written.
                if want.is_reserved() && existing.is_none() {
                    model.set_used(key, used);
                }
                assert_eq!(
                    got, want,
                    "reserve {counter} limit {limit:?} {seed:?} {id:?}"
                );
                // A fresh reservation stays under its limit (a renewed one was taken under
                // another call's).
                if let (true, false, Some(limit)) = (want.is_reserved(), renewed, limit) {
                    let after = call!(stores, via, get(&counter))
                        .expect("a counter that was reserved exists");
                    assert!(
                        u128::from(after.used) + u128::from(after.held) <= u128::from(limit),
                        "{counter}: {after:?} over the limit {limit}"
                    );
                }
            }
            1 => {
                let id = id_of(b);
                let got = call!(stores, via, commit(&counter, id));
                let entry = model.entry(key);
                let held = entry.holds.iter().position(|(h, _)| *h == id.as_u128());
                let want = match held {
                    Some(at) => {
                        entry.holds.remove(at);
                        let used = model.used(key).unwrap_or(0).saturating_add(1);
                        model.set_used(key, used);
                        used
                    }
                    None => model.used(key).unwrap_or(0),
                };
                assert_eq!(got, want, "commit {counter} {id:?}");
                if retry {
                    let before = call!(stores, via, get(&counter));
                    let again = call!(stores, via, commit(&counter, id));
                    assert_eq!(again, want, "a second commit of {id:?} on {counter}");
                    assert_eq!(
                        call!(stores, via, get(&counter)),
                        before,
                        "a second commit changed {counter}"
                    );
                }
            }
            2 => {
                let id = id_of(b);
                call!(stores, via, release(&counter, id));
                model.entry(key).holds.retain(|(h, _)| *h != id.as_u128());
                if retry {
                    let before = call!(stores, via, get(&counter));
                    call!(stores, via, release(&counter, id));
                    assert_eq!(
                        call!(stores, via, get(&counter)),
                        before,
                        "a second release changed {counter}"
                    );
                }
            }
            3 => {
                let delta = match a {
                    0x80 => i64::MIN,
                    0x7F => i64::MAX,
                    other => i64::from(other as i8),
                };
                let seed = seed_of(b);
                let got = call!(stores, via, adjust(&counter, delta, seed));
                let start = model.used(key).unwrap_or_else(|| model.seeded(key, seed));
                let used = start.saturating_add_signed(delta);
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
        for (counter, key) in every_counter() {
            let got = call!(stores, Via::Ready, get(&counter));
            assert_eq!(got, model.count(key), "{counter} after {call:?}");
            if Model::in_record(key) {
                let got = got.expect("a counter of a user with a record exists");
                assert_eq!(
                    got.used,
                    rec.usage.get(RESOURCES[key.1], &key.2.action()),
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
