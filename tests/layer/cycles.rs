//! Billing cycles, rates, soft limits and usage alerts through the layer, over real HTTP in an
//! axum app with the memory store: quotas anchored on the subscription, a plan's rate refusing
//! with `429` and consuming no quota, a soft limit passing flagged up to its overage, and
//! alerts fired once per threshold and period, and again in the next period.
//!
//! Every wait is bounded, so that a regression fails instead of hanging.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::authenticate;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::time::timeout;
use tower_plans::alerts::{Subject, Threshold, UsageAlert};
use tower_plans::catalog::Period;
use tower_plans::store::Counter;
use tower_plans::{Action, MemoryStore, PlanLimitLayer, PlanLimitLayerBuilder, UsageStore};

/// Longer than anything below should take.
const PATIENCE: Duration = Duration::from_secs(60);

/// 2024-01-31T10:00:00Z: the anchor of the billing cycle below.
const JAN_31: u64 = 1_706_695_200_000;
/// 2024-02-29T10:00:00Z: February 2024 has 29 days.
const FEB_29: u64 = 1_709_200_800_000;
/// 2024-03-31T10:00:00Z.
const MAR_31: u64 = 1_711_879_200_000;
const DAY: u64 = 86_400_000;

/// pro: 5 reports a month on the subscription's cycle; the API at 60 requests a minute; 10
/// exports, then 2 more flagged as overage; 10 `tasks` and 5 `notes` a calendar month (for the
/// alerts).
const PLANS: &str = r#"{
    "actions": ["export"],
    "plans": [{
        "name": "pro",
        "limits": {
            "reports": {"create": {"max": 5, "per": "month", "anchor": "subscription"},
                        "export": {"max": 10, "overage": 2}},
            "api": {"index": {"max": 1000, "per": "day", "rate": {"max": 60, "per": "minute"}}},
            "tasks": {"create": 10},
            "notes": {"create": {"max": 5, "per": "month"}}
        }
    }]
}"#;

/// john joined pro on January 31st at 10:00 (his billing cycle's anchor).
fn store() -> MemoryStore {
    let users =
        format!(r#"{{"john": {{"name": "john", "plan": {{"name": "pro", "join": {JAN_31}}}}}}}"#);
    MemoryStore::from_json(PLANS, &users).expect("the test store loads")
}

fn builder(store: &MemoryStore, clock: &Arc<AtomicU64>) -> PlanLimitLayerBuilder {
    let clock = Arc::clone(clock);
    PlanLimitLayer::builder(store.clone())
        .base("/api")
        .route(
            Method::POST,
            "/api/reports/{id}/export",
            "reports",
            Action::custom("export"),
        )
        .clock(move || clock.load(Ordering::SeqCst))
        .count_usage(store.clone())
        .rate_limit_headers(true)
}

async fn serve(layer: PlanLimitLayer) -> SocketAddr {
    let app = Router::new()
        .route("/api/reports", post(|| async { StatusCode::CREATED }))
        .route("/api/reports/{id}/export", post(|| async { "exported" }))
        .route("/api/api", get(|| async { "listed" }))
        .route("/api/tasks", post(|| async { StatusCode::CREATED }))
        .route("/api/notes", post(|| async { StatusCode::CREATED }))
        .layer(layer)
        .layer(middleware::from_fn(authenticate));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }
}

async fn call(client: &Http, address: SocketAddr, method: Method, path: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header("x-user", "john")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = timeout(PATIENCE, client.request(request))
        .await
        .expect("no hang")
        .expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

// ---------------------------------------------------------------------------------------------
// Billing cycles.

/// A quota anchored on the subscription resets at the anchor's day of each month, clamped to
/// the month's end: from Jan 31, at Feb 29 (2024 is a leap year), then Mar 31.
#[tokio::test]
async fn an_anchored_quota_resets_on_the_billing_day_clamped_to_the_month_end() {
    let store = store();
    let clock = Arc::new(AtomicU64::new(JAN_31 + DAY));
    let address = serve(builder(&store, &clock).build().unwrap()).await;
    let client = client();
    for _ in 0..5 {
        let answer = call(&client, address, Method::POST, "/api/reports").await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let refused = call(&client, address, Method::POST, "/api/reports").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["resets"], FEB_29);
    let now = JAN_31 + DAY;
    assert_eq!(
        refused.header("retry-after"),
        Some(((FEB_29 - now) / 1000).to_string())
    );
    let policy = refused.header("ratelimit-policy").unwrap();
    assert_eq!(
        policy,
        format!(r#""reports.create";q=5;w={}"#, (FEB_29 - JAN_31) / 1000)
    );

    // A moment before Feb 29 at 10:00, it is still the period that began on Jan 31, used up
    // (the calendar month would have begun on Feb 1).
    clock.store(FEB_29 - 1, Ordering::SeqCst);
    let answer = call(&client, address, Method::POST, "/api/reports").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // On Feb 29 at 10:00 the next period starts from 0; it ends on Mar 31.
    clock.store(FEB_29, Ordering::SeqCst);
    let answer = call(&client, address, Method::POST, "/api/reports").await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let remaining = answer.header("ratelimit").unwrap();
    assert_eq!(
        remaining,
        format!(r#""reports.create";r=4;t={}"#, (MAR_31 - FEB_29) / 1000)
    );
}

/// A new anchor starts a new period: the record's `cycle_anchor` wins over `joined`.
#[tokio::test]
async fn a_new_anchor_starts_a_new_period() {
    let store = store();
    let clock = Arc::new(AtomicU64::new(JAN_31 + DAY));
    let layer = builder(&store, &clock).build().unwrap();
    let address = serve(layer.clone()).await;
    let client = client();
    for _ in 0..5 {
        assert_eq!(
            call(&client, address, Method::POST, "/api/reports")
                .await
                .status,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        call(&client, address, Method::POST, "/api/reports")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The subscription is re-anchored at noon today: a new period, counting from 0.
    let mut john = (*store.subscriber("john").unwrap()).clone();
    john.cycle_anchor = Some(JAN_31 + DAY);
    store.insert_user("john", john);
    layer.invalidator().user("john");
    let answer = call(&client, address, Method::POST, "/api/reports").await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let resets = Period::Month
        .anchored_window(JAN_31 + DAY, JAN_31 + DAY)
        .end();
    assert_eq!(resets, FEB_29 + DAY, "Feb 1 10:00 plus a month: Mar 1");
    let entitlements = layer.entitlements("john").await.unwrap();
    let reports = entitlements
        .limits
        .iter()
        .find(|limit| &*limit.resource == "reports" && limit.action == Action::Create)
        .unwrap();
    assert_eq!((reports.used, reports.resets), (1, Some(resets)));
}

// ---------------------------------------------------------------------------------------------
// Rates.

/// 100 concurrent requests at a fresh rate of 60 a minute: exactly 60 pass; the others answer
/// 429 with a `Retry-After` that lets the next one pass once waited; the refused ones took
/// nothing of the daily quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_of_60_a_minute_lets_exactly_60_of_100_concurrent_requests_through() {
    const REQUESTS: usize = 100;
    let store = store();
    let clock = Arc::new(AtomicU64::new(JAN_31 + DAY));
    let layer = builder(&store, &clock).build().unwrap();
    let address = serve(layer.clone()).await;
    let client = client();
    let start = Arc::new(Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (client, start) = (client.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                call(&client, address, Method::GET, "/api/api").await
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
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let body = answer.json();
                assert_eq!(body["reason"], "rate_limited", "{body}");
                assert_eq!(body["plan"], "pro");
                assert_eq!(body["item"], "api");
                assert_eq!(body["action"], "index");
                assert_eq!(body["maximum"], 60);
                assert_eq!(body["per"], "minute");
                assert_eq!(body["retry_after_ms"], 1000);
                assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
                assert_eq!(
                    answer.header("ratelimit-policy").as_deref(),
                    Some(r#""api.index.rate";q=60;w=60"#)
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(passed, 60);
    // The refused ones took nothing of the quota.
    let window = Period::Day.window(JAN_31 + DAY);
    let quota = Counter::action("john", "api", Action::Index).in_period(window);
    let count = UsageStore::get(&store, &quota).await.unwrap().unwrap();
    assert_eq!((count.used, count.held), (60, 0));

    // Still refused a moment later; passes once the Retry-After has passed.
    let refused = call(&client, address, Method::GET, "/api/api").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    clock.fetch_add(1000, Ordering::SeqCst);
    let answer = call(&client, address, Method::GET, "/api/api").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.all("ratelimit-policy"),
        [
            r#""api.index";q=1000;w=86400"#,
            r#""api.index.rate";q=60;w=60"#
        ]
    );
    let count = UsageStore::get(&store, &quota).await.unwrap().unwrap();
    assert_eq!(count.used, 61);
}

/// A request refused by its quota takes nothing of its rate.
#[tokio::test]
async fn a_request_refused_by_its_quota_takes_nothing_of_its_rate() {
    let store = store();
    let clock = Arc::new(AtomicU64::new(JAN_31 + DAY));
    let address = serve(builder(&store, &clock).build().unwrap()).await;
    let client = client();
    let window = Period::Day.window(JAN_31 + DAY);
    let quota = Counter::action("john", "api", Action::Index).in_period(window);
    UsageStore::set(&store, &quota, 1000).await.unwrap();
    for _ in 0..100 {
        let answer = call(&client, address, Method::GET, "/api/api").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "the quota refuses");
    }
    UsageStore::set(&store, &quota, 0).await.unwrap();
    for i in 0..60 {
        let answer = call(&client, address, Method::GET, "/api/api").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {i}: the rate is whole"
        );
    }
    let answer = call(&client, address, Method::GET, "/api/api").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
}

// ---------------------------------------------------------------------------------------------
// Soft limits.

/// `{"max": 10, "overage": 2}`: the 11th and 12th exports pass flagged, the 13th is refused.
#[tokio::test]
async fn a_soft_limit_passes_flagged_up_to_its_overage_then_refuses() {
    let store = store();
    let clock = Arc::new(AtomicU64::new(JAN_31 + DAY));
    let layer = builder(&store, &clock).build().unwrap();
    let address = serve(layer.clone()).await;
    let client = client();
    for i in 1..=12u64 {
        let answer = call(&client, address, Method::POST, "/api/reports/7/export").await;
        assert_eq!(answer.status, StatusCode::OK, "export {i}");
        let flag = answer.header("plan-overage");
        if i <= 10 {
            assert_eq!(flag, None, "export {i}");
        } else {
            assert_eq!(
                flag,
                Some(format!("reports.export={}", i - 10)),
                "export {i}"
            );
        }
    }
    let refused = call(&client, address, Method::POST, "/api/reports/7/export").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let body = refused.json();
    assert_eq!(
        (body["maximum"].as_u64(), body["usage"].as_u64()),
        (Some(10), Some(12))
    );
    let entitlements = layer.entitlements("john").await.unwrap();
    let exports = entitlements
        .limits
        .iter()
        .find(|limit| limit.action == Action::custom("export"))
        .unwrap();
    assert_eq!((exports.used, exports.remaining()), (12, Some(0)));
    let json = serde_json::to_value(exports).unwrap();
    assert_eq!(json["overage"], 2);
}

// ---------------------------------------------------------------------------------------------
// Alerts.

/// Alerts at 80 and 100 percent of 10 tasks: each fires once, when the count reaches 8 and 10.
#[tokio::test]
async fn alerts_fire_once_per_threshold() {
    let store = store();
    let clock = Arc::new(AtomicU64::new(JAN_31 + DAY));
    let seen: Arc<Mutex<Vec<UsageAlert>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let layer = builder(&store, &clock)
        .alerts([80, 100], move |alert: UsageAlert| {
            sink.lock().unwrap().push(alert);
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let address = serve(layer).await;
    let client = client();
    let fired = |seen: &Arc<Mutex<Vec<UsageAlert>>>| -> Vec<(Threshold, u64)> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|alert| (alert.threshold, alert.used))
            .collect()
    };
    for i in 1..=12u64 {
        let answer = call(&client, address, Method::POST, "/api/tasks").await;
        let expected = if i <= 10 {
            StatusCode::CREATED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(answer.status, expected, "task {i}");
        // The check runs in a task of its own: wait for it.
        let want: Vec<(Threshold, u64)> = match i {
            0..=7 => vec![],
            8 | 9 => vec![(Threshold::Percent(80), 8)],
            _ => vec![(Threshold::Percent(80), 8), (Threshold::Percent(100), 10)],
        };
        timeout(PATIENCE, async {
            while fired(&seen) != want {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("after task {i}: {:?} != {want:?}", fired(&seen)));
    }
    let alerts = seen.lock().unwrap().clone();
    assert_eq!(
        alerts[0].subject,
        Subject::Action {
            resource: "tasks".into(),
            action: Action::Create
        }
    );
    assert_eq!((alerts[0].max, alerts[0].plan.as_ref()), (10, "pro"));
    assert_eq!(alerts[0].user.as_str(), "john");
}

/// `overage: 200` over `max: 1000`: the 1001st to 1200th creates pass, flagged in `Allowed` and
/// `Plan-Overage`; the 1201st is refused.
#[tokio::test]
async fn an_overage_of_200_over_1000_flags_the_1001st_to_1200th_and_refuses_the_1201st() {
    use tower::{Layer, ServiceExt};
    use tower_plans::decision::Allowed;
    use tower_plans::UserId;

    let store = MemoryStore::from_json(
        r#"[{"name": "soft", "calls": {"create": {"max": 1000, "overage": 200}}}]"#,
        r#"{"john": {"plan": "soft"}}"#,
    )
    .unwrap();
    let layer = PlanLimitLayer::builder(store.clone())
        .count_usage(store.clone())
        .build()
        .unwrap();
    let service = layer.layer(tower::service_fn(
        |request: Request<Full<Bytes>>| async move {
            let overage = request
                .extensions()
                .get::<Allowed>()
                .map(|allowed| allowed.overage);
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(format!(
                "{overage:?}"
            )))))
        },
    ));
    for i in 1..=1201u64 {
        let mut request = Request::post("/calls")
            .body(Full::new(Bytes::new()))
            .unwrap();
        request.extensions_mut().insert(UserId::from("john"));
        let response = service.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let flag = response
            .headers()
            .get("plan-overage")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        match i {
            1..=1000 => {
                assert_eq!(status, StatusCode::OK, "call {i}");
                assert_eq!((flag, &body[..]), (None, &b"Some(0)"[..]), "call {i}");
            }
            1001..=1200 => {
                assert_eq!(status, StatusCode::OK, "call {i}");
                let overage = i - 1000;
                assert_eq!(flag, Some(format!("calls.create={overage}")), "call {i}");
                assert_eq!(body, format!("Some({overage})"), "call {i}");
            }
            _ => {
                assert_eq!(status, StatusCode::FORBIDDEN, "call {i}");
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(body["maximum"], 1000);
                assert_eq!(body["usage"], 1200);
            }
        }
    }
    let calls = Counter::action("john", "calls", Action::Create);
    let count = UsageStore::get(&store, &calls).await.unwrap().unwrap();
    assert_eq!((count.used, count.held), (1200, 0));
}

/// Alerts at 80 and 100 percent of a quota fire once per period, and again in the next: the
/// subscription's cycle of 5 reports (from Jan 31, then from Feb 29) and the calendar month's 5
/// notes (February, then March).
#[tokio::test]
async fn alerts_fire_again_in_the_next_period() {
    let store = store();
    let clock = Arc::new(AtomicU64::new(JAN_31 + DAY));
    let seen: Arc<Mutex<Vec<UsageAlert>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let layer = builder(&store, &clock)
        .alerts([80, 100], move |alert: UsageAlert| {
            sink.lock().unwrap().push(alert);
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let address = serve(layer).await;
    let client = client();
    let fired = |seen: &Arc<Mutex<Vec<UsageAlert>>>| -> Vec<(Threshold, u64, Option<String>)> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|alert| {
                let period = alert.period.map(|window| window.to_string());
                (alert.threshold, alert.used, period)
            })
            .collect()
    };
    // 6 creates of `path` in the period labelled `period`: the 4th reaches 80 percent, the 5th
    // the limit, the 6th is refused.
    let period_of = |path: &'static str, period: String| {
        let (seen, client) = (Arc::clone(&seen), client.clone());
        async move {
            seen.lock().unwrap().clear();
            for i in 1..=6u64 {
                let answer = call(&client, address, Method::POST, path).await;
                let expected = if i <= 5 {
                    StatusCode::CREATED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(answer.status, expected, "{path} {i} in {period}");
                let at = |percent, used| (Threshold::Percent(percent), used, Some(period.clone()));
                let want = match i {
                    0..=3 => vec![],
                    4 => vec![at(80, 4)],
                    _ => vec![at(80, 4), at(100, 5)],
                };
                timeout(PATIENCE, async {
                    while fired(&seen) != want {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await
                .unwrap_or_else(|_| {
                    panic!("{path} {i} in {period}: {:?} != {want:?}", fired(&seen))
                });
            }
        }
    };

    let january = Period::Month.anchored_window(JAN_31, JAN_31 + DAY);
    assert_eq!(january.end(), FEB_29);
    period_of("/api/reports", january.to_string()).await;
    period_of("/api/notes", "2024-02".to_owned()).await;
    // On Feb 29 at 10:00 the subscription's next cycle starts, in the calendar's February.
    clock.store(FEB_29, Ordering::SeqCst);
    let february = Period::Month.anchored_window(JAN_31, FEB_29);
    assert_eq!(february.end(), MAR_31);
    period_of("/api/reports", february.to_string()).await;
    // The calendar month is still February: its notes are used up, and fire nothing more.
    let refused = call(&client, address, Method::POST, "/api/notes").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(fired(&seen).len(), 2, "the cycle's two reports alerts only");
    clock.store(MAR_31, Ordering::SeqCst);
    period_of("/api/notes", "2024-03".to_owned()).await;
    let alert = seen.lock().unwrap()[0].clone();
    assert_eq!(
        alert.subject,
        Subject::Action {
            resource: "notes".into(),
            action: Action::Create
        }
    );
    assert_eq!(alert.max, 5);
}
