//! What the full-call benchmarks share: the catalog, stores of N subscribers, layers over them,
//! the bare inner service and the requests.
//!
//! Subscriber `u{i}` is on the `free` plan (3 clients). Even-numbered subscribers have 1 client,
//! so creating one more is allowed; odd-numbered ones have 3, so it is denied.

#![allow(dead_code)]

pub mod floor;

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use tower::service_fn;
use tower::util::ServiceFn;
use tower::{Layer, Service, ServiceExt};
use tower_plans::{
    subscriber::Assignment, Catalog, MemoryStore, PlanLimit, PlanLimitLayer, Subscriber, UserCache,
    UserId,
};

/// The bare inner service's function.
pub type BareFn = fn(Request<()>) -> Ready<Result<Response<Empty<Bytes>>, Infallible>>;

/// The bare inner service: a `service_fn`, always ready, answering an empty `200` at once.
pub type Bare = ServiceFn<BareFn>;

fn empty_ok(_: Request<()>) -> Ready<Result<Response<Empty<Bytes>>, Infallible>> {
    ready(Ok(Response::new(Empty::new())))
}

/// The bare inner service.
pub fn bare() -> Bare {
    service_fn(empty_ok as BareFn)
}

/// The layered service under measurement.
pub type Governed = PlanLimit<Bare>;

/// The clients a `metered` subscriber may keep: finite, so that a counted create checks the
/// limit, and far more than any benchmark run creates.
pub const METERED_CLIENTS: u64 = 1 << 40;

/// The catalog: `free` keeps 3 clients, `pro` 30, `metered` [`METERED_CLIENTS`]; an image
/// costs 5 credits of the `ai` pool, which only `metered` has ([`METERED_CLIENTS`] of them,
/// beside as many images of its own limit).
pub fn catalog() -> Catalog {
    Catalog::from_json(&format!(
        r#"{{
            "trial": {{"duration": 14, "fallback": "free"}},
            "meters": {{"images": {{"create": {{"cost": 5, "credits": "ai"}}}}}},
            "plans": [
                {{"name": "free", "limits": {{"clients": 3, "groups": {{"index": null, "create": 2}}}}}},
                {{"name": "pro", "limits": {{"clients": 30, "groups": null}}}},
                {{"name": "metered", "limits": {{"clients": {METERED_CLIENTS}, "images": {METERED_CLIENTS}}},
                  "credits": {{"ai": {METERED_CLIENTS}}}}}
            ]
        }}"#
    ))
    .expect("the bench catalog parses")
}

/// The record of subscriber `i`.
pub fn subscriber(i: usize) -> Subscriber {
    let clients = if i.is_multiple_of(2) { 1 } else { 3 };
    Subscriber::new()
        .with_name(format!("u{i}"))
        .with_plan(Assignment::new("free"))
        .with_usage("clients", clients)
}

/// The id of subscriber `i`, freshly allocated.
pub fn user_id(i: usize) -> UserId {
    UserId::new(format!("u{i}"))
}

/// A store holding subscribers `u0` to `u{n-1}`.
pub fn store(n: usize) -> MemoryStore {
    let store = MemoryStore::new(catalog());
    for i in 0..n {
        store.insert_user(format!("u{i}"), subscriber(i));
    }
    store
}

/// A store holding subscribers `u0` to `u{n-1}`, the even-numbered ones on the `metered` plan
/// (1 client of [`METERED_CLIENTS`]): their creates stay allowed however many are counted.
pub fn metered_store(n: usize) -> MemoryStore {
    let store = store(n);
    for i in (0..n).step_by(2) {
        store.set_plan(format!("u{i}"), Some(Assignment::new("metered")));
    }
    store
}

/// The [`floor`] of a store of `n` subscribers as [`store`] holds them (`free`: 3 clients), or
/// as [`metered_store`] does (the even-numbered ones `metered`) when `metered`.
pub fn floor(n: usize, metered: bool) -> floor::FloorLayer {
    floor::FloorLayer::new(floor_plans(n, metered))
}

/// The same as [`floor`], its records read without a lock ([`floor::Plans::unlocked`]).
pub fn floor_unlocked(n: usize, metered: bool) -> floor::FloorLayer {
    floor::FloorLayer::new(floor_plans(n, metered).unlocked())
}

fn floor_plans(n: usize, metered: bool) -> floor::Plans {
    let plans = floor::Plans::new(
        "/api",
        &["clients", "groups"],
        &[
            ("free", &[("clients", 3), ("groups", 2)]),
            ("pro", &[("clients", 30)]),
            ("metered", &[("clients", METERED_CLIENTS)]),
        ],
    );
    for i in 0..n {
        let clients = if i % 2 == 0 { 1 } else { 3 };
        let plan = if metered && i % 2 == 0 {
            "metered"
        } else {
            "free"
        };
        plans.insert(&format!("u{i}"), plan, &[("clients", clients)]);
    }
    plans
}

/// The user cache for `n` subscribers: an hour to live, room for all of them and a quarter more.
pub fn user_cache(n: usize) -> UserCache {
    UserCache::time_to_live(Duration::from_secs(3600), user_cache_capacity(n))
}

/// Room for `n` subscribers and a quarter more.
pub fn user_cache_capacity(n: usize) -> u64 {
    (n + n / 4 + 16) as u64
}

/// How a measured layer is set up: with or without the user cache, and with or without the
/// `Allowed` request extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub cached: bool,
    pub extension: bool,
}

impl Setup {
    pub const UNCACHED: Setup = Setup {
        cached: false,
        extension: true,
    };
    pub const CACHED: Setup = Setup {
        cached: true,
        extension: true,
    };
    /// The defaults, and the user cache: what every case is measured with.
    pub const BOTH: [Setup; 2] = [Setup::UNCACHED, Setup::CACHED];
    /// Also without the `Allowed` extension: what an allowed request is measured with.
    pub const ALL: [Setup; 4] = [
        Setup::UNCACHED,
        Setup::CACHED,
        Setup {
            cached: false,
            extension: false,
        },
        Setup {
            cached: true,
            extension: false,
        },
    ];

    /// The setups a case is measured with.
    pub fn of(case: Case) -> &'static [Setup] {
        match case {
            Case::Allowed => &Setup::ALL,
            Case::Denied | Case::Ungoverned | Case::Metered => &Setup::BOTH,
        }
    }

    /// `uncached`, `cached`, `uncached_noext`, `cached_noext`.
    pub fn name(self) -> &'static str {
        match (self.cached, self.extension) {
            (false, true) => "uncached",
            (true, true) => "cached",
            (false, false) => "uncached_noext",
            (true, false) => "cached_noext",
        }
    }
}

/// A layer over `store` (base `/api`) set up as `setup`, its user cache sized for `n`
/// subscribers.
pub fn layer(store: &MemoryStore, n: usize, setup: Setup) -> PlanLimitLayer {
    let builder = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .allowed_extension(setup.extension);
    let builder = if setup.cached {
        builder.user_cache(user_cache(n))
    } else {
        builder
    };
    builder.build().expect("the bench layer builds")
}

/// A layer like [`layer`] that also counts usage in `store` itself: an allowed create reserves
/// one unit before the inner service and commits it after the `200`.
pub fn counted_layer(store: &MemoryStore, n: usize, setup: Setup) -> PlanLimitLayer {
    let builder = PlanLimitLayer::builder(store.clone())
        .base("/api")
        .allowed_extension(setup.extension)
        .count_usage(store.clone());
    let builder = if setup.cached {
        builder.user_cache(user_cache(n))
    } else {
        builder
    };
    builder.build().expect("the bench layer builds")
}

/// The requests of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `POST /api/clients` by a subscriber with 1 client of 3.
    Allowed,
    /// `POST /api/clients` by a subscriber with 3 clients of 3: a JSON `403`.
    Denied,
    /// `GET /api/health`: not governed.
    Ungoverned,
    /// `POST /api/images` by a subscriber of [`metered_store`] on the `metered` plan: 5 credits
    /// of the `ai` pool and one image of the action's own limit, both reserved and committed
    /// when the layer counts usage.
    Metered,
}

impl Case {
    pub const ALL: [Case; 3] = [Case::Allowed, Case::Denied, Case::Ungoverned];

    pub fn name(self) -> &'static str {
        match self {
            Case::Allowed => "allowed",
            Case::Denied => "denied",
            Case::Ungoverned => "ungoverned",
            Case::Metered => "metered",
        }
    }

    pub fn expected_status(self) -> StatusCode {
        match self {
            Case::Denied => StatusCode::FORBIDDEN,
            Case::Allowed | Case::Ungoverned | Case::Metered => StatusCode::OK,
        }
    }
}

/// How many requests a request sequence holds before it repeats (a power of two).
pub const SEQUENCE: usize = 1 << 16;

/// How many distinct subscribers the `active` request sequences name.
pub const ACTIVE: usize = 1_000;

/// A fixed pseudo-random sequence (xorshift64*), the same in every run.
struct Sequence(u64);

impl Sequence {
    fn new() -> Self {
        Sequence(0x9E37_79B9_7F4A_7C15)
    }

    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % bound as u64) as usize
    }
}

/// Requests of one case by subscribers drawn at random (the same sequence every run) among the
/// `n` of a store: even-numbered ones for allowed and ungoverned requests, odd-numbered ones for
/// denied requests.
pub struct Requests {
    method: Method,
    path: &'static str,
    ids: Vec<UserId>,
}

impl Requests {
    /// Each request by any of the `n` subscribers (of the case's parity).
    pub fn new(case: Case, n: usize) -> Self {
        Self::among(case, n, n)
    }

    /// Each request by one of `ACTIVE` subscribers chosen once among the `n` (a store where
    /// few of the subscribers are active).
    pub fn active(case: Case, n: usize) -> Self {
        Self::among(case, n, ACTIVE.min(n))
    }

    fn among(case: Case, n: usize, distinct: usize) -> Self {
        let (method, path, parity) = match case {
            Case::Allowed => (Method::POST, "/api/clients", 0),
            Case::Denied => (Method::POST, "/api/clients", 1),
            Case::Ungoverned => (Method::GET, "/api/health", 0),
            Case::Metered => (Method::POST, "/api/images", 0),
        };
        let mut random = Sequence::new();
        let half = (n / 2).max(1);
        let pool: Vec<UserId> = (0..(distinct / 2).max(1))
            .map(|_| user_id(random.below(half) * 2 + parity))
            .collect();
        let ids = (0..SEQUENCE)
            .map(|_| pool[random.below(pool.len())].clone())
            .collect();
        Self { method, path, ids }
    }

    /// The user id of the `i`-th request.
    #[inline]
    pub fn id(&self, i: u64) -> &UserId {
        &self.ids[(i as usize) & (SEQUENCE - 1)]
    }

    /// The `i`-th request: the method, a static URI and the user id in the extensions, as an
    /// authentication layer would leave it.
    #[inline]
    pub fn get(&self, i: u64) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = Uri::from_static(self.path);
        request.extensions_mut().insert(self.id(i).clone());
        request
    }
}

/// Sends requests `from..to` of `requests` through `service`, one after the other, dropping
/// each response.
pub async fn send<S, B>(service: &mut S, requests: &Requests, from: u64, to: u64)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: fmt::Debug,
{
    for i in from..to {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(requests.get(i))
            .await
            .expect("a response");
        std::hint::black_box(response);
    }
}

/// Sends requests `from..to` of `requests` each through a clone of `service` made for it and
/// dropped after it, as axum's router calls the service of a route.
pub async fn send_cloned<S, B>(service: &S, requests: &Requests, from: u64, to: u64)
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: fmt::Debug,
{
    for i in from..to {
        let response = service
            .clone()
            .oneshot(requests.get(i))
            .await
            .expect("a response");
        std::hint::black_box(response);
    }
}

/// Sends the whole sequence through `service` and checks every response's status.
pub async fn warm<S, B>(service: &mut S, requests: &Requests, case: Case)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: fmt::Debug,
{
    for i in 0..SEQUENCE as u64 {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(requests.get(i))
            .await
            .expect("a response");
        assert_eq!(response.status(), case.expected_status(), "{}", case.name());
    }
}

/// Loads subscribers `u0` to `u{n-1}` into the layer's user cache through requests carrying
/// freshly allocated ids, as requests from an authentication layer would.
pub async fn fill_cache(service: &mut Governed, n: usize) {
    for i in 0..n {
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static("/api/clients");
        request.extensions_mut().insert(user_id(i));
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("a response");
        let expected = if i % 2 == 0 {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(response.status(), expected, "u{i}");
    }
}

/// The status and body of the response to `request`.
pub async fn body_of(service: Governed, request: Request<()>) -> (StatusCode, String) {
    let response = service.oneshot(request).await.expect("a response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A store of `n` subscribers with a layered service over it for each [`Setup`]; the user
/// caches hold every subscriber.
pub struct Fixture {
    pub n: usize,
    pub store: MemoryStore,
    services: Vec<(Setup, Governed)>,
}

impl Fixture {
    pub async fn new(n: usize) -> Fixture {
        let store = store(n);
        let mut services = Vec::new();
        for setup in Setup::ALL {
            let mut service = layer(&store, n, setup).layer(bare());
            if setup.cached {
                fill_cache(&mut service, n).await;
            }
            services.push((setup, service));
        }
        let fixture = Fixture { n, store, services };
        fixture.check().await;
        fixture
    }

    /// Checks that the cached service answers from its cache and the uncached one from the
    /// store, and that a denial renders the JSON body.
    async fn check(&self) {
        let user = user_id(0);
        let create = || {
            let mut request = Request::new(());
            *request.method_mut() = Method::POST;
            *request.uri_mut() = Uri::from_static("/api/clients");
            request.extensions_mut().insert(user.clone());
            request
        };
        // Give the user 3 clients in the store: the store says no, the cache still says yes.
        self.store.set_usage(user.as_str(), "clients", 3);
        for (setup, service) in &self.services {
            let (status, body) = body_of(service.clone(), create()).await;
            if setup.cached {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{}: from the user cache",
                    setup.name()
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{}", setup.name());
                assert_eq!(
                    body,
                    r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
                );
            }
        }
        self.store.set_usage(user.as_str(), "clients", 1);
        for (setup, service) in &self.services {
            let (status, _) = body_of(service.clone(), create()).await;
            assert_eq!(status, StatusCode::OK, "{}", setup.name());
        }
    }

    pub fn service(&self, setup: Setup) -> &Governed {
        self.services
            .iter()
            .find(|(s, _)| *s == setup)
            .map(|(_, service)| service)
            .expect("every setup has a service")
    }
}

/// `1k`, `100k`, `1M`.
pub fn size_name(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The store sizes measured: 1 thousand, 100 thousand and 1 million, unless
/// `BENCH_SUBSCRIBERS` lists others (`BENCH_SUBSCRIBERS=1000,100000`).
pub fn sizes() -> Vec<usize> {
    std::env::var("BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|list| list.split(',').map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000])
}

/// One worker thread per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
