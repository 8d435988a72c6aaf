//! Loading and checking plan catalogs.

use std::time::Duration;

use serde_json::json;
use tower_plans::format::FormatError;
use tower_plans::{
    catalog::{Limit, Period, Plan, Trial},
    Action, Catalog,
};

const DAY: Duration = Duration::from_secs(86_400);

fn load(json: &str) -> Catalog {
    match Catalog::from_json(json) {
        Ok(catalog) => catalog,
        Err(err) => panic!("{json} should load: {err}"),
    }
}

fn reject(value: serde_json::Value) -> FormatError {
    match Catalog::from_value(&value) {
        Ok(catalog) => panic!("{value} should be rejected, loaded {catalog:?}"),
        Err(err) => err,
    }
}

fn limit(catalog: &Catalog, plan: &str, resource: &str, action: &Action) -> Limit {
    catalog
        .plan(plan)
        .unwrap_or_else(|| panic!("no plan {plan}"))
        .limit(resource, action)
}

fn names(items: &[std::sync::Arc<str>]) -> Vec<&str> {
    items.iter().map(|s| &**s).collect()
}

// ---- the subscriber README's plan examples ----

#[test]
fn readme_plans_without_trial() {
    let catalog = load(include_str!("../fixtures/plans/no_trial.json"));
    assert!(catalog.trial().is_none());
    assert_eq!(names(catalog.resources()), ["clients", "groups"]);
    assert_eq!(
        limit(&catalog, "free", "clients", &Action::Create),
        Limit::Limited(3)
    );
    assert_eq!(
        limit(&catalog, "free", "groups", &Action::Create),
        Limit::Limited(2)
    );
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Create),
        Limit::Limited(5)
    );
    assert_eq!(
        limit(&catalog, "bronze", "groups", &Action::Create),
        Limit::Limited(10)
    );
    // A number limits creating only.
    for action in [
        Action::Index,
        Action::Show,
        Action::Update,
        Action::Patch,
        Action::Delete,
    ] {
        assert_eq!(
            limit(&catalog, "free", "clients", &action),
            Limit::Unlimited
        );
    }
}

#[test]
fn readme_bare_array_is_the_same_catalog() {
    assert_eq!(
        load(include_str!("../fixtures/plans/bare_array.json")),
        load(include_str!("../fixtures/plans/no_trial.json"))
    );
}

#[test]
fn readme_trial_as_days() {
    let catalog = load(include_str!("../fixtures/plans/trial_days.json"));
    let trial = catalog.trial().expect("a trial policy");
    assert_eq!(trial.duration(), 14 * DAY);
    assert_eq!(trial.fallback(), None);
    assert_eq!(
        limit(&catalog, "bronze", "groups", &Action::Create),
        Limit::Limited(10)
    );
}

#[test]
fn readme_per_action_limits() {
    let catalog = load(include_str!("../fixtures/plans/per_action.json"));
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Index),
        Limit::Unlimited
    );
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Show),
        Limit::Limited(10)
    );
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Create),
        Limit::Limited(3)
    );
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Update),
        Limit::Unlimited
    );
    // `patch` falls back to `update`, which is unlimited here.
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Patch),
        Limit::Unlimited
    );
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Delete),
        Limit::Unlimited
    );
}

#[test]
fn readme_create_shorthands_are_equivalent() {
    let explicit = load(include_str!("../fixtures/plans/create_explicit.json"));
    assert_eq!(
        limit(&explicit, "bronze", "groups", &Action::Create),
        Limit::Limited(10)
    );
    assert_eq!(
        limit(&explicit, "bronze", "groups", &Action::Show),
        Limit::Unlimited
    );
    for json in [
        include_str!("../fixtures/plans/create_shorthand.json"),
        include_str!("../fixtures/plans/no_limits_object.json"),
        include_str!("../fixtures/plans/no_limits_number.json"),
    ] {
        assert_eq!(load(json), explicit, "{json}");
    }
}

#[test]
fn readme_paths_example_plan() {
    let catalog = load(include_str!("../fixtures/plans/paths.json"));
    assert_eq!(names(catalog.resources()), ["clients", "groups"]);
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Create),
        Limit::Limited(10)
    );
    assert_eq!(
        limit(&catalog, "bronze", "groups", &Action::Create),
        Limit::Limited(20)
    );
}

#[test]
fn readme_trial_with_fallback() {
    let catalog = load(include_str!("../fixtures/plans/trial_fallback.json"));
    let trial = catalog.trial().expect("a trial policy");
    assert_eq!(trial.duration(), 14 * DAY);
    assert_eq!(trial.fallback(), Some("free"));
    let plans: Vec<&str> = catalog.plans().map(Plan::name).collect();
    assert_eq!(plans, ["free", "premium", "pro"]);
    assert_eq!(
        limit(&catalog, "premium", "groups", &Action::Create),
        Limit::Limited(5)
    );
}

#[test]
fn readme_trial_without_fallback_and_its_shorthand() {
    let catalog = load(include_str!("../fixtures/plans/trial_no_fallback.json"));
    assert_eq!(catalog.trial().map(Trial::duration), Some(14 * DAY));
    assert_eq!(catalog.trial().and_then(Trial::fallback), None);
    assert_eq!(
        load(include_str!(
            "../fixtures/plans/trial_no_fallback_short.json"
        )),
        catalog
    );
}

#[test]
fn readme_putting_it_together_plans() {
    let catalog = load(include_str!("../fixtures/plans/together.json"));
    assert_eq!(
        limit(&catalog, "free", "clients", &Action::Create),
        Limit::Limited(3)
    );
    assert_eq!(
        limit(&catalog, "bronze", "clients", &Action::Create),
        Limit::Limited(5)
    );
}

// ---- other accepted forms ----

#[test]
fn null_unlimited_zero_blocked_and_destroy_alias() {
    let catalog = load(
        r#"[{"name": "free", "limits": {
            "clients": null,
            "groups": 0,
            "tasks": {"destroy": 1, "patch": null, "update": 4, "show": 0}
        }}]"#,
    );
    assert!(catalog.is_governed("clients"));
    assert_eq!(
        limit(&catalog, "free", "clients", &Action::Create),
        Limit::Unlimited
    );
    assert_eq!(
        limit(&catalog, "free", "groups", &Action::Create),
        Limit::Limited(0)
    );
    assert_eq!(
        limit(&catalog, "free", "tasks", &Action::Delete),
        Limit::Limited(1)
    );
    assert_eq!(
        limit(&catalog, "free", "tasks", &Action::Show),
        Limit::Limited(0)
    );
    assert_eq!(
        limit(&catalog, "free", "tasks", &Action::Update),
        Limit::Limited(4)
    );
    // An explicit `patch: null` is unlimited, not the update limit.
    assert_eq!(
        limit(&catalog, "free", "tasks", &Action::Patch),
        Limit::Unlimited
    );
}

#[test]
fn patch_falls_back_to_update() {
    let catalog = load(r#"[{"name": "free", "clients": {"update": 2}}]"#);
    assert_eq!(
        limit(&catalog, "free", "clients", &Action::Patch),
        Limit::Limited(2)
    );
}

#[test]
fn declared_custom_actions() {
    let catalog = load(
        r#"{"actions": ["export", "archive"], "plans": [
            {"name": "free", "reports": {"export": 1, "create": 2}},
            {"name": "pro", "reports": {"export": null}}
        ]}"#,
    );
    assert_eq!(names(catalog.custom_actions()), ["archive", "export"]);
    let export = Action::custom("export");
    assert_eq!(
        limit(&catalog, "free", "reports", &export),
        Limit::Limited(1)
    );
    assert_eq!(limit(&catalog, "pro", "reports", &export), Limit::Unlimited);
    assert_eq!(
        limit(&catalog, "free", "reports", &Action::custom("archive")),
        Limit::Unlimited
    );
}

#[test]
fn other_plan_properties_are_ignored_when_limits_is_present() {
    let catalog = load(r#"[{"name": "pro", "price": 49, "limits": {"clients": 30}}]"#);
    assert_eq!(names(catalog.resources()), ["clients"]);
}

#[test]
fn fractional_trial_days_and_integral_floats() {
    let catalog =
        load(r#"{"trial": {"duration": 0.5}, "plans": [{"name": "free", "clients": 3.0}]}"#);
    assert_eq!(catalog.trial().map(Trial::duration), Some(DAY / 2));
    assert_eq!(
        limit(&catalog, "free", "clients", &Action::Create),
        Limit::Limited(3)
    );
}

#[test]
fn null_trial_means_no_trial_and_empty_plans_are_fine() {
    let catalog = load(r#"{"trial": null, "plans": []}"#);
    assert!(catalog.trial().is_none());
    assert_eq!(catalog.plans().len(), 0);
    assert!(catalog.resources().is_empty());
}

#[test]
fn deserialize_goes_through_the_same_checks() {
    let catalog: Catalog =
        serde_json::from_str(include_str!("../fixtures/plans/trial_fallback.json")).unwrap();
    assert_eq!(
        catalog,
        load(include_str!("../fixtures/plans/trial_fallback.json"))
    );
    let err = serde_json::from_str::<Catalog>(r#"[{"name": "free", "clients": -1}]"#).unwrap_err();
    assert!(err.to_string().starts_with("plans[0].clients: "), "{err}");
}

#[test]
fn builder_matches_json() {
    let built = Catalog::builder()
        .trial(Trial::days(14).with_fallback("free"))
        .plan(Plan::new("free").create_limit("groups", 2))
        .plan(Plan::new("premium").create_limit("groups", 5))
        .plan(Plan::new("pro").with_limit("groups", Action::Create, Limit::Limited(10)))
        .build()
        .unwrap();
    assert_eq!(
        built,
        load(include_str!("../fixtures/plans/trial_fallback.json"))
    );
}

#[test]
fn a_catalog_written_out_reads_back_as_itself() {
    let source = json!({
        "trial": {"duration": 14, "fallback": "free"},
        "actions": ["export"],
        "plans": [
            {"name": "free", "clients": 3, "reports": {"export": 0}},
            {"name": "pro", "anchor": "subscription", "rate": {"max": 100, "per": "second"},
             "limits": {
                "clients": {"create": {"max": 1000, "per": "month", "overage": 200},
                            "index": {"rate": {"max": 60, "per": "minute", "burst": 10}}},
                "reports": null,
                "images": {"create": {"max": 5, "overage": null}}},
             "credits": {"ai": {"max": 1000, "per": "month", "anchor": "calendar"}}}
        ],
        "addons": [{"name": "more-ai", "limits": {"clients": {"update": 5}}, "credits": {"ai": 500}}],
        "meters": {"images": {"create": {"cost": 5, "credits": "ai"}},
                   "chat": {"create": {"report": true, "estimate": 200, "credits": "ai"}}}
    });
    let catalog = Catalog::from_value(&source).unwrap();
    let written = serde_json::to_value(&catalog).unwrap();
    assert_eq!(Catalog::from_value(&written).unwrap(), catalog, "{written}");
    // The canonical form: a `limits` object, `null` for an unlimited resource, a bare number
    // for a rule that carries nothing else, a burst only when it is not `max`.
    assert_eq!(
        written["plans"][0],
        json!({"name": "free", "limits": {"clients": {"create": 3}, "reports": {"export": 0}}})
    );
    let pro = &written["plans"][1];
    assert_eq!(pro["anchor"], "subscription");
    assert_eq!(pro["rate"], json!({"max": 100, "per": "second"}));
    assert_eq!(
        pro["limits"]["clients"],
        json!({"create": {"max": 1000, "per": "month", "overage": 200},
               "index": {"rate": {"max": 60, "per": "minute", "burst": 10}}})
    );
    assert_eq!(pro["limits"]["reports"], json!(null));
    assert_eq!(
        pro["limits"]["images"],
        json!({"create": {"max": 5, "overage": null}})
    );
    assert_eq!(
        pro["credits"],
        json!({"ai": {"max": 1000, "per": "month", "anchor": "calendar"}})
    );
    assert_eq!(
        written["trial"],
        json!({"duration": 14.0, "fallback": "free"})
    );
    assert_eq!(written["actions"], json!(["export"]));
    assert_eq!(written["addons"], source["addons"]);
    assert_eq!(written["meters"], source["meters"]);

    // The optional sections are left out when empty; the bare-array form comes back as an object.
    let bare = load(r#"[{"name": "free", "clients": 3}]"#);
    assert_eq!(
        serde_json::to_value(&bare).unwrap(),
        json!({"plans": [{"name": "free", "limits": {"clients": {"create": 3}}}]})
    );
    // A fractional trial comes back to within a microsecond.
    let trial = load(r#"{"trial": 0.3, "plans": []}"#);
    let again = Catalog::from_value(&serde_json::to_value(&trial).unwrap()).unwrap();
    let (a, b) = (
        trial.trial().unwrap().duration(),
        again.trial().unwrap().duration(),
    );
    assert!(
        a.abs_diff(b) < Duration::from_micros(1),
        "{a:?} came back as {b:?}"
    );
}

#[test]
fn builder_refuses_an_overage_on_an_unlimited_limit() {
    use tower_plans::catalog::{Overage, Rule};
    // The JSON form cannot say it (a limit without `max` carries only a rate), nor can the builder.
    let err = Catalog::builder()
        .plan(Plan::new("pro").with_rule(
            "clients",
            Action::Create,
            Rule::new(Limit::Unlimited).with_overage(Overage::Up(5)),
        ))
        .build()
        .unwrap_err();
    assert_eq!(err.path(), "plans[0].limits.clients.create.overage");
    let err = Catalog::builder()
        .plan(Plan::new("pro").with_credit_rule(
            "ai",
            Rule::new(Limit::Unlimited).with_overage(Overage::Unbounded),
        ))
        .build()
        .unwrap_err();
    assert_eq!(err.path(), "plans[0].credits.ai.overage");
}

// ---- malformed catalogs: each error names the path ----

fn assert_error(value: serde_json::Value, path: &str, message_contains: &str) {
    let err = reject(value);
    assert_eq!(err.path(), path, "{err}");
    assert!(
        err.message().contains(message_contains),
        "`{}` should mention `{message_contains}`",
        err.message()
    );
}

fn three_plans(clients: serde_json::Value) -> serde_json::Value {
    json!({"plans": [
        {"name": "free", "limits": {"clients": 3}},
        {"name": "basic", "limits": {"clients": 10}},
        {"name": "pro", "limits": {"clients": clients}},
    ]})
}

#[test]
fn negative_limit() {
    assert_error(
        three_plans(json!({"create": -1})),
        "plans[2].limits.clients.create",
        "found `-1`",
    );
    assert_error(
        json!([{"name": "free", "groups": -2}]),
        "plans[0].groups",
        "found `-2`",
    );
}

#[test]
fn quotas_load_from_json_and_the_builder_alike() {
    let json = load(
        r#"{"actions": ["export"], "plans": [{"name": "free", "limits": {
            "reports": {"create": {"max": 20, "per": "day"}, "export": {"max": 0, "per": "year"}},
            "calls": {"index": {"max": 1000, "per": "month"}, "show": {"max": 5, "per": "week"},
                      "update": {"max": 60, "per": "hour"}}
        }}]}"#,
    );
    let built = Catalog::builder()
        .action("export")
        .plan(
            Plan::new("free")
                .with_limit("reports", Action::Create, Limit::per(20, Period::Day))
                .with_limit(
                    "reports",
                    Action::custom("export"),
                    Limit::per(0, Period::Year),
                )
                .with_limit("calls", Action::Index, Limit::per(1000, Period::Month))
                .with_limit("calls", Action::Show, Limit::per(5, Period::Week))
                .with_limit("calls", Action::Update, Limit::per(60, Period::Hour)),
        )
        .build()
        .unwrap();
    assert_eq!(json, built);
    let free = json.plan("free").unwrap();
    assert_eq!(
        free.limit("calls", &Action::Index),
        Limit::Periodic {
            max: 1000,
            per: Period::Month
        }
    );
    // A quota serialises back to its JSON form.
    assert_eq!(
        serde_json::to_value(free.limit("reports", &Action::Create)).unwrap(),
        json!({"max": 20, "per": "day"})
    );
}

#[test]
fn malformed_quotas_name_their_path() {
    let cases = [
        // `{"max": 2}` alone is a lifetime limit; an anchor needs a period.
        (
            json!({"create": {"max": 2, "anchor": "subscription"}}),
            "plans[2].limits.clients.create.anchor",
            "period",
        ),
        (
            json!({"create": {"per": "day"}}),
            "plans[2].limits.clients.create.max",
            "missing",
        ),
        (
            json!({"create": {"max": 2, "per": "fortnight"}}),
            "plans[2].limits.clients.create.per",
            "unknown period \"fortnight\"",
        ),
        (
            json!({"create": {"max": 2, "per": "Day"}}),
            "plans[2].limits.clients.create.per",
            "unknown period \"Day\"; expected \"hour\", \"day\", \"week\", \"month\" or \"year\"",
        ),
        (
            json!({"create": {"max": 2, "per": 30}}),
            "plans[2].limits.clients.create.per",
            "found `30`",
        ),
        (
            json!({"create": {"max": -1, "per": "day"}}),
            "plans[2].limits.clients.create.max",
            "non-negative integer",
        ),
        (
            json!({"create": {"max": 1.5, "per": "day"}}),
            "plans[2].limits.clients.create.max",
            "found `1.5`",
        ),
        (
            json!({"create": {"max": null, "per": "day"}}),
            "plans[2].limits.clients.create.max",
            "non-negative integer",
        ),
        (
            json!({"create": {"max": 2, "per": "day", "burst": 3}}),
            "plans[2].limits.clients.create.burst",
            "unknown limit property",
        ),
        // A quota is set per action: at the resource level its keys are not actions.
        (
            json!({"max": 2, "per": "day"}),
            "plans[2].limits.clients.max",
            "a quota is set per action",
        ),
    ];
    for (clients, path, message) in cases {
        assert_error(three_plans(clients), path, message);
    }
}

#[test]
fn fractional_limit() {
    assert_error(
        three_plans(json!({"show": 2.5})),
        "plans[2].limits.clients.show",
        "expected a non-negative integer, null (unlimited) or a quota",
    );
    assert_error(
        json!([{"name": "free", "groups": 0.5}]),
        "plans[0].groups",
        "found `0.5`",
    );
}

#[test]
fn non_numeric_limit() {
    assert_error(
        three_plans(json!({"create": "3"})),
        "plans[2].limits.clients.create",
        r#"found the string "3""#,
    );
    assert_error(
        three_plans(json!(true)),
        "plans[2].limits.clients",
        "found `true`",
    );
    assert_error(
        three_plans(json!([3])),
        "plans[2].limits.clients",
        "found an array",
    );
}

#[test]
fn unknown_action_key() {
    assert_error(
        three_plans(json!({"craete": 3})),
        "plans[2].limits.clients.craete",
        "unknown action `craete`",
    );
    // A custom action must be declared first.
    assert_error(
        json!([{"name": "free", "reports": {"export": 1}}]),
        "plans[0].reports.export",
        "unknown action `export`",
    );
    // Odd keys are quoted in the path.
    assert_error(
        json!([{"name": "free", "reports": {"Create ": 1}}]),
        r#"plans[0].reports["Create "]"#,
        "unknown action",
    );
}

#[test]
fn delete_and_destroy_together() {
    assert_error(
        json!([{"name": "free", "clients": {"delete": 1, "destroy": 2}}]),
        "plans[0].clients.destroy",
        "alias",
    );
}

#[test]
fn bad_custom_action_declarations() {
    assert_error(
        json!({"actions": ["create"], "plans": []}),
        "actions[0]",
        "REST action",
    );
    assert_error(
        json!({"actions": ["x", 3], "plans": []}),
        "actions[1]",
        "found `3`",
    );
    assert_error(
        json!({"actions": ["x", ""], "plans": []}),
        "actions[1]",
        "non-empty",
    );
    assert_error(
        json!({"actions": "export", "plans": []}),
        "actions",
        "expected an array",
    );
}

#[test]
fn trial_without_positive_duration() {
    let plans = json!([{"name": "free"}]);
    assert_error(
        json!({"trial": 0, "plans": plans}),
        "trial",
        "positive number of days",
    );
    assert_error(
        json!({"trial": -14, "plans": plans}),
        "trial",
        "found `-14`",
    );
    assert_error(
        json!({"trial": "14", "plans": plans}),
        "trial",
        "found the string",
    );
    assert_error(
        json!({"trial": true, "plans": plans}),
        "trial",
        "found `true`",
    );
    assert_error(
        json!({"trial": {"duration": 0}, "plans": plans}),
        "trial.duration",
        "positive",
    );
    assert_error(
        json!({"trial": {"duration": -1, "fallback": "free"}, "plans": plans}),
        "trial.duration",
        "found `-1`",
    );
    assert_error(
        json!({"trial": {"duration": "14"}, "plans": plans}),
        "trial.duration",
        "found the string",
    );
    assert_error(
        json!({"trial": {"fallback": "free"}, "plans": plans}),
        "trial.duration",
        "missing",
    );
    assert_error(
        json!({"trial": {"duration": 14, "fallbak": "free"}, "plans": plans}),
        "trial.fallbak",
        "unknown trial property",
    );
}

#[test]
fn fallback_naming_a_missing_plan() {
    assert_error(
        json!({"trial": {"duration": 14, "fallback": "gratis"}, "plans": [{"name": "free"}]}),
        "trial.fallback",
        "`gratis` is not a plan",
    );
    assert_error(
        json!({"trial": {"duration": 14, "fallback": 1}, "plans": [{"name": "free"}]}),
        "trial.fallback",
        "found `1`",
    );
}

#[test]
fn duplicate_plan_names() {
    assert_error(
        json!([{"name": "free"}, {"name": "pro"}, {"name": "free", "clients": 1}]),
        "plans[2].name",
        "duplicate plan name `free` (first at plans[0])",
    );
}

#[test]
fn plan_without_a_usable_name() {
    assert_error(
        json!([{"name": "free"}, {"clients": 3}]),
        "plans[1].name",
        "missing",
    );
    assert_error(json!([{"name": 42}]), "plans[0].name", "found `42`");
    assert_error(json!([{"name": ""}]), "plans[0].name", "non-empty");
    assert_error(json!([{"name": null}]), "plans[0].name", "found null");
}

#[test]
fn malformed_structure() {
    assert_error(json!(["free"]), "plans[0]", "expected a plan object");
    assert_error(json!({"trial": 14}), "plans", "missing");
    assert_error(
        json!({"plans": {"free": {}}}),
        "plans",
        "expected an array of plans",
    );
    assert_error(
        json!("free"),
        "",
        "expected an object with `plans` or an array",
    );
    assert_error(json!({"plan": []}), "plan", "unknown catalog property");
    assert_error(
        json!([{"name": "free", "limits": 3}]),
        "plans[0].limits",
        "found `3`",
    );
    assert_error(
        json!([{"name": "free", "": 3}]),
        r#"plans[0][""]"#,
        "non-empty resource",
    );
}

#[test]
fn invalid_json() {
    let err = Catalog::from_json("[{\"name\": ").unwrap_err();
    assert_eq!(err.path(), "");
    assert!(err.message().starts_with("invalid JSON"), "{err}");
    assert!(err.to_string().starts_with("invalid JSON"), "{err}");
}
