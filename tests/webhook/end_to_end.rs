//! End to end over loopback: the receiver and the layer in one axum app; a signed event changes
//! what the user's next request may do, through the layer's invalidation.

use std::time::{Duration, UNIX_EPOCH};

use axum::routing::{get, post_service};
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_plans::webhook::{MemoryStoreHook, WebhookConfig, WebhookReceiver};
use tower_plans::{MemoryStore, PlanLimitLayer, RequestHead, UserCache, UserId};

const SECRET: &str = "e2e-secret";

struct App {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    config: WebhookConfig,
}

impl App {
    async fn start(store: MemoryStore) -> App {
        let layer = PlanLimitLayer::builder(store.clone())
            .base("/api")
            // A long-lived user cache: only invalidation can make a change visible.
            .user_cache(UserCache::time_to_live(Duration::from_secs(3600), 1_000))
            .extract_user(|head: &RequestHead<'_>| {
                let user = head.headers().get("x-user")?.to_str().ok()?;
                Some(UserId::from(user))
            })
            .build()
            .unwrap();
        let config = WebhookConfig::builder()
            .secret(SECRET)
            .invalidator(layer.invalidator())
            .build()
            .unwrap();
        let receiver = WebhookReceiver::new(config.clone(), MemoryStoreHook::new(store));
        let app = Router::new()
            .route(
                "/api/clients",
                get(|| async { "list" }).post(|| async { "created" }),
            )
            .layer(layer)
            .route("/webhooks/billing", post_service(receiver));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        App {
            base: format!("http://{address}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            config,
        }
    }

    async fn call(&self, request: Request<Full<Bytes>>) -> (StatusCode, String) {
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn create_client(&self, user: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/api/clients", self.base))
            .header("x-user", user)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.call(request).await
    }

    async fn event(&self, body: &str) -> (StatusCode, String) {
        let timestamp = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let request = Request::post(format!("{}/webhooks/billing", self.base))
            .header("content-type", "application/json")
            .header("x-purchasely-timestamp", &timestamp)
            .header(
                "x-purchasely-request-signature",
                self.config.sign(&timestamp, body.as_bytes()),
            )
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap();
        self.call(request).await
    }
}

#[tokio::test]
async fn activate_then_deactivate_changes_what_the_next_request_may_do() {
    let store = MemoryStore::from_json(
        r#"[{"name": "free", "clients": 1}, {"name": "plus", "clients": 10}]"#,
        r#"{"toto": {"plan": "free", "usage": {"clients": 1}}}"#,
    )
    .unwrap();
    let app = App::start(store.clone()).await;

    let denied_on_free = r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":1,"usage":1}"#;
    assert_eq!(
        app.create_client("toto").await,
        (StatusCode::FORBIDDEN, denied_on_free.to_owned())
    );

    // The user cache is on: a change in the store alone is not seen.
    store.set_usage("toto", "clients", 0);
    assert_eq!(app.create_client("toto").await.0, StatusCode::FORBIDDEN);
    store.set_usage("toto", "clients", 1);

    // A signed ACTIVATE for a bigger plan: applied, the user invalidated, the next request
    // allowed.
    let activate = r#"{"event_id":"evt-1","event_name":"ACTIVATE","user_id":"toto","plan":"plus","store":"STRIPE","subscription_status":"AUTO_RENEWING","purchased_at_ms":1702390391777}"#;
    assert_eq!(
        app.event(activate).await,
        (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
    );
    assert_eq!(
        app.create_client("toto").await,
        (StatusCode::OK, "created".to_owned())
    );
    // Redelivered: acknowledged, not applied again.
    assert_eq!(
        app.event(activate).await,
        (StatusCode::OK, r#"{"status":"duplicate"}"#.to_owned())
    );

    // A DEACTIVATE: the next governed request is denied, now without a plan.
    let deactivate = r#"{"event_id":"evt-2","event_name":"DEACTIVATE","user_id":"toto","plan":"plus","subscription_status":"UNPAID"}"#;
    assert_eq!(
        app.event(deactivate).await,
        (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
    );
    assert_eq!(
        app.create_client("toto").await,
        (
            StatusCode::FORBIDDEN,
            r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#
                .to_owned()
        )
    );

    // An unsigned event is refused and changes nothing.
    let request = Request::post(format!("{}/webhooks/billing", app.base))
        .body(Full::new(Bytes::from_static(activate.as_bytes())))
        .unwrap();
    assert_eq!(
        app.call(request).await,
        (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"missing_signature"}"#.to_owned()
        )
    );
    assert_eq!(store.subscriber("toto").unwrap().plan_name(), None);
}

#[tokio::test]
async fn an_addon_event_raises_the_limit_of_the_next_request() {
    let store = MemoryStore::from_json(
        r#"{"plans": [{"name": "free", "clients": 1}],
            "addons": [{"name": "more-clients", "limits": {"clients": 10}}]}"#,
        r#"{"toto": {"plan": "free", "usage": {"clients": 1}}}"#,
    )
    .unwrap();
    let app = App::start(store.clone()).await;
    let denied = |maximum: u64| {
        format!(
            r#"{{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":{maximum},"usage":1}}"#
        )
    };
    assert_eq!(
        app.create_client("toto").await,
        (StatusCode::FORBIDDEN, denied(1))
    );

    let activate = r#"{"event_id":"evt-a1","event_name":"ADDON_ACTIVATE","user_id":"toto","addon":"more-clients","quantity":1}"#;
    assert_eq!(
        app.event(activate).await,
        (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
    );
    assert_eq!(
        app.create_client("toto").await,
        (StatusCode::OK, "created".to_owned())
    );

    let deactivate = r#"{"event_id":"evt-a2","event_name":"ADDON_DEACTIVATE","user_id":"toto","addon":"more-clients"}"#;
    assert_eq!(
        app.event(deactivate).await,
        (StatusCode::OK, r#"{"status":"applied"}"#.to_owned())
    );
    assert_eq!(
        app.create_client("toto").await,
        (StatusCode::FORBIDDEN, denied(1))
    );
}
