//! The terms around a limit through the public API: soft limits (`overage`), billing-cycle
//! periods (`anchor`) and rates, in the catalog (JSON and builder, every malformed value's path
//! pinned) and in `decide()`.

use serde_json::{json, Value};
use tower_plans::{
    catalog::{Anchor, Limit, Overage, Period, Plan, Rate, RatePer, Rule},
    decision::{decide, Decision, Policy},
    subscriber::Assignment,
    Action, Catalog, Denial, Subscriber,
};

/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

fn catalog(value: Value) -> Catalog {
    Catalog::from_value(&value).unwrap_or_else(|error| panic!("{value}: {error}"))
}

fn error_path(value: Value) -> String {
    match Catalog::from_value(&value) {
        Ok(_) => panic!("{value} should not load"),
        Err(error) => error.path().to_owned(),
    }
}

fn plan_with(limits: Value) -> Value {
    json!({"plans": [{"name": "pro", "limits": limits}]})
}

#[test]
fn limits_read_overage_anchor_and_rate() {
    let catalog = catalog(json!({
        "plans": [{
            "name": "pro",
            "anchor": "subscription",
            "rate": {"max": 100, "per": "second", "burst": 20},
            "limits": {
                "api": {
                    "index": {"rate": {"max": 60, "per": "minute"}},
                    "create": {"max": 1000, "per": "month", "overage": 200},
                    "update": {"max": 10, "overage": null},
                    "delete": {"max": 5, "per": "hour", "anchor": "calendar"}
                }
            },
            "credits": {"ai": {"max": 1000, "per": "month", "overage": 50}}
        }]
    }));
    let pro = catalog.plan("pro").unwrap();
    assert_eq!(pro.anchor(), Some(Anchor::Subscription));
    assert_eq!(
        pro.rate(),
        Some(Rate::new(100, RatePer::Second).with_burst(20))
    );
    let index = pro.rule("api", &Action::Index).unwrap();
    assert_eq!(index.limit, Limit::Unlimited);
    assert_eq!(index.rate, Some(Rate::new(60, RatePer::Minute)));
    let create = pro.rule("api", &Action::Create).unwrap();
    assert_eq!(
        create,
        Rule::new(Limit::per(1000, Period::Month)).with_overage(Overage::Up(200))
    );
    assert_eq!(create.hard_maximum(), Some(1200));
    assert_eq!(create.anchor, None, "the plan's anchor applies");
    let update = pro.rule("api", &Action::Update).unwrap();
    assert_eq!(update.limit, Limit::Limited(10));
    assert_eq!(update.overage, Overage::Unbounded);
    assert_eq!(update.hard_maximum(), None);
    // A PATCH reads the update rule, as it reads the update limit.
    assert_eq!(pro.rule("api", &Action::Patch), Some(update));
    let delete = pro.rule("api", &Action::Delete).unwrap();
    assert_eq!(delete.limit, Limit::per(5, Period::Hour));
    assert_eq!(delete.anchor, Some(Anchor::Calendar));
    assert_eq!(
        pro.credit_rule("ai"),
        Some(Rule::new(Limit::per(1000, Period::Month)).with_overage(Overage::Up(50)))
    );
    // The limits read as before.
    assert_eq!(
        pro.limit("api", &Action::Create),
        Limit::per(1000, Period::Month)
    );
}

#[test]
fn anchor_and_rate_are_reserved_keys_of_the_plan_shorthand() {
    let catalog = catalog(json!({"plans": [
        {"name": "pro", "clients": 3, "anchor": "subscription", "rate": {"max": 5, "per": "second"}}
    ]}));
    let pro = catalog.plan("pro").unwrap();
    assert_eq!(pro.resources().count(), 1, "only clients is a resource");
    assert_eq!(pro.anchor(), Some(Anchor::Subscription));
    assert_eq!(pro.rate(), Some(Rate::new(5, RatePer::Second)));
}

#[test]
fn the_builder_makes_the_catalog_the_json_makes() {
    let json = catalog(json!({"plans": [{
        "name": "pro",
        "anchor": "subscription",
        "rate": {"max": 100, "per": "second"},
        "limits": {"api": {
            "index": {"rate": {"max": 60, "per": "minute", "burst": 10}},
            "create": {"max": 1000, "per": "month", "overage": 200}
        }},
        "credits": {"ai": {"max": 50, "overage": null}}
    }]}));
    let built = Catalog::builder()
        .plan(
            Plan::new("pro")
                .with_anchor(Anchor::Subscription)
                .with_rate(Rate::new(100, RatePer::Second))
                .with_rule(
                    "api",
                    Action::Index,
                    Rule::new(Limit::Unlimited)
                        .with_rate(Rate::new(60, RatePer::Minute).with_burst(10)),
                )
                .with_rule(
                    "api",
                    Action::Create,
                    Rule::new(Limit::per(1000, Period::Month)).with_overage(Overage::Up(200)),
                )
                .with_credit_rule(
                    "ai",
                    Rule::new(Limit::Limited(50)).with_overage(Overage::Unbounded),
                ),
        )
        .build()
        .unwrap();
    assert_eq!(built, json);
}

#[test]
fn malformed_rules_name_their_path() {
    let cases = [
        (
            plan_with(json!({"api": {"create": {"max": 3, "overage": -1}}})),
            "plans[0].limits.api.create.overage",
        ),
        (
            plan_with(json!({"api": {"create": {"max": 3, "overage": "lots"}}})),
            "plans[0].limits.api.create.overage",
        ),
        (
            plan_with(json!({"api": {"create": {"max": 3, "anchor": "subscription"}}})),
            "plans[0].limits.api.create.anchor",
        ),
        (
            plan_with(json!({"api": {"create": {"max": 3, "per": "day", "anchor": "billing"}}})),
            "plans[0].limits.api.create.anchor",
        ),
        (
            plan_with(json!({"api": {"create": {"max": 3, "per": "fortnight"}}})),
            "plans[0].limits.api.create.per",
        ),
        (
            plan_with(json!({"api": {"create": {"per": "day"}}})),
            "plans[0].limits.api.create.max",
        ),
        (
            plan_with(json!({"api": {"create": {"overage": 3}}})),
            "plans[0].limits.api.create.max",
        ),
        (
            plan_with(json!({"api": {"create": {"max": 3, "soft": true}}})),
            "plans[0].limits.api.create.soft",
        ),
        (
            plan_with(json!({"api": {"index": {"rate": 60}}})),
            "plans[0].limits.api.index.rate",
        ),
        (
            plan_with(json!({"api": {"index": {"rate": {"max": 0, "per": "minute"}}}})),
            "plans[0].limits.api.index.rate.max",
        ),
        (
            plan_with(json!({"api": {"index": {"rate": {"max": 60, "per": "week"}}}})),
            "plans[0].limits.api.index.rate.per",
        ),
        (
            plan_with(json!({"api": {"index": {"rate": {"max": 60}}}})),
            "plans[0].limits.api.index.rate.per",
        ),
        (
            plan_with(json!({"api": {"index": {"rate": {"per": "minute"}}}})),
            "plans[0].limits.api.index.rate.max",
        ),
        (
            plan_with(json!({"api": {"index": {"rate": {"max": 6, "per": "minute", "burst": 7}}}})),
            "plans[0].limits.api.index.rate.burst",
        ),
        (
            plan_with(json!({"api": {"index": {"rate": {"max": 6, "per": "minute", "burst": 0}}}})),
            "plans[0].limits.api.index.rate.burst",
        ),
        (
            plan_with(
                json!({"api": {"index": {"rate": {"max": 6, "per": "minute", "spread": 1}}}}),
            ),
            "plans[0].limits.api.index.rate.spread",
        ),
        (
            json!({"plans": [{"name": "pro", "limits": {}, "anchor": "yearly"}]}),
            "plans[0].anchor",
        ),
        (
            json!({"plans": [{"name": "pro", "limits": {}, "rate": {"max": 1}}]}),
            "plans[0].rate.per",
        ),
        (
            json!({"plans": [{"name": "pro", "limits": {},
                   "credits": {"ai": {"max": 5, "rate": {"max": 1, "per": "second"}}}}]}),
            "plans[0].credits.ai.rate",
        ),
        (
            json!({"plans": [{"name": "pro", "limits": {}}],
                   "addons": [{"name": "more", "limits": {"api": {"create": {"max": 5, "overage": 1}}}}]}),
            "addons[0].limits.api.create.overage",
        ),
        (
            json!({"plans": [{"name": "pro", "limits": {}}],
                   "addons": [{"name": "more", "limits": {}, "rate": {"max": 1, "per": "second"}}]}),
            "addons[0].rate",
        ),
        (
            json!({"plans": [{"name": "pro", "limits": {}}],
                   "addons": [{"name": "more", "limits": {}, "credits": {"ai": {"max": 5, "per": "month", "anchor": "subscription"}}}]}),
            "addons[0].credits.ai.anchor",
        ),
    ];
    for (value, path) in cases {
        assert_eq!(error_path(value.clone()), path, "{value}");
    }
}

#[test]
fn the_builder_checks_what_the_json_checks() {
    let anchored_lifetime = Plan::new("pro").with_rule(
        "api",
        Action::Create,
        Rule::new(Limit::Limited(3)).with_anchor(Anchor::Subscription),
    );
    let error = Catalog::builder()
        .plan(anchored_lifetime)
        .build()
        .unwrap_err();
    assert_eq!(error.path(), "plans[0].limits.api.create.anchor");

    let bursty = Plan::new("pro").with_rate(Rate::new(5, RatePer::Second).with_burst(9));
    let error = Catalog::builder().plan(bursty).build().unwrap_err();
    assert_eq!(error.path(), "plans[0].rate.burst");

    let zero = Plan::new("pro").with_rule(
        "api",
        Action::Index,
        Rule::new(Limit::Unlimited).with_rate(Rate::new(0, RatePer::Second)),
    );
    let error = Catalog::builder().plan(zero).build().unwrap_err();
    assert_eq!(error.path(), "plans[0].limits.api.index.rate.max");
}

// ---------------------------------------------------------------------------------------------
// Soft limits in the decision.

fn decide_create(catalog: &Catalog, usage: u64) -> Decision {
    let user = Subscriber::new()
        .with_name("john")
        .with_plan(Assignment::new("pro"))
        .with_usage("api", usage);
    decide(
        catalog,
        Some(&user),
        T0,
        &"api".into(),
        &Action::Create,
        &Policy::new(),
    )
}

#[test]
fn a_soft_limit_passes_flagged_up_to_its_overage_and_refuses_beyond() {
    let catalog = catalog(plan_with(
        json!({"api": {"create": {"max": 10, "overage": 2}}}),
    ));
    for (usage, overage) in [(0, 0), (9, 0), (10, 1), (11, 2)] {
        match decide_create(&catalog, usage) {
            Decision::Allow(allowed) => {
                assert_eq!(allowed.overage, overage, "at {usage}");
                let body = serde_json::to_value(&allowed).unwrap();
                if overage > 0 {
                    assert_eq!(body["overage"], overage);
                } else {
                    assert!(body.get("overage").is_none(), "{body}");
                }
                assert_eq!(allowed.remaining(), Some(10u64.saturating_sub(usage)));
            }
            Decision::Deny(denial) => panic!("at {usage}: {denial:?}"),
        }
    }
    match decide_create(&catalog, 12) {
        Decision::Deny(Denial::LimitReached { maximum, usage, .. }) => {
            assert_eq!((maximum, usage), (10, 12));
        }
        other => panic!("expected a refusal at 12, got {other:?}"),
    }
    // Without end.
    let endless = catalog_endless();
    let Decision::Allow(allowed) = decide_create(&endless, 1_000_000) else {
        panic!("an overage without end never refuses");
    };
    assert_eq!(allowed.overage, 1_000_000 - 10 + 1);
}

fn catalog_endless() -> Catalog {
    catalog(plan_with(
        json!({"api": {"create": {"max": 10, "overage": null}}}),
    ))
}

#[test]
fn a_hard_limit_of_zero_with_an_overage_lets_the_overage_through() {
    let catalog = catalog(plan_with(
        json!({"api": {"create": {"max": 0, "overage": 1}}}),
    ));
    let Decision::Allow(allowed) = decide_create(&catalog, 0) else {
        panic!("the overage lets one through");
    };
    assert_eq!(allowed.overage, 1);
    assert!(matches!(decide_create(&catalog, 1), Decision::Deny(_)));
}
