//! The decision: every user state, the boundaries of expiry and usage, and the denial bodies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_plans::{
    catalog::Limit,
    decision::{decide, Decision, PlanState, Policy},
    subscriber::Assignment,
    Action, Allowed, Catalog, Denial, Subscriber,
};

const DAY: u64 = 86_400_000;
const HOUR: u64 = 3_600_000;
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

/// A trial of 14 days falling back to `free`.
fn catalog() -> Catalog {
    Catalog::from_json(
        r#"{"trial": {"duration": 14, "fallback": "free"}, "plans": [
            {"name": "free", "clients": 3, "groups": 2},
            {"name": "basic", "clients": 10},
            {"name": "pro", "clients": 30, "groups": null}
        ]}"#,
    )
    .unwrap()
}

/// The same plans, trials without a fallback.
fn catalog_without_fallback() -> Catalog {
    Catalog::from_json(
        r#"{"trial": 14, "plans": [
            {"name": "free", "clients": 3, "groups": 2},
            {"name": "basic", "clients": 10},
            {"name": "pro", "clients": 30, "groups": null}
        ]}"#,
    )
    .unwrap()
}

fn clients() -> Arc<str> {
    Arc::from("clients")
}

fn check(catalog: &Catalog, user: Option<&Subscriber>, now: u64, action: &Action) -> Decision {
    decide(catalog, user, now, &clients(), action, &Policy::new())
}

fn allowed(decision: Decision) -> Allowed {
    match decision {
        Decision::Allow(allowed) => allowed,
        Decision::Deny(denial) => panic!("expected an allow, got {denial:?}"),
    }
}

fn denied(decision: Decision) -> (Denial, String) {
    match decision {
        Decision::Deny(denial) => {
            let body = serde_json::to_string(&denial).unwrap();
            assert_eq!(denial.to_json_bytes(), body.as_bytes());
            (denial, body)
        }
        Decision::Allow(allowed) => panic!("expected a denial, got {allowed:?}"),
    }
}

/// What an [`Allowed`] on the `clients` create should say (`Allowed` itself is built only by the
/// crate).
#[derive(Debug)]
struct Expected {
    plan: Arc<str>,
    state: PlanState,
    limit: Limit,
    usage: u64,
}

impl PartialEq<Expected> for Allowed {
    fn eq(&self, expected: &Expected) -> bool {
        self.plan == expected.plan
            && self.state == expected.state
            && self.resource == clients()
            && self.action == Action::Create
            && self.limit == expected.limit
            && self.usage == expected.usage
    }
}

fn allow(plan: &str, state: PlanState, limit: Limit, usage: u64) -> Expected {
    Expected {
        plan: Arc::from(plan),
        state,
        limit,
        usage,
    }
}

fn user(assignment: Assignment, clients: u64) -> Subscriber {
    Subscriber::new()
        .with_name("john")
        .with_plan(assignment)
        .with_usage("clients", clients)
}

const NO_PLAN_BODY: &str =
    r#"{"reason":"subscription","plan":null,"item":"clients","action":"create"}"#;

// ---- the seven user states ----

#[test]
fn no_plan() {
    let catalog = catalog();
    let john = Subscriber::new().with_name("john").with_usage("clients", 0);
    let (denial, body) = denied(check(&catalog, Some(&john), T0, &Action::Create));
    assert_eq!(
        denial,
        Denial::NoPlan {
            resource: clients(),
            action: Action::Create
        }
    );
    assert_eq!(body, NO_PLAN_BODY);
    // No record at all is the same.
    let (_, body) = denied(check(&catalog, None, T0, &Action::Create));
    assert_eq!(body, NO_PLAN_BODY);
    // Every governed action is denied, not only limited ones.
    let (_, body) = denied(check(&catalog, None, T0, &Action::Index));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":null,"item":"clients","action":"index"}"#
    );
}

#[test]
fn regular_plan_unexpired() {
    let catalog = catalog();
    let forever = user(Assignment::new("basic").joined_at(T0 - DAY), 4);
    assert_eq!(
        allowed(check(&catalog, Some(&forever), T0, &Action::Create)),
        allow("basic", PlanState::Active, Limit::Limited(10), 4)
    );
    let later = user(Assignment::new("basic").expires_at(T0 + DAY), 4);
    let decision = allowed(check(&catalog, Some(&later), T0, &Action::Create));
    assert_eq!(
        decision,
        allow("basic", PlanState::Active, Limit::Limited(10), 4)
    );
    assert_eq!(decision.remaining(), Some(6));
}

#[test]
fn regular_plan_expired() {
    let catalog = catalog();
    let john = user(Assignment::new("basic").expires_at(T0), 0);
    let (denial, body) = denied(check(&catalog, Some(&john), T0 + DAY, &Action::Create));
    assert_eq!(
        denial,
        Denial::Expired {
            plan: Arc::from("basic"),
            date: T0
        }
    );
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"basic","expired":true,"date":1700000000000}"#
    );
}

#[test]
fn trial_plan_unexpired() {
    let catalog = catalog();
    let john = user(Assignment::new("pro").as_trial().joined_at(T0), 12);
    assert_eq!(
        allowed(check(&catalog, Some(&john), T0 + 13 * DAY, &Action::Create)),
        allow("pro", PlanState::Trial, Limit::Limited(30), 12)
    );
}

#[test]
fn trial_plan_expired_with_fallback() {
    let catalog = catalog();
    let fallback = PlanState::Fallback {
        trial: Arc::from("pro"),
    };
    let john = user(Assignment::new("pro").as_trial().joined_at(T0), 2);
    assert_eq!(
        allowed(check(&catalog, Some(&john), T0 + 15 * DAY, &Action::Create)),
        allow("free", fallback, Limit::Limited(3), 2)
    );
    // Only the fallback's limits apply: 12 clients are fine on pro, not on free.
    let john = user(Assignment::new("pro").as_trial().joined_at(T0), 12);
    let (denial, body) = denied(check(&catalog, Some(&john), T0 + 15 * DAY, &Action::Create));
    assert_eq!(denial.plan(), Some("free"));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":12}"#
    );
}

#[test]
fn trial_plan_expired_without_fallback() {
    let catalog = catalog_without_fallback();
    let john = user(Assignment::new("pro").as_trial().joined_at(T0), 0);
    let (denial, body) = denied(check(&catalog, Some(&john), T0 + 15 * DAY, &Action::Create));
    assert_eq!(
        denial,
        Denial::Expired {
            plan: Arc::from("pro"),
            date: T0 + 14 * DAY
        }
    );
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"pro","expired":true,"date":1701209600000}"#
    );
}

#[test]
fn trial_plan_extended() {
    let catalog = catalog();
    let extended = Assignment::new("pro")
        .as_trial()
        .joined_at(T0)
        .expires_at(T0 + 30 * DAY);
    let john = user(extended, 5);
    // Past the catalog's 14 days, still on the trial.
    assert_eq!(
        allowed(check(&catalog, Some(&john), T0 + 20 * DAY, &Action::Create)),
        allow("pro", PlanState::Trial, Limit::Limited(30), 5)
    );
    // Once the extension ends, the fallback's limits apply.
    let (_, body) = denied(check(&catalog, Some(&john), T0 + 30 * DAY, &Action::Create));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":5}"#
    );
}

// ---- boundaries ----

#[test]
fn trial_expiry_boundary_with_fallback() {
    let catalog = catalog();
    let end = T0 + 14 * DAY;
    let john = user(Assignment::new("pro").as_trial().joined_at(T0), 1);
    let at = |now| allowed(check(&catalog, Some(&john), now, &Action::Create));
    assert_eq!(at(end - 1).state, PlanState::Trial);
    assert_eq!(&*at(end - 1).plan, "pro");
    for now in [end, end + 1] {
        let decision = at(now);
        assert_eq!(&*decision.plan, "free", "at {now}");
        assert_eq!(
            decision.state,
            PlanState::Fallback {
                trial: Arc::from("pro")
            }
        );
    }
}

#[test]
fn trial_expiry_boundary_without_fallback() {
    let catalog = catalog_without_fallback();
    let end = T0 + 14 * DAY;
    let john = user(Assignment::new("pro").as_trial().joined_at(T0), 1);
    assert_eq!(
        allowed(check(&catalog, Some(&john), end - 1, &Action::Create)).state,
        PlanState::Trial
    );
    for now in [end, end + 1] {
        let (denial, _) = denied(check(&catalog, Some(&john), now, &Action::Create));
        assert_eq!(
            denial,
            Denial::Expired {
                plan: Arc::from("pro"),
                date: end
            }
        );
    }
}

#[test]
fn regular_expiry_boundary() {
    let catalog = catalog();
    let john = user(Assignment::new("basic").expires_at(T0), 1);
    assert!(matches!(
        check(&catalog, Some(&john), T0 - 1, &Action::Create),
        Decision::Allow(_)
    ));
    for now in [T0, T0 + 1] {
        assert!(matches!(
            check(&catalog, Some(&john), now, &Action::Create),
            Decision::Deny(Denial::Expired { date: T0, .. })
        ));
    }
}

#[test]
fn usage_boundary() {
    let catalog = catalog();
    let free = Assignment::new("free");
    let below = allowed(check(
        &catalog,
        Some(&user(free.clone(), 2)),
        T0,
        &Action::Create,
    ));
    assert_eq!(
        below,
        allow("free", PlanState::Active, Limit::Limited(3), 2)
    );
    assert_eq!(below.remaining(), Some(1));

    let (_, body) = denied(check(
        &catalog,
        Some(&user(free.clone(), 3)),
        T0,
        &Action::Create,
    ));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
    );
    let (denial, body) = denied(check(&catalog, Some(&user(free, 4)), T0, &Action::Create));
    assert_eq!(
        denial,
        Denial::LimitReached {
            plan: Arc::from("free"),
            resource: clients(),
            action: Action::Create,
            maximum: 3,
            usage: 4,
            window: None,
            cost: 1,
        }
    );
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":4}"#
    );
}

#[test]
fn limit_zero_without_usage_is_denied() {
    let catalog = Catalog::from_json(r#"[{"name": "locked", "clients": 0}]"#).unwrap();
    let john = Subscriber::new().with_plan(Assignment::new("locked"));
    assert!(john.usage.is_empty());
    let (_, body) = denied(check(&catalog, Some(&john), T0, &Action::Create));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"locked","item":"clients","action":"create","maximum":0,"usage":0}"#
    );
}

// ---- policy ----

#[test]
fn grace_period() {
    let catalog = catalog();
    let policy = Policy::new().with_grace_period(Duration::from_millis(2 * HOUR));
    let john = user(Assignment::new("basic").expires_at(T0), 1);
    let run = |now| {
        decide(
            &catalog,
            Some(&john),
            now,
            &clients(),
            &Action::Create,
            &policy,
        )
    };
    assert_eq!(
        allowed(run(T0 + HOUR)),
        allow("basic", PlanState::Active, Limit::Limited(10), 1)
    );
    assert!(matches!(run(T0 + 2 * HOUR - 1), Decision::Allow(_)));
    let (_, body) = denied(run(T0 + 2 * HOUR));
    // The date is the end including grace: the first instant the plan no longer applied.
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"basic","expired":true,"date":1700007200000}"#
    );

    // Grace delays a trial's fallback too.
    let trial = user(Assignment::new("pro").as_trial().joined_at(T0), 1);
    let end = T0 + 14 * DAY + 2 * HOUR;
    let run = |now| {
        decide(
            &catalog,
            Some(&trial),
            now,
            &clients(),
            &Action::Create,
            &policy,
        )
    };
    assert_eq!(allowed(run(end - 1)).state, PlanState::Trial);
    assert_eq!(&*allowed(run(end)).plan, "free");
}

#[test]
fn default_plan() {
    let catalog = catalog();
    let policy = Policy::new().with_default_plan("free");
    let run = |user: Option<&Subscriber>| {
        decide(&catalog, user, T0, &clients(), &Action::Create, &policy)
    };
    // No record, no plan, an expired plan: all get the default plan.
    assert_eq!(
        allowed(run(None)),
        allow("free", PlanState::Default, Limit::Limited(3), 0)
    );
    let no_plan = Subscriber::new().with_usage("clients", 1);
    assert_eq!(
        allowed(run(Some(&no_plan))),
        allow("free", PlanState::Default, Limit::Limited(3), 1)
    );
    let expired = user(Assignment::new("basic").expires_at(T0 - 1), 2);
    assert_eq!(
        allowed(run(Some(&expired))),
        allow("free", PlanState::Default, Limit::Limited(3), 2)
    );
    // The default plan's limits are enforced.
    let (_, body) = denied(run(Some(&user(Assignment::new("basic").expires_at(T0), 3))));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
    );
    // A default plan the catalog does not know is no default.
    let policy = Policy::new().with_default_plan("gratis");
    let (_, body) = denied(decide(
        &catalog,
        None,
        T0,
        &clients(),
        &Action::Create,
        &policy,
    ));
    assert_eq!(body, NO_PLAN_BODY);
}

/// Log output, captured for a test.
#[derive(Clone, Default)]
pub(crate) struct Logs(pub(crate) Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[test]
fn unknown_plan_is_no_plan_and_logged() {
    let catalog = catalog();
    let john = user(Assignment::new("platinum"), 0);
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let decision = tracing::subscriber::with_default(subscriber, || {
        check(&catalog, Some(&john), T0, &Action::Create)
    });
    let (_, body) = denied(decision);
    assert_eq!(body, NO_PLAN_BODY);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("platinum"), "{logged}");
    assert!(logged.contains("john"), "{logged}");

    // With a default plan, the default applies.
    let policy = Policy::new().with_default_plan("free");
    let decision = decide(
        &catalog,
        Some(&john),
        T0,
        &clients(),
        &Action::Create,
        &policy,
    );
    assert_eq!(allowed(decision).state, PlanState::Default);
}

// ---- limits and usage ----

#[test]
fn patch_falls_back_to_update() {
    let catalog = Catalog::from_json(
        r#"[{"name": "free", "clients": {"update": 2}, "groups": {"update": 2, "patch": null}}]"#,
    )
    .unwrap();
    let john = Subscriber::new()
        .with_plan(Assignment::new("free"))
        .with_usage("clients", 2)
        .with_usage("groups", 2);
    let (_, body) = denied(check(&catalog, Some(&john), T0, &Action::Patch));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"patch","maximum":2,"usage":2}"#
    );
    assert!(matches!(
        check(&catalog, Some(&john), T0, &Action::Update),
        Decision::Deny(Denial::LimitReached { maximum: 2, .. })
    ));
    // An explicit patch limit (here unlimited) wins.
    let groups: Arc<str> = Arc::from("groups");
    let decision = decide(
        &catalog,
        Some(&john),
        T0,
        &groups,
        &Action::Patch,
        &Policy::new(),
    );
    assert_eq!(allowed(decision).limit, Limit::Unlimited);
}

#[test]
fn patch_under_the_update_limit_counts_updates() {
    let catalog = Catalog::from_json(r#"[{"name": "free", "tasks": {"update": 2}}]"#).unwrap();
    let tasks: Arc<str> = Arc::from("tasks");
    let run = |usage: &str, action: &Action| {
        let user = Subscriber::from_json(&format!(r#"{{"plan": "free", "usage": {usage}}}"#))
            .expect("a valid record");
        decide(&catalog, Some(&user), T0, &tasks, action, &Policy::new())
    };

    // The store counts only updates: PATCH is denied like PUT.
    let updates = r#"{"tasks": {"update": 2}}"#;
    let (_, body) = denied(run(updates, &Action::Update));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"update","maximum":2,"usage":2}"#
    );
    let (_, body) = denied(run(updates, &Action::Patch));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"patch","maximum":2,"usage":2}"#
    );
    let below = allowed(run(r#"{"tasks": {"update": 1}}"#, &Action::Patch));
    assert_eq!((below.limit, below.usage), (Limit::Limited(2), 1));

    // A patch count, when the store gives one, comes first.
    let both = allowed(run(
        r#"{"tasks": {"update": 2, "patch": 1}}"#,
        &Action::Patch,
    ));
    assert_eq!((both.limit, both.usage), (Limit::Limited(2), 1));
    // Then the resource count, then 0.
    let (_, body) = denied(run(r#"{"tasks": 2}"#, &Action::Patch));
    assert!(body.ends_with(r#""maximum":2,"usage":2}"#), "{body}");
    assert_eq!(
        allowed(run(r#"{"tasks": {"show": 9}}"#, &Action::Patch)).usage,
        0
    );
    assert_eq!(allowed(run("{}", &Action::Patch)).usage, 0);
}

#[test]
fn an_explicit_patch_limit_counts_patches() {
    let catalog =
        Catalog::from_json(r#"[{"name": "free", "tasks": {"update": 2, "patch": 5}}]"#).unwrap();
    let tasks: Arc<str> = Arc::from("tasks");
    let run = |usage: &str| {
        let user = Subscriber::from_json(&format!(r#"{{"plan": "free", "usage": {usage}}}"#))
            .expect("a valid record");
        decide(
            &catalog,
            Some(&user),
            T0,
            &tasks,
            &Action::Patch,
            &Policy::new(),
        )
    };
    let patches = allowed(run(r#"{"tasks": {"update": 9, "patch": 4}}"#));
    assert_eq!((patches.limit, patches.usage), (Limit::Limited(5), 4));
    // No patch count: the update count does not stand in for it.
    assert_eq!(allowed(run(r#"{"tasks": {"update": 9}}"#)).usage, 0);
    let (_, body) = denied(run(r#"{"tasks": {"update": 0, "patch": 5}}"#));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"patch","maximum":5,"usage":5}"#
    );
    // An explicit unlimited patch stays unlimited, whatever the updates.
    let unlimited =
        Catalog::from_json(r#"[{"name": "free", "tasks": {"update": 2, "patch": null}}]"#).unwrap();
    let user =
        Subscriber::from_json(r#"{"plan": "free", "usage": {"tasks": {"update": 9}}}"#).unwrap();
    let decision = decide(
        &unlimited,
        Some(&user),
        T0,
        &tasks,
        &Action::Patch,
        &Policy::new(),
    );
    let patch = allowed(decision);
    assert_eq!((patch.limit, patch.usage), (Limit::Unlimited, 0));
}

#[test]
fn custom_actions_with_rest_names_are_the_rest_actions() {
    let catalog = Catalog::from_json(
        r#"[{"name": "free", "tasks": {"delete": 2, "create": 3, "update": 4, "show": 9}}]"#,
    )
    .unwrap();
    let tasks: Arc<str> = Arc::from("tasks");
    let users = [
        r#"{"plan": "free", "usage": {"tasks": {"destroy": 2, "create": 1, "update": 4}}}"#,
        r#"{"plan": "free", "usage": {"tasks": {"delete": 1, "create": 3, "patch": 1}}}"#,
        r#"{"plan": "free", "tasks": 3}"#,
        r#"{"plan": "free"}"#,
        r#"{"name": "nobody"}"#,
    ];
    let pairs = [
        ("destroy", Action::Delete),
        ("delete", Action::Delete),
        ("create", Action::Create),
        ("update", Action::Update),
        ("patch", Action::Patch),
        ("show", Action::Show),
        ("index", Action::Index),
    ];
    for user in users {
        let user = Subscriber::from_json(user).unwrap();
        for (name, rest) in &pairs {
            let custom = Action::Custom(Arc::from(*name));
            let run =
                |action: &Action| decide(&catalog, Some(&user), T0, &tasks, action, &Policy::new());
            assert_eq!(run(&custom), run(rest), "{name} for {user:?}");
        }
    }

    // The catalog too: `patch` falls back to the `update` limit however it is spelt.
    let free = catalog.plan("free").unwrap();
    let patch = Action::Custom(Arc::from("patch"));
    assert_eq!(free.limit("tasks", &patch), Limit::Limited(4));

    // The usage is read under the catalog's name, and the denial names the REST action.
    let john =
        Subscriber::from_json(r#"{"plan": "free", "usage": {"tasks": {"delete": 2}}}"#).unwrap();
    let destroy = Action::Custom(Arc::from("destroy"));
    assert_eq!(john.usage.get("tasks", &destroy), 2);
    assert_eq!(john.usage.action_count("tasks", &destroy), Some(2));
    let (_, body) = denied(decide(
        &catalog,
        Some(&john),
        T0,
        &tasks,
        &destroy,
        &Policy::new(),
    ));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"delete","maximum":2,"usage":2}"#
    );
}

#[test]
fn per_action_usage_and_resource_count() {
    let catalog =
        Catalog::from_json(r#"[{"name": "free", "tasks": {"show": 40, "create": 2}}]"#).unwrap();
    let tasks: Arc<str> = Arc::from("tasks");
    let run = |user: &Subscriber, action: &Action| {
        decide(&catalog, Some(user), T0, &tasks, action, &Policy::new())
    };

    // Counted per action: each action against its own count, unlisted actions count 0.
    let per_action =
        Subscriber::from_json(r#"{"plan": "free", "usage": {"tasks": {"show": 40}}}"#).unwrap();
    let (_, body) = denied(run(&per_action, &Action::Show));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"show","maximum":40,"usage":40}"#
    );
    assert_eq!(allowed(run(&per_action, &Action::Create)).usage, 0);

    // A resource count counts against every action.
    let count = Subscriber::from_json(r#"{"plan": "free", "tasks": 2}"#).unwrap();
    let (_, body) = denied(run(&count, &Action::Create));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"tasks","action":"create","maximum":2,"usage":2}"#
    );
    assert_eq!(allowed(run(&count, &Action::Show)).usage, 2);
}

#[test]
fn custom_actions() {
    let catalog = Catalog::from_json(
        r#"{"actions": ["export"], "plans": [{"name": "free", "reports": {"export": 1}}]}"#,
    )
    .unwrap();
    let reports: Arc<str> = Arc::from("reports");
    let export = Action::custom("export");
    let john =
        Subscriber::from_json(r#"{"plan": "free", "usage": {"reports": {"export": 1}}}"#).unwrap();
    let (_, body) = denied(decide(
        &catalog,
        Some(&john),
        T0,
        &reports,
        &export,
        &Policy::new(),
    ));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"reports","action":"export","maximum":1,"usage":1}"#
    );
}

#[test]
fn resources_a_plan_does_not_name_are_unlimited() {
    let catalog = catalog();
    let john = user(Assignment::new("basic"), 0).with_usage("groups", 99);
    let groups: Arc<str> = Arc::from("groups");
    let decision = allowed(decide(
        &catalog,
        Some(&john),
        T0,
        &groups,
        &Action::Create,
        &Policy::new(),
    ));
    assert_eq!(decision.limit, Limit::Unlimited);
    assert_eq!(decision.usage, 99);
    assert_eq!(decision.remaining(), None);
}

// ---- odd data ----

#[test]
fn trial_in_a_catalog_without_trials() {
    let catalog = Catalog::from_json(r#"[{"name": "pro", "clients": 30}]"#).unwrap();
    // Without `expires`, the trial ended when it began.
    let john = user(Assignment::new("pro").as_trial().joined_at(T0), 0);
    assert!(matches!(
        check(&catalog, Some(&john), T0 - 1, &Action::Create),
        Decision::Allow(_)
    ));
    let (_, body) = denied(check(&catalog, Some(&john), T0, &Action::Create));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"pro","expired":true,"date":1700000000000}"#
    );
    // With `expires`, that is when it ends.
    let john = user(
        Assignment::new("pro")
            .as_trial()
            .joined_at(T0)
            .expires_at(T0 + DAY),
        0,
    );
    assert_eq!(
        allowed(check(&catalog, Some(&john), T0 + DAY - 1, &Action::Create)).state,
        PlanState::Trial
    );
}

#[test]
fn trial_without_dates_is_no_plan() {
    let catalog = catalog();
    let john = user(Assignment::new("pro").as_trial(), 0);
    let (_, body) = denied(check(&catalog, Some(&john), T0, &Action::Create));
    assert_eq!(body, NO_PLAN_BODY);
}

// ---- the subscriber README's example ----

#[test]
fn readme_putting_it_together() {
    let catalog = Catalog::from_json(include_str!("../fixtures/plans/together.json")).unwrap();
    let john = Subscriber::from_json(include_str!("../fixtures/users/together.json")).unwrap();
    // POST /clients: john's fourth client.
    let (_, body) = denied(check(&catalog, Some(&john), T0, &Action::Create));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}"#
    );
    // On bronze he could.
    let bronze = Subscriber {
        assignment: Some(Assignment::new("bronze")),
        ..john.clone()
    };
    assert_eq!(
        allowed(check(&catalog, Some(&bronze), T0, &Action::Create)),
        allow("bronze", PlanState::Active, Limit::Limited(5), 3)
    );
    // Listing his clients is not limited.
    assert!(matches!(
        check(&catalog, Some(&john), T0, &Action::Index),
        Decision::Allow(_)
    ));
}

#[test]
fn readme_trial_user_falls_back_at_expire() {
    let catalog =
        Catalog::from_json(include_str!("../fixtures/plans/trial_fallback.json")).unwrap();
    let john = Subscriber::from_json(include_str!("../fixtures/users/trial.json")).unwrap();
    let groups: Arc<str> = Arc::from("groups");
    let run = |now| {
        decide(
            &catalog,
            Some(&john),
            now,
            &groups,
            &Action::Create,
            &Policy::new(),
        )
    };
    let trial = allowed(run(1_238_898));
    assert_eq!((&*trial.plan, trial.limit), ("pro", Limit::Limited(10)));
    let (_, body) = denied(run(1_238_899));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","item":"groups","action":"create","maximum":2,"usage":2}"#
    );
}

#[test]
fn readme_expiring_regular_plan() {
    let catalog = Catalog::from_json(include_str!("../fixtures/plans/no_trial.json")).unwrap();
    let john = Subscriber::from_json(include_str!("../fixtures/users/plan_object.json")).unwrap();
    let groups: Arc<str> = Arc::from("groups");
    let run = |now| {
        decide(
            &catalog,
            Some(&john),
            now,
            &groups,
            &Action::Create,
            &Policy::new(),
        )
    };
    // Two groups on free (limit 2) while the plan runs...
    assert!(matches!(
        run(1_238_898),
        Decision::Deny(Denial::LimitReached {
            maximum: 2,
            usage: 2,
            ..
        })
    ));
    // ...and an expired plan once it has ended.
    let (_, body) = denied(run(1_238_899));
    assert_eq!(
        body,
        r#"{"reason":"subscription","plan":"free","expired":true,"date":1238899}"#
    );
}

#[test]
fn a_quota_names_its_reset_in_the_denial_and_the_decision() {
    let catalog = Catalog::from_json(
        r#"[{"name": "free", "limits": {"reports": {"create": {"max": 2, "per": "week"}}}}]"#,
    )
    .unwrap();
    let reports: Arc<str> = Arc::from("reports");
    // T0 is a Tuesday; the ISO week ends on Monday 2023-11-20T00:00:00Z.
    let monday = 1_700_438_400_000;
    let john = |made: u64| {
        Subscriber::from_json(&format!(
            r#"{{"plan": "free", "usage": {{"reports": {{"create": {made}}}}}}}"#
        ))
        .unwrap()
    };
    let decide_at = |made: u64, now: u64| {
        decide(
            &catalog,
            Some(&john(made)),
            now,
            &reports,
            &Action::Create,
            &Policy::new(),
        )
    };
    let Decision::Allow(allowed) = decide_at(1, T0) else {
        panic!("one of two made")
    };
    assert_eq!(allowed.resets(), Some(monday));
    assert_eq!(allowed.remaining(), Some(1));
    assert_eq!(
        serde_json::to_value(&allowed).unwrap()["limit"],
        serde_json::json!({"max": 2, "per": "week"})
    );
    let Decision::Deny(denial) = decide_at(2, monday - 1) else {
        panic!("two of two made")
    };
    assert_eq!(denial.resets(), Some(monday));
    assert_eq!(
        String::from_utf8(denial.to_json_bytes()).unwrap(),
        format!(
            r#"{{"reason":"subscription","plan":"free","item":"reports","action":"create","maximum":2,"usage":2,"resets":{monday}}}"#
        )
    );
    // At the first millisecond of the next week, the same usage names the next reset.
    let Decision::Deny(next) = decide_at(2, monday) else {
        panic!("the record still says two")
    };
    assert_eq!(next.resets(), Some(monday + 7 * DAY));
}
