//! The [`Reservation`] a counted request holds, and its settlement after the response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::StatusCode;

use smallvec::SmallVec;

use super::{Counting, Meter};
use crate::alerts::Watch;
use crate::metrics::{Call, Stopwatch};
use crate::store::{Counter, Hold, Seed};
use crate::timeout::timed;

/// A settlement of reservations, boxed, run after the response or detached on a drop.
type SettleFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The settlement that a response waits for. Dropped before it finished (the response future
/// was dropped meanwhile), it finishes detached: a commit under way is not lost.
pub(crate) struct Settle(Option<SettleFuture>);

impl Future for Settle {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(settle) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        std::task::ready!(settle.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(())
    }
}

impl Settle {
    /// Whether nothing is left to wait for: the store answered at once.
    pub(crate) fn is_done(&self) -> bool {
        self.0.is_none()
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(settle) = self.0.take() {
            detach(settle);
        }
    }
}

/// A held unit (and a delete's item to give back), settled by the response: dropping it
/// unsettled releases it (or commits it, with `commit_dropped`) in the background.
///
/// It travels boxed, so that the response future of a request that is not counted carries a
/// pointer's worth of it, not the counters.
#[derive(Debug)]
pub(crate) struct Reservation(Box<Holding>);

/// What a [`Reservation`] holds until it is settled.
struct Holding {
    counting: Arc<Counting>,
    hold: Option<Hold>,
    /// The item count's change on success: its counter, the change and where it starts.
    items: Option<(Counter, i64, Seed)>,
    /// The line whose units the handler reports, and where it reports them.
    reported: Option<(usize, Meter)>,
    /// The limits that usage alerts watch, when alerts are on.
    watch: Option<Box<Watch>>,
    settled: bool,
}

impl fmt::Debug for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("hold", &self.hold)
            .field("items", &self.items)
            .field("reported", &self.reported)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    pub(super) fn new(
        counting: Arc<Counting>,
        hold: Option<Hold>,
        items: Option<(Counter, i64, Seed)>,
        reported: Option<(usize, Meter)>,
    ) -> Self {
        Reservation(Box::new(Holding {
            counting,
            hold,
            items,
            reported,
            watch: None,
            settled: false,
        }))
    }

    /// Watches the limits of `watch` for usage alerts when the reservation commits.
    pub(crate) fn watch(&mut self, watch: Watch) {
        self.0.watch = Some(Box::new(watch));
    }

    /// Whether the handler reports what the request consumed: its response settles when its
    /// body ends, so that it can report while it streams.
    pub(crate) fn is_reported(&self) -> bool {
        self.0.reported.is_some()
    }

    /// The settlement for a response with `status` (`None`: the inner service failed): a
    /// commit when the status commits, a release otherwise. What the store answers at once is
    /// settled here; the rest is left to the returned future.
    pub(crate) fn settle(mut self, status: Option<StatusCode>) -> Settle {
        let commit = status.is_some_and(|status| self.0.counting.commits(status));
        Settle(self.0.take(commit))
    }
}

impl Holding {
    /// Settles what the store answers at once and returns the rest as a future, marking this
    /// reservation settled.
    fn take(&mut self, commit: bool) -> Option<SettleFuture> {
        self.settled = true;
        let counting = &self.counting;
        if let Some(hold) = &self.hold {
            let stopwatch = Stopwatch::start();
            let spent = spent(hold, self.reported.as_ref());
            let (answer, call) = if commit {
                let answer = counting.store.commit(hold, &spent).into_ready();
                (answer.ok(), Call::COMMIT)
            } else {
                let answer = counting.store.release(hold).into_ready();
                (answer.ok(), Call::RELEASE)
            };
            match answer {
                Some(result) => {
                    stopwatch.stop_now(call, &result);
                    if commit && result.is_ok() {
                        watch_alerts(counting, hold, self.watch.take(), &spent);
                    }
                    log_settled(result, commit, hold);
                    self.hold = None;
                }
                // The rest waits for the store, in order.
                None => return Some(self.settle_later(commit)),
            }
        }
        if !commit {
            return None;
        }
        let (counter, delta, seed) = self.items.as_ref()?;
        let stopwatch = Stopwatch::start();
        let answer = counting
            .store
            .adjust(counter, *delta, *seed)
            .into_ready()
            .ok();
        match answer {
            Some(result) => {
                stopwatch.stop_now(Call::ADJUST, &result);
                log_items(result, counter);
                self.items = None;
                None
            }
            None => Some(self.settle_later(commit)),
        }
    }

    /// What is left to settle, as a future that asks the store again.
    fn settle_later(&mut self, commit: bool) -> SettleFuture {
        let counting = Arc::clone(&self.counting);
        let hold = self.hold.take();
        let items = self.items.take();
        let watch = self.watch.take();
        let spent = hold
            .as_ref()
            .map(|hold| spent(hold, self.reported.as_ref()))
            .unwrap_or_default();
        Box::pin(async move {
            let timeout = counting.timeout;
            let store = &*counting.store;
            if let Some(hold) = hold {
                let result = if commit {
                    timed(Call::COMMIT, timeout, store.commit(&hold, &spent)).await
                } else {
                    timed(Call::RELEASE, timeout, store.release(&hold)).await
                };
                if commit && result.is_ok() {
                    watch_alerts(&counting, &hold, watch, &spent);
                }
                log_settled(result, commit, &hold);
            }
            if let (true, Some((counter, delta, seed))) = (commit, items) {
                let result =
                    timed(Call::ADJUST, timeout, store.adjust(&counter, delta, seed)).await;
                log_items(result, &counter);
            }
        })
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let commit = self.counting.commit_dropped;
        if let Some(rest) = self.take(commit) {
            detach(rest);
        }
    }
}

/// What each line of `hold` spent: what it held, but the reported line, which spent what its
/// handler reported (its estimate when nothing was reported).
fn spent(hold: &Hold, reported: Option<&(usize, Meter)>) -> SmallVec<[u64; 2]> {
    hold.lines()
        .iter()
        .enumerate()
        .map(|(index, line)| match reported {
            Some((at, meter)) if *at == index => meter.reported().unwrap_or(line.units()),
            _ => line.units(),
        })
        .collect()
}

/// After the commit of `hold` with `spent`: when the counts may have reached an alert's
/// threshold, checks them in a task of its own, off the request path.
fn watch_alerts(counting: &Arc<Counting>, hold: &Hold, watch: Option<Box<Watch>>, spent: &[u64]) {
    let (Some(alerts), Some(watch)) = (&counting.alerts, watch) else {
        return;
    };
    if !alerts.worth_checking(&watch, spent) {
        return;
    }
    let (counting, hold) = (Arc::clone(counting), hold.clone());
    let check = async move {
        if let Some(alerts) = &counting.alerts {
            alerts
                .check(&*counting.store, counting.timeout, &hold, &watch)
                .await;
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(check);
        }
        // Without a runtime, here and now.
        Err(_) => detach(Box::pin(check)),
    }
}

/// Releases `hold` in the background (see [`detach`]), logging a failure.
pub(super) fn release_detached(counting: Arc<Counting>, hold: Hold) {
    detach(Box::pin(async move {
        let call = counting.store.release(&hold);
        if let Err(error) = timed(Call::RELEASE, counting.timeout, call).await {
            tracing::debug!(
                reservation = %hold.id(),
                %error,
                "usage store failed to release a reservation that failed; its lease frees it"
            );
        }
    }));
}

/// Logs a commit or release that failed; its lease frees the units.
fn log_settled<E: fmt::Display>(result: Result<(), E>, commit: bool, hold: &Hold) {
    crate::metrics::reservation(commit, result.is_ok());
    if let Err(error) = result {
        let step = if commit { "commit" } else { "release" };
        let resource = hold.lines().first().map(|line| &line.counter().resource);
        // The counters name the user: only at debug level.
        tracing::debug!(reservation = %hold.id(), ?hold, "failed to {step}");
        tracing::warn!(
            resource = ?resource,
            reservation = %hold.id(),
            %error,
            "usage store failed to {step} a reservation; its lease frees it"
        );
    }
}

/// Logs an item count that could not be changed (a deleted item given back, or an item
/// created under a quota).
fn log_items<E: fmt::Display>(result: Result<u64, E>, counter: &Counter) {
    if let Err(error) = result {
        tracing::debug!(user = %counter.user, "failed to change the item count");
        tracing::warn!(
            resource = %counter.resource,
            %error,
            "usage store failed to change an item count"
        );
    }
}

/// Runs `settle` to completion without anyone awaiting it: at once when the store answers at
/// once (an in-memory store), otherwise on the current Tokio runtime. Without a runtime an
/// unfinished settlement is abandoned and the reservation's lease frees the unit.
fn detach(mut settle: SettleFuture) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if settle.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(settle);
        }
        Err(_) => tracing::warn!(
            "a reservation could not be settled outside a Tokio runtime; its lease frees it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::catalog::Catalog;
    use crate::count::{Outcome, Tally};
    use crate::store::{
        Count, Counted, Held, Line, MemoryStore, ReservationId, StoreFuture, UsageStore,
    };
    use crate::timeout::StoreError;

    /// A usage store over a `MemoryStore` that answers only as a test lets it: every call has
    /// to be awaited; with `gated_commits`, a commit waits until `open` is notified; with
    /// `lost_reserves`, a reservation is applied and never answered.
    struct Gated {
        inner: MemoryStore,
        open: tokio::sync::Notify,
        gated_commits: bool,
        lost_reserves: bool,
    }

    impl UsageStore for Gated {
        fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
            StoreFuture::new(async move {
                let held = self.inner.reserve(hold, lease).await?;
                if self.lost_reserves {
                    std::future::pending::<()>().await;
                }
                Ok(held)
            })
        }

        fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
            StoreFuture::new(async move {
                if self.gated_commits {
                    self.open.notified().await;
                }
                self.inner.commit(hold, spent).await
            })
        }

        fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
            StoreFuture::new(self.inner.release(hold))
        }

        fn adjust<'a>(
            &'a self,
            counter: &'a Counter,
            delta: i64,
            seed: Seed,
        ) -> StoreFuture<'a, u64> {
            StoreFuture::new(self.inner.adjust(counter, delta, seed))
        }

        fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
            StoreFuture::new(self.inner.set(counter, used))
        }

        fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
            StoreFuture::new(self.inner.get(counter))
        }
    }

    fn empty() -> MemoryStore {
        MemoryStore::new(Catalog::default())
    }

    fn counting(store: impl UsageStore, timeout: Duration, commit_dropped: bool) -> Arc<Counting> {
        Arc::new(Counting {
            store: Box::new(store),
            lease: Duration::from_secs(60),
            timeout,
            commit_when: None,
            commit_dropped,
            alerts: None,
        })
    }

    /// A create of john's clients, unlimited.
    fn create() -> Tally {
        Tally {
            hold: Hold::new(ReservationId::new())
                .with(Line::new(Counter::items("john", "clients"), 1)),
            action_line: Some(0),
            pool_line: None,
            reported_line: None,
            items: None,
            unreserved_usage: 0,
        }
    }

    /// Reserves what `tally` needs, waiting for the store.
    async fn hold(counting: &Arc<Counting>, tally: Tally) -> Reservation {
        let answer = counting.reserve(&tally).await.expect("the store answers");
        match counting.conclude(tally, answer) {
            Outcome::Reserved { reservation, .. } => reservation,
            Outcome::Refused { .. } => panic!("an unlimited counter reserves"),
        }
    }

    async fn items(store: &MemoryStore) -> Count {
        let counter = Counter::items("john", "clients");
        assert_eq!(counter.counted, Counted::Items);
        store.get(&counter).await.unwrap().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_settlement_dropped_midway_finishes_detached() {
        let inner = empty();
        let gated = Arc::new(Gated {
            inner: inner.clone(),
            open: tokio::sync::Notify::new(),
            gated_commits: true,
            lost_reserves: false,
        });
        let counting = counting(Arc::clone(&gated), Duration::from_secs(5), false);
        let reservation = hold(&counting, create()).await;
        let mut settle = Box::pin(reservation.settle(Some(StatusCode::CREATED)));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(
            settle.as_mut().poll(&mut cx).is_pending(),
            "the commit waits"
        );
        drop(settle);

        // Let the detached commit through.
        gated.open.notify_one();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            items(&inner).await,
            Count { used: 1, held: 0 },
            "the commit finished after the drop"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_that_timed_out_is_released_not_left_to_its_lease() {
        let inner = empty();
        let gated = Gated {
            inner: inner.clone(),
            open: tokio::sync::Notify::new(),
            gated_commits: false,
            lost_reserves: true,
        };
        let counting = counting(gated, Duration::from_secs(1), false);
        let result = counting.reserve(&create()).await;
        assert!(matches!(result, Err(StoreError::TimedOut(_))));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            items(&inner).await.held,
            0,
            "released at once, not after the lease"
        );
    }

    #[tokio::test]
    async fn a_dropped_reservation_is_released_or_committed() {
        for commit_dropped in [false, true] {
            let inner = empty();
            let counting = counting(inner.clone(), Duration::from_secs(5), commit_dropped);
            let reservation = hold(&counting, create()).await;
            drop(reservation);
            let count = items(&inner).await;
            assert_eq!(count.held, 0, "nothing stays held");
            assert_eq!(count.used, u64::from(commit_dropped));
        }
    }
}
