//! Building a [`Catalog`] from Rust, and the checks every catalog passes.

use std::sync::Arc;
use std::time::Duration;

use crate::format::{FormatError, JsonPath};
use crate::hash::{map_with_capacity, Map};

use super::{Action, Catalog, Plan, Trial};

/// Builds a [`Catalog`] from Rust, without JSON; made by [`Catalog::builder`].
///
/// [`build`](CatalogBuilder::build) checks what the JSON loaders check: unique, non-empty plan
/// names, non-empty resource names, a positive trial duration and a fallback that names a plan.
/// Custom actions used by the plans are declared automatically.
///
/// ```
/// use tower_plans::{Catalog, catalog::{Plan, Trial}};
///
/// let err = Catalog::builder()
///     .trial(Trial::days(14).with_fallback("gratis"))
///     .plan(Plan::new("free").create_limit("clients", 3))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.path(), "trial.fallback");
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct CatalogBuilder {
    trial: Option<Trial>,
    plans: Vec<Plan>,
    actions: Vec<Arc<str>>,
}

impl CatalogBuilder {
    /// An empty builder: no trial policy, no plans.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the trial policy.
    pub fn trial(mut self, trial: Trial) -> Self {
        self.trial = Some(trial);
        self
    }

    /// Adds a plan.
    pub fn plan(mut self, plan: Plan) -> Self {
        self.plans.push(plan);
        self
    }

    /// Adds plans.
    pub fn plans(mut self, plans: impl IntoIterator<Item = Plan>) -> Self {
        self.plans.extend(plans);
        self
    }

    /// Declares a custom action name (the JSON `actions` array). Plans' custom actions are
    /// declared automatically; this is for actions no plan limits yet.
    pub fn action(mut self, name: impl Into<Arc<str>>) -> Self {
        self.actions.push(name.into());
        self
    }

    /// Checks and builds the catalog.
    ///
    /// # Errors
    /// A [`FormatError`] whose path names the offending plan (`plans[1].name`), resource
    /// (`plans[0].limits[""]`), action (`actions[0]`) or trial setting (`trial.duration`,
    /// `trial.fallback`).
    pub fn build(self) -> Result<Catalog, FormatError> {
        assemble(self.trial, self.plans, self.actions)
    }
}

/// Checks a catalog's parts and puts them together. Shared by the builder and the JSON loader,
/// which has already checked what it can report with a more precise path.
pub(super) fn assemble(
    trial: Option<Trial>,
    plans: Vec<Plan>,
    declared: Vec<Arc<str>>,
) -> Result<Catalog, FormatError> {
    let root = JsonPath::root();
    let actions_path = root.key("actions");
    for (i, name) in declared.iter().enumerate() {
        check_custom_action(name).map_err(|msg| actions_path.index(i).error(msg))?;
    }

    let plans_path = root.key("plans");
    let mut index: Map<Arc<str>, usize> = map_with_capacity(plans.len());
    let mut resources: Vec<Arc<str>> = Vec::new();
    let mut actions = declared;
    for (i, plan) in plans.iter().enumerate() {
        let plan_path = plans_path.index(i);
        if plan.name.is_empty() {
            return Err(plan_path
                .key("name")
                .error("expected a non-empty plan name"));
        }
        if let Some(first) = index.get(&plan.name) {
            return Err(plan_path.key("name").error(format!(
                "duplicate plan name `{}` (first at plans[{first}])",
                plan.name
            )));
        }
        // The map keys get allocations of their own: the names handed out (`Plan::name_arc`,
        // `Catalog::resources`, and from them the route table and `Allowed`) are cloned per
        // request, and their reference counts must not share a cache line with the bytes that
        // every lookup compares.
        index.insert(Arc::from(&*plan.name), i);
        for (resource, limits) in &plan.limits {
            if resource.is_empty() {
                return Err(plan_path
                    .key("limits")
                    .key(resource)
                    .error("expected a non-empty resource name"));
            }
            resources.push(Arc::from(&**resource));
            for name in limits.custom_names() {
                if name.is_empty() {
                    return Err(plan_path
                        .key("limits")
                        .key(resource)
                        .key(name)
                        .error("expected a non-empty custom action name"));
                }
                actions.push(Arc::clone(name));
            }
        }
    }
    resources.sort();
    resources.dedup();
    actions.sort();
    actions.dedup();

    if let Some(trial) = &trial {
        if trial.duration == Duration::ZERO {
            return Err(root
                .key("trial")
                .key("duration")
                .error("expected a positive trial duration"));
        }
        if let Some(fallback) = &trial.fallback {
            if !index.contains_key(fallback) {
                return Err(root.key("trial").key("fallback").error(format!(
                    "the fallback plan `{fallback}` is not a plan of the catalog"
                )));
            }
        }
    }

    Ok(Catalog {
        plans,
        index,
        trial,
        actions,
        resources,
    })
}

/// Why `name` cannot be a custom action name, if it cannot.
pub(super) fn check_custom_action(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("expected a non-empty custom action name".to_owned())
    } else if Action::rest(name).is_some() {
        Err(format!(
            "`{name}` is a REST action; declare only custom action names"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Limit;

    #[test]
    fn builder_checks_names() {
        let err = Catalog::builder()
            .plan(Plan::new("free"))
            .plan(Plan::new("pro"))
            .plan(Plan::new("free"))
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "plans[2].name");
        assert_eq!(
            err.message(),
            "duplicate plan name `free` (first at plans[0])"
        );

        let err = Catalog::builder().plan(Plan::new("")).build().unwrap_err();
        assert_eq!(err.path(), "plans[0].name");

        let err = Catalog::builder()
            .plan(Plan::new("free").create_limit("", 1))
            .build()
            .unwrap_err();
        assert_eq!(err.path(), r#"plans[0].limits[""]"#);
    }

    #[test]
    fn builder_checks_the_trial() {
        let err = Catalog::builder()
            .trial(Trial::new(Duration::ZERO))
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "trial.duration");

        let ok = Catalog::builder()
            .trial(Trial::days(14).with_fallback("free"))
            .plan(Plan::new("free"))
            .build()
            .unwrap();
        assert_eq!(ok.trial().and_then(Trial::fallback), Some("free"));
    }

    #[test]
    fn builder_declares_custom_actions() {
        let catalog = Catalog::builder()
            .action("export")
            .plan(Plan::new("pro").with_limit(
                "reports",
                Action::custom("archive"),
                Limit::Limited(1),
            ))
            .build()
            .unwrap();
        let actions: Vec<&str> = catalog.custom_actions().iter().map(|a| &**a).collect();
        assert_eq!(actions, ["archive", "export"]);

        let err = Catalog::builder().action("create").build().unwrap_err();
        assert_eq!(err.path(), "actions[0]");
        let err = Catalog::builder()
            .action("x")
            .action("")
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "actions[1]");
    }
}
