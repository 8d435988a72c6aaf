//! Key layout in a real Redis: user ids, pool names and grant ids with `:`, `{`, `}`, spaces and
//! unicode never share keys, and every key of one user is in that user's hash slot.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tower_plans::redis::driver as redis;
use tower_plans::store::{Count, Counter, Hold, Line, ReservationId, Seed, Spill, UsageStoreExt};
use tower_plans::{PlanStore, UsageStore};

use crate::common::*;

/// Ids that a naive key layout would mix up.
pub const TRICKY: &[&str] = &[
    "john",
    "john:clients",
    "john:clients:i",
    "jo:hn",
    "{john}",
    "{john",
    "john}",
    "}{",
    "a b",
    "a%20b",
    "a+b",
    "zoë",
    "zo%C3%AB",
    "日本語",
    "",
    "%",
    ":",
    "test:{john}:used",
];

/// The hash tag Redis Cluster would hash `key` by: between the first `{` and the next `}`, when
/// that is not empty; the whole key otherwise.
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[tokio::test]
async fn redis_ids_with_colons_braces_spaces_and_unicode_do_not_collide() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let usage = conn.usage_store();
    let plans = conn.plan_store();
    plans.set_catalog_json(CATALOG).await.unwrap();

    // Each user gets a different count, a reservation, a per-action count and a record.
    for (n, id) in TRICKY.iter().enumerate() {
        let n = n as u64;
        usage.set(&Counter::items(*id, "clients"), n).await.unwrap();
        let items = Counter::items(*id, "clients");
        let hold = ReservationId::new();
        let reserve =
            usage.reserve_unit(&items, None, Seed::Count(0), hold, Duration::from_secs(60));
        reserve.await.unwrap();
        let shows = Counter::action(*id, "tasks", tower_plans::Action::Show);
        usage
            .adjust(&shows, 100 + n as i64, Seed::Count(0))
            .await
            .unwrap();
        // A pool and a grant named as trickily as the user: 1 credit of the pool, 2 of the
        // grant.
        usage.set(&Counter::credits(*id, *id), n).await.unwrap();
        let credits = Hold::new(ReservationId::new()).with(
            Line::new(Counter::credits(*id, *id), 3)
                .limit(Some(n + 1))
                .grant(Spill::new(Counter::grant(*id, *id, *id), 5)),
        );
        let held = usage.reserve(&credits, Duration::from_secs(60)).await;
        assert!(held.unwrap().is_reserved(), "{id:?}");
        let record = format!(r#"{{"name": {}, "plan": "free"}}"#, serde_json::json!(id));
        plans.set_user_json(id, &record).await.unwrap();
        // Alert markers on the items and on the pool, one named as trickily as the user: each
        // is new, so no other user's marker shares its key and field.
        let (clients, pool) = (Counter::items(*id, "clients"), Counter::credits(*id, *id));
        assert!(usage.mark(&clients, "alert:80%").await.unwrap(), "{id:?}");
        assert!(usage.mark(&pool, id).await.unwrap(), "{id:?}");
    }
    for (n, id) in TRICKY.iter().enumerate() {
        let n = n as u64;
        let items = usage.get(&Counter::items(*id, "clients")).await.unwrap();
        assert_eq!(items, Some(Count { used: n, held: 1 }), "{id:?}");
        let shows = Counter::action(*id, "tasks", tower_plans::Action::Show);
        let shows = usage.get(&shows).await.unwrap();
        assert_eq!(
            shows,
            Some(Count {
                used: 100 + n,
                held: 0
            }),
            "{id:?}"
        );
        let pool = usage.get(&Counter::credits(*id, *id)).await.unwrap();
        assert_eq!(pool, Some(Count { used: n, held: 1 }), "{id:?}");
        let grant = usage.get(&Counter::grant(*id, *id, *id)).await.unwrap();
        assert_eq!(grant, Some(Count { used: 0, held: 2 }), "{id:?}");
        let record = plans.user(id).await.unwrap().expect("a record");
        assert_eq!(record.name.as_deref(), Some(*id));
        let pool = Counter::credits(*id, *id);
        assert!(!usage.mark(&pool, id).await.unwrap(), "{id:?}: set already");
    }
    assert!(plans.user("nobody").await.unwrap().is_none());

    // Every key of a user carries that user's hash tag, and no two users share a tag.
    let mut manager = conn.manager().expect("one redis-server").clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("test:*")
        .query_async(&mut manager)
        .await
        .unwrap();
    let mut tags: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for key in &keys {
        if key == "test:catalog" {
            continue;
        }
        tags.entry(hash_tag(key)).or_default().insert(key);
    }
    assert_eq!(tags.len(), TRICKY.len(), "one hash tag per user: {tags:#?}");
    for (tag, keys) in &tags {
        // user, used, the held set and units of clients, of the pool and of the grant, and the
        // markers of clients and of the pool.
        assert_eq!(keys.len(), 10, "{tag}: {keys:?}");
        assert!(!tag.contains([':', '{', '}', ' ']), "{tag}");
    }
}
