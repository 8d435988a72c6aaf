//! [`Order`]: the last event applied per subscription, so that an older one is refused.

use std::sync::Arc;

use tokio::sync::Mutex;

/// Where an event stands among the events of its subscription: when Stripe created it, then
/// its kind's rank (a `created` first, a `deleted` last, for events of one second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Mark {
    pub(crate) created: u64,
    pub(crate) rank: u8,
}

/// The last applied [`Mark`] of each subscription, in a bounded moka cache. Each subscription
/// has a lock, held while one of its events is checked and applied, so that its events apply
/// one at a time and in order.
pub(crate) struct Order {
    last: moka::future::Cache<String, Arc<Mutex<Option<Mark>>>>,
}

impl Order {
    /// Remembers up to `capacity` subscriptions.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            last: moka::future::Cache::builder()
                .name("tower-plans stripe subscriptions")
                .max_capacity(capacity)
                .build(),
        }
    }

    /// The slot of `subscription`: lock it, compare with [`Order::is_outdated`], apply, then
    /// store the event's mark.
    pub(crate) async fn slot(&self, subscription: &str) -> Arc<Mutex<Option<Mark>>> {
        self.last
            .get_with_by_ref(subscription, async { Arc::new(Mutex::new(None)) })
            .await
    }

    /// Whether an event at `mark` is older than the last one applied.
    pub(crate) fn is_outdated(last: Option<Mark>, mark: Mark) -> bool {
        last.is_some_and(|last| mark < last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn older_events_are_outdated_and_ties_go_by_rank() {
        let order = Order::new(8);
        let slot = order.slot("sub_1").await;
        let at = |created, rank| Mark { created, rank };
        {
            let mut last = slot.lock().await;
            assert!(!Order::is_outdated(*last, at(10, 1)));
            *last = Some(at(10, 1));
        }
        let again = order.slot("sub_1").await;
        assert!(Arc::ptr_eq(&slot, &again), "one slot per subscription");
        let last = *again.lock().await;
        assert!(Order::is_outdated(last, at(9, 2)));
        assert!(
            Order::is_outdated(last, at(10, 0)),
            "a created after an update"
        );
        assert!(
            !Order::is_outdated(last, at(10, 1)),
            "same second, same rank"
        );
        assert!(
            !Order::is_outdated(last, at(10, 2)),
            "a deleted after an update"
        );
        assert!(!Order::is_outdated(last, at(11, 0)));
        let other = order.slot("sub_2").await;
        assert_eq!(*other.lock().await, None);
    }
}
