//! Each script of the Redis usage store, against a real Redis: the semantics of the in-memory
//! store (limit, held, seed, idempotency, lease, saturating adjust).

use std::time::Duration;

use tower_plans::redis::driver::{self as redis, aio::ConnectionManager};
use tower_plans::redis::RedisUsageStore;
use tower_plans::store::{Count, Counter, ReservationId, Reserve, Seed, UsageStoreExt};
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

fn clients(user: &str) -> Counter {
    Counter::items(user, "clients")
}

fn count(used: u64, held: u64) -> Option<Count> {
    Some(Count { used, held })
}

fn ids(n: usize) -> Vec<ReservationId> {
    (0..n).map(|_| ReservationId::new()).collect()
}

#[tokio::test]
async fn redis_reserve_succeeds_up_to_the_limit_then_refuses() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let counter = clients("jane");
    let ids = ids(4);
    for (held, id) in ids.iter().take(3).enumerate() {
        let reserved = store
            .reserve_unit(&counter, Some(3), Seed::Count(0), *id, LEASE)
            .await;
        let held = held as u64;
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 0, held });
    }
    let refused = store
        .reserve_unit(&counter, Some(3), Seed::Count(0), ids[3], LEASE)
        .await;
    assert_eq!(refused.unwrap(), Reserve::Refused { used: 0, held: 3 });

    // Used and held both count: a commit does not free room.
    assert_eq!(store.commit_unit(&counter, ids[0]).await.unwrap(), 1);
    assert_eq!(store.get(&counter).await.unwrap(), count(1, 2));
    let refused = store
        .reserve_unit(&counter, Some(3), Seed::Count(0), ids[3], LEASE)
        .await;
    assert_eq!(refused.unwrap(), Reserve::Refused { used: 1, held: 2 });

    // A release does.
    store.release_unit(&counter, ids[1]).await.unwrap();
    let reserved = store
        .reserve_unit(&counter, Some(3), Seed::Count(0), ids[3], LEASE)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 1, held: 1 });
}

#[tokio::test]
async fn redis_limit_zero_refuses_and_no_limit_always_holds() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let counter = clients("jane");
    let refused = store.reserve_unit(
        &counter,
        Some(0),
        Seed::Count(0),
        ReservationId::new(),
        LEASE,
    );
    assert_eq!(
        refused.await.unwrap(),
        Reserve::Refused { used: 0, held: 0 }
    );
    for held in 0..5 {
        let reserved =
            store.reserve_unit(&counter, None, Seed::Count(0), ReservationId::new(), LEASE);
        assert_eq!(reserved.await.unwrap(), Reserve::Reserved { used: 0, held });
    }
    assert_eq!(store.get(&counter).await.unwrap(), count(0, 5));
}

#[tokio::test]
async fn redis_seed_starts_a_missing_counter_and_is_ignored_afterwards() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let ghost = clients("ghost");
    assert_eq!(store.get(&ghost).await.unwrap(), None);
    let id = ReservationId::new();
    let reserved = store
        .reserve_unit(&ghost, Some(3), Seed::Count(2), id, LEASE)
        .await
        .unwrap();
    assert_eq!(reserved, Reserve::Reserved { used: 2, held: 0 });
    assert_eq!(store.get(&ghost).await.unwrap(), count(2, 1));
    assert_eq!(store.commit_unit(&ghost, id).await.unwrap(), 3);

    // The counter exists now: later seeds are ignored.
    let refused = store.reserve_unit(&ghost, Some(3), Seed::Count(0), ReservationId::new(), LEASE);
    assert_eq!(
        refused.await.unwrap(),
        Reserve::Refused { used: 3, held: 0 }
    );
    assert_eq!(store.adjust(&ghost, -1, Seed::Count(100)).await.unwrap(), 2);

    // A seed at or over the limit refuses at once, and creates nothing.
    let other = clients("other");
    let refused = store.reserve_unit(&other, Some(3), Seed::Count(7), ReservationId::new(), LEASE);
    assert_eq!(
        refused.await.unwrap(),
        Reserve::Refused { used: 7, held: 0 }
    );
    assert_eq!(store.get(&other).await.unwrap(), None);
}

#[tokio::test]
async fn redis_a_seed_that_follows_the_items_starts_at_the_item_count() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let show = Counter::action("kim", "clients", tower_plans::Action::Show);
    // No item counter yet: the seed's own count.
    let refused = store.reserve_unit(&show, Some(2), Seed::Items(2), ReservationId::new(), LEASE);
    assert_eq!(
        refused.await.unwrap(),
        Reserve::Refused { used: 2, held: 0 }
    );
    assert_eq!(store.get(&show).await.unwrap(), None);
    // The item count moves first (a create, say): the show starts there.
    assert_eq!(
        store
            .adjust(&clients("kim"), 1, Seed::Count(0))
            .await
            .unwrap(),
        1
    );
    let id = ReservationId::new();
    let reserved = store.reserve_unit(&show, Some(2), Seed::Items(2), id, LEASE);
    assert_eq!(
        reserved.await.unwrap(),
        Reserve::Reserved { used: 1, held: 0 }
    );
    assert_eq!(store.commit_unit(&show, id).await.unwrap(), 2);
    // Its own from then on: the item count no longer moves it.
    assert_eq!(
        store
            .adjust(&clients("kim"), 5, Seed::Count(0))
            .await
            .unwrap(),
        6
    );
    assert_eq!(store.get(&show).await.unwrap(), count(2, 0));
    // An adjustment starts where a reservation would.
    let update = Counter::action("kim", "clients", tower_plans::Action::Update);
    assert_eq!(store.adjust(&update, 1, Seed::Items(0)).await.unwrap(), 7);
}

#[tokio::test]
async fn redis_reserve_is_idempotent_by_id() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let id = ReservationId::new();
    for _ in 0..3 {
        let reserved = store
            .reserve_unit(&clients("john"), Some(1), Seed::Count(0), id, LEASE)
            .await;
        // The counts exclude the reservation itself, even at the limit.
        assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 0, held: 0 });
    }
    assert_eq!(store.get(&clients("john")).await.unwrap(), count(0, 1));
    // The same id on another counter is another reservation.
    let other = Counter::items("john", "groups");
    let reserved = store
        .reserve_unit(&other, Some(1), Seed::Count(0), id, LEASE)
        .await;
    assert!(reserved.unwrap().is_reserved());
    assert_eq!(store.get(&clients("john")).await.unwrap(), count(0, 1));
    assert_eq!(store.get(&other).await.unwrap(), count(0, 1));
}

#[tokio::test]
async fn redis_commit_and_release_are_idempotent_by_id() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let id = ReservationId::new();
    store
        .reserve_unit(&clients("john"), Some(3), Seed::Count(2), id, LEASE)
        .await
        .unwrap();
    assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 3);
    assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 3);
    store.release_unit(&clients("john"), id).await.unwrap();
    assert_eq!(store.get(&clients("john")).await.unwrap(), count(3, 0));

    // Unknown ids and counters change nothing and create nothing.
    let unknown = ReservationId::new();
    assert_eq!(
        store.commit_unit(&clients("john"), unknown).await.unwrap(),
        3
    );
    store.release_unit(&clients("john"), unknown).await.unwrap();
    assert_eq!(
        store
            .commit_unit(&clients("nobody"), unknown)
            .await
            .unwrap(),
        0
    );
    store
        .release_unit(&clients("nobody"), unknown)
        .await
        .unwrap();
    assert_eq!(store.get(&clients("nobody")).await.unwrap(), None);
}

#[tokio::test]
async fn redis_release_gives_the_unit_back() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let [first, second] = [ReservationId::new(), ReservationId::new()];
    let john = clients("john");
    let reserved = store.reserve_unit(&john, Some(3), Seed::Count(2), first, LEASE);
    assert!(reserved.await.unwrap().is_reserved());
    store.release_unit(&john, first).await.unwrap();
    assert_eq!(store.get(&john).await.unwrap(), count(2, 0));
    let reserved = store.reserve_unit(&john, Some(3), Seed::Count(2), second, LEASE);
    assert_eq!(
        reserved.await.unwrap(),
        Reserve::Reserved { used: 2, held: 0 }
    );
    // Releasing the first again, or committing it, changes nothing.
    store.release_unit(&clients("john"), first).await.unwrap();
    assert_eq!(store.commit_unit(&clients("john"), first).await.unwrap(), 2);
    assert_eq!(store.get(&clients("john")).await.unwrap(), count(2, 1));
}

#[tokio::test]
async fn redis_adjust_saturates_at_zero_and_at_u64_max() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let john = clients("john");
    assert_eq!(store.adjust(&john, -5, Seed::Count(0)).await.unwrap(), 0);
    assert_eq!(store.adjust(&john, 3, Seed::Count(0)).await.unwrap(), 3);
    assert_eq!(
        store.adjust(&john, i64::MIN, Seed::Count(0)).await.unwrap(),
        0
    );
    store.set(&john, u64::MAX - 1).await.unwrap();
    assert_eq!(
        store.adjust(&john, i64::MAX, Seed::Count(0)).await.unwrap(),
        u64::MAX
    );
    assert_eq!(
        store.adjust(&john, 1, Seed::Count(0)).await.unwrap(),
        u64::MAX
    );
    assert_eq!(
        store.adjust(&john, -1, Seed::Count(0)).await.unwrap(),
        u64::MAX - 1
    );
    // A missing counter starts at the seed.
    assert_eq!(
        store
            .adjust(&clients("ghost"), -1, Seed::Count(4))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .adjust(&clients("ghost"), -1, Seed::Count(40))
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn redis_counts_beyond_2_pow_53_stay_exact() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let john = clients("john");
    let big = (1u64 << 53) + 1;
    store.set(&john, big).await.unwrap();
    let id = ReservationId::new();
    let reserved = store
        .reserve_unit(&john, Some(big + 2), Seed::Count(0), id, LEASE)
        .await
        .unwrap();
    assert_eq!(reserved, Reserve::Reserved { used: big, held: 0 });
    let refused = store.reserve_unit(
        &john,
        Some(big + 1),
        Seed::Count(0),
        ReservationId::new(),
        LEASE,
    );
    assert_eq!(
        refused.await.unwrap(),
        Reserve::Refused { used: big, held: 1 }
    );
    assert_eq!(store.commit_unit(&john, id).await.unwrap(), big + 1);
    assert_eq!(
        store.adjust(&john, 2, Seed::Count(0)).await.unwrap(),
        big + 3
    );
    let reserved = store.reserve_unit(
        &john,
        Some(u64::MAX),
        Seed::Count(u64::MAX),
        ReservationId::new(),
        LEASE,
    );
    assert!(reserved.await.unwrap().is_reserved());
}

#[tokio::test]
async fn redis_adjust_and_set_leave_holds_alone() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let id = ReservationId::new();
    store
        .reserve_unit(&clients("john"), Some(3), Seed::Count(2), id, LEASE)
        .await
        .unwrap();
    assert_eq!(
        store
            .adjust(&clients("john"), -1, Seed::Count(0))
            .await
            .unwrap(),
        1
    );
    store.set(&clients("john"), 0).await.unwrap();
    assert_eq!(store.get(&clients("john")).await.unwrap(), count(0, 1));
    assert_eq!(store.commit_unit(&clients("john"), id).await.unwrap(), 1);
}

#[tokio::test]
async fn redis_items_and_the_create_action_are_one_counter_and_actions_are_apart() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let items = clients("john");
    let creates = Counter::action("john", "clients", Action::Create);
    let shows = Counter::action("john", "clients", Action::Show);
    store.set(&items, 4).await.unwrap();
    assert_eq!(store.get(&creates).await.unwrap(), count(4, 0));
    assert_eq!(store.get(&shows).await.unwrap(), None);
    assert_eq!(store.adjust(&shows, 1, Seed::Count(0)).await.unwrap(), 1);
    assert_eq!(store.get(&items).await.unwrap(), count(4, 0));
}

#[tokio::test]
async fn redis_a_lease_ends_and_its_late_commit_counts_nothing() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let john = clients("john");
    let lease = Duration::from_millis(200);
    let [first, second] = [ReservationId::new(), ReservationId::new()];
    let reserved = store
        .reserve_unit(&john, Some(3), Seed::Count(2), first, lease)
        .await;
    assert!(reserved.unwrap().is_reserved());
    assert_eq!(store.get(&john).await.unwrap(), count(2, 1));
    let refused = store
        .reserve_unit(&john, Some(3), Seed::Count(2), second, lease)
        .await;
    assert_eq!(refused.unwrap(), Reserve::Refused { used: 2, held: 1 });

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.get(&john).await.unwrap(), count(2, 0));
    let reserved = store
        .reserve_unit(&john, Some(3), Seed::Count(2), second, LEASE)
        .await;
    assert_eq!(reserved.unwrap(), Reserve::Reserved { used: 2, held: 0 });
    // Committing the expired reservation counts nothing; the live one counts.
    assert_eq!(store.commit_unit(&john, first).await.unwrap(), 2);
    assert_eq!(store.commit_unit(&john, second).await.unwrap(), 3);
}

#[tokio::test]
async fn redis_reserving_again_renews_the_lease() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let john = clients("john");
    let lease = Duration::from_millis(300);
    let id = ReservationId::new();
    store
        .reserve_unit(&john, Some(3), Seed::Count(2), id, lease)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .reserve_unit(&john, Some(3), Seed::Count(2), id, lease)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 400 ms after the first reservation, 200 ms after the renewal: still held.
    assert_eq!(store.get(&john).await.unwrap(), count(2, 1));
    assert_eq!(store.commit_unit(&john, id).await.unwrap(), 3);
}

/// When `key` expires, in ms since the epoch: -1 never, -2 the key does not exist.
async fn expire_time(conn: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn pttl(conn: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn redis_the_reservations_keys_expire_with_their_last_lease_and_an_endless_one_never() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    let john = clients("john");
    let held = "test:{john}:held:clients:i";
    let units = "test:{john}:units:clients:i";
    let reserve = |lease| {
        let (store, john) = (store.clone(), john.clone());
        async move {
            let id = ReservationId::new();
            let reserved = store.reserve_unit(&john, None, Seed::Count(0), id, lease);
            assert!(reserved.await.unwrap().is_reserved());
            id
        }
    };
    reserve(Duration::from_secs(10)).await;
    let ttl = pttl(&mut conn, held).await;
    assert!((9_000..=10_001).contains(&ttl), "{ttl}");
    // The units live exactly as long as the reservations.
    assert_eq!(
        expire_time(&mut conn, units).await,
        expire_time(&mut conn, held).await
    );
    reserve(Duration::from_secs(60)).await;
    let ttl = pttl(&mut conn, held).await;
    assert!((59_000..=60_001).contains(&ttl), "{ttl}");
    // A shorter lease does not shorten the keys' life.
    let short = reserve(Duration::from_secs(1)).await;
    let ttl = pttl(&mut conn, held).await;
    assert!(ttl > 59_000, "{ttl}");
    assert_eq!(
        expire_time(&mut conn, units).await,
        expire_time(&mut conn, held).await
    );

    let endless = reserve(Duration::MAX).await;
    assert_eq!(
        pttl(&mut conn, held).await,
        -1,
        "an endless lease keeps the key"
    );
    assert_eq!(pttl(&mut conn, units).await, -1, "and its units");
    assert_eq!(store.get(&john).await.unwrap(), count(0, 4));
    assert_eq!(store.commit_unit(&john, endless).await.unwrap(), 1);
    // Without the endless lease, the keys expire again with the last one.
    let ttl = pttl(&mut conn, held).await;
    assert!((58_000..=60_001).contains(&ttl), "{ttl}");
    assert_eq!(
        expire_time(&mut conn, units).await,
        expire_time(&mut conn, held).await
    );
    store.release_unit(&john, short).await.unwrap();
    assert_eq!(store.get(&john).await.unwrap(), count(1, 2));
}

#[tokio::test]
async fn redis_a_malformed_count_in_redis_is_an_error_not_a_guess() {
    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    let john = clients("john");
    for garbage in ["three", "-1", "1.5", "18446744073709551616", ""] {
        let _: () = redis::cmd("HSET")
            .arg("test:{john}:used")
            .arg("clients:i")
            .arg(garbage)
            .query_async(&mut conn)
            .await
            .unwrap();
        let error = store
            .reserve_unit(&john, Some(3), Seed::Count(0), ReservationId::new(), LEASE)
            .await
            .expect_err(garbage);
        assert!(
            error.to_string().contains("not a count") || error.to_string().contains("out of range"),
            "{error}"
        );
        assert!(store.get(&john).await.is_err());
        assert!(store.adjust(&john, 1, Seed::Count(0)).await.is_err());
    }
    // Leading zeros are a count.
    let _: () = redis::cmd("HSET")
        .arg("test:{john}:used")
        .arg("clients:i")
        .arg("007")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.get(&john).await.unwrap(), count(7, 0));
}

#[tokio::test]
async fn redis_reset_removes_a_counter_and_its_reservations() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let john = clients("john");
    store
        .reserve_unit(&john, Some(3), Seed::Count(2), ReservationId::new(), LEASE)
        .await
        .unwrap();
    store.reset(&john).await.unwrap();
    assert_eq!(store.get(&john).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_hundred_concurrent_reservations_at_limit_minus_one_hold_one() {
    let server = RedisServer::start();
    let (store, _) = store(&server).await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                let counter = clients("john");
                let id = ReservationId::new();
                start.wait().await;
                let reserve = store
                    .reserve_unit(&counter, Some(3), Seed::Count(2), id, LEASE)
                    .await
                    .unwrap();
                if reserve.is_reserved() {
                    store.commit_unit(&counter, id).await.unwrap();
                }
                reserve
            })
        })
        .collect();
    let mut reserved = 0;
    for task in tasks {
        let reserve = task.await.unwrap();
        assert!(reserve.usage() <= 3, "{reserve:?}");
        reserved += usize::from(reserve.is_reserved());
    }
    assert_eq!(reserved, 1);
    assert_eq!(store.get(&clients("john")).await.unwrap(), count(3, 0));
}

#[tokio::test]
async fn redis_period_counters_are_keyed_by_their_period_and_expire_after_it() {
    use tower_plans::catalog::Period;

    let server = RedisServer::start();
    let (store, mut conn) = store(&server).await;
    // The current month, on Redis's own clock: the key must outlive the period by an hour.
    let (seconds, _): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let now = seconds * 1000;
    let month = Period::Month.window(now);
    let monthly = Counter::action("jane", "reports", Action::Create).in_period(month);
    let reports = Counter::items("jane", "reports");

    let id = ReservationId::new();
    let reserved = store
        .reserve_unit(&monthly, Some(2), Seed::Count(0), id, LEASE)
        .await
        .unwrap();
    assert_eq!(reserved, Reserve::Reserved { used: 0, held: 0 });
    assert_eq!(store.commit_unit(&monthly, id).await.unwrap(), 1);
    assert_eq!(store.adjust(&reports, 1, Seed::Count(5)).await.unwrap(), 6);

    // The month's count lives in a hash of its own, apart from the lifetime counts.
    let label = month.to_string();
    let period_key = format!("test:{{jane}}:used@{label}");
    let used: Option<String> = redis::cmd("HGET")
        .arg(&period_key)
        .arg("reports:i")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(used.as_deref(), Some("1"));
    let lifetime_used: Option<String> = redis::cmd("HGET")
        .arg("test:{jane}:used")
        .arg("reports:i")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(lifetime_used.as_deref(), Some("6"));
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&period_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(expires_at, (month.end() + 3_600_000) as i64);
    let lifetime_ttl: i64 = redis::cmd("PTTL")
        .arg("test:{jane}:used")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(lifetime_ttl, -1, "the lifetime counts never expire");

    // The next month's counter starts from nothing; this month's is untouched.
    let next = Period::Month.window(month.end());
    let next_monthly = Counter::action("jane", "reports", Action::Create).in_period(next);
    assert_eq!(store.get(&next_monthly).await.unwrap(), None);
    let second = ReservationId::new();
    let reserved = store.reserve_unit(&next_monthly, Some(2), Seed::Count(0), second, LEASE);
    assert_eq!(
        reserved.await.unwrap(),
        Reserve::Reserved { used: 0, held: 0 }
    );
    assert_eq!(store.get(&monthly).await.unwrap(), count(1, 0));
    assert_eq!(store.get(&next_monthly).await.unwrap(), count(0, 1));
    let held: Vec<String> = redis::cmd("KEYS")
        .arg("test:{jane}:held:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held, [format!("test:{{jane}}:held:reports:i@{next}")]);

    // `set` on a period counter keeps the expiry.
    store.set(&monthly, 2).await.unwrap();
    let refused = store.reserve_unit(
        &monthly,
        Some(2),
        Seed::Count(0),
        ReservationId::new(),
        LEASE,
    );
    assert_eq!(
        refused.await.unwrap(),
        Reserve::Refused { used: 2, held: 0 }
    );
    let expires_again: i64 = redis::cmd("PEXPIRETIME")
        .arg(&period_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(expires_again, expires_at);
}
