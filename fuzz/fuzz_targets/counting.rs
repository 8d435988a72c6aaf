//! The counting arithmetic: `MemoryStore` as a `UsageStore`, against a plain model.
//!
//! A sequence of reserve, commit, release, adjust, set and get calls, and of clock steps, on a
//! handful of counters (two users, one with a subscriber record and one without; two resources;
//! the item count and some action counts), through the async methods, the `_now` methods, an
//! `Arc` and a `Box<dyn UsageStore>`. After every call the store answers as the model does and
//! every counter reads as the model's: a fresh reservation succeeds exactly when
//! `used + held + 1 <= limit` and then `used + held <= limit` holds; commit and release are
//! idempotent by reservation id; adjustments saturate at 0 and at `u64::MAX`; a reservation
//! whose lease has passed stops counting and commits nothing. The user with a record sees the
//! counts in the record, as the `MemoryStore` docs describe; the other stays unknown to the
//! plan store. Each counter also has period counters (`Counter::in_period`: two months and a
//! day), which never show in the record, and a change to a month's counter forgets the same
//! count's counter of an earlier month.
//!
//! Leases run on tokio's clock, paused here and stepped by the input, so expiry is covered.
//!
//! The input is bytes: four of setup (the record's usage of each resource), then four per call
//! `[op, counter, a, b]`, as [`call`] reads them.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower_plans::catalog::{Period, Window};
use tower_plans::store::{Count, Counter, ReservationId, Reserve};
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// What a change to `key`'s counter forgets: December's counter replaces November's.
fn forget_earlier(model: &mut HashMap<Key, Model>, key: Key) {
    if key.3 == 2 {
        model.remove(&(key.0, key.1, key.2, 1));
    }
}

/// One counter of the model: the used count (`None` until the counter exists) and the
/// reservations held, with the instant (ns since the start) their lease ends (`None`: never).
#[derive(Clone, Debug, Default)]
struct Model {
    used: Option<u64>,
    holds: Vec<(u128, Option<u128>)>,
}

impl Model {
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

    fn count(&self, now: u128) -> Option<Count> {
        let held = self.live(now);
        if self.used.is_none() && held == 0 {
            return None;
        }
        Some(Count {
            used: self.used.unwrap_or(0),
            held,
        })
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

/// The record's usage of one resource, from two setup bytes: none, a count, or counts per
/// action.
fn record_usage(
    form: u8,
    value: u8,
    resource: &str,
    record: &mut Subscriber,
    model: &mut HashMap<Key, Model>,
    r: usize,
) {
    match form % 3 {
        0 => {}
        1 => {
            let n = u64::from(value);
            record.usage.set(resource, n);
            model.entry((0, r, Slot::Items, 0)).or_default().used = Some(n);
        }
        _ => {
            let show = u64::from(value & 7);
            record.usage.set_action(resource, &Action::Show, show);
            model.entry((0, r, Slot::Show, 0)).or_default().used = Some(show);
            if value & 8 != 0 {
                let create = u64::from(value >> 4);
                record.usage.set_action(resource, &Action::Create, create);
                model.entry((0, r, Slot::Items, 0)).or_default().used = Some(create);
            }
        }
    }
}

/// Which way a call reaches the store.
#[derive(Clone, Copy, Debug)]
enum Via {
    Now,
    Direct,
    Arc,
    Dyn,
}

struct Stores {
    direct: MemoryStore,
    arc: Arc<MemoryStore>,
    dyn_store: Box<dyn UsageStore>,
}

impl Stores {
    async fn reserve(
        &self,
        via: Via,
        counter: &Counter,
        limit: Option<u64>,
        seed: u64,
        id: ReservationId,
        lease: Duration,
    ) -> Reserve {
        let answer = match via {
            Via::Now => self
                .direct
                .reserve_now(counter, limit, seed, id, lease)
                .expect("answered now"),
            Via::Direct => self.direct.reserve(counter, limit, seed, id, lease).await,
            Via::Arc => self.arc.reserve(counter, limit, seed, id, lease).await,
            Via::Dyn => {
                self.dyn_store
                    .reserve(counter, limit, seed, id, lease)
                    .await
            }
        };
        answer.expect("the memory store does not fail")
    }

    async fn commit(&self, via: Via, counter: &Counter, id: ReservationId) -> u64 {
        let answer = match via {
            Via::Now => self.direct.commit_now(counter, id).expect("answered now"),
            Via::Direct => self.direct.commit(counter, id).await,
            Via::Arc => self.arc.commit(counter, id).await,
            Via::Dyn => self.dyn_store.commit(counter, id).await,
        };
        answer.expect("the memory store does not fail")
    }

    async fn release(&self, via: Via, counter: &Counter, id: ReservationId) {
        let answer = match via {
            Via::Now => self.direct.release_now(counter, id).expect("answered now"),
            Via::Direct => self.direct.release(counter, id).await,
            Via::Arc => self.arc.release(counter, id).await,
            Via::Dyn => self.dyn_store.release(counter, id).await,
        };
        answer.expect("the memory store does not fail");
    }

    async fn adjust(&self, via: Via, counter: &Counter, delta: i64, seed: u64) -> u64 {
        let answer = match via {
            Via::Now => self
                .direct
                .adjust_now(counter, delta, seed)
                .expect("answered now"),
            Via::Direct => self.direct.adjust(counter, delta, seed).await,
            Via::Arc => self.arc.adjust(counter, delta, seed).await,
            Via::Dyn => self.dyn_store.adjust(counter, delta, seed).await,
        };
        answer.expect("the memory store does not fail")
    }

    async fn set(&self, via: Via, counter: &Counter, used: u64) {
        let answer = match via {
            Via::Now | Via::Direct => self.direct.set(counter, used).await,
            Via::Arc => self.arc.set(counter, used).await,
            Via::Dyn => self.dyn_store.set(counter, used).await,
        };
        answer.expect("the memory store does not fail");
    }

    async fn get(&self, via: Via, counter: &Counter) -> Option<Count> {
        let answer = match via {
            Via::Now | Via::Direct => self.direct.get(counter).await,
            Via::Arc => self.arc.get(counter).await,
            Via::Dyn => self.dyn_store.get(counter).await,
        };
        answer.expect("the memory store does not fail")
    }
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

async fn run(data: &[u8]) {
    let Some((setup, calls)) = data.split_first_chunk::<4>() else {
        return;
    };
    let catalog = Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#).expect("a catalog");
    let store = MemoryStore::new(catalog);
    let mut model: HashMap<Key, Model> = HashMap::new();
    let mut record = Subscriber::new().with_name("rec");
    for (r, resource) in RESOURCES.iter().enumerate() {
        record_usage(
            setup[2 * r],
            setup[2 * r + 1],
            resource,
            &mut record,
            &mut model,
            r,
        );
    }
    store.insert_user("rec", record);
    let stores = Stores {
        direct: store.clone(),
        arc: Arc::new(store.clone()),
        dyn_store: Box::new(store.clone()),
    };
    let mut now: u128 = 0;

    for call in calls.chunks_exact(4).take(64) {
        let [op, which, a, b] = [call[0], call[1], call[2], call[3]];
        let via = match (op >> 3) & 3 {
            0 => Via::Now,
            1 => Via::Direct,
            2 => Via::Arc,
            _ => Via::Dyn,
        };
        let retry = op & 0x20 != 0;
        let (counter, key) = counter_of(which);
        // Every call but `get` changes the counter, which forgets an earlier period's.
        if op % 8 != 5 && op % 8 != 6 {
            forget_earlier(&mut model, key);
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
                let seed = SEEDS[usize::from(b >> 5)];
                let got = stores.reserve(via, &counter, limit, seed, id, lease).await;

                let m = model.entry(key).or_default();
                m.drop_expired(now);
                let used = *m.used.get_or_insert(seed);
                let held = m.holds.len() as u64;
                let end = lease_ms.map(|ms| now + u128::from(ms) * 1_000_000);
                let mut fresh = false;
                let want = if let Some(hold) = m.holds.iter_mut().find(|(h, _)| *h == id.as_u128())
                {
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
                    m.holds.push((id.as_u128(), end));
                    fresh = true;
                    Reserve::Reserved { used, held }
                };
                assert_eq!(
                    got, want,
                    "reserve {counter} limit {limit:?} seed {seed} {id:?}"
                );
                if let (true, Some(limit)) = (fresh, limit) {
                    let after = stores
                        .get(via, &counter)
                        .await
                        .expect("a held counter exists");
                    assert!(
                        u128::from(after.used) + u128::from(after.held) <= u128::from(limit),
                        "{counter}: {after:?} over the limit {limit}"
                    );
                }
            }
            1 => {
                let id = id_of(b);
                let got = stores.commit(via, &counter, id).await;
                let m = model.entry(key).or_default();
                m.drop_expired(now);
                let mut used = m.used.unwrap_or(0);
                if let Some(at) = m.holds.iter().position(|(h, _)| *h == id.as_u128()) {
                    m.holds.remove(at);
                    used = used.saturating_add(1);
                    m.used = Some(used);
                }
                assert_eq!(got, used, "commit {counter} {id:?}");
                if retry {
                    let before = stores.get(via, &counter).await;
                    let again = stores.commit(via, &counter, id).await;
                    assert_eq!(again, used, "a second commit of {id:?} on {counter}");
                    assert_eq!(
                        stores.get(via, &counter).await,
                        before,
                        "a second commit changed {counter}"
                    );
                }
            }
            2 => {
                let id = id_of(b);
                stores.release(via, &counter, id).await;
                let m = model.entry(key).or_default();
                m.drop_expired(now);
                m.holds.retain(|(h, _)| *h != id.as_u128());
                if retry {
                    let before = stores.get(via, &counter).await;
                    stores.release(via, &counter, id).await;
                    assert_eq!(
                        stores.get(via, &counter).await,
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
                let seed = SEEDS[usize::from(b >> 5)];
                let got = stores.adjust(via, &counter, delta, seed).await;
                let m = model.entry(key).or_default();
                let used = m.used.unwrap_or(seed).saturating_add_signed(delta);
                m.used = Some(used);
                assert_eq!(got, used, "adjust {counter} by {delta} seed {seed}");
            }
            4 => {
                let used = match a {
                    0xFF => u64::MAX,
                    0xFE => u64::MAX - 1,
                    other => u64::from(other),
                };
                stores.set(via, &counter, used).await;
                model.entry(key).or_default().used = Some(used);
            }
            5 => {
                let got = stores.get(via, &counter).await;
                let want = model.get(&key).and_then(|m| m.count(now));
                assert_eq!(got, want, "get {counter}");
            }
            _ => {
                let ms = u64::from(u16::from_le_bytes([a, b]) % 10_000);
                tokio::time::advance(Duration::from_millis(ms)).await;
                now += u128::from(ms) * 1_000_000;
            }
        }

        // Every counter reads as the model's, and the record shows the counts.
        let rec = store.subscriber("rec").expect("the record stays");
        for (counter, key) in every_counter() {
            let want = model.get(&key).and_then(|m| m.count(now));
            assert_eq!(
                store.get(&counter).await.expect("no failure"),
                want,
                "{counter} after {call:?}"
            );
            if key.0 == 0 && key.3 == 0 {
                let used = model.get(&key).and_then(|m| m.used);
                let resource = RESOURCES[key.1];
                match key.2 {
                    Slot::Items => assert_eq!(
                        rec.usage.get(resource, &Action::Create),
                        used.unwrap_or(0),
                        "the record's items of {resource}"
                    ),
                    slot => assert_eq!(
                        rec.usage
                            .action_count(resource, &Action::custom(slot.key())),
                        used,
                        "the record's {} count of {resource}",
                        slot.key()
                    ),
                }
            }
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
