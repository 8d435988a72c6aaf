//! Add-ons: the catalog's `addons`, the grants in subscriber records, and the decision that adds
//! the active grants' limits to the plan's (boundaries of `starts`, `expires` and grace,
//! quantities, unlimited and blocked limits, fallback and default plans, users with add-ons
//! only, PATCH), with every malformed value's path pinned.

use std::sync::Arc;
use std::time::Duration;

use crate::decision::Logs;

use tower_plans::{
    catalog::{Addon, Limit, Plan},
    decision::{decide, Decision, PlanState, Policy},
    store::LoadError,
    subscriber::{AddonGrant, Assignment},
    Action, Allowed, Catalog, Denial, MemoryStore, Subscriber,
};

const DAY: u64 = 86_400_000;
const HOUR: u64 = 3_600_000;
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

/// free: 3 clients, no exports, tasks updated twice (PATCH shares the updates), notes with
/// separate update and patch limits. pro: 30 clients, the rest unlimited. Trials fall back to
/// free.
const CATALOG: &str = r#"{
    "trial": {"duration": 14, "fallback": "free"},
    "actions": ["export"],
    "plans": [
        {"name": "free", "limits": {
            "clients": 3,
            "reports": {"export": 0},
            "tasks": {"update": 2},
            "notes": {"update": 2, "patch": 1}
        }},
        {"name": "pro", "limits": {"clients": 30, "reports": null, "tasks": null}}
    ],
    "addons": [
        {"name": "more-clients", "limits": {"clients": 10}},
        {"name": "pro-exports", "limits": {"reports": {"export": 5}}},
        {"name": "unlimited-clients", "limits": {"clients": {"create": null}}},
        {"name": "nothing-more", "limits": {"clients": 0}},
        {"name": "more-patches", "limits": {"tasks": {"patch": 3}}},
        {"name": "more-updates", "limits": {"tasks": {"update": 4}, "notes": {"update": 4}}},
        {"name": "invoices", "invoices": {"create": 2}}
    ]
}"#;

fn catalog() -> Catalog {
    Catalog::from_json(CATALOG).expect("the test catalog parses")
}

fn arc(name: &str) -> Arc<str> {
    Arc::from(name)
}

/// A user on `plan` (none: no plan) with `clients` clients and these grants.
fn user(plan: Option<Assignment>, clients: u64, grants: &[AddonGrant]) -> Subscriber {
    let mut user = Subscriber::new()
        .with_name("john")
        .with_usage("clients", clients);
    if let Some(plan) = plan {
        user = user.with_plan(plan);
    }
    for grant in grants {
        user = user.with_addon(grant.clone());
    }
    user
}

fn free(clients: u64, grants: &[AddonGrant]) -> Subscriber {
    user(Some(Assignment::new("free")), clients, grants)
}

fn run(user: &Subscriber, now: u64, resource: &str, action: &Action, policy: &Policy) -> Decision {
    decide(&catalog(), Some(user), now, &arc(resource), action, policy)
}

/// The decision on creating a client at `now`, without grace or default plan.
fn create_client(user: &Subscriber, now: u64) -> Decision {
    run(user, now, "clients", &Action::Create, &Policy::new())
}

fn allowed(decision: Decision) -> Allowed {
    match decision {
        Decision::Allow(allowed) => allowed,
        Decision::Deny(denial) => panic!("expected an allow, got {denial:?}"),
    }
}

fn denied(decision: Decision) -> String {
    match decision {
        Decision::Deny(denial) => serde_json::to_string(&denial).unwrap(),
        Decision::Allow(allowed) => panic!("expected a denial, got {allowed:?}"),
    }
}

/// The limit of an allowed decision, or the maximum of a `LimitReached`.
fn limit_of(decision: Decision) -> Limit {
    match decision {
        Decision::Allow(allowed) => allowed.limit,
        Decision::Deny(Denial::LimitReached { maximum, .. }) => Limit::Limited(maximum),
        Decision::Deny(other) => panic!("expected a limit, got {other:?}"),
    }
}

fn at_limit(plan: &str, item: &str, action: &str, maximum: u64) -> String {
    format!(
        r#"{{"reason":"subscription","plan":"{plan}","item":"{item}","action":"{action}","maximum":{maximum},"usage":{maximum}}}"#
    )
}

fn more_clients() -> AddonGrant {
    AddonGrant::new("more-clients")
}

// ---- the decision ----

#[test]
fn an_active_addon_raises_the_plan_limit_and_the_denial_names_the_plan() {
    let john = free(5, &[more_clients()]);
    let allowed = allowed(create_client(&john, T0));
    assert_eq!(&*allowed.plan, "free");
    assert_eq!(allowed.state, PlanState::Active);
    assert_eq!(allowed.limit, Limit::Limited(13));
    assert_eq!(allowed.usage, 5);
    assert_eq!(allowed.remaining(), Some(8));

    assert!(matches!(
        create_client(&free(12, &[more_clients()]), T0),
        Decision::Allow(_)
    ));
    assert_eq!(
        denied(create_client(&free(13, &[more_clients()]), T0)),
        at_limit("free", "clients", "create", 13)
    );
    // Without the add-on, 3 is the limit.
    assert_eq!(
        denied(create_client(&free(3, &[]), T0)),
        at_limit("free", "clients", "create", 3)
    );
}

#[test]
fn starts_is_inclusive_and_expires_exclusive_to_the_millisecond() {
    let grant = more_clients().starts_at(T0).expires_at(T0 + DAY);
    let john = free(3, &[grant]);
    assert_eq!(
        denied(create_client(&john, T0 - 1)),
        at_limit("free", "clients", "create", 3),
        "not started yet"
    );
    assert_eq!(limit_of(create_client(&john, T0)), Limit::Limited(13));
    assert_eq!(
        limit_of(create_client(&john, T0 + DAY - 1)),
        Limit::Limited(13)
    );
    assert_eq!(
        denied(create_client(&john, T0 + DAY)),
        at_limit("free", "clients", "create", 3),
        "expired"
    );
}

#[test]
fn grace_extends_an_addon_as_it_extends_a_plan_but_never_its_start() {
    let grant = more_clients().starts_at(T0).expires_at(T0 + DAY);
    let john = free(3, &[grant]);
    let grace = Policy::new().with_grace_period(Duration::from_millis(HOUR));
    let at = |now| run(&john, now, "clients", &Action::Create, &grace);
    assert_eq!(limit_of(at(T0 + DAY)), Limit::Limited(13));
    assert_eq!(limit_of(at(T0 + DAY + HOUR - 1)), Limit::Limited(13));
    assert_eq!(limit_of(at(T0 + DAY + HOUR)), Limit::Limited(3));
    assert_eq!(limit_of(at(T0 - 1)), Limit::Limited(3));

    // An end at the top of the clock with grace saturates instead of overflowing.
    let late = free(3, &[more_clients().expires_at(u64::MAX - 1)]);
    let forever = Policy::new().with_grace_period(Duration::MAX);
    assert_eq!(
        limit_of(run(
            &late,
            u64::MAX - 1,
            "clients",
            &Action::Create,
            &forever
        )),
        Limit::Limited(13)
    );
}

#[test]
fn a_grant_without_a_start_has_always_started_and_without_an_end_never_ends() {
    let open = free(3, &[more_clients()]);
    assert_eq!(limit_of(create_client(&open, 0)), Limit::Limited(13));
    assert_eq!(limit_of(create_client(&open, u64::MAX)), Limit::Limited(13));
    let until = free(3, &[more_clients().expires_at(T0)]);
    assert_eq!(limit_of(create_client(&until, 0)), Limit::Limited(13));
    assert_eq!(limit_of(create_client(&until, T0)), Limit::Limited(3));
    let from = free(3, &[more_clients().starts_at(T0)]);
    assert_eq!(limit_of(create_client(&from, T0 - 1)), Limit::Limited(3));
    assert_eq!(limit_of(create_client(&from, u64::MAX)), Limit::Limited(13));
}

#[test]
fn quantities_multiply_add_up_and_saturate() {
    let two = more_clients().quantity(2);
    assert!(matches!(
        create_client(&free(22, std::slice::from_ref(&two)), T0),
        Decision::Allow(_)
    ));
    assert_eq!(
        denied(create_client(&free(23, std::slice::from_ref(&two)), T0)),
        at_limit("free", "clients", "create", 23)
    );
    // Two grants of one add-on both count; an inactive one does not.
    let both = free(0, &[two.clone(), more_clients()]);
    assert_eq!(limit_of(create_client(&both, T0)), Limit::Limited(33));
    let one_expired = free(0, &[two, more_clients().expires_at(T0)]);
    assert_eq!(
        limit_of(create_client(&one_expired, T0)),
        Limit::Limited(23)
    );
    // A quantity of 0 grants nothing.
    let zero = free(3, &[more_clients().quantity(0)]);
    assert_eq!(
        denied(create_client(&zero, T0)),
        at_limit("free", "clients", "create", 3)
    );
    // A huge quantity saturates instead of overflowing.
    let huge = free(u64::MAX - 1, &[more_clients().quantity(u64::MAX)]);
    let allowed = allowed(create_client(&huge, T0));
    assert_eq!(allowed.limit, Limit::Limited(u64::MAX));
    assert_eq!(
        denied(create_client(
            &free(u64::MAX, &[more_clients().quantity(u64::MAX)]),
            T0
        )),
        at_limit("free", "clients", "create", u64::MAX)
    );
}

#[test]
fn unlimited_stays_unlimited_and_a_blocked_limit_is_raised() {
    let export = Action::custom("export");
    // free blocks exports (0); the promotion raises it to 5.
    let nobody = free(0, &[]);
    assert_eq!(
        denied(run(&nobody, T0, "reports", &export, &Policy::new())),
        r#"{"reason":"subscription","plan":"free","item":"reports","action":"export","maximum":0,"usage":0}"#
    );
    let promoted = free(0, &[AddonGrant::new("pro-exports")]);
    let allowed = allowed(run(&promoted, T0, "reports", &export, &Policy::new()));
    assert_eq!((&*allowed.plan, allowed.limit), ("free", Limit::Limited(5)));
    let used = promoted.with_action_usage("reports", &export, 5);
    assert_eq!(
        denied(run(&used, T0, "reports", &export, &Policy::new())),
        at_limit("free", "reports", "export", 5)
    );

    // pro leaves exports unlimited: the promotion changes nothing.
    let pro = user(
        Some(Assignment::new("pro")),
        0,
        &[AddonGrant::new("pro-exports")],
    );
    assert_eq!(
        limit_of(run(&pro, T0, "reports", &export, &Policy::new())),
        Limit::Unlimited
    );
    // An add-on that sets `null` makes the action unlimited.
    let unlimited = free(1_000, &[AddonGrant::new("unlimited-clients")]);
    assert_eq!(limit_of(create_client(&unlimited, T0)), Limit::Unlimited);
    // An add-on that adds 0 adds nothing.
    let nothing = free(3, &[AddonGrant::new("nothing-more").quantity(5)]);
    assert_eq!(limit_of(create_client(&nothing, T0)), Limit::Limited(3));
    // free does not name invoices: unlimited, with or without the add-on.
    let invoices = free(0, &[AddonGrant::new("invoices")]);
    assert_eq!(
        limit_of(run(
            &invoices,
            T0,
            "invoices",
            &Action::Create,
            &Policy::new()
        )),
        Limit::Unlimited
    );
    // An action the add-on does not set keeps the plan's limit (listing is unlimited).
    let listing = free(50, &[more_clients()]);
    assert_eq!(
        limit_of(run(&listing, T0, "clients", &Action::Index, &Policy::new())),
        Limit::Unlimited
    );
}

#[test]
fn addons_apply_on_top_of_a_trial_and_of_its_fallback() {
    let trial = Assignment::new("pro").as_trial().joined_at(T0);
    let john = user(Some(trial), 35, &[more_clients()]);
    let on_trial = allowed(create_client(&john, T0 + DAY));
    assert_eq!(on_trial.state, PlanState::Trial);
    assert_eq!(on_trial.limit, Limit::Limited(40));

    // After 14 days the trial falls back to free, and the add-on still counts.
    let fallen = free_fallback(&john, T0 + 14 * DAY);
    assert_eq!(
        denied(create_client(&john, T0 + 14 * DAY)),
        at_limit_with_usage("free", 13, 35)
    );
    assert_eq!(fallen.limit, Limit::Limited(13));
}

/// The fallback decision for a user with 5 clients (below the combined limit).
fn free_fallback(john: &Subscriber, now: u64) -> Allowed {
    let mut five = john.clone();
    five.usage.set("clients", 5);
    let allowed = allowed(create_client(&five, now));
    assert_eq!(allowed.state, PlanState::Fallback { trial: arc("pro") });
    assert_eq!(&*allowed.plan, "free");
    allowed
}

fn at_limit_with_usage(plan: &str, maximum: u64, usage: u64) -> String {
    format!(
        r#"{{"reason":"subscription","plan":"{plan}","item":"clients","action":"create","maximum":{maximum},"usage":{usage}}}"#
    )
}

#[test]
fn addons_apply_on_top_of_the_default_plan() {
    let policy = Policy::new().with_default_plan("free");
    let nobody = user(None, 5, &[more_clients()]);
    let allowed = allowed(run(&nobody, T0, "clients", &Action::Create, &policy));
    assert_eq!(
        (&*allowed.plan, &allowed.state, allowed.limit),
        ("free", &PlanState::Default, Limit::Limited(13))
    );
    // An expired plan without a fallback: the default plan, raised.
    let expired = user(
        Some(Assignment::new("pro").expires_at(T0)),
        13,
        &[more_clients()],
    );
    let decision = run(&expired, T0, "clients", &Action::Create, &policy);
    assert_eq!(denied(decision), at_limit("free", "clients", "create", 13));
}

#[test]
fn without_a_plan_the_addons_alone_apply_to_what_they_name() {
    let nobody = user(None, 4, &[more_clients()]);
    let allowed = allowed(create_client(&nobody, T0));
    assert_eq!(&*allowed.plan, "more-clients");
    assert_eq!(allowed.state, PlanState::Addons);
    assert_eq!(allowed.limit, Limit::Limited(10));
    assert_eq!(
        serde_json::to_string(&allowed).unwrap(),
        r#"{"plan":"more-clients","state":"addons","item":"clients","action":"create","limit":10,"usage":4,"remaining":6}"#
    );
    // Actions the add-on does not set, on a resource it names, are unlimited (as on a plan).
    assert_eq!(
        limit_of(run(&nobody, T0, "clients", &Action::Index, &Policy::new())),
        Limit::Unlimited
    );
    // At its limit: the add-on is named.
    let full = user(None, 10, &[more_clients()]);
    assert_eq!(
        denied(create_client(&full, T0)),
        at_limit("more-clients", "clients", "create", 10)
    );
    // A resource no add-on names: no plan.
    assert_eq!(
        denied(run(&nobody, T0, "tasks", &Action::Update, &Policy::new())),
        r#"{"reason":"subscription","plan":null,"item":"tasks","action":"update"}"#
    );
    // Quantities and several add-ons add up; the first one named is reported.
    let several = user(
        None,
        30,
        &[
            AddonGrant::new("pro-exports"),
            more_clients().quantity(2),
            AddonGrant::new("nothing-more"),
            more_clients(),
        ],
    );
    assert_eq!(
        denied(create_client(&several, T0)),
        at_limit("more-clients", "clients", "create", 30)
    );
    let unlimited = user(
        None,
        99,
        &[more_clients(), AddonGrant::new("unlimited-clients")],
    );
    assert_eq!(limit_of(create_client(&unlimited, T0)), Limit::Unlimited);
    // Inactive or empty grants give nothing: no plan.
    for grant in [
        more_clients().expires_at(T0),
        more_clients().starts_at(T0 + 1),
        more_clients().quantity(0),
        AddonGrant::new("no-such-addon"),
    ] {
        let body = denied(create_client(
            &user(None, 0, std::slice::from_ref(&grant)),
            T0,
        ));
        assert_eq!(
            body, r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#,
            "{grant:?}"
        );
    }
    // An add-on that adds 0 names the resource: its other actions are open, creating is not.
    let blocked = user(None, 0, &[AddonGrant::new("nothing-more")]);
    assert_eq!(
        denied(create_client(&blocked, T0)),
        r#"{"reason":"subscription","plan":"nothing-more","item":"clients","action":"create","maximum":0,"usage":0}"#
    );
    assert_eq!(
        limit_of(run(&blocked, T0, "clients", &Action::Show, &Policy::new())),
        Limit::Unlimited
    );
}

#[test]
fn an_expired_plan_with_addons_keeps_its_expiry_denial_for_the_rest() {
    let expired = user(
        Some(Assignment::new("pro").expires_at(T0)),
        0,
        &[more_clients()],
    );
    let allowed = allowed(create_client(&expired, T0));
    assert_eq!(
        (&*allowed.plan, allowed.state),
        ("more-clients", PlanState::Addons)
    );
    assert_eq!(
        denied(run(&expired, T0, "reports", &Action::Index, &Policy::new())),
        r#"{"reason":"subscription","plan":"pro","expired":true,"date":1700000000000}"#
    );
    // A plan the catalog does not know is no plan: the add-ons apply.
    let unknown = user(Some(Assignment::new("platinum")), 0, &[more_clients()]);
    assert_eq!(
        allowed_plan(create_client(&unknown, T0)),
        ("more-clients".to_owned(), PlanState::Addons)
    );
}

fn allowed_plan(decision: Decision) -> (String, PlanState) {
    let allowed = allowed(decision);
    (allowed.plan.to_string(), allowed.state)
}

#[test]
fn patch_stays_coherent_with_the_update_limit() {
    let policy = Policy::new();
    let tasks = |user: &Subscriber, action: Action| run(user, T0, "tasks", &action, &policy);

    // free: tasks updated twice, PATCH shares the updates. +3 patches: PATCH up to 5, still
    // compared with the update count; PUT stays at 2.
    let patches =
        free(0, &[AddonGrant::new("more-patches")]).with_action_usage("tasks", &Action::Update, 4);
    assert_eq!(limit_of(tasks(&patches, Action::Patch)), Limit::Limited(5));
    assert_eq!(allowed(tasks(&patches, Action::Patch)).usage, 4);
    assert_eq!(
        denied(tasks(&patches, Action::Update)),
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"update","maximum":2,"usage":4}"#
    );
    let five =
        free(0, &[AddonGrant::new("more-patches")]).with_action_usage("tasks", &Action::Update, 5);
    assert_eq!(
        denied(tasks(&five, Action::Patch)),
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"patch","maximum":5,"usage":5}"#
    );
    // The same through a custom action spelt "patch".
    assert_eq!(
        limit_of(tasks(&patches, Action::Custom(arc("patch")))),
        Limit::Limited(5)
    );

    // +4 updates raise PUT and, through the fallback on both sides, PATCH.
    let updates =
        free(0, &[AddonGrant::new("more-updates")]).with_action_usage("tasks", &Action::Update, 5);
    assert_eq!(limit_of(tasks(&updates, Action::Update)), Limit::Limited(6));
    assert_eq!(limit_of(tasks(&updates, Action::Patch)), Limit::Limited(6));
    assert_eq!(allowed(tasks(&updates, Action::Patch)).usage, 5);

    // notes: free limits PATCH on its own (1); the add-on's update limit (4) is its PATCH limit
    // too, and a PATCH is compared with the patch count.
    let notes = free(0, &[AddonGrant::new("more-updates")])
        .with_action_usage("notes", &Action::Update, 100)
        .with_action_usage("notes", &Action::Patch, 4);
    let note = |action: Action| run(&notes, T0, "notes", &action, &policy);
    let patch = allowed(note(Action::Patch));
    assert_eq!((patch.limit, patch.usage), (Limit::Limited(5), 4));
    assert_eq!(limit_of(note(Action::Update)), Limit::Limited(6));

    // Without a plan, add-ons that set only an update limit limit PATCH with the updates.
    let alone = user(None, 0, &[AddonGrant::new("more-updates")]).with_action_usage(
        "tasks",
        &Action::Update,
        4,
    );
    assert_eq!(
        denied(tasks(&alone, Action::Patch)),
        r#"{"reason":"subscription","plan":"more-updates","item":"tasks","action":"patch","maximum":4,"usage":4}"#
    );
    // With an add-on that sets a patch limit, a PATCH is compared with the patch count.
    let both = user(
        None,
        0,
        &[
            AddonGrant::new("more-updates"),
            AddonGrant::new("more-patches"),
        ],
    )
    .with_action_usage("tasks", &Action::Update, 4);
    let patch = allowed(tasks(&both, Action::Patch));
    assert_eq!((patch.limit, patch.usage), (Limit::Limited(7), 0));
}

#[test]
fn an_addon_the_catalog_does_not_know_is_ignored_with_a_warning() {
    let john = free(3, &[AddonGrant::new("more-client"), more_clients()]);
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let decision = tracing::subscriber::with_default(subscriber, || create_client(&john, T0));
    assert_eq!(limit_of(decision), Limit::Limited(13));
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("more-client"), "{logged}");
    assert!(logged.contains("not in the catalog"), "{logged}");
}

// ---- the catalog ----

#[test]
fn the_catalog_reads_addons_as_it_reads_plans() {
    let catalog = catalog();
    let names: Vec<&str> = catalog.addons().map(Addon::name).collect();
    assert_eq!(names[..2], ["more-clients", "pro-exports"]);
    let pack = catalog.addon("more-clients").unwrap();
    assert_eq!(
        pack.limit("clients", &Action::Create),
        Some(Limit::Limited(10))
    );
    assert_eq!(pack.limit("clients", &Action::Index), None);
    // The shorthand without `limits`.
    let invoices = catalog.addon("invoices").unwrap();
    assert_eq!(
        invoices.limit("invoices", &Action::Create),
        Some(Limit::Limited(2))
    );
    // A resource only an add-on names is governed.
    assert!(catalog
        .plans()
        .all(|plan| plan.resource("invoices").is_none()));
    assert!(catalog.is_governed("invoices"));
    assert!(catalog.addon("free").is_none());
    assert!(catalog.plan("more-clients").is_none());

    // The builder makes the same add-ons.
    let built = Catalog::builder()
        .plan(Plan::new("free").create_limit("clients", 3))
        .addon(Addon::new("more-clients").create_limit("clients", 10))
        .addon(Addon::new("invoices").create_limit("invoices", 2))
        .build()
        .unwrap();
    assert_eq!(built.addon("more-clients"), catalog.addon("more-clients"));
    assert_eq!(built.addon("invoices"), catalog.addon("invoices"));
    assert!(built.is_governed("invoices"));
}

#[test]
fn malformed_addons_in_a_catalog_name_their_path() {
    let cases: &[(&str, &str)] = &[
        (r#""addons": 3"#, "addons"),
        (r#""addons": {"name": "x"}"#, "addons"),
        (r#""addons": ["x"]"#, "addons[0]"),
        (r#""addons": [{"limits": {}}]"#, "addons[0].name"),
        (r#""addons": [{"name": ""}]"#, "addons[0].name"),
        (r#""addons": [{"name": 7}]"#, "addons[0].name"),
        (
            r#""addons": [{"name": "a"}, {"name": "b"}, {"name": "a"}]"#,
            "addons[2].name",
        ),
        (r#""addons": [{"name": "free"}]"#, "addons[0].name"),
        (
            r#""addons": [{"name": "a", "limits": 3}]"#,
            "addons[0].limits",
        ),
        (
            r#""addons": [{"name": "a", "limits": {"clients": -1}}]"#,
            "addons[0].limits.clients",
        ),
        (
            r#""addons": [{"name": "a", "limits": {"clients": "10"}}]"#,
            "addons[0].limits.clients",
        ),
        (
            r#""addons": [{"name": "a"}, {"name": "b", "limits": {"clients": {"create": 1.5}}}]"#,
            "addons[1].limits.clients.create",
        ),
        (
            r#""addons": [{"name": "a", "limits": {"clients": {"create": -3}}}]"#,
            "addons[0].limits.clients.create",
        ),
        (
            r#""addons": [{"name": "a", "limits": {"clients": {"craete": 3}}}]"#,
            "addons[0].limits.clients.craete",
        ),
        (
            r#""addons": [{"name": "a", "limits": {"reports": {"archive": 3}}}]"#,
            "addons[0].limits.reports.archive",
        ),
        (
            r#""addons": [{"name": "a", "limits": {"clients": {"delete": 1, "destroy": 1}}}]"#,
            "addons[0].limits.clients.destroy",
        ),
        (
            r#""addons": [{"name": "a", "limits": {"": 1}}]"#,
            r#"addons[0].limits[""]"#,
        ),
        (
            r#""addons": [{"name": "a", "clients": true}]"#,
            "addons[0].clients",
        ),
    ];
    for (addons, path) in cases {
        let json = format!(
            r#"{{"actions": ["export"], "plans": [{{"name": "free", "clients": 3}}], {addons}}}"#
        );
        let err = Catalog::from_json(&json).expect_err(&json);
        assert_eq!(err.path(), *path, "{json}: {err}");
    }

    let err = Catalog::from_json(r#"{"plans": [], "add-ons": []}"#).unwrap_err();
    assert_eq!(err.path(), "add-ons");
    assert!(err.message().contains("`addons`"), "{err}");

    let err = Catalog::from_json(
        r#"{"plans": [{"name": "free"}], "addons": [{"name": "x"}, {"name": "x"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "addons[1].name: duplicate add-on name `x` (first at addons[0])"
    );
    // The error from an add-on's limit reads as a plan's does.
    let err = Catalog::from_json(
        r#"{"plans": [{"name": "free"}], "addons": [{"name": "x", "limits": {"clients": {"create": -1}}}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "addons[0].limits.clients.create: expected a non-negative integer, null (unlimited) or a quota {\"max\": n, \"per\": \"day\"}, found `-1`"
    ); // So does a malformed quota.
    let err = Catalog::from_json(
        r#"{"plans": [{"name": "free"}], "addons": [{"name": "x", "limits": {"reports": {"create": {"max": 2, "per": "fortnight"}}}}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.path(), "addons[0].limits.reports.create.per");
    // A well-formed one is an add-on's limit.
    let catalog = Catalog::from_json(
        r#"{"plans": [{"name": "free"}], "addons": [{"name": "x", "limits": {"reports": {"create": {"max": 2, "per": "week"}}}}]}"#,
    )
    .unwrap();
    assert_eq!(
        catalog
            .addon("x")
            .unwrap()
            .limit("reports", &Action::Create),
        Some(tower_plans::catalog::Limit::per(
            2,
            tower_plans::catalog::Period::Week
        ))
    );
}

// ---- the subscriber record ----

#[test]
fn records_read_addon_grants() {
    let john = Subscriber::from_json(
        r#"{"name": "john", "plan": "free", "clients": 5, "addons": [
            {"name": "more-clients", "starts": 1700000000000, "expires": 1702592000000, "quantity": 2},
            {"name": "pro-exports"},
            {"name": "more-clients", "starts": null, "expires": null, "quantity": null},
            {"name": "nothing-more", "quantity": 0}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        john.addons,
        [
            AddonGrant::new("more-clients")
                .starts_at(1_700_000_000_000)
                .expires_at(1_702_592_000_000)
                .quantity(2),
            AddonGrant::new("pro-exports"),
            AddonGrant::new("more-clients"),
            AddonGrant::new("nothing-more").quantity(0),
        ]
    );
    // `addons` is not usage in the shorthand form.
    assert_eq!(john.usage.len(), 1);
    assert_eq!(john.usage.count("clients"), Some(5));
    assert!(john.check_addons(&catalog()).is_ok());

    let none = Subscriber::from_json(r#"{"plan": "free", "addons": null}"#).unwrap();
    assert!(none.addons.is_empty());
    let empty = Subscriber::from_json(r#"{"plan": "free", "addons": []}"#).unwrap();
    assert!(empty.addons.is_empty());
    // A grant that starts and ends at one millisecond is accepted (and never active).
    let instant = Subscriber::from_json(
        r#"{"addons": [{"name": "more-clients", "starts": 5, "expires": 5}]}"#,
    )
    .unwrap();
    assert!(!instant.addons[0].is_active_at(5, 0));
}

#[test]
fn a_grant_may_name_its_source() {
    let john = Subscriber::from_json(
        r#"{"plan": "free", "addons": [
            {"name": "more-clients", "quantity": 3, "source": "stripe"},
            {"name": "more-clients", "source": null},
            {"name": "pro-exports"}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        john.addons,
        [
            AddonGrant::new("more-clients").quantity(3).source("stripe"),
            AddonGrant::new("more-clients"),
            AddonGrant::new("pro-exports"),
        ]
    );
    assert_eq!(john.addons[0].source.as_deref(), Some("stripe"));
    assert_eq!(john.addons[1].source, None);
    // The source does not change what a grant gives: 3 + 1 units of "10 more clients".
    let decision = create_client(&free(33, &john.addons), T0);
    assert_eq!(limit_of(decision), Limit::Limited(43));
    let err = Subscriber::from_json(r#"{"addons": [{"name": "a", "source": 1}]}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "addons[0].source: expected a non-empty string naming who granted the add-on, found `1`"
    );
}

#[test]
fn malformed_addon_grants_in_a_record_name_their_path() {
    let cases: &[(&str, &str)] = &[
        (r#"{"addons": 3}"#, "addons"),
        (r#"{"addons": {"name": "x"}}"#, "addons"),
        (r#"{"addons": ["more-clients"]}"#, "addons[0]"),
        (r#"{"addons": [{}]}"#, "addons[0].name"),
        (r#"{"addons": [{"name": ""}]}"#, "addons[0].name"),
        (r#"{"addons": [{"name": 3}]}"#, "addons[0].name"),
        (
            r#"{"addons": [{"name": "a"}, {"name": "b", "starts": "today"}]}"#,
            "addons[1].starts",
        ),
        (
            r#"{"addons": [{"name": "a", "starts": -1}]}"#,
            "addons[0].starts",
        ),
        (
            r#"{"addons": [{"name": "a", "expires": 1.5}]}"#,
            "addons[0].expires",
        ),
        (
            r#"{"addons": [{"name": "a", "starts": 10, "expires": 9}]}"#,
            "addons[0].expires",
        ),
        (
            r#"{"addons": [{"name": "a", "quantity": -1}]}"#,
            "addons[0].quantity",
        ),
        (
            r#"{"addons": [{"name": "a", "quantity": 1.5}]}"#,
            "addons[0].quantity",
        ),
        (
            r#"{"addons": [{"name": "a", "quantity": "2"}]}"#,
            "addons[0].quantity",
        ),
        (
            r#"{"addons": [{"name": "a", "expire": 5}]}"#,
            "addons[0].expire",
        ),
        (r#"{"addons": [{"name": "a", "qty": 2}]}"#, "addons[0].qty"),
        (
            r#"{"addons": [{"name": "a", "source": ""}]}"#,
            "addons[0].source",
        ),
        (
            r#"{"addons": [{"name": "a", "source": 7}]}"#,
            "addons[0].source",
        ),
        (
            r#"{"addons": [{"name": "a"}, {"name": "b", "source": ["stripe"]}]}"#,
            "addons[1].source",
        ),
    ];
    for (json, path) in cases {
        let err = Subscriber::from_json(json).expect_err(json);
        assert_eq!(err.path(), *path, "{json}: {err}");
    }
    let err = Subscriber::from_json(r#"{"addons": [{"name": "a", "quantity": -1}]}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "addons[0].quantity: expected a number of units (a non-negative integer), found `-1`"
    );
}

#[test]
fn unknown_addon_names_are_errors_where_the_catalog_is_known() {
    let john = Subscriber::from_json(
        r#"{"plan": "free", "addons": [{"name": "more-clients"}, {"name": "more-client"}]}"#,
    )
    .expect("a record is read without its catalog");
    let err = john.check_addons(&catalog()).unwrap_err();
    assert_eq!(err.path(), "addons[1].name");
    assert_eq!(err.message(), "the catalog has no add-on `more-client`");

    // The memory store's loader knows both.
    let err = MemoryStore::from_json(
        CATALOG,
        r#"{"ann": {"plan": "free"}, "john": {"plan": "free", "addons": [{"name": "more-client"}]}}"#,
    )
    .unwrap_err();
    let LoadError::User { id, error } = &err else {
        panic!("expected a user error, got {err:?}");
    };
    assert_eq!((&**id, error.path()), ("john", "addons[0].name"));
    assert_eq!(
        err.to_string(),
        r#"users["john"].addons[0].name: the catalog has no add-on `more-client`"#
    );
}

// ---- the memory store ----

#[tokio::test]
async fn the_memory_store_grants_and_revokes_addons() {
    use tower_plans::PlanStore;

    let store = MemoryStore::from_json(
        CATALOG,
        r#"{"john": {"plan": "free", "usage": {"clients": 3}, "addons": [{"name": "pro-exports"}]}}"#,
    )
    .unwrap();
    let before = store.subscriber("john").unwrap();

    let pack = more_clients().expires_at(T0 + DAY);
    store.grant_addon("john", pack.clone()).unwrap();
    let john = store.user("john").await.unwrap().unwrap();
    assert_eq!(john.addons, [AddonGrant::new("pro-exports"), pack.clone()]);
    assert_eq!(john.usage.count("clients"), Some(3), "usage is kept");
    assert_eq!(limit_of(create_client(&john, T0)), Limit::Limited(13));
    // A record handed out earlier is not changed behind its holder's back.
    assert!(before.addons.len() == 1);

    // Granting again replaces the grant in place (a renewal, a new quantity).
    let renewed = more_clients().expires_at(T0 + 2 * DAY).quantity(2);
    store.grant_addon("john", renewed.clone()).unwrap();
    let john = store.subscriber("john").unwrap();
    assert_eq!(
        john.addons,
        [AddonGrant::new("pro-exports"), renewed.clone()]
    );
    assert_eq!(limit_of(create_client(&john, T0 + DAY)), Limit::Limited(23));

    // Several grants of one add-on (written with update_user) become one.
    store.update_user("john", |john| john.addons.push(more_clients()));
    assert_eq!(store.subscriber("john").unwrap().addons.len(), 3);
    store.grant_addon("john", more_clients()).unwrap();
    assert_eq!(
        store.subscriber("john").unwrap().addons,
        [AddonGrant::new("pro-exports"), more_clients()]
    );

    // An add-on the catalog does not know is refused, and nothing changes.
    let err = store
        .grant_addon("john", AddonGrant::new("more-client"))
        .unwrap_err();
    assert_eq!(err.name(), "more-client");
    assert_eq!(err.to_string(), "the catalog has no add-on `more-client`");
    assert_eq!(store.subscriber("john").unwrap().addons.len(), 2);
    assert!(store
        .grant_addon("nobody", AddonGrant::new("nope"))
        .is_err());
    assert!(store.subscriber("nobody").is_none());

    // Revoking takes every grant of the add-on away.
    store.update_user("john", |john| john.addons.push(more_clients().quantity(4)));
    assert_eq!(store.revoke_addon("john", "more-clients"), 2);
    assert_eq!(
        store.subscriber("john").unwrap().addons,
        [AddonGrant::new("pro-exports")]
    );
    assert_eq!(store.revoke_addon("john", "more-clients"), 0);
    assert_eq!(store.revoke_addon("stranger", "more-clients"), 0);
    assert!(store.subscriber("stranger").is_none());

    // Granting to an unknown user creates the user, with no plan.
    store.grant_addon("newcomer", more_clients()).unwrap();
    let newcomer = store.subscriber("newcomer").unwrap();
    assert_eq!(newcomer.assignment, None);
    assert_eq!(
        allowed_plan(create_client(&newcomer, T0)),
        ("more-clients".to_owned(), PlanState::Addons)
    );
}
