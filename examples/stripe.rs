//! Plans that follow Stripe subscriptions, with a signed tour:
//!
//! ```sh
//! cargo run --example stripe --features stripe               # serves on 127.0.0.1:3000, prints the tour
//! cargo run --example stripe --features stripe -- --check    # runs the tour over loopback; exit 0 when it answers as printed
//! cargo run --example stripe --features stripe -- --addr 127.0.0.1:8080
//! ```
//!
//! The catalog sells `pro` (20 projects, 2 members) and `seats` (one more member each). Stripe's
//! price with the lookup key `pro_monthly` is mapped to `pro`, the one with `seat_monthly` to
//! `seats`. `ann` has no plan; signed `customer.subscription.*` events, as Stripe sends them,
//! give her a trial, then the paid plan with 3 seats, and take it away when the subscription is
//! deleted; a redelivery, an older event and a forged one change nothing. The endpoint secret
//! is `STRIPE_WEBHOOK_SECRET`, or `whsec_demo`. The user comes from the `x-user` header (a
//! demo-only authentication).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower_plans::stripe::{StripeConfig, StripeReceiver};
use tower_plans::webhook::MemoryStoreHook;
use tower_plans::{BoxError, MemoryStore, PlanLimitLayer, UserCache, UserId};

const PLANS: &str = r#"{
    "plans": [{"name": "pro", "limits": {"projects": 20, "members": 2}}],
    "addons": [{"name": "seats", "limits": {"members": 1}}]
}"#;
const USERS: &str = r#"{"ann": {"usage": {"projects": 1, "members": 4}}}"#;
const USAGE: &str = "usage: stripe [--addr 127.0.0.1:3000] [--check]";
const DAY: u64 = 86_400;

/// What a step sends.
enum Send {
    /// A request to the API as ann.
    Api { method: Method, path: &'static str },
    /// A Stripe event, signed with the endpoint's secret or, when `forged`, with another one.
    Stripe { body: String, forged: bool },
}

/// One step of the tour: what it does, and the answer it gets.
struct Step {
    what: &'static str,
    send: Send,
    status: StatusCode,
    /// The JSON body expected, when the step says it.
    body: Option<Value>,
}

/// A `customer.subscription.*` event for ann's subscription `sub_ann`, in Stripe's shape (API
/// 2025-03-31: the periods on the items): `pro_monthly`, and `seats` seats when there are some.
fn event(id: &str, kind: &str, created: u64, status: &str, seats: u64, now: u64) -> String {
    let item = |price: &str, lookup_key: &str, quantity: u64| {
        json!({
            "id": format!("si_{lookup_key}"), "object": "subscription_item",
            "price": {"id": price, "object": "price", "lookup_key": lookup_key,
                      "product": "prod_demo", "recurring": {"interval": "month"}},
            "quantity": quantity,
            "current_period_start": now, "current_period_end": now + 30 * DAY
        })
    };
    let mut items = vec![item("price_pro", "pro_monthly", 1)];
    if seats > 0 {
        items.push(item("price_seat", "seat_monthly", seats));
    }
    let trial_end = (status == "trialing").then_some(now + 14 * DAY);
    json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "created": created,
        "type": format!("customer.subscription.{kind}"),
        "data": {"object": {
            "id": "sub_ann", "object": "subscription", "customer": "cus_ann",
            "status": status, "metadata": {"user_id": "ann"},
            "billing_cycle_anchor": now, "start_date": now,
            "trial_start": trial_end.map(|_| now), "trial_end": trial_end,
            "items": {"object": "list", "data": items, "has_more": false}
        }}
    })
    .to_string()
}

/// The tour, for a server started at `now` (seconds).
fn tour(now: u64) -> Vec<Step> {
    let applied = Some(json!({"status": "applied"}));
    let trial = event("evt_1", "created", now - 60, "trialing", 0, now);
    vec![
        Step {
            what: "ann has no plan: creating a project is refused",
            send: Send::Api {
                method: Method::POST,
                path: "/api/projects",
            },
            status: StatusCode::FORBIDDEN,
            body: None,
        },
        Step {
            what: "Stripe: her subscription is created, trialing pro for 14 days",
            send: Send::Stripe {
                body: trial.clone(),
                forged: false,
            },
            status: StatusCode::OK,
            body: applied.clone(),
        },
        Step {
            what: "ann creates a project on her pro trial",
            send: Send::Api {
                method: Method::POST,
                path: "/api/projects",
            },
            status: StatusCode::CREATED,
            body: None,
        },
        Step {
            what: "Stripe delivers the same event again: acknowledged, not applied twice",
            send: Send::Stripe {
                body: trial,
                forged: false,
            },
            status: StatusCode::OK,
            body: Some(json!({"status": "duplicate"})),
        },
        Step {
            what: "Stripe: the trial converted; active, with 3 seats",
            send: Send::Stripe {
                body: event("evt_2", "updated", now - 30, "active", 3, now),
                forged: false,
            },
            status: StatusCode::OK,
            body: applied.clone(),
        },
        Step {
            what: "ann adds a fifth member: pro's 2 and 3 seats make 5",
            send: Send::Api {
                method: Method::POST,
                path: "/api/members",
            },
            status: StatusCode::CREATED,
            body: None,
        },
        Step {
            what: "Stripe: a late delivery of an older event (past due) is ignored",
            send: Send::Stripe {
                body: event("evt_3", "updated", now - 45, "past_due", 0, now),
                forged: false,
            },
            status: StatusCode::OK,
            body: Some(json!({"status": "ignored", "reason": "outdated_event"})),
        },
        Step {
            what: "an event signed with another secret is refused",
            send: Send::Stripe {
                body: event("evt_4", "deleted", now, "canceled", 0, now),
                forged: true,
            },
            status: StatusCode::UNAUTHORIZED,
            body: Some(json!({"error": "bad_signature"})),
        },
        Step {
            what: "Stripe: the subscription is deleted; the plan and the seats go",
            send: Send::Stripe {
                body: event("evt_5", "deleted", now, "canceled", 3, now),
                forged: false,
            },
            status: StatusCode::OK,
            body: applied,
        },
        Step {
            what: "ann creates a project: refused again",
            send: Send::Api {
                method: Method::POST,
                path: "/api/projects",
            },
            status: StatusCode::FORBIDDEN,
            body: None,
        },
        Step {
            what: "what ann may do now, as JSON: no plan",
            send: Send::Api {
                method: Method::GET,
                path: "/entitlements",
            },
            status: StatusCode::OK,
            body: None,
        },
    ]
}

struct Args {
    addr: SocketAddr,
    check: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        check: false,
    };
    let mut addr_given = false;
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        match flag.as_str() {
            "--addr" => {
                let value = inline
                    .or_else(|| iter.next())
                    .ok_or_else(|| format!("--addr needs a value\n{USAGE}"))?;
                args.addr = value
                    .parse()
                    .map_err(|e| format!("--addr `{value}` is not a socket address: {e}"))?;
                addr_given = true;
            }
            "--check" => args.check = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if args.check && !addr_given {
        args.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    Ok(args)
}

/// DEMO-ONLY authentication: the user is whoever the `x-user` header names.
async fn demo_auth(mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(UserId::from);
    if let Some(user) = user {
        request.extensions_mut().insert(user);
    }
    next.run(request).await
}

fn app(secret: &str) -> Result<(Router, StripeConfig), BoxError> {
    let store = MemoryStore::from_json(PLANS, USERS)?;
    let plans = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .user_cache(UserCache::time_to_live(Duration::from_secs(600), 1_000))
        .build()?;
    let config = StripeConfig::builder()
        .secret(secret)
        .plan("pro_monthly", "pro")
        .addon("seat_monthly", "seats")
        .invalidator(plans.invalidator())
        .build()?;
    let receiver = StripeReceiver::new(config.clone(), MemoryStoreHook::new(store));
    let entitlements = plans.entitlements_service();
    let created = || async { (StatusCode::CREATED, "{\"ok\":true}") };
    let router = Router::new()
        .route("/api/projects", post(created))
        .route("/api/members", post(created))
        .route_layer(plans)
        .route_service("/entitlements", entitlements)
        .route_service("/webhooks/stripe", receiver)
        .layer(middleware::from_fn(demo_auth));
    Ok((router, config))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let secret = std::env::var("STRIPE_WEBHOOK_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty())
        .unwrap_or_else(|| "whsec_demo".to_owned());
    let (router, config) = match app(&secret) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.addr);
    let now = now_secs();
    let steps = tour(now);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    if args.check {
        let code = check(addr, &config, &steps).await;
        server.abort();
        return code;
    }
    println!("{}", banner(addr, &steps));
    match server.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("error: server failed: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: server task failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The tour as shell commands; events are signed with `openssl` as Stripe signs them.
fn banner(addr: SocketAddr, steps: &[Step]) -> String {
    let mut out = format!(
        "tower-plans Stripe example listening on http://{addr}\n\
         Stripe events go to POST http://{addr}/webhooks/stripe, signed with $STRIPE_WEBHOOK_SECRET \
         (whsec_demo when unset).\n\n\
         Sign as Stripe does (the HMAC-SHA256 of \"<t>.<body>\" in hex):\n\n\
         \x20 sign() {{ TS=$(date +%s); printf 't=%s,v1=%s' \"$TS\" \"$(printf '%s.%s' \"$TS\" \"$1\" \
         | openssl dgst -sha256 -hmac \"$2\" | awk '{{print $NF}}')\"; }}\n\n\
         A short tour (run the commands in order; each says what to expect):\n"
    );
    for (i, step) in steps.iter().enumerate() {
        let expect = match &step.body {
            Some(body) => format!("{} {body}", step.status),
            None => step.status.to_string(),
        };
        out.push_str(&format!("\n{}. {} (expect {expect})\n", i + 1, step.what));
        match &step.send {
            Send::Api { method, path } => {
                let method = if *method == Method::GET {
                    String::new()
                } else {
                    format!(" -X {method}")
                };
                out.push_str(&format!(
                    "   curl -i{method} -H 'x-user: ann' http://{addr}{path}\n"
                ));
            }
            Send::Stripe { body, forged } => {
                let secret = if *forged {
                    "whsec_someone_else"
                } else {
                    "${STRIPE_WEBHOOK_SECRET:-whsec_demo}"
                };
                out.push_str(&format!(
                    "   BODY='{body}'\n   curl -i -X POST http://{addr}/webhooks/stripe \
                     -H \"stripe-signature: $(sign \"$BODY\" \"{secret}\")\" -d \"$BODY\"\n"
                ));
            }
        }
    }
    out
}

/// Runs the tour over loopback: every answer must be as printed.
async fn check(addr: SocketAddr, config: &StripeConfig, steps: &[Step]) -> ExitCode {
    let started = Instant::now();
    let forger = match StripeConfig::builder()
        .secret("whsec_someone_else")
        .plan("pro_monthly", "pro")
        .build()
    {
        Ok(forger) => forger,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut failures = 0;
    for (i, step) in steps.iter().enumerate() {
        let request = match &step.send {
            Send::Api { method, path } => axum::http::Request::builder()
                .method(method.clone())
                .uri(format!("http://{addr}{path}"))
                .header("x-user", "ann")
                .body(Full::default()),
            Send::Stripe { body, forged } => {
                let signer = if *forged { &forger } else { config };
                axum::http::Request::post(format!("http://{addr}/webhooks/stripe"))
                    .header("content-type", "application/json")
                    .header("stripe-signature", signer.sign(now_secs(), body.as_bytes()))
                    .body(Full::from(body.clone()))
            }
        };
        let answer = match request {
            Ok(request) => {
                match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
                    Ok(Ok(response)) => {
                        let status = response.status();
                        match response.into_body().collect().await {
                            Ok(body) => Ok((status, body.to_bytes())),
                            Err(error) => Err(error.to_string()),
                        }
                    }
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("no answer within 10 s".to_owned()),
                }
            }
            Err(error) => Err(error.to_string()),
        };
        let number = i + 1;
        match answer {
            Ok((status, body)) => {
                let json = serde_json::from_slice::<Value>(&body).ok();
                let body_ok = step
                    .body
                    .as_ref()
                    .is_none_or(|want| json.as_ref() == Some(want));
                if status == step.status && body_ok {
                    println!("ok   {number}. {} -> {status}", step.what);
                } else {
                    failures += 1;
                    println!(
                        "FAIL {number}. {}: expected {} {:?}, got {status} {}",
                        step.what,
                        step.status,
                        step.body,
                        String::from_utf8_lossy(&body)
                    );
                }
            }
            Err(error) => {
                failures += 1;
                println!("FAIL {number}. {}: {error}", step.what);
            }
        }
    }
    if failures == 0 {
        println!(
            "stripe example check passed: {} steps in {} ms",
            steps.len(),
            started.elapsed().as_millis()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("stripe example check FAILED: {failures} step(s) did not answer as printed");
        ExitCode::FAILURE
    }
}
