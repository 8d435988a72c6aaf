//! `floor`: the least a plan check can do, as a reference for what `PlanLimitLayer` adds.
//!
//! A tower service in front of the same inner service as the layer, with data shaped like
//! `MemoryStore`'s: the users spread over 16 `RwLock`s of maps hashed with `foldhash`, the
//! plans' limits in a map. For each request it matches the path with `matchit` against each
//! resource's collection path; for a `POST` there it takes the user id from the extensions,
//! reads the user's record under its shard's read lock, looks up the plan's limit on the
//! resource and the user's count, and answers `403` (with an empty body) when the count has
//! reached the limit. Every other request goes straight to the inner service.
//!
//! It governs creates only, and does none of the rest of the layer's work: no catalog to keep
//! fresh, no path normalisation, no trials, expiry, add-ons, quotas or default plan, no
//! decision in the extensions, no logging and no JSON refusal. Its cost over the bare service is
//! what reading one user's record and comparing one count costs on the machine at hand.
//!
//! [`Plans::unlocked`] takes the records out of their locks, for good: a reference for what
//! the read lock costs (its word is written by every read, so two threads reading the same
//! shards pass its cache line between their cores).

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use futures::future::Either;
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};
use tower_plans::UserId;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How many locks the users are spread over, as in `MemoryStore`.
const SHARDS: usize = 16;

/// One user: the plan's name and the counts by resource.
struct Record {
    plan: Arc<str>,
    usage: Map<Arc<str>, u64>,
}

/// The routes, the plans' limits and the users.
pub struct Plans {
    routes: matchit::Router<usize>,
    resources: Vec<Arc<str>>,
    /// The limit of each plan on each resource; a resource a plan does not name is unlimited.
    limits: Map<Arc<str>, Map<Arc<str>, u64>>,
    shards: [RwLock<Map<Arc<str>, Record>>; SHARDS],
    /// The records without their locks, once [`Plans::unlocked`] took them out.
    unlocked: Option<Vec<Map<Arc<str>, Record>>>,
    hasher: foldhash::fast::RandomState,
}

impl Plans {
    /// `resources` under `base` (`{base}/{resource}`), and each plan's limits on them.
    pub fn new(base: &str, resources: &[&str], plans: &[(&str, &[(&str, u64)])]) -> Self {
        let mut routes = matchit::Router::new();
        for (index, resource) in resources.iter().enumerate() {
            routes
                .insert(format!("{base}/{resource}"), index)
                .expect("a floor route");
        }
        let limits = plans
            .iter()
            .map(|(plan, limits)| {
                let limits = limits
                    .iter()
                    .map(|(resource, limit)| (Arc::from(*resource), *limit))
                    .collect();
                (Arc::from(*plan), limits)
            })
            .collect();
        Self {
            routes,
            resources: resources.iter().map(|r| Arc::from(*r)).collect(),
            limits,
            shards: Default::default(),
            unlocked: None,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The shard that holds `user`.
    fn shard(&self, user: &str) -> usize {
        self.hasher.hash_one(user) as usize % SHARDS
    }

    /// Adds (or replaces) `user`, on `plan` with the counts `usage`.
    pub fn insert(&self, user: &str, plan: &str, usage: &[(&str, u64)]) {
        let record = Record {
            plan: Arc::from(plan),
            usage: usage
                .iter()
                .map(|(resource, count)| (Arc::from(*resource), *count))
                .collect(),
        };
        self.shards[self.shard(user)]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Arc::from(user), record);
    }

    /// The same plans and users, read without a lock from now on: [`insert`](Self::insert)
    /// no longer reaches them.
    pub fn unlocked(mut self) -> Self {
        let shards = std::mem::take(&mut self.shards);
        let maps = shards
            .into_iter()
            .map(|shard| shard.into_inner().unwrap_or_else(PoisonError::into_inner))
            .collect();
        self.unlocked = Some(maps);
        self
    }

    /// Whether `user` may create one more of `resource`: a known user whose plan's limit, if
    /// any, is above the count.
    fn allows(&self, user: &str, resource: &str) -> bool {
        let shard = self.shard(user);
        if let Some(unlocked) = &self.unlocked {
            return self.within_limit(unlocked[shard].get(user), resource);
        }
        let users = self.shards[shard]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.within_limit(users.get(user), resource)
    }

    /// Whether `record` is a user's whose plan's limit on `resource`, if any, is above the count.
    fn within_limit(&self, record: Option<&Record>, resource: &str) -> bool {
        let Some(record) = record else {
            return false;
        };
        let limit = self
            .limits
            .get(&record.plan)
            .and_then(|limits| limits.get(resource));
        let count = record.usage.get(resource).copied().unwrap_or(0);
        limit.is_none_or(|limit| count < *limit)
    }
}

/// The layer of [`Floor`].
#[derive(Clone)]
pub struct FloorLayer(Arc<Plans>);

impl FloorLayer {
    pub fn new(plans: Plans) -> Self {
        Self(Arc::new(plans))
    }
}

impl<S> Layer<S> for FloorLayer {
    type Service = Floor<S>;

    fn layer(&self, inner: S) -> Floor<S> {
        Floor {
            inner,
            plans: Arc::clone(&self.0),
        }
    }
}

/// The service (see the module docs).
#[derive(Clone)]
pub struct Floor<S> {
    inner: S,
    plans: Arc<Plans>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Floor<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<ResBody>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let plans = &*self.plans;
        let resource = match plans.routes.at(request.uri().path()) {
            Ok(matched) if request.method() == Method::POST => &plans.resources[*matched.value],
            _ => return Either::Right(self.inner.call(request)),
        };
        let status = match request.extensions().get::<UserId>() {
            None => StatusCode::UNAUTHORIZED,
            Some(user) if plans.allows(user.as_str(), resource) => {
                return Either::Right(self.inner.call(request));
            }
            Some(_) => StatusCode::FORBIDDEN,
        };
        let mut response = Response::new(ResBody::default());
        *response.status_mut() = status;
        Either::Left(ready(Ok(response)))
    }
}
