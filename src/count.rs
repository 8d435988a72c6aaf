//! Counted usage in the layer: which counter a request reserves on, and the reservation that its
//! response settles (DESIGN section 10).
//!
//! A governed, allowed request that is counted reserves one unit before the inner service is
//! called. Its [`Reservation`] then travels with the response future: a success commits it, any
//! other response or an inner error releases it, and a future dropped before the end releases it
//! too (or commits it, with `commit_dropped`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use http::StatusCode;

use crate::catalog::Action;
use crate::decision::Terms;
use crate::metrics::{Call, Stopwatch};
use crate::store::{timed, Counter, ReservationId, Reserve, StoreError, UsageStore};
use crate::subscriber::Usage;

/// Whether a response status commits a reservation.
pub(crate) type CommitWhen = dyn Fn(StatusCode) -> bool + Send + Sync + 'static;

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

/// The layer's counting configuration: the usage store and how reservations are settled.
///
/// Cheap to clone (its parts are shared), so that each thread can hold a copy of its own
/// behind an `Arc` whose reference count no other thread writes (see
/// [`Counting::local`]).
#[derive(Clone)]
pub(crate) struct Counting {
    pub(crate) store: Arc<dyn UsageStore>,
    /// How long a reservation holds its unit when it is never settled (a crashed instance).
    pub(crate) lease: Duration,
    /// The time limit of each usage store call.
    pub(crate) timeout: Duration,
    /// Which responses commit (default: 2xx).
    pub(crate) commit_when: Option<Arc<CommitWhen>>,
    /// Whether a response future dropped after the inner service was called commits (the
    /// handler may have written) instead of releasing.
    pub(crate) commit_dropped: bool,
}

/// How many layers' counting configurations a thread keeps copies of (a power of two).
const COUNTING_SLOTS: usize = 4;

/// A layer's counting configuration (weakly: the table does not keep a dropped layer's usage
/// store alive on its own account) and this thread's copy.
type CountingSlot = Option<(Weak<Counting>, Arc<Counting>)>;

thread_local! {
    static COUNTINGS: RefCell<[CountingSlot; COUNTING_SLOTS]> =
        const { RefCell::new([const { None }; COUNTING_SLOTS]) };
}

impl Counting {
    /// This thread's copy of the layer's counting configuration, behind an `Arc` of its own:
    /// every counted request holds one until its reservation is settled, and the reference
    /// count of the layer's own `Arc` would pass between the cores serving requests. The copy
    /// shares the usage store; it is made once per thread and layer (again when another layer
    /// took its slot). A copy whose layer is gone is dropped when the thread makes a copy for
    /// another layer. A plain clone when the thread's table is unavailable.
    pub(crate) fn local(self: &Arc<Self>) -> Arc<Counting> {
        let address = Arc::as_ptr(self) as usize;
        // Allocations of a `Counting` are at least 64 bytes apart: the low bits say little.
        let at = (address >> 6) % COUNTING_SLOTS;
        let copy = COUNTINGS.try_with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            // The `Weak` keeps the allocation, so no other configuration can have its address.
            if let Some((original, local)) = slots.get(at)?.as_ref() {
                if original.as_ptr() == Arc::as_ptr(self) {
                    return Some(Arc::clone(local));
                }
            }
            let local = Arc::new(Counting::clone(self));
            for stale in slots.iter_mut() {
                if stale
                    .as_ref()
                    .is_some_and(|(original, _)| original.strong_count() == 0)
                {
                    *stale = None;
                }
            }
            *slots.get_mut(at)? = Some((Arc::downgrade(self), Arc::clone(&local)));
            Some(local)
        });
        copy.ok().flatten().unwrap_or_else(|| Arc::clone(self))
    }
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counting")
            .field("lease", &self.lease)
            .field("custom_commit_when", &self.commit_when.is_some())
            .field("commit_dropped", &self.commit_dropped)
            .finish_non_exhaustive()
    }
}

/// What one counted request does to the counters.
#[derive(Debug)]
pub(crate) struct Tally {
    /// The counter a unit is reserved on before the call, its limit (`None`: unlimited) and
    /// the count it starts from when it does not exist yet.
    reserve: Option<(Counter, Option<u64>, u64)>,
    /// The item counter that a success changes without a reservation (a delete gives one
    /// back; a create under a quota adds one), by how much, and its seed.
    items: Option<(Counter, i64, u64)>,
    /// The usage an allowed request reports when it reserves nothing (a delete without a finite
    /// limit): the record's, as without counting.
    unreserved_usage: u64,
}

impl Tally {
    /// What `action` (already normalised) on `resource` counts under `terms` (the limit the
    /// decision compares with: the plan's raised by the active add-ons), or `None` when the
    /// request is not counted: an action other than create and delete without a finite limit.
    /// `window` is the current period when the limit is a quota.
    ///
    /// A create reserves on the resource's item count, whatever its limit, so that the count is
    /// right when the user changes plans; a delete gives one item back on success and, under a
    /// finite `delete` limit, also reserves on the delete count; any other action with a finite
    /// limit reserves on its own count (a `PATCH` limited by the `update` limit on the count it
    /// is compared with: the patch count when the record has one, else the update count).
    /// Seeds come from the record's usage, read as the decision reads it.
    ///
    /// Under a quota the reservation is on the period's counter of the action instead, seeded
    /// with 0: a create counts creates in the period (and still adds one to the item count on
    /// success), and a delete gives nothing back to it.
    pub(crate) fn of(
        terms: &Terms<'_>,
        usage: Option<&Usage>,
        user: &Arc<str>,
        resource: &Arc<str>,
        action: &Action,
    ) -> Option<Self> {
        let seed = |action: &Action| usage.map_or(0, |usage| usage.get(resource, action));
        // This thread's copy of the catalog's name (see `crate::local`).
        let resource = &crate::local::name(resource);
        let finite = terms.limit.maximum();
        let window = terms.window;
        let items = || Counter::items(Arc::clone(user), Arc::clone(resource));
        let per_action = |counted: Action, max: u64| {
            // A period's counter starts from nothing.
            let seed = if window.is_some() { 0 } else { seed(&counted) };
            let mut counter = Counter::action(Arc::clone(user), Arc::clone(resource), counted);
            counter.period = window;
            (counter, Some(max), seed)
        };
        let tally = match (action, finite, window) {
            (Action::Create, Some(max), Some(_)) => Tally {
                reserve: Some(per_action(Action::Create, max)),
                items: Some((items(), 1, seed(&Action::Create))),
                unreserved_usage: 0,
            },
            (Action::Create, _, _) => Tally {
                reserve: Some((items(), finite, seed(&Action::Create))),
                items: None,
                unreserved_usage: 0,
            },
            (Action::Delete, _, _) => Tally {
                reserve: finite.map(|max| per_action(Action::Delete, max)),
                items: Some((items(), -1, seed(&Action::Create))),
                // Only read when nothing is reserved: no finite delete limit, so no quota.
                unreserved_usage: seed(&Action::Delete),
            },
            (_, finite, _) => {
                let max = finite?;
                // A PATCH limited through the update limit reads the patch count when the
                // record has one, else the update count (rule 6 of the decision): it counts on
                // the counter it reads.
                let counted = if *action == Action::Patch
                    && terms.patch_counts_updates
                    && usage
                        .is_none_or(|usage| usage.action_count(resource, &Action::Patch).is_none())
                {
                    Action::Update
                } else {
                    action.clone()
                };
                Tally {
                    reserve: Some(per_action(counted, max)),
                    items: None,
                    unreserved_usage: 0,
                }
            }
        };
        Some(tally)
    }
}

impl Tally {
    /// The counter a request would reserve on and its seed, `None` when it reserves nothing.
    pub(crate) fn counter(&self) -> Option<(&Counter, u64)> {
        self.reserve
            .as_ref()
            .map(|(counter, _, seed)| (counter, *seed))
    }

    /// The usage reported when nothing is reserved.
    pub(crate) fn unreserved_usage(&self) -> u64 {
        self.unreserved_usage
    }
}

/// What a reservation attempt found.
pub(crate) enum Reserved {
    /// The unit is held; `usage` is what the counter had before (used + held).
    Held {
        reservation: Reservation,
        usage: u64,
    },
    /// The limit is reached; `usage` is used + held.
    Refused { usage: u64 },
}

/// A usage store's answer to a reservation: its id and what the store said, or `None` when the
/// tally reserves nothing.
pub(crate) type Answer = Option<(ReservationId, Reserve)>;

impl Counting {
    /// Reserves what `tally` needs when the store answers without waiting (an in-memory store);
    /// `None` when it has to be awaited with [`reserve`](Self::reserve).
    pub(crate) fn reserve_now(&self, tally: &Tally) -> Option<Result<Answer, StoreError>> {
        let Some((counter, limit, seed)) = &tally.reserve else {
            return Some(Ok(None));
        };
        let id = ReservationId::new();
        let stopwatch = Stopwatch::start();
        let answer = self
            .store
            .reserve_now(counter, *limit, *seed, id, self.lease)?;
        stopwatch.stop_now(Call::RESERVE, &answer);
        Some(
            answer
                .map(|reserve| Some((id, reserve)))
                .map_err(StoreError::Failed),
        )
    }

    /// Reserves what `tally` needs (a delete without a finite limit reserves nothing).
    ///
    /// # Errors
    /// When the usage store fails or times out; nothing is held then.
    pub(crate) async fn reserve(self: &Arc<Self>, tally: &Tally) -> Result<Answer, StoreError> {
        let Some((counter, limit, seed)) = &tally.reserve else {
            return Ok(None);
        };
        let id = ReservationId::new();
        // `(*self.store)`: straight to the store through the trait object, not through
        // `impl UsageStore for Box<T>`, whose future would box the store's own once more.
        let call = (*self.store).reserve(counter, *limit, *seed, id, self.lease);
        match timed(Call::RESERVE, self.timeout, call).await {
            Ok(reserve) => Ok(Some((id, reserve))),
            Err(error) => {
                // A remote store may have applied a reservation whose answer was lost or came
                // too late: release the id (idempotent) rather than leave the unit held until
                // its lease ends.
                self.release_detached(counter.clone(), id);
                Err(error)
            }
        }
    }

    /// The count that `tally` would reserve against (used + held), or its seed when the
    /// counter does not exist yet; the record's usage when it reserves nothing.
    ///
    /// # Errors
    /// When the usage store fails or times out.
    pub(crate) async fn usage(&self, tally: &Tally) -> Result<u64, StoreError> {
        let Some((counter, seed)) = tally.counter() else {
            return Ok(tally.unreserved_usage());
        };
        let count = timed(Call::GET, self.timeout, (*self.store).get(counter)).await?;
        Ok(count.map_or(seed, |count| count.total()))
    }

    /// What the store's `answer` to `tally` means for the request. Inlined into its one
    /// caller, the decision on a counted request.
    #[inline]
    pub(crate) fn conclude(self: Arc<Self>, tally: Tally, answer: Answer) -> Reserved {
        let Tally {
            reserve,
            items,
            unreserved_usage,
        } = tally;
        let (hold, usage) = match (reserve, answer) {
            (Some((counter, ..)), Some((id, Reserve::Reserved { used, held }))) => {
                (Some((counter, id)), used.saturating_add(held))
            }
            (_, Some((_, refused))) => {
                return Reserved::Refused {
                    usage: refused.usage(),
                }
            }
            (_, None) => (None, unreserved_usage),
        };
        Reserved::Held {
            reservation: Reservation::new(self, hold, items),
            usage,
        }
    }

    /// Releases `id` on `counter` in the background (see [`detach`]), logging a failure.
    fn release_detached(self: &Arc<Self>, counter: Counter, id: ReservationId) {
        let counting = Arc::clone(self);
        detach(Box::pin(async move {
            let call = (*counting.store).release(&counter, id);
            if let Err(error) = timed(Call::RELEASE, counting.timeout, call).await {
                tracing::debug!(
                    counter = %counter,
                    reservation = %id,
                    %error,
                    "usage store failed to release a reservation that failed; its lease frees it"
                );
            }
        }));
    }

    fn commits(&self, status: StatusCode) -> bool {
        match &self.commit_when {
            Some(commit_when) => commit_when(status),
            None => status.is_success(),
        }
    }
}

/// A held unit (and a delete's item to give back), settled by the response: dropping it
/// unsettled releases it (or commits it, with `commit_dropped`) in the background.
///
/// It travels boxed, so that the response future of a request that is not counted carries a
/// pointer's worth of it, not the counters. The box of a settled reservation is emptied and
/// kept by the thread for its next reservation (see [`spare`]): a counted request allocates
/// nothing for it once the thread has settled one.
#[derive(Debug)]
pub(crate) struct Reservation(Box<Option<Holding>>);

impl Reservation {
    /// The reservation of `hold` and `items`, in one of the thread's spare boxes when it has
    /// one.
    #[inline(always)]
    fn new(
        counting: Arc<Counting>,
        hold: Option<(Counter, ReservationId)>,
        items: Option<(Counter, i64, u64)>,
    ) -> Self {
        let mut slot = spare().unwrap_or_else(|| Box::new(None));
        *slot = Some(Holding {
            counting,
            hold,
            items,
            settled: false,
        });
        Reservation(slot)
    }

    /// The settlement for a response with `status` (`None`: the inner service failed): a
    /// commit when the status commits, a release otherwise. What the store answers at once is
    /// settled here; the rest is left to the returned future. The emptied box is kept for the
    /// thread's next reservation.
    pub(crate) fn settle(self, status: Option<StatusCode>) -> Settle {
        let Reservation(mut slot) = self;
        // A reservation always holds something: only a spare box is empty.
        let settle = match slot.as_mut() {
            Some(holding) => holding.settle(status),
            None => Settle(None),
        };
        // Settled: dropping what it held settles nothing more.
        *slot = None;
        keep(slot);
        settle
    }
}

/// How many emptied reservation boxes a thread keeps (a counted request on a thread that
/// settles as many as it reserves needs one).
const SPARES: usize = 4;

/// A thread's emptied reservation boxes.
type Spares = [Option<Box<Option<Holding>>>; SPARES];

thread_local! {
    static SPARE_BOXES: RefCell<Spares> = const { RefCell::new([const { None }; SPARES]) };
}

/// One of this thread's spare reservation boxes, if it keeps one.
fn spare() -> Option<Box<Option<Holding>>> {
    SPARE_BOXES
        .try_with(|spares| {
            let mut spares = spares.try_borrow_mut().ok()?;
            spares.iter_mut().find_map(Option::take)
        })
        .ok()
        .flatten()
}

/// Keeps the emptied box `slot` for this thread's next reservation, or frees it when the
/// thread keeps enough of them (or its storage is gone).
fn keep(slot: Box<Option<Holding>>) {
    let _ = SPARE_BOXES.try_with(move |spares| {
        if let Ok(mut spares) = spares.try_borrow_mut() {
            if let Some(free) = spares.iter_mut().find(|spare| spare.is_none()) {
                *free = Some(slot);
            }
        }
    });
}

/// What a [`Reservation`] holds until it is settled.
struct Holding {
    counting: Arc<Counting>,
    hold: Option<(Counter, ReservationId)>,
    /// The item count's change on success: its counter, the change and the seed.
    items: Option<(Counter, i64, u64)>,
    settled: bool,
}

impl fmt::Debug for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("hold", &self.hold)
            .field("items", &self.items)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl Holding {
    /// The settlement for a response with `status` (`None`: the inner service failed): a
    /// commit when the status commits, a release otherwise. What the store answers at once is
    /// settled here; the rest is left to the returned future.
    fn settle(&mut self, status: Option<StatusCode>) -> Settle {
        let commit = status.is_some_and(|status| self.counting.commits(status));
        Settle(self.take(commit))
    }

    /// Settles what the store answers at once and returns the rest as a future, marking this
    /// reservation settled.
    fn take(&mut self, commit: bool) -> Option<SettleFuture> {
        self.settled = true;
        let counting = &self.counting;
        if let Some((counter, id)) = &self.hold {
            let stopwatch = Stopwatch::start();
            let (now, call) = if commit {
                let now = counting.store.commit_now(counter, *id);
                (now.map(|r| r.map(drop)), Call::COMMIT)
            } else {
                (counting.store.release_now(counter, *id), Call::RELEASE)
            };
            match now {
                Some(result) => {
                    stopwatch.stop_now(call, &result);
                    log_settled(result, commit, counter, *id);
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
        match counting.store.adjust_now(counter, *delta, *seed) {
            Some(result) => {
                stopwatch.stop_now(Call::ADJUST, &result);
                log_items(result, counter);
                self.items = None;
                None
            }
            None => Some(self.settle_later(commit)),
        }
    }

    /// What is left to settle, as a future.
    fn settle_later(&mut self, commit: bool) -> SettleFuture {
        let counting = Arc::clone(&self.counting);
        let hold = self.hold.take();
        let items = self.items.take();
        Box::pin(async move {
            let timeout = counting.timeout;
            // `&*counting.store`: through the trait object (see `Counting::reserve`).
            let store = &*counting.store;
            if let Some((counter, id)) = hold {
                let result = if commit {
                    timed(Call::COMMIT, timeout, store.commit(&counter, id))
                        .await
                        .map(drop)
                } else {
                    timed(Call::RELEASE, timeout, store.release(&counter, id)).await
                };
                log_settled(result, commit, &counter, id);
            }
            if let (true, Some((counter, delta, seed))) = (commit, items) {
                let result =
                    timed(Call::ADJUST, timeout, store.adjust(&counter, delta, seed)).await;
                log_items(result, &counter);
            }
        })
    }
}

/// Logs a commit or release that failed; its lease frees the unit.
fn log_settled<E: fmt::Display>(
    result: Result<(), E>,
    commit: bool,
    counter: &Counter,
    id: ReservationId,
) {
    crate::metrics::reservation(commit, result.is_ok());
    if let Err(error) = result {
        let step = if commit { "commit" } else { "release" };
        // The counter names the user: only at debug level.
        tracing::debug!(counter = %counter, reservation = %id, "failed to {step}");
        tracing::warn!(
            resource = %counter.resource,
            reservation = %id,
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

/// Runs `settle` to completion without anyone awaiting it: at once when the store answers at
/// once (an in-memory store), otherwise on the current Tokio runtime. Without a runtime an
/// unfinished settlement is abandoned and the reservation's lease frees the unit.
fn detach(mut settle: SettleFuture) {
    let mut cx = Context::from_waker(noop_waker());
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

/// A waker that does nothing: the first poll of a detached settlement needs none, since a
/// settlement that is not ready at once is handed to the runtime, which polls it again.
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Period};
    use crate::decision::{terms, Policy};
    use crate::store::{Counted, MemoryStore};
    use crate::subscriber::{AddonGrant, Assignment, Subscriber};

    fn catalog() -> Catalog {
        Catalog::from_json(
            r#"{"plans": [{"name": "free", "limits": {
                "clients": 3,
                "tasks": {"index": null, "show": 10, "update": 5, "delete": 2},
                "notes": {"create": null}
            }}], "addons": [
                {"name": "more-clients", "limits": {"clients": 10}},
                {"name": "edits", "limits": {"tasks": {"patch": 4}}}
            ]}"#,
        )
        .unwrap()
    }

    /// The tally of `action` on `resource` for a user on free with these add-ons.
    fn tally_with(
        action: Action,
        resource: &str,
        usage: Option<&Usage>,
        addons: &[&str],
    ) -> Option<Tally> {
        let mut user = Subscriber::new().with_plan(Assignment::new("free"));
        for addon in addons {
            user = user.with_addon(AddonGrant::new(*addon));
        }
        tally_in(&catalog(), &user, 0, action, resource, usage)
    }

    /// The tally of `action` on `resource` for `user` in `catalog` at `now`.
    fn tally_in(
        catalog: &Catalog,
        user: &Subscriber,
        now: u64,
        action: Action,
        resource: &str,
        usage: Option<&Usage>,
    ) -> Option<Tally> {
        let terms = terms(
            catalog,
            Some(user),
            || now,
            &Policy::new(),
            resource,
            &action,
        )
        .expect("free applies");
        Tally::of(
            &terms,
            usage,
            &Arc::from("john"),
            &Arc::from(resource),
            &action,
        )
    }

    fn tally(action: Action, resource: &str, usage: Option<&Usage>) -> Option<Tally> {
        tally_with(action, resource, usage, &[])
    }

    fn reserved(tally: &Tally) -> Option<(Counted, Option<u64>, u64)> {
        let (counter, limit, seed) = tally.reserve.as_ref()?;
        Some((counter.counted.clone(), *limit, *seed))
    }

    #[test]
    fn what_each_action_counts() {
        let mut usage = Usage::new();
        usage.set("clients", 2);
        usage.set_action("tasks", &Action::Update, 4);
        usage.set_action("tasks", &Action::Delete, 1);

        let create = tally(Action::Create, "clients", Some(&usage)).unwrap();
        assert_eq!(reserved(&create), Some((Counted::Items, Some(3), 2)));
        assert!(create.items.is_none());

        // An unlimited create still counts items, so a later plan change finds the right count.
        let unlimited = tally(Action::Create, "notes", None).unwrap();
        assert_eq!(reserved(&unlimited), Some((Counted::Items, None, 0)));

        // A delete gives an item back; under a finite delete limit it also reserves a delete.
        let delete = tally(Action::Delete, "tasks", Some(&usage)).unwrap();
        assert_eq!(
            reserved(&delete),
            Some((Counted::Action(Action::Delete), Some(2), 1))
        );
        let (counter, delta, seed) = delete.items.as_ref().unwrap();
        assert_eq!((&counter.counted, *delta, *seed), (&Counted::Items, -1, 0));
        let free_delete = tally(Action::Delete, "clients", Some(&usage)).unwrap();
        assert!(free_delete.reserve.is_none());
        let (_, delta, seed) = free_delete.items.as_ref().unwrap();
        assert_eq!((*delta, *seed), (-1, 2));

        // Other actions count only under a finite limit.
        let show = tally(Action::Show, "tasks", None).unwrap();
        assert_eq!(
            reserved(&show),
            Some((Counted::Action(Action::Show), Some(10), 0))
        );
        assert!(tally(Action::Index, "tasks", None).is_none());
        assert!(tally(Action::Show, "clients", None).is_none());

        // A PATCH under the update limit counts updates.
        let patch = tally(Action::Patch, "tasks", Some(&usage)).unwrap();
        assert_eq!(
            reserved(&patch),
            Some((Counted::Action(Action::Update), Some(5), 4))
        );
    }

    #[test]
    fn add_ons_raise_the_limit_reserved_against_but_not_the_counter() {
        let mut usage = Usage::new();
        usage.set("clients", 5);
        usage.set_action("tasks", &Action::Update, 4);

        let create = tally_with(Action::Create, "clients", Some(&usage), &["more-clients"]);
        assert_eq!(
            reserved(&create.unwrap()),
            Some((Counted::Items, Some(13), 5))
        );
        let twice = tally_with(
            Action::Create,
            "clients",
            Some(&usage),
            &["more-clients", "more-clients"],
        );
        assert_eq!(
            reserved(&twice.unwrap()),
            Some((Counted::Items, Some(23), 5))
        );

        // An add-on's patch limit raises the PATCH limit; the plan shares PATCH with the
        // updates, so the PATCH is still counted with the updates.
        let patch = tally_with(Action::Patch, "tasks", Some(&usage), &["edits"]);
        assert_eq!(
            reserved(&patch.unwrap()),
            Some((Counted::Action(Action::Update), Some(9), 4))
        );
        let put = tally_with(Action::Update, "tasks", Some(&usage), &["edits"]);
        assert_eq!(
            reserved(&put.unwrap()),
            Some((Counted::Action(Action::Update), Some(5), 4))
        );
    }

    #[test]
    fn quotas_count_per_period_from_nothing() {
        let catalog = Catalog::from_json(
            r#"[{"name": "free", "limits": {
                "reports": {"create": {"max": 2, "per": "month"}, "delete": {"max": 1, "per": "day"}},
                "calls": {"index": {"max": 1000, "per": "month"}}
            }}]"#,
        )
        .unwrap();
        let user = Subscriber::new().with_plan(Assignment::new("free"));
        let mut usage = Usage::new();
        usage.set("reports", 7);
        usage.set_action("calls", &Action::Index, 400);
        let now = 1_795_953_600_000;
        let tally = |resource: &str, action: Action| {
            tally_in(&catalog, &user, now, action, resource, Some(&usage)).unwrap()
        };

        // A create reserves on the month's create counter, from 0, and adds an item on success.
        let create = tally("reports", Action::Create);
        let (counter, limit, seed) = create.reserve.as_ref().unwrap();
        assert_eq!(counter.counted, Counted::Action(Action::Create));
        assert_eq!(counter.period, Some(Period::Month.window(now)));
        assert_eq!((*limit, *seed), (Some(2), 0));
        let (items, delta, seed) = create.items.as_ref().unwrap();
        assert_eq!(
            (&items.counted, items.period, *delta, *seed),
            (&Counted::Items, None, 1, 7)
        );

        // A delete gives an item back, never a create of the period, and reserves on the day's
        // delete counter.
        let delete = tally("reports", Action::Delete);
        let (counter, limit, seed) = delete.reserve.as_ref().unwrap();
        assert_eq!(counter.counted, Counted::Action(Action::Delete));
        assert_eq!(counter.period, Some(Period::Day.window(now)));
        assert_eq!((*limit, *seed), (Some(1), 0));
        let (items, delta, _) = delete.items.as_ref().unwrap();
        assert_eq!((items.period, *delta), (None, -1));

        // The record's lifetime count does not seed a period.
        let index = tally("calls", Action::Index);
        let (counter, limit, seed) = index.reserve.as_ref().unwrap();
        assert_eq!(counter.period, Some(Period::Month.window(now)));
        assert_eq!((*limit, *seed), (Some(1000), 0));
    }

    /// A usage store over a `MemoryStore` that answers only as a test lets it: with
    /// `gated_commits`, a commit waits until `open` is notified; with `lost_reserves`, a
    /// reservation is applied and never answered.
    struct Gated {
        inner: MemoryStore,
        open: tokio::sync::Notify,
        gated_commits: bool,
        lost_reserves: bool,
    }

    impl Gated {
        /// Over `inner`, gating commits and losing reservations as told.
        fn over(inner: MemoryStore, gated_commits: bool, lost_reserves: bool) -> Self {
            Gated {
                inner,
                open: tokio::sync::Notify::new(),
                gated_commits,
                lost_reserves,
            }
        }
    }

    #[async_trait::async_trait]
    impl UsageStore for Gated {
        async fn reserve(
            &self,
            counter: &Counter,
            limit: Option<u64>,
            seed: u64,
            id: ReservationId,
            lease: Duration,
        ) -> Result<Reserve, crate::store::BoxError> {
            let reserve = self.inner.reserve(counter, limit, seed, id, lease).await?;
            if self.lost_reserves {
                std::future::pending::<()>().await;
            }
            Ok(reserve)
        }
        async fn commit(
            &self,
            counter: &Counter,
            id: ReservationId,
        ) -> Result<u64, crate::store::BoxError> {
            if self.gated_commits {
                self.open.notified().await;
            }
            self.inner.commit(counter, id).await
        }
        async fn release(
            &self,
            counter: &Counter,
            id: ReservationId,
        ) -> Result<(), crate::store::BoxError> {
            self.inner.release(counter, id).await
        }
        async fn adjust(
            &self,
            counter: &Counter,
            delta: i64,
            seed: u64,
        ) -> Result<u64, crate::store::BoxError> {
            self.inner.adjust(counter, delta, seed).await
        }
        async fn set(&self, counter: &Counter, used: u64) -> Result<(), crate::store::BoxError> {
            self.inner.set(counter, used).await
        }
        async fn get(
            &self,
            counter: &Counter,
        ) -> Result<Option<crate::store::Count>, crate::store::BoxError> {
            self.inner.get(counter).await
        }
    }

    /// Reserves what `tally` needs, waiting for the store.
    async fn hold(counting: Arc<Counting>, tally: Tally) -> Reserved {
        let answer = counting.reserve(&tally).await.expect("the store answers");
        counting.conclude(tally, answer)
    }

    fn counting(store: Arc<Gated>) -> Arc<Counting> {
        Arc::new(Counting {
            store: Arc::new(store),
            lease: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            commit_when: None,
            commit_dropped: false,
        })
    }

    #[tokio::test]
    async fn a_settlement_dropped_midway_finishes_detached() {
        let empty = MemoryStore::new(Catalog::from_json("[]").unwrap());
        let store = Arc::new(Gated::over(empty, true, false));
        let tally = tally(Action::Create, "clients", None).unwrap();
        let Reserved::Held { reservation, .. } = hold(counting(Arc::clone(&store)), tally).await
        else {
            panic!("an unlimited store reserves");
        };
        let mut settle = Box::pin(reservation.settle(Some(StatusCode::CREATED)));
        let mut cx = Context::from_waker(noop_waker());
        assert!(
            settle.as_mut().poll(&mut cx).is_pending(),
            "the commit waits"
        );
        drop(settle);

        let items = Counter::items("john", "clients");
        store.open.notify_one();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let count = store.inner.get(&items).await.unwrap().unwrap();
        assert_eq!(
            (count.used, count.held),
            (1, 0),
            "the commit finished after the drop"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_that_timed_out_is_released_not_left_to_its_lease() {
        let inner = MemoryStore::new(Catalog::from_json("[]").unwrap());
        let counting = Arc::new(Counting {
            store: Arc::new(Gated::over(inner.clone(), false, true)),
            lease: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
            commit_when: None,
            commit_dropped: false,
        });
        let tally = tally(Action::Create, "clients", None).unwrap();
        let result = counting.reserve(&tally).await;
        assert!(matches!(result, Err(StoreError::TimedOut(_))));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let count = inner
            .get(&Counter::items("john", "clients"))
            .await
            .unwrap()
            .unwrap_or_default();
        assert_eq!(count.held, 0, "released at once, not after the lease");
    }

    #[tokio::test]
    async fn a_dropped_reservation_is_released_or_committed() {
        for commit_dropped in [false, true] {
            let inner = MemoryStore::new(Catalog::from_json("[]").unwrap());
            let counting = Arc::new(Counting {
                store: Arc::new(inner.clone()),
                lease: Duration::from_secs(60),
                timeout: Duration::from_secs(5),
                commit_when: None,
                commit_dropped,
            });
            let tally = tally(Action::Create, "clients", None).unwrap();
            let Reserved::Held { reservation, .. } = hold(counting, tally).await else {
                panic!("an unlimited store reserves");
            };
            drop(reservation);
            let count = inner
                .get(&Counter::items("john", "clients"))
                .await
                .unwrap()
                .unwrap_or_default();
            assert_eq!(count.held, 0, "nothing stays held");
            assert_eq!(count.used, u64::from(commit_dropped));
        }
    }

    #[tokio::test]
    async fn a_settled_reservation_leaves_its_box_empty_to_the_next() {
        let empty = MemoryStore::new(Catalog::from_json("[]").unwrap());
        let store = Arc::new(Gated::over(empty, false, false));
        let reserve = || async {
            let tally = tally(Action::Create, "clients", None).unwrap();
            match hold(counting(Arc::clone(&store)), tally).await {
                Reserved::Held { reservation, .. } => reservation,
                Reserved::Refused { .. } => panic!("the plan keeps 3 clients"),
            }
        };
        let items = || async {
            let counter = Counter::items("john", "clients");
            let count = store.inner.get(&counter).await.unwrap();
            count.map(|count| (count.used, count.held))
        };

        // The plan keeps 3 clients: two commits, then a reservation dropped.
        for used in 1..=2 {
            let reservation = reserve().await;
            let at = std::ptr::from_ref(&*reservation.0);
            reservation.settle(Some(StatusCode::CREATED)).await;
            assert_eq!(items().await, Some((used, 0)));

            // The thread keeps the box, empty: neither the configuration nor, through it, the
            // usage store stays alive in it.
            let kept = spare().expect("the settled reservation's box is kept");
            assert_eq!(std::ptr::from_ref(&*kept), at);
            assert!(kept.is_none(), "the kept box holds {kept:?}");
            assert_eq!(Arc::strong_count(&store), 1, "something holds the store");
            keep(kept);
        }

        // The next reservation takes the kept box; dropped unsettled, it is released, and its
        // box freed with it.
        let reservation = reserve().await;
        assert!(spare().is_none(), "the thread kept a second box");
        drop(reservation);
        assert_eq!(items().await, Some((2, 0)));
        assert_eq!(Arc::strong_count(&store), 1);
        assert!(
            spare().is_none(),
            "a reservation dropped unsettled left its box"
        );
    }

    fn configuration(store: &Arc<dyn crate::UsageStore>) -> Arc<Counting> {
        Arc::new(Counting {
            store: Arc::clone(store),
            lease: std::time::Duration::from_secs(60),
            timeout: std::time::Duration::from_secs(5),
            commit_when: None,
            commit_dropped: false,
        })
    }

    #[test]
    fn a_thread_copies_a_counting_configuration_once_and_lets_go_of_a_dropped_one() {
        // On a thread of its own, whose table starts empty.
        std::thread::spawn(|| {
            let store: Arc<dyn crate::UsageStore> =
                Arc::new(crate::MemoryStore::new(crate::Catalog::default()));
            let first = configuration(&store);
            let (a, b) = (first.local(), first.local());
            assert!(Arc::ptr_eq(&a, &b));
            assert!(!Arc::ptr_eq(&a, &first));
            assert!(Arc::ptr_eq(&a.store, &first.store));
            let elsewhere = std::thread::spawn({
                let first = Arc::clone(&first);
                move || Arc::as_ptr(&first.local()) as usize
            })
            .join()
            .unwrap();
            assert_ne!(elsewhere, Arc::as_ptr(&a) as usize);
            drop((a, b));
            // The store is held by `store`, `first` and this thread's copy.
            assert_eq!(Arc::strong_count(&store), 3);
            // The layer goes; its copy goes when the thread copies another configuration.
            drop(first);
            assert_eq!(Arc::strong_count(&store), 2);
            let second = configuration(&store);
            let copy = second.local();
            assert!(Arc::ptr_eq(&copy.store, &store));
            assert_eq!(Arc::strong_count(&store), 3, "store, second and its copy");
        })
        .join()
        .unwrap();
    }
}
