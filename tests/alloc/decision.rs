//! The allow path of the decision allocates nothing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use tower_plans::{
    decision::{decide, Decision, PlanState, Policy},
    subscriber::{AddonGrant, Assignment},
    Action, Catalog, Subscriber,
};

use crate::counting::allocations;

/// A name, the user, the time, the resource, the action and the expected state.
type Case<'a> = (
    &'a str,
    Option<&'a Subscriber>,
    u64,
    &'a Arc<str>,
    &'a Action,
    PlanState,
);

const DAY: u64 = 86_400_000;
const T0: u64 = 1_700_000_000_000;

#[test]
fn the_allow_path_allocates_nothing() {
    // The counter counts.
    let (v, n) = allocations(|| black_box(Vec::<u8>::with_capacity(16)));
    assert!(n >= 1, "the counting allocator saw {n} allocations");
    drop(v);

    let catalog = Catalog::from_json(
        r#"{"trial": {"duration": 14, "fallback": "free"}, "actions": ["export"], "plans": [
            {"name": "free", "clients": 3, "reports": {"export": 2}},
            {"name": "pro", "clients": {"create": 30, "update": 90}, "tasks": {"show": 40},
             "notes": {"update": 5}}
        ]}"#,
    )
    .unwrap();
    let clients: Arc<str> = Arc::from("clients");
    let tasks: Arc<str> = Arc::from("tasks");
    let reports: Arc<str> = Arc::from("reports");
    let invoices: Arc<str> = Arc::from("invoices");
    let notes: Arc<str> = Arc::from("notes");
    let destroy = Action::Custom(Arc::from("destroy"));
    let update = Action::Custom(Arc::from("update"));
    let export = Action::custom("export");
    let policy = Policy::new()
        .with_grace_period(Duration::from_secs(60))
        .with_default_plan("free");

    let active = Subscriber::new()
        .with_name("john")
        .with_plan(Assignment::new("pro").expires_at(T0 + DAY))
        .with_usage("clients", 29)
        .with_action_usage("tasks", &Action::Show, 39)
        .with_action_usage("notes", &Action::Update, 4);
    let trial = Subscriber::new()
        .with_plan(Assignment::new("pro").as_trial().joined_at(T0))
        .with_usage("clients", 1);
    let fallback = trial.clone();
    let nobody = Subscriber::new().with_action_usage("reports", &export, 1);

    let cases: [Case<'_>; 11] = [
        (
            "limited",
            Some(&active),
            T0,
            &clients,
            &Action::Create,
            PlanState::Active,
        ),
        (
            "patch counting updates",
            Some(&active),
            T0,
            &notes,
            &Action::Patch,
            PlanState::Active,
        ),
        (
            "custom action with a REST name",
            Some(&active),
            T0,
            &clients,
            &update,
            PlanState::Active,
        ),
        (
            "custom action with an alias",
            Some(&active),
            T0,
            &tasks,
            &destroy,
            PlanState::Active,
        ),
        (
            "patch via update",
            Some(&active),
            T0,
            &clients,
            &Action::Patch,
            PlanState::Active,
        ),
        (
            "per action",
            Some(&active),
            T0,
            &tasks,
            &Action::Show,
            PlanState::Active,
        ),
        (
            "unlimited",
            Some(&active),
            T0,
            &invoices,
            &Action::Delete,
            PlanState::Active,
        ),
        (
            "trial",
            Some(&trial),
            T0 + DAY,
            &clients,
            &Action::Create,
            PlanState::Trial,
        ),
        (
            "fallback",
            Some(&fallback),
            T0 + 15 * DAY,
            &clients,
            &Action::Create,
            PlanState::Fallback {
                trial: Arc::from("pro"),
            },
        ),
        (
            "default",
            Some(&nobody),
            T0,
            &reports,
            &export,
            PlanState::Default,
        ),
        (
            "no record",
            None,
            T0,
            &clients,
            &Action::Index,
            PlanState::Default,
        ),
    ];

    for (name, user, now, resource, action, state) in cases {
        // Once to warm up anything lazily initialised, then measured.
        let _ = decide(&catalog, user, now, resource, action, &policy);
        let (decision, count) =
            allocations(|| decide(&catalog, user, now, resource, action, &policy));
        let Decision::Allow(allowed) = decision else {
            panic!("{name}: expected an allow, got {decision:?}");
        };
        assert_eq!(allowed.state, state, "{name}");
        assert_eq!(count, 0, "{name}: the allow path allocated {count} times");
    }
}

#[test]
fn the_allow_path_with_addons_allocates_nothing() {
    let catalog = Catalog::from_json(
        r#"{"trial": {"duration": 14, "fallback": "free"}, "plans": [
            {"name": "free", "clients": 3, "tasks": {"update": 2}},
            {"name": "pro", "clients": 30}
        ], "addons": [
            {"name": "more-clients", "limits": {"clients": 10}},
            {"name": "more-updates", "limits": {"tasks": {"update": 4}}}
        ]}"#,
    )
    .unwrap();
    let clients: Arc<str> = Arc::from("clients");
    let tasks: Arc<str> = Arc::from("tasks");
    let policy = Policy::new().with_grace_period(Duration::from_secs(60));
    let pack = AddonGrant::new("more-clients")
        .starts_at(T0 - DAY)
        .expires_at(T0 + DAY)
        .quantity(2);

    let raised = Subscriber::new()
        .with_name("john")
        .with_plan(Assignment::new("free"))
        .with_addon(AddonGrant::new("more-updates").expires_at(T0 - DAY))
        .with_addon(pack.clone())
        .with_addon(AddonGrant::new("no-such-addon"))
        .with_usage("clients", 20)
        .with_action_usage("tasks", &Action::Update, 1);
    let fallback = Subscriber::new()
        .with_plan(Assignment::new("pro").as_trial().joined_at(T0 - 30 * DAY))
        .with_addon(pack.clone())
        .with_usage("clients", 12);
    let alone = Subscriber::new()
        .with_addon(AddonGrant::new("more-updates"))
        .with_addon(pack)
        .with_usage("clients", 5);

    let cases: [Case<'_>; 5] = [
        (
            "raised by an add-on",
            Some(&raised),
            T0,
            &clients,
            &Action::Create,
            PlanState::Active,
        ),
        (
            "patch through the update limit, add-on expired",
            Some(&raised),
            T0,
            &tasks,
            &Action::Patch,
            PlanState::Active,
        ),
        (
            "fallback raised by an add-on",
            Some(&fallback),
            T0,
            &clients,
            &Action::Create,
            PlanState::Fallback {
                trial: Arc::from("pro"),
            },
        ),
        (
            "add-ons alone",
            Some(&alone),
            T0,
            &clients,
            &Action::Create,
            PlanState::Addons,
        ),
        (
            "add-ons alone, patch through the update limit",
            Some(&alone),
            T0,
            &tasks,
            &Action::Patch,
            PlanState::Addons,
        ),
    ];

    for (name, user, now, resource, action, state) in cases {
        let _ = decide(&catalog, user, now, resource, action, &policy);
        let (decision, count) =
            allocations(|| decide(&catalog, user, now, resource, action, &policy));
        let Decision::Allow(allowed) = decision else {
            panic!("{name}: expected an allow, got {decision:?}");
        };
        assert_eq!(allowed.state, state, "{name}");
        assert_eq!(count, 0, "{name}: the allow path allocated {count} times");
    }
}
