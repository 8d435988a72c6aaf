//! # Add-ons
//!
//! A customer on "free" buys a "10 more clients" pack for a month; a promotion grants pro exports
//! until Friday. Add-ons are such rights beside the plan: a user may hold several, each with its
//! own start, end and quantity.
//!
//! The catalog (in its object form) declares them under `addons`, with limits in every form a
//! plan's take:
//!
//! ```json
//! {
//!   "actions": ["export"],
//!   "plans": [
//!     {"name": "free", "limits": {"clients": 3, "reports": {"export": 0}}},
//!     {"name": "pro",  "limits": {"clients": 30, "reports": null}}
//!   ],
//!   "addons": [
//!     {"name": "more-clients", "limits": {"clients": 10}},
//!     {"name": "pro-exports",  "limits": {"reports": {"export": 50}}}
//!   ]
//! }
//! ```
//!
//! and a subscriber record grants them:
//!
//! ```json
//! {"plan": "free", "usage": {"clients": 5},
//!  "addons": [
//!    {"name": "more-clients", "starts": 1701388800000, "expires": 1704067200000, "quantity": 2},
//!    {"name": "pro-exports", "expires": 1702598400000}
//!  ]}
//! ```
//!
//! ## What a grant adds
//!
//! - A grant is active while `starts <= now < expires + grace period` (milliseconds since the
//!   Unix epoch; without `starts` it has always started, without `expires` it never ends). An
//!   inactive grant counts for nothing. `quantity` defaults to 1; 0 grants nothing.
//! - Each active grant adds its add-on's limits, times its quantity, to the plan's: the user
//!   above has 3 + 2 × 10 = 23 clients. An add-on adds only to the actions it sets
//!   (`{"clients": 10}` raises `create`; `patch` reads the add-on's `update` limit when it sets
//!   no `patch` limit, as for a plan). The sums saturate.
//! - Unlimited stays unlimited: an add-on raises nothing the plan leaves unlimited (a resource
//!   the plan does not name included), and `null` in an add-on makes the action unlimited. A
//!   blocked plan limit (`0`) is raised like any other, as `pro-exports` does on free.
//! - Add-ons apply on top of whichever plan applies: an active plan, a trial, its fallback or
//!   the default plan.
//! - An add-on's limit may be a [quota](super::quotas). The sum is a quota when either side is
//!   one, with the plan's period if it has one, else the add-on's: "50 exports a day" raises a
//!   blocked `0` to 50 a day, and "10 more" raises "20 a day" to 30 a day.
//! - Add-ons raise limits; they never change which count a request is compared with (a `PATCH`
//!   is compared with the updates or the patches as the plan alone says).
//!
//! A refusal still names the plan, with the combined maximum:
//! `{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":23,"usage":23}`.
//! [`Allowed::limit`](crate::Allowed::limit) is the combined limit, and
//! [counted usage](super::counting) reserves against it. [Entitlements](super::entitlements)
//! list each limit's sources: the plan, and each active add-on with its quantity.
//!
//! ## Without a plan
//!
//! A user without an active plan (and without a default plan) gets, for the resources their
//! active add-ons name, the add-ons' limits alone, read as a plan made of them: an action none
//! of them sets is unlimited. The decision names the first of these add-ons, in the record's
//! order, as its `plan`, in the state [`PlanState::Addons`](crate::decision::PlanState::Addons)
//! (`"addons"`), so that a front end can say which purchase a limit comes from, and
//! `"plan": null` keeps meaning "no plan". Every other resource is refused as it would be
//! without add-ons. A resource that only an add-on names is governed.
//!
//! ## Unknown add-ons
//!
//! A record is read without its catalog, so [`Subscriber::from_json`](crate::Subscriber::from_json)
//! accepts any add-on name. Where both are known, an unknown name is an error that names its path
//! (`users["john"].addons[1].name`): [`MemoryStore::from_json`](crate::MemoryStore::from_json)
//! and [`from_values`](crate::MemoryStore::from_values),
//! [`MemoryStore::grant_addon`](crate::MemoryStore::grant_addon), `RedisPlanStore::load_json`
//! (feature `redis`), and [`Subscriber::check_addons`](crate::Subscriber::check_addons) for your
//! own store. When a request is decided, a grant that the catalog does not know (after a catalog
//! change) is ignored and logged at warn level, as an unknown plan is.
//!
//! ## From Rust
//!
//! [`Addon`](crate::catalog::Addon) with [`CatalogBuilder::addon`](crate::catalog::CatalogBuilder::addon),
//! [`AddonGrant`](crate::subscriber::AddonGrant) with
//! [`Subscriber::with_addon`](crate::Subscriber::with_addon), and on a `MemoryStore`
//! [`grant_addon`](crate::MemoryStore::grant_addon) and
//! [`revoke_addon`](crate::MemoryStore::revoke_addon). With a
//! [user cache](super::configuration#the-user-cache-and-invalidation), call
//! [`Invalidator::user`](crate::Invalidator::user) after a change. The signed webhook receiver
//! applies `ADDON_ACTIVATE` and `ADDON_DEACTIVATE` events, and the Stripe receiver turns a
//! subscription's items into grants (see [Billing webhooks](super::webhooks)).
//!
//! ## Example
//!
//! ```
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use tower::ServiceExt;
//! use tower_plans::subscriber::AddonGrant;
//! use tower_plans::{MemoryStore, PlanLimitLayer, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::from_json(
//!     r#"{
//!         "plans": [{"name": "free", "limits": {"clients": 3}}],
//!         "addons": [{"name": "more-clients", "limits": {"clients": 10}}]
//!     }"#,
//!     r#"{
//!         "john": {"plan": "free", "usage": {"clients": 5},
//!                  "addons": [{"name": "more-clients", "expires": 1000000}]},
//!         "ann": {"usage": {"clients": 5},
//!                 "addons": [{"name": "more-clients", "quantity": 2}]}
//!     }"#,
//! )?;
//! let plans = PlanLimitLayer::builder(store.clone())
//!     .clock(|| 500_000) // before john's pack expires
//!     .build()?;
//! let app = Router::new()
//!     .route("/clients", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans);
//! let create = |user: &str| {
//!     let mut request = Request::post("/clients").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from(user));
//!     request
//! };
//!
//! // john: 3 on free plus 10 from the pack; he has 5.
//! assert_eq!(app.clone().oneshot(create("john")).await?.status(), StatusCode::CREATED);
//! // ann has no plan: her two packs alone allow 20 clients.
//! assert_eq!(app.clone().oneshot(create("ann")).await?.status(), StatusCode::CREATED);
//!
//! // A refund: the pack goes, and john is back to 3 clients.
//! assert_eq!(store.revoke_addon("john", "more-clients"), 1);
//! assert_eq!(app.clone().oneshot(create("john")).await?.status(), StatusCode::FORBIDDEN);
//!
//! // An add-on the catalog does not know is refused.
//! assert!(store.grant_addon("john", AddonGrant::new("more-client")).is_err());
//! # Ok(())
//! # }
//! ```
