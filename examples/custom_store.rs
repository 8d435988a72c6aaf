//! A `PlanStore` over the application's own data, with its own way of naming the user and its own
//! rejection body.
//!
//! The application keeps accounts in its own types (here a map behind a mutex; in real life a
//! database). The store builds the catalog in Rust, without JSON, and turns an account into a
//! `Subscriber` record. Users are named by an API key header, and refusals are rendered as
//! `application/problem+json`.
//!
//! ```sh
//! cargo run --example custom_store
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_plans::store::StoreFuture;
use tower_plans::{
    catalog::{Limit, Plan, Trial},
    subscriber::Assignment,
    Action, BoxError, Catalog, PlanLimitLayer, PlanStore, Rejection, Subscriber, UserId,
};

/// The application's own notion of a customer tier.
#[derive(Clone, Copy)]
enum Tier {
    Starter,
    Team,
}

/// The application's own account record.
struct Account {
    tier: Option<Tier>,
    trial_started_ms: Option<u64>,
    seats: u64,
    exports_this_month: u64,
}

/// The application's data: accounts by id, and API keys naming accounts.
#[derive(Default)]
struct Accounts {
    by_id: HashMap<String, Account>,
    api_keys: HashMap<String, String>,
}

/// The plan store: reads the application's accounts.
struct AccountStore {
    accounts: Arc<Mutex<Accounts>>,
    catalog: Arc<Catalog>,
}

impl AccountStore {
    fn new(accounts: Arc<Mutex<Accounts>>) -> Result<Self, BoxError> {
        // The plans, in Rust: "starter" has 2 seats and no exports; "team" has 20 seats and
        // 100 exports. A 14-day trial of "team" falls back to "starter".
        let catalog = Catalog::builder()
            .trial(Trial::days(14).with_fallback("starter"))
            .plan(Plan::new("starter").create_limit("seats", 2).with_limit(
                "reports",
                Action::custom("export"),
                Limit::Limited(0),
            ))
            .plan(Plan::new("team").create_limit("seats", 20).with_limit(
                "reports",
                Action::custom("export"),
                Limit::Limited(100),
            ))
            .build()?;
        Ok(Self {
            accounts,
            catalog: Arc::new(catalog),
        })
    }
}

impl PlanStore for AccountStore {
    fn plans<'a>(&'a self) -> StoreFuture<'a, Arc<Catalog>> {
        StoreFuture::new(async move { Ok(Arc::clone(&self.catalog)) })
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::new(async move {
            let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(account) = accounts.by_id.get(id) else {
                return Ok(None);
            };
            let mut subscriber = Subscriber::new()
                .with_name(id)
                .with_usage("seats", account.seats)
                .with_action_usage(
                    "reports",
                    &Action::custom("export"),
                    account.exports_this_month,
                );
            if let Some(tier) = account.tier {
                let plan = match tier {
                    Tier::Starter => "starter",
                    Tier::Team => "team",
                };
                let mut assignment = Assignment::new(plan);
                if let Some(started) = account.trial_started_ms {
                    assignment = assignment.as_trial().joined_at(started);
                }
                subscriber = subscriber.with_plan(assignment);
            }
            Ok(Some(Arc::new(subscriber)))
        })
    }
}

/// Refusals as RFC 9457 problem details.
fn problem(rejection: &Rejection) -> Response<Full<Bytes>> {
    let detail = match rejection {
        Rejection::Denied(denial) => serde_json::to_value(denial).unwrap_or_default(),
        _ => serde_json::Value::Null,
    };
    let body = serde_json::json!({
        "type": "https://example.com/problems/plan",
        "title": match rejection {
            Rejection::Unauthenticated => "Who are you?",
            Rejection::Denied(_) => "Your plan does not allow this",
            _ => "Plans are unavailable, try again shortly",
        },
        "status": rejection.status().as_u16(),
        "detail": detail,
    });
    let mut response = Response::new(Full::from(body.to_string()));
    *response.status_mut() = rejection.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let day_ms = 24 * 60 * 60 * 1000;
    let accounts = Arc::new(Mutex::new(Accounts::default()));
    {
        let mut data = accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut add = |id: &str, key: &str, account: Account| {
            data.by_id.insert(id.to_owned(), account);
            data.api_keys.insert(key.to_owned(), id.to_owned());
        };
        let team = |trial_started_ms| Account {
            tier: Some(Tier::Team),
            trial_started_ms,
            seats: 3,
            exports_this_month: 0,
        };
        // On a trial of "team" that started 3 days ago.
        add("acme", "key-acme", team(Some(now_ms - 3 * day_ms)));
        // Their trial started 30 days ago: they are back on "starter".
        add("globex", "key-globex", team(Some(now_ms - 30 * day_ms)));
        // A paying "starter" customer with one of two seats taken.
        add(
            "initech",
            "key-initech",
            Account {
                tier: Some(Tier::Starter),
                trial_started_ms: None,
                seats: 1,
                exports_this_month: 0,
            },
        );
    }

    let keys = Arc::clone(&accounts);
    let layer = PlanLimitLayer::builder(AccountStore::new(Arc::clone(&accounts))?)
        .base("/v1")
        .route(
            Method::POST,
            "/v1/reports/{id}/export",
            "reports",
            Action::custom("export"),
        )
        // The user is named by an API key, looked up in the application's own data.
        .extract_user(move |head| {
            let key = head.headers().get("x-api-key")?.to_str().ok()?;
            let accounts = keys.lock().unwrap_or_else(PoisonError::into_inner);
            accounts
                .api_keys
                .get(key)
                .map(|id| UserId::from(id.as_str()))
        })
        .render_rejection(problem)
        .build()?;

    let service = ServiceBuilder::new().layer(layer).service(service_fn(
        |req: Request<Full<Bytes>>| async move {
            let who = req.extensions().get::<UserId>().map(|u| u.to_string());
            let text = format!("done for {}", who.unwrap_or_else(|| "anyone".into()));
            Ok::<_, Infallible>(Response::new(Full::from(text)))
        },
    ));

    let requests = [
        (Method::POST, "/v1/seats", "key-acme"),
        (Method::POST, "/v1/reports/7/export", "key-acme"),
        (Method::POST, "/v1/seats", "key-globex"),
        (Method::POST, "/v1/reports/7/export", "key-globex"),
        (Method::POST, "/v1/seats", "key-initech"),
        (Method::POST, "/v1/seats", "key-unknown"),
        (Method::GET, "/v1/status", ""),
    ];
    for (method, path, key) in requests {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("x-api-key", key)
            .body(Full::default())?;
        let res = service.clone().oneshot(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "{method:5} {path:22} key={key:12} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
