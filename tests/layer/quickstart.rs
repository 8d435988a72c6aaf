//! The quickstart example, driven in-process through the tour it prints.

#[path = "../../examples/quickstart/app.rs"]
mod app;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_plans::catalog::Period;
use tower_plans::store::{Count, Counter};
use tower_plans::UsageStore;

const DEFAULT_FIXTURE: &str = include_str!("../../examples/quickstart.json");

async fn send(router: &axum::Router, step: &app::TourStep) -> (StatusCode, Value) {
    let (status, _, body) = send_full(router, step).await;
    (status, body)
}

/// Sends `step`; its status, headers and JSON body (`null` when it is not JSON).
async fn send_full(
    router: &axum::Router,
    step: &app::TourStep,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(step.method.clone())
        .uri(step.path);
    if let Some(user) = step.user {
        req = req.header("x-user", user);
    }
    if step.body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Body::from(step.body.unwrap_or_default()))
        .expect("request");
    let res = router.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, body)
}

/// The value of the header `name` of `headers`, `None` without one.
fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| value.to_str().expect("ASCII").to_owned())
}

/// `GET /alerts`, asked again until it lists `count` alerts, for at most 10 s: the layer sends
/// alerts in a task of their own, after the response.
async fn alerts_once_there_are(router: &axum::Router, count: usize) -> Value {
    alerts_once(router, |alerts| alerts.len() >= count).await
}

/// `GET /alerts`, asked again until `done` holds for its list, for at most 10 s.
async fn alerts_once(router: &axum::Router, done: impl Fn(&[Value]) -> bool) -> Value {
    let get = app::TourStep {
        what: "the usage alerts",
        method: axum::http::Method::GET,
        path: "/alerts",
        user: None,
        body: None,
        status: StatusCode::OK,
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, alerts) = send(router, &get).await;
        assert_eq!(status, StatusCode::OK, "{alerts}");
        let listed = alerts.as_array().expect("a JSON array");
        if done(listed) || tokio::time::Instant::now() >= deadline {
            return alerts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// What `user` used and holds of the `ai` pool this month, in the store the layer counts in.
async fn pool_count(fixture: &app::Fixture, user: &str) -> Count {
    let counter = Counter::credits(user, "ai").in_period(Period::Month.window(now_ms()));
    fixture
        .store
        .get(&counter)
        .await
        .expect("the memory store answers")
        .unwrap_or_default()
}

/// What `user` spent of the top-up `topup-1`, in the store the layer counts in.
async fn topup_spent(fixture: &app::Fixture, user: &str) -> u64 {
    let counter = Counter::grant(user, "ai", "topup-1");
    let count = fixture.store.get(&counter).await;
    let count = count.expect("the memory store answers").unwrap_or_default();
    assert_eq!(count.held, 0, "nothing of the top-up is held");
    count.used
}

/// The count of `user`'s clients in the store the layer counts in.
fn clients(fixture: &app::Fixture, user: &str) -> Option<u64> {
    fixture
        .store
        .subscriber(user)
        .and_then(|subscriber| subscriber.usage.count("clients"))
}

fn step(
    method: axum::http::Method,
    path: impl Into<String>,
    body: Option<&'static str>,
) -> app::TourStep {
    app::TourStep {
        what: "a request by alice",
        method,
        path: Box::leak(path.into().into_boxed_str()),
        user: Some("alice"),
        body,
        status: StatusCode::OK,
    }
}

#[tokio::test]
async fn the_printed_tour_behaves_as_it_says() {
    let fixture = app::Fixture::parse(DEFAULT_FIXTURE).expect("default fixture loads");
    let log = app::AlertLog::default();
    let router = app::router_with_alerts(&fixture, &log).expect("router");
    let started = now_ms();
    let resets = next_month_start(started);
    assert_eq!(clients(&fixture, "alice"), Some(2));
    let mut bodies = Vec::new();
    let mut heads = Vec::new();
    // alice's client count in the store after each step
    let mut counts = Vec::new();
    for (i, step) in app::full_tour().iter().enumerate() {
        if step.path == "/alerts" {
            // The alerts of the step before are sent just after its response.
            alerts_once_there_are(&router, 10).await;
        }
        let (status, head, body) = send_full(&router, step).await;
        assert_eq!(status, step.status, "step {}: {}: {body}", i + 1, step.what);
        bodies.push(body);
        heads.push(head);
        counts.push(clients(&fixture, "alice"));
        // Let the alerts this step raised be sent before the next step, as a server's are.
        tokio::task::yield_now().await;
    }
    // alice's first create was checked against her 2 clients, got id 1 (which the tour's delete
    // names), and the layer counted it: 3 ...
    assert_eq!(bodies[0]["id"], json!(1));
    assert_eq!(
        bodies[0]["decision"],
        json!({"plan": "free", "limit": 3, "usage": 2})
    );
    assert_eq!(counts[0], Some(3));
    // ... so the second is denied with the exact body, and counts nothing.
    assert_eq!(
        bodies[1],
        json!({"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3})
    );
    assert_eq!(counts[1], Some(3));
    // the listing shows the one client created through the API
    assert_eq!(bodies[2]["items"].as_array().map(Vec::len), Some(1));
    // deleting client 1 gives one back ...
    assert_eq!(bodies[3]["deleted"], json!(1));
    assert_eq!(counts[3], Some(2));
    // ... so the next create passes, checked against 2, and counts 3 again.
    assert_eq!(bodies[4]["decision"]["usage"], json!(2));
    assert_eq!(counts[4], Some(3));
    // bob's expired trial of pro fell back to free
    assert_eq!(bodies[5]["decision"]["plan"], json!("free"));
    assert_eq!(bodies[5]["decision"]["limit"], json!(3));
    assert_eq!(bodies[5]["decision"]["usage"], json!(1));
    assert_eq!(clients(&fixture, "bob"), Some(2));
    assert_eq!(
        bodies[7],
        json!({"reason":"subscription","plan":"free","item":"projects","action":"create","maximum":1,"usage":1})
    );
    // carol's plan expired on 2025-01-01
    assert_eq!(
        bodies[8],
        json!({"reason":"subscription","plan":"regular","expired":true,"date":1735689600000_u64})
    );
    assert_eq!(bodies[9]["decision"]["plan"], json!("pro"));
    // alice's reports: ids 6 and 7, then the monthly quota of 2 is reached, and deleting report
    // 6 gives nothing back.
    assert_eq!(bodies[10]["id"], json!(6));
    assert_eq!(bodies[11]["id"], json!(7));
    assert_eq!(bodies[12]["usage"], json!(2));
    assert_eq!(bodies[13]["deleted"], json!(6));
    assert_eq!(bodies[14]["usage"], json!(2));
    assert_eq!(bodies[15]["plan"], json!("free"));
    assert_eq!(bodies[16], json!({"reason":"unauthenticated"}));
    assert_eq!(bodies[17], json!({"ok":true}));
    // erin's "10 more clients" add-on raises free's 3 to 13; the plan is still free.
    assert_eq!(
        bodies[18]["decision"],
        json!({"plan": "free", "limit": 13, "usage": 5})
    );
    assert_eq!(clients(&fixture, "erin"), Some(6));

    // Metered plans. dave's image costs 5 of pro's 1000 monthly ai credits.
    let ai = |max: u64, usage: u64| {
        json!({"pool": "ai", "limit": {"max": max, "per": "month"}, "usage": usage,
               "remaining": max - usage, "resets": resets})
    };
    assert_eq!(
        bodies[19]["decision"],
        json!({"plan": "pro", "limit": null, "usage": 0, "cost": 5, "credits": ai(1000, 0)})
    );
    // His chat reserved the estimate of 200 and reported 120 as it streamed ...
    assert_eq!(
        bodies[20]["decision"],
        json!({"plan": "pro", "limit": null, "usage": 0, "cost": 200, "credits": ai(1000, 5)})
    );
    assert_eq!(bodies[20]["reported"], json!(120));
    assert_eq!(
        bodies[20]["reply"],
        json!(["Once upon", "a time,", "the end."])
    );
    // ... which is what the pool counts: 5 + 120.
    let pool = |max: u64, used: u64, grants: Value| {
        json!([{"pool": "ai", "max": max, "used": used, "remaining": max.saturating_sub(used),
                "per": "month", "resets": resets, "grants": grants}])
    };
    assert_eq!(bodies[21]["credits"], pool(1000, 125, json!([])));
    // alice's image leaves 3 of free's 8; the next one does not fit.
    assert_eq!(
        bodies[22]["decision"],
        json!({"plan": "free", "limit": null, "usage": 0, "cost": 5, "credits": ai(8, 0)})
    );
    assert_eq!(
        bodies[23],
        json!({"reason": "credits", "plan": "free", "credits": "ai", "maximum": 8, "usage": 5,
               "cost": 5, "resets": resets})
    );
    // grace's second image takes the last 3 of her allowance and 2 of her top-up.
    assert_eq!(bodies[24]["decision"]["credits"], ai(8, 0));
    assert_eq!(bodies[25]["decision"]["credits"], ai(8, 5));
    assert_eq!(
        bodies[26]["credits"],
        pool(
            8,
            8,
            json!([{"id": "topup-1", "remaining": 98, "expires": 4102444800000_u64}])
        )
    );
    // ivan's add-on raises free's 8 to 508: room for the chat's estimate.
    assert_eq!(bodies[27]["decision"]["credits"], ai(508, 0));
    assert_eq!(bodies[27]["reported"], json!(30));

    // heidi (business): 2 reports a month on her billing cycle, from the 15th at 09:30 UTC, not
    // from the 1st.
    let (cycle_start, cycle_end) = heidi_cycle(started);
    let left = (cycle_end - started).div_ceil(1000);
    let seconds_in = |field: &str, name: &str| -> u64 {
        field
            .rsplit(name)
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {field}"))
    };
    assert_eq!(
        header(&heads[28], "ratelimit-policy"),
        Some(format!(
            r#""reports.create";q=2;w={}"#,
            (cycle_end - cycle_start) / 1000
        ))
    );
    let remaining = header(&heads[28], "ratelimit").expect("a RateLimit");
    assert!(
        remaining.starts_with(r#""reports.create";r=1;t="#),
        "{remaining}"
    );
    let t = seconds_in(&remaining, "t=");
    assert!(t <= left && t + 5 >= left, "t={t}, {left} s to the 15th");
    assert_eq!(
        bodies[28]["decision"],
        json!({"plan": "business", "limit": {"max": 2, "per": "month"}, "usage": 0})
    );
    let remaining = header(&heads[29], "ratelimit").expect("a RateLimit");
    assert!(
        remaining.starts_with(r#""reports.create";r=0;t="#),
        "{remaining}"
    );
    assert_eq!(bodies[29]["decision"]["usage"], json!(1));
    // Her second report reached 80% and 100% of her 2: GET /alerts lists those, after every
    // alert the tour raised before, oldest first; a calendar quota's period is its month, a
    // billing cycle's the letter `m` and its start.
    let month = month_label(started);
    let alert = |user: &str, plan: &str, threshold: u64, used: u64, period: Value| {
        json!({"user": user, "plan": plan, "threshold": threshold, "used": used, "max": used,
               "period": period})
    };
    let on = |mut alert: Value, resource: &str| {
        alert["resource"] = json!(resource);
        alert["action"] = json!("create");
        alert
    };
    let pool = |mut alert: Value| {
        alert["pool"] = json!("ai");
        alert
    };
    let mut expected = Vec::new();
    for threshold in [80, 100] {
        expected.push(on(
            alert("alice", "free", threshold, 3, Value::Null),
            "clients",
        ));
    }
    for threshold in [80, 100] {
        expected.push(on(
            alert("bob", "free", threshold, 1, Value::Null),
            "projects",
        ));
    }
    for threshold in [80, 100] {
        expected.push(on(
            alert("alice", "free", threshold, 2, json!(month)),
            "reports",
        ));
    }
    for threshold in [80, 100] {
        expected.push(pool(alert("grace", "free", threshold, 8, json!(month))));
    }
    let cycle = json!(format!("m{cycle_start}"));
    for threshold in [80, 100] {
        expected.push(on(
            alert("heidi", "business", threshold, 2, cycle.clone()),
            "reports",
        ));
    }
    assert_eq!(bodies[30], Value::Array(expected));
    // Each was printed as one line.
    let billing = format!(
        "billing month {} to {} UTC",
        utc(cycle_start),
        utc(cycle_end)
    );
    let printed: Vec<String> = log.alerts().iter().map(app::describe).collect();
    assert_eq!(
        printed,
        [
            "alert: alice reached 80% of clients.create (plan free): 3 of 3 used, never resets"
                .to_owned(),
            "alert: alice reached 100% of clients.create (plan free): 3 of 3 used, never resets"
                .to_owned(),
            "alert: bob reached 80% of projects.create (plan free): 1 of 1 used, never resets"
                .to_owned(),
            "alert: bob reached 100% of projects.create (plan free): 1 of 1 used, never resets"
                .to_owned(),
            format!("alert: alice reached 80% of reports.create (plan free): 2 of 2 used, month {month}"),
            format!("alert: alice reached 100% of reports.create (plan free): 2 of 2 used, month {month}"),
            format!("alert: grace reached 80% of credits.ai (plan free): 8 of 8 used, month {month}"),
            format!("alert: grace reached 100% of credits.ai (plan free): 8 of 8 used, month {month}"),
            format!("alert: heidi reached 80% of reports.create (plan business): 2 of 2 used, {billing}"),
            format!("alert: heidi reached 100% of reports.create (plan business): 2 of 2 used, {billing}"),
        ]
    );
    // Her third report passes within the overage of 1, flagged; the first two were not.
    assert_eq!(header(&heads[28], "plan-overage"), None);
    assert_eq!(header(&heads[29], "plan-overage"), None);
    assert_eq!(
        header(&heads[31], "plan-overage").as_deref(),
        Some("reports.create=1")
    );
    assert_eq!(bodies[31]["decision"]["usage"], json!(2));
    // The fourth is refused until her next billing day.
    assert_eq!(
        bodies[32],
        json!({"reason": "subscription", "plan": "business", "item": "reports", "action": "create",
               "maximum": 2, "usage": 3, "resets": cycle_end})
    );
    assert_eq!(header(&heads[32], "plan-overage"), None);
    let retry: u64 = header(&heads[32], "retry-after")
        .expect("a Retry-After")
        .parse()
        .expect("seconds");
    assert!(
        retry <= left && retry + 5 >= left,
        "Retry-After {retry}, {left} s to the 15th"
    );
    let reports = bodies[33]["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .find(|l| l["resource"] == "reports" && l["action"] == "create")
        .expect("reports/create");
    assert_eq!(
        reports,
        &json!({"resource": "reports", "action": "create", "max": 2, "used": 3, "remaining": 0,
                "per": "month", "resets": cycle_end, "overage": 1,
                "sources": [{"plan": "business", "limit": {"max": 2, "per": "month"}}]})
    );
    // One export a minute: the first passes with the rate's fields ...
    assert_eq!(
        header(&heads[34], "ratelimit-policy").as_deref(),
        Some(r#""exports.create.rate";q=1;w=60"#)
    );
    assert_eq!(
        header(&heads[34], "ratelimit").as_deref(),
        Some(r#""exports.create.rate";r=0;t=60"#)
    );
    assert_eq!(
        bodies[34]["decision"],
        json!({"plan": "business", "limit": null, "usage": 0})
    );
    // ... the second, at once, is refused with 429 until the minute has passed.
    let wait = bodies[35]["retry_after_ms"]
        .as_u64()
        .expect("retry_after_ms");
    assert!(wait > 55_000 && wait <= 60_000, "retry_after_ms {wait}");
    assert_eq!(
        bodies[35],
        json!({"reason": "rate_limited", "plan": "business", "item": "exports", "action": "create",
               "maximum": 1, "per": "minute", "retry_after_ms": wait})
    );
    assert_eq!(
        header(&heads[35], "retry-after"),
        Some(wait.div_ceil(1000).to_string())
    );
    assert_eq!(
        header(&heads[35], "ratelimit-policy").as_deref(),
        Some(r#""exports.create.rate";q=1;w=60"#)
    );
    assert_eq!(bodies.len(), 36);
    // The refused export reached no handler: heidi has one.
    let mut exports = step(axum::http::Method::GET, "/api/exports", None);
    exports.user = Some("heidi");
    let (status, listed) = send(&router, &exports).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    // The steps after the alerts raised none: each threshold fires once a period.
    tokio::task::yield_now().await;
    assert_eq!(log.alerts().len(), 10);
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 125, held: 0 }
    );
    assert_eq!(
        pool_count(&fixture, "alice").await,
        Count { used: 5, held: 0 }
    );
    assert_eq!(
        pool_count(&fixture, "grace").await,
        Count { used: 8, held: 0 }
    );
    assert_eq!(topup_spent(&fixture, "grace").await, 2);
    assert_eq!(
        pool_count(&fixture, "ivan").await,
        Count { used: 30, held: 0 }
    );

    // alice is at her limit again.
    let (status, body) = send(
        &router,
        &step(axum::http::Method::POST, "/api/clients", Some("{}")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["usage"], json!(3));
}

/// heidi's `cycle_anchor` in the default fixture: 2024-01-15T09:30:00Z.
const HEIDI_ANCHOR: u64 = 1_705_311_000_000;

/// heidi's billing cycle that holds `now_ms`: from the 15th at 09:30 UTC to the same in the
/// next month, counted with chrono.
fn heidi_cycle(now_ms: u64) -> (u64, u64) {
    use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
    let fixture: Value = serde_json::from_str(DEFAULT_FIXTURE).expect("the default fixture");
    assert_eq!(
        fixture["users"]["heidi"]["cycle_anchor"],
        json!(HEIDI_ANCHOR)
    );
    let now = DateTime::from_timestamp_millis(now_ms as i64).expect("a time");
    let this = Utc
        .with_ymd_and_hms(now.year(), now.month(), 15, 9, 30, 0)
        .single()
        .expect("the 15th");
    let (start, end) = if this <= now {
        (
            this,
            this.checked_add_months(Months::new(1))
                .expect("a month later"),
        )
    } else {
        (
            this.checked_sub_months(Months::new(1))
                .expect("a month before"),
            this,
        )
    };
    (
        start.timestamp_millis() as u64,
        end.timestamp_millis() as u64,
    )
}

/// The calendar month of `now_ms`, as a period label: `2026-12`.
fn month_label(now_ms: u64) -> String {
    utc_format(now_ms, "%Y-%m")
}

/// `ms` as `2026-12-15 09:30` (UTC).
fn utc(ms: u64) -> String {
    utc_format(ms, "%Y-%m-%d %H:%M")
}

fn utc_format(ms: u64, format: &str) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .expect("a time")
        .format(format)
        .to_string()
}

/// The first millisecond of the UTC month after `now_ms`.
fn next_month_start(now_ms: u64) -> u64 {
    month_of(now_ms).1
}

/// The first millisecond of the UTC month of `now_ms` and of the next one, counted the plain
/// way: month by month from 1970.
fn month_of(now_ms: u64) -> (u64, u64) {
    let mut start = 0_u64;
    for year in 1970_u64.. {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        for days in [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ] {
            let end = start + days * 86_400_000;
            if end > now_ms {
                return (start, end);
            }
            start = end;
        }
    }
    unreachable!("the years never run out")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// Sends `step` and returns the status, the `ratelimit-policy`, `ratelimit` and `retry-after`
/// headers, and the JSON body.
async fn send_with_headers(
    router: &axum::Router,
    step: &app::TourStep,
) -> (StatusCode, [Option<String>; 3], Value) {
    let mut req = Request::builder()
        .method(step.method.clone())
        .uri(step.path);
    if let Some(user) = step.user {
        req = req.header("x-user", user);
    }
    let req = req
        .body(Body::from(step.body.unwrap_or_default()))
        .expect("request");
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII").to_owned())
    };
    let headers = [
        header("ratelimit-policy"),
        header("ratelimit"),
        header("retry-after"),
    ];
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_monthly_report_quota_with_headers_and_entitlements() {
    let fixture = app::Fixture::parse(DEFAULT_FIXTURE).expect("fixture");
    let router = app::router(&fixture).expect("router");
    let before = now_ms();
    let resets = next_month_start(before);
    let post = step(axum::http::Method::POST, "/api/reports", Some("{}"));

    let (status, [policy, remaining, retry], first) = send_with_headers(&router, &post).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let policy = policy.expect("a RateLimit-Policy");
    assert!(policy.starts_with(r#""reports.create";q=2;w="#), "{policy}");
    let remaining = remaining.expect("a RateLimit");
    assert!(
        remaining.starts_with(r#""reports.create";r=1;t="#),
        "{remaining}"
    );
    // `t` is the seconds until the month ends, rounded up.
    let t: u64 = remaining.rsplit("t=").next().unwrap().parse().unwrap();
    let left = (resets - before).div_ceil(1000);
    assert!(t <= left && t + 5 >= left, "t={t}, {left} s to the 1st");
    assert_eq!(retry, None);

    let (status, [_, remaining, _], _) = send_with_headers(&router, &post).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(remaining.unwrap().starts_with(r#""reports.create";r=0;t="#));

    let (status, [policy, remaining, retry], denied) = send_with_headers(&router, &post).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        denied,
        json!({"reason": "subscription", "plan": "free", "item": "reports", "action": "create",
               "maximum": 2, "usage": 2, "resets": resets})
    );
    assert!(policy.unwrap().starts_with(r#""reports.create";q=2;w="#));
    assert!(remaining.unwrap().starts_with(r#""reports.create";r=0;t="#));
    let retry: u64 = retry.expect("a Retry-After").parse().unwrap();
    assert!(
        retry <= left && retry + 5 >= left,
        "Retry-After {retry}, {left} s to the 1st"
    );

    // Deleting a report does not give a create back.
    let delete = step(
        axum::http::Method::DELETE,
        format!("/api/reports/{}", first["id"]),
        None,
    );
    let (status, _, deleted) = send_with_headers(&router, &delete).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let (status, _, again) = send_with_headers(&router, &post).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(again["usage"], json!(2));

    // What alice may do.
    let (status, _, entitlements) = send_with_headers(
        &router,
        &step(axum::http::Method::GET, "/entitlements", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entitlements["user"], json!("alice"));
    assert_eq!(entitlements["plan"], json!("free"));
    assert_eq!(entitlements["state"], json!("active"));
    let limits = entitlements["limits"].as_array().expect("limits");
    let find = |resource: &str, action: &str| {
        limits
            .iter()
            .find(|l| l["resource"] == resource && l["action"] == action)
            .unwrap_or_else(|| panic!("no {resource}/{action} in {entitlements}"))
    };
    assert_eq!(
        find("reports", "create"),
        &json!({"resource": "reports", "action": "create", "max": 2, "used": 2, "remaining": 0,
                "per": "month", "resets": resets,
                "sources": [{"plan": "free", "limit": {"max": 2, "per": "month"}}]})
    );
    assert_eq!(
        find("clients", "create"),
        &json!({"resource": "clients", "action": "create", "max": 3, "used": 2, "remaining": 1,
                "per": null, "resets": null, "sources": [{"plan": "free", "limit": 3}]})
    );

    // erin's add-on shows as a source of her clients limit.
    let mut erin = step(axum::http::Method::GET, "/entitlements", None);
    erin.user = Some("erin");
    let (status, _, entitlements) = send_with_headers(&router, &erin).await;
    assert_eq!(status, StatusCode::OK);
    let clients = entitlements["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .find(|l| l["resource"] == "clients" && l["action"] == "create")
        .expect("clients/create");
    assert_eq!(
        clients,
        &json!({"resource": "clients", "action": "create", "max": 13, "used": 5, "remaining": 8,
                "per": null, "resets": null,
                "sources": [{"plan": "free", "limit": 3},
                            {"addon": "more-clients", "limit": 10, "quantity": 1}]})
    );

    // Without a user: 401.
    let mut anonymous = step(axum::http::Method::GET, "/entitlements", None);
    anonymous.user = None;
    let (status, _, body) = send_with_headers(&router, &anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"reason": "unauthenticated"}));
}

#[tokio::test]
async fn deleting_an_item_lowers_usage_so_the_limit_frees_up() {
    let fixture = app::Fixture::parse(DEFAULT_FIXTURE).expect("fixture");
    let router = app::router(&fixture).expect("router");
    let post = step(
        axum::http::Method::POST,
        "/api/clients",
        Some(r#"{"name":"x"}"#),
    );
    let (status, created) = send(&router, &post).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(clients(&fixture, "alice"), Some(3));
    assert_eq!(send(&router, &post).await.0, StatusCode::FORBIDDEN);

    // A delete that fails (no such client) gives nothing back.
    let missing = step(axum::http::Method::DELETE, "/api/clients/999", None);
    assert_eq!(send(&router, &missing).await.0, StatusCode::NOT_FOUND);
    assert_eq!(clients(&fixture, "alice"), Some(3));
    assert_eq!(send(&router, &post).await.0, StatusCode::FORBIDDEN);

    let delete = step(
        axum::http::Method::DELETE,
        format!("/api/clients/{}", created["id"]),
        None,
    );
    let (status, deleted) = send(&router, &delete).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deleted"], created["id"]);
    assert_eq!(clients(&fixture, "alice"), Some(2));
    let (status, again) = send(&router, &post).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["decision"]["usage"], json!(2));
    assert_eq!(clients(&fixture, "alice"), Some(3));
}

/// The default fixture with three more users on free, each with a "10 more clients" add-on:
/// frank's expired at 2024-01-01, gina's starts in 2100 (both at 3 clients), and hank's, active
/// with a quantity of 2, at 22 clients.
fn fixture_with_addon_users() -> String {
    let mut fixture: Value = serde_json::from_str(DEFAULT_FIXTURE).expect("the default fixture");
    let users = fixture["users"].as_object_mut().expect("users");
    users.insert(
        "frank".into(),
        json!({"plan": "free", "usage": {"clients": 3},
               "addons": [{"name": "more-clients", "starts": 1672531200000_u64, "expires": 1704067200000_u64}]}),
    );
    users.insert(
        "gina".into(),
        json!({"plan": "free", "usage": {"clients": 3},
               "addons": [{"name": "more-clients", "starts": 4102444800000_u64}]}),
    );
    users.insert(
        "hank".into(),
        json!({"plan": "free", "usage": {"clients": 22},
               "addons": [{"name": "more-clients", "quantity": 2}]}),
    );
    fixture.to_string()
}

/// `POST /api/clients` as `user`, over a real connection to `addr`.
async fn create_over_loopback(addr: std::net::SocketAddr, user: &str) -> (StatusCode, Value) {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client =
        Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = Request::post(format!("http://{addr}/api/clients"))
        .header("x-user", user)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .expect("request");
    let response = client.request(request).await.expect("a response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn addons_through_the_quickstart_over_loopback() {
    let fixture = app::Fixture::parse(&fixture_with_addon_users()).expect("the fixture loads");
    let router = app::router(&fixture).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let at_limit = |maximum: u64| {
        json!({"reason": "subscription", "plan": "free", "item": "clients", "action": "create",
               "maximum": maximum, "usage": maximum})
    };

    // erin (free, 3 clients) holds an active "+10 clients" add-on: at 5 she may create.
    let (status, body) = create_over_loopback(addr, "erin").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["decision"],
        json!({"plan": "free", "limit": 13, "usage": 5})
    );
    assert_eq!(clients(&fixture, "erin"), Some(6));

    // frank's add-on expired and gina's has not started: at 3 they are refused at 3.
    for user in ["frank", "gina"] {
        let (status, body) = create_over_loopback(addr, user).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user}");
        assert_eq!(body, at_limit(3), "{user}");
        assert_eq!(clients(&fixture, user), Some(3), "{user}");
    }

    // hank holds two: at 22 he may create, at 23 he is refused at 23.
    let (status, body) = create_over_loopback(addr, "hank").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["decision"],
        json!({"plan": "free", "limit": 23, "usage": 22})
    );
    let (status, body) = create_over_loopback(addr, "hank").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, at_limit(23));
    assert_eq!(clients(&fixture, "hank"), Some(23));
}

/// Serves `router` on a free loopback port, as the quickstart's binary serves it.
async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// An answer over loopback: its status, headers and JSON body.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    /// The header `name`, which must be there once.
    fn header(&self, name: &str) -> &str {
        let mut values = self.headers.get_all(name).iter();
        let value = values.next().unwrap_or_else(|| panic!("no {name}"));
        assert!(values.next().is_none(), "more than one {name}");
        value.to_str().expect("ASCII")
    }
}

/// `method path` as `user` (with a JSON `body`), over a real connection to `addr`.
async fn call(
    addr: std::net::SocketAddr,
    method: axum::http::Method,
    path: &str,
    user: &str,
    body: Option<&str>,
) -> Answer {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client =
        Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("x-user", user);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = bytes::Bytes::from(body.unwrap_or_default().to_owned());
    let request = request
        .body(http_body_util::Full::new(body))
        .expect("request");
    let response = client.request(request).await.expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    Answer {
        status,
        headers,
        body,
    }
}

/// `POST path` as `user` with `body`, over loopback.
async fn post(addr: std::net::SocketAddr, path: &str, user: &str, body: &str) -> Answer {
    call(addr, axum::http::Method::POST, path, user, Some(body)).await
}

/// `user`'s credit pools, as `GET /entitlements` lists them over loopback.
async fn credits(addr: std::net::SocketAddr, user: &str) -> Value {
    let answer = call(addr, axum::http::Method::GET, "/entitlements", user, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["credits"].clone()
}

/// The quickstart's metered plans over loopback, point by point: an image costs 5 credits of
/// the `ai` pool, a pool that cannot cover a request refuses it with `"reason":"credits"`, a
/// chat counts what its handler reports (its estimate when it reports nothing, all of it above
/// the estimate, nothing when it fails), a top-up is spent once the month's allowance is used
/// up, an add-on raises the pool, and the entitlements and the `RateLimit` fields say so.
#[tokio::test]
async fn metered_plans_over_loopback() {
    let fixture = app::Fixture::parse(DEFAULT_FIXTURE).expect("the fixture loads");
    let addr = serve(app::router(&fixture).expect("router")).await;
    let now = now_ms();
    let (start, resets) = month_of(now);
    let month = (resets - start) / 1000;
    let left = (resets - now).div_ceil(1000);
    // `RateLimit: "credits.ai";r=<remaining>;t=<seconds to the 1st>`, with `t` within 5 s.
    let remaining = |answer: &Answer, r: u64| {
        let field = answer.header("ratelimit");
        let prefix = format!(r#""credits.ai";r={r};t="#);
        let t: u64 = field
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{field} is not {prefix}<t>"))
            .parse()
            .expect("t is a number");
        assert!(t <= left && t + 5 >= left, "t={t}, {left} s to the 1st");
    };
    let policy = |max: u64| format!(r#""credits.ai";q={max};w={month}"#);
    let pool = |max: u64, used: u64, grants: Value| {
        json!([{"pool": "ai", "max": max, "used": used, "remaining": max.saturating_sub(used),
                "per": "month", "resets": resets, "grants": grants}])
    };
    let refused = |maximum: u64, usage: u64, cost: u64| {
        json!({"reason": "credits", "plan": "free", "credits": "ai", "maximum": maximum,
               "usage": usage, "cost": cost, "resets": resets})
    };

    // dave (pro, 1000 a month): an image costs 5.
    let image = post(addr, "/api/images", "dave", r#"{"prompt":"a red fox"}"#).await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.body);
    assert_eq!(image.header("ratelimit-policy"), policy(1000));
    remaining(&image, 995);
    assert_eq!(image.body["decision"]["cost"], json!(5));
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 5, held: 0 }
    );

    // A chat reserves its estimate of 200 (so `r` is 1000 - 5 - 200), streams its answer (no
    // length: chunked) and counts the 120 it reported.
    let chat = post(addr, "/api/chat", "dave", r#"{"prompt":"hi","units":120}"#).await;
    assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.body);
    assert_eq!(chat.header("transfer-encoding"), "chunked");
    assert!(chat.headers.get("content-length").is_none());
    assert_eq!(chat.header("ratelimit-policy"), policy(1000));
    remaining(&chat, 795);
    assert_eq!(chat.body["reported"], json!(120));
    assert_eq!(chat.body["decision"]["cost"], json!(200));
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 125, held: 0 }
    );
    assert_eq!(credits(addr, "dave").await, pool(1000, 125, json!([])));

    // Without `units` nothing is reported: the estimate counts.
    let chat = post(addr, "/api/chat", "dave", r#"{"prompt":"hi"}"#).await;
    assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.body);
    assert_eq!(chat.body["reported"], Value::Null);
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 325, held: 0 }
    );
    // More than the estimate counts in full.
    let chat = post(addr, "/api/chat", "dave", r#"{"units":300}"#).await;
    assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.body);
    assert_eq!(chat.body["reported"], json!(300));
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 625, held: 0 }
    );
    // `units` that are not a count: 400, and the reservation is released.
    for (units, shown) in [(r#""many""#, r#""many""#), ("-1", "-1"), ("1.5", "1.5")] {
        let chat = post(
            addr,
            "/api/chat",
            "dave",
            &format!(r#"{{"units":{units}}}"#),
        )
        .await;
        assert_eq!(chat.status, StatusCode::BAD_REQUEST, "{units}");
        assert_eq!(
            chat.body,
            json!({"reason": "bad_units",
                   "message": format!("`units` must be a non-negative integer, found {shown}")})
        );
    }
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 625, held: 0 }
    );
    assert_eq!(credits(addr, "dave").await, pool(1000, 625, json!([])));

    // alice (free, 8 a month): one image leaves 3, the next one is refused and counts nothing;
    // a chat's estimate of 200 does not fit either.
    let image = post(addr, "/api/images", "alice", "{}").await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.body);
    assert_eq!(image.header("ratelimit-policy"), policy(8));
    remaining(&image, 3);
    let denied = post(addr, "/api/images", "alice", "{}").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body, refused(8, 5, 5));
    assert_eq!(denied.header("ratelimit-policy"), policy(8));
    remaining(&denied, 3);
    let retry: u64 = denied.header("retry-after").parse().expect("seconds");
    assert!(retry <= left && retry + 5 >= left, "Retry-After {retry}");
    let denied = post(addr, "/api/chat", "alice", r#"{"units":1}"#).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body, refused(8, 5, 200));
    assert_eq!(
        pool_count(&fixture, "alice").await,
        Count { used: 5, held: 0 }
    );
    assert_eq!(credits(addr, "alice").await, pool(8, 5, json!([])));

    // grace (free, 8 a month, and a top-up of 100): 5 of her allowance, then 3 of it and 2 of
    // the top-up, then 5 of the top-up.
    let topup = |remaining: u64| json!([{"id": "topup-1", "remaining": remaining, "expires": 4102444800000_u64}]);
    assert_eq!(credits(addr, "grace").await, pool(8, 0, topup(100)));
    let image = post(addr, "/api/images", "grace", "{}").await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.body);
    assert_eq!(topup_spent(&fixture, "grace").await, 0);
    let image = post(addr, "/api/images", "grace", "{}").await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.body);
    assert_eq!(
        pool_count(&fixture, "grace").await,
        Count { used: 8, held: 0 }
    );
    assert_eq!(topup_spent(&fixture, "grace").await, 2);
    assert_eq!(credits(addr, "grace").await, pool(8, 8, topup(98)));
    let image = post(addr, "/api/images", "grace", "{}").await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.body);
    assert_eq!(image.body["decision"]["credits"]["usage"], json!(8));
    remaining(&image, 0);
    assert_eq!(credits(addr, "grace").await, pool(8, 8, topup(93)));
    // The 93 left of the top-up do not cover a chat's estimate of 200.
    let denied = post(addr, "/api/chat", "grace", r#"{"units":1}"#).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body, refused(8, 8, 200));
    assert_eq!(topup_spent(&fixture, "grace").await, 7);

    // ivan (free) holds the "more-ai" add-on: 8 + 500 a month.
    let chat = post(addr, "/api/chat", "ivan", r#"{"units":30}"#).await;
    assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.body);
    assert_eq!(chat.header("ratelimit-policy"), policy(508));
    remaining(&chat, 308);
    assert_eq!(credits(addr, "ivan").await, pool(508, 30, json!([])));
}

/// A chat's answer streams: the layer holds the estimate until the body ends, then counts what
/// the handler reported while it streamed; a body dropped midway counts what was reported
/// until then. Driven in-process, so that the test decides when the body is read.
#[tokio::test]
async fn a_streamed_chat_settles_when_its_body_ends() {
    let fixture = app::Fixture::parse(DEFAULT_FIXTURE).expect("the fixture loads");
    let router = app::router(&fixture).expect("router");
    let chat = |units: u64| {
        Request::post("/api/chat")
            .header("x-user", "dave")
            .header("content-type", "application/json")
            .body(Body::from(format!(r#"{{"units":{units}}}"#)))
            .expect("request")
    };
    let response = router.clone().oneshot(chat(120)).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::CREATED);
    // Half was reported before the answer started; the estimate is held until the end.
    let mut body = response.into_body();
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 0, held: 200 }
    );
    let mut chunks = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = frame.expect("a frame").into_data().expect("data");
        chunks.push(String::from_utf8(data.to_vec()).expect("UTF-8"));
        if chunks.len() < 4 {
            assert_eq!(
                pool_count(&fixture, "dave").await,
                Count { used: 0, held: 200 },
                "after chunk {}",
                chunks.len()
            );
        }
    }
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    let answer: Value = serde_json::from_str(&chunks.concat()).expect("one JSON document");
    assert_eq!(answer["reported"], json!(120));
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 120, held: 0 }
    );

    // Dropped after its first chunk: the 20 reported before it count, not the estimate.
    let response = router.clone().oneshot(chat(40)).await.expect("infallible");
    let mut body = response.into_body();
    assert!(body.frame().await.is_some());
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count {
            used: 120,
            held: 200
        }
    );
    drop(body);
    assert_eq!(
        pool_count(&fixture, "dave").await,
        Count { used: 140, held: 0 }
    );
}

#[test]
fn a_fixture_granting_an_unknown_addon_is_an_error_that_names_it() {
    let mut fixture: Value = serde_json::from_str(DEFAULT_FIXTURE).expect("the default fixture");
    fixture["users"]["erin"]["addons"][0]["name"] = json!("more-client");
    let error = match app::Fixture::parse(&fixture.to_string()) {
        Ok(_) => panic!("a grant of an unknown add-on was accepted"),
        Err(error) => error.to_string(),
    };
    assert_eq!(
        error,
        r#"users["erin"].addons[0].name: the catalog has no add-on `more-client`"#
    );
}

#[test]
fn the_subscriber_readme_examples_are_accepted_as_fixtures() {
    let catalogs = [
        json!({"plans":[{"name":"free","clients":3,"groups":2},{"name":"bronze","clients":5,"groups":10}]}),
        json!([{"name":"free","clients":3,"groups":2},{"name":"bronze","clients":5,"groups":10}]),
        json!({"trial":14,"plans":[{"name":"free","clients":3,"groups":2},{"name":"bronze","clients":5,"groups":10}]}),
        json!({"trial":{"duration":14,"fallback":"free"},"plans":[{"name":"free","groups":2},{"name":"premium","groups":5},{"name":"pro","groups":10}]}),
        json!([{"name":"bronze","clients":{"index":null,"show":10,"create":3,"update":null}}]),
        json!([{"name":"bronze","limits":{"groups":10}}]),
    ];
    let users = json!({
        "john": {"name":"john","plan":{"name":"free","join":1234567,"expire":1238899},"usage":{"clients":3,"groups":2}},
        "jane": {"name":"jane","plan":"free","usage":{"clients":3,"groups":2}},
        "jim": {"name":"jim","plan":"free","clients":3,"groups":2},
        "joan": {"name":"joan","plan":{"name":"pro","join":1234567,"expire":1238899,"trial":true},"usage":{"clients":3,"groups":2}}
    });
    for plans in catalogs {
        let fixture = json!({"config": {"base": "/api"}, "plans": plans, "users": users});
        let loaded = app::Fixture::parse(&fixture.to_string());
        assert!(loaded.is_ok(), "{plans} rejected: {:?}", loaded.err());
    }
}

#[test]
fn a_malformed_fixture_is_an_error_that_names_the_problem() {
    let cases = [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        (r#"{"users":{}}"#, "missing `plans`"),
        (r#"{"config":{"base":3},"plans":[]}"#, "config.base"),
        (
            r#"{"config":{"paths":{"clients":7}},"plans":[]}"#,
            "config.paths.clients",
        ),
        (r#"{"config":{"timeout":-1},"plans":[]}"#, "config.timeout"),
        (r#"{"plans":[{"name":"free","clients":-1}]}"#, "clients"),
        (
            r#"{"plans":[],"users":{"john":{"plan":{"name":"pro","trial":true}}}}"#,
            "john",
        ),
    ];
    for (text, needle) in cases {
        let error = match app::Fixture::parse(text) {
            Ok(_) => panic!("{text} was accepted"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains(needle),
            "{text}: `{error}` does not mention `{needle}`"
        );
    }
}

#[test]
fn arguments_default_and_override() {
    let args = app::Args::parse(Vec::<String>::new()).expect("defaults");
    assert_eq!(args.addr.to_string(), app::DEFAULT_ADDR);
    assert_eq!(args.fixture, std::path::PathBuf::from(app::DEFAULT_FIXTURE));
    let args = app::Args::parse(
        ["--addr", "127.0.0.1:8080", "--fixture=x.json"]
            .map(String::from)
            .to_vec(),
    )
    .expect("overrides");
    assert_eq!(args.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(args.fixture, std::path::PathBuf::from("x.json"));
    assert!(app::Args::parse(["--addr".to_owned()]).is_err());
    assert!(app::Args::parse(["--bogus".to_owned()]).is_err());
    assert!(app::Args::parse(["--addr".into(), "nope".into()]).is_err());
}

/// With the `metrics` feature: after the tour, `GET /metrics` (outside the plan layer) shows
/// what the tour printed: 21 requests allowed, 8 denied (five at a limit, one expired plan, one
/// out of credits, one too fast), one without a user, nothing for the ungoverned `/health`,
/// `/entitlements` and `/alerts`, and the 10 alerts sent.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn after_the_tour_the_metrics_show_its_numbers() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // This test's thread only: the other tests of this binary do not count here.
    let _local = metrics::set_default_local_recorder(&recorder);
    let fixture = app::Fixture::parse(DEFAULT_FIXTURE).expect("default fixture loads");
    let router = app::with_metrics(app::router(&fixture).expect("router"), handle);
    for step in app::full_tour() {
        if step.path == "/alerts" {
            alerts_once_there_are(&router, 10).await;
        }
        assert_eq!(send(&router, &step).await.0, step.status, "{}", step.what);
        tokio::task::yield_now().await;
    }
    let response = router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut decisions: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("tower_plans_decisions_total{"))
        .collect();
    decisions.sort_unstable();
    let sum = |outcome: &str| -> u64 {
        decisions
            .iter()
            .filter(|line| line.contains(&format!("outcome=\"{outcome}\"")))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        (sum("allow"), sum("deny"), sum("unauthenticated")),
        (21, 8, 1),
        "{text}"
    );
    assert_eq!(
        decisions,
        [
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="chat",action="create"} 2"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="clients",action="create"} 4"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="clients",action="delete"} 1"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="clients",action="index"} 1"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="exports",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="images",action="create"} 4"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="projects",action="create"} 2"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="reports",action="create"} 5"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="reports",action="delete"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="credits",resource="images",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="expired",resource="clients",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="limit",resource="clients",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="limit",resource="projects",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="limit",resource="reports",action="create"} 3"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="rate",resource="exports",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="unauthenticated",reason="no_user",resource="clients",action="create"} 1"#,
        ],
        "{text}"
    );
    let alerts: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("tower_plans_alerts_total{"))
        .collect();
    assert_eq!(
        alerts,
        [r#"tower_plans_alerts_total{outcome="fired"} 10"#],
        "{text}"
    );
}

/// `GET /alerts` keeps the last 100 alerts, oldest first: 53 users each reach the one client
/// of their plan, 80% and 100% at once, 106 alerts in all; the first 6 are gone.
#[tokio::test]
async fn the_alerts_route_keeps_the_last_100() {
    let users: serde_json::Map<String, Value> = (0..53)
        .map(|i| (format!("u{i:02}"), json!({"plan": "free"})))
        .collect();
    let fixture = json!({"config": {"base": "/api"},
                         "plans": [{"name": "free", "limits": {"clients": 1}}],
                         "users": users});
    let fixture = app::Fixture::parse(&fixture.to_string()).expect("the fixture loads");
    let router = app::router(&fixture).expect("router");
    for i in 0..53 {
        let mut create = step(axum::http::Method::POST, "/api/clients", Some("{}"));
        create.user = Some(Box::leak(format!("u{i:02}").into_boxed_str()));
        let (status, body) = send(&router, &create).await;
        assert_eq!(status, StatusCode::CREATED, "u{i:02}: {body}");
        tokio::task::yield_now().await;
    }
    let last = json!({"user": "u52", "plan": "free", "resource": "clients", "action": "create",
                      "threshold": 100, "used": 1, "max": 1, "period": null});
    let alerts = alerts_once(&router, |alerts| alerts.last() == Some(&last)).await;
    let listed: Vec<(String, u64)> = alerts
        .as_array()
        .expect("an array")
        .iter()
        .map(|alert| {
            assert_eq!(alert["resource"], json!("clients"), "{alert}");
            let user = alert["user"].as_str().expect("a user").to_owned();
            (user, alert["threshold"].as_u64().expect("a percent"))
        })
        .collect();
    let expected: Vec<(String, u64)> = (3..53)
        .flat_map(|i| [(format!("u{i:02}"), 80), (format!("u{i:02}"), 100)])
        .collect();
    assert_eq!(listed, expected);
}
