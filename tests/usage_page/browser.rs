//! The page in headless Chromium against the quickstart on loopback, for users in every
//! standing: each number the page shows is compared with `GET /entitlements`, and a
//! screenshot of each page is written to `target/usage-page/<user>.png`.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::app;
use super::chromium;
use super::dom::{self, Element};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A request over loopback, as `user` (the demo's `x-user`); the status and the JSON body.
async fn call(
    client: &HttpClient,
    addr: SocketAddr,
    method: Method,
    path: &str,
    user: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(format!("http://{addr}{path}"));
    if let Some(user) = user {
        request = request.header("x-user", user);
    }
    let body = if method == Method::POST {
        request = request.header("content-type", "application/json");
        Full::from("{}")
    } else {
        Full::default()
    };
    let response = client
        .request(request.body(body).expect("request"))
        .await
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
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

/// Where the screenshots go: `target/usage-page/`.
fn screenshots() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = target
        .parent()
        .map_or(target.clone(), |t| t.to_path_buf())
        .join("usage-page");
    std::fs::create_dir_all(&dir).expect("create target/usage-page");
    dir
}

/// A JSON field as the page mirrors it into a `data-*` attribute: `null` as `"null"`, a field
/// the JSON leaves out as no attribute.
fn mirror(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => Some("null".to_owned()),
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => panic!("no attribute mirrors {other}"),
    }
}

/// The instant as JavaScript's `toISOString` writes it.
fn iso(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .expect("a date")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The figure `<data class=...>` inside `item`: its `value`, after checking that the text
/// shown is the same number (with thousands separators).
fn figure(item: &Element, class: &str) -> Option<u64> {
    let data = item.by_class("data", class)?;
    let value = data.attr("value").expect("a <data> has a value");
    let shown = data.text().replace(',', "");
    assert_eq!(shown, value, "<data class={class}> shows what it holds");
    Some(value.parse().expect("a whole number"))
}

/// The instant `<time class=...>` inside `item`: its `data-ms`, after checking its
/// `datetime` and that it shows something.
fn time(item: &Element, class: &str) -> Option<u64> {
    let time = item.by_class("time", class)?;
    let ms: u64 = time.attr("data-ms").expect("data-ms").parse().expect("ms");
    assert_eq!(time.attr("datetime"), Some(iso(ms).as_str()));
    assert!(
        !time.text().is_empty(),
        "<time class={class}> shows nothing"
    );
    Some(ms)
}

fn assert_mirrors(item: &Element, json: &Value, fields: &[&str]) {
    for field in fields {
        let attribute = format!("data-{}", field.replace('_', "-"));
        assert_eq!(
            item.attr(&attribute),
            mirror(json.get(*field)).as_deref(),
            "{attribute} of {json}"
        );
    }
}

/// The status the page gives a limit or a pool: the same rule, written apart.
fn status(used: u64, max: Option<u64>, over: u64) -> &'static str {
    match max {
        None => "unlimited",
        Some(_) if over > 0 => "over",
        Some(0) => "blocked",
        Some(max) if used >= max => "full",
        Some(max) if 5 * used >= 4 * max => "near",
        Some(_) => "ok",
    }
}

/// What a limit and a pool show alike: the usage, the maximum or "Unlimited", what remains, the
/// bar, the reset, the soft limit's overage and what went past the maximum. Returns the status.
fn check_gauge(item: &Element, json: &Value, over: u64) -> &'static str {
    let used = json["used"].as_u64().expect("used");
    let max = json["max"].as_u64();
    let status = status(used, max, over);
    assert_eq!(item.attr("data-status"), Some(status), "{json}");
    assert_eq!(figure(item, "used"), Some(used), "{json}");
    let bar = item.find_all(|e| e.has_class("bar"));
    let shown = matches!(max, Some(max) if max > 0);
    if shown {
        assert_eq!(figure(item, "max"), max, "{json}");
        assert_eq!(
            figure(item, "remaining"),
            json["remaining"].as_u64(),
            "{json}"
        );
        assert_eq!(bar.len(), 1, "one bar: {json}");
        assert_eq!(
            bar[0].attr("aria-hidden"),
            Some("true"),
            "the bar repeats the text"
        );
        assert_eq!(time(item, "resets"), json["resets"].as_u64(), "{json}");
        match json.get("overage") {
            None => assert!(item.by_class("p", "overage").is_none(), "{json}"),
            Some(Value::Null) => {
                let text = item.by_class("p", "overage").expect("the overage").text();
                assert!(text.contains("without end"), "{text}");
            }
            Some(overage) => assert_eq!(figure(item, "overage-max"), overage.as_u64()),
        }
    } else {
        assert!(bar.is_empty(), "no bar for {json}");
        assert_eq!(figure(item, "max"), None);
        let word = if max.is_none() {
            "Unlimited"
        } else {
            "Not included in your plan"
        };
        assert!(item.text().contains(word), "{word}: {}", item.text());
    }
    let past = if over > 0 { Some(over) } else { None };
    assert_eq!(figure(item, "over"), past, "{json}");
    status
}

fn check_limit(item: &Element, json: &Value) -> &'static str {
    assert_mirrors(
        item,
        json,
        &[
            "resource",
            "action",
            "max",
            "used",
            "remaining",
            "per",
            "resets",
            "overage",
        ],
    );
    let used = json["used"].as_u64().expect("used");
    let over = json["max"]
        .as_u64()
        .map_or(0, |max| used.saturating_sub(max));
    let status = check_gauge(item, json, over);
    let note = item.by_class("p", "note").map(|note| note.text());
    let expected = match status {
        "over" => Some("Over the limit by"),
        "full" => Some("Limit reached"),
        "near" => Some("Almost used up"),
        _ => None,
    };
    match (expected, note) {
        (Some(words), Some(note)) => assert!(note.contains(words), "{note}"),
        (None, None) => {}
        (expected, note) => panic!("expected the note {expected:?}, found {note:?}: {json}"),
    }
    status
}

fn check_pool(item: &Element, json: &Value) -> &'static str {
    assert_mirrors(
        item,
        json,
        &[
            "pool",
            "max",
            "used",
            "remaining",
            "per",
            "resets",
            "overage",
            "overage_used",
        ],
    );
    let over = json
        .get("overage_used")
        .map_or(0, |v| v.as_u64().expect("overage_used"));
    let status = check_gauge(&item.pruned(&|e| e.has_class("grants")), json, over);
    let grants = json["grants"].as_array().expect("grants");
    let shown = item.find_all(|e| e.attr("data-kind") == Some("grant"));
    assert_eq!(shown.len(), grants.len(), "grants of {json}");
    for (shown, grant) in shown.iter().zip(grants) {
        assert_mirrors(shown, grant, &["remaining", "expires"]);
        assert_eq!(shown.attr("data-grant"), grant["id"].as_str());
        assert_eq!(figure(shown, "remaining"), grant["remaining"].as_u64());
        match grant["expires"].as_u64() {
            Some(expires) => assert_eq!(time(shown, "expires"), Some(expires)),
            None => assert!(shown.text().contains("never expires"), "{}", shown.text()),
        }
    }
    status
}

/// Compares the page's DOM with the entitlements JSON; returns the status of each limit and
/// pool, by `resource.action` or `credits.pool`.
fn check_page(user: &str, json: &Value, document: &Element) -> Vec<(String, &'static str)> {
    let main = document.only("main#usage", |e| e.attr("id") == Some("usage"));
    assert_eq!(
        main.attr("data-status"),
        Some("ready"),
        "{user}: {}",
        main.text()
    );
    assert_eq!(main.attr("aria-busy"), Some("false"));

    let plan = main.only("plan", |e| e.attr("data-kind") == Some("plan"));
    assert_mirrors(plan, json, &["user", "plan", "state", "expires"]);
    let name = plan
        .by_class("span", "plan-name")
        .expect("the plan's name")
        .text();
    assert_eq!(name, json["plan"].as_str().unwrap_or("No plan"));
    let section = main.only("plan section", |e| e.attr("id") == Some("usage-plan"));
    let state = json["state"].as_str().expect("state");
    let dated = matches!(state, "trial" | "expired" | "active");
    let expires = json["expires"].as_u64().filter(|_| dated);
    assert_eq!(
        time(section, "expires"),
        expires,
        "{user}: {}",
        section.text()
    );

    let mut statuses = Vec::new();
    let limits = json["limits"].as_array().expect("limits");
    let items = main.find_all(|e| e.attr("data-kind") == Some("limit"));
    assert_eq!(items.len(), limits.len(), "{user}'s limits");
    for (item, limit) in items.iter().zip(limits) {
        let key = format!(
            "{}.{}",
            limit["resource"].as_str().unwrap(),
            limit["action"].as_str().unwrap()
        );
        statuses.push((key, check_limit(item, limit)));
    }
    let pools = json["credits"].as_array().expect("credits");
    let items = main.find_all(|e| e.attr("data-kind") == Some("pool"));
    assert_eq!(items.len(), pools.len(), "{user}'s pools");
    for (item, pool) in items.iter().zip(pools) {
        let key = format!("credits.{}", pool["pool"].as_str().unwrap());
        statuses.push((key, check_pool(item, pool)));
    }
    let kinds = main.find_all(|e| e.attr("data-kind").is_some());
    let grants: usize = pools
        .iter()
        .map(|p| p["grants"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        kinds.len(),
        1 + limits.len() + pools.len() + grants,
        "nothing else is listed"
    );
    statuses
}

fn status_of<'a>(statuses: &'a [(String, &'static str)], key: &str) -> &'a str {
    statuses
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, status)| *status)
        .unwrap_or_else(|| panic!("no {key} in {statuses:?}"))
}

/// The quickstart's fixture with two more users: tina, on a trial of pro with 25 of its 30
/// clients, and olga on `team`, whose monthly report quota and credit pool are soft.
fn fixture() -> app::Fixture {
    let mut fixture: Value =
        serde_json::from_str(include_str!("../../examples/quickstart.json")).expect("JSON");
    let plans = fixture["plans"]["plans"].as_array_mut().expect("plans");
    plans.push(json!({
        "name": "team",
        "limits": {"clients": null, "reports": {"create": {"max": 2, "per": "month", "overage": 3}}},
        "credits": {"ai": {"max": 10, "per": "month", "overage": null}}
    }));
    let users = fixture["users"].as_object_mut().expect("users");
    users.insert(
        "tina".into(),
        json!({"plan": {"name": "pro", "trial": true, "expire": 4_102_444_800_000_u64},
               "usage": {"clients": 25}}),
    );
    users.insert("olga".into(), json!({"plan": "team"}));
    app::Fixture::parse(&fixture.to_string()).expect("the fixture")
}

/// The limit on `resource` and `action` in the entitlements JSON.
fn limit<'a>(json: &'a Value, resource: &str, action: &str) -> &'a Value {
    json["limits"]
        .as_array()
        .and_then(|limits| {
            limits
                .iter()
                .find(|l| l["resource"] == resource && l["action"] == action)
        })
        .unwrap_or_else(|| panic!("no {resource}.{action} in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_exactly_the_entitlements_of_each_user() {
    let fixture = fixture();
    let router = app::router(&fixture).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Usage through the API, as a customer would make it.
    let steps: &[(&str, &str, usize)] = &[
        ("alice", "/api/clients", 1), // 3 of free's 3: at the limit
        ("alice", "/api/reports", 2), // 2 of 2 this month: the quota is used up until it resets
        ("grace", "/api/images", 2),  // 10 credits: free's 8, then 2 of her top-up
        ("olga", "/api/reports", 3),  // 3 of team's soft 2: 1 over
        ("olga", "/api/images", 3),   // 15 credits: team's 10, then 5 of overage
    ];
    for &(user, path, times) in steps {
        for _ in 0..times {
            let (status, body) = call(&client, addr, Method::POST, path, Some(user)).await;
            assert_eq!(status, StatusCode::CREATED, "{user} POST {path}: {body}");
        }
    }

    let dir = screenshots();
    for user in ["alice", "bob", "carol", "grace", "olga", "tina"] {
        let (status, json) = call(&client, addr, Method::GET, "/entitlements", Some(user)).await;
        assert_eq!(status, StatusCode::OK, "{user}: {json}");
        let shot = dir.join(format!("{user}.png"));
        let page = chromium::render(&format!("http://{addr}/account?user={user}"), &shot).await;
        assert!(
            !page.log.contains("Content Security Policy") && !page.log.contains("Uncaught"),
            "{user}: the page broke its policy or threw:\n{}",
            page.log
        );
        let statuses = check_page(user, &json, &dom::parse(&page.dom));
        eprintln!(
            "{user}: {} in {:?}, {statuses:?}",
            shot.display(),
            page.took
        );
        // What each user is there to show.
        let state = json["state"].as_str().expect("state");
        let shown = |key: &str| status_of(&statuses, key);
        match user {
            "alice" => {
                assert_eq!(state, "active");
                assert_eq!(shown("clients.create"), "full");
                assert_eq!(shown("reports.create"), "full");
                assert!(
                    limit(&json, "reports", "create")["resets"]
                        .as_u64()
                        .is_some(),
                    "{json}"
                );
            }
            "bob" => assert_eq!(state, "fallback"),
            "carol" => {
                assert_eq!(state, "expired");
                assert_eq!(json["expires"], 1_735_689_600_000_u64);
            }
            "grace" => {
                assert_eq!(shown("credits.ai"), "full");
                assert_eq!(json["credits"][0]["grants"][0]["remaining"], 98);
            }
            "olga" => {
                assert_eq!(shown("clients.create"), "unlimited");
                assert_eq!(shown("reports.create"), "over");
                assert_eq!(shown("credits.ai"), "over");
                assert_eq!(limit(&json, "reports", "create")["overage"], 3);
                assert_eq!(json["credits"][0]["overage_used"], 5);
            }
            "tina" => {
                assert_eq!(state, "trial");
                assert_eq!(shown("clients.create"), "near");
            }
            _ => unreachable!(),
        }
    }

    // Without a user, the page asks to sign in.
    let shot = dir.join("signed-out.png");
    let page = chromium::render(&format!("http://{addr}/account"), &shot).await;
    let document = dom::parse(&page.dom);
    let main = document.only("main#usage", |e| e.attr("id") == Some("usage"));
    assert_eq!(main.attr("data-status"), Some("unauthenticated"));
    assert!(main.text().contains("Sign in"), "{}", main.text());
    assert!(main.find_all(|e| e.attr("data-kind").is_some()).is_empty());
    eprintln!("signed out: {} in {:?}", shot.display(), page.took);

    server.abort();
}
