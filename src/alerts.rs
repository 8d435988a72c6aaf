//! Usage alerts: a [`UsageAlert`] for each threshold (80 % of a limit, 10 units left, ...) that a
//! user's counted usage crosses, once per counter, period and threshold.
//!
//! Set them up with [`alerts`](crate::PlanLimitLayerBuilder::alerts) on a layer that
//! [counts usage](crate::PlanLimitLayerBuilder::count_usage). After a request's units are
//! committed, the layer looks at every finite limit the request counted on (its action's, the
//! credit pool's it drew from): when the count has reached a threshold, it sets a marker for it
//! in the usage store ([`UsageStore::mark`](crate::UsageStore::mark)), and the one call that set
//! it first (of every instance sharing the store) hands the alert to the [`AlertHandler`]. The
//! next period of a quota starts without markers, so its thresholds fire again.
//!
//! All of it runs after the response, in a task of its own on the current Tokio runtime: a slow
//! or failing handler never delays a request. (Outside a runtime the check runs in place, as far
//! as the store and the handler answer at once.) A failure (reading a count, setting the
//! marker, or the handler's error) is logged at warn level and counted
//! (`tower_plans_alerts_total{outcome="failed"}`, with the `metrics` feature), and not retried:
//! an alert may be lost, never sent twice. A usage store that keeps no markers (the default
//! [`mark`](crate::UsageStore::mark)) fails every alert this way.
//!
//! The guide's [usage alerts](crate::guide::cycles#usage-alerts) run them through a layer.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use tower_plans::{alerts::UsageAlert, MemoryStore, PlanLimitLayer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"[{"name": "free", "clients": 10}]"#,
//!     r#"{"john": {"plan": "free"}}"#,
//! )?;
//! let seen: Arc<Mutex<Vec<UsageAlert>>> = Arc::default();
//! let sink = Arc::clone(&seen);
//! let layer = PlanLimitLayer::builder(store.clone())
//!     .count_usage(store)
//!     .alerts([80, 100], move |alert: UsageAlert| {
//!         sink.lock().unwrap().push(alert);
//!         async { Ok(()) }
//!     })
//!     .build()?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};
use smallvec::SmallVec;

use crate::catalog::{Action, Window};
use crate::metrics::{self, Call};
use crate::store::{BoxError, Counter, Hold};
use crate::timeout::timed;
use crate::user::UserId;

/// When an alert fires: at a share of the limit, or when few units are left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Threshold {
    /// When the count reaches this many percent of the limit (rounded up to a whole unit):
    /// `Percent(80)` of 1000 is 800, `Percent(100)` the limit itself. Above 100, it is reached
    /// only past a soft limit's `max` ([`Overage`](crate::catalog::Overage)). A number converts
    /// to it: `.alerts([80, 100], ..)`.
    Percent(u64),
    /// When at most this many units are left under the limit: `Remaining(10)` of 1000 is
    /// reached at 990, and never under a limit of less than 10.
    Remaining(u64),
}

impl Threshold {
    /// The count at which the threshold is reached under a limit of `max`, `None` when it never
    /// is (more units left than the limit has).
    pub fn units(self, max: u64) -> Option<u64> {
        match self {
            Threshold::Percent(percent) => {
                let units = (u128::from(max) * u128::from(percent)).div_ceil(100);
                Some(u64::try_from(units).unwrap_or(u64::MAX))
            }
            Threshold::Remaining(left) => max.checked_sub(left),
        }
    }

    /// The marker the threshold sets in the usage store.
    fn marker(self) -> String {
        match self {
            Threshold::Percent(percent) => format!("alert:{percent}%"),
            Threshold::Remaining(left) => format!("alert:left:{left}"),
        }
    }
}

impl From<u64> for Threshold {
    fn from(percent: u64) -> Self {
        Threshold::Percent(percent)
    }
}

impl From<u32> for Threshold {
    fn from(percent: u32) -> Self {
        Threshold::Percent(u64::from(percent))
    }
}

impl From<i32> for Threshold {
    /// A percent; a negative one is 0.
    fn from(percent: i32) -> Self {
        Threshold::Percent(u64::try_from(percent).unwrap_or(0))
    }
}

impl Serialize for Threshold {
    /// A percent as a number (`80`), remaining units as `{"remaining": 10}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Threshold::Percent(percent) => serializer.serialize_u64(*percent),
            Threshold::Remaining(left) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("remaining", left)?;
                map.end()
            }
        }
    }
}

/// What an alert is about: an action's limit on a resource, or a credit pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The limit on `action` of `resource`.
    Action {
        /// The resource.
        resource: Arc<str>,
        /// The action.
        action: Action,
    },
    /// The allowance of a credit pool.
    Pool(Arc<str>),
}

/// A user's usage reached a threshold of a limit.
///
/// Serialises as `{"user","plan","resource","action","threshold","used","max","period"}`, with
/// `"pool"` instead of `"resource"` and `"action"` for a credit pool; `threshold` a percent as a
/// number (`80`) or `{"remaining": 10}`, `period` the label of the quota's period (`"2026-11"`,
/// or `"m1769853600000"` for a billing cycle: see [`Window`]) or `null`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageAlert {
    /// The user.
    pub user: UserId,
    /// The plan that applied to the request that crossed the threshold.
    pub plan: Arc<str>,
    /// The limit it is about.
    pub subject: Subject,
    /// The threshold reached.
    pub threshold: Threshold,
    /// The counter's used count when the alert was raised, read after the commit that reached
    /// the threshold (commits made meanwhile included).
    pub used: u64,
    /// The limit (a soft limit's own `max`, its overage aside).
    pub max: u64,
    /// The quota's period, `None` for a limit that never resets.
    pub period: Option<Window>,
}

impl Serialize for UsageAlert {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("user", self.user.as_str())?;
        map.serialize_entry("plan", &*self.plan)?;
        match &self.subject {
            Subject::Action { resource, action } => {
                map.serialize_entry("resource", &**resource)?;
                map.serialize_entry("action", action)?;
            }
            Subject::Pool(pool) => map.serialize_entry("pool", &**pool)?,
        }
        map.serialize_entry("threshold", &self.threshold)?;
        map.serialize_entry("used", &self.used)?;
        map.serialize_entry("max", &self.max)?;
        map.serialize_entry("period", &self.period.map(|window| window.to_string()))?;
        map.end()
    }
}

/// The future an [`AlertHandler`] answers with.
pub type AlertFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'static>>;

/// Receives usage alerts: implemented for every `Fn(UsageAlert) -> impl Future<Output =
/// Result<(), BoxError>>` closure that is `Send + Sync + 'static`, or by a type of your own.
pub trait AlertHandler: Send + Sync + 'static {
    /// Handles one alert (send an email, post to a queue). An error is logged and counted.
    fn alert(&self, alert: UsageAlert) -> AlertFuture;
}

impl<F, Fut> AlertHandler for F
where
    F: Fn(UsageAlert) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn alert(&self, alert: UsageAlert) -> AlertFuture {
        Box::pin(self(alert))
    }
}

/// The layer's alert configuration.
pub(crate) struct Alerts {
    /// The thresholds, each with its marker.
    thresholds: Vec<(Threshold, String)>,
    handler: Box<dyn AlertHandler>,
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerts")
            .field("thresholds", &self.thresholds)
            .finish_non_exhaustive()
    }
}

/// The limits of one reservation that alerts watch: for each line of its hold, the limit it is
/// compared with, what it is about and the count before the reservation.
#[derive(Debug)]
pub(crate) struct Watch {
    pub(crate) user: UserId,
    pub(crate) plan: Arc<str>,
    pub(crate) lines: SmallVec<[Watched; 2]>,
}

/// One watched line: its index in the hold, its limit, its subject and its count before.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) line: usize,
    pub(crate) max: u64,
    pub(crate) subject: Subject,
    pub(crate) before: u64,
}

impl Alerts {
    pub(crate) fn new(
        thresholds: impl IntoIterator<Item = Threshold>,
        handler: impl AlertHandler,
    ) -> Self {
        let mut thresholds: Vec<Threshold> = thresholds.into_iter().collect();
        thresholds.dedup();
        Self {
            thresholds: thresholds
                .into_iter()
                .map(|threshold| (threshold, threshold.marker()))
                .collect(),
            handler: Box::new(handler),
        }
    }

    /// Whether a line that went from `before` to `after` under `max` may have reached a
    /// threshold: the count reached the lowest one.
    fn may_fire(&self, max: u64, after: u64) -> bool {
        self.thresholds
            .iter()
            .filter_map(|(threshold, _)| threshold.units(max))
            .any(|units| after >= units)
    }

    /// Whether the commit of `hold` with `spent` may fire an alert of `watch`: a cheap test
    /// made on the response path, before anything is spawned.
    pub(crate) fn worth_checking(&self, watch: &Watch, spent: &[u64]) -> bool {
        watch.lines.iter().any(|watched| {
            let spent = spent.get(watched.line).copied().unwrap_or(0);
            self.may_fire(watched.max, watched.before.saturating_add(spent))
        })
    }

    /// Reads the watched counters of `hold` after its commit and fires each threshold they
    /// reached whose marker this call sets first. Runs off the request path.
    pub(crate) async fn check(
        &self,
        store: &dyn crate::UsageStore,
        timeout: Duration,
        hold: &Hold,
        watch: &Watch,
    ) {
        for watched in &watch.lines {
            let Some(line) = hold.lines().get(watched.line) else {
                continue;
            };
            let counter = line.counter();
            let used = match timed(Call::GET, timeout, store.get(counter)).await {
                Ok(count) => count.map_or(0, |count| count.used),
                Err(error) => {
                    metrics::alert(false);
                    tracing::warn!(%error, "usage store failed to read a count for alerts");
                    continue;
                }
            };
            for (threshold, marker) in &self.thresholds {
                let reached = threshold
                    .units(watched.max)
                    .is_some_and(|units| used >= units);
                if !reached {
                    continue;
                }
                self.fire(
                    store, timeout, counter, marker, watch, watched, *threshold, used,
                )
                .await;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fire(
        &self,
        store: &dyn crate::UsageStore,
        timeout: Duration,
        counter: &Counter,
        marker: &str,
        watch: &Watch,
        watched: &Watched,
        threshold: Threshold,
        used: u64,
    ) {
        match timed(Call::MARK, timeout, store.mark(counter, marker)).await {
            Ok(true) => {}
            // Fired already, here or by another instance.
            Ok(false) => return,
            Err(error) => {
                metrics::alert(false);
                tracing::warn!(%error, "usage store failed to mark an alert; it is not sent");
                return;
            }
        }
        let alert = UsageAlert {
            user: watch.user.clone(),
            plan: Arc::clone(&watch.plan),
            subject: watched.subject.clone(),
            threshold,
            used,
            max: watched.max,
            period: counter.period,
        };
        match self.handler.alert(alert).await {
            Ok(()) => metrics::alert(true),
            Err(error) => {
                metrics::alert(false);
                tracing::warn!(%error, "the usage alert handler failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_in_units() {
        assert_eq!(Threshold::Percent(80).units(1000), Some(800));
        assert_eq!(Threshold::Percent(80).units(3), Some(3), "2.4 rounds up");
        assert_eq!(Threshold::Percent(100).units(60), Some(60));
        assert_eq!(Threshold::Percent(0).units(60), Some(0));
        assert_eq!(Threshold::Percent(200).units(u64::MAX), Some(u64::MAX));
        assert_eq!(Threshold::Remaining(10).units(60), Some(50));
        assert_eq!(Threshold::Remaining(61).units(60), None);
        assert_eq!(Threshold::from(80), Threshold::Percent(80));
        assert_eq!(Threshold::from(-5), Threshold::Percent(0));
        assert_ne!(
            Threshold::Percent(10).marker(),
            Threshold::Remaining(10).marker()
        );
    }

    #[test]
    fn alerts_serialise_as_documented() {
        let alert = UsageAlert {
            user: UserId::from("john"),
            plan: Arc::from("pro"),
            subject: Subject::Action {
                resource: Arc::from("clients"),
                action: Action::Create,
            },
            threshold: Threshold::Percent(80),
            used: 800,
            max: 1000,
            period: Some(crate::catalog::Period::Month.window(1_795_953_600_000)),
        };
        assert_eq!(
            serde_json::to_string(&alert).unwrap(),
            r#"{"user":"john","plan":"pro","resource":"clients","action":"create","threshold":80,"used":800,"max":1000,"period":"2026-11"}"#
        );
        let pool = UsageAlert {
            subject: Subject::Pool(Arc::from("ai")),
            threshold: Threshold::Remaining(5),
            period: None,
            ..alert
        };
        assert_eq!(
            serde_json::to_string(&pool).unwrap(),
            r#"{"user":"john","plan":"pro","pool":"ai","threshold":{"remaining":5},"used":800,"max":1000,"period":null}"#
        );
    }
}
