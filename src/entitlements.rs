//! "What may this user do", as data: the effective plan, its state and expiry, and every limit
//! with its usage, remaining amount and reset.
//!
//! [`PlanLimitLayer::entitlements`](crate::PlanLimitLayer::entitlements) returns a user's
//! [`Entitlements`]; [`EntitlementsService`] answers them as JSON for the authenticated user of
//! a request, for a front end to show "3 of 10 clients used, resets on the 1st". Both read
//! through the layer's caches, with its store timeout and its clock, and count usage as the
//! layer does.
//!
//! # The JSON form
//!
//! ```json
//! {"user": "john", "plan": "free", "state": "active", "expires": null, "limits": [
//!   {"resource": "clients", "action": "create", "max": 3, "used": 2, "remaining": 1,
//!    "per": null, "resets": null, "sources": [{"plan": "free", "limit": 3}]},
//!   {"resource": "reports", "action": "create", "max": 2, "used": 3, "remaining": 0,
//!    "per": "month", "resets": 1796083200000, "overage": 5,
//!    "sources": [{"plan": "free", "limit": {"max": 2, "per": "month"}}]}
//! ], "credits": [
//!   {"pool": "ai", "max": 1000, "used": 35, "remaining": 965, "per": "month",
//!    "resets": 1796083200000,
//!    "grants": [{"id": "g1", "remaining": 500, "expires": 1827619200000}]}
//! ]}
//! ```
//!
//! `max` and `remaining` are `null` when the action is unlimited on the plan; `per` and
//! `resets` (milliseconds since the Unix epoch) are `null` unless the limit is a quota.
//! `overage` is how far past `max` a soft limit lets requests go (`null` without end); it is
//! left out for a hard limit. Past `max`, `used` counts the overage (`"used": 3` of 2 above).
//! `sources` lists where the limit comes from ([`Source`]): the plan, and each active add-on
//! that raises it, with its quantity. Each credit pool the user has some of is listed with its
//! allowance (`remaining` leaves the grants aside), for a soft pool its `overage` and what was
//! used of it past the allowance and the grants (`overage_used`), and the active grants in the
//! order they are spent.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use serde::ser::{Serialize, SerializeMap, Serializer};
use tower_service::Service;

use crate::catalog::{Action, Catalog, Limit, Overage, Period};
use crate::check::Shared;
use crate::count::{overage_counter, Tally};
use crate::decision::{
    active_grants, addon_sources, applies_until, plan_at, pool_at, terms, Pool, Refusal,
    State as Applied,
};
use crate::response::Rejection;
use crate::store::Counter;
use crate::user::{extract_user, UserId};

/// A user's standing with their plan, and every limit the catalog sets with their usage.
///
/// Serialises as the [JSON form](self#the-json-form).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entitlements {
    /// The user's id.
    pub user: UserId,
    /// The plan that applies (for [`Standing::Expired`], the plan that expired); `None` when
    /// the user has no plan.
    pub plan: Option<Arc<str>>,
    /// How the user stands with it.
    pub standing: Standing,
    /// When the plan stops applying, grace included, in milliseconds since the Unix epoch (for
    /// [`Standing::Expired`], when it did); `None` when it does not end.
    pub expires: Option<u64>,
    /// The limits, one per governed resource and action that some plan or add-on of the catalog
    /// sets: resources in name order, their REST actions in [`Action::REST`] order, then custom
    /// actions in name order. Each is the plan's limit raised by the active add-ons. Without a
    /// plan only the resources that active add-ons name are listed (empty without add-ons), since
    /// every other governed action is denied.
    pub limits: Vec<Entitlement>,
    /// The credit pools the user has some of (from the plan, an active add-on or an active
    /// grant), in the catalog's order of pools.
    pub credits: Vec<CreditPool>,
}

/// One credit pool of the user: the allowance, what was used of it, and the active grants.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreditPool {
    /// The pool's name.
    pub pool: Arc<str>,
    /// The allowance: the plan's (0 when the plan has no such pool), raised by the active
    /// add-ons.
    pub limit: Limit,
    /// What was used of the allowance (in the current period, for a renewing pool): with
    /// counted usage, the usage store's count, units held by requests in flight included;
    /// otherwise 0, since nothing counts it.
    pub used: u64,
    /// When a renewing pool's allowance starts again, in milliseconds since the Unix epoch.
    pub resets: Option<u64>,
    /// How far past the allowance and the grants the plan lets the pool go.
    pub overage: Overage,
    /// What was used of the overage (in the current period): units past the allowance and the
    /// grants.
    pub overage_used: u64,
    /// The user's active grants of the pool, in the order they are spent (the soonest to
    /// expire first).
    pub grants: Vec<GrantBalance>,
}

/// What is left of one grant of credits: `{"id","remaining","expires"}` in the JSON form.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrantBalance {
    /// The grant's id.
    pub id: Arc<str>,
    /// Its amount less what was spent of it (held units included).
    pub remaining: u64,
    /// When it expires, in milliseconds since the Unix epoch; `None` when it does not.
    pub expires: Option<u64>,
}

impl CreditPool {
    /// The allowance's maximum, `None` when unlimited.
    pub fn max(&self) -> Option<u64> {
        self.limit.maximum()
    }

    /// What is left of the allowance, grants aside: `max - used`, `None` when unlimited.
    pub fn remaining(&self) -> Option<u64> {
        self.max().map(|max| max.saturating_sub(self.used))
    }

    /// A renewing pool's period.
    pub fn per(&self) -> Option<Period> {
        self.limit.period()
    }
}

impl Serialize for CreditPool {
    /// `{"pool","max","used","remaining","per","resets","overage","overage_used","grants"}`,
    /// `overage` and `overage_used` only for a pool with an overage.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let soft = self.overage.is_soft();
        let mut map = serializer.serialize_map(Some(if soft { 9 } else { 7 }))?;
        map.serialize_entry("pool", &*self.pool)?;
        map.serialize_entry("max", &self.max())?;
        map.serialize_entry("used", &self.used)?;
        map.serialize_entry("remaining", &self.remaining())?;
        map.serialize_entry("per", &self.per())?;
        map.serialize_entry("resets", &self.resets)?;
        if soft {
            map.serialize_entry("overage", &self.overage)?;
            map.serialize_entry("overage_used", &self.overage_used)?;
        }
        map.serialize_entry("grants", &self.grants)?;
        map.end()
    }
}

impl Serialize for GrantBalance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &*self.id)?;
        map.serialize_entry("remaining", &self.remaining)?;
        map.serialize_entry("expires", &self.expires)?;
        map.end()
    }
}

/// How a user stands with their plan: the `state` of the [JSON form](self#the-json-form).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Standing {
    /// A regular plan that has not expired (`"active"`).
    Active,
    /// A free trial that has not expired (`"trial"`).
    Trial,
    /// A trial of `trial` that expired; the catalog's fallback plan applies (`"fallback"`).
    Fallback {
        /// The plan that was on trial.
        trial: Arc<str>,
    },
    /// No active plan; the layer's default plan applies (`"default"`).
    Default,
    /// No plan at all, or one the catalog does not know (`"none"`): every governed action is
    /// denied.
    None,
    /// The plan expired, and neither a fallback nor a default plan applies (`"expired"`).
    Expired,
}

/// One limit of the plan on one action of one resource, with the user's usage.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entitlement {
    /// The resource.
    pub resource: Arc<str>,
    /// The action.
    pub action: Action,
    /// The plan's limit on it.
    pub limit: Limit,
    /// The usage counted against the limit: with counted usage, the usage store's count (units
    /// held by requests in flight included), otherwise the record's; for a quota, in the
    /// current period.
    pub used: u64,
    /// When a quota's count resets, in milliseconds since the Unix epoch.
    pub resets: Option<u64>,
    /// How far past the limit the plan lets requests go: past `max`, `used` counts the
    /// overage.
    pub overage: Overage,
    /// Where the limit comes from: the plan, then the active add-ons that raise it, in the
    /// order of the user's grants. A finite limit is the sum of its sources (see
    /// [`Source`]); an add-on on an unlimited plan limit is not listed, since it adds nothing.
    pub sources: Vec<Source>,
}

/// Where a limit comes from: `{"plan": "free", "limit": 3}` or `{"addon": "more-clients",
/// "limit": 10, "quantity": 2}` in the JSON form (`limit` as the catalog writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The effective plan's own limit.
    Plan {
        /// The plan.
        name: Arc<str>,
        /// Its limit on the action.
        limit: Limit,
    },
    /// An active add-on: `quantity` units of `limit` each.
    Addon {
        /// The add-on.
        name: Arc<str>,
        /// What one unit adds.
        limit: Limit,
        /// How many units the user was granted.
        quantity: u64,
    },
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Source::Plan { name, limit } => {
                map.serialize_entry("plan", &**name)?;
                map.serialize_entry("limit", limit)?;
            }
            Source::Addon {
                name,
                limit,
                quantity,
            } => {
                map.serialize_entry("addon", &**name)?;
                map.serialize_entry("limit", limit)?;
                map.serialize_entry("quantity", quantity)?;
            }
        }
        map.end()
    }
}

impl Entitlement {
    /// The maximum, `None` when unlimited.
    pub fn max(&self) -> Option<u64> {
        self.limit.maximum()
    }

    /// What is left: `max - used`, `None` when unlimited.
    pub fn remaining(&self) -> Option<u64> {
        self.max().map(|max| max.saturating_sub(self.used))
    }

    /// A quota's reset period.
    pub fn per(&self) -> Option<Period> {
        self.limit.period()
    }
}

impl Standing {
    /// The state's name in the JSON form: `"active"`, `"trial"`, `"fallback"`, `"default"`,
    /// `"none"` or `"expired"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Trial => "trial",
            Standing::Fallback { .. } => "fallback",
            Standing::Default => "default",
            Standing::None => "none",
            Standing::Expired => "expired",
        }
    }
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Standing {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for Entitlements {
    /// The [JSON form](self#the-json-form).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("user", self.user.as_str())?;
        map.serialize_entry("plan", &self.plan.as_deref())?;
        map.serialize_entry("state", &self.standing)?;
        map.serialize_entry("expires", &self.expires)?;
        map.serialize_entry("limits", &self.limits)?;
        map.serialize_entry("credits", &self.credits)?;
        map.end()
    }
}

impl Serialize for Entitlement {
    /// `{"resource","action","max","used","remaining","per","resets","overage","sources"}`,
    /// `overage` only for a soft limit.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let soft = self.overage.is_soft();
        let mut map = serializer.serialize_map(Some(if soft { 9 } else { 8 }))?;
        map.serialize_entry("resource", &*self.resource)?;
        map.serialize_entry("action", &self.action)?;
        map.serialize_entry("max", &self.max())?;
        map.serialize_entry("used", &self.used)?;
        map.serialize_entry("remaining", &self.remaining())?;
        map.serialize_entry("per", &self.per())?;
        map.serialize_entry("resets", &self.resets)?;
        if soft {
            map.serialize_entry("overage", &self.overage)?;
        }
        map.serialize_entry("sources", &self.sources)?;
        map.end()
    }
}

/// The entitlements could not be read: the plan store or the usage store failed or timed out
/// (the error itself is logged, never returned, as for a request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unavailable;

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the plan store or the usage store is unavailable")
    }
}

impl std::error::Error for Unavailable {}

/// Reads `user`'s entitlements through the layer's state.
pub(crate) async fn read(shared: &Arc<Shared>, user: UserId) -> Result<Entitlements, Unavailable> {
    let loaded = shared.catalog().await.ok_or(Unavailable)?;
    let record = shared.record(&user).await.ok_or(Unavailable)?;
    let catalog = &*loaded.catalog;
    let subscriber = record.as_deref();
    let now_ms = shared.now_ms();
    let policy = &shared.policy;
    let (plan, standing, expires) = match plan_at(catalog, subscriber, now_ms, policy) {
        Ok((plan, state)) => {
            let standing = match state {
                Applied::Trial => Standing::Trial,
                Applied::Fallback(trial) => Standing::Fallback {
                    trial: Arc::clone(trial),
                },
                Applied::Default => Standing::Default,
                // `plan_at` answers a plan's state; `Addons` is the state of a limit that no
                // plan sets, which only `terms` answers.
                Applied::Active | Applied::Addons => Standing::Active,
            };
            let expires = applies_until(catalog, subscriber, state, policy);
            (Some(plan), standing, expires)
        }
        Err(Refusal::Expired { plan, date }) => {
            let expired = Entitlements {
                user,
                plan: Some(Arc::clone(plan)),
                standing: Standing::Expired,
                expires: Some(date),
                limits: Vec::new(),
                credits: Vec::new(),
            };
            return limits(shared, expired, catalog, subscriber, None, now_ms).await;
        }
        Err(_) => (None, Standing::None, None),
    };
    let entitlements = Entitlements {
        user,
        plan: plan.map(|plan| Arc::clone(plan.name_arc())),
        standing,
        expires,
        limits: Vec::new(),
        credits: Vec::new(),
    };
    limits(shared, entitlements, catalog, subscriber, plan, now_ms).await
}

/// Fills in the limits of `entitlements`: for every governed resource and action some plan or
/// add-on limits, what [`terms`] decides for it (the plan's limit raised by the active add-ons,
/// or the add-ons' alone without a plan), the usage and the sources. An action that nothing
/// applies to (no plan, no add-on naming it) is left out.
async fn limits(
    shared: &Shared,
    mut entitlements: Entitlements,
    catalog: &Catalog,
    subscriber: Option<&crate::subscriber::Subscriber>,
    plan: Option<&crate::catalog::Plan>,
    now_ms: u64,
) -> Result<Entitlements, Unavailable> {
    let usage = subscriber.map(|s| &s.usage);
    let user = entitlements.user.clone();
    for (resource, action) in limited(catalog) {
        let Ok(terms) = terms(
            catalog,
            subscriber,
            || now_ms,
            &shared.policy,
            resource,
            &action,
        ) else {
            continue;
        };
        let tally = shared.counting.as_ref().and_then(|counting| {
            Tally::of(&terms, subscriber, now_ms, user.as_arc(), resource, &action)
                .map(|tally| (counting, tally))
        });
        let used = match tally {
            Some((counting, tally)) => match counting.usage(&tally).await {
                Ok(used) => used,
                Err(error) => {
                    tracing::warn!(%resource, %error, "usage store failed to read a count");
                    return Err(Unavailable);
                }
            },
            None => terms.usage(usage, resource, &action),
        };
        let mut sources = Vec::new();
        let plan_limit = plan.map(|plan| plan.limit(resource, &action));
        if let Some((plan, limit)) = plan.zip(plan_limit) {
            sources.push(Source::Plan {
                name: Arc::clone(plan.name_arc()),
                limit,
            });
        }
        if plan_limit != Some(Limit::Unlimited) {
            let addons = addon_sources(
                catalog,
                subscriber,
                now_ms,
                &shared.policy,
                resource,
                &action,
            );
            sources.extend(
                addons
                    .into_iter()
                    .map(|(name, limit, quantity)| Source::Addon {
                        name: Arc::clone(name),
                        limit,
                        quantity,
                    }),
            );
        }
        entitlements.limits.push(Entitlement {
            resource: Arc::clone(resource),
            action,
            limit: terms.limit,
            used,
            resets: terms.window.map(|window| window.end()),
            overage: terms.overage,
            sources,
        });
    }
    for name in catalog.pools() {
        let (pool, given) = pool_at(catalog, subscriber, now_ms, &shared.policy, name);
        if !given {
            continue;
        }
        let credits = credit_pool(shared, &user, subscriber, pool, now_ms).await?;
        entitlements.credits.push(credits);
    }
    Ok(entitlements)
}

/// The balance of `pool` for `user`: what its allowance's counter and each active grant's
/// counter say (nothing is used without counted usage).
async fn credit_pool(
    shared: &Shared,
    user: &UserId,
    subscriber: Option<&crate::subscriber::Subscriber>,
    pool: Pool<'_>,
    now_ms: u64,
) -> Result<CreditPool, Unavailable> {
    let counting = shared.counting.as_deref();
    let read = |counter: Counter| async move {
        let Some(counting) = counting else {
            return Ok(0);
        };
        match counting.count(&counter).await {
            Ok(count) => Ok(count.map_or(0, |count| count.total())),
            Err(error) => {
                tracing::warn!(pool = %counter.resource, %error, "usage store failed to read a count");
                Err(Unavailable)
            }
        }
    };
    let mut allowance = Counter::credits(Arc::clone(user.as_arc()), pool.name);
    allowance.period = pool.window;
    let used = read(allowance).await?;
    let overage_used = if pool.overage.is_soft() {
        let mut counter = overage_counter(user.as_arc(), pool.name);
        counter.period = pool.window;
        read(counter).await?
    } else {
        0
    };
    let mut grants = Vec::new();
    for grant in active_grants(subscriber, pool.name, now_ms) {
        let counter = Counter::grant(Arc::clone(user.as_arc()), pool.name, Arc::clone(&grant.id));
        let spent = read(counter).await?;
        grants.push(GrantBalance {
            id: Arc::clone(&grant.id),
            remaining: grant.amount.saturating_sub(spent),
            expires: grant.expires,
        });
    }
    Ok(CreditPool {
        pool: Arc::clone(pool.name),
        limit: pool.limit,
        used,
        resets: pool.window.map(|window| window.end()),
        overage: pool.overage,
        overage_used,
        grants,
    })
}

/// Every governed resource with each action that some plan or add-on of the catalog sets a
/// limit on.
fn limited(catalog: &Catalog) -> Vec<(&Arc<str>, Action)> {
    let mut pairs = Vec::new();
    for resource in catalog.resources() {
        let mut actions: Vec<Action> = Vec::new();
        let plans = catalog.plans().filter_map(|plan| plan.resource(resource));
        let addons = catalog
            .addons()
            .filter_map(|addon| addon.resource(resource));
        for limits in plans.chain(addons) {
            for (action, _) in limits.iter() {
                if !actions.contains(&action) {
                    actions.push(action);
                }
            }
        }
        actions.sort_by_key(|action| (action.slot().unwrap_or(usize::MAX), action.clone()));
        pairs.extend(actions.into_iter().map(|action| (resource, action)));
    }
    pairs
}

/// A [`Service`] that answers a request with its user's [`Entitlements`] as JSON; made by
/// [`PlanLimitLayer::entitlements_service`](crate::PlanLimitLayer::entitlements_service).
///
/// It finds the user as the layer does (its
/// [`extract_user`](crate::PlanLimitLayerBuilder::extract_user) function, or the [`UserId`] in
/// the request extensions) and answers:
///
/// * `200` with the [JSON form](self#the-json-form) (`content-type: application/json`);
/// * `401` without a user, and `503` when a store fails or times out, rendered by the layer's
///   [`RenderRejection`](crate::RenderRejection) with the [`Rejection`] in the response
///   extensions, as the layer's own refusals. There is nothing to let through here, so a layer
///   that [fails open](crate::PlanLimitLayerBuilder::fail_open) still answers `503`.
///
/// It answers every request it is given, whatever the method and path: route it (for example
/// `GET /entitlements`) with the router.
#[derive(Clone)]
pub struct EntitlementsService {
    shared: Arc<Shared>,
}

impl EntitlementsService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl fmt::Debug for EntitlementsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntitlementsService")
            .finish_non_exhaustive()
    }
}

/// The response future of [`EntitlementsService`].
pub type EntitlementsFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static>>;

impl<B> Service<Request<B>> for EntitlementsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = EntitlementsFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let user = extract_user(self.shared.extractor.as_deref(), &mut request);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let Some(user) = user else {
                return Ok(shared.rendered(Rejection::Unauthenticated));
            };
            match read(&shared, user).await {
                Ok(entitlements) => Ok(json(&entitlements)),
                Err(Unavailable) => Ok(shared.rendered(Rejection::StoreUnavailable)),
            }
        })
    }
}

/// A `200` with `entitlements` as JSON.
fn json(entitlements: &Entitlements) -> Response<Full<Bytes>> {
    let (status, body) = match serde_json::to_vec(entitlements) {
        Ok(body) => (StatusCode::OK, body),
        // Serialising strings and numbers into memory does not fail; should it ever, say so.
        Err(error) => {
            tracing::error!(%error, "could not serialize entitlements");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"reason":"entitlements_unavailable"}"#.to_vec(),
            )
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_lists_every_action_some_plan_sets_in_order() {
        let catalog = Catalog::from_json(
            r#"{"actions": ["export"], "plans": [
                {"name": "free", "limits": {"clients": 3, "reports": {"export": 0, "show": 10}}},
                {"name": "pro", "limits": {"clients": {"update": 100, "create": null}, "notes": null}}
            ]}"#,
        )
        .unwrap();
        let pairs: Vec<String> = limited(&catalog)
            .into_iter()
            .map(|(resource, action)| format!("{resource}.{action}"))
            .collect();
        assert_eq!(
            pairs,
            [
                "clients.create",
                "clients.update",
                "reports.show",
                "reports.export"
            ]
        );
    }

    #[test]
    fn serialises_in_the_documented_form() {
        let entitlements = Entitlements {
            user: UserId::new("john"),
            plan: Some(Arc::from("free")),
            standing: Standing::Fallback {
                trial: Arc::from("pro"),
            },
            expires: None,
            limits: vec![
                Entitlement {
                    resource: Arc::from("clients"),
                    action: Action::Create,
                    limit: Limit::Unlimited,
                    used: 4,
                    resets: None,
                    overage: Overage::Off,
                    sources: vec![Source::Plan {
                        name: Arc::from("free"),
                        limit: Limit::Unlimited,
                    }],
                },
                Entitlement {
                    resource: Arc::from("reports"),
                    action: Action::Create,
                    limit: Limit::per(12, Period::Month),
                    used: 3,
                    resets: Some(1_796_083_200_000),
                    overage: Overage::Off,
                    sources: vec![
                        Source::Plan {
                            name: Arc::from("free"),
                            limit: Limit::per(2, Period::Month),
                        },
                        Source::Addon {
                            name: Arc::from("more-reports"),
                            limit: Limit::Limited(5),
                            quantity: 2,
                        },
                    ],
                },
            ],
            credits: vec![CreditPool {
                pool: Arc::from("ai"),
                limit: Limit::per(1000, Period::Month),
                used: 35,
                resets: Some(1_796_083_200_000),
                overage: Overage::Off,
                overage_used: 0,
                grants: vec![GrantBalance {
                    id: Arc::from("g1"),
                    remaining: 500,
                    expires: Some(1_827_619_200_000),
                }],
            }],
        };
        assert_eq!(
            serde_json::to_string(&entitlements).unwrap(),
            concat!(
                r#"{"user":"john","plan":"free","state":"fallback","expires":null,"limits":["#,
                r#"{"resource":"clients","action":"create","max":null,"used":4,"remaining":null,"per":null,"resets":null,"#,
                r#""sources":[{"plan":"free","limit":null}]},"#,
                r#"{"resource":"reports","action":"create","max":12,"used":3,"remaining":9,"per":"month","resets":1796083200000,"#,
                r#""sources":[{"plan":"free","limit":{"max":2,"per":"month"}},{"addon":"more-reports","limit":5,"quantity":2}]}],"#,
                r#""credits":[{"pool":"ai","max":1000,"used":35,"remaining":965,"per":"month","resets":1796083200000,"#,
                r#""grants":[{"id":"g1","remaining":500,"expires":1827619200000}]}]}"#
            )
        );
        let none = Entitlements {
            plan: None,
            standing: Standing::None,
            limits: Vec::new(),
            credits: Vec::new(),
            ..entitlements
        };
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"user":"john","plan":null,"state":"none","expires":null,"limits":[],"credits":[]}"#
        );
        for (standing, name) in [
            (Standing::Active, "active"),
            (Standing::Trial, "trial"),
            (Standing::Default, "default"),
            (Standing::Expired, "expired"),
        ] {
            assert_eq!(standing.to_string(), name);
        }
    }
}
