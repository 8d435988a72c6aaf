//! Quotas that reset, the `RateLimit` header fields and entitlements, through the real layer in
//! an axum app on a loopback port, with the in-memory store and an injected clock: the last
//! millisecond of a period and the first of the next, a leap day, ISO week 1 across a year
//! boundary; and entitlements in every plan state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use axum::middleware;
use axum::routing::{delete, post};
use axum::Router;
use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_plans::entitlements::Standing;
use tower_plans::{MemoryStore, PlanLimitLayer, PlanLimitLayerBuilder};

/// Free: 3 clients, 2 reports a month, 5 exports a day, 3 archives an ISO week, 100 shows of a
/// report ever. Pro: 30 clients, reports unlimited.
const PLANS: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "actions": ["export", "archive"],
    "plans": [
        {"name": "free", "limits": {
            "clients": 3,
            "reports": {"create": {"max": 2, "per": "month"}, "export": {"max": 5, "per": "day"},
                        "archive": {"max": 3, "per": "week"}, "show": 100}
        }},
        {"name": "pro", "limits": {"clients": 30, "reports": null}}
    ]
}"#;

/// Milliseconds of a UTC date and time.
fn at(date: &str) -> u64 {
    let (ymd, hms) = date.split_once('T').unwrap_or((date, "00:00:00"));
    let ymd: Vec<i64> = ymd.split('-').map(|p| p.parse().unwrap()).collect();
    let hms: Vec<f64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm), written out again here.
    let (y, m, d) = (ymd[0], ymd[1], ymd[2]);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = hms[0] * 3600.0 + hms[1] * 60.0 + hms[2];
    days as u64 * 86_400_000 + (seconds * 1000.0).round() as u64
}

/// An app over loopback: `POST /api/clients`, `POST /api/reports`, `DELETE /api/reports/{id}`,
/// `GET /api/reports/{id}`, `POST /api/reports/{id}/export` and `.../archive`, and
/// `GET /entitlements`; behind the `x-user` authentication.
struct App {
    address: SocketAddr,
    clock: Arc<AtomicU64>,
    layer: PlanLimitLayer,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl App {
    async fn start(
        users: &str,
        configure: impl FnOnce(PlanLimitLayerBuilder, &MemoryStore) -> PlanLimitLayerBuilder,
    ) -> App {
        let store = MemoryStore::from_json(PLANS, users).expect("the test store loads");
        let clock = Arc::new(AtomicU64::new(at("2026-11-29T12:00:00")));
        let now = Arc::clone(&clock);
        let builder = PlanLimitLayer::builder(store.clone())
            .base("/api")
            .route(
                Method::POST,
                "/api/reports/{id}/export",
                "reports",
                tower_plans::Action::custom("export"),
            )
            .route(
                Method::POST,
                "/api/reports/{id}/archive",
                "reports",
                tower_plans::Action::custom("archive"),
            )
            .clock(move || now.load(Ordering::SeqCst));
        let layer = configure(builder, &store)
            .build()
            .expect("the layer builds");
        let api = Router::new()
            .route("/api/clients", post(|| async { StatusCode::CREATED }))
            .route("/api/reports", post(|| async { StatusCode::CREATED }))
            .route(
                "/api/reports/{id}",
                delete(|| async { StatusCode::NO_CONTENT }).get(|| async { "a report" }),
            )
            .route("/api/reports/{id}/export", post(|| async { "exported" }))
            .route("/api/reports/{id}/archive", post(|| async { "archived" }))
            .layer(layer.clone());
        let app = api
            .route_service("/entitlements", layer.entitlements_service())
            .layer(middleware::from_fn(authenticate));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        App {
            address,
            clock,
            layer,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn set_time(&self, now: u64) {
        self.clock.store(now, Ordering::SeqCst);
    }

    async fn send(&self, method: Method, path: &str, user: Option<&str>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.address));
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        let request = request.body(Full::new(Bytes::new())).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("no hang")
            .expect("a response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str) -> Answer {
        self.send(Method::POST, path, Some("john")).await
    }

    /// The status of john's `POST path`.
    async fn posted(&self, path: &str) -> StatusCode {
        self.post(path).await.status
    }
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("visible ASCII"))
    }

    /// The `RateLimit-Policy` and `RateLimit` fields.
    fn rate_limit(&self) -> (Option<&str>, Option<&str>) {
        (self.header("ratelimit-policy"), self.header("ratelimit"))
    }
}

/// Counts usage in the app's own store.
fn counted(builder: PlanLimitLayerBuilder, store: &MemoryStore) -> PlanLimitLayerBuilder {
    builder.count_usage(store.clone())
}

/// Counts usage, with the `RateLimit` fields on.
fn counted_with_headers(
    builder: PlanLimitLayerBuilder,
    store: &MemoryStore,
) -> PlanLimitLayerBuilder {
    counted(builder, store).rate_limit_headers(true)
}

fn john_on(plan: &str) -> String {
    format!(r#"{{"john": {{"name": "john", "plan": "{plan}", "usage": {{"clients": 1}}}}}}"#)
}

// ---------------------------------------------------------------------------------------------
// 1. Period boundaries, counted.

#[tokio::test]
async fn a_monthly_quota_resets_at_the_first_millisecond_of_the_next_month() {
    let app = App::start(&john_on("free"), counted).await;
    let december = at("2026-12-01");
    app.set_time(december - 1);

    assert_eq!(app.posted("/api/reports").await, StatusCode::CREATED);
    assert_eq!(app.posted("/api/reports").await, StatusCode::CREATED);
    let refused = app.post("/api/reports").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body,
        json!({"reason": "subscription", "plan": "free", "item": "reports", "action": "create",
               "maximum": 2, "usage": 2, "resets": december})
    );
    // One millisecond is left: a whole second, rounded up.
    assert_eq!(refused.header("retry-after"), Some("1"));

    // Deleting a report gives no create back.
    let deleted = app
        .send(Method::DELETE, "/api/reports/1", Some("john"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.posted("/api/reports").await, StatusCode::FORBIDDEN);

    // The first millisecond of December: a new period, counted from nothing.
    app.set_time(december);
    assert_eq!(app.posted("/api/reports").await, StatusCode::CREATED);
    assert_eq!(app.posted("/api/reports").await, StatusCode::CREATED);
    let refused = app.post("/api/reports").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["resets"], json!(at("2027-01-01")));
    assert_eq!(
        refused.header("retry-after"),
        Some(&*(31 * 86_400).to_string())
    );
}

#[tokio::test]
async fn a_daily_quota_on_a_leap_day() {
    let app = App::start(&john_on("free"), counted).await;
    let march = at("2028-03-01");
    app.set_time(at("2028-02-29"));
    for _ in 0..5 {
        assert_eq!(app.posted("/api/reports/7/export").await, StatusCode::OK);
    }
    app.set_time(march - 1);
    let refused = app.post("/api/reports/7/export").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["resets"], json!(march));
    assert_eq!(refused.body["action"], "export");
    app.set_time(march);
    assert_eq!(app.posted("/api/reports/7/export").await, StatusCode::OK);
}

#[tokio::test]
async fn a_weekly_quota_follows_iso_weeks_across_a_year_boundary() {
    let app = App::start(&john_on("free"), counted).await;
    // ISO week 1 of 2026 runs from Monday 2025-12-29 to Sunday 2026-01-04.
    let week_two = at("2026-01-05");
    app.set_time(at("2025-12-29"));
    assert_eq!(app.posted("/api/reports/1/archive").await, StatusCode::OK);
    app.set_time(at("2025-12-31T23:59:59.999"));
    assert_eq!(app.posted("/api/reports/1/archive").await, StatusCode::OK);
    // New Year's Day is in the same week.
    app.set_time(at("2026-01-01"));
    assert_eq!(app.posted("/api/reports/1/archive").await, StatusCode::OK);
    app.set_time(week_two - 1);
    let refused = app.post("/api/reports/1/archive").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["resets"], json!(week_two));
    assert_eq!(refused.body["usage"], json!(3));
    app.set_time(week_two);
    assert_eq!(app.posted("/api/reports/1/archive").await, StatusCode::OK);
}

#[tokio::test]
async fn without_counting_the_record_holds_the_period_usage() {
    let users = r#"{"john": {"plan": "free", "usage": {"reports": {"create": 2}}}}"#;
    let app = App::start(users, |b, _| b).await;
    let refused = app.post("/api/reports").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["usage"], json!(2));
    assert_eq!(refused.body["resets"], json!(at("2026-12-01")));
    // 12:00 on the 29th: a day and a half to December.
    assert_eq!(refused.header("retry-after"), Some("129600"));
    // A lifetime limit's denial has no reset and no Retry-After.
    let users = r#"{"john": {"plan": "free", "usage": {"clients": 3}}}"#;
    let app = App::start(users, |b, _| b).await;
    let refused = app.post("/api/clients").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body.get("resets"), None);
    assert_eq!(refused.headers.get(RETRY_AFTER), None);
}

// ---------------------------------------------------------------------------------------------
// 2. The RateLimit header fields.

#[tokio::test]
async fn rate_limit_fields_on_allowed_and_denied_responses() {
    let app = App::start(&john_on("free"), counted_with_headers).await;
    // November has 30 days; 129600 s are left of it.
    let policy = Some(r#""reports.create";q=2;w=2592000"#);
    let first = app.post("/api/reports").await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        first.rate_limit(),
        (policy, Some(r#""reports.create";r=1;t=129600"#))
    );
    let second = app.post("/api/reports").await;
    assert_eq!(
        second.rate_limit(),
        (policy, Some(r#""reports.create";r=0;t=129600"#))
    );
    let third = app.post("/api/reports").await;
    assert_eq!(third.status, StatusCode::FORBIDDEN);
    assert_eq!(
        third.rate_limit(),
        (policy, Some(r#""reports.create";r=0;t=129600"#))
    );
    assert_eq!(third.header("retry-after"), Some("129600"));

    // A lifetime limit: john has 1 of 3 clients.
    let client = app.post("/api/clients").await;
    assert_eq!(
        client.header("ratelimit-policy"),
        Some(r#""clients.create";q=3"#)
    );
    assert_eq!(client.header("ratelimit"), Some(r#""clients.create";r=1"#));

    // Showing a report has a lifetime limit of 100. The two reports made a plain item count,
    // which an action without a count of its own reads (DESIGN section 6): 2 used, 97 left after.
    let listed = app.send(Method::GET, "/api/reports/1", Some("john")).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.header("ratelimit"), Some(r#""reports.show";r=97"#));
    // Unlimited actions carry none.
    let pro = App::start(&john_on("pro"), counted_with_headers).await;
    let unlimited = pro.post("/api/reports").await;
    assert_eq!(unlimited.status, StatusCode::CREATED);
    assert_eq!(unlimited.headers.get("ratelimit"), None);
    assert_eq!(unlimited.headers.get("ratelimit-policy"), None);
}

#[tokio::test]
async fn rate_limit_fields_without_counting_and_off_by_default() {
    let users = r#"{"john": {"plan": "free", "usage": {"clients": 2}}}"#;
    let app = App::start(users, |b, _| b.rate_limit_headers(true)).await;
    let allowed = app.post("/api/clients").await;
    assert_eq!(allowed.status, StatusCode::CREATED);
    assert_eq!(allowed.header("ratelimit"), Some(r#""clients.create";r=0"#));
    let app = App::start(users, counted).await;
    let allowed = app.post("/api/clients").await;
    assert_eq!(allowed.status, StatusCode::CREATED);
    assert_eq!(allowed.headers.get("ratelimit"), None);
    assert_eq!(allowed.headers.get("ratelimit-policy"), None);
    let denied = app.post("/api/clients").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.headers.get("ratelimit"), None);
}

// ---------------------------------------------------------------------------------------------
// 3. Entitlements.

/// John's limit entry for `resource`/`action` in an entitlements body.
fn entry<'a>(body: &'a Value, resource: &str, action: &str) -> &'a Value {
    body["limits"]
        .as_array()
        .expect("a list of limits")
        .iter()
        .find(|e| e["resource"] == resource && e["action"] == action)
        .unwrap_or_else(|| panic!("no {resource}/{action} in {body}"))
}

#[tokio::test]
async fn entitlements_list_every_limit_with_counted_usage() {
    let app = App::start(&john_on("free"), counted).await;
    assert_eq!(app.posted("/api/reports").await, StatusCode::CREATED);
    assert_eq!(app.posted("/api/reports/3/export").await, StatusCode::OK);
    let answer = app.send(Method::GET, "/entitlements", Some("john")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.body;
    assert_eq!(body["user"], "john");
    assert_eq!(body["plan"], "free");
    assert_eq!(body["state"], "active");
    assert_eq!(body["expires"], Value::Null);
    assert_eq!(
        entry(&body, "reports", "create"),
        &json!({"resource": "reports", "action": "create", "max": 2, "used": 1, "remaining": 1,
                "per": "month", "resets": at("2026-12-01"),
                "sources": [{"plan": "free", "limit": {"max": 2, "per": "month"}}]})
    );
    assert_eq!(
        entry(&body, "reports", "export"),
        &json!({"resource": "reports", "action": "export", "max": 5, "used": 1, "remaining": 4,
                "per": "day", "resets": at("2026-11-30"),
                "sources": [{"plan": "free", "limit": {"max": 5, "per": "day"}}]})
    );
    assert_eq!(
        entry(&body, "clients", "create"),
        &json!({"resource": "clients", "action": "create", "max": 3, "used": 1, "remaining": 2,
                "per": null, "resets": null, "sources": [{"plan": "free", "limit": 3}]})
    );
    // The report made an item count, which showing reads until it has a count of its own.
    assert_eq!(entry(&body, "reports", "show")["used"], json!(1));
    let actions: Vec<String> = body["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "clients/create",
            "reports/show",
            "reports/create",
            "reports/archive",
            "reports/export"
        ]
    );

    // Without a user: 401, as the layer answers.
    let anonymous = app.send(Method::GET, "/entitlements", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn entitlements_in_every_plan_state() {
    let now = at("2026-11-29T12:00:00");
    let day = 86_400_000;
    let users = format!(
        r#"{{
        "active": {{"plan": {{"name": "pro", "expire": {ends}}}}},
        "trial": {{"plan": {{"name": "pro", "trial": true, "join": {joined}}}}},
        "fallback": {{"plan": {{"name": "pro", "trial": true, "join": {long_ago}}}, "clients": 2}},
        "expired": {{"plan": {{"name": "pro", "expire": {ended}}}}},
        "none": {{"name": "none"}},
        "unknown-plan": {{"plan": "gold"}}
    }}"#,
        ends = now + 10 * day,
        joined = now - day,
        long_ago = now - 20 * day,
        ended = now - day,
    );
    let app = App::start(&users, |b, _| b).await;
    let layer = &app.layer;

    let active = layer.entitlements("active").await.unwrap();
    assert_eq!(active.plan.as_deref(), Some("pro"));
    assert_eq!(active.standing, Standing::Active);
    assert_eq!(active.expires, Some(now + 10 * day));
    let clients = active
        .limits
        .iter()
        .find(|l| &*l.resource == "clients")
        .unwrap();
    assert_eq!(
        (clients.max(), clients.used, clients.remaining()),
        (Some(30), 0, Some(30))
    );
    // Pro sets no limit on reports: unlimited, `max: null`.
    let reports = active
        .limits
        .iter()
        .find(|l| &*l.resource == "reports" && l.action == tower_plans::Action::Create)
        .unwrap();
    assert_eq!(
        (reports.max(), reports.remaining(), reports.per()),
        (None, None, None)
    );

    let trial = layer.entitlements("trial").await.unwrap();
    assert_eq!(trial.standing, Standing::Trial);
    assert_eq!(trial.expires, Some(now - day + 14 * day));

    let fallback = layer.entitlements("fallback").await.unwrap();
    assert_eq!(fallback.plan.as_deref(), Some("free"));
    assert_eq!(
        fallback.standing,
        Standing::Fallback {
            trial: "pro".into()
        }
    );
    assert_eq!(fallback.expires, None);
    let clients = fallback
        .limits
        .iter()
        .find(|l| &*l.resource == "clients")
        .unwrap();
    assert_eq!(
        (clients.max(), clients.used, clients.remaining()),
        (Some(3), 2, Some(1))
    );

    let expired = layer.entitlements("expired").await.unwrap();
    assert_eq!(expired.plan.as_deref(), Some("pro"));
    assert_eq!(expired.standing, Standing::Expired);
    assert_eq!(expired.expires, Some(now - day));
    assert!(expired.limits.is_empty());

    for user in ["none", "unknown-plan", "nobody"] {
        let none = layer.entitlements(user).await.unwrap();
        assert_eq!(
            (none.plan.as_deref(), none.standing.clone()),
            (None, Standing::None),
            "{user}"
        );
        assert!(none.limits.is_empty());
    }

    // With a default plan, those without an active plan get it.
    let app = App::start(&users, |b, _| {
        b.default_plan("free").grace_period(Duration::from_secs(60))
    })
    .await;
    for user in ["expired", "none", "nobody"] {
        let default = app.layer.entitlements(user).await.unwrap();
        assert_eq!(default.plan.as_deref(), Some("free"), "{user}");
        assert_eq!(default.standing, Standing::Default, "{user}");
        assert_eq!(default.expires, None);
        assert!(!default.limits.is_empty());
    }
    // Grace counts in the expiry.
    let active = app.layer.entitlements("active").await.unwrap();
    assert_eq!(active.expires, Some(now + 10 * day + 60_000));

    // Over HTTP, the same states by name.
    let answer = app.send(Method::GET, "/entitlements", Some("trial")).await;
    assert_eq!(answer.body["state"], "trial");
    assert_eq!(answer.body["expires"], json!(now + 13 * day + 60_000));
    let answer = app.send(Method::GET, "/entitlements", Some("nobody")).await;
    assert_eq!(answer.body["state"], "default");
    assert_eq!(answer.body["user"], "nobody");
}

#[tokio::test]
async fn entitlements_follow_the_failure_policy_and_leak_nothing() {
    let store = CountingStore::new();
    store.set_catalog(PLANS);
    store.fail_users(true);
    let layer = builder(&store).fail_open(true).build().unwrap();
    let error = layer.entitlements("john").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the plan store or the usage store is unavailable"
    );
    let response = tower::ServiceExt::oneshot(
        layer.entitlements_service(),
        request(Method::GET, "/entitlements", Some("john")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = text(response).await;
    assert_eq!(body, r#"{"reason":"plan_store_unavailable"}"#);
    assert!(!body.contains(SECRET));
}

#[tokio::test]
async fn entitlements_use_the_user_cache() {
    let store = CountingStore::new();
    store.set_catalog(PLANS);
    store.set_user("john", r#"{"plan": "free", "clients": 2}"#);
    let layer = builder(&store)
        .user_cache(tower_plans::UserCache::time_to_live(
            Duration::from_secs(60),
            100,
        ))
        .build()
        .unwrap();
    let first = layer.entitlements("john").await.unwrap();
    let second = layer.entitlements("john").await.unwrap();
    assert_eq!(first, second);
    assert_eq!(store.user_calls(), 1);
    assert_eq!(store.plans_calls(), 1);
}

#[tokio::test]
async fn entitlements_name_the_plan_and_the_addons_behind_each_limit() {
    let plans = r#"{
        "plans": [{"name": "free", "limits": {"clients": 3, "exports": {"create": 0}}}],
        "addons": [
            {"name": "more-clients", "limits": {"clients": 10}},
            {"name": "daily-exports", "limits": {"exports": {"create": {"max": 20, "per": "day"}}}}
        ]
    }"#;
    let now = at("2026-11-29T12:00:00");
    let users = format!(
        r#"{{
        "ann": {{"plan": "free", "usage": {{"clients": 4}}, "addons": [
            {{"name": "more-clients", "quantity": 2}},
            {{"name": "more-clients", "expires": {ended}}},
            {{"name": "daily-exports", "starts": {started}}}
        ]}},
        "bea": {{"addons": [{{"name": "more-clients"}}]}}
    }}"#,
        ended = now - 1,
        started = now - 1,
    );
    let store = MemoryStore::from_json(plans, &users).expect("the store loads");
    let layer = PlanLimitLayer::builder(store)
        .base("/api")
        .clock(move || now)
        .build()
        .unwrap();

    let ann = layer.entitlements("ann").await.unwrap();
    let body = serde_json::to_value(&ann).unwrap();
    assert_eq!(
        entry(&body, "clients", "create"),
        &json!({"resource": "clients", "action": "create", "max": 23, "used": 4, "remaining": 19,
                "per": null, "resets": null,
                "sources": [{"plan": "free", "limit": 3},
                            {"addon": "more-clients", "limit": 10, "quantity": 2}]})
    );
    // A blocked plan limit raised by a daily quota becomes a daily quota.
    assert_eq!(
        entry(&body, "exports", "create"),
        &json!({"resource": "exports", "action": "create", "max": 20, "used": 0, "remaining": 20,
                "per": "day", "resets": at("2026-11-30"),
                "sources": [{"plan": "free", "limit": 0},
                            {"addon": "daily-exports", "limit": {"max": 20, "per": "day"},
                             "quantity": 1}]})
    );

    // Without a plan, only what the add-ons name is listed, from the add-ons alone.
    let bea = layer.entitlements("bea").await.unwrap();
    assert_eq!(
        (bea.plan.clone(), bea.standing.clone()),
        (None, Standing::None)
    );
    let body = serde_json::to_value(&bea).unwrap();
    assert_eq!(
        body["limits"],
        json!([{"resource": "clients", "action": "create", "max": 10, "used": 0,
                "remaining": 10, "per": null, "resets": null,
                "sources": [{"addon": "more-clients", "limit": 10, "quantity": 1}]}])
    );
}
