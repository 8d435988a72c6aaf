//! The Redis rate store: the rate store suite (`support/rate_conformance.rs`) on one Redis and
//! on a cluster, the same decisions as the in-memory rates over random requests, refunds and
//! clocks, the key and its expiry, and four layers sharing one rate of 60 a minute over real
//! HTTP: exactly 60 of 100 concurrent requests pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proptest::prelude::*;
use tokio::net::TcpListener;
use tower_plans::catalog::Period;
use tower_plans::rate::{Gcra, MemoryRates, RateDecision, RateKey, RateStore};
use tower_plans::redis::driver as redis;
use tower_plans::redis::RedisConnection;
use tower_plans::store::{Count, Counter, StoreFuture};
use tower_plans::{Action, PlanLimitLayer, UsageStore, UserId};

use crate::common::*;
use crate::rate_conformance::{self as suite, NOW_MS};

/// A user id that every key of the layout escapes.
const TRICKY_USER: &str = "zo:ë {x}";

const MINUTE: Duration = Duration::from_secs(60);

fn rate(max: u64, per: Duration, burst: u64) -> Gcra {
    Gcra::new(max, per, burst).expect("a valid rate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rates_pass_the_rate_store_suite() {
    let server = RedisServer::start();
    let rates = connect(&server).await.rate_store();
    suite::all(&rates, "redis").await;
    suite::all(&rates, TRICKY_USER).await;
    // 100 at once, over one connection and over four.
    suite::concurrent_acquires(Arc::new(rates), "redis-concurrent", 100).await;
    let mut four: Vec<Arc<dyn RateStore>> = Vec::new();
    for _ in 0..4 {
        four.push(Arc::new(connect(&server).await.rate_store()));
    }
    suite::concurrent_acquires(Arc::new(Spread::new(four)), "redis-four", 100).await;
}

/// A rate store that sends each call to the next of several stores in turn: one store's worth
/// of four instances.
struct Spread {
    stores: Vec<Arc<dyn RateStore>>,
    next: AtomicUsize,
}

impl Spread {
    fn new(stores: Vec<Arc<dyn RateStore>>) -> Self {
        Self {
            stores,
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> &dyn RateStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.stores[n % self.stores.len()].as_ref()
    }
}

impl RateStore for Spread {
    fn acquire<'a>(
        &'a self,
        key: &'a RateKey,
        gcra: Gcra,
        now_ms: u64,
    ) -> StoreFuture<'a, RateDecision> {
        self.pick().acquire(key, gcra, now_ms)
    }

    fn refund<'a>(&'a self, key: &'a RateKey, gcra: Gcra) -> StoreFuture<'a, ()> {
        self.pick().refund(key, gcra)
    }
}

// ---------------------------------------------------------------------------------------------
// The key, its value and its expiry.

/// Runs `cmd` on `conn`'s Redis.
async fn run<T: redis::FromRedisValue>(conn: &RedisConnection, cmd: &redis::Cmd) -> T {
    let mut manager = conn.manager().expect("one redis-server").clone();
    cmd.query_async(&mut manager).await.expect("redis answers")
}

#[tokio::test]
async fn redis_rates_keep_the_tat_in_the_users_slot_and_expire_it_a_second_after() {
    const NAME: &str = "test:{zo%3A%C3%AB%20%7Bx%7D}:rate:a%3Ab:x%20y";
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let rates = conn.rate_store();
    let gcra = rate(60, MINUTE, 10);
    let key = RateKey::action(TRICKY_USER, "a:b", Action::custom("x y"));

    // A refund of a key that does not exist creates nothing.
    rates.refund(&key, gcra).await.unwrap();
    let exists: i64 = run(&conn, redis::cmd("EXISTS").arg(NAME)).await;
    assert_eq!(exists, 0);

    // Two requests: the TAT is 2 seconds ahead, in microseconds, and the key lives until then
    // and a second more.
    for _ in 0..2 {
        assert!(rates
            .acquire(&key, gcra, NOW_MS)
            .await
            .unwrap()
            .is_allowed());
    }
    let tat: String = run(&conn, redis::cmd("GET").arg(NAME)).await;
    assert_eq!(tat, (NOW_MS * 1000 + 2_000_000).to_string());
    let ttl: i64 = run(&conn, redis::cmd("PTTL").arg(NAME)).await;
    assert!((2_500..=3_000).contains(&ttl), "{ttl}");

    // A refund moves the TAT back by one interval and keeps the expiry.
    rates.refund(&key, gcra).await.unwrap();
    let tat: String = run(&conn, redis::cmd("GET").arg(NAME)).await;
    assert_eq!(tat, (NOW_MS * 1000 + 1_000_000).to_string());
    let kept: i64 = run(&conn, redis::cmd("PTTL").arg(NAME)).await;
    assert!(kept > 0 && kept <= ttl, "{kept} after {ttl}");

    // The plan-wide rate has a key of its own, with the same hash tag.
    let plan = RateKey::plan(TRICKY_USER);
    assert!(rates
        .acquire(&plan, gcra, NOW_MS)
        .await
        .unwrap()
        .is_allowed());
    let mut keys: Vec<String> = run(&conn, redis::cmd("KEYS").arg("test:*")).await;
    keys.sort_unstable();
    assert_eq!(keys, ["test:{zo%3A%C3%AB%20%7Bx%7D}:rate", NAME]);
}

#[tokio::test]
async fn redis_rates_answer_a_tat_that_is_not_a_number_with_an_error_and_saturate_at_the_edges() {
    const NAME: &str = "test:{jane}:rate";
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let rates = conn.rate_store();
    let gcra = rate(60, MINUTE, 60);
    let key = RateKey::plan("jane");
    for bad in ["soon", "-1", "1.5", "18446744073709551616", ""] {
        let () = run(&conn, redis::cmd("SET").arg(NAME).arg(bad)).await;
        let error = rates.acquire(&key, gcra, NOW_MS).await.unwrap_err();
        assert!(
            error.to_string().contains("the theoretical arrival time"),
            "{bad:?}: {error}"
        );
        let error = rates.refund(&key, gcra).await.unwrap_err();
        assert!(
            error.to_string().contains("the theoretical arrival time"),
            "{bad:?}: {error}"
        );
    }
    // A key of another type is an error too, never a panic.
    let _: i64 = run(&conn, redis::cmd("DEL").arg(NAME)).await;
    let _: i64 = run(&conn, redis::cmd("HSET").arg(NAME).arg("a").arg("b")).await;
    assert!(rates.acquire(&key, gcra, NOW_MS).await.is_err());
    assert!(rates.refund(&key, gcra).await.is_err());
    let _: i64 = run(&conn, redis::cmd("DEL").arg(NAME)).await;

    // The largest TAT: refused, as the step refuses it; a refund saturates at 0.
    let () = run(&conn, redis::cmd("SET").arg(NAME).arg(u64::MAX)).await;
    let (expected, _) = gcra.step(u64::MAX, NOW_MS * 1000);
    assert!(!expected.is_allowed());
    assert_eq!(rates.acquire(&key, gcra, NOW_MS).await.unwrap(), expected);
    let () = run(&conn, redis::cmd("SET").arg(NAME).arg("999999")).await;
    rates.refund(&key, gcra).await.unwrap();
    let tat: String = run(&conn, redis::cmd("GET").arg(NAME)).await;
    assert_eq!(tat, "0");

    // An odd TAT just past 2^53 microseconds, which no double holds, 1 µs further ahead than
    // the tolerance: refused, as the step refuses it.
    let () = run(&conn, redis::cmd("SET").arg(NAME).arg("9007199254741001")).await;
    let fine = rate(2, Duration::from_millis(2), 2);
    let (expected, _) = fine.step(9_007_199_254_741_001, 9_007_199_254_740_000);
    assert_eq!(expected, RateDecision::Limited { retry_after_ms: 1 });
    assert_eq!(
        rates.acquire(&key, fine, 9_007_199_254_740).await.unwrap(),
        expected
    );

    // Clocks about 2^53 microseconds (where the script leaves doubles for decimals), and where
    // microseconds saturate: the TAT saturates at u64::MAX, as the step's does.
    let memory = MemoryRates::new();
    let beyond_doubles = (1 << 53) / 1000;
    for now_ms in [
        beyond_doubles - 1,
        beyond_doubles,
        beyond_doubles + 1,
        u64::MAX / 1000,
        u64::MAX / 1000 + 1,
        u64::MAX,
    ] {
        let edge = RateKey::plan(format!("edge-{now_ms}"));
        for _ in 0..3 {
            assert_eq!(
                rates.acquire(&edge, gcra, now_ms).await.unwrap(),
                memory.acquire(&edge, gcra, now_ms).await.unwrap(),
                "at {now_ms}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The same decisions as memory.

#[derive(Clone, Debug)]
enum Op {
    /// The clock moves on (or back a little, as a stale clock reads), and a request of one key
    /// is taken; a request the quota then refuses gives it back.
    Acquire {
        key: usize,
        moved_ms: u64,
        back: bool,
        refunded: bool,
    },
    /// A refund of one key, whatever it took.
    Refund(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..4, 0u64..1_500, proptest::bool::weighted(0.1), proptest::bool::weighted(0.2))
            .prop_map(|(key, moved_ms, back, refunded)| Op::Acquire { key, moved_ms, back, refunded }),
        1 => (0usize..4).prop_map(Op::Refund),
    ]
}

fn any_rate() -> impl Strategy<Value = Gcra> {
    let per = prop_oneof![
        Just(1_000u64),
        Just(7_000),
        Just(60_000),
        Just(3_600_000),
        Just(86_400_000)
    ];
    (1u64..25, per)
        .prop_flat_map(|(max, per_ms)| (Just(max), Just(per_ms), 1..=max))
        .prop_map(|(max, per_ms, burst)| rate(max, Duration::from_millis(per_ms), burst))
}

/// Where the clock starts: now, the epoch, a little before microseconds pass 2^53 (where the
/// script leaves doubles for decimals), or where microseconds saturate.
fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => Just(NOW_MS),
        1 => 0u64..5_000,
        2 => (1u64..5_000).prop_map(|before| (1 << 53) / 1000 - before),
        1 => Just(u64::MAX / 1000 - 20_000),
        1 => Just(u64::MAX - 20_000),
    ]
}

async fn differential(
    server: &RedisServer,
    prefix: &str,
    gcra: Gcra,
    start: u64,
    ops: &[Op],
) -> Result<(), String> {
    let redis = connect(server).await.key_prefix(prefix).rate_store();
    let memory = MemoryRates::new();
    let keys = [
        RateKey::plan("jane"),
        RateKey::action("jane", "clients", Action::Index),
        RateKey::plan(TRICKY_USER),
        RateKey::action(TRICKY_USER, "a:b", Action::custom("{x}")),
    ];
    let mut now = start;
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Acquire {
                key,
                moved_ms,
                back,
                refunded,
            } => {
                now = if back {
                    now.saturating_sub(moved_ms / 4)
                } else {
                    now.saturating_add(moved_ms)
                };
                let key = &keys[key];
                let expected = memory.acquire(key, gcra, now).await.unwrap();
                let decided = redis.acquire(key, gcra, now).await.unwrap();
                if decided != expected {
                    return Err(format!(
                        "step {step} {op:?} at {now}: memory {expected:?}, redis {decided:?}"
                    ));
                }
                if refunded && decided.is_allowed() {
                    memory.refund(key, gcra).await.unwrap();
                    redis.refund(key, gcra).await.unwrap();
                }
            }
            Op::Refund(key) => {
                memory.refund(&keys[key], gcra).await.unwrap();
                redis.refund(&keys[key], gcra).await.unwrap();
            }
        }
    }
    Ok(())
}

/// Random requests, refunds and clocks (forward, a little back, at the epoch and where
/// microseconds saturate) give the same decisions in Redis and in memory. Each case lasts well
/// under a second of Redis's clock, so no key expires within it (the memory store forgets no
/// key of so few either).
#[test]
fn redis_rates_decide_as_memory_rates_do() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        gcra in any_rate(),
        start in start(),
        ops in proptest::collection::vec(op(), 1..120),
    )| {
        let prefix = format!("rates{}", CASE.fetch_add(1, Ordering::Relaxed));
        let outcome = runtime.block_on(differential(&server, &prefix, gcra, start, &ops));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    });
}

// ---------------------------------------------------------------------------------------------
// Four layers over real HTTP.

/// pro: the API at 1000 calls a day and 60 a minute.
const PLANS: &str = r#"{"plans": [{
    "name": "pro",
    "limits": {"api": {"index": {"max": 1000, "per": "day", "rate": {"max": 60, "per": "minute"}}}}
}]}"#;
const USERS: &str = r#"{"john": {"plan": "pro"}}"#;

/// Noon of today (UTC): the layers' clock. The daily counts' hash expires an hour after the
/// day ends on Redis's clock, so the layers' day is today.
fn noon_today() -> u64 {
    const DAY: u64 = 86_400_000;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis();
    let now = u64::try_from(now).expect("a clock before the year 500 million");
    now - now % DAY + DAY / 2
}

/// One instance: a layer on its own connection, counting and rating in Redis, served by axum
/// on a loopback port.
async fn serve(conn: &RedisConnection, clock: &Arc<AtomicU64>) -> SocketAddr {
    let clock = Arc::clone(clock);
    let layer = PlanLimitLayer::builder(conn.plan_store())
        .base("/api")
        .clock(move || clock.load(Ordering::SeqCst))
        .count_usage(conn.usage_store())
        .rate_store(conn.rate_store())
        .rate_limit_headers(true)
        .store_timeout(Duration::from_secs(5))
        .build()
        .expect("a valid layer");
    let app = Router::new()
        .route("/api/api", get(|| async { "listed" }))
        .layer(layer)
        .layer(axum::middleware::from_fn(
            |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
                let user = request
                    .headers()
                    .get("x-user")
                    .and_then(|value| value.to_str().ok())
                    .map(UserId::from);
                if let Some(user) = user {
                    request.extensions_mut().insert(user);
                }
                next.run(request).await
            },
        ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("a text header"))
    }
}

async fn call(client: &Http, address: SocketAddr) -> Answer {
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("http://{address}/api/api"))
        .header("x-user", "john")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = within(Duration::from_secs(30), client.request(request))
        .await
        .expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Four layers, one per connection in `conns`, each served on its own port: 100 concurrent
/// requests spread over them let exactly 60 through; the other 40 are told to come back in a
/// second (429, `Retry-After: 1`) and took nothing of the daily quota, which counts exactly 60
/// and holds nothing. Once the layers' clock has moved on by the `Retry-After`, one more passes.
async fn sixty_of_a_hundred_pass_over_four_layers(conns: &[RedisConnection]) {
    const REQUESTS: usize = 100;
    assert_eq!(conns.len(), 4);
    conns[0].plan_store().load_json(PLANS, USERS).await.unwrap();
    let clock = Arc::new(AtomicU64::new(noon_today()));
    let mut addresses = Vec::new();
    for conn in conns {
        addresses.push(serve(conn, &clock).await);
    }
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let (client, start) = (client.clone(), Arc::clone(&start));
            let address = addresses[n % addresses.len()];
            tokio::spawn(async move {
                start.wait().await;
                call(&client, address).await
            })
        })
        .collect();
    let mut passed = 0;
    let mut retry_after = None;
    for task in tasks {
        let answer = task.await.expect("no panic");
        match answer.status {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let body: serde_json::Value =
                    serde_json::from_slice(&answer.body).expect("a JSON body");
                assert_eq!(body["reason"], "rate_limited", "{body}");
                assert_eq!(body["item"], "api");
                assert_eq!(body["action"], "index");
                assert_eq!(body["maximum"], 60);
                assert_eq!(body["per"], "minute");
                assert_eq!(body["retry_after_ms"], 1000);
                assert_eq!(
                    answer.header("ratelimit-policy"),
                    Some(r#""api.index.rate";q=60;w=60"#)
                );
                let seconds = answer.header("retry-after").expect("a Retry-After");
                retry_after = Some(seconds.parse::<u64>().expect("whole seconds"));
            }
            other => panic!(
                "unexpected {other}: {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
    }
    assert_eq!(passed, 60, "exactly 60 of {REQUESTS} through");
    let retry_after = retry_after.expect("40 refused");
    assert_eq!(retry_after, 1);

    // The refused ones took nothing of the quota, and nothing is left held.
    let today = Period::Day.window(clock.load(Ordering::SeqCst));
    let quota = Counter::action("john", "api", Action::Index).in_period(today);
    let usage = conns[1].usage_store();
    assert_eq!(
        usage.get(&quota).await.unwrap(),
        Some(Count { used: 60, held: 0 })
    );

    // Still refused at once; passes once the Retry-After has passed on the layers' clock.
    let refused = call(&client, addresses[2]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    clock.fetch_add(retry_after * 1000, Ordering::SeqCst);
    let answer = call(&client, addresses[3]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        usage.get(&quota).await.unwrap(),
        Some(Count { used: 61, held: 0 })
    );
    let refused = call(&client, addresses[0]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_rate_of_60_a_minute_lets_exactly_60_of_100_concurrent_requests_over_four_layers_through(
) {
    let server = RedisServer::start();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(connect(&server).await);
    }
    sixty_of_a_hundred_pass_over_four_layers(&conns).await;
}

// ---------------------------------------------------------------------------------------------
// On a cluster.

#[cfg(feature = "redis-cluster")]
mod cluster {
    use std::collections::{BTreeMap, BTreeSet};

    use tower_plans::PlanStore;

    use super::*;
    use crate::cluster::*;
    use crate::cluster_keys::Monitors;
    use crate::keys::{hash_tag, TRICKY};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster_rates_pass_the_rate_store_suite_on_every_master() {
        let cluster = RedisCluster::start();
        let spread = users_on_each_master(&cluster, "rates", 1);
        let mut stores: Vec<Arc<dyn RateStore>> = Vec::new();
        for _ in 0..4 {
            stores.push(Arc::new(connect_cluster(&cluster).await.rate_store()));
        }
        for users in spread.values() {
            suite::all(stores[0].as_ref(), &users[0]).await;
        }
        suite::all(stores[1].as_ref(), TRICKY_USER).await;
        for users in spread.values() {
            let user = format!("{}-concurrent", users[0]);
            let four = Spread::new(stores.clone());
            suite::concurrent_acquires(Arc::new(four), &user, 100).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster_a_rate_of_60_a_minute_lets_exactly_60_of_100_concurrent_requests_over_four_layers_through(
    ) {
        let cluster = RedisCluster::start();
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(connect_cluster(&cluster).await);
        }
        sixty_of_a_hundred_pass_over_four_layers(&conns).await;
    }

    /// Both rate scripts name one key, in the slot of its user's other keys (the record's),
    /// and run on the master that serves it, for user ids, resources and actions that need
    /// escaping; `MONITOR` on each master shows what ran where.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster_the_rate_scripts_name_one_key_in_the_users_slot_and_run_on_its_master() {
        let cluster = RedisCluster::start();
        let masters = cluster.masters();
        let monitors = Monitors::start(&cluster).await;

        let conn = connect_cluster(&cluster).await;
        let rates = conn.rate_store();
        let plans = conn.plan_store();
        let gcra = rate(1, MINUTE, 1);
        for id in TRICKY {
            let record = format!(r#"{{"plan": "free", "name": {}}}"#, serde_json::json!(id));
            plans.set_user_json(id, &record).await.unwrap();
            for key in [
                RateKey::plan(*id),
                RateKey::action(*id, "clients", Action::Index),
                RateKey::action(*id, *id, Action::custom(id)),
            ] {
                let taken = rates.acquire(&key, gcra, NOW_MS).await.unwrap();
                assert!(taken.is_allowed(), "{key:?}");
                let refused = rates.acquire(&key, gcra, NOW_MS).await.unwrap();
                assert!(!refused.is_allowed(), "{key:?}");
                rates.refund(&key, gcra).await.unwrap();
                let again = rates.acquire(&key, gcra, NOW_MS).await.unwrap();
                assert!(again.is_allowed(), "{key:?}");
            }
            assert!(plans.user(id).await.unwrap().is_some(), "{id:?}");
        }

        let seen = monitors.stop(&cluster, &plans).await;
        let view = cluster.view();
        let mut scripts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut ran_on = BTreeSet::new();
        for command in &seen {
            let Some((sha, keys)) = command.script() else {
                continue;
            };
            assert_eq!(keys.len(), 1, "a rate script names one key: {command:?}");
            let key = &keys[0];
            let tag = hash_tag(key);
            assert!(
                key.starts_with(&format!("test:{{{tag}}}:rate")),
                "a rate's key: {key}"
            );
            // The slot of the user's record.
            let slot = cluster.keyslot(key);
            assert_eq!(slot, cluster.keyslot(&format!("test:{{{tag}}}:user")));
            let master = view
                .iter()
                .find(|line| line.is_master() && line.serves(slot))
                .expect("a master for the slot");
            assert_eq!(
                master.port, command.port,
                "slot {slot} ran elsewhere: {command:?}"
            );
            ran_on.insert(command.port);
            scripts.entry(sha).or_default().insert(tag.to_owned());
        }
        // Acquire and refund, each for every user; the users' records were written under the
        // same tags.
        assert_eq!(scripts.len(), 2, "one SHA1 per script: {scripts:?}");
        let records: BTreeSet<String> = seen
            .iter()
            .flat_map(|command| command.args[1..].iter())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .filter(|arg| arg.starts_with("test:{") && arg.ends_with("}:user"))
            .map(|key| hash_tag(&key).to_owned())
            .collect();
        for (sha, tags) in &scripts {
            assert_eq!(
                tags.len(),
                TRICKY.len(),
                "script {sha} ran for every user: {tags:?}"
            );
            assert!(
                tags.is_subset(&records),
                "script {sha}: {tags:?} beside {records:?}"
            );
        }
        assert_eq!(
            ran_on,
            masters.iter().copied().collect(),
            "the scripts ran on every master"
        );
    }
}
