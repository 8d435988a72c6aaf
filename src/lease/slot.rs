//! What an instance knows of one counter: its blocks (the one that serves, and those retired
//! that wait for their requests to end before they are settled), and its count as last seen.
//!
//! Everything here is plain bookkeeping under the shard's lock; the store calls are made by
//! `acquire.rs` and `settle.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use smallvec::SmallVec;
use tokio::sync::Notify;

use crate::store::{Count, Counter, Hold};

/// One block: a hold of `size` units on the store, spent locally.
#[derive(Debug)]
pub(super) struct Block {
    /// This instance's name for the block, stable when its hold is replaced by a smaller one.
    pub(super) key: u64,
    /// The hold on the store: one line of `size` units.
    pub(super) hold: Hold,
    /// The units the hold takes on the store.
    pub(super) size: u64,
    /// The limit the block was taken under.
    pub(super) limit: Option<u64>,
    /// The lease of the hold on the store.
    pub(super) lease: Duration,
    /// Units held by local reservations that are neither committed nor released.
    pub(super) reserved: u64,
    /// Units committed locally, not yet settled on the store.
    pub(super) spent: u64,
    /// A settlement of the block is under way.
    pub(super) settling: bool,
    /// When the store's hold was last taken or renewed (measured before the call): it lasts
    /// `lease` from then.
    pub(super) renewed: Instant,
    /// Whether a request used the block since the last tick.
    pub(super) used: bool,
    /// Ticks in a row without a request.
    pub(super) idle_ticks: u32,
    /// Ticks since the block last settled.
    pub(super) unsettled_ticks: u32,
    /// Whether the block was taken near the limit (smaller than the largest block): unused for
    /// one tick, it goes back at once.
    pub(super) near: bool,
}

impl Block {
    /// The units a new local reservation may still take.
    pub(super) fn room(&self) -> u64 {
        self.size
            .saturating_sub(self.reserved)
            .saturating_sub(self.spent)
    }

    /// Whether the block serves a line of `units` under `limit` at `now`: the same limit, room
    /// for the units, and its hold on the store alive for at least half its lease.
    pub(super) fn serves(&self, limit: Option<u64>, units: u64, now: Instant) -> bool {
        self.limit == limit && self.room() >= units && !self.half_gone(now)
    }

    /// Whether half the lease of the hold on the store has passed at `now`.
    pub(super) fn half_gone(&self, now: Instant) -> bool {
        self.renewed
            .checked_add(self.lease / 2)
            .is_some_and(|half| now >= half)
    }

    /// The settlement that commits what the block spent and keeps `keep` units held.
    fn renewal(&self, counter: &Counter, keep: u64, now: Instant) -> Job {
        Job::Renew {
            counter: counter.clone(),
            key: self.key,
            hold: self.hold.clone(),
            keep,
            spent: self.spent,
            lease: self.lease,
            started: now,
        }
    }
}

/// A settlement to make on the store, off the lock.
#[derive(Debug)]
pub(super) enum Job {
    /// Commit `spent` units of the block's hold, which gives back the rest: the block had no
    /// local reservation left.
    Commit {
        /// The block's counter.
        counter: Counter,
        /// The block's key.
        key: u64,
        /// Its hold.
        hold: Hold,
        /// The units to commit.
        spent: u64,
    },
    /// Replace the block's hold by one of `keep` units, then commit `spent` units of the old
    /// one (which gives back the rest): an active block settles what it spent and keeps its
    /// room under a fresh lease; a retired one keeps what its live reservations hold, and its
    /// parked rest goes back at once.
    Renew {
        /// The block's counter.
        counter: Counter,
        /// The block's key.
        key: u64,
        /// Its hold.
        hold: Hold,
        /// The units the new hold keeps.
        keep: u64,
        /// The units to commit.
        spent: u64,
        /// The lease of the new hold.
        lease: Duration,
        /// When the settlement started: the new hold's lease runs from about then.
        started: Instant,
    },
}

/// One counter as this instance knows it.
#[derive(Debug)]
pub(super) struct Slot {
    /// The block that serves new reservations.
    pub(super) active: Option<Block>,
    /// Blocks that serve no more, waiting for their reservations to end and their settlement.
    pub(super) retired: Vec<Block>,
    /// The used count the store last gave, plus what settled since.
    pub(super) used_base: u64,
    /// The units the store last said were held, other than this instance's blocks.
    pub(super) others_held: u64,
    /// An acquisition of a block is under way.
    pub(super) acquiring: bool,
    /// Store calls under way that change this counter's count on the store.
    pub(super) busy: u32,
    /// Bumped when such a call starts or ends: a read of the store between two equal epochs saw
    /// the blocks as they are here.
    pub(super) epoch: u64,
    /// Woken when a store call ends.
    pub(super) notify: Arc<Notify>,
    /// When a request last used the slot.
    pub(super) touched: Instant,
}

impl Slot {
    /// A counter seen for the first time, starting at `used` as far as this instance knows.
    pub(super) fn new(used: u64, now: Instant) -> Self {
        Self {
            active: None,
            retired: Vec::new(),
            used_base: used,
            others_held: 0,
            acquiring: false,
            busy: 0,
            epoch: 0,
            notify: Arc::new(Notify::new()),
            touched: now,
        }
    }

    /// Every block, the active one first.
    pub(super) fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.active.iter().chain(self.retired.iter())
    }

    /// The block named `key`.
    pub(super) fn block_mut(&mut self, key: u64) -> Option<&mut Block> {
        self.active
            .iter_mut()
            .chain(self.retired.iter_mut())
            .find(|block| block.key == key)
    }

    /// The count as this instance sees it: what the store said, with what this instance spent
    /// and holds in its blocks in place of the blocks themselves.
    pub(super) fn view(&self) -> Count {
        let (spent, reserved) = self.local();
        Count {
            used: self.used_base.saturating_add(spent),
            held: self.others_held.saturating_add(reserved),
        }
    }

    /// The units spent and reserved in every block.
    pub(super) fn local(&self) -> (u64, u64) {
        self.blocks()
            .fold((0u64, 0u64), |(spent, reserved), block| {
                (
                    spent.saturating_add(block.spent),
                    reserved.saturating_add(block.reserved),
                )
            })
    }

    /// The units every block holds on the store.
    pub(super) fn sizes(&self) -> u64 {
        self.blocks()
            .fold(0u64, |sizes, block| sizes.saturating_add(block.size))
    }

    /// `count` as the store gave it (its holds include this instance's blocks).
    pub(super) fn observe(&mut self, count: Count) {
        self.used_base = count.used;
        self.others_held = count.held.saturating_sub(self.sizes());
    }

    /// A count the store gave, turned into what this instance sees: spent units of its blocks
    /// are used, and only their live local reservations are held.
    pub(super) fn seen(&self, count: Count) -> Count {
        let (spent, reserved) = self.local();
        Count {
            used: count.used.saturating_add(spent),
            held: count
                .held
                .saturating_sub(self.sizes())
                .saturating_add(reserved),
        }
    }

    /// A store call that changes the count starts.
    pub(super) fn start_call(&mut self) {
        self.busy += 1;
        self.epoch += 1;
    }

    /// A store call that changes the count ended: waiters are woken.
    pub(super) fn end_call(&mut self) {
        self.busy = self.busy.saturating_sub(1);
        self.epoch += 1;
        self.notify.notify_waiters();
    }

    /// The active block serves no more.
    pub(super) fn retire_active(&mut self) {
        if let Some(block) = self.active.take() {
            self.retired.push(block);
        }
    }

    /// The settlements due: every retired block without local reservations is committed; with
    /// `shrink`, one that parks unspent units while requests still hold some gives those back.
    pub(super) fn due(&mut self, counter: &Counter, shrink: bool, jobs: &mut Vec<Job>) {
        let now = Instant::now();
        let mut started = 0;
        for block in self.retired.iter_mut().filter(|block| !block.settling) {
            if block.reserved == 0 {
                block.settling = true;
                started += 1;
                jobs.push(Job::Commit {
                    counter: counter.clone(),
                    key: block.key,
                    hold: block.hold.clone(),
                    spent: block.spent,
                });
            } else if shrink && block.room() > 0 {
                block.settling = true;
                started += 1;
                jobs.push(block.renewal(counter, block.reserved, now));
            }
        }
        for _ in 0..started {
            self.start_call();
        }
    }

    /// The commit of block `key` ended: on success the block is gone and its `spent` units
    /// are used; on failure it waits for the next settlement.
    pub(super) fn committed(&mut self, key: u64, spent: u64, ok: bool) {
        if ok {
            self.retired.retain(|block| block.key != key);
            self.used_base = self.used_base.saturating_add(spent);
        } else if let Some(block) = self.block_mut(key) {
            block.settling = false;
        }
        self.end_call();
    }

    /// One settle interval passed: the active block settles what it spent (keeping its room
    /// under a fresh lease; a block of the largest size only every `far_ticks` ticks), or
    /// renews a lease half gone, or, unused for `idle_ticks` ticks in a row, is retired;
    /// retired blocks without reservations are committed.
    pub(super) fn tick(
        &mut self,
        counter: &Counter,
        (idle_ticks, far_ticks): (u32, u32),
        jobs: &mut Vec<Job>,
    ) {
        let now = Instant::now();
        let mut renew = false;
        let mut retire = false;
        if let Some(block) = self.active.as_mut().filter(|block| !block.settling) {
            let keep = block.size.saturating_sub(block.spent);
            block.unsettled_ticks = block.unsettled_ticks.saturating_add(1);
            let due = block.near || block.unsettled_ticks >= far_ticks;
            if keep == 0 {
                // Spent to the last unit: committed once its requests end.
                retire = true;
            } else if (block.spent > 0 && due) || block.half_gone(now) {
                block.unsettled_ticks = 0;
                block.settling = true;
                renew = true;
                jobs.push(block.renewal(counter, keep, now));
            } else if !block.used {
                block.idle_ticks += 1;
                retire = block.idle_ticks >= if block.near { 1 } else { idle_ticks };
            }
        }
        if let Some(block) = self.active.as_mut() {
            if block.used {
                block.idle_ticks = 0;
            }
            block.used = false;
        }
        if renew {
            self.start_call();
        }
        if retire {
            self.retire_active();
        }
        self.due(counter, false, jobs);
    }

    /// Block `key`'s hold was replaced by `hold` of `size` units at `renewed`, after `spent`
    /// of its units were committed (`None`: it failed, and the block is as it was). Answers the
    /// commit that is due when its reservations ended meanwhile.
    pub(super) fn renewed(
        &mut self,
        counter: &Counter,
        key: u64,
        replaced: Option<(Hold, u64, u64, Instant)>,
        jobs: &mut Vec<Job>,
    ) {
        if let Some(block) = self.block_mut(key) {
            block.settling = false;
            if let Some((hold, size, spent, renewed)) = replaced {
                block.hold = hold;
                block.size = size;
                block.renewed = renewed;
                block.spent = block.spent.saturating_sub(spent);
                self.used_base = self.used_base.saturating_add(spent);
            }
        }
        self.end_call();
        self.due(counter, false, jobs);
    }

    /// Whether the slot holds nothing and was last used before `idle_since`.
    pub(super) fn is_idle(&self, idle_since: Instant) -> bool {
        self.active.is_none()
            && self.retired.is_empty()
            && self.busy == 0
            && !self.acquiring
            && self.touched < idle_since
    }
}

/// When a lease taken at `now` ends: far in the future for a lease too long to add.
pub(super) fn deadline(now: Instant, lease: Duration) -> Instant {
    now.checked_add(lease)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 32)))
        .unwrap_or(now)
}

/// A reservation served from blocks: per line, the block's key and the units it took.
#[derive(Debug)]
pub(super) struct Local {
    /// Per line of the hold, in order.
    pub(super) parts: SmallVec<[(u64, u64); 2]>,
    /// When its lease ends: after that it is released, and a commit counts nothing.
    pub(super) deadline: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Line, ReservationId};

    fn block(key: u64, size: u64) -> Block {
        let counter = Counter::items("ann", "clients");
        Block {
            key,
            hold: Hold::new(ReservationId::new()).with(Line::new(counter, size)),
            size,
            limit: Some(100),
            lease: Duration::from_secs(60),
            reserved: 0,
            spent: 0,
            settling: false,
            renewed: Instant::now(),
            used: false,
            idle_ticks: 0,
            unsettled_ticks: 0,
            near: false,
        }
    }

    #[test]
    fn the_view_counts_spent_units_as_used_and_only_live_reservations_as_held() {
        let mut slot = Slot::new(0, Instant::now());
        let mut first = block(1, 10);
        first.spent = 4;
        first.reserved = 2;
        slot.active = Some(first);
        // The store: 30 used, 10 (this block) + 5 (others) held.
        slot.observe(Count { used: 30, held: 15 });
        assert_eq!(slot.view(), Count { used: 34, held: 7 });
        assert_eq!(
            slot.seen(Count { used: 31, held: 15 }),
            Count { used: 35, held: 7 }
        );
        assert_eq!(slot.active.as_ref().map(Block::room), Some(4));
    }

    #[test]
    fn retired_blocks_settle_when_their_reservations_end_or_shrink_on_demand() {
        let counter = Counter::items("ann", "clients");
        let mut slot = Slot::new(0, Instant::now());
        let mut busy = block(1, 10);
        busy.reserved = 3;
        busy.spent = 2;
        slot.active = Some(busy);
        slot.retired.push(block(2, 5));
        slot.retire_active();
        let mut jobs = Vec::new();
        slot.due(&counter, false, &mut jobs);
        assert!(matches!(
            jobs[..],
            [Job::Commit {
                key: 2,
                spent: 0,
                ..
            }]
        ));
        assert_eq!(slot.busy, 1);
        // A second look starts nothing more: the commit is under way.
        slot.due(&counter, true, &mut jobs);
        assert!(matches!(
            jobs[1..],
            [Job::Renew {
                key: 1,
                keep: 3,
                spent: 2,
                ..
            }]
        ));
        slot.committed(2, 0, true);
        assert_eq!(slot.retired.len(), 1);
        // The shrink: 3 units held anew, 2 committed; the reservations then end.
        let hold = block(9, 3).hold;
        jobs.clear();
        slot.renewed(&counter, 1, Some((hold, 3, 2, Instant::now())), &mut jobs);
        assert!(jobs.is_empty());
        assert_eq!(slot.used_base, 2);
        let shrunk = slot.block_mut(1).expect("still there");
        assert_eq!((shrunk.size, shrunk.spent, shrunk.room()), (3, 0, 0));
        shrunk.reserved = 0;
        shrunk.spent = 3;
        slot.due(&counter, false, &mut jobs);
        assert!(matches!(
            jobs[..],
            [Job::Commit {
                key: 1,
                spent: 3,
                ..
            }]
        ));
        slot.committed(1, 3, true);
        assert_eq!(slot.used_base, 5);
        assert_eq!(slot.busy, 0);
        assert!(slot.is_idle(Instant::now() + Duration::from_secs(1)));
    }

    #[test]
    fn leases_too_long_to_add_never_end() {
        let now = Instant::now();
        assert!(deadline(now, Duration::MAX) > now + Duration::from_secs(1 << 30));
        let mut endless = block(1, 5);
        endless.lease = Duration::MAX;
        assert!(!endless.half_gone(now + Duration::from_secs(1 << 30)));
        assert!(endless.serves(Some(100), 5, now));
        let mut short = block(2, 5);
        short.lease = Duration::from_millis(10);
        assert!(short.half_gone(short.renewed + Duration::from_millis(5)));
        assert!(!short.serves(Some(100), 1, short.renewed + Duration::from_millis(5)));
    }

    #[test]
    fn a_failed_commit_leaves_the_block_for_the_next_settlement() {
        let counter = Counter::items("ann", "clients");
        let mut slot = Slot::new(0, Instant::now());
        slot.retired.push(block(1, 5));
        let mut jobs = Vec::new();
        slot.due(&counter, false, &mut jobs);
        slot.committed(1, 0, false);
        assert_eq!(slot.retired.len(), 1);
        jobs.clear();
        slot.due(&counter, false, &mut jobs);
        assert_eq!(jobs.len(), 1);
    }
}
