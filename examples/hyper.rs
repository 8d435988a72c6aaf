//! `PlanLimitLayer` around a plain hyper 1 service, served on loopback with hyper-util.
//!
//! ```sh
//! cargo run --example hyper
//! curl -i -X POST -H 'x-user: ann' http://127.0.0.1:3001/clients   # 200, then 403 on the next
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{service_fn, ServiceBuilder};
use tower_plans::{Catalog, MemoryStore, PlanLimitLayer, Subscriber, UserId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new(Catalog::from_json(r#"[{"name": "free", "clients": 1}]"#)?);
    store.insert_user("ann", Subscriber::from_json(r#"{"plan": "free"}"#)?);

    let service = ServiceBuilder::new()
        // Stands in for real authentication: the user is whoever `x-user` names.
        .map_request(|mut req: Request<Incoming>| {
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
        .layer(PlanLimitLayer::builder(store.clone()).build()?)
        .service(service_fn(move |req: Request<Incoming>| {
            let store = store.clone();
            async move {
                // A real handler would create the client; here we only count it.
                if let Some(user) = req.extensions().get::<UserId>() {
                    if req.method() == http::Method::POST {
                        store.add_usage(user.as_str(), "clients", 1);
                    }
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
            }
        }));

    let listener = TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("try: curl -i -X POST -H 'x-user: ann' http://127.0.0.1:3001/clients (twice)");
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
