//! The layer's metrics, through the `metrics` facade (the `metrics` feature): what each function
//! here records, and nothing without the feature, so that call sites carry no `cfg`.
//!
//! Every name starts with `tower_plans_`; the guide's metrics chapter
//! ([`crate::guide::metrics`]) lists them in a table. Labels are bounded:
//! `&'static str` values, and the resource and action of a route, which come from the catalog.
//! No label ever carries a user id or a plan name.
//!
//! Every key is made once: the keys of fixed label sets are statics made at compile time (the
//! webhook outcomes' on first use), and the decision keys of a route when its catalog is loaded
//! ([`TableKeys`]). Recording looks the recorder up and registers the ready key with it, so
//! with no recorder installed (the facade's no-op recorder) nothing is allocated.

#[cfg(feature = "metrics")]
use std::sync::Arc;

#[cfg(feature = "metrics")]
use ::metrics::{Key, Label, Level, Metadata, SharedString};

use crate::catalog::Action;
use crate::decision::Denial;
use crate::routes::{RouteIndex, RouteTable};

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
#[cfg(feature = "metrics")]
pub(crate) const ALERTS: &str = "tower_plans_alerts_total";

/// The label of a route that no catalog resolved (the catalog could not be loaded).
#[cfg(feature = "metrics")]
const UNKNOWN: &str = "unknown";

/// The metadata every metric is registered with: what the facade's macros would give here.
#[cfg(feature = "metrics")]
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A [`Key`] made at compile time, for a static initializer:
/// `static_key!(NAME, "label" => "value", ...)`.
#[cfg(feature = "metrics")]
macro_rules! static_key {
    ($name:expr $(, $label:literal => $value:expr)* $(,)?) => {{
        static LABELS: &[Label] = &[$(Label::from_static_parts($label, $value)),*];
        Key::from_static_parts($name, LABELS)
    }};
}

/// A `&'static Key` made at compile time: `key!(NAME, "label" => "value", ...)`.
#[cfg(feature = "metrics")]
macro_rules! key {
    ($($parts:tt)*) => {{
        static KEY: Key = static_key!($($parts)*);
        &KEY
    }};
}

/// Adds one to the counter `key` in the current recorder (nothing, and no allocation, with the
/// facade's no-op recorder).
#[cfg(feature = "metrics")]
fn increment(key: &Key) {
    ::metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(1));
}

/// The `outcome` and `reason` labels of each kind of decision, in the order of
/// [`Decided::slot`].
const DECIDED: [(&str, &str); 9] = [
    ("allow", "none"),
    ("deny", "limit"),
    ("deny", "expired"),
    ("deny", "no_plan"),
    ("unauthenticated", "no_user"),
    ("store_unavailable", "store_error"),
    ("pass_open", "store_error"),
    ("deny", "credits"),
    ("deny", "rate"),
];

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
    /// Its place in [`DECIDED`] and in the keys of a route ([`RouteKeys`]).
    fn slot(self) -> usize {
        match self {
            Decided::Allow => 0,
            Decided::Deny(Denial::LimitReached { .. }) => 1,
            Decided::Deny(Denial::Expired { .. }) => 2,
            Decided::Deny(Denial::NoPlan { .. }) => 3,
            Decided::Unauthenticated => 4,
            Decided::StoreUnavailable => 5,
            Decided::PassOpen => 6,
            Decided::Deny(Denial::Credits { .. }) => 7,
            Decided::Deny(Denial::RateLimited { .. }) => 8,
        }
    }

    /// The `outcome` and `reason` labels.
    fn labels(self) -> (&'static str, &'static str) {
        // In bounds: `slot` is a position in `DECIDED`.
        DECIDED[self.slot()]
    }

    /// The `outcome` label, also the request span's `outcome` field.
    pub(crate) fn outcome(self) -> &'static str {
        self.labels().0
    }
}

/// The keys of [`DECISIONS`] on one route (its `resource` and `action` with each `outcome` and
/// `reason`, in the order of [`DECIDED`]), made when its catalog is loaded; nothing without
/// the feature.
#[derive(Debug)]
pub(crate) struct RouteKeys {
    #[cfg(feature = "metrics")]
    keys: [Key; DECIDED.len()],
}

/// The keys of a route that no catalog resolved: `unknown` resource and action.
#[cfg(feature = "metrics")]
static UNKNOWN_ROUTE: std::sync::LazyLock<RouteKeys> = std::sync::LazyLock::new(|| {
    RouteKeys::with_labels(
        SharedString::const_str(UNKNOWN),
        SharedString::const_str(UNKNOWN),
    )
});
#[cfg(not(feature = "metrics"))]
static UNKNOWN_ROUTE: RouteKeys = RouteKeys {};

impl RouteKeys {
    /// The keys of a route that no catalog resolved (the catalog could not be loaded).
    pub(crate) fn unknown() -> &'static RouteKeys {
        &UNKNOWN_ROUTE
    }

    /// The keys of the route to `action` on `resource`.
    #[cfg(feature = "metrics")]
    fn new(resource: &Arc<str>, action: &Action) -> Self {
        RouteKeys::with_labels(
            SharedString::from(Arc::clone(resource)),
            action_label(&action.normalised()),
        )
    }

    #[cfg(feature = "metrics")]
    fn with_labels(resource: SharedString, action: SharedString) -> Self {
        RouteKeys {
            keys: DECIDED.map(|(outcome, reason)| {
                let labels = vec![
                    Label::from_static_parts("outcome", outcome),
                    Label::from_static_parts("reason", reason),
                    Label::new("resource", resource.clone()),
                    Label::new("action", action.clone()),
                ];
                Key::from_parts(DECISIONS, labels)
            }),
        }
    }
}

/// The [`RouteKeys`] of every route of a [`RouteTable`], by route index: made with the table,
/// once per catalog whose resources changed. Cloning shares them.
#[derive(Clone)]
pub(crate) struct TableKeys {
    #[cfg(feature = "metrics")]
    routes: Arc<[RouteKeys]>,
}

impl std::fmt::Debug for TableKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("TableKeys");
        #[cfg(feature = "metrics")]
        debug.field("routes", &self.routes.len());
        debug.finish()
    }
}

impl TableKeys {
    /// The keys of the routes of `table`.
    pub(crate) fn new(table: &RouteTable) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = table;
        TableKeys {
            // `routes` lists the routes in the order of their indices.
            #[cfg(feature = "metrics")]
            routes: table
                .routes()
                .map(|route| RouteKeys::new(route.resource, route.action))
                .collect(),
        }
    }

    /// The keys of the route at `index` of the table (of [`RouteKeys::unknown`] for an index
    /// of another table, which the layer never asks for).
    pub(crate) fn route(&self, index: RouteIndex) -> &RouteKeys {
        #[cfg(feature = "metrics")]
        if let Some(keys) = self.routes.get(index.position()) {
            return keys;
        }
        #[cfg(not(feature = "metrics"))]
        let _ = index;
        RouteKeys::unknown()
    }
}

/// Records a decision on the route whose keys are `route` ([`RouteKeys::unknown`]: the catalog
/// could not be loaded), in the metrics and in the current request span's `outcome` field.
pub(crate) fn decision(decided: Decided<'_>, route: &RouteKeys) {
    current_span().record("outcome", decided.outcome());
    #[cfg(feature = "metrics")]
    if let Some(key) = route.keys.get(decided.slot()) {
        increment(key);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = route;
}

/// An action as a label, without copying a name: a custom action shares the catalog's.
#[cfg(feature = "metrics")]
fn action_label(action: &Action) -> SharedString {
    match action {
        Action::Custom(name) => SharedString::from(Arc::clone(name)),
        other => SharedString::const_str(match other {
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
/// the `outcome` once known (info level). While no subscriber enables that level it is
/// [`Span::none`](tracing::Span::none): a disabled span would still be handed to the `log`
/// fallback of `tracing` (which axum's default features turn on) on its creation, entry, exit
/// and drop.
pub(crate) fn request_span(resource: &str, action: &Action) -> tracing::Span {
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return tracing::Span::none();
    }
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

/// Which store a call goes to, and which call it is: the `store` and `call` labels, with the
/// keys of its metrics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    pub(crate) store: &'static str,
    pub(crate) call: &'static str,
    #[cfg(feature = "metrics")]
    keys: &'static CallKeys,
}

/// The keys of one store call: [`STORE_CALLS`] by `result`, and [`STORE_SECONDS`].
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct CallKeys {
    ok: Key,
    error: Key,
    timeout: Key,
    seconds: Key,
}

/// The [`Call`] to `$store` named `$call`, with its keys made at compile time.
macro_rules! call {
    ($store:literal, $call:literal) => {
        Call {
            store: $store,
            call: $call,
            #[cfg(feature = "metrics")]
            keys: {
                static KEYS: CallKeys = CallKeys {
                    ok: static_key!(STORE_CALLS, "store" => $store, "call" => $call, "result" => "ok"),
                    error: static_key!(
                        STORE_CALLS, "store" => $store, "call" => $call, "result" => "error"
                    ),
                    timeout: static_key!(
                        STORE_CALLS, "store" => $store, "call" => $call, "result" => "timeout"
                    ),
                    seconds: static_key!(STORE_SECONDS, "store" => $store, "call" => $call),
                };
                &KEYS
            },
        }
    };
}

impl Call {
    pub(crate) const PLANS: Call = call!("plan", "plans");
    pub(crate) const USER: Call = call!("plan", "user");
    pub(crate) const RESERVE: Call = call!("usage", "reserve");
    pub(crate) const COMMIT: Call = call!("usage", "commit");
    pub(crate) const RELEASE: Call = call!("usage", "release");
    pub(crate) const ADJUST: Call = call!("usage", "adjust");
    pub(crate) const GET: Call = call!("usage", "get");
    pub(crate) const MARK: Call = call!("usage", "mark");
    pub(crate) const RATE: Call = call!("rate", "acquire");
    pub(crate) const REFUND: Call = call!("rate", "refund");

    /// The child span of a store call (debug level: nothing is built without a subscriber that
    /// wants it).
    pub(crate) fn span(self) -> tracing::Span {
        tracing::debug_span!("store_call", store = self.store, call = self.call)
    }
}

/// How a store call ended: the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The store answered (`ok`).
    Ok,
    /// The store failed (`error`).
    Error,
    /// No answer within the store timeout (`timeout`).
    Timeout,
}

impl Ended {
    /// `Ok` or `Error`, as `result` is.
    pub(crate) fn of<T, E>(result: &Result<T, E>) -> Ended {
        if result.is_ok() {
            Ended::Ok
        } else {
            Ended::Error
        }
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

    /// Records a finished store call: how it `ended`, and its latency.
    pub(crate) fn stop(self, call: Call, ended: Ended) {
        #[cfg(feature = "metrics")]
        {
            let keys = call.keys;
            let counter = match ended {
                Ended::Ok => &keys.ok,
                Ended::Error => &keys.error,
                Ended::Timeout => &keys.timeout,
            };
            let seconds = self.started.elapsed().as_secs_f64();
            ::metrics::with_recorder(|recorder| {
                recorder.register_counter(counter, &METADATA).increment(1);
                recorder
                    .register_histogram(&keys.seconds, &METADATA)
                    .record(seconds);
            });
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (call, ended);
    }

    /// Records a finished store call that answered at once (no timeout applies).
    pub(crate) fn stop_now<T, E>(self, call: Call, result: &Result<T, E>) {
        self.stop(call, Ended::of(result));
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
    increment(match (cache, hit) {
        (Cache::Catalog, true) => key!(CACHE, "cache" => "catalog", "result" => "hit"),
        (Cache::Catalog, false) => key!(CACHE, "cache" => "catalog", "result" => "miss"),
        (Cache::User, true) => key!(CACHE, "cache" => "user", "result" => "hit"),
        (Cache::User, false) => key!(CACHE, "cache" => "user", "result" => "miss"),
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (cache, hit);
}

/// Records a reservation settled by a commit or a release (`committed`/`released`), and
/// `failed` when the store did not take the settlement (its lease frees the unit).
pub(crate) fn reservation(commit: bool, ok: bool) {
    #[cfg(feature = "metrics")]
    increment(match (ok, commit) {
        (false, _) => key!(RESERVATIONS, "result" => "failed"),
        (true, true) => key!(RESERVATIONS, "result" => "committed"),
        (true, false) => key!(RESERVATIONS, "result" => "released"),
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (commit, ok);
}

/// Records a usage alert's outcome: `fired`, or `failed` (the marker or the handler failed).
pub(crate) fn alert(fired: bool) {
    #[cfg(feature = "metrics")]
    increment(if fired {
        key!(ALERTS, "outcome" => "fired")
    } else {
        key!(ALERTS, "outcome" => "failed")
    });
    #[cfg(not(feature = "metrics"))]
    let _ = fired;
}

/// The keys of the counter `name` by `outcome`, one per label of `outcomes`.
#[cfg(all(feature = "metrics", feature = "webhook"))]
fn outcome_keys(name: &'static str, outcomes: &[&'static str]) -> Box<[Key]> {
    outcomes
        .iter()
        .map(|&outcome| Key::from_parts(name, vec![Label::from_static_parts("outcome", outcome)]))
        .collect()
}

/// Records a webhook delivery's outcome, `outcomes[slot]`: `outcomes` lists the label of every
/// outcome, the same on every call (the keys are made from the first).
#[cfg(feature = "webhook")]
pub(crate) fn webhook(outcomes: &'static [&'static str], slot: usize) {
    #[cfg(feature = "metrics")]
    {
        static KEYS: std::sync::OnceLock<Box<[Key]>> = std::sync::OnceLock::new();
        let keys = KEYS.get_or_init(|| outcome_keys(WEBHOOK_EVENTS, outcomes));
        if let Some(key) = keys.get(slot) {
            increment(key);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcomes, slot);
}

/// Records a Stripe webhook delivery's outcome, as [`webhook`] does.
#[cfg(feature = "stripe")]
pub(crate) fn stripe(outcomes: &'static [&'static str], slot: usize) {
    #[cfg(feature = "metrics")]
    {
        static KEYS: std::sync::OnceLock<Box<[Key]>> = std::sync::OnceLock::new();
        let keys = KEYS.get_or_init(|| outcome_keys(STRIPE_EVENTS, outcomes));
        if let Some(key) = keys.get(slot) {
            increment(key);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcomes, slot);
}

#[cfg(test)]
#[cfg(feature = "metrics")]
mod tests {
    use std::sync::Arc;

    use http::Method;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::routes::RouteConfig;

    /// A metric recorded while `record` ran: its name, its labels `k=v` joined by commas, and
    /// its count (`None` for a histogram).
    type Recorded = (String, String, Option<u64>);

    fn recorded(record: impl FnOnce()) -> Vec<Recorded> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, record);
        let mut found: Vec<Recorded> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect();
                let count = match value {
                    DebugValue::Counter(count) => Some(count),
                    _ => None,
                };
                (key.name().to_owned(), labels.join(","), count)
            })
            .collect();
        found.sort();
        found
    }

    fn counted(name: &str, labels: &str) -> Recorded {
        (name.to_owned(), labels.to_owned(), Some(1))
    }

    #[test]
    fn each_decision_on_a_route_counts_under_its_labels() {
        let config = RouteConfig::new()
            .base("/api")
            .route(
                Method::POST,
                "reports/:id/export",
                "reports",
                Action::custom("export"),
            )
            .route(
                Method::POST,
                "reports/:id/gone",
                "reports",
                Action::Custom("destroy".into()),
            );
        let resources: Vec<Arc<str>> = vec!["clients".into(), "reports".into()];
        let table = RouteTable::new(&config, &resources).unwrap();
        let keys = TableKeys::new(&table);
        let resource: Arc<str> = "clients".into();
        let denials = [
            Denial::LimitReached {
                plan: "free".into(),
                resource: Arc::clone(&resource),
                action: Action::Create,
                maximum: 1,
                usage: 1,
                window: None,
                cost: 1,
            },
            Denial::Credits {
                plan: "free".into(),
                pool: "ai".into(),
                maximum: 10,
                usage: 10,
                cost: 5,
                window: None,
            },
            Denial::RateLimited {
                plan: "free".into(),
                resource: Arc::clone(&resource),
                action: Action::Create,
                plan_wide: false,
                maximum: 10,
                per: crate::catalog::RatePer::Minute,
                retry_after_ms: 6_000,
            },
            Denial::Expired {
                plan: "free".into(),
                date: 0,
            },
            Denial::NoPlan {
                resource: Arc::clone(&resource),
                action: Action::Create,
            },
        ];

        let create = table.resolve_index(&Method::POST, "/api/clients").unwrap();
        let found = recorded(|| {
            let route = keys.route(create);
            decision(Decided::Allow, route);
            for denial in &denials {
                decision(Decided::Deny(denial), route);
            }
            decision(Decided::Unauthenticated, route);
            decision(Decided::StoreUnavailable, route);
            decision(Decided::PassOpen, route);
        });
        let expected: Vec<Recorded> = [
            "outcome=allow,reason=none",
            "outcome=deny,reason=credits",
            "outcome=deny,reason=expired",
            "outcome=deny,reason=limit",
            "outcome=deny,reason=no_plan",
            "outcome=deny,reason=rate",
            "outcome=pass_open,reason=store_error",
            "outcome=store_unavailable,reason=store_error",
            "outcome=unauthenticated,reason=no_user",
        ]
        .into_iter()
        .map(|labels| {
            counted(
                DECISIONS,
                &format!("{labels},resource=clients,action=create"),
            )
        })
        .collect();
        assert_eq!(found, expected);

        // A custom action keeps its name; one with a REST name is that REST action.
        for (path, action) in [
            ("/api/reports/7/export", "export"),
            ("/api/reports/7/gone", "delete"),
            ("/api/reports/7", "show"),
        ] {
            let method = if action == "show" {
                Method::GET
            } else {
                Method::POST
            };
            let index = table.resolve_index(&method, path).unwrap();
            let found = recorded(|| decision(Decided::Allow, keys.route(index)));
            let labels = format!("outcome=allow,reason=none,resource=reports,action={action}");
            assert_eq!(found, [counted(DECISIONS, &labels)], "{path}");
        }
    }

    #[test]
    fn a_route_of_no_catalog_is_unknown() {
        let found = recorded(|| decision(Decided::StoreUnavailable, RouteKeys::unknown()));
        let labels = "outcome=store_unavailable,reason=store_error,resource=unknown,action=unknown";
        assert_eq!(found, [counted(DECISIONS, labels)]);
    }

    #[test]
    fn a_store_call_counts_its_result_and_its_latency() {
        let found = recorded(|| {
            Stopwatch::start().stop(Call::RESERVE, Ended::Timeout);
            Stopwatch::start().stop_now(Call::USER, &Err::<(), ()>(()));
            Stopwatch::start().stop_now(Call::PLANS, &Ok::<(), ()>(()));
        });
        assert_eq!(
            found,
            [
                (
                    STORE_SECONDS.to_owned(),
                    "store=plan,call=plans".to_owned(),
                    None
                ),
                (
                    STORE_SECONDS.to_owned(),
                    "store=plan,call=user".to_owned(),
                    None
                ),
                (
                    STORE_SECONDS.to_owned(),
                    "store=usage,call=reserve".to_owned(),
                    None
                ),
                counted(STORE_CALLS, "store=plan,call=plans,result=ok"),
                counted(STORE_CALLS, "store=plan,call=user,result=error"),
                counted(STORE_CALLS, "store=usage,call=reserve,result=timeout"),
            ]
        );
    }

    #[test]
    fn caches_and_reservations_count_under_their_labels() {
        let found = recorded(|| {
            cache(Cache::Catalog, true);
            cache(Cache::User, false);
            reservation(true, true);
            reservation(false, true);
            reservation(false, false);
        });
        assert_eq!(
            found,
            [
                counted(CACHE, "cache=catalog,result=hit"),
                counted(CACHE, "cache=user,result=miss"),
                counted(RESERVATIONS, "result=committed"),
                counted(RESERVATIONS, "result=failed"),
                counted(RESERVATIONS, "result=released"),
            ]
        );
    }
}
