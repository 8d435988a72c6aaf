//! The store calls of a reservation that no block serves yet: acquiring blocks, or going to the
//! store as without leases (after settling this instance's blocks of the same counters, so that
//! the store's answer is exact); and reading a count.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Notify;

use super::settle;
use super::state::{Inner, Plan};
use crate::store::{BoxError, Count, Counter, Held, Hold, UsageStore};

/// How many times a reservation looks for a block before it goes to the store.
const ATTEMPTS: usize = 4;

/// The longest a call waits for another request's acquisition or settlement.
const WAIT: Duration = Duration::from_millis(200);

/// Reserves `hold`: from blocks when they serve it (acquiring them if need be), else on the
/// store.
pub(super) async fn reserve<S: UsageStore>(
    inner: &Arc<Inner<S>>,
    hold: &Hold,
    lease: Duration,
) -> Result<Held, BoxError> {
    settle::start_timer(inner);
    for _ in 0..ATTEMPTS {
        if let Some(held) = inner.try_local(hold, lease) {
            return Ok(held);
        }
        let mut jobs = Vec::new();
        let plan = inner.plan(hold, &mut jobs);
        drop(settle::spawn(inner, jobs));
        match plan {
            Plan::Remote => break,
            Plan::Wait(notify) => {
                wait(&notify, WAIT, || inner.acquiring(hold)).await;
            }
            Plan::Acquire(blocks) => acquire(inner, hold, blocks, lease).await?,
        }
    }
    remote(inner, hold, lease).await
}

/// Acquires `blocks` (line index, block hold) one after the other; each one granted serves
/// from then on. A call dropped midway leaves no acquisition marked as under way.
async fn acquire<S: UsageStore>(
    inner: &Inner<S>,
    hold: &Hold,
    blocks: Vec<(usize, Hold)>,
    lease: Duration,
) -> Result<(), BoxError> {
    let mut pending = Pending {
        inner,
        hold,
        blocks,
        lease,
    };
    while let Some((index, block)) = pending.blocks.last() {
        let started = Instant::now();
        let answer = inner.store.reserve(block, lease).await;
        let (index, block) = (*index, block.clone());
        pending.blocks.pop();
        if let Some(line) = hold.lines().get(index) {
            inner.acquired(line, block, (lease, started), answer.as_ref().ok());
        }
        answer?;
    }
    Ok(())
}

/// Acquisitions not yet ended: marked as failed when the call is dropped.
struct Pending<'a, S: UsageStore> {
    inner: &'a Inner<S>,
    hold: &'a Hold,
    blocks: Vec<(usize, Hold)>,
    lease: Duration,
}

impl<S: UsageStore> Drop for Pending<'_, S> {
    fn drop(&mut self) {
        for (index, block) in self.blocks.drain(..) {
            if let Some(line) = self.hold.lines().get(index) {
                self.inner
                    .acquired(line, block, (self.lease, Instant::now()), None);
            }
        }
    }
}

/// Reserves `hold` on the store, as without leases, once this instance's blocks of its
/// counters are settled (or shrunk to what their requests hold).
async fn remote<S: UsageStore>(
    inner: &Arc<Inner<S>>,
    hold: &Hold,
    lease: Duration,
) -> Result<Held, BoxError> {
    let counters = || hold.lines().iter().map(|line| line.counter());
    let jobs = inner.flush(counters(), true);
    settle::run_all(inner, jobs).await;
    for counter in counters() {
        settled(inner, counter, WAIT).await;
    }
    let held = inner.store.reserve(hold, lease).await?;
    inner.observe_remote(hold, &held);
    Ok(held)
}

/// Waits, at most `limit`, until no store call changes `counter`.
async fn settled<S: UsageStore>(inner: &Inner<S>, counter: &Counter, limit: Duration) {
    if let Some(notify) = inner.busy(counter) {
        wait(&notify, limit, || inner.busy(counter).is_some()).await;
    }
}

/// Waits on `notify`, at most `limit`, while `pending` says so.
async fn wait(notify: &Notify, limit: Duration, pending: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let mut notified = pin!(notify.notified());
        notified.as_mut().enable();
        if !pending() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
            return;
        }
    }
}

/// `counter`'s count as this instance sees it: what its blocks spent is used, and only their
/// live reservations are held.
pub(super) async fn get<S: UsageStore>(
    inner: &Inner<S>,
    counter: &Counter,
) -> Result<Option<Count>, BoxError> {
    for _ in 0..ATTEMPTS {
        settled(inner, counter, WAIT).await;
        let Some(epoch) = inner.epoch(counter) else {
            continue;
        };
        let count = inner.store.get(counter).await?;
        if let Some(seen) = inner.seen(counter, count, epoch, false) {
            return Ok(seen);
        }
    }
    let count = inner.store.get(counter).await?;
    Ok(inner.seen(counter, count, 0, true).flatten())
}

/// Sets `counter`'s used count, once this instance's blocks of it are settled (units spent
/// from blocks before the call do not count after it).
pub(super) async fn set<S: UsageStore>(
    inner: &Arc<Inner<S>>,
    counter: &Counter,
    used: u64,
) -> Result<(), BoxError> {
    let jobs = inner.flush([counter], false);
    settle::run_all(inner, jobs).await;
    inner.store.set(counter, used).await?;
    inner.was_set(counter, used);
    Ok(())
}
