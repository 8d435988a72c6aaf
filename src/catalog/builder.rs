//! Building a [`Catalog`] from Rust, and the checks every catalog passes.

use std::sync::Arc;
use std::time::Duration;

use crate::format::{FormatError, JsonPath};
use crate::names::NameMap;

use super::cost::{set_meter, ResourceMeters};
use super::{Action, Addon, Catalog, Cost, Overage, Plan, Rate, ResourceLimits, Rule, Trial};

/// Builds a [`Catalog`] from Rust, without JSON; made by [`Catalog::builder`].
///
/// [`build`](CatalogBuilder::build) checks what the JSON loaders check: unique, non-empty plan
/// and add-on names (an add-on may not take a plan's name), non-empty resource and pool names,
/// meters of at least one unit that draw from declared pools, a positive trial duration and a
/// fallback that names a plan. Custom actions used by the plans, add-ons and meters are
/// declared automatically.
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
    addons: Vec<Addon>,
    actions: Vec<Arc<str>>,
    meters: NameMap<ResourceMeters>,
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

    /// Adds an add-on (the JSON `addons` array).
    pub fn addon(mut self, addon: Addon) -> Self {
        self.addons.push(addon);
        self
    }

    /// Adds add-ons.
    pub fn addons(mut self, addons: impl IntoIterator<Item = Addon>) -> Self {
        self.addons.extend(addons);
        self
    }

    /// Declares a custom action name (the JSON `actions` array). Plans' and add-ons' custom
    /// actions are declared automatically; this is for actions none limits yet.
    pub fn action(mut self, name: impl Into<Arc<str>>) -> Self {
        self.actions.push(name.into());
        self
    }

    /// Meters `action` of `resource` (the JSON `meters`; see [`Cost`]), replacing a meter
    /// already set on that action.
    pub fn meter(mut self, resource: impl Into<Arc<str>>, action: Action, meter: Cost) -> Self {
        let action = action.normalised().into_owned();
        let meters = self
            .meters
            .get_or_insert_with(resource.into(), ResourceMeters::new);
        set_meter(meters, action, meter);
        self
    }

    /// Checks and builds the catalog.
    ///
    /// # Errors
    /// A [`FormatError`] whose path names the offending plan (`plans[1].name`), add-on
    /// (`addons[0].name`), resource (`plans[0].limits[""]`), action (`actions[0]`), credit pool
    /// (`plans[0].credits[""]`), meter (`meters.images.create.cost` for a cost of 0,
    /// `meters.images.create.credits` for a pool no plan or add-on declares) or trial setting
    /// (`trial.duration`, `trial.fallback`).
    pub fn build(self) -> Result<Catalog, FormatError> {
        assemble(
            self.trial,
            self.plans,
            self.addons,
            self.actions,
            self.meters,
        )
    }
}

/// Checks a catalog's parts and puts them together. Shared by the builder and the JSON loader,
/// which has already checked what it can report with a more precise path.
pub(super) fn assemble(
    trial: Option<Trial>,
    plans: Vec<Plan>,
    addons: Vec<Addon>,
    declared: Vec<Arc<str>>,
    meters: NameMap<ResourceMeters>,
) -> Result<Catalog, FormatError> {
    let root = JsonPath::root();
    let actions_path = root.key("actions");
    for (i, name) in declared.iter().enumerate() {
        check_custom_action(name).map_err(|msg| actions_path.index(i).error(msg))?;
    }

    let plans_path = root.key("plans");
    let mut index: NameMap<usize> = NameMap::default();
    let mut resources: Vec<Arc<str>> = Vec::new();
    let mut pools: Vec<Arc<str>> = Vec::new();
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
        collect(&plan.limits, &plan_path, &mut resources, &mut actions, true)?;
        collect_pools(&plan.credits, &plan_path, &mut pools)?;
        let credits_path = plan_path.key("credits");
        for (pool, rule) in plan.credits.iter() {
            let pool_path = credits_path.key(pool);
            check_rule(rule, &pool_path, true)?;
            if rule.rate.is_some() {
                return Err(pool_path
                    .key("rate")
                    .error("a credit pool has no rate; set it on the actions that draw from it"));
            }
        }
        if let Some(rate) = &plan.rate {
            check_rate(rate, &plan_path.key("rate"))?;
        }
    }

    let addons_path = root.key("addons");
    let mut addon_index: NameMap<usize> = NameMap::default();
    for (i, addon) in addons.iter().enumerate() {
        let addon_path = addons_path.index(i);
        let name_path = addon_path.key("name");
        if addon.name.is_empty() {
            return Err(name_path.error("expected a non-empty add-on name"));
        }
        if let Some(first) = addon_index.get(&addon.name) {
            return Err(name_path.error(format!(
                "duplicate add-on name `{}` (first at addons[{first}])",
                addon.name
            )));
        }
        if let Some(plan) = index.get(&addon.name) {
            return Err(name_path.error(format!(
                "`{}` is the name of a plan (plans[{plan}]); an add-on needs a name of its own",
                addon.name
            )));
        }
        addon_index.insert(Arc::from(&*addon.name), i);
        collect(
            &addon.limits,
            &addon_path,
            &mut resources,
            &mut actions,
            false,
        )?;
        collect_pools(&addon.credits, &addon_path, &mut pools)?;
    }
    pools.sort();
    pools.dedup();

    // A metered resource is governed; a meter's pool must be declared.
    let meters_path = root.key("meters");
    for (resource, resource_meters) in meters.iter() {
        let resource_path = meters_path.key(resource);
        if resource.is_empty() {
            return Err(resource_path.error("expected a non-empty resource name"));
        }
        resources.push(Arc::from(&**resource));
        for (action, meter) in resource_meters {
            let path = resource_path.key(action.as_str());
            if let Action::Custom(name) = action {
                check_custom_action(name).map_err(|msg| path.error(msg))?;
                actions.push(Arc::clone(name));
            }
            if meter.units() == 0 {
                let key = if meter.is_reported() {
                    "estimate"
                } else {
                    "cost"
                };
                return Err(path.key(key).error(
                    "expected a positive number of units (a request takes at least one unit)",
                ));
            }
            if let Some(pool) = meter.pool() {
                if pools.binary_search_by(|p| (**p).cmp(pool)).is_err() {
                    return Err(path.key("credits").error(format!(
                        "unknown credit pool `{pool}`; no plan or add-on declares it"
                    )));
                }
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
            if index.get(fallback).is_none() {
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
        addons,
        addon_index,
        meters,
        pools,
    })
}

/// Checks the credit pools of the plan or add-on at `path` and collects their names.
fn collect_pools<T>(
    credits: &NameMap<T>,
    path: &JsonPath<'_>,
    pools: &mut Vec<Arc<str>>,
) -> Result<(), FormatError> {
    for (pool, _) in credits.iter() {
        if pool.is_empty() {
            return Err(path
                .key("credits")
                .key(pool)
                .error("expected a non-empty pool name"));
        }
        pools.push(Arc::from(&**pool));
    }
    Ok(())
}

/// Checks the limits of the plan or add-on at `path` and collects the resources they name and
/// the custom actions they use.
fn collect(
    limits: &NameMap<ResourceLimits>,
    path: &JsonPath<'_>,
    resources: &mut Vec<Arc<str>>,
    actions: &mut Vec<Arc<str>>,
    plan: bool,
) -> Result<(), FormatError> {
    for (resource, limits) in limits.iter() {
        if resource.is_empty() {
            return Err(path
                .key("limits")
                .key(resource)
                .error("expected a non-empty resource name"));
        }
        resources.push(Arc::from(&**resource));
        let limits_path = path.key("limits");
        let resource_path = limits_path.key(resource);
        for (action, rule) in limits.rules() {
            check_rule(&rule, &resource_path.key(action.as_str()), plan)?;
        }
        for name in limits.custom_names() {
            if name.is_empty() {
                return Err(path
                    .key("limits")
                    .key(resource)
                    .key(name)
                    .error("expected a non-empty custom action name"));
            }
            actions.push(Arc::clone(name));
        }
    }
    Ok(())
}

/// Checks the terms around a limit at `path`: a plan's anchor needs a period and its rate must
/// be valid; an add-on (`plan` false) only adds to limits and sets none of them.
fn check_rule(rule: &Rule, path: &JsonPath<'_>, plan: bool) -> Result<(), FormatError> {
    if !plan {
        let set = [
            ("overage", rule.overage != Overage::Off),
            ("anchor", rule.anchor.is_some()),
            ("rate", rule.rate.is_some()),
        ];
        if let Some((key, _)) = set.into_iter().find(|(_, set)| *set) {
            return Err(path.key(key).error(format!(
                "an add-on only adds to limits; `{key}` belongs to a plan's limit"
            )));
        }
        return Ok(());
    }
    if rule.overage != Overage::Off && rule.limit.maximum().is_none() {
        // The JSON form cannot say it either: a limit without `max` carries only a rate.
        return Err(path
            .key("overage")
            .error("an overage needs a limit (`max`) to go past"));
    }
    if rule.anchor.is_some() && rule.limit.period().is_none() {
        return Err(path
            .key("anchor")
            .error("an anchor needs a quota's period (`per`)"));
    }
    match &rule.rate {
        Some(rate) => check_rate(rate, &path.key("rate")),
        None => Ok(()),
    }
}

/// Checks a rate at `path`: at least one request per period, a burst from 1 to `max`.
fn check_rate(rate: &Rate, path: &JsonPath<'_>) -> Result<(), FormatError> {
    if rate.max == 0 {
        return Err(path
            .key("max")
            .error("expected a positive integer, found 0"));
    }
    if rate.burst == 0 || rate.burst > rate.max {
        return Err(path.key("burst").error(format!(
            "a burst must be from 1 to the rate's `max` of {}, found {}",
            rate.max, rate.burst
        )));
    }
    Ok(())
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
    fn builder_checks_addons() {
        let free = || Plan::new("free").create_limit("clients", 3);
        let err = Catalog::builder()
            .plan(free())
            .addon(Addon::new("more-clients").create_limit("clients", 10))
            .addon(Addon::new("more-clients"))
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "addons[1].name");
        assert_eq!(
            err.message(),
            "duplicate add-on name `more-clients` (first at addons[0])"
        );

        let err = Catalog::builder()
            .plan(free())
            .addon(Addon::new(""))
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "addons[0].name");

        let err = Catalog::builder()
            .plan(free())
            .addon(Addon::new("free"))
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "addons[0].name");
        assert!(err.message().contains("name of a plan"), "{err}");

        let err = Catalog::builder()
            .addon(Addon::new("x").create_limit("", 1))
            .build()
            .unwrap_err();
        assert_eq!(err.path(), r#"addons[0].limits[""]"#);

        // Add-on resources are governed; their custom actions declared.
        let catalog = Catalog::builder()
            .plan(free())
            .addon(Addon::new("exports").with_limit(
                "reports",
                Action::custom("export"),
                Limit::Limited(5),
            ))
            .build()
            .unwrap();
        assert!(catalog.is_governed("reports"));
        assert_eq!(&*catalog.custom_actions()[0], "export");
        assert_eq!(catalog.addons().len(), 1);
        assert!(catalog.addon("exports").is_some());
        assert!(catalog.addon("free").is_none());
    }

    #[test]
    fn meters_compare_equal_in_any_order() {
        let pro = || Plan::new("pro").with_credits("ai", Limit::Limited(10));
        let built = Catalog::builder()
            .plan(pro())
            .meter("chat", Action::Index, Cost::fixed(2))
            .meter("chat", Action::Create, Cost::fixed(9))
            .meter("chat", Action::Create, Cost::reported(5).from_pool("ai"))
            .build()
            .unwrap();
        let json = Catalog::from_json(
            r#"{"plans": [{"name": "pro", "limits": {}, "credits": {"ai": 10}}],
                "meters": {"chat": {"create": {"report": true, "estimate": 5, "credits": "ai"},
                                    "index": {"cost": 2}}}}"#,
        )
        .unwrap();
        assert_eq!(built, json);
        assert_eq!(
            built.cost("chat", &Action::Create),
            Some(&Cost::reported(5).from_pool("ai"))
        );
        assert_eq!(built.meters().count(), 2);
    }

    #[test]
    fn a_meter_takes_at_least_one_unit() {
        for (meter, path) in [
            (Cost::fixed(0), "meters.images.create.cost"),
            (Cost::reported(0), "meters.images.create.estimate"),
        ] {
            let err = Catalog::builder()
                .plan(Plan::new("free").create_limit("images", 0))
                .meter("images", Action::Create, meter)
                .build()
                .unwrap_err();
            assert_eq!(err.path(), path);
        }
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
