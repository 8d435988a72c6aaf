//! Metered requests through the layer, over real HTTP in an axum app: costs of several units,
//! credit pools drawn by several routes, consumption the handler reports (also while its body
//! streams), top-up grants, and what entitlements, `RateLimit` fields and 403 bodies say.
//!
//! Every wait is bounded, so that a regression fails instead of hanging.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use axum::body::Body as AxumBody;
use axum::extract::Request as AxumRequest;
use axum::middleware;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::time::timeout;
use tower_plans::entitlements::Entitlements;
use tower_plans::store::{Count, Counter};
use tower_plans::{Allowed, MemoryStore, Meter, PlanLimitLayer, UsageStore};

/// How many chunks a streamed chat answers.
const CHUNKS: u8 = 3;

/// Longer than anything below should take.
const PATIENCE: Duration = Duration::from_secs(60);

/// 2023-11-14T22:13:20Z: in November 2023, which ends at this instant.
const DECEMBER: u64 = 1_701_388_800_000;

/// Images cost 5 credits of `ai`, and pro may create 30 of them; a chat costs what its handler
/// reports, 200 reserved before; exports take 3 units of their own limit. Pro's `ai` pool is
/// `AI` (a lifetime pool, so that counts are easy to set), free has none, the `ai-pack` add-on
/// adds 50.
fn catalog(ai: &str) -> String {
    format!(
        r#"{{
        "actions": ["export"],
        "meters": {{
            "images": {{"create": {{"cost": 5, "credits": "ai"}}}},
            "chat": {{"create": {{"credits": "ai", "report": true, "estimate": 200}}}},
            "reports": {{"export": {{"cost": 3}}}}
        }},
        "plans": [
            {{"name": "free", "limits": {{"clients": 3}}}},
            {{"name": "pro", "limits": {{"images": {{"create": 30}}, "reports": {{"export": 10}}}},
             "credits": {{"ai": {ai}}}}}
        ],
        "addons": [{{"name": "ai-pack", "credits": {{"ai": 50}}}}]
    }}"#
    )
}

/// john on pro (with `extra` JSON fields), over the catalog with `ai` as pro's pool.
fn store(ai: &str, extra: &str) -> MemoryStore {
    let users = format!(r#"{{"john": {{"name": "john", "plan": "pro"{extra}}}}}"#);
    MemoryStore::from_json(&catalog(ai), &users).expect("the test store loads")
}

fn pool() -> Counter {
    Counter::credits("john", "ai")
}

async fn count_of(store: &MemoryStore, counter: &Counter) -> Count {
    UsageStore::get(store, counter)
        .await
        .expect("the usage store answers")
        .unwrap_or_default()
}

/// The status a request asks for in `x-status`, 201 without.
fn status<B>(request: &http::Request<B>) -> StatusCode {
    request
        .headers()
        .get("x-status")
        .and_then(|value| value.to_str().ok()?.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::CREATED)
}

/// A handler that reports the `units` of the JSON body on the request's meter (a body without
/// `units` reports nothing) and answers with the status in `x-status` (default 201).
async fn report(request: AxumRequest) -> axum::response::Response {
    let meter = request.extensions().get::<Meter>().cloned();
    let status = status(&request);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let units = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body["units"].as_u64());
    if let (Some(meter), Some(units)) = (meter, units) {
        meter.report(units);
    }
    axum::response::Response::builder()
        .status(status)
        .body(AxumBody::empty())
        .unwrap()
}

/// A handler that streams its answer in `CHUNKS` chunks, 50 ms apart, reporting 40 units
/// before each.
async fn stream(request: AxumRequest) -> axum::response::Response {
    let meter = request
        .extensions()
        .get::<Meter>()
        .cloned()
        .expect("a reported route has a meter");
    let chunks = futures::stream::unfold(0u8, move |sent| {
        let meter = meter.clone();
        async move {
            if sent == CHUNKS {
                return None;
            }
            // Give the client time to look at the counters between chunks.
            tokio::time::sleep(Duration::from_millis(50)).await;
            meter.report(40);
            Some((Ok::<_, Infallible>(Bytes::from_static(b"token ")), sent + 1))
        }
    });
    axum::response::Response::new(AxumBody::from_stream(chunks))
}

/// A handler that answers the decision it found in the extensions as JSON, with the status in
/// `x-status` (default 201).
async fn created(request: AxumRequest) -> axum::response::Response {
    let allowed = request.extensions().get::<Allowed>().cloned();
    let body = serde_json::to_vec(&allowed).unwrap();
    axum::response::Response::builder()
        .status(status(&request))
        .body(AxumBody::from(body))
        .unwrap()
}

/// Serves `layer` on a loopback port: images and exports answer with [`created`], chat with
/// [`report`] (or [`stream`] when `streaming`), behind [`authenticate`].
async fn serve(layer: PlanLimitLayer, streaming: bool) -> SocketAddr {
    let chat = if streaming {
        post(stream)
    } else {
        post(report)
    };
    let app = Router::new()
        .route("/api/images", post(created))
        .route("/api/reports/{id}/export", post(created))
        .route("/api/chat", chat)
        .route(
            "/api/entitlements",
            axum::routing::get_service(layer.entitlements_service()),
        )
        .layer(layer)
        .layer(middleware::from_fn(authenticate));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

/// The layer over `store`, counting in it, with the clock at `clock` and the `RateLimit` fields.
fn layer(store: &MemoryStore, clock: &Arc<AtomicU64>) -> PlanLimitLayer {
    let clock = Arc::clone(clock);
    PlanLimitLayer::builder(store.clone())
        .base("/api")
        .route(
            Method::POST,
            "/api/reports/{id}/export",
            "reports",
            tower_plans::Action::custom("export"),
        )
        .clock(move || clock.load(Ordering::Relaxed))
        .count_usage(store.clone())
        .rate_limit_headers(true)
        .build()
        .expect("the layer builds")
}

fn at(now: u64) -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(now))
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What answered a request: its status, headers and body.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }
}

async fn call(
    client: &Http,
    address: SocketAddr,
    method: Method,
    path: &str,
    body: Value,
) -> Answer {
    call_with(client, address, method, path, body, &[]).await
}

async fn call_with(
    client: &Http,
    address: SocketAddr,
    method: Method,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header("x-user", "john");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = timeout(PATIENCE, client.request(request))
        .await
        .expect("no hang")
        .expect("a response");
    let (parts, body) = response.into_parts();
    let body = timeout(PATIENCE, body.collect())
        .await
        .expect("no hang")
        .expect("the body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn entitlements(layer: &PlanLimitLayer) -> Entitlements {
    layer.entitlements("john").await.expect("entitlements")
}

// ---------------------------------------------------------------------------------------------
// Costs of several units.

/// 200 concurrent images of cost 5 against a pool with 15 units left, 5 times over: exactly 3
/// pass each time, the pool reads its maximum, and every refusal names the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_costs_against_a_pool_with_15_left_let_exactly_3_through() {
    const REQUESTS: usize = 200;
    let store = store("1000", "");
    let clock = at(NOW);
    let layer = layer(&store, &clock);
    let address = serve(layer.clone(), false).await;
    let client = client();
    for round in 0..5u64 {
        // 15 left of the pool; images far from their own limit.
        UsageStore::set(&store, &pool(), 985).await.unwrap();
        let images = Counter::items("john", "images");
        UsageStore::set(&store, &images, 0).await.unwrap();
        let start = Arc::new(Barrier::new(REQUESTS));
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let (client, start) = (client.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    call(&client, address, Method::POST, "/api/images", json!({})).await
                })
            })
            .collect();
        let answers = timeout(PATIENCE, futures::future::join_all(tasks))
            .await
            .expect("no hang");
        let mut passed = 0;
        for answer in answers {
            let answer = answer.expect("no panic");
            match answer.status {
                StatusCode::CREATED => passed += 1,
                StatusCode::FORBIDDEN => {
                    let body = answer.json();
                    assert_eq!(body["reason"], "credits", "round {round}: {body}");
                    assert_eq!(body["credits"], "ai");
                    assert_eq!(body["maximum"], 1000);
                    assert_eq!(body["cost"], 5);
                    let usage = body["usage"].as_u64().unwrap();
                    assert!((986..=1000).contains(&usage), "round {round}: {body}");
                }
                other => panic!("round {round}: unexpected {other}"),
            }
        }
        assert_eq!(passed, 3, "round {round}");
        assert_eq!(
            count_of(&store, &pool()).await,
            Count {
                used: 1000,
                held: 0
            }
        );
        assert_eq!(count_of(&store, &images).await, Count { used: 3, held: 0 });
        let credits = &entitlements(&layer).await.credits;
        assert_eq!((credits[0].used, credits[0].remaining()), (1000, Some(0)));
    }
}

/// A meter without a pool takes its cost from the action's own limit: `usage + cost <= max`.
#[tokio::test]
async fn a_cost_on_an_actions_own_limit_fits_or_is_refused_whole() {
    let store = store("1000", "");
    let clock = at(NOW);
    let address = serve(layer(&store, &clock), false).await;
    let client = client();
    let exports = Counter::action("john", "reports", tower_plans::Action::custom("export"));
    UsageStore::set(&store, &exports, 6).await.unwrap();
    let answer = call(
        &client,
        address,
        Method::POST,
        "/api/reports/1/export",
        json!({}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let allowed = answer.json();
    assert_eq!(
        (allowed["usage"].as_u64(), allowed["cost"].as_u64()),
        (Some(6), Some(3))
    );
    assert_eq!(allowed["remaining"], 4);
    assert_eq!(answer.all("ratelimit"), [r#""reports.export";r=1"#]);
    // 9 of 10: 3 more do not fit.
    let answer = call(
        &client,
        address,
        Method::POST,
        "/api/reports/1/export",
        json!({}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.json(),
        json!({"reason": "subscription", "plan": "pro", "item": "reports", "action": "export",
               "maximum": 10, "usage": 9, "cost": 3})
    );
    assert_eq!(count_of(&store, &exports).await, Count { used: 9, held: 0 });
}

/// A request under both a pool and its action's own limit reserves on both or on neither.
#[tokio::test]
async fn a_pool_and_an_action_limit_are_reserved_both_or_neither() {
    let store = store("1000", "");
    let clock = at(NOW);
    let layer = layer(&store, &clock);
    let address = serve(layer.clone(), false).await;
    let client = client();
    let images = Counter::items("john", "images");

    // The action's limit refuses: the pool is not charged.
    UsageStore::set(&store, &images, 30).await.unwrap();
    let answer = call(&client, address, Method::POST, "/api/images", json!({})).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["reason"], "subscription");
    assert_eq!(answer.json()["maximum"], 30);
    assert_eq!(count_of(&store, &pool()).await, Count::default());

    // The pool refuses: the action is not charged.
    UsageStore::set(&store, &images, 10).await.unwrap();
    UsageStore::set(&store, &pool(), 998).await.unwrap();
    let answer = call(&client, address, Method::POST, "/api/images", json!({})).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.json(),
        json!({"reason": "credits", "plan": "pro", "credits": "ai", "maximum": 1000,
               "usage": 998, "cost": 5})
    );
    assert_eq!(
        answer.all("ratelimit-policy"),
        [r#""credits.ai";q=1000"#],
        "a pool's refusal names the pool"
    );
    assert_eq!(answer.all("ratelimit"), [r#""credits.ai";r=2"#]);
    assert_eq!(count_of(&store, &images).await, Count { used: 10, held: 0 });

    // Both fit: both are charged, and both policies are in the response.
    UsageStore::set(&store, &pool(), 100).await.unwrap();
    let answer = call(&client, address, Method::POST, "/api/images", json!({})).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        answer.all("ratelimit-policy"),
        [r#""images.create";q=30"#, r#""credits.ai";q=1000"#]
    );
    assert_eq!(
        answer.all("ratelimit"),
        [r#""images.create";r=19"#, r#""credits.ai";r=895"#]
    );
    let allowed = answer.json();
    assert_eq!(
        allowed["credits"],
        json!({"pool": "ai", "limit": 1000, "usage": 100, "remaining": 900})
    );
    assert_eq!(count_of(&store, &images).await, Count { used: 11, held: 0 });
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 105, held: 0 }
    );
}

/// A plan without the pool has none: its requests are refused, unless an add-on raises it.
#[tokio::test]
async fn a_plan_without_the_pool_is_refused_and_an_addon_raises_it() {
    let users = r#"{"ann": {"name": "ann", "plan": "free"},
                    "bob": {"name": "bob", "plan": "free", "addons": [{"name": "ai-pack", "quantity": 2}]}}"#;
    let store = MemoryStore::from_json(&catalog("1000"), users).unwrap();
    let clock = at(NOW);
    let layer = layer(&store, &clock);
    let ann = tower_plans::UserId::from("ann");
    let bob = tower_plans::UserId::from("bob");
    let image = |user: &tower_plans::UserId| {
        let mut request = request(Method::POST, "/api/images", None);
        request.extensions_mut().insert(user.clone());
        request
    };
    let response = send(&layer, image(&ann)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        text(response).await,
        r#"{"reason":"credits","plan":"free","credits":"ai","maximum":0,"usage":0,"cost":5}"#
    );
    // bob has 2 packs of 50: 20 images.
    for _ in 0..20 {
        assert_eq!(send(&layer, image(&bob)).await.status(), StatusCode::OK);
    }
    let response = send(&layer, image(&bob)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(text(response)
        .await
        .contains(r#""maximum":100,"usage":100"#));
    let credits = layer.entitlements("bob").await.unwrap().credits;
    assert_eq!(credits.len(), 1);
    assert_eq!((credits[0].max(), credits[0].used), (Some(100), 100));
    assert!(layer.entitlements("ann").await.unwrap().credits.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Reported consumption.

#[tokio::test]
async fn a_reported_request_counts_what_it_reports_and_a_failed_one_nothing() {
    let clock = at(NOW);
    let chat = |units: Option<u64>| match units {
        Some(units) => json!({"units": units}),
        None => json!({}),
    };

    // Reports 120 of its estimate of 200: 120 are counted, the rest given back.
    let store = store("1000", "");
    let address = serve(layer(&store, &clock), false).await;
    let client = client();
    let answer = call(&client, address, Method::POST, "/api/chat", chat(Some(120))).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        answer.all("ratelimit"),
        [r#""credits.ai";r=800"#],
        "after the estimate"
    );
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 120, held: 0 }
    );

    // Reports nothing: the estimate is counted.
    let answer = call(&client, address, Method::POST, "/api/chat", chat(None)).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 320, held: 0 }
    );

    // Fails: nothing is counted, whatever it reported.
    let answer = call_with(
        &client,
        address,
        Method::POST,
        "/api/chat",
        chat(Some(90)),
        &[("x-status", "502")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 320, held: 0 }
    );

    // Reports 350 of 200, on a fresh pool of 500: all 350 are counted, and the next request,
    // whose estimate no longer fits, is refused.
    let store = self::store("500", "");
    let address = serve(layer(&store, &clock), false).await;
    let answer = call(&client, address, Method::POST, "/api/chat", chat(Some(350))).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 350, held: 0 }
    );
    let answer = call(&client, address, Method::POST, "/api/chat", chat(Some(1))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.json(),
        json!({"reason": "credits", "plan": "pro", "credits": "ai", "maximum": 500,
               "usage": 350, "cost": 200})
    );
    // Past the allowance it is counted in full too: 350 + 200 > 500 is never refused after
    // the fact.
    let store = self::store("500", "");
    let address = serve(layer(&store, &clock), false).await;
    UsageStore::set(&store, &pool(), 250).await.unwrap();
    let answer = call(&client, address, Method::POST, "/api/chat", chat(Some(400))).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 650, held: 0 }
    );
}

/// A streamed answer settles when its body ends: the estimate stays held while it streams,
/// and what the handler reported while streaming is what is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_settles_at_its_end_with_what_was_reported() {
    let store = store("1000", "");
    let clock = at(NOW);
    let address = serve(layer(&store, &clock), true).await;
    let client = client();
    let request = Request::post(format!("http://{address}/api/chat"))
        .header("x-user", "john")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = timeout(PATIENCE, client.request(request))
        .await
        .expect("no hang")
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    // The head is here, the body is not: the estimate is still held.
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 0, held: 200 }
    );
    let mut body = response.into_body();
    let mut received = Vec::new();
    while let Some(frame) = timeout(PATIENCE, body.frame()).await.expect("no hang") {
        if let Ok(data) = frame.expect("a frame").into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(received, b"token token token ");
    // The end of the body settled it: 3 reports of 40.
    assert_eq!(
        count_of(&store, &pool()).await,
        Count { used: 120, held: 0 }
    );
}

/// A client that goes away mid-stream pays what was reported until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_midway_counts_what_was_reported() {
    let store = store("1000", "");
    let clock = at(NOW);
    let address = serve(layer(&store, &clock), true).await;
    let client = client();
    let request = Request::post(format!("http://{address}/api/chat"))
        .header("x-user", "john")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = timeout(PATIENCE, client.request(request))
        .await
        .expect("no hang")
        .expect("a response");
    let mut body = response.into_body();
    let first = timeout(PATIENCE, body.frame())
        .await
        .expect("no hang")
        .expect("a first frame")
        .expect("data");
    assert!(first.is_data());
    drop(body);
    drop(client);
    // The server notices the closed connection and drops the body: the hold is settled with
    // what was reported by then (at least the first 40, less than all three).
    let settled = timeout(PATIENCE, async {
        loop {
            let count = count_of(&store, &pool()).await;
            if count.held == 0 {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the dropped body settles");
    assert!(
        (40..=120).contains(&settled.used),
        "{settled:?}: what was reported when the body was dropped"
    );
}

// ---------------------------------------------------------------------------------------------
// Top-ups.

/// A monthly allowance of 10 and two grants of 20: g-late (expires in a year) listed first,
/// g-soon (expires at the end of December) second.
fn topped_up() -> MemoryStore {
    let grants = format!(
        r#", "grants": [
            {{"id": "g-late", "credits": "ai", "amount": 20, "expires": {late}}},
            {{"id": "g-soon", "credits": "ai", "amount": 20, "expires": {soon}}}
        ]"#,
        late = DECEMBER + 365 * 86_400_000,
        soon = DECEMBER + 31 * 86_400_000,
    );
    store(r#"{"max": 10, "per": "month"}"#, &grants)
}

/// The allowance's `used` and each grant's `remaining`, as entitlements list them.
async fn balances(layer: &PlanLimitLayer) -> (u64, Vec<(String, u64)>) {
    let entitlements = entitlements(layer).await;
    let pool = &entitlements.credits[0];
    let grants = pool
        .grants
        .iter()
        .map(|grant| (grant.id.to_string(), grant.remaining))
        .collect();
    (pool.used, grants)
}

fn grants(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter()
        .map(|(id, remaining)| ((*id).to_owned(), *remaining))
        .collect()
}

#[tokio::test]
async fn grants_are_spent_after_the_allowance_soonest_expiring_first() {
    let store = topped_up();
    let clock = at(NOW);
    let layer = layer(&store, &clock);
    let address = serve(layer.clone(), false).await;
    let client = client();
    let image = || call(&client, address, Method::POST, "/api/images", json!({}));

    // The allowance first: two images.
    for _ in 0..2 {
        assert_eq!(image().await.status, StatusCode::CREATED);
    }
    assert_eq!(
        balances(&layer).await,
        (10, grants(&[("g-soon", 20), ("g-late", 20)]))
    );
    // Then the grant that expires first, to its end, then the other.
    for _ in 0..5 {
        assert_eq!(image().await.status, StatusCode::CREATED);
    }
    assert_eq!(
        balances(&layer).await,
        (10, grants(&[("g-soon", 0), ("g-late", 15)]))
    );

    // December: the allowance is back, the spent grant units are not.
    clock.store(DECEMBER, Ordering::Relaxed);
    assert_eq!(
        balances(&layer).await,
        (0, grants(&[("g-soon", 0), ("g-late", 15)]))
    );
    for _ in 0..2 {
        assert_eq!(image().await.status, StatusCode::CREATED);
    }
    assert_eq!(
        balances(&layer).await,
        (10, grants(&[("g-soon", 0), ("g-late", 15)]))
    );
    let answer = image().await;
    assert_eq!(answer.status, StatusCode::CREATED);
    // The allowance is used up: what the response says remains of it is 0.
    let allowed = answer.json();
    assert_eq!(allowed["credits"]["remaining"], 0);
    assert_eq!(
        balances(&layer).await,
        (10, grants(&[("g-soon", 0), ("g-late", 10)]))
    );
}

#[tokio::test]
async fn one_reservation_splits_across_the_allowance_and_a_grant_and_keeps_the_split() {
    let store = topped_up();
    let clock = at(NOW);
    let layer = layer(&store, &clock);
    let address = serve(layer.clone(), false).await;
    let client = client();
    // 8 of 10 used: an image takes 2 from the allowance and 3 from g-soon.
    let mut allowance = pool();
    allowance.period = Some(tower_plans::catalog::Period::Month.window(NOW));
    UsageStore::set(&store, &allowance, 8).await.unwrap();
    let answer = call(&client, address, Method::POST, "/api/images", json!({})).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        balances(&layer).await,
        (10, grants(&[("g-soon", 17), ("g-late", 20)]))
    );
    // A failed request gives both parts back: 8 again, with g-soon whole.
    UsageStore::set(&store, &allowance, 8).await.unwrap();
    let grant = Counter::grant("john", "ai", "g-soon");
    UsageStore::set(&store, &grant, 0).await.unwrap();
    let answer = call_with(
        &client,
        address,
        Method::POST,
        "/api/images",
        json!({}),
        &[("x-status", "500")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        balances(&layer).await,
        (8, grants(&[("g-soon", 20), ("g-late", 20)]))
    );
    // A reported request's estimate may split too: 2 from the allowance, 20 from g-soon and
    // 178 from g-late would be 200, but the grants hold 40: it does not fit.
    let answer = call(
        &client,
        address,
        Method::POST,
        "/api/chat",
        json!({"units": 5}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["reason"], "credits");
    assert_eq!(answer.json()["usage"], 8);
}

#[tokio::test]
async fn an_expired_grant_is_gone_with_what_it_had_left() {
    let store = topped_up();
    let clock = at(NOW);
    let layer = layer(&store, &clock);
    let address = serve(layer.clone(), false).await;
    let client = client();
    let image = || call(&client, address, Method::POST, "/api/images", json!({}));
    // January 2024: g-soon expired with its 20 units; the allowance and g-late remain.
    let january = DECEMBER + 31 * 86_400_000;
    clock.store(january, Ordering::Relaxed);
    assert_eq!(balances(&layer).await, (0, grants(&[("g-late", 20)])));
    // 10 from the allowance and 20 from g-late: 6 images, then nothing.
    for _ in 0..6 {
        assert_eq!(image().await.status, StatusCode::CREATED);
    }
    let answer = image().await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let body = answer.json();
    assert_eq!(body["reason"], "credits");
    assert_eq!(
        (body["maximum"].as_u64(), body["usage"].as_u64()),
        (Some(10), Some(10))
    );
    // A renewing pool's refusal says when it resets, and so does Retry-After.
    let february = Period::Month.window(january).end();
    assert_eq!(body["resets"], february);
    let retry = answer.headers["retry-after"].to_str().unwrap().to_owned();
    assert_eq!(retry, ((february - january) / 1000).to_string());
    assert_eq!(balances(&layer).await, (10, grants(&[("g-late", 0)])));
}

use tower_plans::catalog::Period;

// ---------------------------------------------------------------------------------------------
// Entitlements.

#[tokio::test]
async fn entitlements_list_pools_and_grants_as_json() {
    let store = topped_up();
    let clock = at(NOW);
    let layer = layer(&store, &clock);
    let address = serve(layer.clone(), false).await;
    let client = client();
    for _ in 0..3 {
        let answer = call(&client, address, Method::POST, "/api/images", json!({})).await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let answer = call(
        &client,
        address,
        Method::GET,
        "/api/entitlements",
        Value::Null,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(
        body["credits"],
        json!([{
            "pool": "ai", "max": 10, "used": 10, "remaining": 0, "per": "month",
            "resets": DECEMBER,
            "grants": [
                {"id": "g-soon", "remaining": 15, "expires": DECEMBER + 31 * 86_400_000},
                {"id": "g-late", "remaining": 20, "expires": DECEMBER + 365 * 86_400_000}
            ]
        }])
    );
}

// ---------------------------------------------------------------------------------------------
// Without counted usage.

/// Without a usage store nothing counts what a pool spent: the allowance and the active grants
/// alone say whether a cost fits.
#[tokio::test]
async fn without_counting_a_cost_fits_the_allowance_and_grants_or_is_refused() {
    let users = format!(
        r#"{{"ann": {{"name": "ann", "plan": "free", "grants": [
                {{"id": "g1", "credits": "ai", "amount": 5, "expires": {DECEMBER}}}]}},
            "bob": {{"name": "bob", "plan": "free", "grants": [
                {{"id": "g1", "credits": "ai", "amount": 4}}]}}}}"#
    );
    let store = MemoryStore::from_json(&catalog("1000"), &users).unwrap();
    let clock = at(NOW);
    let layer = {
        let clock = Arc::clone(&clock);
        PlanLimitLayer::builder(store.clone())
            .base("/api")
            .clock(move || clock.load(Ordering::Relaxed))
            .build()
            .unwrap()
    };
    let image = |user: &str| {
        let mut request = request(Method::POST, "/api/images", None);
        request
            .extensions_mut()
            .insert(tower_plans::UserId::from(user));
        request
    };
    for _ in 0..3 {
        assert_eq!(send(&layer, image("ann")).await.status(), StatusCode::OK);
    }
    assert_eq!(
        send(&layer, image("bob")).await.status(),
        StatusCode::FORBIDDEN
    );
    // ann's grant expired.
    clock.store(DECEMBER, Ordering::Relaxed);
    assert_eq!(
        send(&layer, image("ann")).await.status(),
        StatusCode::FORBIDDEN
    );
}
