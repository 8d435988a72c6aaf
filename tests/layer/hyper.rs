//! The layer in a hyper 1 server over a real loopback connection, driven by a hyper-util client.

use std::convert::Infallible;
use std::net::SocketAddr;

use crate::support::*;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_plans::{PlanLimitLayer, UserId};

/// Serves the layer over an echo handler on a loopback port; the `x-user` header is the user.
async fn serve(layer: PlanLimitLayer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .map_request(|mut request: Request<Incoming>| {
            let user = request
                .headers()
                .get("x-user")
                .and_then(|value| value.to_str().ok())
                .map(UserId::from);
            if let Some(user) = user {
                request.extensions_mut().insert(user);
            }
            request
        })
        .layer(layer)
        .service_fn(|request: Request<Incoming>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(describe(&request)))))
        });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_hyper_server_enforces_plans_over_loopback() {
    let store = CountingStore::new();
    let address = serve(builder(&store).build().unwrap()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let send = |method: &str, path: &str, user: Option<&str>| {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{address}{path}"));
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        client.request(request.body(Full::new(Bytes::new())).unwrap())
    };

    let response = send("POST", "/clients", Some("ann")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        "free clients create usage=1 remaining=Some(2)"
    );

    let response = send("POST", "/clients", Some("bob")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        text(response).await,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
    );

    let response = send("POST", "/clients", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(response).await, r#"{"reason":"unauthenticated"}"#);

    let response = send("GET", "/health", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "unchecked");

    assert_eq!(store.plans_calls(), 1);
    assert_eq!(store.user_calls(), 2);
}
