//! The quickstart application: a fixture-driven in-memory REST API behind `PlanLimitLayer`.
//!
//! The layer counts usage in the fixture's `MemoryStore` (`count_usage`): a create that succeeds
//! raises the user's item count, a delete that succeeds lowers it, and the handlers never touch
//! usage themselves.
//!
//! Metered plans: the default fixture's catalog gives each plan a monthly pool of `ai` credits
//! (free 8, regular 200, pro 1000; the `more-ai` add-on adds 500) and its `"meters"` say what a
//! request draws from it. Creating an image (`POST /api/images`) costs 5 credits, reserved
//! before the handler runs and counted when it answers 201; a pool that cannot cover the cost
//! answers `403 {"reason":"credits",...}`. A chat (`POST /api/chat`) costs what its handler
//! reports: the layer reserves the meter's estimate (200), puts a `tower_plans::Meter` in the
//! request extensions, and the create handler reports the `units` field of the JSON body (a
//! stand-in for a model's token count; a body without `units` reports nothing, so the estimate
//! is counted). That handler streams its answer in chunks and reports half of the units before
//! the first chunk and the rest with the last one: the layer settles when the body ends, so it
//! counts both halves. A record's `"grants"` are one-off top-ups, spent only once the month's
//! allowance is used up; `GET /entitlements` lists the pool and what is left of each grant.
//!
//! Billing cycles: the business plan's report quota, `{"max": 2, "per": "month", "anchor":
//! "subscription", "overage": 1}`, counts from each user's billing day (the record's
//! `cycle_anchor`, else the plan assignment's `join`): heidi's resets on the 15th at 09:30 UTC,
//! not on the 1st. Past its 2 reports a month it lets 1 more through, flagged with a
//! `Plan-Overage: reports.create=1` header, then refuses. Its exports have a rate, `{"rate":
//! {"max": 1, "per": "minute"}}`: a second export within the minute answers `429
//! {"reason":"rate_limited",...}` with `Retry-After`, and reaches no handler. The layer raises
//! usage alerts at 80% and 100% of every finite limit a request counts on ([`Fixture::layer`]):
//! [`AlertLog`] prints each one as a line on stdout ([`describe`]) and keeps the last 100, which
//! `GET /alerts` serves as JSON, newest last. An alert is sent just after the response that
//! reached its threshold, in a task of its own, so it may take a moment to be listed.
//!
//! `main.rs` serves it; `tests/layer/quickstart.rs` drives the same router in-process through the
//! tour.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tower_plans::alerts::{Subject, Threshold, UsageAlert};
use tower_plans::decision::Name;
use tower_plans::{
    Action, Allowed, MemoryStore, Meter, PlanLimitLayer, PlanLimitLayerBuilder, UserId,
};

/// The address served when `--addr` is not given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// The fixture loaded when `--fixture` is not given.
pub const DEFAULT_FIXTURE: &str = "examples/quickstart.json";

/// Command-line options.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub addr: SocketAddr,
    pub fixture: PathBuf,
}

impl Args {
    /// Parses `--addr ADDR` and `--fixture PATH` (also `--addr=ADDR`, `--fixture=PATH`).
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
        let mut addr = DEFAULT_ADDR.to_owned();
        let mut fixture = PathBuf::from(DEFAULT_FIXTURE);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--addr" => addr = value("--addr")?,
                "--fixture" => fixture = PathBuf::from(value("--fixture")?),
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        let addr = addr
            .parse()
            .map_err(|e| format!("--addr `{addr}` is not a socket address: {e}"))?;
        Ok(Args { addr, fixture })
    }
}

/// The usage line.
pub const USAGE: &str =
    "usage: quickstart [--addr 127.0.0.1:3000] [--fixture examples/quickstart.json]";

/// What went wrong with a fixture; the message names the file and the bad value.
#[derive(Debug)]
pub struct FixtureError(String);

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FixtureError {}

/// A loaded fixture: the layer's configuration and the store it fills.
pub struct Fixture {
    pub base: String,
    pub paths: Vec<(String, String)>,
    pub timeout: Duration,
    pub store: MemoryStore,
    /// `"stripe": {"prices": {...}}`: a Stripe price id or lookup key, and the catalog plan or
    /// add-on it grants (read whatever the features; used with `--features stripe`).
    pub stripe_prices: Vec<(String, String)>,
}

impl Fixture {
    /// Reads and loads the fixture at `path`.
    pub fn load(path: &Path) -> Result<Fixture, FixtureError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FixtureError(format!("cannot read fixture {}: {e}", path.display())))?;
        Fixture::parse(&text)
            .map_err(|FixtureError(msg)| FixtureError(format!("fixture {}: {msg}", path.display())))
    }

    /// Loads a fixture from its JSON text.
    pub fn parse(text: &str) -> Result<Fixture, FixtureError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FixtureError(format!("not valid JSON: {e}")))?;
        let root = value.as_object().ok_or_else(|| {
            FixtureError("expected a JSON object with `plans` and `users`".into())
        })?;
        let empty = serde_json::Map::new();
        let config = match root.get("config") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(config)) => config,
            Some(_) => return Err(FixtureError("config: expected an object".into())),
        };
        let base = match config.get("base") {
            None | Some(Value::Null) => "/".to_owned(),
            Some(Value::String(base)) => base.clone(),
            Some(_) => return Err(FixtureError("config.base: expected a string".into())),
        };
        let mut paths = Vec::new();
        match config.get("paths") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (resource, template) in map {
                    let template = template.as_str().ok_or_else(|| {
                        FixtureError(format!("config.paths.{resource}: expected a string"))
                    })?;
                    paths.push((resource.clone(), template.to_owned()));
                }
            }
            Some(_) => return Err(FixtureError("config.paths: expected an object".into())),
        }
        let timeout = match config.get("timeout") {
            None | Some(Value::Null) => Duration::from_secs(60 * 60),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(minutes) if minutes >= 0.0 && minutes.is_finite() => {
                    Duration::from_secs_f64(minutes * 60.0)
                }
                _ => {
                    return Err(FixtureError(format!(
                        "config.timeout: expected a non-negative number of minutes, found {n}"
                    )))
                }
            },
            Some(other) => {
                return Err(FixtureError(format!(
                    "config.timeout: expected a number of minutes, found {other}"
                )))
            }
        };
        let plans = root
            .get("plans")
            .ok_or_else(|| FixtureError("missing `plans` (the plan catalog)".into()))?;
        let users = root.get("users").cloned().unwrap_or_else(|| json!({}));
        let store =
            MemoryStore::from_values(plans, &users).map_err(|e| FixtureError(e.to_string()))?;
        let stripe_prices = stripe_prices(root.get("stripe"), &store)?;
        Ok(Fixture {
            base,
            paths,
            timeout,
            store,
            stripe_prices,
        })
    }

    /// The plan layer this fixture configures. It counts usage in the same store: the store's
    /// records are the counters. Usage alerts at 80% and 100% of a limit go to `alerts`.
    pub fn layer(&self, alerts: &AlertLog) -> Result<PlanLimitLayer, FixtureError> {
        let log = alerts.clone();
        let builder = PlanLimitLayer::builder(self.store.clone())
            .count_usage(self.store.clone())
            .alerts(
                [Threshold::Percent(80), Threshold::Percent(100)],
                move |alert: UsageAlert| {
                    log.record(alert);
                    std::future::ready(Ok(()))
                },
            );
        self.configure(builder)
            .build()
            .map_err(|e| FixtureError(format!("config: {e}")))
    }

    /// Gives `builder` this fixture's base, paths and catalog time-to-live, whatever its stores
    /// (the SQLite example serves the same routes from a database).
    /// Limited actions answer with the `RateLimit` header fields.
    pub fn configure(&self, builder: PlanLimitLayerBuilder) -> PlanLimitLayerBuilder {
        let mut builder = builder
            .base(self.base.clone())
            .plans_ttl(self.timeout)
            .rate_limit_headers(true);
        for (resource, template) in &self.paths {
            builder = builder.path(resource.as_str(), template.clone());
        }
        builder
    }
}

/// Reads `"stripe": {"prices": {"<price id or lookup_key>": "<plan or add-on>"}}`; each name
/// must be a plan or an add-on of the catalog.
fn stripe_prices(
    stripe: Option<&Value>,
    store: &MemoryStore,
) -> Result<Vec<(String, String)>, FixtureError> {
    let stripe = match stripe {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(stripe)) => stripe,
        Some(_) => return Err(FixtureError("stripe: expected an object".into())),
    };
    if let Some(key) = stripe.keys().find(|key| key.as_str() != "prices") {
        return Err(FixtureError(format!(
            "stripe.{key}: unknown key; expected `prices`"
        )));
    }
    let prices = match stripe.get("prices") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(prices)) => prices,
        Some(_) => {
            return Err(FixtureError(
                "stripe.prices: expected an object of price ids or lookup keys to plan or \
                 add-on names"
                    .into(),
            ))
        }
    };
    let catalog = store.catalog();
    let mut mapped = Vec::with_capacity(prices.len());
    for (price, name) in prices {
        let name = name
            .as_str()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                FixtureError(format!(
                    "stripe.prices.{price}: expected the name of a plan or an add-on"
                ))
            })?;
        if catalog.plan(name).is_none() && catalog.addon(name).is_none() {
            return Err(FixtureError(format!(
                "stripe.prices.{price}: the catalog has no plan or add-on `{name}`"
            )));
        }
        mapped.push((price.clone(), name.to_owned()));
    }
    Ok(mapped)
}

/// The items users created, per user and resource.
#[derive(Default)]
struct Items {
    next_id: u64,
    by_owner: HashMap<(UserId, Name), BTreeMap<u64, Value>>,
}

#[derive(Clone)]
struct AppState {
    items: Arc<Mutex<Items>>,
}

/// Builds the whole application: demo authentication, then the plan layer, then the REST
/// handler; and `GET /alerts`, the usage alerts the layer raised.
pub fn router(fixture: &Fixture) -> Result<Router, FixtureError> {
    router_with_alerts(fixture, &AlertLog::default())
}

/// [`router`], with the usage alerts going to `alerts` (which `GET /alerts` serves).
pub fn router_with_alerts(fixture: &Fixture, alerts: &AlertLog) -> Result<Router, FixtureError> {
    Ok(with_alerts(app(fixture.layer(alerts)?), alerts))
}

/// Adds `GET /alerts`: the last [`AlertLog::KEPT`] usage alerts of `alerts` as a JSON array,
/// oldest first, outside the plan layer and the demo authentication (a real application would
/// put it behind its own administrators' authentication).
pub fn with_alerts(router: Router, alerts: &AlertLog) -> Router {
    let alerts = alerts.clone();
    router.route(
        "/alerts",
        axum::routing::get(move || std::future::ready(Json(alerts.alerts()))),
    )
}

/// The usage alerts the layer raised, the last [`KEPT`](Self::KEPT) of them; each one is also
/// printed on stdout as it arrives ([`describe`]). Cloning shares the log.
#[derive(Clone, Default)]
pub struct AlertLog(Arc<Mutex<VecDeque<UsageAlert>>>);

impl AlertLog {
    /// How many alerts the log keeps: older ones are dropped.
    pub const KEPT: usize = 100;

    /// Prints `alert` on stdout and keeps it, dropping the oldest beyond [`KEPT`](Self::KEPT).
    pub fn record(&self, alert: UsageAlert) {
        println!("{}", describe(&alert));
        let mut alerts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if alerts.len() == Self::KEPT {
            alerts.pop_front();
        }
        alerts.push_back(alert);
    }

    /// The alerts kept, oldest first.
    pub fn alerts(&self) -> Vec<UsageAlert> {
        let alerts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        alerts.iter().cloned().collect()
    }
}

/// One line that says what `alert` is about: `alert: heidi reached 80% of reports.create (plan
/// business): 2 of 2 used, billing month 2026-11-15 09:30 to 2026-12-15 09:30 UTC`.
pub fn describe(alert: &UsageAlert) -> String {
    let what = match &alert.subject {
        Subject::Action { resource, action } => format!("{resource}.{action}"),
        Subject::Pool(pool) => format!("credits.{pool}"),
    };
    let reached = match alert.threshold {
        Threshold::Percent(percent) => format!("reached {percent}% of"),
        Threshold::Remaining(left) => format!("has {left} or fewer left of"),
    };
    let period = match alert.period {
        None => "never resets".to_owned(),
        Some(window) if window.is_anchored() => format!(
            "billing {} {} to {} UTC",
            window.per(),
            utc(window.start()),
            utc(window.end())
        ),
        Some(window) => format!("{} {window}", window.per()),
    };
    format!(
        "alert: {} {reached} {what} (plan {}): {} of {} used, {period}",
        alert.user.as_str(),
        alert.plan,
        alert.used,
        alert.max
    )
}

/// `ms` since the Unix epoch as `2026-11-15 09:30` (UTC).
fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms"),
            |time| time.format("%Y-%m-%d %H:%M").to_string(),
        )
}

/// The application around `plans`: demo authentication, then `plans`, then the REST handler;
/// and `GET /entitlements`, what the authenticated user may do, beside the plan layer.
pub fn app(plans: PlanLimitLayer) -> Router {
    let state = AppState {
        items: Arc::default(),
    };
    let entitlements = plans.entitlements_service();
    let account = account(&plans);
    Router::new()
        .fallback(rest)
        .with_state(state)
        .layer(plans)
        .route_service("/entitlements", entitlements)
        .merge(account)
        // DEMO ONLY: trusts the `x-user` header. A real application puts its authentication here.
        .layer(middleware::from_fn(demo_auth))
}

/// The application with Stripe's webhooks at `POST /webhooks/stripe` (outside the plan layer and
/// the demo authentication): events signed with `secret` replace a user's plan and add-ons,
/// mapped with the fixture's `stripe.prices` (a name the catalog has as a plan is a plan, else
/// an add-on), in the fixture's store; the layer's cached record of the user is dropped.
#[cfg(feature = "stripe")]
pub fn router_with_stripe(fixture: &Fixture, secret: &str) -> Result<Router, FixtureError> {
    use tower_plans::stripe::{StripeConfig, StripeReceiver};
    use tower_plans::webhook::MemoryStoreHook;

    let alerts = AlertLog::default();
    let layer = fixture.layer(&alerts)?;
    let catalog = fixture.store.catalog();
    let mut config = StripeConfig::builder()
        .secret(secret)
        .invalidator(layer.invalidator());
    for (price, name) in &fixture.stripe_prices {
        config = if catalog.plan(name).is_some() {
            config.plan(price.as_str(), name.as_str())
        } else {
            config.addon(price.as_str(), name.as_str())
        };
    }
    let config = config
        .build()
        .map_err(|e| FixtureError(format!("stripe: {e}")))?;
    let receiver = StripeReceiver::new(config, MemoryStoreHook::new(fixture.store.clone()));
    Ok(with_alerts(app(layer), &alerts).route_service("/webhooks/stripe", receiver))
}

/// Adds `GET /metrics`, the layer's metrics as Prometheus text, outside the plan layer (and
/// outside the demo authentication): it is neither governed nor counted.
#[cfg(feature = "metrics")]
pub fn with_metrics(
    router: Router,
    handle: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    router.route(
        "/metrics",
        axum::routing::get(move || std::future::ready(handle.render())),
    )
}

/// `GET /account`, the usage page that shows `GET /entitlements`, with `--features usage-page`.
fn account(plans: &PlanLimitLayer) -> Router {
    let router = Router::new();
    #[cfg(feature = "usage-page")]
    let router = router.route_service("/account", plans.usage_page());
    #[cfg(not(feature = "usage-page"))]
    let _ = plans;
    router
}

/// DEMO-ONLY authentication: the user is whoever the `x-user` header names, or for the usage
/// page and the entitlements it fetches (a browser sends no `x-user`), `?user=`. A real
/// application reads its session cookie, which the page's fetch carries.
async fn demo_auth(mut req: Request, next: Next) -> Response {
    let query_user = match req.uri().path() {
        "/account" | "/entitlements" => req.uri().query().and_then(|query| {
            let user = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("user="))?;
            percent_encoding::percent_decode_str(user)
                .decode_utf8()
                .ok()
        }),
        _ => None,
    };
    let user = req
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .or(query_user.as_deref())
        .filter(|v| !v.is_empty())
        .map(UserId::from);
    if let Some(user) = user {
        req.extensions_mut().insert(user);
    }
    next.run(req).await
}

/// A generic in-memory REST handler for every governed path; other paths answer `{"ok":true}`.
///
/// It keeps the items and never touches usage: the plan layer counts a create when it answers
/// `201` and gives one back for a delete that answers `200` (a `404` changes nothing).
/// `decision.usage` is the count the layer checked this request against; a metered request's
/// decision adds its `cost` (when more than 1) and the `credits` pool it draws from. A create
/// whose meter reports (a `Meter` in the extensions) reports the body's `units` and streams its
/// answer ([`metered_create`]).
async fn rest(
    State(state): State<AppState>,
    allowed: Option<Extension<Allowed>>,
    user: Option<Extension<UserId>>,
    meter: Option<Extension<Meter>>,
    req: Request<Body>,
) -> Response {
    let (Some(Extension(allowed)), Some(Extension(user))) = (allowed, user) else {
        return Json(json!({ "ok": true })).into_response();
    };
    let method = req.method().clone();
    let id = req
        .uri()
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|s| s.parse::<u64>().ok());
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or_else(|| json!({}));
    let key = (user.clone(), allowed.resource.clone());
    let mut decision = json!({
        "plan": &*allowed.plan,
        "limit": allowed.limit,
        "usage": allowed.usage,
    });
    if allowed.cost > 1 {
        decision["cost"] = json!(allowed.cost);
    }
    if let Some(credits) = &allowed.credits {
        decision["credits"] = json!(credits);
    }
    // A create whose cost the handler reports: read `units` before anything is created, so
    // that a bad value is a 400 that counts nothing.
    let reported = match (&allowed.action, meter) {
        (Action::Create, Some(Extension(meter))) => match units(&body) {
            Ok(units) => Some((meter, units)),
            Err(response) => return *response,
        },
        _ => None,
    };

    match allowed.action {
        Action::Create => {
            let id = {
                let mut items = state.items.lock().unwrap_or_else(PoisonError::into_inner);
                items.next_id += 1;
                let id = items.next_id;
                items
                    .by_owner
                    .entry(key)
                    .or_default()
                    .insert(id, body.clone());
                id
            };
            let created = json!({ "id": id, "item": body, "decision": decision });
            match reported {
                Some((meter, units)) => metered_create(created, meter, units),
                None => (StatusCode::CREATED, Json(created)).into_response(),
            }
        }
        Action::Index => {
            let items = state.items.lock().unwrap_or_else(PoisonError::into_inner);
            let list: Vec<Value> = items
                .by_owner
                .get(&key)
                .map(|m| {
                    m.iter()
                        .map(|(id, v)| json!({ "id": id, "item": v }))
                        .collect()
                })
                .unwrap_or_default();
            Json(json!({ "items": list, "decision": decision })).into_response()
        }
        Action::Show | Action::Update | Action::Patch | Action::Delete => {
            let Some(id) = id else {
                return not_found();
            };
            let mut items = state.items.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(owned) = items.by_owner.get_mut(&key) else {
                return not_found();
            };
            let response = match allowed.action {
                Action::Show => owned.get(&id).cloned(),
                Action::Update => owned.get_mut(&id).map(|v| {
                    *v = body;
                    v.clone()
                }),
                Action::Patch => owned.get_mut(&id).map(|v| {
                    if let (Value::Object(item), Value::Object(patch)) = (&mut *v, body) {
                        item.extend(patch);
                    }
                    v.clone()
                }),
                _ => owned.remove(&id),
            };
            drop(items);
            match response {
                None => not_found(),
                Some(item) if method == Method::DELETE => {
                    Json(json!({ "deleted": id, "item": item })).into_response()
                }
                Some(item) => {
                    Json(json!({ "id": id, "item": item, "decision": decision })).into_response()
                }
            }
        }
        _ => Json(json!({ "ok": true, "decision": decision })).into_response(),
    }
}

/// The `units` field of a reported create's JSON body: `None` without one (nothing is reported,
/// so the layer counts the meter's estimate), or a `400` naming the bad value.
fn units(body: &Value) -> Result<Option<u64>, Box<Response>> {
    match body.get("units") {
        None | Some(Value::Null) => Ok(None),
        Some(units) => units.as_u64().map(Some).ok_or_else(|| {
            let message = format!("`units` must be a non-negative integer, found {units}");
            let body = json!({ "reason": "bad_units", "message": message });
            Box::new((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }),
    }
}

/// The `201` of a create whose cost the handler reports, streamed as a model's answer would be:
/// `created` with a `reply` of a few words, and `reported`, what the request reported in all.
///
/// Half of `units` is reported before the answer starts and the rest as its last chunk is made,
/// after the layer returned the response: the layer settles when the body ends, so both halves
/// count. Without `units` nothing is reported, and the layer counts the meter's estimate.
fn metered_create(created: Value, meter: Meter, units: Option<u64>) -> Response {
    let (now, later) = match units {
        Some(units) => (Some(units / 2), Some(units - units / 2)),
        None => (None, None),
    };
    if let Some(units) = now {
        meter.report(units);
    }
    // `{"id":..,"item":..,"decision":..` and the reply, one JSON document over several chunks.
    let mut head = created.to_string();
    head.pop();
    let chunks = [
        format!(r#"{head},"reply":["#),
        r#""Once upon""#.to_owned(),
        r#","a time,""#.to_owned(),
        r#","the end."]"#.to_owned(),
    ];
    let last = chunks.len() - 1;
    let stream = futures::stream::iter(chunks.into_iter().enumerate()).map(move |(i, chunk)| {
        let chunk = if i == last {
            if let Some(units) = later {
                meter.report(units);
            }
            format!(r#"{chunk},"reported":{}}}"#, json!(meter.reported()))
        } else {
            chunk
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(chunk))
    });
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"reason":"not_found"}"#,
    )
        .into_response()
}

/// One step of the printed tour.
pub struct TourStep {
    pub what: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub user: Option<&'static str>,
    pub body: Option<&'static str>,
    pub status: StatusCode,
}

/// The tour printed on start, for the default fixture and a server that has just started (item
/// ids count from 1): these steps, then [`cycles_tour`]'s. `tests/layer/quickstart.rs` and
/// `scripts/quickstart-smoke.sh` replay it.
pub fn full_tour() -> Vec<TourStep> {
    let mut steps = tour();
    steps.extend(cycles_tour());
    steps
}

/// The tour's steps that every store serving the default fixture's plans and users answers
/// (the SQLite and Postgres examples replay them too).
pub fn tour() -> Vec<TourStep> {
    vec![
        TourStep {
            what:
                "alice (free: 3 clients, has 2) creates a client, id 1: allowed, the layer counts 3",
            method: Method::POST,
            path: "/api/clients",
            user: Some("alice"),
            body: Some(r#"{"name":"Acme"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "alice creates a fourth client: 403, the limit is reached, usage 3",
            method: Method::POST,
            path: "/api/clients",
            user: Some("alice"),
            body: Some(r#"{"name":"Globex"}"#),
            status: StatusCode::FORBIDDEN,
        },
        TourStep {
            what: "alice lists her clients: listing is not limited",
            method: Method::GET,
            path: "/api/clients",
            user: Some("alice"),
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "alice deletes client 1: the layer gives one back, her count is 2",
            method: Method::DELETE,
            path: "/api/clients/1",
            user: Some("alice"),
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "alice creates a client again: allowed, she is back at 3",
            method: Method::POST,
            path: "/api/clients",
            user: Some("alice"),
            body: Some(r#"{"name":"Globex"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "bob's 14-day trial of pro ended, so he falls back to free and may still create",
            method: Method::POST,
            path: "/api/clients",
            user: Some("bob"),
            body: Some(r#"{"name":"Initech"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "bob's free fallback allows one project, with no delete",
            method: Method::POST,
            path: "/api/workspaces/projects",
            user: Some("bob"),
            body: Some(r#"{"name":"Apollo"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "bob's second project: 403 on the fallback plan",
            method: Method::POST,
            path: "/api/workspaces/projects",
            user: Some("bob"),
            body: Some(r#"{"name":"Gemini"}"#),
            status: StatusCode::FORBIDDEN,
        },
        TourStep {
            what: "carol's regular plan expired: 403 with the expiry date",
            method: Method::POST,
            path: "/api/clients",
            user: Some("carol"),
            body: Some(r#"{"name":"Umbrella"}"#),
            status: StatusCode::FORBIDDEN,
        },
        TourStep {
            what: "dave (pro) has no project limit",
            method: Method::POST,
            path: "/api/workspaces/projects",
            user: Some("dave"),
            body: Some(r#"{"name":"Mercury"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "alice (free: 2 reports a month) makes a report, id 6: 201 with \
                   `RateLimit: \"reports.create\";r=1;t=<seconds to the 1st>`",
            method: Method::POST,
            path: "/api/reports",
            user: Some("alice"),
            body: Some(r#"{"title":"Q3"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "alice's second report this month, id 7: 201 with r=0",
            method: Method::POST,
            path: "/api/reports",
            user: Some("alice"),
            body: Some(r#"{"title":"Q4"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "a third report: 403 with `resets` (the 1st of next month, UTC) and Retry-After",
            method: Method::POST,
            path: "/api/reports",
            user: Some("alice"),
            body: Some(r#"{"title":"Q5"}"#),
            status: StatusCode::FORBIDDEN,
        },
        TourStep {
            what: "alice deletes report 6",
            method: Method::DELETE,
            path: "/api/reports/6",
            user: Some("alice"),
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "but a monthly quota counts what was made: still 403 until the 1st",
            method: Method::POST,
            path: "/api/reports",
            user: Some("alice"),
            body: Some(r#"{"title":"Q5"}"#),
            status: StatusCode::FORBIDDEN,
        },
        TourStep {
            what: "what alice may do, as JSON: her plan, and each limit's max, used, remaining \
                   and reset",
            method: Method::GET,
            path: "/entitlements",
            user: Some("alice"),
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "no x-user header on a governed path: 401",
            method: Method::POST,
            path: "/api/clients",
            user: None,
            body: Some(r#"{"name":"Nobody"}"#),
            status: StatusCode::UNAUTHORIZED,
        },
        TourStep {
            what: "an ungoverned path passes straight through",
            method: Method::GET,
            path: "/health",
            user: None,
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "erin (free: 3 clients, has 5) holds a \"10 more clients\" add-on until 2100: \
                   allowed, her limit is 13",
            method: Method::POST,
            path: "/api/clients",
            user: Some("erin"),
            body: Some(r#"{"name":"Hooli"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "dave (pro: 1000 ai credits a month) creates an image, which costs 5 credits: \
                   201 with `RateLimit-Policy: \"credits.ai\";q=1000;w=<seconds in the month>` \
                   and `RateLimit: \"credits.ai\";r=995;t=<seconds to the 1st>`",
            method: Method::POST,
            path: "/api/images",
            user: Some("dave"),
            body: Some(r#"{"prompt":"a red fox"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "dave chats: the layer reserves the 200-credit estimate, the answer streams in \
                   chunks and reports its 120 units as it goes (60 before, 60 with the last \
                   chunk); the body's end counts 120",
            method: Method::POST,
            path: "/api/chat",
            user: Some("dave"),
            body: Some(r#"{"prompt":"Tell me a story","units":120}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "dave's entitlements list the ai pool: 125 of 1000 used, 875 remaining",
            method: Method::GET,
            path: "/entitlements",
            user: Some("dave"),
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "alice (free: 8 ai credits a month) creates an image: allowed, 3 credits left",
            method: Method::POST,
            path: "/api/images",
            user: Some("alice"),
            body: Some(r#"{"prompt":"a lighthouse"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "alice's second image: 403 \
                   {\"reason\":\"credits\",\"plan\":\"free\",\"credits\":\"ai\",\"maximum\":8,\
                   \"usage\":5,\"cost\":5,\"resets\":<the 1st, UTC>}",
            method: Method::POST,
            path: "/api/images",
            user: Some("alice"),
            body: Some(r#"{"prompt":"a harbour"}"#),
            status: StatusCode::FORBIDDEN,
        },
        TourStep {
            what: "grace (free: 8 a month, and a 100-credit top-up) creates an image: 5 of her \
                   allowance",
            method: Method::POST,
            path: "/api/images",
            user: Some("grace"),
            body: Some(r#"{"prompt":"a meadow"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "grace's second image: the last 3 of her allowance, then 2 from the top-up",
            method: Method::POST,
            path: "/api/images",
            user: Some("grace"),
            body: Some(r#"{"prompt":"a forest"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "grace's entitlements: the ai pool used 8 of 8, and the top-up `topup-1` with \
                   98 remaining",
            method: Method::GET,
            path: "/entitlements",
            user: Some("grace"),
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "ivan (free) holds the \"more-ai\" add-on: 8 + 500 credits a month cover the \
                   200-credit estimate, so he may chat (free alone could not)",
            method: Method::POST,
            path: "/api/chat",
            user: Some("ivan"),
            body: Some(r#"{"prompt":"Hello","units":30}"#),
            status: StatusCode::CREATED,
        },
    ]
}

/// The tour's last steps, on the quickstart's own app after [`tour`]'s: a quota on the
/// subscription's billing cycle, the usage alerts it raises (`GET /alerts`), a soft limit and a
/// rate, all on heidi's business plan.
pub fn cycles_tour() -> Vec<TourStep> {
    vec![
        TourStep {
            what: "heidi (business: 2 reports a month, counted from her billing day, the 15th at \
                   09:30 UTC) makes a report: 201 with \
                   `RateLimit: \"reports.create\";r=1;t=<seconds to the 15th, not the 1st>`",
            method: Method::POST,
            path: "/api/reports",
            user: Some("heidi"),
            body: Some(r#"{"title":"Plan"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "heidi's second report: 201 with r=0; it brings her to 80% and to 100% of her \
                   2, so the server prints two usage alerts",
            method: Method::POST,
            path: "/api/reports",
            user: Some("heidi"),
            body: Some(r#"{"title":"Review"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "the usage alerts so far as JSON, oldest first: alice's, bob's and grace's from \
                   the steps above, then heidi's \
                   {\"user\":\"heidi\",\"plan\":\"business\",\"resource\":\"reports\",\
                   \"action\":\"create\",\"threshold\":80,\"used\":2,\"max\":2,\
                   \"period\":\"m<her cycle's start, ms>\"} and the same at 100 (alerts are \
                   sent just after the response: if heidi's are not there yet, ask again)",
            method: Method::GET,
            path: "/alerts",
            user: None,
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "heidi's third report: past her 2, but business allows 1 more as overage: 201, \
                   flagged `Plan-Overage: reports.create=1`",
            method: Method::POST,
            path: "/api/reports",
            user: Some("heidi"),
            body: Some(r#"{"title":"Retro"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "a fourth: 403 \
                   {\"reason\":\"subscription\",\"plan\":\"business\",\"item\":\"reports\",\
                   \"action\":\"create\",\"maximum\":2,\"usage\":3,\
                   \"resets\":<the 15th, 09:30 UTC>} and Retry-After until then",
            method: Method::POST,
            path: "/api/reports",
            user: Some("heidi"),
            body: Some(r#"{"title":"Extra"}"#),
            status: StatusCode::FORBIDDEN,
        },
        TourStep {
            what: "heidi's entitlements: reports used 3 of 2 with an overage of 1, resetting on \
                   the 15th",
            method: Method::GET,
            path: "/entitlements",
            user: Some("heidi"),
            body: None,
            status: StatusCode::OK,
        },
        TourStep {
            what: "heidi exports (business: one export a minute): 201 with \
                   `RateLimit: \"exports.create.rate\";r=0;t=60`",
            method: Method::POST,
            path: "/api/exports",
            user: Some("heidi"),
            body: Some(r#"{"format":"csv"}"#),
            status: StatusCode::CREATED,
        },
        TourStep {
            what: "she exports again within the minute: 429 \
                   {\"reason\":\"rate_limited\",\"plan\":\"business\",\"item\":\"exports\",\
                   \"action\":\"create\",\"maximum\":1,\"per\":\"minute\",\
                   \"retry_after_ms\":<until the next>} with Retry-After",
            method: Method::POST,
            path: "/api/exports",
            user: Some("heidi"),
            body: Some(r#"{"format":"csv"}"#),
            status: StatusCode::TOO_MANY_REQUESTS,
        },
    ]
}

impl TourStep {
    /// The step as a curl command against `addr`.
    pub fn curl(&self, addr: SocketAddr) -> String {
        let mut cmd = String::from("curl -i");
        if self.method != Method::GET {
            cmd.push_str(&format!(" -X {}", self.method));
        }
        if let Some(user) = self.user {
            cmd.push_str(&format!(" -H 'x-user: {user}'"));
        }
        if let Some(body) = self.body {
            cmd.push_str(&format!(" -H 'content-type: application/json' -d '{body}'"));
        }
        cmd.push_str(&format!(" http://{addr}{}", self.path));
        cmd
    }
}

/// The text printed on start.
pub fn banner(addr: SocketAddr) -> String {
    let mut out = format!("tower-plans quickstart listening on http://{addr}\n\nA short tour (run the commands in order; each says what to expect):\n");
    for (i, step) in full_tour().iter().enumerate() {
        out.push_str(&format!(
            "\n{}. {} (expect {})\n   {}\n",
            i + 1,
            step.what,
            step.status,
            step.curl(addr)
        ));
    }
    out.push_str(
        "\nUsage alerts (at 80% and at 100% of a limit) print below as they fire; \
         GET /alerts lists the last 100.\n",
    );
    out
}
