//! Counted usage in the layer: which counter a request reserves on, and the reservation that its
//! response settles (DESIGN section 10).
//!
//! A governed, allowed request that is counted reserves one unit before the inner service is
//! called. Its [`Reservation`] then travels with the response future: a success commits it, any
//! other response or an inner error releases it, and a future dropped before the end releases it
//! too (or commits it, with `commit_dropped`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::Duration;

use http::StatusCode;

use crate::catalog::{Action, Limit, Plan};
use crate::decision::patch_uses_update_limit;
use crate::store::{timed, Counter, ReservationId, Reserve, StoreError, UsageStore};
use crate::subscriber::Usage;

/// Whether a response status commits a reservation.
pub(crate) type CommitWhen = dyn Fn(StatusCode) -> bool + Send + Sync + 'static;

/// A settlement of reservations, boxed, run after the response or detached on a drop.
pub(crate) type Settle = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The layer's counting configuration: the usage store and how reservations are settled.
pub(crate) struct Counting {
    pub(crate) store: Box<dyn UsageStore>,
    /// How long a reservation holds its unit when it is never settled (a crashed instance).
    pub(crate) lease: Duration,
    /// The time limit of each usage store call.
    pub(crate) timeout: Duration,
    /// Which responses commit (default: 2xx).
    pub(crate) commit_when: Option<Box<CommitWhen>>,
    /// Whether a response future dropped after the inner service was called commits (the
    /// handler may have written) instead of releasing.
    pub(crate) commit_dropped: bool,
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
    /// The item counter that a success gives one back to (a delete), and its seed.
    give_back: Option<(Counter, u64)>,
}

impl Tally {
    /// What `action` (already normalised) on `resource` counts under `plan`, or `None` when the
    /// request is not counted: an action other than create and delete without a finite limit.
    ///
    /// A create reserves on the resource's item count, whatever its limit, so that the count is
    /// right when the user changes plans; a delete gives one item back on success and, under a
    /// finite `delete` limit, also reserves on the delete count; any other action with a finite
    /// limit reserves on its own count (a `PATCH` limited by the `update` limit on the update
    /// count). Seeds come from the record's usage, read as the decision reads it.
    pub(crate) fn of(
        plan: &Plan,
        usage: Option<&Usage>,
        user: &Arc<str>,
        resource: &Arc<str>,
        action: &Action,
    ) -> Option<Self> {
        let seed = |action: &Action| usage.map_or(0, |usage| usage.get(resource, action));
        let finite = match plan.limit(resource, action) {
            Limit::Limited(max) => Some(max),
            Limit::Unlimited => None,
        };
        let items = || Counter::items(Arc::clone(user), Arc::clone(resource));
        let per_action = |counted: Action, max: u64| {
            let seed = seed(&counted);
            let counter = Counter::action(Arc::clone(user), Arc::clone(resource), counted);
            (counter, Some(max), seed)
        };
        let tally = match action {
            Action::Create => Tally {
                reserve: Some((items(), finite, seed(&Action::Create))),
                give_back: None,
            },
            Action::Delete => Tally {
                reserve: finite.map(|max| per_action(Action::Delete, max)),
                give_back: Some((items(), seed(&Action::Create))),
            },
            _ => {
                let max = finite?;
                let counted = if *action == Action::Patch && patch_uses_update_limit(plan, resource)
                {
                    Action::Update
                } else {
                    action.clone()
                };
                Tally {
                    reserve: Some(per_action(counted, max)),
                    give_back: None,
                }
            }
        };
        Some(tally)
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

impl Counting {
    /// Reserves what `tally` needs (a delete without a finite limit reserves nothing).
    ///
    /// # Errors
    /// When the usage store fails or times out; nothing is held then.
    pub(crate) async fn reserve(self: Arc<Self>, tally: Tally) -> Result<Reserved, StoreError> {
        let Tally { reserve, give_back } = tally;
        let (hold, usage) = match reserve {
            Some((counter, limit, seed)) => {
                let id = ReservationId::new();
                let call = self.store.reserve(&counter, limit, seed, id, self.lease);
                match timed(self.timeout, call).await? {
                    Reserve::Reserved { used, held } => {
                        (Some((counter, id)), used.saturating_add(held))
                    }
                    refused @ Reserve::Refused { .. } => {
                        return Ok(Reserved::Refused {
                            usage: refused.usage(),
                        })
                    }
                }
            }
            None => (None, 0),
        };
        Ok(Reserved::Held {
            reservation: Reservation {
                counting: self,
                hold,
                give_back,
                settled: false,
            },
            usage,
        })
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
pub(crate) struct Reservation {
    counting: Arc<Counting>,
    hold: Option<(Counter, ReservationId)>,
    give_back: Option<(Counter, u64)>,
    settled: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("hold", &self.hold)
            .field("give_back", &self.give_back)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// The settlement for a response with `status` (`None`: the inner service failed): a
    /// commit when the status commits, a release otherwise.
    pub(crate) fn settle(mut self, status: Option<StatusCode>) -> Settlement {
        let commit = status.is_some_and(|status| self.counting.commits(status));
        Settlement(Some(self.take(commit)))
    }

    /// The settlement, marking this reservation settled.
    fn take(&mut self, commit: bool) -> Settle {
        self.settled = true;
        let counting = Arc::clone(&self.counting);
        let hold = self.hold.take();
        let give_back = self.give_back.take();
        Box::pin(async move {
            let timeout = counting.timeout;
            if let Some((counter, id)) = hold {
                let result = if commit {
                    timed(timeout, counting.store.commit(&counter, id))
                        .await
                        .map(drop)
                } else {
                    timed(timeout, counting.store.release(&counter, id)).await
                };
                if let Err(error) = result {
                    let step = if commit { "commit" } else { "release" };
                    tracing::warn!(
                        user = %counter.user,
                        resource = %counter.resource,
                        counter = %counter,
                        reservation = %id,
                        %error,
                        "usage store failed to {step} a reservation; its lease frees it"
                    );
                }
            }
            if let (true, Some((counter, seed))) = (commit, give_back) {
                let call = counting.store.adjust(&counter, -1, seed);
                if let Err(error) = timed(timeout, call).await {
                    tracing::warn!(
                        user = %counter.user,
                        resource = %counter.resource,
                        %error,
                        "usage store failed to give back a deleted item"
                    );
                }
            }
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let commit = self.counting.commit_dropped;
        detach(self.take(commit));
    }
}

/// A settlement that the response future awaits: dropped before it is done (the future was
/// dropped while the store call was under way), it is finished in the background with
/// [`detach`], so that the decision taken on the response is carried out instead of leaving the
/// unit held until its lease ends.
pub(crate) struct Settlement(Option<Settle>);

impl Future for Settlement {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(settle) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        ready!(settle.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(())
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if let Some(settle) = self.0.take() {
            detach(settle);
        }
    }
}

/// Runs `settle` to completion without anyone awaiting it: at once when the store answers at
/// once (an in-memory store), otherwise on the current Tokio runtime. Without a runtime an
/// unfinished settlement is abandoned and the reservation's lease frees the unit.
pub(crate) fn detach(mut settle: Settle) {
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
