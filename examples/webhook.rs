//! An API whose plans follow signed billing webhooks.
//!
//! Run with `cargo run --example webhook --features webhook`, then follow the printed `curl`
//! commands: `toto` is on the free plan and may keep 2 clients; a signed `ACTIVATE` for `pro`
//! lifts the limit to 100, a `DEACTIVATE` puts toto back on the free plan.
//!
//! Set `WEBHOOK_SECRET` to change the shared secret and `PORT` to change the port (default 3000).

use std::time::Duration;

use axum::extract::Extension;
use axum::http::StatusCode;
use axum::routing::{get, post_service};
use axum::Router;
use tower_plans::webhook::{MemoryStoreHook, WebhookConfig, WebhookReceiver};
use tower_plans::{Allowed, MemoryStore, PlanLimitLayer, RequestHead, UserCache, UserId};

const PLANS: &str = r#"[
    {"name": "free", "limits": {"clients": 2}},
    {"name": "pro", "limits": {"clients": 100}}
]"#;

const USERS: &str = r#"{"toto": {"name": "toto", "plan": "free", "usage": {"clients": 0}}}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_plans=debug".into()),
        )
        .init();

    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| "demo-secret".to_owned());
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 3000,
    };

    let store = MemoryStore::from_json(PLANS, USERS)?;

    let layer = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .user_cache(UserCache::time_to_live(Duration::from_secs(600), 10_000))
        // A user without a plan (after a DEACTIVATE) is on the free plan.
        .default_plan("free")
        // Stands in for real authentication: the user id comes from the `x-user` header.
        .extract_user(|head: &RequestHead<'_>| {
            let user = head.headers().get("x-user")?.to_str().ok()?;
            Some(UserId::from(user))
        })
        .build()?;

    let config = WebhookConfig::builder()
        .secret(&secret)
        .invalidator(layer.invalidator())
        .build()?;
    let receiver = WebhookReceiver::new(config, MemoryStoreHook::new(store.clone()));

    let clients_store = store.clone();
    let invalidator = layer.invalidator();
    let app = Router::new()
        .route(
            "/api/clients",
            get(|Extension(allowed): Extension<Allowed>| async move {
                format!("{} clients on plan {}\n", allowed.usage, allowed.plan)
            })
            .post(
                move |Extension(allowed): Extension<Allowed>, head: axum::http::HeaderMap| {
                    let store = clients_store.clone();
                    let invalidator = invalidator.clone();
                    async move {
                        let Some(user) = head.get("x-user").and_then(|v| v.to_str().ok()) else {
                            return (StatusCode::UNAUTHORIZED, String::new());
                        };
                        let count = store.add_usage(user, "clients", 1);
                        // Usage changed: drop the cached record so the next request counts it.
                        invalidator.user(user);
                        (
                            StatusCode::CREATED,
                            format!("client created: {count} on plan {}\n", allowed.plan),
                        )
                    }
                },
            ),
        )
        .layer(layer)
        .route("/webhooks/billing", post_service(receiver));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    print_instructions(&base, &secret);
    axum::serve(listener, app).await?;
    Ok(())
}

fn print_instructions(base: &str, secret: &str) {
    println!(
        r#"Listening on {base}

Create clients as toto (the third is refused on the free plan):

  curl -i -X POST {base}/api/clients -H 'x-user: toto'

Send a signed ACTIVATE for the pro plan (the signature is hex HMAC-SHA256 of timestamp + body):

  BODY='{{"event_id":"evt-1","event_name":"ACTIVATE","user_id":"toto","plan":"pro","subscription_status":"AUTO_RENEWING"}}'
  TS=$(date +%s)
  SIG=$(printf '%s%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac '{secret}' | awk '{{print $NF}}')
  curl -i -X POST {base}/webhooks/billing \
    -H 'content-type: application/json' \
    -H "x-purchasely-timestamp: $TS" \
    -H "x-purchasely-request-signature: $SIG" \
    -d "$BODY"

Then create clients again: they are allowed. Send the same event again: it is acknowledged as a
duplicate. For a DEACTIVATE, repeat with

  BODY='{{"event_id":"evt-2","event_name":"DEACTIVATE","user_id":"toto","plan":"pro"}}'

and the next POST to /api/clients is refused: toto is back on the free plan.
"#
    );
}
