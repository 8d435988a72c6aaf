//! What a check needs from the stores: the catalog (cached, loaded or refreshed) and the user's
//! record (from the user cache or the plan store).

use std::sync::Arc;

use tokio::time::Instant;

use super::Shared;
use crate::cache::{CatalogCache, Fetch, Loaded, Refresh, View};
use crate::metrics::{Call, Stopwatch};
use crate::subscriber::Subscriber;
use crate::timeout::timed;
use crate::user::UserId;

/// Where the catalog of a request that no usable catalog resolved comes from.
pub(crate) enum Source {
    /// A load, shared with the concurrent requests that need one.
    Load,
    /// The refresh of this stale catalog, run by the request itself for want of a runtime to run
    /// it in the background; the stale catalog serves if it fails.
    Refresh(Refresh<Shared>, Arc<Loaded>),
}

/// A user's record as the store gave it: `None` for an unknown user.
pub(crate) type Record = Option<Arc<Subscriber>>;

impl Shared {
    /// What a fetch of the catalog needs.
    fn fetch(&self) -> Fetch<'_> {
        Fetch {
            store: &*self.store,
            timeout: self.store_timeout,
            routes: &self.routes,
        }
    }

    /// Claims the refresh of the stale catalog at `now` and runs it in the background on the
    /// current Tokio runtime. Without a runtime the claim comes back, for the request to run it.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, now: Instant) -> Option<Refresh<Shared>> {
        let refresh = CatalogCache::begin_refresh(self, now)?;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    refresh.run(refresh.owner().fetch()).await;
                });
                None
            }
            Err(_) => Some(refresh),
        }
    }

    /// A catalog from `source`; `None` when the store failed and no catalog may serve.
    pub(super) async fn catalog_from(&self, source: Source) -> Option<Arc<Loaded>> {
        match source {
            Source::Load => self.catalog.load(self.fetch()).await,
            Source::Refresh(refresh, stale) => {
                Some(refresh.run(self.fetch()).await.unwrap_or(stale))
            }
        }
    }

    /// The catalog as a governed request would find it: the cached one while it is usable
    /// (a stale one starts its refresh), else a load; `None` when the store failed and no
    /// catalog may serve.
    pub(crate) async fn catalog(self: &Arc<Self>) -> Option<Arc<Loaded>> {
        let now = Instant::now();
        let usable = match self.catalog.view(&self.catalog.read(), now) {
            View::Usable { loaded, stale } => Some((Arc::clone(loaded), stale)),
            View::Load => None,
        };
        match usable {
            Some((loaded, false)) => Some(loaded),
            Some((stale, true)) => match self.refresh_in_background(now) {
                Some(refresh) => Some(refresh.run(self.fetch()).await.unwrap_or(stale)),
                None => Some(stale),
            },
            None => self.catalog.load(self.fetch()).await,
        }
    }

    /// The user's record without waiting: from the user cache, or from a store that answers at
    /// once (`Err` when it failed, which is logged); `None` when it has to be awaited.
    pub(super) fn record_now(&self, user: &UserId) -> Option<Result<Record, ()>> {
        if let Some(users) = &self.users {
            return users.cached(user).map(Ok);
        }
        let stopwatch = Stopwatch::start();
        // Not ready: dropped unpolled, and asked again by `record`.
        let answer = self.store.user(user.as_str()).into_ready().ok()?;
        stopwatch.stop_now(Call::USER, &answer);
        Some(answer.map_err(|error| user_failed(user, &error)))
    }

    /// The user's record, through the user cache when there is one; `None` when the store
    /// failed (the failure is logged).
    pub(crate) async fn record(&self, user: &UserId) -> Option<Record> {
        match &self.users {
            Some(users) => users.get(&*self.store, self.store_timeout, user).await.ok(),
            None => {
                let call = self.store.user(user.as_str());
                match timed(Call::USER, self.store_timeout, call).await {
                    Ok(record) => Some(record),
                    Err(error) => {
                        user_failed(user, &error);
                        None
                    }
                }
            }
        }
    }
}

/// Logs a store that failed to return `user`'s record (the user at debug level only).
#[cold]
fn user_failed(user: &UserId, error: &dyn std::fmt::Display) {
    tracing::debug!(user = %user, "plan store failed to return the user");
    tracing::warn!(%error, "plan store failed to return a user");
}
