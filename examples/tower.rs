//! `PlanLimitLayer` in a plain `tower::ServiceBuilder` stack, without a server: requests run
//! through the stack and the outcomes print.
//!
//! ```sh
//! cargo run --example tower
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_plans::{Allowed, Catalog, MemoryStore, PlanLimitLayer, Subscriber, UserId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let catalog =
        Catalog::from_json(r#"[{"name": "free", "clients": 3}, {"name": "pro", "clients": 30}]"#)?;
    let store = MemoryStore::new(catalog);
    store.insert_user(
        "ann",
        Subscriber::from_json(r#"{"plan": "free", "clients": 2}"#)?,
    );
    store.insert_user(
        "max",
        Subscriber::from_json(r#"{"plan": "free", "clients": 3}"#)?,
    );

    let service = ServiceBuilder::new()
        // Stands in for real authentication: the user is whoever `x-user` names.
        .map_request(|mut req: Request<Full<Bytes>>| {
            let user = req
                .headers()
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(UserId::from);
            if let Some(user) = user {
                req.extensions_mut().insert(user);
            }
            req
        })
        .layer(PlanLimitLayer::builder(store).build()?)
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            let text = match req.extensions().get::<Allowed>() {
                Some(allowed) => format!(
                    "allowed on {} ({} {}, usage {})",
                    allowed.plan, allowed.action, allowed.resource, allowed.usage
                ),
                None => "not governed".to_owned(),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
        }));

    let requests = [
        (Method::POST, "/clients", Some("ann")),
        (Method::POST, "/clients", Some("max")),
        (Method::GET, "/clients/7", Some("max")),
        (Method::POST, "/clients", Some("nobody-we-know")),
        (Method::POST, "/clients", None),
        (Method::GET, "/health", None),
    ];
    for (method, path, user) in requests {
        let mut req = Request::builder().method(method.clone()).uri(path);
        if let Some(user) = user {
            req = req.header("x-user", user);
        }
        let res = service.clone().oneshot(req.body(Full::default())?).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "{method:6} {path:12} as {:16} -> {status} {}",
            user.unwrap_or("(no user)"),
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
