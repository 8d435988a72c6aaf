//! Metered plans through the public API: the catalog's `meters` and credit pools (JSON and
//! builder), the record's `grants` of credits, and `decide()` on costs, pools, add-ons and
//! top-ups, with every malformed value's path pinned and a property that checks `decide()`
//! against a small model of its own.

use std::sync::Arc;

use http::Method;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower_plans::{
    catalog::{Addon, Cost, Limit, Period, Plan},
    decision::{decide, Decision, PlanState, Policy},
    routes::{RouteConfig, RouteTable},
    subscriber::{AddonGrant, Assignment, CreditGrant},
    Action, Allowed, Catalog, Denial, Subscriber,
};

const HOUR: u64 = 3_600_000;
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

fn arc(name: &str) -> Arc<str> {
    Arc::from(name)
}

// ---------------------------------------------------------------------------------------------
// The catalog: meters and credit pools
// ---------------------------------------------------------------------------------------------

/// Every meter form, pools of every kind, an add-on that raises a pool and one that declares a
/// pool no plan has.
const METERED: &str = r#"{
    "actions": ["export"],
    "plans": [
        {"name": "free", "limits": {"images": {"create": 2}}},
        {"name": "pro", "limits": {"images": {"create": 100}},
         "credits": {"ai": {"max": 1000, "per": "month"}, "storage": 50, "sandbox": null}}
    ],
    "addons": [
        {"name": "boost", "credits": {"ai": 500}},
        {"name": "archive", "limits": {"files": 10}, "credits": {"cold": {"max": 5, "per": "day"}}}
    ],
    "meters": {
        "images": {"create": {"cost": 5, "credits": "ai"}},
        "chat": {"index": {}, "create": {"credits": "ai", "report": true, "estimate": 200}},
        "reports": {"export": {"report": true}, "destroy": {"cost": 2}},
        "thaw": {"create": {"credits": "cold", "report": false, "cost": 3}}
    }
}"#;

#[test]
fn meters_read_costs_pools_reports_and_their_defaults() {
    let catalog = Catalog::from_json(METERED).expect("the catalog parses");
    let cost = |resource: &str, action: Action| catalog.cost(resource, &action).cloned();

    assert_eq!(
        cost("images", Action::Create),
        Some(Cost::fixed(5).from_pool("ai"))
    );
    let chat = cost("chat", Action::Create).expect("metered");
    assert!(chat.is_reported());
    assert_eq!((chat.units(), chat.pool()), (200, Some("ai")));
    assert_eq!(chat, Cost::reported(200).from_pool("ai"));
    // An empty meter costs 1 of the action's own limit; a reported one reserves 1.
    assert_eq!(cost("chat", Action::Index), Some(Cost::fixed(1)));
    assert_eq!(
        cost("reports", Action::custom("export")),
        Some(Cost::reported(1))
    );
    // `destroy` is `delete`, however the action is spelt when it is looked up.
    assert_eq!(cost("reports", Action::Delete), Some(Cost::fixed(2)));
    assert_eq!(
        cost("reports", Action::Custom(arc("destroy"))),
        Some(Cost::fixed(2))
    );
    // `"report": false` is a fixed cost.
    assert_eq!(
        cost("thaw", Action::Create),
        Some(Cost::fixed(3).from_pool("cold"))
    );
    // What is not metered has no cost.
    assert_eq!(cost("images", Action::Index), None);
    assert_eq!(cost("videos", Action::Create), None);
    assert_eq!(cost("reports", Action::Update), None);

    let mut meters: Vec<(String, Action, Cost)> = catalog
        .meters()
        .map(|(resource, action, cost)| (resource.to_string(), action.clone(), cost.clone()))
        .collect();
    meters.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        meters,
        [
            ("chat".into(), Action::Index, Cost::fixed(1)),
            (
                "chat".into(),
                Action::Create,
                Cost::reported(200).from_pool("ai")
            ),
            (
                "images".into(),
                Action::Create,
                Cost::fixed(5).from_pool("ai")
            ),
            ("reports".into(), Action::Delete, Cost::fixed(2)),
            (
                "reports".into(),
                Action::custom("export"),
                Cost::reported(1)
            ),
            (
                "thaw".into(),
                Action::Create,
                Cost::fixed(3).from_pool("cold")
            ),
        ]
    );
}

#[test]
fn pools_are_lifetime_renewing_or_unlimited_and_addons_raise_them() {
    let catalog = Catalog::from_json(METERED).expect("the catalog parses");
    let pro = catalog.plan("pro").expect("declared");
    assert_eq!(pro.credits("ai"), Some(Limit::per(1000, Period::Month)));
    assert_eq!(pro.credits("storage"), Some(Limit::Limited(50)));
    assert_eq!(pro.credits("sandbox"), Some(Limit::Unlimited));
    assert_eq!(pro.credits("cold"), None);
    let mut pools: Vec<(String, Limit)> = pro
        .pools()
        .map(|(pool, limit)| (pool.to_string(), limit))
        .collect();
    pools.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        pools,
        [
            ("ai".to_owned(), Limit::per(1000, Period::Month)),
            ("sandbox".to_owned(), Limit::Unlimited),
            ("storage".to_owned(), Limit::Limited(50)),
        ]
    );
    // A plan without pools has none.
    let free = catalog.plan("free").expect("declared");
    assert_eq!(free.credits("ai"), None);
    assert_eq!(free.pools().count(), 0);

    let boost = catalog.addon("boost").expect("declared");
    assert_eq!(boost.credits("ai"), Some(Limit::Limited(500)));
    assert_eq!(boost.pools().count(), 1);
    // `credits` is not a resource of an add-on either.
    assert_eq!(boost.resources().count(), 0);
    let archive = catalog.addon("archive").expect("declared");
    assert_eq!(archive.credits("cold"), Some(Limit::per(5, Period::Day)));

    // Every pool some plan or add-on declares, sorted: an add-on's pool is a pool a meter may
    // draw from.
    let names: Vec<&str> = catalog.pools().iter().map(|p| &**p).collect();
    assert_eq!(names, ["ai", "cold", "sandbox", "storage"]);
}

#[test]
fn credits_is_a_reserved_key_of_the_plan_shorthand() {
    let catalog = Catalog::from_json(
        r#"{"plans": [
            {"name": "basic", "clients": 3, "credits": {"ai": 100}},
            {"name": "pro", "limits": {"clients": 30}, "credits": {"ai": 1000}}
        ], "addons": [{"name": "boost", "clients": 5, "credits": {"ai": 50}}]}"#,
    )
    .expect("the catalog parses");
    let basic = catalog.plan("basic").expect("declared");
    assert_eq!(basic.credits("ai"), Some(Limit::Limited(100)));
    assert_eq!(basic.limit("clients", &Action::Create), Limit::Limited(3));
    assert!(basic.resource("credits").is_none());
    assert_eq!(basic.resources().count(), 1);
    let pro = catalog.plan("pro").expect("declared");
    assert_eq!(pro.credits("ai"), Some(Limit::Limited(1000)));
    let boost = catalog.addon("boost").expect("declared");
    assert_eq!(boost.credits("ai"), Some(Limit::Limited(50)));
    assert_eq!(
        boost.limit("clients", &Action::Create),
        Some(Limit::Limited(5))
    );
    assert!(boost.resource("credits").is_none());
    assert!(!catalog.is_governed("credits"));
    let resources: Vec<&str> = catalog.resources().iter().map(|r| &**r).collect();
    assert_eq!(resources, ["clients"]);
}

#[test]
fn a_resource_named_only_by_a_meter_is_governed_and_unlimited_on_every_plan() {
    let catalog = Catalog::from_json(METERED).expect("the catalog parses");
    for resource in ["chat", "reports", "thaw"] {
        assert!(catalog.is_governed(resource), "{resource}");
        let pro = catalog.plan("pro").expect("declared");
        assert!(pro.resource(resource).is_none(), "{resource}");
        assert_eq!(pro.limit(resource, &Action::Create), Limit::Unlimited);
    }
    let resources: Vec<&str> = catalog.resources().iter().map(|r| &**r).collect();
    assert_eq!(resources, ["chat", "files", "images", "reports", "thaw"]);
    assert_eq!(&*catalog.custom_actions()[0], "export");

    // The route table of the governed resources answers for them.
    let table = RouteTable::new(&RouteConfig::new(), catalog.resources()).expect("compiles");
    let found = table
        .resolve(&Method::POST, "/chat")
        .expect("a metered resource is governed");
    assert_eq!(&**found.resource, "chat");
    assert_eq!(*found.action, Action::Create);
    assert!(table.resolve(&Method::POST, "/videos").is_none());
}

/// The catalog of the error cases: one plan with a pool, one add-on, a custom action.
fn with(meters: Value, plan_credits: Value, addon_credits: Value) -> Value {
    json!({
        "actions": ["export"],
        "plans": [{"name": "pro", "limits": {"images": 10}, "credits": plan_credits}],
        "addons": [{"name": "boost", "credits": addon_credits}],
        "meters": meters,
    })
}

fn meters(meters: Value) -> Value {
    with(meters, json!({"ai": 100}), json!({"ai": 10}))
}

fn plan_credits(credits: Value) -> Value {
    with(json!({}), credits, json!(null))
}

fn addon_credits(credits: Value) -> Value {
    with(json!({}), json!(null), credits)
}

#[test]
fn malformed_meters_and_pools_name_their_path() {
    let cases = [
        // The meters.
        (meters(json!([])), "meters"),
        (meters(json!(5)), "meters"),
        (meters(json!({"images": 5})), "meters.images"),
        (meters(json!({"images": null})), "meters.images"),
        (
            meters(json!({"images": {"craete": {}}})),
            "meters.images.craete",
        ),
        (
            meters(json!({"reports": {"archive": {}}})),
            "meters.reports.archive",
        ),
        (
            meters(json!({"images": {"create": 5}})),
            "meters.images.create",
        ),
        (
            meters(json!({"images": {"create": null}})),
            "meters.images.create",
        ),
        (
            meters(json!({"images": {"create": {"price": 1}}})),
            "meters.images.create.price",
        ),
        (
            meters(json!({"images": {"create": {"cost": -1}}})),
            "meters.images.create.cost",
        ),
        (
            meters(json!({"images": {"create": {"cost": 1.5}}})),
            "meters.images.create.cost",
        ),
        (
            meters(json!({"images": {"create": {"cost": "5"}}})),
            "meters.images.create.cost",
        ),
        (
            meters(json!({"images": {"create": {"cost": 0}}})),
            "meters.images.create.cost",
        ),
        (
            meters(json!({"chat": {"create": {"report": true, "estimate": -3}}})),
            "meters.chat.create.estimate",
        ),
        (
            meters(json!({"chat": {"create": {"report": true, "estimate": 0}}})),
            "meters.chat.create.estimate",
        ),
        (
            meters(json!({"chat": {"create": {"report": "yes"}}})),
            "meters.chat.create.report",
        ),
        (
            meters(json!({"chat": {"create": {"report": true, "cost": 3}}})),
            "meters.chat.create.cost",
        ),
        (
            meters(json!({"chat": {"create": {"estimate": 3}}})),
            "meters.chat.create.estimate",
        ),
        (
            meters(json!({"images": {"create": {"credits": ""}}})),
            "meters.images.create.credits",
        ),
        (
            meters(json!({"images": {"create": {"credits": 5}}})),
            "meters.images.create.credits",
        ),
        (
            meters(json!({"images": {"create": {"credits": ["ai"]}}})),
            "meters.images.create.credits",
        ),
        // A pool no plan or add-on declares, however the action is spelt.
        (
            meters(json!({"images": {"create": {"credits": "a1"}}})),
            "meters.images.create.credits",
        ),
        (
            meters(json!({"reports": {"destroy": {"credits": "a1"}}})),
            "meters.reports.destroy.credits",
        ),
        (
            meters(json!({"reports": {"export": {"credits": "a1"}}})),
            "meters.reports.export.credits",
        ),
        (meters(json!({"": {}})), r#"meters[""]"#),
        (
            meters(json!({"my images": {"create": {"cost": -1}}})),
            r#"meters["my images"].create.cost"#,
        ),
        (
            meters(json!({"x": {"delete": {}, "destroy": {}}})),
            "meters.x.destroy",
        ),
        // A plan's pools.
        (plan_credits(json!(5)), "plans[0].credits"),
        (plan_credits(json!([])), "plans[0].credits"),
        (plan_credits(json!("ai")), "plans[0].credits"),
        (plan_credits(json!({"ai": -1})), "plans[0].credits.ai"),
        (plan_credits(json!({"ai": 1.5})), "plans[0].credits.ai"),
        (plan_credits(json!({"ai": "100"})), "plans[0].credits.ai"),
        (plan_credits(json!({"ai": true})), "plans[0].credits.ai"),
        // `{"max": 10}` alone is a lifetime allowance; an anchor needs a period.
        (
            plan_credits(json!({"ai": {"max": 10, "anchor": "subscription"}})),
            "plans[0].credits.ai.anchor",
        ),
        (
            plan_credits(json!({"ai": {"per": "month"}})),
            "plans[0].credits.ai.max",
        ),
        (
            plan_credits(json!({"ai": {"max": 10, "per": "fortnight"}})),
            "plans[0].credits.ai.per",
        ),
        (
            plan_credits(json!({"ai": {"max": -1, "per": "day"}})),
            "plans[0].credits.ai.max",
        ),
        (
            plan_credits(json!({"ai": {"max": 10, "per": "day", "every": 2}})),
            "plans[0].credits.ai.every",
        ),
        (plan_credits(json!({"": 5})), r#"plans[0].credits[""]"#),
        (
            plan_credits(json!({"my pool": -1})),
            r#"plans[0].credits["my pool"]"#,
        ),
        // An add-on's pools.
        (addon_credits(json!(500)), "addons[0].credits"),
        (addon_credits(json!({"ai": -5})), "addons[0].credits.ai"),
        (
            addon_credits(json!({"ai": {"max": 5, "per": "hourly"}})),
            "addons[0].credits.ai.per",
        ),
        (addon_credits(json!({"": 5})), r#"addons[0].credits[""]"#),
    ];
    for (catalog, path) in cases {
        let error = Catalog::from_value(&catalog).expect_err(&catalog["meters"].to_string());
        assert_eq!(error.path(), path, "{catalog}: {error}");
        assert!(!error.message().is_empty());
    }

    // The plan shorthand: `credits` is read as pools there too, never as a resource.
    for (catalog, path) in [
        (
            json!([{"name": "pro", "clients": 3, "credits": 5}]),
            "plans[0].credits",
        ),
        (
            json!({"plans": [{"name": "pro", "credits": {"ai": -1}}]}),
            "plans[0].credits.ai",
        ),
        (
            json!({"plans": [{"name": "free"}], "addons": [{"name": "boost", "credits": 5}]}),
            "addons[0].credits",
        ),
        // `meters` exists only in the object form, and is spelt so.
        (json!({"plans": [], "meter": {}}), "meter"),
    ] {
        let error = Catalog::from_value(&catalog).expect_err(&catalog.to_string());
        assert_eq!(error.path(), path, "{catalog}: {error}");
    }
}

#[test]
fn good_edge_forms_of_meters_and_pools() {
    // `null` meters and pools are none; a meter may draw from an add-on's pool; a pool of 0 is
    // a pool; a meter's action may be a custom one.
    let catalog = Catalog::from_value(&json!({
        "actions": ["export"],
        "plans": [{"name": "pro", "limits": {}, "credits": {"ai": 0}}, {"name": "free", "credits": null}],
        "addons": [{"name": "boost", "credits": {"turbo": 5}}],
        "meters": {"reports": {"export": {"credits": "turbo", "cost": 2}}},
    }))
    .expect("parses");
    assert_eq!(
        catalog.cost("reports", &Action::custom("export")),
        Some(&Cost::fixed(2).from_pool("turbo"))
    );
    assert_eq!(
        catalog.plan("pro").and_then(|p| p.credits("ai")),
        Some(Limit::Limited(0))
    );
    assert_eq!(catalog.plan("free").map(|p| p.pools().count()), Some(0));
    // `null` properties of a meter are their defaults.
    let defaults = Catalog::from_value(&json!({
        "plans": [{"name": "free"}],
        "meters": {
            "images": {"create": {"cost": null, "credits": null, "report": null}},
            "chat": {"create": {"report": true, "estimate": null}},
        },
    }))
    .expect("parses");
    assert_eq!(
        defaults.cost("images", &Action::Create),
        Some(&Cost::fixed(1))
    );
    assert_eq!(
        defaults.cost("chat", &Action::Create),
        Some(&Cost::reported(1))
    );
    let none =
        Catalog::from_value(&json!({"plans": [{"name": "free"}], "meters": null})).expect("parses");
    assert_eq!(none.meters().count(), 0);
    assert!(none.pools().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The builder: the same catalogs, the same checks
// ---------------------------------------------------------------------------------------------

#[test]
fn the_builder_makes_the_catalog_the_json_makes() {
    let json = Catalog::from_json(METERED).expect("the catalog parses");
    // The meters in another order than the JSON's, and a meter set twice (the last wins).
    let built = Catalog::builder()
        .action("export")
        .plan(Plan::new("free").create_limit("images", 2))
        .plan(
            Plan::new("pro")
                .create_limit("images", 100)
                .with_credits("ai", Limit::per(1000, Period::Month))
                .with_credits("storage", Limit::Limited(50))
                .with_credits("sandbox", Limit::Unlimited),
        )
        .addon(Addon::new("boost").with_credits("ai", Limit::Limited(500)))
        .addon(
            Addon::new("archive")
                .create_limit("files", 10)
                .with_credits("cold", Limit::per(5, Period::Day)),
        )
        .meter("thaw", Action::Create, Cost::fixed(3).from_pool("cold"))
        .meter("reports", Action::custom("export"), Cost::fixed(7))
        .meter("reports", Action::Custom(arc("destroy")), Cost::fixed(2))
        .meter("reports", Action::custom("export"), Cost::reported(1))
        .meter("chat", Action::Index, Cost::fixed(1))
        .meter("chat", Action::Create, Cost::reported(200).from_pool("ai"))
        .meter("images", Action::Create, Cost::fixed(5).from_pool("ai"))
        .build()
        .expect("the catalog builds");
    assert_eq!(built, json);
    assert_eq!(
        built.cost("reports", &Action::custom("export")),
        Some(&Cost::reported(1))
    );
    assert_eq!(built.meters().count(), 6);
}

#[test]
fn the_builder_declares_a_meters_custom_action_and_governs_its_resource() {
    let catalog = Catalog::builder()
        .plan(Plan::new("pro").with_credits("ai", Limit::Limited(10)))
        .meter(
            "reports",
            Action::custom("export"),
            Cost::fixed(2).from_pool("ai"),
        )
        .build()
        .expect("builds");
    let actions: Vec<&str> = catalog.custom_actions().iter().map(|a| &**a).collect();
    assert_eq!(actions, ["export"]);
    assert!(catalog.is_governed("reports"));
    let json = Catalog::from_value(&json!({
        "actions": ["export"],
        "plans": [{"name": "pro", "limits": {}, "credits": {"ai": 10}}],
        "meters": {"reports": {"export": {"cost": 2, "credits": "ai"}}},
    }))
    .expect("parses");
    assert_eq!(catalog, json);
}

#[test]
fn the_builder_checks_what_the_json_checks() {
    let pro = || Plan::new("pro").with_credits("ai", Limit::Limited(100));
    let cases = [
        (
            Catalog::builder().plan(pro()).meter(
                "images",
                Action::Create,
                Cost::fixed(1).from_pool("a1"),
            ),
            "meters.images.create.credits",
        ),
        (
            Catalog::builder()
                .plan(pro())
                .meter("", Action::Create, Cost::fixed(1)),
            r#"meters[""]"#,
        ),
        (
            Catalog::builder()
                .plan(pro())
                .meter("images", Action::Create, Cost::fixed(0)),
            "meters.images.create.cost",
        ),
        (
            Catalog::builder().plan(pro()).meter(
                "chat",
                Action::Create,
                Cost::reported(0).from_pool("ai"),
            ),
            "meters.chat.create.estimate",
        ),
        (
            Catalog::builder().plan(pro()).meter(
                "reports",
                Action::Custom(arc("")),
                Cost::fixed(1),
            ),
            r#"meters.reports[""]"#,
        ),
        (
            Catalog::builder()
                .plan(pro())
                .plan(Plan::new("free").with_credits("", Limit::Limited(1))),
            r#"plans[1].credits[""]"#,
        ),
        (
            Catalog::builder()
                .plan(pro())
                .addon(Addon::new("boost").with_credits("", Limit::Limited(1))),
            r#"addons[0].credits[""]"#,
        ),
    ];
    for (builder, path) in cases {
        let error = builder.build().expect_err(path);
        assert_eq!(error.path(), path, "{error}");
    }
    // A pool declared only by an add-on is enough for a meter.
    let catalog = Catalog::builder()
        .plan(Plan::new("free"))
        .addon(Addon::new("boost").with_credits("ai", Limit::Limited(5)))
        .meter("images", Action::Create, Cost::fixed(1).from_pool("ai"))
        .build()
        .expect("builds");
    assert_eq!(catalog.pools(), [arc("ai")]);
}

// ---------------------------------------------------------------------------------------------
// The record's grants of credits
// ---------------------------------------------------------------------------------------------

#[test]
fn records_read_their_grants_of_credits() {
    let john = Subscriber::from_value(&json!({
        "name": "john",
        "plan": "pro",
        "clients": 2,
        "grants": [
            {"id": "g1", "credits": "ai", "amount": 500, "starts": 1, "expires": 2},
            {"id": "g2", "credits": "ai", "amount": 0},
            {"id": "g3", "credits": "storage", "amount": 5, "starts": null, "expires": null},
            {"id": "g4", "credits": "ai", "amount": 7.0, "starts": 3, "expires": 3}
        ]
    }))
    .expect("the record parses");
    assert_eq!(
        john.grants,
        [
            CreditGrant::new("g1", "ai", 500).starts_at(1).expires_at(2),
            CreditGrant::new("g2", "ai", 0),
            CreditGrant::new("g3", "storage", 5),
            CreditGrant::new("g4", "ai", 7).starts_at(3).expires_at(3),
        ]
    );
    // `grants` is never usage, in the shorthand form.
    assert!(john.usage.resource("grants").is_none());
    assert_eq!(john.usage.count("clients"), Some(2));
    assert_eq!(john.usage.len(), 1);
    // The builder makes the same record.
    let built = Subscriber::new()
        .with_name("john")
        .with_plan(Assignment::new("pro"))
        .with_usage("clients", 2)
        .with_grant(CreditGrant::new("g1", "ai", 500).starts_at(1).expires_at(2))
        .with_grant(CreditGrant::new("g2", "ai", 0))
        .with_grant(CreditGrant::new("g3", "storage", 5))
        .with_grant(CreditGrant::new("g4", "ai", 7).starts_at(3).expires_at(3));
    assert_eq!(john, built);

    // A grant is active from `starts` (inclusive) until `expires` (exclusive).
    let g1 = &john.grants[0];
    assert!(!g1.is_active_at(0));
    assert!(g1.is_active_at(1));
    assert!(!g1.is_active_at(2));
    assert!(john.grants[2].is_active_at(0) && john.grants[2].is_active_at(u64::MAX));
    assert!(!john.grants[3].is_active_at(3));

    for record in [
        json!({"plan": "pro", "grants": null}),
        json!({"plan": "pro", "grants": []}),
        json!({"plan": "pro"}),
    ] {
        let user = Subscriber::from_value(&record).expect("parses");
        assert!(user.grants.is_empty(), "{record}");
        assert!(user.usage.is_empty(), "{record}");
    }
    // With a `usage` property, `grants` is still read.
    let user = Subscriber::from_value(&json!({
        "usage": {"clients": 1},
        "grants": [{"id": "g1", "credits": "ai", "amount": 1}]
    }))
    .expect("parses");
    assert_eq!(user.grants, [CreditGrant::new("g1", "ai", 1)]);
}

#[test]
fn malformed_grants_name_their_path() {
    let grant = |fields: Value| json!({"plan": "pro", "grants": [fields]});
    let good = || json!({"id": "g1", "credits": "ai", "amount": 5});
    let with_field = |key: &str, value: Value| {
        let mut fields = good();
        fields[key] = value;
        grant(fields)
    };
    let without = |key: &str| {
        let mut fields = good();
        fields.as_object_mut().expect("an object").remove(key);
        grant(fields)
    };
    let cases = [
        (json!({"grants": {}}), "grants"),
        (json!({"grants": 5}), "grants"),
        (json!({"grants": "g1"}), "grants"),
        (grant(json!(5)), "grants[0]"),
        (grant(json!(null)), "grants[0]"),
        (grant(json!(["g1", "ai", 5])), "grants[0]"),
        (without("id"), "grants[0].id"),
        (with_field("id", json!("")), "grants[0].id"),
        (with_field("id", json!(5)), "grants[0].id"),
        (with_field("id", json!(null)), "grants[0].id"),
        (without("credits"), "grants[0].credits"),
        (with_field("credits", json!("")), "grants[0].credits"),
        (with_field("credits", json!(5)), "grants[0].credits"),
        (with_field("credits", json!({"ai": 5})), "grants[0].credits"),
        (without("amount"), "grants[0].amount"),
        (with_field("amount", json!(-5)), "grants[0].amount"),
        (with_field("amount", json!(1.5)), "grants[0].amount"),
        (with_field("amount", json!("500")), "grants[0].amount"),
        (with_field("amount", json!(null)), "grants[0].amount"),
        (with_field("amount", json!(1e20)), "grants[0].amount"),
        (with_field("starts", json!(-1)), "grants[0].starts"),
        (
            with_field("starts", json!("2024-01-01")),
            "grants[0].starts",
        ),
        (with_field("expires", json!(1.5)), "grants[0].expires"),
        (with_field("expires", json!(true)), "grants[0].expires"),
        (
            grant(json!({"id": "g1", "credits": "ai", "amount": 5, "starts": 10, "expires": 9})),
            "grants[0].expires",
        ),
        (with_field("pool", json!("ai")), "grants[0].pool"),
        (with_field("quantity", json!(2)), "grants[0].quantity"),
        (
            json!({"grants": [good(), {"id": "g2", "credits": "ai", "amount": 1}, good()]}),
            "grants[2].id",
        ),
        // Ids are unique across pools too: a grant's spending is counted under its id.
        (
            json!({"grants": [good(), {"id": "g1", "credits": "storage", "amount": 1}]}),
            "grants[1].id",
        ),
    ];
    for (record, path) in cases {
        let error = Subscriber::from_value(&record).expect_err(&record.to_string());
        assert_eq!(error.path(), path, "{record}: {error}");
        assert!(!error.message().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------------------

/// free has no pool; pro a monthly `ai` pool of 1000 and a lifetime `storage` pool of 50; max an
/// unlimited `ai` pool. boost adds 500 `ai`, more-images 10 image creates.
const DECIDING: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "actions": ["export"],
    "plans": [
        {"name": "free", "limits": {"images": {"create": 20}, "reports": {"export": 10}}},
        {"name": "pro", "limits": {"images": {"create": 100}, "reports": {"export": 10}},
         "credits": {"ai": {"max": 1000, "per": "month"}, "storage": 50}},
        {"name": "max", "limits": {}, "credits": {"ai": null}}
    ],
    "addons": [
        {"name": "boost", "credits": {"ai": 500}},
        {"name": "more-images", "limits": {"images": 10}},
        {"name": "image-pack", "limits": {"images": 10}, "credits": {"ai": 100}}
    ],
    "meters": {
        "images": {"create": {"cost": 5, "credits": "ai"}},
        "videos": {"create": {"cost": 1200, "credits": "ai"}},
        "chat": {"create": {"credits": "ai", "report": true, "estimate": 200}},
        "uploads": {"create": {"cost": 3, "credits": "storage"}},
        "reports": {"export": {"cost": 2}}
    }
}"#;

fn deciding() -> Catalog {
    Catalog::from_json(DECIDING).expect("the test catalog parses")
}

/// A user named john on `plan` with these add-ons and grants of credits.
fn on(plan: &str, addons: &[AddonGrant], grants: &[CreditGrant]) -> Subscriber {
    let mut user = Subscriber::new()
        .with_name("john")
        .with_plan(Assignment::new(plan));
    for addon in addons {
        user = user.with_addon(addon.clone());
    }
    for grant in grants {
        user = user.with_grant(grant.clone());
    }
    user
}

fn decide_at(
    catalog: &Catalog,
    user: &Subscriber,
    now: u64,
    resource: &str,
    action: &Action,
) -> Decision {
    decide(
        catalog,
        Some(user),
        now,
        &arc(resource),
        action,
        &Policy::new(),
    )
}

fn create(user: &Subscriber, resource: &str) -> Decision {
    decide_at(&deciding(), user, T0, resource, &Action::Create)
}

#[track_caller]
fn expect_allowed(decision: Decision) -> Allowed {
    match decision {
        Decision::Allow(allowed) => allowed,
        Decision::Deny(denial) => panic!("expected an allowed request, got {denial:?}"),
    }
}

#[track_caller]
fn expect_denied(decision: Decision) -> Denial {
    match decision {
        Decision::Deny(denial) => denial,
        Decision::Allow(allowed) => panic!("expected a denial, got {allowed:?}"),
    }
}

fn body(denial: &Denial) -> Value {
    serde_json::from_slice(&denial.to_json_bytes()).expect("a JSON body")
}

fn month_end(now: u64) -> u64 {
    Period::Month.window(now).end()
}

#[test]
fn a_plan_without_the_pool_refuses_its_metered_requests() {
    let free = on("free", &[], &[]);
    let denial = expect_denied(create(&free, "images"));
    assert_eq!(
        denial,
        Denial::Credits {
            plan: arc("free"),
            pool: arc("ai"),
            maximum: 0,
            usage: 0,
            cost: 5,
            window: None,
        }
    );
    assert_eq!(denial.reason(), "credits");
    assert_eq!(denial.plan(), Some("free"));
    assert_eq!(denial.resets(), None);
    assert_eq!(
        denial.to_json_bytes(),
        br#"{"reason":"credits","plan":"free","credits":"ai","maximum":0,"usage":0,"cost":5}"#
    );
    // A pool the plan lacks is refused whatever the request's cost, a reported one too.
    assert!(matches!(
        expect_denied(create(&free, "chat")),
        Denial::Credits {
            maximum: 0,
            cost: 200,
            ..
        }
    ));
    // Another pool of the plan does not stand in for it.
    let max = on("max", &[], &[]);
    assert!(matches!(
        expect_denied(create(&max, "uploads")),
        Denial::Credits { maximum: 0, cost: 3, ref pool, .. } if &**pool == "storage"
    ));
}

#[test]
fn a_grant_covers_a_request_on_a_plan_without_the_pool() {
    let decide_with = |grants: &[CreditGrant]| create(&on("free", &[], grants), "images");
    assert!(matches!(
        decide_with(&[CreditGrant::new("g1", "ai", 5)]),
        Decision::Allow(_)
    ));
    // Grants add up, in any order.
    assert!(matches!(
        decide_with(&[
            CreditGrant::new("g1", "ai", 2),
            CreditGrant::new("g2", "ai", 3)
        ]),
        Decision::Allow(_)
    ));
    for (grants, why) in [
        (vec![CreditGrant::new("g1", "ai", 4)], "one short"),
        (vec![CreditGrant::new("g1", "storage", 500)], "another pool"),
        (vec![CreditGrant::new("g1", "ai", 0)], "nothing granted"),
        (
            vec![CreditGrant::new("g1", "ai", 5).starts_at(T0 + 1)],
            "not started",
        ),
        (
            vec![CreditGrant::new("g1", "ai", 5).expires_at(T0)],
            "expired",
        ),
        (
            vec![CreditGrant::new("g1", "ai", 500)
                .starts_at(T0 - HOUR)
                .expires_at(T0 - 1)],
            "over",
        ),
    ] {
        let denial = expect_denied(decide_with(&grants));
        // The denial names the allowance, which grants do not change.
        assert_eq!(
            body(&denial),
            json!({"reason": "credits", "plan": "free", "credits": "ai", "maximum": 0,
                   "usage": 0, "cost": 5}),
            "{why}"
        );
    }
    // The bounds: `starts` is inclusive, `expires` exclusive.
    assert!(matches!(
        decide_with(&[CreditGrant::new("g1", "ai", 5)
            .starts_at(T0)
            .expires_at(T0 + 1)]),
        Decision::Allow(_)
    ));
    let allowed = expect_allowed(decide_with(&[CreditGrant::new("g1", "ai", 5)]));
    let credits = allowed.credits.expect("a request that draws credits");
    // The allowance is still 0: the grant is spent beside it.
    assert_eq!(
        (&*credits.pool, credits.limit, credits.usage),
        ("ai", Limit::Limited(0), 0)
    );
    assert_eq!(credits.remaining(), Some(0));
}

#[test]
fn a_cost_above_the_allowance_and_the_active_grants_is_refused() {
    let pro = |addons: &[AddonGrant], grants: &[CreditGrant]| {
        create(&on("pro", addons, grants), "videos")
    };
    let refused = Denial::Credits {
        plan: arc("pro"),
        pool: arc("ai"),
        maximum: 1000,
        usage: 0,
        cost: 1200,
        window: Some(Period::Month.window(T0)),
    };
    let denial = expect_denied(pro(&[], &[]));
    assert_eq!(denial, refused);
    assert_eq!(denial.resets(), Some(month_end(T0)));
    assert_eq!(
        body(&denial),
        json!({"reason": "credits", "plan": "pro", "credits": "ai", "maximum": 1000,
               "usage": 0, "cost": 1200, "resets": month_end(T0)})
    );
    // The allowance plus the grants must cover the cost: exactly is enough.
    assert!(matches!(
        pro(&[], &[CreditGrant::new("g", "ai", 200)]),
        Decision::Allow(_)
    ));
    assert_eq!(
        expect_denied(pro(&[], &[CreditGrant::new("g", "ai", 199)])),
        refused
    );
    assert!(matches!(
        pro(
            &[],
            &[
                CreditGrant::new("a", "ai", 100),
                CreditGrant::new("b", "ai", 100).expires_at(T0 + 1)
            ]
        ),
        Decision::Allow(_)
    ));
    assert_eq!(
        expect_denied(pro(
            &[],
            &[
                CreditGrant::new("a", "ai", 100),
                CreditGrant::new("b", "ai", 100).expires_at(T0)
            ]
        )),
        refused
    );
    // Add-ons raise the allowance.
    let allowed = expect_allowed(pro(&[AddonGrant::new("boost")], &[]));
    let credits = allowed.credits.expect("draws credits");
    assert_eq!(credits.limit, Limit::per(1500, Period::Month));
    assert_eq!(credits.window, Some(Period::Month.window(T0)));
}

#[test]
fn addons_raise_pools_times_their_quantity_while_they_are_active() {
    let pool = |user: &Subscriber, resource: &str| match create(user, resource) {
        Decision::Allow(allowed) => Ok(allowed.credits.expect("draws credits").limit),
        Decision::Deny(Denial::Credits { maximum, .. }) => Err(maximum),
        Decision::Deny(other) => panic!("{other:?}"),
    };
    let boost = AddonGrant::new("boost");
    let month = |max| Ok(Limit::per(max, Period::Month));
    assert_eq!(
        pool(&on("pro", std::slice::from_ref(&boost), &[]), "images"),
        month(1500)
    );
    assert_eq!(
        pool(&on("pro", &[boost.clone().quantity(3)], &[]), "images"),
        month(2500)
    );
    // Two grants of add-ons add up, each with its quantity.
    assert_eq!(
        pool(
            &on(
                "pro",
                &[boost.clone().quantity(2), AddonGrant::new("image-pack")],
                &[]
            ),
            "images"
        ),
        month(2100)
    );
    // A quantity of 0, an add-on not started or over, add nothing.
    for grant in [
        boost.clone().quantity(0),
        boost.clone().starts_at(T0 + 1),
        boost.clone().expires_at(T0),
    ] {
        assert_eq!(
            pool(&on("pro", std::slice::from_ref(&grant), &[]), "videos"),
            Err(1000),
            "{grant:?}"
        );
    }
    // A grace period keeps an add-on that just ended, as it keeps a plan.
    let user = on("pro", &[boost.clone().expires_at(T0)], &[]);
    let graced = Policy::new().with_grace_period(std::time::Duration::from_millis(1));
    assert!(matches!(
        decide(
            &deciding(),
            Some(&user),
            T0,
            &arc("videos"),
            &Action::Create,
            &graced
        ),
        Decision::Allow(_)
    ));
    // An add-on gives a plan without the pool a pool of its own (a lifetime one here).
    let free = on("free", &[boost.clone().quantity(2)], &[]);
    assert_eq!(pool(&free, "images"), Ok(Limit::Limited(1000)));
    assert_eq!(pool(&free, "videos"), Err(1000));
    // An add-on that adds to another pool raises nothing here.
    assert_eq!(
        pool(&on("pro", &[boost], &[]), "uploads"),
        Ok(Limit::Limited(50))
    );
    // An unlimited pool stays unlimited.
    assert_eq!(
        pool(&on("max", &[AddonGrant::new("boost")], &[]), "videos"),
        Ok(Limit::Unlimited)
    );
}

#[test]
fn a_cost_is_compared_as_usage_plus_cost_on_an_actions_own_limit() {
    // `reports.export` costs 2 of its own limit of 10.
    let export = Action::custom("export");
    let user = |used: u64| on("pro", &[], &[]).with_action_usage("reports", &export, used);
    let catalog = deciding();
    for used in [0, 7, 8] {
        let allowed = expect_allowed(decide_at(&catalog, &user(used), T0, "reports", &export));
        assert_eq!(
            (allowed.cost, allowed.usage, allowed.limit),
            (2, used, Limit::Limited(10))
        );
        assert!(allowed.credits.is_none());
    }
    for used in [9, 10, 11] {
        let denial = expect_denied(decide_at(&catalog, &user(used), T0, "reports", &export));
        assert_eq!(
            denial,
            Denial::LimitReached {
                plan: arc("pro"),
                resource: arc("reports"),
                action: export.clone(),
                maximum: 10,
                usage: used,
                window: None,
                cost: 2,
            }
        );
        assert_eq!(
            denial.to_json_bytes(),
            format!(
                r#"{{"reason":"subscription","plan":"pro","item":"reports","action":"export","maximum":10,"usage":{used},"cost":2}}"#
            )
            .into_bytes()
        );
    }

    // A limit of 10 with usage 8 allows a cost of 2 and refuses a cost of 3.
    let costing = |cost: u64| {
        Catalog::builder()
            .plan(Plan::new("pro").with_limit(
                "reports",
                Action::custom("export"),
                Limit::per(10, Period::Day),
            ))
            .meter("reports", Action::custom("export"), Cost::fixed(cost))
            .build()
            .expect("builds")
    };
    let used = user(8);
    assert!(matches!(
        decide_at(&costing(2), &used, T0, "reports", &export),
        Decision::Allow(_)
    ));
    let denial = expect_denied(decide_at(&costing(3), &used, T0, "reports", &export));
    let resets = Period::Day.window(T0).end();
    assert_eq!(
        body(&denial),
        json!({"reason": "subscription", "plan": "pro", "item": "reports", "action": "export",
               "maximum": 10, "usage": 8, "cost": 3, "resets": resets})
    );
    // A reported meter reserves its estimate of the action's own limit.
    let reported = Catalog::builder()
        .plan(Plan::new("pro").with_limit("reports", Action::custom("export"), Limit::Limited(10)))
        .meter("reports", Action::custom("export"), Cost::reported(3))
        .build()
        .expect("builds");
    assert!(matches!(
        expect_denied(decide_at(&reported, &used, T0, "reports", &export)),
        Denial::LimitReached {
            usage: 8,
            cost: 3,
            ..
        }
    ));
    assert_eq!(
        expect_allowed(decide_at(&reported, &user(7), T0, "reports", &export)).cost,
        3
    );
    // Add-ons raise the limit a cost is compared with.
    let images = |used: u64, addons: &[AddonGrant]| {
        let user = on("pro", addons, &[]).with_usage("images", used);
        create(&user, "images")
    };
    assert!(matches!(
        images(100, &[AddonGrant::new("more-images")]),
        Decision::Allow(_)
    ));
}

#[test]
fn a_request_drawing_credits_takes_one_unit_of_its_actions_limit() {
    // pro creates 100 images, each costing 5 credits: the 100th image fits, the 101st does not
    // whatever the pool holds, and its denial is about the action's limit (one unit of it).
    let images = |used: u64| create(&on("pro", &[], &[]).with_usage("images", used), "images");
    let allowed = expect_allowed(images(99));
    assert_eq!(
        (allowed.usage, allowed.limit, allowed.cost),
        (99, Limit::Limited(100), 5)
    );
    let denial = expect_denied(images(100));
    assert_eq!(
        denial.to_json_bytes(),
        br#"{"reason":"subscription","plan":"pro","item":"images","action":"create","maximum":100,"usage":100}"#
    );
    assert!(matches!(denial, Denial::LimitReached { cost: 1, .. }));
    // Both checks apply: a plan without the pool is refused on credits below its limit.
    let free = on("free", &[], &[]).with_usage("images", 19);
    assert!(matches!(
        expect_denied(create(&free, "images")),
        Denial::Credits { .. }
    ));
    let free = on("free", &[], &[]).with_usage("images", 20);
    assert!(matches!(
        expect_denied(create(&free, "images")),
        Denial::LimitReached { .. }
    ));
}

#[test]
fn the_allowed_decision_of_a_metered_request_names_its_cost_and_pool() {
    let user = on("pro", &[], &[]).with_usage("images", 3);
    let allowed = expect_allowed(create(&user, "images"));
    assert_eq!(allowed.cost, 5);
    assert_eq!(allowed.state, PlanState::Active);
    let credits = allowed.credits.clone().expect("draws credits");
    assert_eq!(&*credits.pool, "ai");
    assert_eq!(credits.limit, Limit::per(1000, Period::Month));
    assert_eq!(credits.usage, 0);
    assert_eq!(credits.remaining(), Some(1000));
    assert_eq!(credits.window, Some(Period::Month.window(T0)));
    assert_eq!(
        serde_json::to_value(&allowed).expect("serialises"),
        json!({"plan": "pro", "state": "active", "item": "images", "action": "create",
               "limit": 100, "usage": 3, "remaining": 97, "cost": 5,
               "credits": {"pool": "ai", "limit": {"max": 1000, "per": "month"}, "usage": 0,
                           "remaining": 1000, "resets": month_end(T0)}})
    );
    // A lifetime pool has no reset; an unlimited action has no remaining count.
    let allowed = expect_allowed(create(&on("pro", &[], &[]), "uploads"));
    assert_eq!(
        serde_json::to_string(&allowed).expect("serialises"),
        r#"{"plan":"pro","state":"active","item":"uploads","action":"create","limit":null,"usage":0,"remaining":null,"cost":3,"credits":{"pool":"storage","limit":50,"usage":0,"remaining":50}}"#
    );
    // An unlimited pool.
    let allowed = expect_allowed(create(&on("max", &[], &[]), "chat"));
    assert_eq!(
        serde_json::to_string(&allowed).expect("serialises"),
        r#"{"plan":"max","state":"active","item":"chat","action":"create","limit":null,"usage":0,"remaining":null,"cost":200,"credits":{"pool":"ai","limit":null,"usage":0,"remaining":null}}"#
    );
    // A request that costs 1 and draws nothing says neither.
    let export = Action::custom("export");
    let plain = Catalog::builder()
        .plan(Plan::new("pro").with_limit("reports", export.clone(), Limit::Limited(10)))
        .meter("reports", export.clone(), Cost::fixed(1))
        .build()
        .expect("builds");
    let allowed = expect_allowed(decide_at(
        &plain,
        &on("pro", &[], &[]),
        T0,
        "reports",
        &export,
    ));
    assert_eq!((allowed.cost, allowed.credits.is_none()), (1, true));
    assert_eq!(
        serde_json::to_string(&allowed).expect("serialises"),
        r#"{"plan":"pro","state":"active","item":"reports","action":"export","limit":10,"usage":0,"remaining":10}"#
    );
}

#[test]
fn the_plan_that_applies_gives_the_pool() {
    let catalog = deciding();
    let images = arc("images");
    // An expired trial of pro falls back to free, which has no pool.
    let trial = Subscriber::new().with_name("john").with_plan(
        Assignment::new("pro")
            .as_trial()
            .joined_at(T0 - 15 * 24 * HOUR),
    );
    let denial = expect_denied(decide(
        &catalog,
        Some(&trial),
        T0,
        &images,
        &Action::Create,
        &Policy::new(),
    ));
    assert!(matches!(denial, Denial::Credits { maximum: 0, ref plan, .. } if &**plan == "free"));
    // Within the trial, pro's pool applies.
    let allowed = expect_allowed(decide(
        &catalog,
        Some(&trial),
        T0 - 2 * 24 * HOUR,
        &images,
        &Action::Create,
        &Policy::new(),
    ));
    assert_eq!(allowed.state, PlanState::Trial);
    assert_eq!(
        allowed.credits.map(|c| c.limit),
        Some(Limit::per(1000, Period::Month))
    );
    // No plan: the request is refused as any governed request is, grants or not.
    let nobody = Subscriber::new().with_grant(CreditGrant::new("g", "ai", 1000));
    assert_eq!(
        expect_denied(decide(
            &catalog,
            Some(&nobody),
            T0,
            &images,
            &Action::Create,
            &Policy::new()
        )),
        Denial::NoPlan {
            resource: arc("images"),
            action: Action::Create
        }
    );
    assert!(matches!(
        expect_denied(decide(
            &catalog,
            None,
            T0,
            &images,
            &Action::Create,
            &Policy::new()
        )),
        Denial::NoPlan { .. }
    ));
    // A default plan gives its pools (none for free; a grant covers it).
    let default = Policy::new().with_default_plan("free");
    assert!(matches!(
        expect_denied(decide(
            &catalog,
            None,
            T0,
            &images,
            &Action::Create,
            &default
        )),
        Denial::Credits { maximum: 0, .. }
    ));
    let allowed = expect_allowed(decide(
        &catalog,
        Some(&nobody),
        T0,
        &images,
        &Action::Create,
        &default,
    ));
    assert_eq!(allowed.state, PlanState::Default);
    // Without a plan, an add-on that names the resource applies with the pool it adds.
    let packed = Subscriber::new().with_addon(AddonGrant::new("image-pack"));
    let allowed = expect_allowed(decide(
        &catalog,
        Some(&packed),
        T0,
        &images,
        &Action::Create,
        &Policy::new(),
    ));
    assert_eq!(allowed.state, PlanState::Addons);
    assert_eq!(&*allowed.plan, "image-pack");
    assert_eq!(allowed.credits.map(|c| c.limit), Some(Limit::Limited(100)));
    let denial = expect_denied(decide(
        &catalog,
        Some(&packed),
        T0,
        &arc("videos"),
        &Action::Create,
        &Policy::new(),
    ));
    // videos is not named by image-pack: no plan applies to it.
    assert!(matches!(denial, Denial::NoPlan { .. }));
}

// ---------------------------------------------------------------------------------------------
// The property: decide() against a model of its own
// ---------------------------------------------------------------------------------------------

/// One add-on grant of the property: `pack` adds `pack_credits` to the pool and
/// `pack_limit` image creates, per unit.
#[derive(Clone, Debug)]
struct PackGrant {
    quantity: u64,
    starts: Option<u64>,
    expires: Option<u64>,
}

/// One grant of credits of the property.
#[derive(Clone, Debug)]
struct TopUp {
    amount: u64,
    other_pool: bool,
    starts: Option<u64>,
    expires: Option<u64>,
}

/// The plan's allowance of the pool in the property.
#[derive(Clone, Copy, Debug)]
enum Allowance {
    /// The plan has no such pool.
    None,
    Lifetime(u64),
    Monthly(u64),
    Unlimited,
}

#[derive(Clone, Debug)]
struct Case {
    allowance: Allowance,
    /// What one unit of the add-on adds to the pool (`None`: makes it unlimited).
    pack_credits: Option<u64>,
    pack_limit: u64,
    /// The plan's limit on creating images (`None`: unlimited).
    image_limit: Option<u64>,
    images: u64,
    /// `None`: the meter draws on the action's own limit.
    pooled: bool,
    reported: bool,
    cost: u64,
    packs: Vec<PackGrant>,
    top_ups: Vec<TopUp>,
    grace: u64,
}

/// An instant near `T0`, so that the bounds are hit.
fn near() -> impl Strategy<Value = Option<u64>> {
    prop::option::of((0u64..7).prop_map(|offset| T0 - 3 + offset))
}

fn case() -> impl Strategy<Value = Case> {
    let allowance = prop_oneof![
        Just(Allowance::None),
        (0u64..30).prop_map(Allowance::Lifetime),
        (0u64..30).prop_map(Allowance::Monthly),
        Just(Allowance::Unlimited),
    ];
    let pack = (0u64..4, near(), near()).prop_map(|(quantity, starts, expires)| PackGrant {
        quantity,
        starts,
        expires,
    });
    let top_up = (0u64..15, prop::bool::weighted(0.2), near(), near()).prop_map(
        |(amount, other_pool, starts, expires)| TopUp {
            amount,
            other_pool,
            starts,
            expires,
        },
    );
    (
        (
            allowance,
            prop::option::weighted(0.9, 0u64..10),
            0u64..5,
            prop::option::of(0u64..12),
            0u64..14,
        ),
        (
            any::<bool>(),
            any::<bool>(),
            1u64..60,
            prop::collection::vec(pack, 0..4),
            prop::collection::vec(top_up, 0..5),
            0u64..3,
        ),
    )
        .prop_map(
            |(
                (allowance, pack_credits, pack_limit, image_limit, images),
                (pooled, reported, cost, packs, top_ups, grace),
            )| Case {
                allowance,
                pack_credits,
                pack_limit,
                image_limit,
                images,
                pooled,
                reported,
                cost,
                packs,
                top_ups,
                grace,
            },
        )
}

impl Case {
    fn catalog(&self) -> Catalog {
        let mut plan = Plan::new("plan").unlimited("images");
        if let Some(max) = self.image_limit {
            plan = plan.create_limit("images", max);
        }
        plan = match self.allowance {
            Allowance::None => plan,
            Allowance::Lifetime(max) => plan.with_credits("ai", Limit::Limited(max)),
            Allowance::Monthly(max) => plan.with_credits("ai", Limit::per(max, Period::Month)),
            Allowance::Unlimited => plan.with_credits("ai", Limit::Unlimited),
        };
        let pack = Addon::new("pack")
            .create_limit("images", self.pack_limit)
            .with_credits(
                "ai",
                self.pack_credits.map_or(Limit::Unlimited, Limit::Limited),
            );
        let mut meter = if self.reported {
            Cost::reported(self.cost)
        } else {
            Cost::fixed(self.cost)
        };
        if self.pooled {
            meter = meter.from_pool("ai");
        }
        Catalog::builder()
            .plan(plan)
            .addon(pack)
            // A pool for the grants of another pool.
            .addon(Addon::new("other").with_credits("other", Limit::Limited(1)))
            .meter("images", Action::Create, meter)
            .build()
            .expect("the case's catalog builds")
    }

    fn user(&self) -> Subscriber {
        let mut user = Subscriber::new()
            .with_name("john")
            .with_plan(Assignment::new("plan"))
            .with_usage("images", self.images);
        for pack in &self.packs {
            let mut grant = AddonGrant::new("pack").quantity(pack.quantity);
            grant.starts = pack.starts;
            grant.expires = pack.expires;
            user = user.with_addon(grant);
        }
        for (i, top_up) in self.top_ups.iter().enumerate() {
            let pool = if top_up.other_pool { "other" } else { "ai" };
            let mut grant = CreditGrant::new(format!("g{i}"), pool, top_up.amount);
            grant.starts = top_up.starts;
            grant.expires = top_up.expires;
            user = user.with_grant(grant);
        }
        user
    }

    /// What `decide()` must answer, worked out from DESIGN sections 6, 12 and 13 alone.
    fn expected(&self) -> Expected {
        let active = |starts: Option<u64>, expires: Option<u64>, grace: u64| {
            starts.is_none_or(|s| s <= T0) && expires.is_none_or(|e| T0 < e + grace)
        };
        // The active units of the add-on.
        let units: u64 = self
            .packs
            .iter()
            .filter(|p| active(p.starts, p.expires, self.grace))
            .map(|p| p.quantity)
            .sum();

        // The action's own limit, raised by the add-on; a pooled request takes 1 unit of it.
        let limit = self.image_limit.map(|max| max + units * self.pack_limit);
        let taken = if self.pooled { 1 } else { self.cost };
        if let Some(max) = limit {
            if self.images + taken > max {
                return Expected::LimitReached {
                    maximum: max,
                    usage: self.images,
                    cost: taken,
                };
            }
        }
        if !self.pooled {
            return Expected::Allowed { pool: None };
        }
        // The pool: the plan's allowance (0 without the pool), raised by the add-on.
        let (plan_max, monthly) = match self.allowance {
            Allowance::None => (Some(0), false),
            Allowance::Lifetime(max) => (Some(max), false),
            Allowance::Monthly(max) => (Some(max), true),
            Allowance::Unlimited => (None, false),
        };
        let max = match (plan_max, self.pack_credits) {
            (None, _) => None,
            (Some(_), None) if units > 0 => None,
            (Some(max), extra) => Some(max + units * extra.unwrap_or(0)),
        };
        let pool = match max {
            None => Limit::Unlimited,
            Some(max) if monthly => Limit::per(max, Period::Month),
            Some(max) => Limit::Limited(max),
        };
        let Some(max) = max else {
            return Expected::Allowed { pool: Some(pool) };
        };
        let granted: u64 = self
            .top_ups
            .iter()
            .filter(|g| !g.other_pool && active(g.starts, g.expires, 0))
            .map(|g| g.amount)
            .sum();
        if self.cost <= max + granted {
            Expected::Allowed { pool: Some(pool) }
        } else {
            Expected::Credits {
                maximum: max,
                monthly,
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Expected {
    Allowed { pool: Option<Limit> },
    LimitReached { maximum: u64, usage: u64, cost: u64 },
    Credits { maximum: u64, monthly: bool },
}

/// Checks `decide()` on `case` against the model.
fn check(case: &Case) -> Result<(), TestCaseError> {
    let catalog = case.catalog();
    let user = case.user();
    let policy = Policy::new().with_grace_period(std::time::Duration::from_millis(case.grace));
    let decision = decide(
        &catalog,
        Some(&user),
        T0,
        &arc("images"),
        &Action::Create,
        &policy,
    );
    let expected = case.expected();
    match (decision, expected) {
        (Decision::Allow(allowed), Expected::Allowed { pool }) => {
            prop_assert_eq!(allowed.cost, case.cost);
            prop_assert_eq!(allowed.usage, case.images);
            prop_assert_eq!(&*allowed.plan, "plan");
            let credits = allowed.credits.map(|c| (c.limit, c.usage, c.window));
            let window = |limit: Limit| limit.period().map(|per| per.window(T0));
            prop_assert_eq!(credits, pool.map(|limit| (limit, 0, window(limit))));
        }
        (
            Decision::Deny(denial),
            Expected::LimitReached {
                maximum,
                usage,
                cost,
            },
        ) => {
            prop_assert_eq!(
                denial,
                Denial::LimitReached {
                    plan: arc("plan"),
                    resource: arc("images"),
                    action: Action::Create,
                    maximum,
                    usage,
                    window: None,
                    cost,
                }
            );
        }
        (Decision::Deny(denial), Expected::Credits { maximum, monthly }) => {
            prop_assert_eq!(
                denial,
                Denial::Credits {
                    plan: arc("plan"),
                    pool: arc("ai"),
                    maximum,
                    usage: 0,
                    cost: case.cost,
                    window: monthly.then(|| Period::Month.window(T0)),
                }
            );
        }
        (decision, expected) => {
            return Err(TestCaseError::fail(format!(
                "decide() answered {decision:?}, the model {expected:?}"
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decide_agrees_with_a_model_of_costs_pools_addons_and_grants(case in case()) {
        check(&case)?;
    }
}
