//! [`Invalidator`]: the handle that drops a layer's cached entries when rights change.

use std::fmt;
use std::sync::Arc;

use crate::check::Shared;

/// Drops cached entries of a [`PlanLimitLayer`](crate::PlanLimitLayer), for a webhook or a
/// message bus to call when rights change.
///
/// Obtained from [`PlanLimitLayer::invalidator`](crate::PlanLimitLayer::invalidator); cheap to
/// clone, `Send` and `Sync`. A request already being checked keeps what it read; the next one
/// sees the change.
#[derive(Clone)]
pub struct Invalidator {
    shared: Arc<Shared>,
}

impl Invalidator {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Drops the cached record of user `id`: the next governed request by that user asks the
    /// store. Does nothing when the user cache is off.
    pub fn user(&self, id: &str) {
        if let Some(users) = &self.shared.users {
            users.invalidate(id);
        }
    }

    /// Drops every cached user record. Does nothing when the user cache is off.
    pub fn all_users(&self) {
        if let Some(users) = &self.shared.users {
            users.invalidate_all();
        }
    }

    /// Drops the cached catalog: the next request that
    /// [could be governed](crate::PlanLimitLayer#what-could-be-governed) fetches it, waits for it
    /// and is resolved with it, whether or not the old catalog governed it (rights changed, so
    /// the old catalog is no longer used; it serves as the fallback if the fetch fails, within
    /// `max_stale`). Concurrent requests share one fetch.
    pub fn catalog(&self) {
        self.shared.catalog.invalidate();
    }
}

impl fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidator").finish_non_exhaustive()
    }
}
