//! What every `UsageStore` does, whatever keeps its counters: one suite that the in-memory
//! store, the Redis store and the SQL stores all pass (see the `UsageStore` docs, "Lines and
//! grants").
//!
//! Each check takes a store and a user id of its own (no record in any plan store), so that one
//! store serves the whole suite. The alert markers (`UsageStore::mark`) are part of it. Leases are long: their expiry is each store's own test, on its
//! own clock.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_plans::catalog::{Period, Window};
use tower_plans::store::{
    Count, Counter, Held, Hold, Line, ReservationId, Seed, Spill, UsageStore,
};
use tower_plans::Action;

/// Long enough never to end during a check.
pub const LEASE: Duration = Duration::from_secs(3600);

fn count(used: u64, held: u64) -> Count {
    Count { used, held }
}

async fn get(store: &dyn UsageStore, counter: &Counter) -> Option<Count> {
    store.get(counter).await.expect("the store answers")
}

async fn reserve(store: &dyn UsageStore, hold: &Hold) -> Held {
    store.reserve(hold, LEASE).await.expect("the store answers")
}

fn counts(held: &Held) -> Vec<Count> {
    match held {
        Held::Reserved(counts) => counts.to_vec(),
        Held::Refused { .. } => panic!("expected a reservation, got {held:?}"),
    }
}

/// Every check, in turn, each with a user id derived from `user`.
pub async fn all(store: &dyn UsageStore, user: &str) {
    units_up_to_the_limit(store, &format!("{user}-units")).await;
    several_units_at_once(store, &format!("{user}-many")).await;
    lines_are_held_all_or_none(store, &format!("{user}-lines")).await;
    a_refusal_creates_nothing(store, &format!("{user}-refusal")).await;
    idempotent_by_id(store, &format!("{user}-retry")).await;
    grants_top_up_a_pool_in_order(store, &format!("{user}-grants")).await;
    spent_less_than_held(store, &format!("{user}-less")).await;
    spent_more_than_held(store, &format!("{user}-more")).await;
    seeds_and_the_item_count(store, &format!("{user}-seeds")).await;
    adjust_and_set(store, &format!("{user}-adjust")).await;
    markers_are_set_once(store, &format!("{user}-marks")).await;
}

/// One unit at a time up to the limit; commit and release.
pub async fn units_up_to_the_limit(store: &dyn UsageStore, user: &str) {
    let clients = Counter::items(user, "clients");
    let one = |id| Hold::unit(clients.clone(), Some(2), Seed::Count(0), id);
    let first = one(ReservationId::new());
    assert_eq!(counts(&reserve(store, &first).await), [count(0, 0)]);
    let second = one(ReservationId::new());
    assert_eq!(counts(&reserve(store, &second).await), [count(0, 1)]);
    let third = one(ReservationId::new());
    assert_eq!(
        reserve(store, &third).await,
        Held::Refused {
            line: 0,
            count: count(0, 2)
        }
    );
    store.commit(&first, &[]).await.unwrap();
    store.release(&second).await.unwrap();
    assert_eq!(get(store, &clients).await, Some(count(1, 0)));
    // An unlimited line always fits, and still holds its units.
    let free = Hold::unit(clients.clone(), None, Seed::Count(0), ReservationId::new());
    assert!(reserve(store, &free).await.is_reserved());
    assert_eq!(get(store, &clients).await, Some(count(1, 1)));
    store.commit(&free, &[]).await.unwrap();
    assert_eq!(get(store, &clients).await, Some(count(2, 0)));
    // A limit of 0 refuses.
    let none = Hold::unit(
        clients.clone(),
        Some(0),
        Seed::Count(0),
        ReservationId::new(),
    );
    assert!(!reserve(store, &none).await.is_reserved());
}

/// A line of several units fits when they all fit.
pub async fn several_units_at_once(store: &dyn UsageStore, user: &str) {
    let pool = Counter::credits(user, "ai");
    let hold = |units| {
        Hold::new(ReservationId::new()).with(Line::new(pool.clone(), units).limit(Some(15)))
    };
    let five = hold(5);
    assert_eq!(counts(&reserve(store, &five).await), [count(0, 0)]);
    let ten = hold(10);
    assert_eq!(counts(&reserve(store, &ten).await), [count(0, 5)]);
    let one = hold(1);
    assert_eq!(
        reserve(store, &one).await,
        Held::Refused {
            line: 0,
            count: count(0, 15)
        }
    );
    store.commit(&five, &[]).await.unwrap();
    store.release(&ten).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(5, 0)));
    // Eleven do not fit in the ten left; ten do.
    assert!(!reserve(store, &hold(11)).await.is_reserved());
    let rest = hold(10);
    assert!(reserve(store, &rest).await.is_reserved());
    store.commit(&rest, &[]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(15, 0)));
}

/// Two lines: both or neither.
pub async fn lines_are_held_all_or_none(store: &dyn UsageStore, user: &str) {
    let pool = Counter::credits(user, "ai");
    let images = Counter::action(user, "images", Action::Create);
    let hold = |units| {
        Hold::new(ReservationId::new())
            .with(Line::new(pool.clone(), units).limit(Some(100)))
            .with(Line::new(images.clone(), 1).limit(Some(1)))
    };
    let first = hold(5);
    assert_eq!(
        counts(&reserve(store, &first).await),
        [count(0, 0), count(0, 0)]
    );
    // The pool has room, the action's limit not: nothing is held on the pool either.
    let second = hold(5);
    assert_eq!(
        reserve(store, &second).await,
        Held::Refused {
            line: 1,
            count: count(0, 1)
        }
    );
    assert_eq!(get(store, &pool).await, Some(count(0, 5)));
    // The pool refuses first when neither fits.
    let big = hold(200);
    assert_eq!(
        reserve(store, &big).await,
        Held::Refused {
            line: 0,
            count: count(0, 5)
        }
    );
    store.commit(&first, &[]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(5, 0)));
    assert_eq!(get(store, &images).await, Some(count(1, 0)));
}

/// A refused reservation creates no counter.
pub async fn a_refusal_creates_nothing(store: &dyn UsageStore, user: &str) {
    let reports = Counter::action(user, "reports", Action::Show);
    let refused = Hold::unit(
        reports.clone(),
        Some(3),
        Seed::Count(3),
        ReservationId::new(),
    );
    assert_eq!(
        reserve(store, &refused).await,
        Held::Refused {
            line: 0,
            count: count(3, 0)
        }
    );
    assert_eq!(get(store, &reports).await, None);
    // The first reservation that fits creates it at its seed.
    let fits = Hold::unit(
        reports.clone(),
        Some(3),
        Seed::Count(1),
        ReservationId::new(),
    );
    assert!(reserve(store, &fits).await.is_reserved());
    assert_eq!(get(store, &reports).await, Some(count(1, 1)));
}

/// Reserving, committing and releasing again do nothing more.
pub async fn idempotent_by_id(store: &dyn UsageStore, user: &str) {
    let pool = Counter::credits(user, "ai");
    let hold = Hold::new(ReservationId::new()).with(Line::new(pool.clone(), 3).limit(Some(4)));
    for _ in 0..3 {
        // The counts exclude the reservation itself, even at the limit.
        assert_eq!(counts(&reserve(store, &hold).await), [count(0, 0)]);
    }
    assert_eq!(get(store, &pool).await, Some(count(0, 3)));
    store.commit(&hold, &[]).await.unwrap();
    store.commit(&hold, &[]).await.unwrap();
    store.release(&hold).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(3, 0)));
    // Once settled, the id is a new reservation.
    assert_eq!(
        reserve(store, &hold).await,
        Held::Refused {
            line: 0,
            count: count(3, 0)
        }
    );
    let released = Hold::new(ReservationId::new()).with(Line::new(pool.clone(), 1).limit(Some(4)));
    assert!(reserve(store, &released).await.is_reserved());
    store.release(&released).await.unwrap();
    store.release(&released).await.unwrap();
    store.commit(&released, &[]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(3, 0)));
}

/// A pool's line takes what its limit allows, then the rest from its grants in order.
pub async fn grants_top_up_a_pool_in_order(store: &dyn UsageStore, user: &str) {
    let pool = Counter::credits(user, "ai");
    let soon = Counter::grant(user, "ai", "soon");
    let late = Counter::grant(user, "ai", "late");
    let line = |units| {
        Line::new(pool.clone(), units)
            .limit(Some(10))
            .grant(Spill::new(soon.clone(), 4))
            .grant(Spill::new(late.clone(), 100))
    };
    // 8 of the allowance of 10.
    let first = Hold::new(ReservationId::new()).with(line(8));
    assert!(reserve(store, &first).await.is_reserved());
    store.commit(&first, &[]).await.unwrap();
    // 7 more: 2 from the allowance, 4 from the grant that expires first, 1 from the other.
    let second = Hold::new(ReservationId::new()).with(line(7));
    assert_eq!(counts(&reserve(store, &second).await), [count(8, 0)]);
    assert_eq!(get(store, &pool).await, Some(count(8, 2)));
    assert_eq!(get(store, &soon).await.map(|c| c.held), Some(4));
    assert_eq!(get(store, &late).await.map(|c| c.held), Some(1));
    store.commit(&second, &[]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(10, 0)));
    assert_eq!(get(store, &soon).await, Some(count(4, 0)));
    assert_eq!(get(store, &late).await, Some(count(1, 0)));
    // 99 left in the grants: 100 do not fit, and hold nothing.
    let too_many = Hold::new(ReservationId::new()).with(line(100));
    assert_eq!(
        reserve(store, &too_many).await,
        Held::Refused {
            line: 0,
            count: count(10, 0)
        }
    );
    assert_eq!(get(store, &late).await, Some(count(1, 0)));
    // An unlimited pool never spends its grants.
    let unlimited = Hold::new(ReservationId::new()).with(
        Line::new(pool.clone(), 50)
            .limit(None)
            .grant(Spill::new(late.clone(), 100)),
    );
    assert!(reserve(store, &unlimited).await.is_reserved());
    store.commit(&unlimited, &[]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(60, 0)));
    assert_eq!(get(store, &late).await, Some(count(1, 0)));
}

/// Spending less than was held: the allowance's part first, the rest given back.
pub async fn spent_less_than_held(store: &dyn UsageStore, user: &str) {
    let pool = Counter::credits(user, "ai");
    let grant = Counter::grant(user, "ai", "g");
    let line = |units| {
        Line::new(pool.clone(), units)
            .limit(Some(10))
            .grant(Spill::new(grant.clone(), 50))
    };
    let earlier = Hold::new(ReservationId::new()).with(line(6));
    assert!(reserve(store, &earlier).await.is_reserved());
    store.commit(&earlier, &[]).await.unwrap();
    // 20 held: 4 of the allowance, 16 of the grant; 5 spent: 4 and 1.
    let estimate = Hold::new(ReservationId::new()).with(line(20));
    assert!(reserve(store, &estimate).await.is_reserved());
    store.commit(&estimate, &[5]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(10, 0)));
    assert_eq!(get(store, &grant).await, Some(count(1, 0)));
    // A reported nothing: all given back.
    let nothing = Hold::new(ReservationId::new()).with(line(3));
    assert!(reserve(store, &nothing).await.is_reserved());
    store.commit(&nothing, &[0]).await.unwrap();
    assert_eq!(get(store, &grant).await, Some(count(1, 0)));
}

/// Spending more than was held: on the counter while its limit allows, then the grants, then
/// the counter past its limit.
pub async fn spent_more_than_held(store: &dyn UsageStore, user: &str) {
    let pool = Counter::credits(user, "ai");
    let grant = Counter::grant(user, "ai", "g");
    let line = |units| {
        Line::new(pool.clone(), units)
            .limit(Some(100))
            .grant(Spill::new(grant.clone(), 50))
    };
    // Held 10 of the allowance, spent 30: all of it on the allowance, which has room.
    let first = Hold::new(ReservationId::new()).with(line(10));
    assert!(reserve(store, &first).await.is_reserved());
    store.commit(&first, &[30]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(30, 0)));
    // Held 10, spent 100: 70 fill the allowance, 30 go to the grant.
    let second = Hold::new(ReservationId::new()).with(line(10));
    assert!(reserve(store, &second).await.is_reserved());
    store.commit(&second, &[100]).await.unwrap();
    assert_eq!(get(store, &pool).await, Some(count(100, 0)));
    assert_eq!(get(store, &grant).await, Some(count(30, 0)));
    // Held 5 (of the grant), spent 40: 5 held, 15 more fill the grant, 20 past the limit.
    let third = Hold::new(ReservationId::new()).with(line(5));
    assert!(reserve(store, &third).await.is_reserved());
    store.commit(&third, &[40]).await.unwrap();
    assert_eq!(get(store, &grant).await, Some(count(50, 0)));
    assert_eq!(get(store, &pool).await, Some(count(120, 0)));
    // The next request is refused.
    assert!(
        !reserve(store, &Hold::new(ReservationId::new()).with(line(1)))
            .await
            .is_reserved()
    );
    // A line without a limit takes everything spent.
    let tokens = Counter::action(user, "chat", Action::Create);
    let open = Hold::new(ReservationId::new()).with(Line::new(tokens.clone(), 1));
    assert!(reserve(store, &open).await.is_reserved());
    store.commit(&open, &[350]).await.unwrap();
    assert_eq!(get(store, &tokens).await, Some(count(350, 0)));
}

/// Where a counter that does not exist starts.
pub async fn seeds_and_the_item_count(store: &dyn UsageStore, user: &str) {
    let items = Counter::items(user, "projects");
    let show = Counter::action(user, "projects", Action::Show);
    let update = Counter::action(user, "projects", Action::Update);
    // No item counter: the seed's own count.
    let first = Hold::unit(show.clone(), Some(10), Seed::Items(2), ReservationId::new());
    assert_eq!(counts(&reserve(store, &first).await), [count(2, 0)]);
    store.commit(&first, &[]).await.unwrap();
    assert_eq!(get(store, &show).await, Some(count(3, 0)));
    // The item count exists: a counter that follows it starts there.
    assert_eq!(store.adjust(&items, 5, Seed::Count(0)).await.unwrap(), 5);
    let second = Hold::unit(
        update.clone(),
        Some(10),
        Seed::Items(2),
        ReservationId::new(),
    );
    assert_eq!(counts(&reserve(store, &second).await), [count(5, 0)]);
    store.release(&second).await.unwrap();
    // Once it exists, it is its own: the item count no longer moves it.
    assert_eq!(store.adjust(&items, 1, Seed::Count(0)).await.unwrap(), 6);
    assert_eq!(get(store, &update).await, Some(count(5, 0)));
    // A counter with a seed of its own ignores the item count.
    let delete = Counter::action(user, "projects", Action::Delete);
    let third = Hold::unit(
        delete.clone(),
        Some(10),
        Seed::Count(1),
        ReservationId::new(),
    );
    assert_eq!(counts(&reserve(store, &third).await), [count(1, 0)]);
}

/// Adjustments saturate; `set` sets; neither touches holds.
pub async fn adjust_and_set(store: &dyn UsageStore, user: &str) {
    let clients = Counter::items(user, "clients");
    assert_eq!(store.adjust(&clients, -3, Seed::Count(2)).await.unwrap(), 0);
    assert_eq!(
        store.adjust(&clients, 4, Seed::Count(100)).await.unwrap(),
        4
    );
    let held = Hold::unit(
        clients.clone(),
        Some(10),
        Seed::Count(0),
        ReservationId::new(),
    );
    assert!(reserve(store, &held).await.is_reserved());
    store.set(&clients, 7).await.unwrap();
    assert_eq!(get(store, &clients).await, Some(count(7, 1)));
    assert_eq!(
        store
            .adjust(&clients, i64::MAX, Seed::Count(0))
            .await
            .unwrap(),
        7 + i64::MAX.unsigned_abs()
    );
    store.set(&clients, u64::MAX - 1).await.unwrap();
    assert_eq!(
        store.adjust(&clients, 5, Seed::Count(0)).await.unwrap(),
        u64::MAX
    );
}

/// This month, on the wall clock, and the month after: periods whose markers no store forgets
/// during the check.
fn this_month_and_the_next() -> (Window, Window) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let this = Period::Month.window(now);
    (this, Period::Month.window(this.end()))
}

async fn mark(store: &dyn UsageStore, counter: &Counter, marker: &str) -> bool {
    store
        .mark(counter, marker)
        .await
        .expect("the store answers")
}

/// A marker is set once per counter, period and name: the first call answers `true`, every
/// later one `false`; another name, another counter, another user and another period each
/// have markers of their own. Markers need no counter, and do not create one.
pub async fn markers_are_set_once(store: &dyn UsageStore, user: &str) {
    let tasks = Counter::action(user, "tasks", Action::Create);
    assert!(
        mark(store, &tasks, "alert:80%").await,
        "the first call sets it"
    );
    assert!(!mark(store, &tasks, "alert:80%").await, "set already");
    assert!(!mark(store, &tasks, "alert:80%").await, "still set");
    // Another name.
    assert!(mark(store, &tasks, "alert:100%").await);
    assert!(!mark(store, &tasks, "alert:100%").await);
    assert!(mark(store, &tasks, "alert:left:10").await);
    // A name with bytes that keys escape.
    assert!(mark(store, &tasks, "über {x}: 1").await);
    assert!(!mark(store, &tasks, "über {x}: 1").await);
    // Another counter: another resource, action, pool or grant, another user.
    for other in [
        Counter::action(user, "reports", Action::Create),
        Counter::action(user, "tasks", Action::Show),
        Counter::credits(user, "ai"),
        Counter::grant(user, "ai", "g1"),
        Counter::action(format!("{user}-other"), "tasks", Action::Create),
    ] {
        assert!(mark(store, &other, "alert:80%").await, "{other}");
        assert!(!mark(store, &other, "alert:80%").await, "{other}");
    }
    // A resource's items and its creates are one counter, with one set of markers.
    let clients = Counter::items(user, "clients");
    assert!(mark(store, &clients, "alert:80%").await);
    let creates = Counter::action(user, "clients", Action::Create);
    assert!(!mark(store, &creates, "alert:80%").await);
    // Each period of a counter has its own markers, apart from the lifetime counter's.
    let (this, next) = this_month_and_the_next();
    let monthly = Counter::action(user, "tasks", Action::Create).in_period(this);
    assert!(mark(store, &monthly, "alert:80%").await, "this month");
    assert!(!mark(store, &monthly, "alert:80%").await, "this month");
    let following = Counter::action(user, "tasks", Action::Create).in_period(next);
    assert!(mark(store, &following, "alert:80%").await, "next month");
    assert!(!mark(store, &following, "alert:80%").await, "next month");
    assert!(
        !mark(store, &monthly, "alert:80%").await,
        "this month, still"
    );
    let pool = Counter::credits(user, "ai").in_period(this);
    assert!(mark(store, &pool, "alert:80%").await, "the pool's month");
    // A day of the same month is another period.
    let day = Counter::credits(user, "ai").in_period(Period::Day.window(this.start()));
    assert!(mark(store, &day, "alert:80%").await, "a day");
    // Marking created no counter.
    for counter in [&tasks, &clients, &monthly, &pool] {
        assert_eq!(get(store, counter).await, None, "{counter}");
    }
}

/// `tasks` concurrent calls spread over `stores` in turn (several connections or instances of
/// one shared store), released at once, each marking the same marker of a lifetime counter
/// and then of a period counter: exactly one call sets each.
pub async fn concurrent_marks_over(stores: &[Arc<dyn UsageStore>], user: &str, tasks: usize) {
    assert!(!stores.is_empty(), "at least one store");
    let (this, _) = this_month_and_the_next();
    let lifetime = Counter::action(user, "tasks", Action::Create);
    let monthly = Counter::credits(user, "ai").in_period(this);
    let start = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|n| {
            let store = Arc::clone(&stores[n % stores.len()]);
            let (lifetime, monthly) = (lifetime.clone(), monthly.clone());
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let first = mark(store.as_ref(), &lifetime, "alert:100%").await;
                let second = mark(store.as_ref(), &monthly, "alert:100%").await;
                (usize::from(first), usize::from(second))
            })
        })
        .collect();
    let (mut lifetimes, mut months) = (0, 0);
    for handle in handles {
        let (first, second) = handle.await.expect("no panic");
        lifetimes += first;
        months += second;
    }
    assert_eq!(
        (lifetimes, months),
        (1, 1),
        "calls that set the markers, of {tasks}"
    );
    for store in stores {
        assert!(!mark(store.as_ref(), &lifetime, "alert:100%").await);
        assert!(!mark(store.as_ref(), &monthly, "alert:100%").await);
    }
}

/// `tasks` concurrent reservations of `cost` each against a pool with `left` units left: exactly
/// `left / cost` pass, and the pool ends at its maximum. `max` is the pool's limit.
pub async fn concurrent_costs(
    store: Arc<dyn UsageStore>,
    user: &str,
    max: u64,
    left: u64,
    cost: u64,
    tasks: usize,
) {
    concurrent_costs_over(&[store], user, max, left, cost, tasks).await;
}

/// [`concurrent_costs`] with the tasks spread over `stores` in turn: several connections (or
/// instances) to one shared store, all released at once.
pub async fn concurrent_costs_over(
    stores: &[Arc<dyn UsageStore>],
    user: &str,
    max: u64,
    left: u64,
    cost: u64,
    tasks: usize,
) {
    assert!(!stores.is_empty(), "at least one store");
    let pool = Counter::credits(user, "ai");
    stores[0].set(&pool, max - left).await.unwrap();
    let start = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|n| {
            let store = Arc::clone(&stores[n % stores.len()]);
            let pool = pool.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                let hold =
                    Hold::new(ReservationId::new()).with(Line::new(pool, cost).limit(Some(max)));
                start.wait().await;
                let held = store
                    .reserve(&hold, LEASE)
                    .await
                    .expect("the store answers");
                if let Held::Reserved(counts) = &held {
                    assert!(
                        counts[0].total() + cost <= max,
                        "reserved past the limit: {counts:?}"
                    );
                    store.commit(&hold, &[]).await.expect("the store answers");
                    1
                } else {
                    0
                }
            })
        })
        .collect();
    let mut passed = 0;
    for handle in handles {
        passed += handle.await.expect("no panic");
    }
    assert_eq!(passed, left / cost, "reservations that passed");
    for store in stores {
        assert_eq!(
            get(store.as_ref(), &pool).await,
            Some(count(max - left + (left / cost) * cost, 0))
        );
    }
}
