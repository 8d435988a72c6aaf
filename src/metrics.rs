//! The layer's metrics, through the `metrics` facade (the `metrics` feature): what each function
//! here records, and nothing without the feature, so that call sites carry no `cfg`.
//!
//! Every name starts with `tower_plans_`; the guide's metrics chapter
//! ([`crate::guide::metrics`]) lists them in a table. Labels are bounded:
//! `&'static str` values, and the resource and action of a route, which come from the catalog.
//! No label ever carries a user id or a plan name.

use std::sync::Arc;

use crate::catalog::Action;
use crate::decision::Denial;

/// Decisions, by `outcome`, `reason`, `resource` and `action`.
#[cfg(feature = "metrics")]
pub(crate) const DECISIONS: &str = "tower_plans_decisions_total";
/// Store calls, by `store`, `call` and `result`.
#[cfg(feature = "metrics")]
pub(crate) const STORE_CALLS: &str = "tower_plans_store_calls_total";
/// The latency of store calls, in seconds, by `store` and `call`.
#[cfg(feature = "metrics")]
pub(crate) const STORE_SECONDS: &str = "tower_plans_store_call_seconds";
/// Cache lookups, by `cache` and `result`.
#[cfg(feature = "metrics")]
pub(crate) const CACHE: &str = "tower_plans_cache_total";
/// Settled reservations, by `result`.
#[cfg(feature = "metrics")]
pub(crate) const RESERVATIONS: &str = "tower_plans_reservations_total";
/// Webhook deliveries, by `outcome`.
#[cfg(all(feature = "metrics", feature = "webhook"))]
pub(crate) const WEBHOOK_EVENTS: &str = "tower_plans_webhook_events_total";

/// Stripe webhook deliveries, by `outcome`.
#[cfg(all(feature = "metrics", feature = "stripe"))]
pub(crate) const STRIPE_EVENTS: &str = "tower_plans_stripe_events_total";

/// Counter of usage alerts by `outcome`: `fired`, or `failed` (the marker or the handler
/// failed).
pub(crate) const ALERTS: &str = "tower_plans_alerts_total";

/// The label of a route that no catalog resolved (the catalog could not be loaded).
const UNKNOWN: &str = "unknown";

/// What became of a governed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decided<'a> {
    Allow,
    Deny(&'a Denial),
    Unauthenticated,
    StoreUnavailable,
    PassOpen,
}

impl Decided<'_> {
    /// The `outcome` label, also the request span's `outcome` field.
    pub(crate) fn outcome(self) -> &'static str {
        match self {
            Decided::Allow => "allow",
            Decided::Deny(_) => "deny",
            Decided::Unauthenticated => "unauthenticated",
            Decided::StoreUnavailable => "store_unavailable",
            Decided::PassOpen => "pass_open",
        }
    }

    /// The `reason` label.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Decided::Allow => "none",
            Decided::Deny(Denial::LimitReached { .. }) => "limit",
            Decided::Deny(Denial::Credits { .. }) => "credits",
            Decided::Deny(Denial::RateLimited { .. }) => "rate",
            Decided::Deny(Denial::Expired { .. }) => "expired",
            Decided::Deny(Denial::NoPlan { .. }) => "no_plan",
            Decided::Unauthenticated => "no_user",
            Decided::StoreUnavailable | Decided::PassOpen => "store_error",
        }
    }
}

/// Records a decision on `route` (`None`: the catalog could not be loaded), in the metrics and
/// in the current request span's `outcome` field.
pub(crate) fn decision(decided: Decided<'_>, route: Option<(&Arc<str>, &Action)>) {
    current_span().record("outcome", decided.outcome());
    #[cfg(feature = "metrics")]
    {
        let (resource, action) = match route {
            Some((resource, action)) => (
                ::metrics::SharedString::from(Arc::clone(resource)),
                action_label(action),
            ),
            None => (
                ::metrics::SharedString::const_str(UNKNOWN),
                ::metrics::SharedString::const_str(UNKNOWN),
            ),
        };
        ::metrics::counter!(
            DECISIONS,
            "outcome" => decided.outcome(),
            "reason" => decided.reason(),
            "resource" => resource,
            "action" => action,
        )
        .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (route, UNKNOWN);
}

/// An action as a label, without allocating: a custom action shares the catalog's name.
#[cfg(feature = "metrics")]
fn action_label(action: &Action) -> ::metrics::SharedString {
    match action {
        Action::Custom(name) => ::metrics::SharedString::from(Arc::clone(name)),
        other => ::metrics::SharedString::const_str(match other {
            Action::Index => "index",
            Action::Show => "show",
            Action::Create => "create",
            Action::Update => "update",
            Action::Patch => "patch",
            Action::Delete => "delete",
            Action::Custom(_) => UNKNOWN,
        }),
    }
}

/// The span of one governed request: its route's `resource` and `action`, then the `plan` and
/// the `outcome` once known (info level; nothing is built without a subscriber that wants it).
pub(crate) fn request_span(resource: &str, action: &Action) -> tracing::Span {
    tracing::info_span!(
        "plan_limit",
        resource = resource,
        action = action.as_str(),
        plan = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// Records the plan that applies to the current request in its span.
pub(crate) fn plan(name: &str) {
    current_span().record("plan", name);
}

/// The current span, where a request span could be one: [`request_span`] is made at the `INFO`
/// level, so while no subscriber enables that level there is none, and the thread's current span
/// is not asked for (a lookup through the dispatcher on every request).
pub(crate) fn current_span() -> tracing::Span {
    if tracing::level_enabled!(tracing::Level::INFO) {
        tracing::Span::current()
    } else {
        tracing::Span::none()
    }
}

/// Which store a call goes to, and which call it is: the `store` and `call` labels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    pub(crate) store: &'static str,
    pub(crate) call: &'static str,
}

impl Call {
    pub(crate) const PLANS: Call = Call::plan("plans");
    pub(crate) const USER: Call = Call::plan("user");
    pub(crate) const RESERVE: Call = Call::usage("reserve");
    pub(crate) const COMMIT: Call = Call::usage("commit");
    pub(crate) const RELEASE: Call = Call::usage("release");
    pub(crate) const ADJUST: Call = Call::usage("adjust");
    pub(crate) const GET: Call = Call::usage("get");
    pub(crate) const MARK: Call = Call::usage("mark");
    pub(crate) const RATE: Call = Call {
        store: "rate",
        call: "acquire",
    };
    pub(crate) const REFUND: Call = Call {
        store: "rate",
        call: "refund",
    };

    const fn plan(call: &'static str) -> Call {
        Call {
            store: "plan",
            call,
        }
    }

    const fn usage(call: &'static str) -> Call {
        Call {
            store: "usage",
            call,
        }
    }

    /// The child span of a store call (debug level: nothing is built without a subscriber that
    /// wants it).
    pub(crate) fn span(self) -> tracing::Span {
        tracing::debug_span!("store_call", store = self.store, call = self.call)
    }
}

/// The time since a store call started; nothing without the feature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopwatch {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Stopwatch {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    /// Records a finished store call: its `result` (`ok`, `error` or `timeout`) and its
    /// latency.
    pub(crate) fn stop(self, call: Call, result: &'static str) {
        self.record(call, result);
    }

    /// Records a finished store call that answered at once (no timeout applies).
    pub(crate) fn stop_now<T, E>(self, call: Call, result: &Result<T, E>) {
        self.record(call, if result.is_ok() { "ok" } else { "error" });
    }

    fn record(self, call: Call, result: &'static str) {
        #[cfg(feature = "metrics")]
        {
            ::metrics::counter!(
                STORE_CALLS,
                "store" => call.store,
                "call" => call.call,
                "result" => result,
            )
            .increment(1);
            ::metrics::histogram!(STORE_SECONDS, "store" => call.store, "call" => call.call)
                .record(self.started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (call, result);
    }
}

/// Which cache: the `cache` label.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cache {
    Catalog,
    User,
}

/// Records a cache lookup that found (`hit`) or did not find what it looked for.
pub(crate) fn cache(cache: Cache, hit: bool) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(
        CACHE,
        "cache" => match cache { Cache::Catalog => "catalog", Cache::User => "user" },
        "result" => if hit { "hit" } else { "miss" },
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (cache, hit);
}

/// Records a reservation settled by a commit or a release (`committed`/`released`), and
/// `failed` when the store did not take the settlement (its lease frees the unit).
pub(crate) fn reservation(commit: bool, ok: bool) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(
        RESERVATIONS,
        "result" => match (ok, commit) {
            (false, _) => "failed",
            (true, true) => "committed",
            (true, false) => "released",
        },
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (commit, ok);
}

/// Records a usage alert's outcome (`fired`, `failed`).
pub(crate) fn alert(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(ALERTS, "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// Records a webhook delivery's outcome.
#[cfg(feature = "webhook")]
pub(crate) fn webhook(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(WEBHOOK_EVENTS, "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// Records a Stripe webhook delivery's outcome.
#[cfg(feature = "stripe")]
pub(crate) fn stripe(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(STRIPE_EVENTS, "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}
