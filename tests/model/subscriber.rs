//! Loading subscriber records.

use std::sync::Arc;

use serde_json::json;
use tower_plans::format::FormatError;
use tower_plans::{subscriber::Assignment, Action, Subscriber};

fn load(json: &str) -> Subscriber {
    match Subscriber::from_json(json) {
        Ok(record) => record,
        Err(err) => panic!("{json} should load: {err}"),
    }
}

fn assert_error(value: serde_json::Value, path: &str, message_contains: &str) {
    let err: FormatError = match Subscriber::from_value(&value) {
        Ok(record) => panic!("{value} should be rejected, loaded {record:?}"),
        Err(err) => err,
    };
    assert_eq!(err.path(), path, "{err}");
    assert!(
        err.message().contains(message_contains),
        "`{}` should mention `{message_contains}`",
        err.message()
    );
}

fn john_usage(record: &Subscriber) {
    assert_eq!(record.name.as_deref(), Some("john"));
    assert_eq!(record.usage.len(), 2);
    assert_eq!(record.usage.count("clients"), Some(3));
    assert_eq!(record.usage.count("groups"), Some(2));
    assert_eq!(record.usage.get("clients", &Action::Create), 3);
    assert_eq!(record.usage.get("groups", &Action::Show), 2);
    assert_eq!(record.usage.get("tasks", &Action::Create), 0);
}

// ---- the subscriber README's user examples ----

#[test]
fn readme_plan_object() {
    let record = load(include_str!("../fixtures/users/plan_object.json"));
    assert_eq!(
        record.assignment,
        Some(Assignment {
            plan: Arc::from("free"),
            trial: false,
            joined: Some(1_234_567),
            expires: Some(1_238_899),
        })
    );
    john_usage(&record);
}

#[test]
fn readme_plan_name_shorthand() {
    let record = load(include_str!("../fixtures/users/plan_name.json"));
    assert_eq!(record.assignment, Some(Assignment::new("free")));
    john_usage(&record);
}

#[test]
fn readme_usage_shorthand() {
    let record = load(include_str!("../fixtures/users/usage_shorthand.json"));
    assert_eq!(record.assignment, Some(Assignment::new("free")));
    john_usage(&record);
    assert_eq!(
        record,
        load(include_str!("../fixtures/users/plan_name.json"))
    );
}

#[test]
fn readme_trial_user() {
    let record = load(include_str!("../fixtures/users/trial.json"));
    assert_eq!(
        record.assignment,
        Some(
            Assignment::new("pro")
                .as_trial()
                .joined_at(1_234_567)
                .expires_at(1_238_899)
        )
    );
    john_usage(&record);
}

#[test]
fn readme_putting_it_together_user() {
    let record = load(include_str!("../fixtures/users/together.json"));
    assert_eq!(record.plan_name(), Some("free"));
    john_usage(&record);
}

// ---- other accepted forms ----

#[test]
fn without_plan() {
    assert_eq!(load(r#"{"name": "john"}"#).assignment, None);
    assert_eq!(load(r#"{"name": "john", "plan": null}"#).assignment, None);
    assert_eq!(load("{}"), Subscriber::new());
}

#[test]
fn plan_object_defaults() {
    let record = load(r#"{"plan": {"name": "pro"}}"#);
    assert_eq!(record.assignment, Some(Assignment::new("pro")));
    let record = load(r#"{"plan": {"name": "pro", "trial": false, "join": null, "expire": 5}}"#);
    assert_eq!(
        record.assignment,
        Some(Assignment::new("pro").expires_at(5))
    );
    let record = load(r#"{"plan": {"name": "pro", "trial": true, "expire": 5}}"#);
    assert_eq!(
        record.assignment,
        Some(Assignment::new("pro").as_trial().expires_at(5))
    );
}

#[test]
fn per_action_usage() {
    let record = load(
        r#"{"plan": "free", "usage": {"tasks": {"create": 2, "show": 40, "destroy": 1, "export": 7, "index": null}}}"#,
    );
    let usage = &record.usage;
    assert_eq!(usage.get("tasks", &Action::Create), 2);
    assert_eq!(usage.get("tasks", &Action::Show), 40);
    assert_eq!(usage.get("tasks", &Action::Delete), 1);
    assert_eq!(usage.get("tasks", &Action::custom("export")), 7);
    assert_eq!(usage.get("tasks", &Action::Index), 0);
    assert_eq!(usage.get("tasks", &Action::Update), 0);
    assert_eq!(usage.count("tasks"), None);
    let tasks = usage.resource("tasks").expect("tasks are recorded");
    assert!(tasks.is_per_action());
    assert_eq!(tasks.count(), None);
    assert_eq!(tasks.actions().count(), 4);
}

#[test]
fn usage_key_turns_off_the_shorthand() {
    let record = load(
        r#"{"name": "john", "plan": "free", "usage": {"clients": 1}, "groups": 5, "email": "j@example.com"}"#,
    );
    assert_eq!(record.usage.len(), 1);
    assert_eq!(record.usage.count("clients"), Some(1));
    assert_eq!(record.usage.count("groups"), None);
    assert!(load(r#"{"plan": "free", "usage": null}"#).usage.is_empty());
}

#[test]
fn shorthand_skips_name_id_plan_and_nulls() {
    let record = load(r#"{"id": 42, "plan": "free", "clients": 1, "groups": null}"#);
    assert_eq!(record.name.as_deref(), Some("42"));
    assert_eq!(record.usage.len(), 1);
    let record = load(r#"{"name": "john", "id": "u-1", "clients": 2}"#);
    assert_eq!(record.name.as_deref(), Some("john"));
    assert_eq!(record.usage.len(), 1);
}

#[test]
fn deserialize_goes_through_the_same_checks() {
    let record: Subscriber =
        serde_json::from_str(include_str!("../fixtures/users/trial.json")).unwrap();
    assert_eq!(record, load(include_str!("../fixtures/users/trial.json")));
    let err = serde_json::from_str::<Subscriber>(r#"{"plan": {"name": "pro", "trial": true}}"#)
        .unwrap_err();
    assert!(err.to_string().starts_with("plan: a trial needs"), "{err}");
}

// ---- malformed records ----

#[test]
fn trial_without_join_or_expire() {
    assert_error(
        json!({"plan": {"name": "pro", "trial": true}}),
        "plan",
        "a trial needs `join` or `expire`",
    );
    assert_error(
        json!({"plan": {"name": "pro", "trial": true, "join": null, "expire": null}}),
        "plan",
        "a trial needs",
    );
}

#[test]
fn bad_instants() {
    assert_error(
        json!({"plan": {"name": "pro", "expire": -1}}),
        "plan.expire",
        "found `-1`",
    );
    assert_error(
        json!({"plan": {"name": "pro", "join": 1.5}}),
        "plan.join",
        "found `1.5`",
    );
    assert_error(
        json!({"plan": {"name": "pro", "expire": "2024-01-01"}}),
        "plan.expire",
        "milliseconds since the Unix epoch",
    );
}

#[test]
fn bad_plans() {
    assert_error(
        json!({"plan": {"name": "pro", "expires": 5}}),
        "plan.expires",
        "unknown plan property",
    );
    assert_error(json!({"plan": {"trial": false}}), "plan.name", "missing");
    assert_error(json!({"plan": {"name": ""}}), "plan.name", "non-empty");
    assert_error(
        json!({"plan": {"name": "pro", "trial": "yes"}}),
        "plan.trial",
        "found the string",
    );
    assert_error(json!({"plan": 42}), "plan", "found `42`");
    assert_error(json!({"plan": ""}), "plan", "found the string \"\"");
}

#[test]
fn bad_usage() {
    assert_error(
        json!({"usage": {"clients": -1}}),
        "usage.clients",
        "found `-1`",
    );
    assert_error(
        json!({"usage": {"clients": 2.5}}),
        "usage.clients",
        "found `2.5`",
    );
    assert_error(
        json!({"usage": {"tasks": {"show": 1.5}}}),
        "usage.tasks.show",
        "found `1.5`",
    );
    assert_error(
        json!({"usage": {"tasks": {"show": "4"}}}),
        "usage.tasks.show",
        "found the string",
    );
    assert_error(
        json!({"usage": {"tasks": {"delete": 1, "destroy": 2}}}),
        "usage.tasks.destroy",
        "alias",
    );
    assert_error(json!({"usage": [1]}), "usage", "found an array");
    assert_error(
        json!({"plan": "free", "clients": "3"}),
        "clients",
        "found the string \"3\"",
    );
    assert_error(
        json!({"plan": "free", "verified": true}),
        "verified",
        "found `true`",
    );
    assert_error(json!({"": 1}), r#"[""]"#, "non-empty resource");
}

#[test]
fn bad_names_and_roots() {
    assert_error(json!({"name": ["john"]}), "name", "found an array");
    assert_error(json!({"id": {}}), "id", "found an object");
    assert_error(json!([]), "", "expected a subscriber record");
    let err = Subscriber::from_json("{").unwrap_err();
    assert_eq!(err.path(), "");
    assert!(err.message().starts_with("invalid JSON"), "{err}");
}

// ---- the billing cycle's anchor ----

#[test]
fn cycle_anchor_is_read_and_never_usage() {
    // In the shorthand form, every other top-level key is usage; `cycle_anchor` is not.
    let record = load(r#"{"plan": "pro", "clients": 3, "cycle_anchor": 1706745600000}"#);
    assert_eq!(record.cycle_anchor, Some(1_706_745_600_000));
    assert_eq!(record.usage.len(), 1);
    assert_eq!(record.usage.count("clients"), Some(3));
    assert_eq!(record.usage.count("cycle_anchor"), None);
    // Beside a `usage` object too (where top-level keys are ignored, it is still read).
    let record = load(r#"{"plan": "pro", "usage": {"clients": 3}, "cycle_anchor": 5}"#);
    assert_eq!(record.cycle_anchor, Some(5));
    assert_eq!(record.usage.len(), 1);
    // Absent or null: none.
    assert_eq!(load(r#"{"plan": "pro"}"#).cycle_anchor, None);
    assert_eq!(
        load(r#"{"plan": "pro", "cycle_anchor": null}"#).cycle_anchor,
        None
    );
    // The builder sets it.
    assert_eq!(Subscriber::new().with_cycle_anchor(7).cycle_anchor, Some(7));
    assert_eq!(Subscriber::new().cycle_anchor, None);
}

#[test]
fn bad_cycle_anchors_name_their_path() {
    for bad in [
        json!(-1),
        json!(1.5),
        json!("2024-02-01"),
        json!({}),
        json!(true),
    ] {
        assert_error(
            json!({"plan": "pro", "cycle_anchor": bad}),
            "cycle_anchor",
            "milliseconds since the Unix epoch",
        );
    }
    // With a `usage` object the anchor is still checked.
    assert_error(
        json!({"usage": {}, "cycle_anchor": "soon"}),
        "cycle_anchor",
        "found the string \"soon\"",
    );
}
