//! The catalog reader: `Catalog::from_json`, `Catalog::from_value` and serde's `Deserialize`.
//!
//! Any text: no panic, and the three readers agree. A catalog that loads keeps its promises:
//! the resources it lists are sorted, governed and named by some plan or add-on; every plan and
//! add-on is found by its name, and no add-on has a plan's name; every limit a plan or add-on
//! lists (numbers, `null` and quotas) is the limit it answers; the trial is positive and falls
//! back to a plan of the catalog; the builder rebuilds the same catalog; written out again in
//! the JSON form and read back, it is the same catalog; a route table compiled for its
//! resources governs each resource's collection and item paths; and a decision on a plan's
//! limit allows exactly what the limit allows, naming a quota's reset.

#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_plans::catalog::{Limit, ResourceLimits, Rule};
use tower_plans::decision::{decide, Decision, Denial, Policy};
use tower_plans::routes::{RouteConfig, RouteTable};
use tower_plans::subscriber::Assignment;
use tower_plans::{Action, Catalog, Subscriber};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = Catalog::from_json(text);
    if let Err(error) = &loaded {
        // Rendering an error never panics.
        let _ = error.to_string();
    }
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value) => value,
        Err(_) => {
            let error = loaded.expect_err("text that is not JSON loads no catalog");
            assert_eq!(error.path(), "", "invalid JSON is about the whole document");
            return;
        }
    };
    let from_value = Catalog::from_value(&value);
    assert_eq!(loaded, from_value, "from_json and from_value disagree");
    let via_serde = serde_json::from_value::<Catalog>(value.clone());
    match (&loaded, &via_serde) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "Deserialize reads another catalog"),
        (Err(_), Err(_)) => {}
        _ => panic!("from_json {loaded:?} but Deserialize {via_serde:?}"),
    }
    if let Ok(catalog) = loaded {
        check(&catalog, &value);
    }
});

fn check(catalog: &Catalog, value: &Value) {
    // The plans are those of the document, in its order.
    let listed = match value {
        Value::Array(items) => items,
        Value::Object(map) => match map.get("plans") {
            Some(Value::Array(items)) => items,
            other => panic!("a catalog loaded from plans {other:?}"),
        },
        other => panic!("a catalog loaded from {other:?}"),
    };
    assert_eq!(catalog.plans().len(), listed.len());
    for (plan, item) in catalog.plans().zip(listed) {
        assert_eq!(
            item.get("name").and_then(Value::as_str),
            Some(plan.name()),
            "plans keep their order and names"
        );
    }

    // Resources: sorted, distinct, governed, named by some plan; and every plan's are listed.
    let resources = catalog.resources();
    for pair in resources.windows(2) {
        assert!(
            pair[0] < pair[1],
            "resources not sorted and distinct: {resources:?}"
        );
    }
    for resource in resources {
        assert!(!resource.is_empty());
        assert!(
            catalog.is_governed(resource),
            "{resource} listed, not governed"
        );
        assert!(
            catalog
                .plans()
                .any(|plan| plan.resource(resource).is_some())
                || catalog
                    .addons()
                    .any(|addon| addon.resource(resource).is_some())
                || catalog.meters().any(|(metered, _, _)| metered == resource),
            "{resource} listed, but no plan, add-on or meter names it"
        );
    }
    assert!(!catalog.is_governed(""));

    // Custom actions: sorted, distinct, not REST names; every declared one is listed.
    let actions = catalog.custom_actions();
    for pair in actions.windows(2) {
        assert!(pair[0] < pair[1], "custom actions not sorted and distinct");
    }
    for name in actions {
        assert!(!name.is_empty());
        assert!(
            Action::rest(name).is_none(),
            "custom action {name} is a REST name"
        );
    }
    if let Some(Value::Array(declared)) = value.get("actions") {
        for name in declared {
            let name = name.as_str().expect("declared actions are strings");
            assert!(
                actions.iter().any(|a| &**a == name),
                "{name} declared, not listed"
            );
        }
    }

    // Plans: found by name, limits answered as listed.
    for (i, plan) in catalog.plans().enumerate() {
        assert!(!plan.name().is_empty());
        let found = catalog
            .plan(plan.name())
            .expect("a plan is found by its name");
        assert!(
            std::ptr::eq(found, plan),
            "plan {} finds another plan",
            plan.name()
        );
        assert!(
            catalog
                .plans()
                .take(i)
                .all(|earlier| earlier.name() != plan.name()),
            "duplicate plan name {}",
            plan.name()
        );
        for (resource, limits) in plan.resources() {
            assert!(
                catalog.is_governed(resource),
                "{resource} named, not governed"
            );
            check_limits(limits, actions);
            for (action, limit) in limits.iter() {
                assert_eq!(plan.limit(resource, &action), limit);
            }
            // `patch` falls back to `update`, and only when it is not set itself.
            let patch = plan.limit(resource, &Action::Patch);
            match limits.get(&Action::Patch) {
                Some(set) => assert_eq!(patch, set),
                None => assert_eq!(
                    patch,
                    limits.get(&Action::Update).unwrap_or(Limit::Unlimited)
                ),
            }
        }
        assert_eq!(
            plan.limit("\u{0}not a resource", &Action::Create),
            Limit::Unlimited
        );
    }

    // Add-ons: found by name, never a plan's name, their limits answered as listed.
    for (i, addon) in catalog.addons().enumerate() {
        assert!(!addon.name().is_empty());
        let found = catalog
            .addon(addon.name())
            .expect("an add-on is found by its name");
        assert!(std::ptr::eq(found, addon));
        assert!(
            catalog.plan(addon.name()).is_none(),
            "add-on {} is a plan",
            addon.name()
        );
        assert!(
            catalog
                .addons()
                .take(i)
                .all(|earlier| earlier.name() != addon.name()),
            "duplicate add-on name {}",
            addon.name()
        );
        for (resource, limits) in addon.resources() {
            assert!(
                catalog.is_governed(resource),
                "{resource} named, not governed"
            );
            check_limits(limits, actions);
            for (action, limit) in limits.iter() {
                assert_eq!(addon.limit(resource, &action), Some(limit));
            }
        }
    }
    if value.is_array() {
        assert_eq!(
            catalog.addons().len(),
            0,
            "a bare array declares no add-ons"
        );
    }

    // The trial.
    let trial_value = value.get("trial").filter(|trial| !trial.is_null());
    assert_eq!(catalog.trial().is_some(), trial_value.is_some());
    if let Some(trial) = catalog.trial() {
        assert!(trial.duration() > Duration::ZERO);
        if let Some(fallback) = trial.fallback() {
            assert!(
                catalog.plan(fallback).is_some(),
                "fallback {fallback} is no plan"
            );
        }
    }

    rebuild(catalog);
    write_and_read_back(catalog, value);
    route_tables(catalog);
    decisions(catalog);
}

/// Each limit listed is answered, quotas have a maximum, and custom actions are declared.
fn check_limits(limits: &ResourceLimits, actions: &[Arc<str>]) {
    for (action, limit) in limits.iter() {
        assert_eq!(limits.get(&action), Some(limit));
        if limit.period().is_some() {
            assert!(
                limit.maximum().is_some(),
                "a quota without a maximum: {limit:?}"
            );
        }
        if let Action::Custom(name) = &action {
            assert!(actions.contains(name), "custom action {name} not listed");
        }
    }
}

/// The builder, given the same parts, builds the same catalog.
fn rebuild(catalog: &Catalog) {
    let mut builder = Catalog::builder()
        .plans(catalog.plans().cloned())
        .addons(catalog.addons().cloned());
    if let Some(trial) = catalog.trial() {
        builder = builder.trial(trial.clone());
    }
    for name in catalog.custom_actions() {
        builder = builder.action(Arc::clone(name));
    }
    for (resource, action, meter) in catalog.meters() {
        builder = builder.meter(Arc::clone(resource), action.clone(), meter.clone());
    }
    assert_eq!(
        builder.build().as_ref(),
        Ok(catalog),
        "the builder disagrees"
    );
}

/// The catalog written out by its `Serialize` and read back: the same catalog.
fn write_and_read_back(catalog: &Catalog, value: &Value) {
    let mut written = match serde_json::to_value(catalog) {
        Ok(written) => written,
        Err(error) => panic!("the catalog does not serialise: {error}"),
    };
    let again = match Catalog::from_value(&written) {
        Ok(again) => again,
        Err(error) => panic!("the catalog written out does not load: {error}\n{written}"),
    };
    // The trial's days are a float: it comes back to within a microsecond, not always to the
    // nanosecond. With the trial as the document gave it, the whole catalog is the same.
    match (catalog.trial(), again.trial()) {
        (Some(a), Some(b)) => {
            let (a, b) = (a.duration(), b.duration());
            assert!(
                a.abs_diff(b) < Duration::from_micros(1),
                "the trial {a:?} came back as {b:?}"
            );
        }
        (None, None) => {}
        (a, b) => panic!("the trial {a:?} came back as {b:?}"),
    }
    if let (Some(trial), Value::Object(map)) = (value.get("trial"), &mut written) {
        map.insert("trial".into(), trial.clone());
    }
    match Catalog::from_value(&written) {
        Ok(again) => assert_eq!(&again, catalog, "the catalog changed on the way out and back"),
        Err(error) => panic!("the catalog written out does not load: {error}\n{written}"),
    }
}

/// A resource name's path segments, decoded as a template literal is: `None` when a segment
/// decodes to a slash, a dot segment or invalid UTF-8, which the route table refuses.
fn name_segments(name: &str) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    for raw in name.split('/').filter(|s| !s.is_empty()) {
        let bytes = raw.as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
            match (bytes[i], hex(i + 1), hex(i + 2)) {
                (b'%', Some(high), Some(low)) => {
                    decoded.push((high * 16 + low) as u8);
                    i += 3;
                }
                (byte, _, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        let text = String::from_utf8(decoded).ok()?;
        if text.contains('/') || text == "." || text == ".." {
            return None;
        }
        segments.push(text);
    }
    Some(segments)
}

/// `segments` as a request path, every byte but ASCII letters and digits percent-encoded.
fn encoded_path(segments: &[String]) -> String {
    let mut path = String::new();
    for segment in segments {
        path.push('/');
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() {
                path.push(char::from(byte));
            } else {
                path.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// A route table for the catalog's resources compiles or refuses, never panics; when it
/// compiles, every resource's collection and item paths are governed.
fn route_tables(catalog: &Catalog) {
    let configs = [
        (RouteConfig::new(), Vec::new()),
        (RouteConfig::new().base("/api"), vec!["api".to_owned()]),
        (
            RouteConfig::new().base("/API").case_sensitive(true),
            vec!["API".to_owned()],
        ),
    ];
    for (config, base) in configs {
        let table = RouteTable::new(&config, catalog.resources());
        let mut paths = Vec::new();
        for resource in catalog.resources() {
            match name_segments(resource) {
                Some(segments) => {
                    let mut collection = base.clone();
                    collection.extend(segments);
                    paths.push(collection);
                }
                None => {
                    assert!(
                        table.is_err(),
                        "the table accepted the resource name {resource:?}"
                    );
                }
            }
        }
        let Ok(table) = table else {
            continue;
        };
        for collection in paths {
            let mut item = collection.clone();
            item.push("x1".to_owned());
            let (collection, item) = (encoded_path(&collection), encoded_path(&item));
            for method in [http::Method::GET, http::Method::HEAD, http::Method::POST] {
                assert!(
                    table.resolve(&method, &collection).is_some(),
                    "{method} {collection} is not governed"
                );
            }
            for method in [
                http::Method::GET,
                http::Method::HEAD,
                http::Method::PUT,
                http::Method::PATCH,
                http::Method::DELETE,
            ] {
                assert!(
                    table.resolve(&method, &item).is_some(),
                    "{method} {item} is not governed"
                );
            }
        }
    }
}

/// A user on a plan with some usage is allowed exactly when the plan's rule (its limit and
/// overage) leaves room for the units the request takes, and the pool it draws from, if any,
/// can cover its cost (the user holds no grants, and nothing has been spent).
fn decisions(catalog: &Catalog) {
    let policy = Policy::new();
    for plan in catalog.plans().take(3) {
        for resource in catalog.resources().iter().take(3) {
            for usage in [0, 1, 3] {
                let user = Subscriber::new()
                    .with_plan(Assignment::new(plan.name()))
                    .with_usage(Arc::clone(resource), usage);
                for action in Action::REST {
                    let limit = plan.limit(resource, &action);
                    let rule = plan.rule(resource, &action).unwrap_or(Rule::new(limit));
                    assert_eq!(rule.limit, limit);
                    let meter = catalog.cost(resource, &action);
                    // A request takes its cost of the action's own limit, or one unit when it
                    // draws its cost from a pool.
                    let units = meter.filter(|m| m.pool().is_none()).map_or(1, |m| m.units());
                    let fits = rule
                        .hard_maximum()
                        .is_none_or(|max| usage.checked_add(units).is_some_and(|n| n <= max));
                    let pool_refuses = meter.is_some_and(|meter| {
                        meter.pool().is_some_and(|pool| match plan.credit_rule(pool) {
                            None => true,
                            Some(allowance) => allowance
                                .hard_maximum()
                                .is_some_and(|max| meter.units() > max),
                        })
                    });
                    let decision = decide(catalog, Some(&user), 0, resource, &action, &policy);
                    match decision {
                        Decision::Allow(allowed) => {
                            assert!(fits && !pool_refuses, "{rule:?} allowed usage {usage}");
                            assert_eq!(&*allowed.plan, plan.name());
                            assert_eq!(allowed.limit, limit);
                        }
                        Decision::Deny(Denial::LimitReached {
                            maximum,
                            usage: seen,
                            window,
                            cost,
                            ..
                        }) => {
                            assert!(!fits, "{rule:?} denied usage {usage} for {units} units");
                            assert_eq!(limit.maximum(), Some(maximum));
                            assert_eq!(window.map(|w| w.per()), limit.period());
                            // At the epoch, a quota resets at the next period's start.
                            if let Some(window) = window {
                                assert!(window.start() == 0 && window.end() > 0);
                            }
                            assert_eq!(seen, usage);
                            assert_eq!(cost, units);
                        }
                        Decision::Deny(Denial::Credits { pool, cost, .. }) => {
                            assert!(fits && pool_refuses, "credits of {pool} refused");
                            assert_eq!(meter.and_then(|m| m.pool()), Some(&*pool));
                            assert_eq!(meter.map(|m| m.units()), Some(cost));
                        }
                        Decision::Deny(other) => {
                            panic!("a user on {} denied: {other:?}", plan.name())
                        }
                    }
                }
            }
        }
    }
}
