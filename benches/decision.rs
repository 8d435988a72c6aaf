//! The decision alone: a pure function of the catalog, the subscriber record and the time.
//!
//! Five cases: an allowed create below the limit, a create denied at the limit (the denial is
//! built, not rendered), an expired trial that falls back to the catalog's fallback plan, an
//! allowed create under a monthly quota (the clock is read and the month found), and an allowed
//! create under a limit raised by an active add-on with an end (the clock is read for it).
//!
//! Beside them, the period arithmetic a quota needs on each request: the calendar month that
//! holds now, and the billing cycle (month, year, week, hour) anchored at an instant that does.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tower_plans::{
    catalog::Period,
    decision::{decide, Decision, Policy},
    subscriber::{AddonGrant, Assignment},
    Action, Catalog, Subscriber,
};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// "Now" for every case: 1 January 2024.
const NOW: u64 = 1_704_067_200_000;

fn catalog() -> Catalog {
    Catalog::from_json(
        r#"{
            "trial": {"duration": 14, "fallback": "free"},
            "plans": [
                {"name": "free", "limits": {"clients": 3, "groups": {"index": null, "create": 2}}},
                {"name": "regular", "limits": {
                    "clients": 10, "groups": 5, "reports": {"create": {"max": 20, "per": "month"}}
                }},
                {"name": "pro", "limits": {"clients": 30, "groups": null}}
            ],
            "addons": [{"name": "more-clients", "limits": {"clients": 10}}]
        }"#,
    )
    .expect("the bench catalog parses")
}

fn bench_decide(c: &mut Criterion) {
    let catalog = catalog();
    let policy = Policy::new();
    let clients: Arc<str> = Arc::from("clients");
    let reports: Arc<str> = Arc::from("reports");
    let create = Action::Create;

    let allowed = Subscriber::new()
        .with_name("ann")
        .with_plan(Assignment::new("regular"))
        .with_usage("clients", 4);
    let at_limit = Subscriber::new()
        .with_name("bob")
        .with_plan(Assignment::new("free"))
        .with_usage("clients", 3);
    // A 14-day trial of "pro" that began 30 days ago: "free" applies, with 1 client of 3.
    let expired_trial = Subscriber::new()
        .with_name("cat")
        .with_plan(
            Assignment::new("pro")
                .as_trial()
                .joined_at(NOW - 30 * DAY_MS),
        )
        .with_usage("clients", 1);
    // 4 of 20 reports this month.
    let quota = Subscriber::new()
        .with_name("dan")
        .with_plan(Assignment::new("regular"))
        .with_usage("reports", 4);
    // 12 clients: above regular's 10, below the 20 that a month's add-on makes it.
    let addon = Subscriber::new()
        .with_name("eve")
        .with_plan(Assignment::new("regular"))
        .with_addon(
            AddonGrant::new("more-clients")
                .starts_at(NOW - DAY_MS)
                .expires_at(NOW + 30 * DAY_MS),
        )
        .with_usage("clients", 12);

    // Each case decides what it claims to, outside the measurement.
    assert!(matches!(
        decide(&catalog, Some(&allowed), NOW, &clients, &create, &policy),
        Decision::Allow(_)
    ));
    assert!(matches!(
        decide(&catalog, Some(&at_limit), NOW, &clients, &create, &policy),
        Decision::Deny(_)
    ));
    match decide(
        &catalog,
        Some(&expired_trial),
        NOW,
        &clients,
        &create,
        &policy,
    ) {
        Decision::Allow(allowed) => assert_eq!(&*allowed.plan, "free"),
        Decision::Deny(denial) => panic!("the trial falls back to free: {denial:?}"),
    }
    match decide(&catalog, Some(&quota), NOW, &reports, &create, &policy) {
        Decision::Allow(allowed) => assert!(allowed.resets().is_some()),
        Decision::Deny(denial) => panic!("4 of 20 reports: {denial:?}"),
    }
    match decide(&catalog, Some(&addon), NOW, &clients, &create, &policy) {
        Decision::Allow(allowed) => assert_eq!(allowed.limit.maximum(), Some(20)),
        Decision::Deny(denial) => panic!("12 of 20 clients: {denial:?}"),
    }

    let mut group = c.benchmark_group("decide");
    for (name, user, resource) in [
        ("allow", &allowed, &clients),
        ("deny_at_limit", &at_limit, &clients),
        ("expired_trial_fallback", &expired_trial, &clients),
        ("allow_quota", &quota, &reports),
        ("allow_addon", &addon, &clients),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                decide(
                    black_box(&catalog),
                    black_box(Some(user)),
                    black_box(NOW),
                    black_box(resource),
                    black_box(&create),
                    black_box(&policy),
                )
            })
        });
    }
    group.finish();
}

fn bench_period(c: &mut Criterion) {
    // Anchored on 31 January 2023 at 10:00, so that months clamp: now is in the cycle from
    // 31 December 2023 to 31 January 2024, at 10:00.
    let anchor = 1_675_159_200_000;
    let month = Period::Month.anchored_window(anchor, NOW);
    assert_eq!(
        (month.start(), month.end()),
        (1_704_016_800_000, 1_706_695_200_000)
    );
    let mut group = c.benchmark_group("period");
    group.bench_function("calendar_month", |b| {
        b.iter(|| black_box(Period::Month).window(black_box(NOW)))
    });
    for per in [Period::Month, Period::Year, Period::Week, Period::Hour] {
        group.bench_function(format!("anchored_{per}"), |b| {
            b.iter(|| black_box(per).anchored_window(black_box(anchor), black_box(NOW)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_decide, bench_period
}
criterion_main!(benches);
