//! The quickstart example, driven in-process through the tour it prints.

#[path = "../../examples/quickstart/app.rs"]
mod app;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const DEFAULT_FIXTURE: &str = include_str!("../../examples/quickstart.json");

async fn send(router: &axum::Router, step: &app::TourStep) -> (StatusCode, Value) {
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
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
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
    let router = app::router(&fixture).expect("router");
    assert_eq!(clients(&fixture, "alice"), Some(2));
    let mut bodies = Vec::new();
    // alice's client count in the store after each step
    let mut counts = Vec::new();
    for (i, step) in app::tour().iter().enumerate() {
        let (status, body) = send(&router, step).await;
        assert_eq!(status, step.status, "step {}: {}: {body}", i + 1, step.what);
        bodies.push(body);
        counts.push(clients(&fixture, "alice"));
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
    assert_eq!(bodies.len(), 19);

    // alice is at her limit again.
    let (status, body) = send(
        &router,
        &step(axum::http::Method::POST, "/api/clients", Some("{}")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["usage"], json!(3));
}

/// The first millisecond of the UTC month after `now_ms`, counted the plain way: month by month
/// from 1970.
fn next_month_start(now_ms: u64) -> u64 {
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
            start += days * 86_400_000;
            if start > now_ms {
                return start;
            }
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
/// what the tour printed: 11 requests allowed, 5 denied (four at a limit, one expired plan), one
/// without a user, and nothing for the ungoverned `/health` and `/entitlements`.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn after_the_tour_the_metrics_show_its_numbers() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // This test's thread only: the other tests of this binary do not count here.
    let _local = metrics::set_default_local_recorder(&recorder);
    let fixture = app::Fixture::parse(DEFAULT_FIXTURE).expect("default fixture loads");
    let router = app::with_metrics(app::router(&fixture).expect("router"), handle);
    for step in app::tour() {
        assert_eq!(send(&router, &step).await.0, step.status, "{}", step.what);
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
        (11, 5, 1),
        "{text}"
    );
    assert_eq!(
        decisions,
        [
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="clients",action="create"} 4"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="clients",action="delete"} 1"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="clients",action="index"} 1"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="projects",action="create"} 2"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="reports",action="create"} 2"#,
            r#"tower_plans_decisions_total{outcome="allow",reason="none",resource="reports",action="delete"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="expired",resource="clients",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="limit",resource="clients",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="limit",resource="projects",action="create"} 1"#,
            r#"tower_plans_decisions_total{outcome="deny",reason="limit",resource="reports",action="create"} 2"#,
            r#"tower_plans_decisions_total{outcome="unauthenticated",reason="no_user",resource="clients",action="create"} 1"#,
        ],
        "{text}"
    );
}
