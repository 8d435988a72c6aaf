//! The shared state of a [`Leased`](super::Leased) store: its settings, the wrapped store and,
//! per shard of users, the counters' slots and the reservations served from blocks.
//!
//! Every method here works under one shard's lock and makes no store call: it answers what to
//! do (a reservation served, a block to acquire, settlements to make), and the async code in
//! `acquire.rs` and `settle.rs` does it.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use smallvec::SmallVec;
use tokio::sync::Notify;

use super::size::{block_size, worth_a_block};
use super::slot::{deadline, Block, Job, Local, Slot};
use crate::hash::Map;
use crate::store::{Count, Counter, Held, Hold, Line, ReservationId, UsageStore};

/// Shards of users: one lock per shard, all the lines of one reservation in one shard.
const SHARDS: usize = 16;

/// How many settle intervals a slot without blocks is kept, for the count it remembers.
const IDLE_TICKS: u32 = 50;

/// How many settle intervals in a row a block of the largest size may go unused before it is
/// given back (a smaller one, taken near its limit, goes back after one).
const IDLE_BLOCK_TICKS: u32 = 10;

/// The settings of a [`Leased`](super::Leased) store.
#[derive(Clone, Copy, Debug)]
pub(super) struct Config {
    pub(super) block_max: u64,
    pub(super) settle_every: Duration,
    pub(super) settle_far_every: Duration,
    pub(super) in_background: bool,
    pub(super) instances: u64,
}

/// One shard's counters and local reservations.
#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) slots: Map<Counter, Slot>,
    pub(super) locals: Map<ReservationId, Local>,
}

/// What a reservation that no block serves yet does next.
pub(super) enum Plan {
    /// Go to the store as without leases.
    Remote,
    /// Wait for this acquisition by another request, then look again.
    Wait(Arc<Notify>),
    /// Acquire these blocks (line index, the block's hold), then look again.
    Acquire(Vec<(usize, Hold)>),
}

/// The state shared by the clones of a [`Leased`](super::Leased) store.
pub(super) struct Inner<S: UsageStore> {
    pub(super) store: Arc<S>,
    pub(super) config: Config,
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    /// No new blocks: shut down, or no runtime to settle them.
    pub(super) closed: AtomicBool,
    /// Whether the settle timer runs (decided on first use).
    pub(super) timer: OnceLock<bool>,
    /// The queue of background commits, started on first use (`None`: no runtime).
    pub(super) background: OnceLock<Option<super::background::Queue>>,
    next_key: AtomicU64,
}

impl<S: UsageStore> Inner<S> {
    pub(super) fn new(store: S, config: Config) -> Self {
        Self {
            store: Arc::new(store),
            config,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            closed: AtomicBool::new(false),
            timer: OnceLock::new(),
            background: OnceLock::new(),
            next_key: AtomicU64::new(0),
        }
    }

    /// The shard of `user`'s counters, locked.
    pub(super) fn shard(&self, user: &str) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(user) % SHARDS as u64) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard in turn, locked one at a time.
    pub(super) fn each_shard(&self, mut visit: impl FnMut(&mut Shard)) {
        for shard in self.shards.iter() {
            visit(&mut shard.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// Whether new blocks may be taken.
    pub(super) fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Relaxed) && self.timer.get().copied().unwrap_or(false)
    }

    /// Serves `hold` from blocks with room on every line (or renews it when it is served
    /// already): the counts before it, as this instance sees them. `None` when some line has
    /// no such block.
    pub(super) fn try_local(&self, hold: &Hold, lease: Duration) -> Option<Held> {
        let user = same_user(hold)?;
        let now = Instant::now();
        let mut shard = self.shard(user);
        let Shard { slots, locals } = &mut *shard;
        if let Some(local) = locals.get_mut(&hold.id()) {
            // Held already: the lease is renewed, the counts exclude the reservation itself.
            local.deadline = deadline(now, lease);
            let mut counts = SmallVec::new();
            for (line, &(_, units)) in hold.lines().iter().zip(&local.parts) {
                let count = slots
                    .get(line.counter())
                    .map(Slot::view)
                    .unwrap_or_default();
                counts.push(Count {
                    used: count.used,
                    held: count.held.saturating_sub(units),
                });
            }
            return Some(Held::Reserved(counts));
        }
        if !self.is_open() || !distinct(hold) {
            return None;
        }
        let serves = |line: &Line| {
            slots.get(line.counter()).is_some_and(|slot| {
                slot.active
                    .as_ref()
                    .is_some_and(|block| block.serves(line.max(), line.units(), now))
            })
        };
        if !hold
            .lines()
            .iter()
            .all(|line| blockable(line) && serves(line))
        {
            return None;
        }
        let mut counts = SmallVec::new();
        let mut parts = SmallVec::new();
        for line in hold.lines() {
            let slot = slots.get_mut(line.counter())?;
            counts.push(slot.view());
            slot.touched = now;
            let block = slot.active.as_mut()?;
            block.reserved += line.units();
            block.used = true;
            parts.push((block.key, line.units()));
        }
        locals.insert(
            hold.id(),
            Local {
                parts,
                deadline: deadline(now, lease),
            },
        );
        Some(Held::Reserved(counts))
    }

    /// What a reservation that no block serves does next; the acquisitions it answers are
    /// marked as under way, and the settlements of blocks it retires are added to `jobs`.
    pub(super) fn plan(&self, hold: &Hold, jobs: &mut Vec<Job>) -> Plan {
        let Some(user) = same_user(hold) else {
            return Plan::Remote;
        };
        if !self.is_open() || !distinct(hold) || !hold.lines().iter().all(blockable) {
            return Plan::Remote;
        }
        let now = Instant::now();
        let mut shard = self.shard(user);
        let mut sizes = SmallVec::<[u64; 2]>::new();
        for line in hold.lines() {
            let slot = shard
                .slots
                .entry(line.counter().clone())
                .or_insert_with(|| Slot::new(line.start().count(), now));
            slot.touched = now;
            if slot.acquiring {
                return Plan::Wait(Arc::clone(&slot.notify));
            }
            let size = block_size(
                line.max(),
                slot.view().total(),
                self.config.instances,
                self.config.block_max,
            );
            if !worth_a_block(size, line.units()) {
                return Plan::Remote;
            }
            sizes.push(size);
        }
        let mut wanted = Vec::new();
        for (index, (line, size)) in hold.lines().iter().zip(sizes).enumerate() {
            let Some(slot) = shard.slots.get_mut(line.counter()) else {
                continue;
            };
            let served = slot
                .active
                .as_ref()
                .is_some_and(|block| block.serves(line.max(), line.units(), now));
            if served {
                continue;
            }
            slot.retire_active();
            slot.due(line.counter(), false, jobs);
            slot.acquiring = true;
            slot.start_call();
            let block = Hold::new(ReservationId::new()).with(
                Line::new(line.counter().clone(), size)
                    .limit(line.max())
                    .seed(line.start()),
            );
            wanted.push((index, block));
        }
        Plan::Acquire(wanted)
    }

    /// The acquisition of `block` for `line` ended with `held` (`None`: it failed or was
    /// abandoned): a block granted serves from now on.
    pub(super) fn acquired(
        &self,
        line: &Line,
        block: Hold,
        (lease, started): (Duration, Instant),
        held: Option<&Held>,
    ) {
        let mut shard = self.shard(&line.counter().user);
        let Some(slot) = shard.slots.get_mut(line.counter()) else {
            return;
        };
        slot.acquiring = false;
        match held {
            Some(Held::Reserved(counts)) => {
                if let Some(count) = counts.first() {
                    slot.observe(*count);
                }
                let size = block.lines().first().map_or(0, Line::units);
                slot.active = Some(Block {
                    key: self.next_key.fetch_add(1, Ordering::Relaxed),
                    hold: block,
                    size,
                    limit: line.max(),
                    lease,
                    reserved: 0,
                    spent: 0,
                    settling: false,
                    renewed: started,
                    used: false,
                    idle_ticks: 0,
                    unsettled_ticks: 0,
                    near: size < self.config.block_max,
                });
            }
            Some(Held::Refused { count, .. }) => slot.observe(*count),
            None => {}
        }
        slot.end_call();
    }

    /// Retires the blocks of `counters` and answers their settlements: commits, and with
    /// `shrink` the giving back of what blocks with live reservations park.
    pub(super) fn flush<'c>(
        &self,
        counters: impl IntoIterator<Item = &'c Counter>,
        shrink: bool,
    ) -> Vec<Job> {
        let mut jobs = Vec::new();
        for counter in counters {
            let mut shard = self.shard(&counter.user);
            if let Some(slot) = shard.slots.get_mut(counter) {
                slot.retire_active();
                slot.due(counter, shrink, &mut jobs);
            }
        }
        jobs
    }

    /// Whether an acquisition for one of `hold`'s lines is under way.
    pub(super) fn acquiring(&self, hold: &Hold) -> bool {
        let Some(user) = same_user(hold) else {
            return false;
        };
        let shard = self.shard(user);
        hold.lines().iter().any(|line| {
            shard
                .slots
                .get(line.counter())
                .is_some_and(|slot| slot.acquiring)
        })
    }

    /// A store call on `hold` that changes its counters starts (`true`) or ends: reads of
    /// those counters wait for it.
    pub(super) fn changing(&self, hold: &Hold, starts: bool) {
        for line in hold.lines() {
            let counter = line.counter();
            let mut shard = self.shard(&counter.user);
            if starts {
                shard
                    .slots
                    .entry(counter.clone())
                    .or_insert_with(|| Slot::new(line.start().count(), Instant::now()))
                    .start_call();
            } else if let Some(slot) = shard.slots.get_mut(counter) {
                slot.end_call();
            }
        }
    }

    /// Retires the blocks of `user`'s counters and answers their settlements.
    pub(super) fn flush_user(&self, user: &str) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut shard = self.shard(user);
        for (counter, slot) in shard.slots.iter_mut() {
            if &*counter.user == user {
                slot.retire_active();
                slot.due(counter, false, &mut jobs);
            }
        }
        jobs
    }

    /// Whether a store call that changes `counter` is under way: its notifier when it is.
    pub(super) fn busy(&self, counter: &Counter) -> Option<Arc<Notify>> {
        let shard = self.shard(&counter.user);
        let slot = shard.slots.get(counter)?;
        (slot.busy > 0).then(|| Arc::clone(&slot.notify))
    }

    /// The epoch of `counter`'s slot, `None` while a store call changes it.
    pub(super) fn epoch(&self, counter: &Counter) -> Option<u64> {
        let shard = self.shard(&counter.user);
        match shard.slots.get(counter) {
            Some(slot) if slot.busy > 0 => None,
            Some(slot) => Some(slot.epoch),
            None => Some(0),
        }
    }

    /// `count`, read from the store, as this instance sees it; `None` when a store call changed
    /// the counter since `epoch` was taken (unless `anyway`).
    pub(super) fn seen(
        &self,
        counter: &Counter,
        count: Option<Count>,
        epoch: u64,
        anyway: bool,
    ) -> Option<Option<Count>> {
        let shard = self.shard(&counter.user);
        let Some(slot) = shard.slots.get(counter) else {
            return (anyway || epoch == 0).then_some(count);
        };
        if !anyway && (slot.busy > 0 || slot.epoch != epoch) {
            return None;
        }
        Some(match count {
            Some(count) => Some(slot.seen(count)),
            None if slot.blocks().next().is_some() => Some(slot.seen(Count::default())),
            None => None,
        })
    }

    /// The units this instance spent on `counter` that are not settled yet.
    pub(super) fn unsettled(&self, counter: &Counter) -> u64 {
        let shard = self.shard(&counter.user);
        shard.slots.get(counter).map_or(0, |slot| slot.local().0)
    }

    /// What the store answered for a reservation it served: the counts it saw, for the sizes of
    /// the next blocks.
    pub(super) fn observe_remote(&self, hold: &Hold, held: &Held) {
        let Some(user) = same_user(hold) else {
            return;
        };
        let mut shard = self.shard(user);
        match held {
            Held::Reserved(counts) => {
                for (line, count) in hold.lines().iter().zip(counts) {
                    if let Some(slot) = shard.slots.get_mut(line.counter()) {
                        slot.observe(*count);
                        slot.others_held = slot.others_held.saturating_add(line.units());
                    }
                }
            }
            Held::Refused { line, count } => {
                let counter = hold.lines().get(*line).map(Line::counter);
                if let Some(slot) = counter.and_then(|counter| shard.slots.get_mut(counter)) {
                    slot.observe(*count);
                }
            }
        }
    }

    /// The used count `counter` was set to.
    pub(super) fn was_set(&self, counter: &Counter, used: u64) {
        let mut shard = self.shard(&counter.user);
        if let Some(slot) = shard.slots.get_mut(counter) {
            slot.used_base = used;
        }
    }

    /// Ends the local reservation `hold` (committing `spent`, or releasing with `None`).
    /// `None` when no block serves it; else the settlements now due.
    pub(super) fn end_local(&self, hold: &Hold, spent: Option<&[u64]>) -> Option<Vec<Job>> {
        let user = same_user(hold)?;
        let mut shard = self.shard(user);
        let local = shard.locals.remove(&hold.id())?;
        if local.deadline < Instant::now() {
            // Its lease ended: given back, and nothing counted.
            return Some(end_parts(&mut shard, hold, &local, None));
        }
        Some(end_parts(&mut shard, hold, &local, spent))
    }

    /// Retires every block: each is committed once its reservations end.
    pub(super) fn retire_all(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        self.each_shard(|shard| {
            for (counter, slot) in shard.slots.iter_mut() {
                slot.retire_active();
                slot.due(counter, false, &mut jobs);
            }
        });
        jobs
    }

    /// One settle interval passed: blocks settle what they spent and keep their room, unused
    /// ones go back, reservations past their lease are released, idle slots forgotten.
    pub(super) fn tick(&self) -> Vec<Job> {
        let now = Instant::now();
        let idle_since = now
            .checked_sub(self.config.settle_every.saturating_mul(IDLE_TICKS))
            .unwrap_or(now);
        let every = self.config.settle_every.as_micros().max(1);
        let far_ticks = self.config.settle_far_every.as_micros().div_ceil(every);
        let far_ticks = u32::try_from(far_ticks).unwrap_or(u32::MAX).max(1);
        let mut jobs = Vec::new();
        self.each_shard(|shard| {
            let expired: Vec<ReservationId> = shard
                .locals
                .iter()
                .filter(|(_, local)| local.deadline < now)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                if let Some(local) = shard.locals.remove(&id) {
                    release_parts(shard, &local);
                }
            }
            for (counter, slot) in shard.slots.iter_mut() {
                slot.tick(counter, (IDLE_BLOCK_TICKS, far_ticks), &mut jobs);
            }
            shard.slots.retain(|_, slot| !slot.is_idle(idle_since));
        });
        jobs
    }

    /// Whether any block is left, anywhere.
    pub(super) fn holds_blocks(&self) -> bool {
        let mut any = false;
        self.each_shard(|shard| {
            any |= shard
                .slots
                .values()
                .any(|slot| slot.blocks().next().is_some());
        });
        any
    }

    /// Every block's settlement, taken out of the state (the store is being dropped).
    pub(super) fn drain(&self) -> Vec<(Hold, u64)> {
        let mut holds = Vec::new();
        self.each_shard(|shard| {
            for slot in shard.slots.values_mut() {
                slot.retire_active();
                for block in slot.retired.drain(..) {
                    holds.push((block.hold, block.spent));
                }
            }
        });
        holds
    }
}

/// Ends `local`'s parts in their blocks (committing `spent` per line, or releasing with
/// `None`), and answers the settlements now due.
fn end_parts(shard: &mut Shard, hold: &Hold, local: &Local, spent: Option<&[u64]>) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (index, (line, &(key, units))) in hold.lines().iter().zip(&local.parts).enumerate() {
        let Some(slot) = shard.slots.get_mut(line.counter()) else {
            continue;
        };
        if let Some(block) = slot.block_mut(key) {
            block.reserved = block.reserved.saturating_sub(units);
            if let Some(spent) = spent {
                let units = spent.get(index).copied().unwrap_or(units);
                block.spent = block.spent.saturating_add(units);
            }
        }
        // A block that is full serves no more.
        if slot.active.as_ref().is_some_and(|block| block.room() == 0) {
            slot.retire_active();
        }
        slot.due(line.counter(), false, &mut jobs);
    }
    jobs
}

/// Gives back `local`'s units (its lease ended); settlements follow at the next tick.
fn release_parts(shard: &mut Shard, local: &Local) {
    for slot in shard.slots.values_mut() {
        for &(key, units) in &local.parts {
            if let Some(block) = slot.block_mut(key) {
                block.reserved = block.reserved.saturating_sub(units);
            }
        }
    }
}

/// The user all of `hold`'s lines belong to, `None` when they are several (or none).
fn same_user(hold: &Hold) -> Option<&str> {
    let user = &hold.lines().first()?.counter().user;
    hold.lines()
        .iter()
        .all(|line| line.counter().user == *user)
        .then_some(&**user)
}

/// Whether `hold`'s lines are on distinct counters.
fn distinct(hold: &Hold) -> bool {
    let lines = hold.lines();
    lines.iter().enumerate().all(|(index, line)| {
        lines[..index]
            .iter()
            .all(|other| other.counter() != line.counter())
    })
}

/// Whether a line may be served from a block: one without grants (a pool's grants are spent in
/// an order the store keeps).
fn blockable(line: &Line) -> bool {
    line.grants().is_empty()
}
