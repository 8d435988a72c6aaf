//! Holds of several lines and units in Redis, beyond the usage store suite: leases on Redis's
//! clock, the keys of a pool and its grants, exact sums of held units, period pools, and
//! malformed data in Redis.

use std::time::Duration;

use tower_plans::catalog::Period;
use tower_plans::redis::driver::{self as redis, aio::ConnectionManager};
use tower_plans::redis::RedisUsageStore;
use tower_plans::store::{Count, Counter, Held, Hold, Line, ReservationId, Seed, Spill};
use tower_plans::{Action, UsageStore};

use crate::common::*;

const LEASE: Duration = Duration::from_secs(300);

async fn store(server: &RedisServer) -> (RedisUsageStore, ConnectionManager) {
    let conn = connect(server).await;
    (
        conn.usage_store(),
        conn.manager().expect("one redis-server").clone(),
    )
}

fn count(used: u64, held: u64) -> Option<Count> {
    Some(Count { used, held })
}

/// The user's keys, sorted.
async fn keys_of(conn: &mut ConnectionManager, user: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("test:{{{user}}}:*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// A line of `units` credits of john's pool `ai` (limit 10) spilling over to grant `g` (20).
fn credits(units: u64) -> Line {
    Line::new(Counter::credits("john", "ai"), units)
        .limit(Some(10))
        .grant(Spill::new(Counter::grant("john", "ai", "g"), 20))
}

#[tokio::test]
async fn redis_an_expired_hold_frees_its_units_on_every_counter_and_its_commit_counts_nothing() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    let pool = Counter::credits("john", "ai");
    let grant = Counter::grant("john", "ai", "g");
    let images = Counter::action("john", "images", Action::Create);
    let hold = |units| {
        Hold::new(ReservationId::new())
            .with(credits(units))
            .with(Line::new(images.clone(), 1).limit(Some(5)))
    };
    // 14 credits: 10 of the allowance, 4 of the grant; one image.
    let short = hold(14);
    let held = store.reserve(&short, Duration::from_millis(200)).await;
    assert!(held.unwrap().is_reserved());
    assert_eq!(store.get(&pool).await.unwrap(), count(0, 10));
    assert_eq!(store.get(&grant).await.unwrap(), count(0, 4));
    assert_eq!(store.get(&images).await.unwrap(), count(0, 1));
    // Nothing is left of the allowance, and the grant has 16: 17 do not fit.
    let refused = store.reserve(&hold(17), LEASE).await.unwrap();
    assert_eq!(
        refused,
        Held::Refused {
            line: 0,
            count: Count { used: 0, held: 10 }
        }
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reading does not count what has expired.
    assert_eq!(store.get(&pool).await.unwrap(), count(0, 0));
    assert_eq!(store.get(&grant).await.unwrap(), count(0, 0));
    assert_eq!(store.get(&images).await.unwrap(), count(0, 0));
    // The whole allowance and grant are free again.
    let late = hold(30);
    let held = store.reserve(&late, LEASE).await.unwrap();
    assert_eq!(
        held,
        Held::Reserved([Count::default(), Count::default()].into_iter().collect())
    );
    // The expired hold commits nothing, on any counter; the live one counts.
    store.commit(&short, &[14, 1]).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), count(0, 10));
    store.commit(&late, &[]).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), count(10, 0));
    assert_eq!(store.get(&grant).await.unwrap(), count(20, 0));
    assert_eq!(store.get(&images).await.unwrap(), count(1, 0));
    // Nothing is held any more: the holds' keys are gone, the counts stay.
    assert_eq!(keys_of(&mut conn, "john").await, ["test:{john}:used"]);
}

#[tokio::test]
async fn redis_reserving_a_hold_again_renews_every_lease_it_holds() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let pool = Counter::credits("john", "ai");
    let grant = Counter::grant("john", "ai", "g");
    let hold = Hold::new(ReservationId::new()).with(credits(12));
    let lease = Duration::from_millis(300);
    assert!(store.reserve(&hold, lease).await.unwrap().is_reserved());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = store.reserve(&hold, lease).await.unwrap();
    assert_eq!(
        again,
        Held::Reserved([Count::default()].into_iter().collect())
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 400 ms after the first reservation, 200 ms after the renewal: both parts still held.
    assert_eq!(store.get(&pool).await.unwrap(), count(0, 10));
    assert_eq!(store.get(&grant).await.unwrap(), count(0, 2));
    store.commit(&hold, &[]).await.unwrap();
    assert_eq!(store.get(&grant).await.unwrap(), count(2, 0));
}

#[tokio::test]
async fn redis_a_refused_line_creates_no_counter_of_the_lines_before_it() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    let pool = Counter::credits("john", "ai");
    let exports = Counter::action("john", "reports", Action::custom("export"));
    let hold = Hold::new(ReservationId::new())
        .with(
            Line::new(pool.clone(), 5)
                .limit(Some(100))
                .seed(Seed::Count(40)),
        )
        .with(
            Line::new(exports.clone(), 1)
                .limit(Some(2))
                .seed(Seed::Count(2)),
        );
    assert_eq!(
        store.reserve(&hold, LEASE).await.unwrap(),
        Held::Refused {
            line: 1,
            count: Count { used: 2, held: 0 }
        }
    );
    assert_eq!(store.get(&pool).await.unwrap(), None);
    assert_eq!(store.get(&exports).await.unwrap(), None);
    assert!(keys_of(&mut conn, "john").await.is_empty());
}

#[tokio::test]
async fn redis_held_units_sum_exactly_past_u64_max() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let pool = Counter::credits("john", "ai");
    let huge = |units| Hold::new(ReservationId::new()).with(Line::new(pool.clone(), units));
    let (first, second, third) = (huge(u64::MAX), huge(u64::MAX), huge(7));
    for hold in [&first, &second, &third] {
        assert!(store.reserve(hold, LEASE).await.unwrap().is_reserved());
    }
    // The sum is answered saturated, but kept exact: releasing one leaves the others' units.
    assert_eq!(store.get(&pool).await.unwrap(), count(0, u64::MAX));
    store.release(&first).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), count(0, u64::MAX));
    store.release(&second).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), count(0, 7));
    store.commit(&third, &[]).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), count(7, 0));
}

#[tokio::test]
async fn redis_a_period_pool_lives_in_the_period_hash_and_its_grants_never_reset() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    // The current month, on Redis's own clock.
    let (seconds, _): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let month = Period::Month.window(seconds * 1000);
    let pool = Counter::credits("jane", "ai").in_period(month);
    let grant = Counter::grant("jane", "ai", "top-up 1");
    let hold = Hold::new(ReservationId::new()).with(
        Line::new(pool.clone(), 12)
            .limit(Some(10))
            .grant(Spill::new(grant.clone(), 50)),
    );
    assert!(store.reserve(&hold, LEASE).await.unwrap().is_reserved());
    let period_key = format!("test:{{jane}}:used@{month}");
    assert_eq!(
        keys_of(&mut conn, "jane").await,
        [
            format!("test:{{jane}}:held:ai:c@{month}"),
            "test:{jane}:held:ai:g:top-up%201".to_owned(),
            format!("test:{{jane}}:units:ai:c@{month}"),
            "test:{jane}:units:ai:g:top-up%201".to_owned(),
            "test:{jane}:used".to_owned(),
            period_key.clone(),
        ]
    );
    store.commit(&hold, &[]).await.unwrap();
    let used: Option<String> = redis::cmd("HGET")
        .arg(&period_key)
        .arg("ai:c")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(used.as_deref(), Some("10"));
    let granted: Option<String> = redis::cmd("HGET")
        .arg("test:{jane}:used")
        .arg("ai:g:top-up%201")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(granted.as_deref(), Some("2"));
    // The month's pool expires an hour after the month; the grant's count never does.
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&period_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(expires_at, (month.end() + 3_600_000) as i64);
    let ttl: i64 = redis::cmd("PTTL")
        .arg("test:{jane}:used")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ttl, -1);
    // Next month's pool starts from nothing; the grant keeps what it spent.
    let next = Counter::credits("jane", "ai").in_period(Period::Month.window(month.end()));
    assert_eq!(store.get(&next).await.unwrap(), None);
    assert_eq!(store.get(&grant).await.unwrap(), count(2, 0));
}

#[tokio::test]
async fn redis_reset_removes_a_pool_or_a_grant_and_its_reservations() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    let pool = Counter::credits("john", "ai");
    let grant = Counter::grant("john", "ai", "g");
    let first = Hold::new(ReservationId::new()).with(credits(8));
    assert!(store.reserve(&first, LEASE).await.unwrap().is_reserved());
    store.commit(&first, &[]).await.unwrap();
    let second = Hold::new(ReservationId::new()).with(credits(5));
    assert!(store.reserve(&second, LEASE).await.unwrap().is_reserved());
    assert_eq!(store.get(&grant).await.unwrap(), count(0, 3));
    store.reset(&grant).await.unwrap();
    assert_eq!(store.get(&grant).await.unwrap(), None);
    assert_eq!(store.get(&pool).await.unwrap(), count(8, 2));
    store.reset(&pool).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), None);
    assert_eq!(keys_of(&mut conn, "john").await, Vec::<String>::new());
    // The hold is gone with its counters: settling it counts nothing.
    store.commit(&second, &[]).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), None);
}

async fn hset(conn: &mut ConnectionManager, key: &str, field: &str, value: &str) {
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_malformed_counts_in_redis_are_an_error_and_change_nothing() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    let pool = Counter::credits("john", "ai");
    let hold = |units| {
        Hold::new(ReservationId::new()).with(Line::new(pool.clone(), units).limit(Some(10)))
    };
    let (first, second) = (hold(3), hold(2));
    assert!(store.reserve(&first, LEASE).await.unwrap().is_reserved());
    assert!(store.reserve(&second, LEASE).await.unwrap().is_reserved());

    // A sum of held units that is not a count.
    hset(&mut conn, "test:{john}:units:ai:c", "total", "three").await;
    let error = store.get(&pool).await.expect_err("a malformed sum");
    assert!(error.to_string().contains("not a count"), "{error}");
    assert!(store.reserve(&hold(1), LEASE).await.is_err());
    assert!(store.commit(&first, &[]).await.is_err());
    assert!(store.release(&second).await.is_err());
    hset(&mut conn, "test:{john}:units:ai:c", "total", "5").await;
    assert_eq!(store.get(&pool).await.unwrap(), count(0, 5));

    // A used count that is not one: the commit fails before it forgets the hold.
    hset(&mut conn, "test:{john}:used", "ai:c", "-1").await;
    assert!(store.commit(&first, &[]).await.is_err());
    hset(&mut conn, "test:{john}:used", "ai:c", "0").await;
    assert_eq!(store.get(&pool).await.unwrap(), count(0, 5));
    store.commit(&first, &[]).await.unwrap();
    assert_eq!(store.get(&pool).await.unwrap(), count(3, 2));
}

#[tokio::test]
async fn redis_a_hold_across_users_is_refused_before_reaching_redis() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    let hold = Hold::new(ReservationId::new())
        .with(Line::new(Counter::credits("john", "ai"), 1))
        .with(Line::new(Counter::items("jane", "clients"), 1));
    let error = store.reserve(&hold, LEASE).await.expect_err("two users");
    assert!(error.to_string().contains("one user"), "{error}");
    assert!(store.commit(&hold, &[]).await.is_err());
    assert!(store.release(&hold).await.is_err());
    assert!(keys_of(&mut conn, "john").await.is_empty());
    assert!(keys_of(&mut conn, "jane").await.is_empty());
    // A hold without lines holds nothing, and needs no Redis.
    let empty = Hold::new(ReservationId::new());
    assert_eq!(
        store.reserve(&empty, LEASE).await.unwrap(),
        Held::Reserved(Default::default())
    );
    store.commit(&empty, &[]).await.unwrap();
    store.release(&empty).await.unwrap();
}
