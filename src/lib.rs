//! Tower middleware that enforces subscription-plan limits.
//!
//! A SaaS backend sells plans: "free" keeps 3 clients, "pro" 30; a 14-day trial of "pro" falls
//! back to "free"; plans expire. `tower-plans` is one tower layer, placed after authentication,
//! that finds the user, maps the request's method and path to a resource and an action, loads the
//! plan catalog and the user's plan and usage from a [`PlanStore`], and answers `403` with a JSON
//! body when a limit is reached.

#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod body;
mod cache;
mod catalog;
mod decision;
mod error;
mod future;
mod layer;
mod response;
mod routes;
mod service;
mod store;
mod subscriber;
mod user;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use catalog::CatalogBuilder;
pub use catalog::{Action, Catalog, CatalogError, Limit, Plan, ResourceLimits, Trial};
pub use decision::{decide, Allowed, Decision, Denial, PlanState, Policy};
pub use error::ConfigError;
pub use routes::{CustomRoute, RouteConfig, RouteEntry, RouteMatch, RouteTable};
pub use store::{BoxError, LoadError, MemoryStore, PlanStore};
pub use subscriber::{Assignment, ResourceUsage, Subscriber, SubscriberError, Usage};
pub use user::{RequestHead, UserId};

pub use body::ResponseBody;
pub use cache::{Invalidator, UserCache};
pub use future::ResponseFuture;
pub use layer::{PlanLimitLayer, PlanLimitLayerBuilder};
pub use response::{JsonRejection, Rejection, RenderRejection};
pub use service::PlanLimit;
