//! The Postgres usage store passes the usage store suite (`support/usage_conformance.rs`);
//! concurrent reservations never overshoot; reserve, commit and release are idempotent by id;
//! leases end on the server's clock, and their holds are swept.

use std::sync::Arc;
use std::time::Duration;

use tower_plans::postgres::driver as sqlx;
use tower_plans::store::{Count, Counter, Hold, Line, ReservationId, Seed, UsageStoreExt};
use tower_plans::{Action, UsageStore};

use crate::common::*;
use crate::usage_conformance as suite;

#[tokio::test]
async fn postgres_passes_the_usage_store_suite() {
    let store = fresh().await;
    suite::all(&store, "pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_costs_against_a_pool_let_exactly_what_fits_through() {
    let store: Arc<dyn UsageStore> = Arc::new(fresh().await);
    suite::concurrent_costs(Arc::clone(&store), "pg-costs", 1000, 15, 5, 200).await;
    suite::concurrent_costs(store, "pg-units", 10, 1, 1, 200).await;
}

/// Of 200 concurrent calls marking one alert marker, spread over four pools on one database
/// (four instances' worth), exactly one sets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_marks_over_four_pools_set_each_marker_once() {
    let url = PostgresServer::shared().database();
    let mut stores: Vec<Arc<dyn UsageStore>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(pooled(&url, 5).await));
    }
    suite::concurrent_marks_over(&stores, "pg-marks", 200).await;
}

#[tokio::test]
async fn postgres_reserve_commit_and_release_are_idempotent_by_id() {
    let store = fresh().await;
    let clients = Counter::items("ann", "clients");
    let lease = Duration::from_secs(60);
    let id = ReservationId::new();
    let hold = Hold::unit(clients.clone(), Some(3), Seed::Count(1), id);
    // Reserved once, however often it is asked.
    for _ in 0..3 {
        assert!(store.reserve(&hold, lease).await.unwrap().is_reserved());
    }
    assert_eq!(
        store.get(&clients).await.unwrap(),
        Some(Count { used: 1, held: 1 })
    );
    // Committed once.
    for _ in 0..3 {
        store.commit(&hold, &[]).await.unwrap();
    }
    store.release(&hold).await.unwrap();
    assert_eq!(
        store.get(&clients).await.unwrap(),
        Some(Count { used: 2, held: 0 })
    );
    // Released once, and a late commit counts nothing.
    let other = Hold::unit(
        clients.clone(),
        Some(3),
        Seed::Count(1),
        ReservationId::new(),
    );
    assert!(store.reserve(&other, lease).await.unwrap().is_reserved());
    store.release(&other).await.unwrap();
    store.release(&other).await.unwrap();
    store.commit(&other, &[]).await.unwrap();
    assert_eq!(
        store.get(&clients).await.unwrap(),
        Some(Count { used: 2, held: 0 })
    );
    // Unknown ids change nothing, and touch no counter.
    let unknown = Hold::unit(
        Counter::items("nobody", "clients"),
        Some(1),
        Seed::Count(0),
        ReservationId::new(),
    );
    store.commit(&unknown, &[]).await.unwrap();
    store.release(&unknown).await.unwrap();
    assert_eq!(
        store
            .get(&Counter::items("nobody", "clients"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn postgres_a_lease_ends_on_the_server_clock_and_its_late_commit_counts_nothing() {
    let store = fresh().await;
    let clients = Counter::items("ann", "clients");
    let lease = Duration::from_millis(300);
    let first = ReservationId::new();
    let reserved = store
        .reserve_unit(&clients, Some(3), Seed::Count(2), first, lease)
        .await
        .unwrap();
    assert!(reserved.is_reserved());
    let second = ReservationId::new();
    assert!(!store
        .reserve_unit(&clients, Some(3), Seed::Count(2), second, lease)
        .await
        .unwrap()
        .is_reserved());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The hold no longer counts.
    assert_eq!(
        store.get(&clients).await.unwrap(),
        Some(Count { used: 2, held: 0 })
    );
    // Committing it now counts nothing; the unit went back to the pool of free units.
    assert_eq!(store.commit_unit(&clients, first).await.unwrap(), 2);
    assert!(store
        .reserve_unit(&clients, Some(3), Seed::Count(2), second, lease)
        .await
        .unwrap()
        .is_reserved());
    // Reserving again renews a lease.
    let renewed = ReservationId::new();
    let credits = Counter::credits("ann", "ai");
    let hold = Hold::new(renewed).with(Line::new(credits.clone(), 5).limit(Some(10)));
    assert!(store
        .reserve(&hold, Duration::from_millis(300))
        .await
        .unwrap()
        .is_reserved());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store
        .reserve(&hold, Duration::from_millis(300))
        .await
        .unwrap()
        .is_reserved());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.get(&credits).await.unwrap(),
        Some(Count { used: 0, held: 5 }),
        "renewed, the hold still counts"
    );
}

#[tokio::test]
async fn postgres_sweep_deletes_expired_holds_and_ended_periods() {
    let store = fresh().await;
    let short = Duration::from_millis(100);
    for user in ["a", "b", "c"] {
        let counter = Counter::action(user, "reports", Action::custom("export"));
        assert!(store
            .reserve_unit(
                &counter,
                Some(5),
                Seed::Count(0),
                ReservationId::new(),
                short
            )
            .await
            .unwrap()
            .is_reserved());
    }
    let live = Counter::items("d", "clients");
    assert!(store
        .reserve_unit(
            &live,
            None,
            Seed::Count(0),
            ReservationId::new(),
            Duration::MAX
        )
        .await
        .unwrap()
        .is_reserved());
    // A counter of a month that ended long ago.
    let old = tower_plans::catalog::Period::Month.window(1_000_000_000_000);
    store
        .set(&Counter::items("a", "reports").in_period(old), 3)
        .await
        .unwrap();
    // Alert markers: of that month (kept a month after it, long over), of this month, and of
    // a counter without a period.
    let reports = Counter::action("a", "reports", Action::Create);
    let this = tower_plans::catalog::Period::Month.window(now_ms());
    for counter in [
        reports.clone().in_period(old),
        reports.clone().in_period(this),
        reports.clone(),
    ] {
        assert!(
            store.mark(&counter, "alert:80%").await.unwrap(),
            "{counter}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let swept = store.sweep().await.unwrap();
    assert_eq!((swept.holds, swept.counters, swept.marks), (3, 1, 1));
    assert_eq!(store.sweep().await.unwrap().holds, 0);
    // The swept marker can be set again; the others are still set.
    assert!(store
        .mark(&reports.clone().in_period(old), "alert:80%")
        .await
        .unwrap());
    assert!(!store
        .mark(&reports.clone().in_period(this), "alert:80%")
        .await
        .unwrap());
    assert!(!store.mark(&reports, "alert:80%").await.unwrap());
    // The endless hold stays.
    assert_eq!(
        store.get(&live).await.unwrap(),
        Some(Count { used: 0, held: 1 })
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM tower_plans.holds")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// Migration 3 on a database that the release before it left (migrations 1 and 2): the counts
/// and holds stay, markers can be set, and the new sweep answers for them.
#[tokio::test]
async fn postgres_migration_3_keeps_the_counts_and_sweeps_markers() {
    let url = PostgresServer::shared().database();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    // As the release before this one migrated: schema, migrations 1 and 2, a count and a hold.
    sqlx::raw_sql(concat!(
        "CREATE SCHEMA tower_plans;
         CREATE TABLE tower_plans.schema_migrations (
             version     bigint PRIMARY KEY,
             description text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );",
        include_str!("../../src/postgres/migrations/0001_schema.sql"),
        ";",
        include_str!("../../src/postgres/migrations/0002_counting.sql"),
        ";
         INSERT INTO tower_plans.schema_migrations (version, description)
         VALUES (1, 'schema'), (2, 'counting');
         INSERT INTO tower_plans.counters (user_id, resource, counted, period, used)
         VALUES ('ann', 'clients', 'i', '', 4);
         INSERT INTO tower_plans.holds (user_id, resource, counted, period, reservation, units,
                                        expires_at)
         VALUES ('ann', 'clients', 'i', '', gen_random_uuid(), 1, now() + interval '1 hour');"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let store = tower_plans::postgres::PostgresStore::with_pool(pool)
        .await
        .expect("migrates");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM tower_plans.schema_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3]);
    let clients = Counter::items("ann", "clients");
    assert_eq!(
        store.get(&clients).await.unwrap(),
        Some(Count { used: 4, held: 1 })
    );
    let old = tower_plans::catalog::Period::Month.window(1_000_000_000_000);
    assert!(store.mark(&clients, "alert:80%").await.unwrap());
    assert!(store
        .mark(&clients.clone().in_period(old), "alert:80%")
        .await
        .unwrap());
    let swept = store.sweep().await.unwrap();
    assert_eq!((swept.holds, swept.counters, swept.marks), (0, 0, 1));
    assert!(!store.mark(&clients, "alert:80%").await.unwrap());
}

/// The wall clock, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

#[tokio::test]
async fn postgres_counts_past_i64_and_up_to_u64_max() {
    let store = fresh().await;
    let big = Counter::credits("ann", "ai");
    store.set(&big, u64::MAX - 3).await.unwrap();
    let hold =
        Hold::new(ReservationId::new()).with(Line::new(big.clone(), 2).limit(Some(u64::MAX)));
    let held = store.reserve(&hold, Duration::from_secs(60)).await.unwrap();
    assert!(held.is_reserved());
    store.commit(&hold, &[10]).await.unwrap();
    assert_eq!(
        store.get(&big).await.unwrap(),
        Some(Count {
            used: u64::MAX,
            held: 0
        })
    );
    assert_eq!(
        store.adjust(&big, i64::MIN, Seed::Count(0)).await.unwrap(),
        u64::MAX - i64::MIN.unsigned_abs()
    );
}
