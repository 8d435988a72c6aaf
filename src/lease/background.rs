//! Commits and releases of reservations that no block served, made off the response path
//! ([`commit_in_background`](super::LeasedBuilder::commit_in_background)): one task takes them
//! in order, and makes those of distinct counters at once.

use std::sync::{Arc, Weak};

use tokio::runtime::Handle;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;

use super::state::Inner;
use crate::store::{Hold, UsageStore};

/// The most calls the task makes at once.
const BATCH: usize = 256;

/// One commit (`Some(spent)`) or release (`None`).
pub(super) struct Call {
    hold: Hold,
    spent: Option<Vec<u64>>,
}

/// The queue of the background task.
pub(super) type Queue = UnboundedSender<Call>;

/// Queues the commit (`spent`) or release (`None`) of `hold`, its counters marked as changing
/// until it lands (reads of them wait); `false` without a runtime (nothing queued).
pub(super) fn queue<S: UsageStore>(
    inner: &Arc<Inner<S>>,
    hold: &Hold,
    spent: Option<&[u64]>,
) -> bool {
    let queue = inner.background.get_or_init(|| {
        let handle = Handle::try_current().ok()?;
        let (queue, calls) = unbounded_channel();
        let store = Arc::clone(&inner.store);
        drop(handle.spawn(run(store, Arc::downgrade(inner), calls)));
        Some(queue)
    });
    let Some(queue) = queue else {
        return false;
    };
    inner.changing(hold, true);
    let call = Call {
        hold: hold.clone(),
        spent: spent.map(<[u64]>::to_vec),
    };
    if queue.send(call).is_err() {
        inner.changing(hold, false);
        return false;
    }
    true
}

/// Takes the calls in order until the queue is dropped and empty: each batch in waves, a call
/// on a counter that an earlier call of the wave changes waiting for the next wave.
async fn run<S: UsageStore>(
    store: Arc<S>,
    inner: Weak<Inner<S>>,
    mut calls: UnboundedReceiver<Call>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while calls.recv_many(&mut batch, BATCH).await > 0 {
        let mut rest = std::mem::take(&mut batch);
        while !rest.is_empty() {
            let mut wave: Vec<Call> = Vec::new();
            let mut later = Vec::new();
            for call in rest {
                let clash = wave
                    .iter()
                    .chain(&later)
                    .any(|other: &Call| shares_a_counter(&call.hold, &other.hold));
                if clash {
                    later.push(call);
                } else {
                    wave.push(call);
                }
            }
            let mut tasks = JoinSet::new();
            for call in wave {
                let (store, inner) = (Arc::clone(&store), Weak::clone(&inner));
                tasks.spawn(async move {
                    let result = match &call.spent {
                        Some(spent) => store.commit(&call.hold, spent).await,
                        None => store.release(&call.hold).await,
                    };
                    if let Err(error) = result {
                        let step = if call.spent.is_some() { "commit" } else { "release" };
                        tracing::warn!(
                            reservation = %call.hold.id(),
                            %error,
                            "usage store failed to {step} a reservation in the background; its lease frees it"
                        );
                    }
                    if let Some(inner) = inner.upgrade() {
                        inner.changing(&call.hold, false);
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            rest = later;
        }
    }
}

/// Whether two holds take units on a common counter.
fn shares_a_counter(a: &Hold, b: &Hold) -> bool {
    a.lines().iter().any(|line| {
        b.lines()
            .iter()
            .any(|other| other.counter() == line.counter())
    })
}
