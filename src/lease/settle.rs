//! Settlements on the store: a block's spent units committed (the rest given back), a block
//! with live reservations shrunk to what they hold, the settle timer, shutdown and drop.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::slot::Job;
use super::state::Inner;
use crate::store::{BoxError, Counter, Held, Hold, Line, ReservationId, UsageStore};

/// Makes `job` and the settlements that follow from it; `false` when a store call failed.
async fn run<S: UsageStore>(inner: Arc<Inner<S>>, job: Job) -> bool {
    let mut ok = true;
    let mut work = vec![job];
    while let Some(job) = work.pop() {
        match job {
            Job::Commit {
                counter,
                key,
                hold,
                spent,
            } => {
                let result = inner.store.commit(&hold, &[spent]).await;
                if let Err(error) = &result {
                    ok = false;
                    tracing::warn!(
                        resource = %counter.resource,
                        %error,
                        "usage store failed to settle a block; retried at the next settlement"
                    );
                }
                let mut shard = inner.shard(&counter.user);
                if let Some(slot) = shard.slots.get_mut(&counter) {
                    slot.committed(key, spent, result.is_ok());
                }
            }
            Job::Renew {
                counter,
                key,
                hold,
                keep,
                spent,
                lease,
                started,
            } => {
                let replaced = renew(&*inner.store, &counter, &hold, keep, spent, lease).await;
                ok &= replaced.is_some();
                let replaced = replaced.map(|(hold, keep, spent)| (hold, keep, spent, started));
                let mut shard = inner.shard(&counter.user);
                if let Some(slot) = shard.slots.get_mut(&counter) {
                    slot.renewed(&counter, key, replaced, &mut work);
                }
            }
        }
    }
    ok
}

/// Holds `keep` units of `counter` anew (unlimited: `hold` holds them already), then commits
/// `spent` units of `hold`, which gives back the rest. The new hold, its size and the units
/// committed; `None` when either call failed (the block is left as it was).
async fn renew<S: UsageStore>(
    store: &S,
    counter: &Counter,
    hold: &Hold,
    keep: u64,
    spent: u64,
    lease: Duration,
) -> Option<(Hold, u64, u64)> {
    let rest = Hold::new(ReservationId::new()).with(Line::new(counter.clone(), keep));
    match store.reserve(&rest, lease).await {
        Ok(Held::Reserved(_)) => {}
        Ok(Held::Refused { .. }) => return None,
        Err(error) => {
            tracing::warn!(resource = %counter.resource, %error, "usage store failed to settle a block");
            return None;
        }
    }
    if let Err(error) = store.commit(hold, &[spent]).await {
        tracing::warn!(resource = %counter.resource, %error, "usage store failed to settle a block");
        if let Err(error) = store.release(&rest).await {
            tracing::debug!(%error, "usage store failed to release a block's rest; its lease frees it");
        }
        return None;
    }
    Some((rest, keep, spent))
}

/// Starts `jobs` in tasks of their own (they end even when their caller is dropped).
pub(super) fn spawn<S: UsageStore>(inner: &Arc<Inner<S>>, jobs: Vec<Job>) -> Vec<JoinHandle<bool>> {
    if jobs.is_empty() {
        return Vec::new();
    }
    match Handle::try_current() {
        Ok(handle) => jobs
            .into_iter()
            .map(|job| handle.spawn(run(Arc::clone(inner), job)))
            .collect(),
        Err(_) => {
            tracing::warn!(
                "blocks could not be settled outside a Tokio runtime; their leases free them"
            );
            Vec::new()
        }
    }
}

/// Makes `jobs` and waits for them: `false` when a store call failed.
pub(super) async fn run_all<S: UsageStore>(inner: &Arc<Inner<S>>, jobs: Vec<Job>) -> bool {
    let mut ok = true;
    for task in spawn(inner, jobs) {
        ok &= task.await.unwrap_or(false);
    }
    ok
}

/// Starts the settle timer on first use; `false` (and no blocks) without a Tokio runtime.
pub(super) fn start_timer<S: UsageStore>(inner: &Arc<Inner<S>>) -> bool {
    *inner.timer.get_or_init(|| match Handle::try_current() {
        Ok(handle) => {
            handle.spawn(ticks(Arc::downgrade(inner), inner.config.settle_every));
            true
        }
        Err(_) => {
            tracing::warn!(
                "block leases need a Tokio runtime; without one every reservation goes to the store"
            );
            false
        }
    })
}

/// Every `every`, settles what the blocks spent, until the store is dropped.
async fn ticks<S: UsageStore>(inner: Weak<Inner<S>>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let jobs = inner.tick();
        drop(spawn(&inner, jobs));
    }
}

/// Stops taking blocks and settles every block, waiting for their reservations to end.
pub(super) async fn shutdown<S: UsageStore>(inner: &Arc<Inner<S>>) -> Result<(), BoxError> {
    inner
        .closed
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failures = 0;
    loop {
        let jobs = inner.retire_all();
        if !run_all(inner, jobs).await {
            failures += 1;
            if failures >= 3 {
                return Err("the usage store failed to settle the blocks".into());
            }
        }
        if !inner.holds_blocks() {
            return Ok(());
        }
        // Reservations still running, or settlements started elsewhere.
        tokio::time::sleep(inner.config.settle_every.min(Duration::from_millis(10))).await;
    }
}

impl<S: UsageStore> Drop for Inner<S> {
    /// The last clone is gone: what the blocks spent is committed in a task of its own, the
    /// rest given back (without a runtime, their leases free them and their spent units are
    /// lost).
    fn drop(&mut self) {
        let holds = self.drain();
        if holds.is_empty() {
            return;
        }
        let store = Arc::clone(&self.store);
        let settle = async move {
            for (hold, spent) in holds {
                if let Err(error) = store.commit(&hold, &[spent]).await {
                    tracing::warn!(%error, "usage store failed to settle a block on drop; its lease frees it");
                }
            }
        };
        match Handle::try_current() {
            Ok(handle) => drop(handle.spawn(settle)),
            Err(_) => tracing::warn!(
                "blocks dropped outside a Tokio runtime: their leases free them, uncounted"
            ),
        }
    }
}
