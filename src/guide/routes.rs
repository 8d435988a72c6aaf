//! # Paths and actions
//!
//! The layer governs a request when its method and path name a resource of the catalog and an
//! action. Every other request passes straight through: the layer neither asks who the user is
//! nor calls the store.
//!
//! ## REST routes
//!
//! Each resource the catalog governs has a collection path `P`, `base/resource` unless
//! [`path`](crate::PlanLimitLayerBuilder::path) says otherwise, and an item path `P/{id}`:
//!
//! | method      | `P`    | `P/{id}` |
//! |-------------|--------|----------|
//! | `GET`, `HEAD` | index  | show     |
//! | `POST`      | create | –        |
//! | `PUT`       | –      | update   |
//! | `PATCH`     | –      | patch    |
//! | `DELETE`    | –      | delete   |
//!
//! - [`base`](crate::PlanLimitLayerBuilder::base) is `/` by default; `api`, `/api/` and `//api`
//!   all mean `/api`.
//! - `path("clients", "/my/clients")` is absolute; a template without a leading slash hangs
//!   below the base. Templates name their parameters `{param}` or `:param`, one whole segment
//!   each: `path("projects", "/users/{uid}/projects")`.
//! - [`route`](crate::PlanLimitLayerBuilder::route) adds a custom route:
//!   `route(Method::POST, "/reports/{id}/export", "reports", Action::custom("export"))` maps that
//!   request to the `export` action of `reports`, which the catalog limits once it declares
//!   `"actions": ["export"]`. Custom routes win over the generated ones.
//! - A bad or conflicting template is a [`ConfigError`](crate::ConfigError) from
//!   [`build`](crate::PlanLimitLayerBuilder::build), never a panic while serving.
//!
//! ## No spelling gets past the layer
//!
//! The layer guards money, so any spelling of a path that an application could route to a
//! governed handler is governed:
//!
//! - only the path counts: the query string never changes the outcome;
//! - the path is percent-decoded (`/cl%69ents` is `/clients`), repeated slashes collapse and a
//!   trailing slash is ignored (`//clients//5/` is the item `5`);
//! - matching ignores case, unless [`case_sensitive`](crate::PlanLimitLayerBuilder::case_sensitive)
//!   is set;
//! - the path is first read as axum's and hyper's routers read it (`/clients/..` is the item
//!   `..`); only when that reading is not governed are readings with dot segments resolved or
//!   `%2F` taken as a separator tried, so that a proxy that normalises paths opens no gap
//!   either, and no request is moved from one governed route to another;
//! - nothing panics, whatever the path.
//!
//! [`RouteTable`](crate::routes::RouteTable) gives the rules in full. Governing a path that your
//! application would answer with 404 is harmless; the reverse would be a bypass, and the fuzz
//! targets (see [Fuzzing](super::fuzzing)) look for one.
//!
//! ## Where the layer goes
//!
//! The layer reads who the user is from the request extensions: a [`UserId`](crate::UserId) that
//! your authentication inserts, or whatever
//! [`extract_user`](crate::PlanLimitLayerBuilder::extract_user) finds in the request head. So
//! authentication must run first. A governed request without a user is answered
//! `401 {"reason":"unauthenticated"}`.
//!
//! - In axum, add the plan layer with `route_layer` and the authentication with `layer` after
//!   it: `.route_layer(plans).layer(auth)`. `route_layer` runs only for requests that matched a
//!   route, so a path your application does not serve stays a 404 instead of being answered 401
//!   or 403 first.
//! - In a `tower::ServiceBuilder`, list the authentication before the plan layer.
//! - Paths are matched as the layer sees them. Inside `Router::nest("/api", ...)` the nested
//!   router sees paths without `/api`, so a plan layer there needs `base("/")`, while one on the
//!   outer router needs `base("/api")`. The outermost router, where paths are the ones clients
//!   send, is the safest place.
//!
//! ## Example
//!
//! A stack that serves every path, as a catch-all handler or a proxy would:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Method, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_plans::{Action, MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"{"actions": ["export"],
//!         "plans": [{"name": "free", "clients": 3, "reports": {"export": 0}}]}"#,
//!     r#"{"john": {"plan": "free", "usage": {"clients": 3}}}"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store)
//!     .base("/api")
//!     .route(Method::POST, "reports/{id}/export", "reports", Action::custom("export"))
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(plans)
//!     .service(service_fn(|_: Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
//!     }));
//! let request = |method: Method, path: &str, user: Option<&str>| {
//!     let mut request = Request::builder().method(method).uri(path).body(Full::default()).unwrap();
//!     if let Some(user) = user {
//!         request.extensions_mut().insert(UserId::from(user));
//!     }
//!     request
//! };
//!
//! // john has his 3 clients: every spelling of the create is refused.
//! for path in ["/api/clients", "/API//clients/", "/api/cl%69ents?free=1", "/api/x/../clients"] {
//!     let response = service.clone().oneshot(request(Method::POST, path, Some("john"))).await?;
//!     assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
//! }
//! // Listing them is not limited.
//! let response = service.clone().oneshot(request(Method::GET, "/api/clients", Some("john"))).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! // The custom route: free blocks exports.
//! let response = service.clone().oneshot(request(Method::POST, "/api/reports/7/export", Some("john"))).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//!
//! // A governed request without a user, and one outside the base.
//! let response = service.clone().oneshot(request(Method::GET, "/api/clients", None)).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! let response = service.clone().oneshot(request(Method::GET, "/health", None)).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
