//! The plan catalog: plans, their limits and the trial policy.
//!
//! A [`Catalog`] is what a [`PlanStore`](crate::PlanStore)'s `plans()` returns; its docs describe
//! the JSON form and how limits are looked up.

mod builder;
mod cost;
mod json;
mod limits;
mod period;
mod rule;
mod ser;

use std::sync::Arc;
use std::time::Duration;

use crate::format::{self, FormatError};
use crate::names::NameMap;

pub use builder::CatalogBuilder;
pub use cost::Cost;
pub use limits::{Action, Limit, ResourceLimits};
pub use period::{Period, Window};
pub use rule::{Anchor, Overage, Rate, RatePer, Rule};

/// One plan: a name and its limits per resource.
///
/// Build one with [`Plan::new`] and the `with_*` methods, or load it as part of a [`Catalog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    name: Arc<str>,
    limits: NameMap<ResourceLimits>,
    /// Its credit pools, by name.
    credits: NameMap<Rule>,
    /// What its quotas' and pools' periods follow, unless a limit says.
    anchor: Option<Anchor>,
    /// The rate of every governed request of its users.
    rate: Option<Rate>,
}

/// An add-on: a name and the limits it adds, per unit, to a user's plan while a grant of it is
/// active (a "10 more clients" pack, a promotion).
///
/// A catalog lists its add-ons under `"addons"` ([`Catalog`] describes the JSON form); a
/// subscriber record grants them ([`AddonGrant`](crate::subscriber::AddonGrant)), each grant with
/// its own start, end and quantity. An action the add-on sets a limit on adds that limit, times
/// the grant's quantity, to the plan's; `null` (unlimited) makes the action unlimited; an action it
/// does not set adds nothing, except that `patch` reads the add-on's `update` limit when the add-on
/// sets no `patch` limit, as for a plan. See [`decide`](crate::decision::decide) for the rules.
///
/// ```
/// use tower_plans::{Action, Catalog, catalog::{Addon, Limit}};
///
/// let catalog = Catalog::builder()
///     .plan(tower_plans::catalog::Plan::new("free").create_limit("clients", 3))
///     .addon(Addon::new("more-clients").create_limit("clients", 10))
///     .build()?;
/// let pack = catalog.addon("more-clients").expect("declared above");
/// assert_eq!(pack.limit("clients", &Action::Create), Some(Limit::Limited(10)));
/// // It sets nothing else: it adds nothing to listing clients.
/// assert_eq!(pack.limit("clients", &Action::Index), None);
/// # Ok::<(), tower_plans::format::FormatError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addon {
    name: Arc<str>,
    limits: NameMap<ResourceLimits>,
    /// What it adds to credit pools, per unit, by pool.
    credits: NameMap<Limit>,
}

/// The free-trial policy of a catalog: how long a trial lasts and the plan it falls back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trial {
    duration: Duration,
    fallback: Option<Arc<str>>,
}

/// All plans plus the trial policy: what a [`PlanStore`](crate::PlanStore)'s `plans()` returns. It is built from
/// JSON in the format of the Node.js `subscriber` package ([`Catalog::from_json`],
/// [`Catalog::from_value`], or serde's `Deserialize`), or from Rust with [`Catalog::builder`].
/// Both paths validate the same way and report a [`FormatError`] naming the bad value's path.
///
/// # The JSON form
///
/// The catalog is an object `{"trial": T, "actions": [..], "plans": [..], "addons": [..],
/// "meters": {..}}` (only `plans` is required) or a bare array of plans.
///
/// * `trial` is a number of days (fractions allowed) or `{"duration": days, "fallback": "free"}`.
///   The duration must be a positive number; the fallback, if given, must name a plan of the
///   catalog. `null` means no trial policy.
/// * A plan is `{"name": "bronze", "limits": {..}}`. Its other properties are ignored. Without a
///   `limits` property, every property but `name` is a limit: `{"name": "bronze", "groups": 10}`.
///   Plan names are non-empty strings and unique.
/// * A resource's limit is a number (a limit on `create` only), `null` (unlimited) or an object
///   of per-action limits keyed by `index`, `show`, `create`, `update`, `patch`, `delete`
///   (`destroy` is an alias of `delete`) or a custom action name.
/// * A limit is a non-negative integer (`0` blocks the action), `null` (unlimited), or a quota
///   that resets: `{"max": 20, "per": "day"}`, `per` one of `hour`, `day`, `week` (ISO, from
///   Monday), `month` or `year`, UTC calendar periods ([`Limit::Periodic`]). Negative, fractional and
///   non-numeric limits, unknown periods and unknown quota properties are errors.
/// * **Custom actions must be declared** in the catalog's top-level `actions` array before a plan
///   may limit them. Any per-action key that is neither a REST action name nor a declared custom
///   action is an error that names it, so a misspelt `"craete": 3` is caught instead of silently
///   becoming a limit on an action no request performs. (The bare-array form declares none.)
///
/// * A plan (or an add-on) may declare credit pools beside its limits: `"credits": {"ai":
///   {"max": 1000, "per": "month"}}`, each read as a limit is (a number is a lifetime pool,
///   `null` an unlimited one). `credits` is never a resource, also in the shorthand form. An
///   add-on's pools add to the plan's, as its limits do.
/// * `meters` (object form only) says what requests consume, by resource and action: see
///   [`Cost`]. A meter's `cost` and `estimate` are at least 1, its pool must be declared by
///   some plan or add-on, and a metered resource is governed.
/// * `addons` (object form only) lists the [add-ons](Addon) that subscriber records may grant:
///   `[{"name": "more-clients", "limits": {"clients": 10}}]`, each read exactly as a plan is
///   (the same limit forms, the same shorthand without `limits`). Add-on names are non-empty,
///   unique, and distinct from plan names; errors name their path (`addons[1].name`,
///   `addons[0].limits.clients.create`).
///
/// A resource is *governed* when some plan, add-on or meter names it; a plan that does not name
/// it leaves it unlimited, and an action a plan does not set is unlimited too, except `patch`,
/// which falls back to the `update` limit.
///
/// ```
/// use tower_plans::{Action, Catalog, catalog::{Limit, Period}};
///
/// let catalog = Catalog::from_json(
///     r#"{
///         "trial": {"duration": 14, "fallback": "free"},
///         "actions": ["export"],
///         "plans": [
///             {"name": "free", "clients": 3, "reports": {"export": 0}},
///             {"name": "pro", "limits": {
///                 "clients": {"create": 30, "update": 100},
///                 "reports": {"export": {"max": 20, "per": "day"}}
///             }}
///         ],
///         "addons": [{"name": "more-clients", "limits": {"clients": 10}}]
///     }"#,
/// )?;
///
/// let free = catalog.plan("free").expect("declared above");
/// assert_eq!(free.limit("clients", &Action::Create), Limit::Limited(3));
/// assert_eq!(free.limit("clients", &Action::Index), Limit::Unlimited);
/// assert_eq!(free.limit("reports", &Action::custom("export")), Limit::Limited(0));
///
/// let pro = catalog.plan("pro").expect("declared above");
/// // `patch` falls back to the `update` limit.
/// assert_eq!(pro.limit("clients", &Action::Patch), Limit::Limited(100));
/// // 20 exports a UTC day.
/// assert_eq!(
///     pro.limit("reports", &Action::custom("export")),
///     Limit::per(20, Period::Day)
/// );
///
/// assert_eq!(catalog.trial().and_then(|t| t.fallback()), Some("free"));
/// let pack = catalog.addon("more-clients").expect("declared above");
/// assert_eq!(pack.limit("clients", &Action::Create), Some(Limit::Limited(10)));
/// assert!(catalog.is_governed("reports"));
/// assert!(!catalog.is_governed("invoices"));
///
/// // Errors name the path to the bad value.
/// let err = Catalog::from_json(r#"[{"name": "free", "clients": {"craete": 3}}]"#).unwrap_err();
/// assert_eq!(err.path(), "plans[0].clients.craete");
/// # Ok::<(), tower_plans::format::FormatError>(())
/// ```
///
/// The same catalog from Rust:
///
/// ```
/// use std::time::Duration;
/// use tower_plans::{Action, Catalog, catalog::{Limit, Plan, Trial}};
///
/// let catalog = Catalog::builder()
///     .trial(Trial::days(14).with_fallback("free"))
///     .plan(
///         Plan::new("free")
///             .create_limit("clients", 3)
///             .with_limit("reports", Action::custom("export"), Limit::Limited(0)),
///     )
///     .plan(
///         Plan::new("pro")
///             .create_limit("clients", 30)
///             .with_limit("clients", Action::Update, Limit::Limited(100)),
///     )
///     .build()?;
/// assert_eq!(catalog.resources().len(), 2);
/// assert_eq!(catalog.trial().map(|t| t.duration()), Some(Duration::from_secs(14 * 86_400)));
/// # Ok::<(), tower_plans::format::FormatError>(())
/// ```
///
/// A `Catalog` is always valid: it can only be made by the JSON loaders or by
/// [`CatalogBuilder::build`], which check it.
///
/// It is also `serde::Serialize`: written out, it is the canonical JSON form (a `limits` object
/// per plan and add-on, `null` for a resource without limits, the optional sections only when
/// they hold something), which [`Catalog::from_value`] reads back as the same catalog (a trial's
/// fractional days to within a microsecond).
///
/// ```
/// use tower_plans::Catalog;
///
/// let catalog = Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#)?;
/// let written = serde_json::to_value(&catalog).expect("a catalog serialises");
/// assert_eq!(
///     written,
///     serde_json::json!({"plans": [{"name": "free", "limits": {"clients": {"create": 3}}}]})
/// );
/// assert_eq!(Catalog::from_value(&written)?, catalog);
/// # Ok::<(), tower_plans::format::FormatError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The plans, in catalog order.
    plans: Vec<Plan>,
    /// Plan name -> index into `plans`.
    index: NameMap<usize>,
    trial: Option<Trial>,
    /// The declared custom actions (and those the plans use), sorted and deduplicated.
    actions: Vec<Arc<str>>,
    /// Every resource some plan, add-on or meter names, sorted and deduplicated.
    resources: Vec<Arc<str>>,
    /// The add-ons, in catalog order.
    addons: Vec<Addon>,
    /// Add-on name -> index into `addons`.
    addon_index: NameMap<usize>,
    /// What requests consume, by resource and action.
    meters: NameMap<cost::ResourceMeters>,
    /// Every credit pool some plan or add-on declares, sorted.
    pools: Vec<Arc<str>>,
}

impl Catalog {
    /// Starts a catalog built from Rust; see [`CatalogBuilder`].
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::new()
    }

    /// Parses a catalog from subscriber-format JSON text (see [`Catalog`]).
    ///
    /// # Errors
    /// A [`FormatError`] naming the path to the first bad value; invalid JSON gives an error
    /// with an empty path.
    pub fn from_json(json: &str) -> Result<Catalog, FormatError> {
        Catalog::from_value(&format::parse(json)?)
    }

    /// Builds a catalog from an already parsed JSON value (see [`Catalog`]).
    ///
    /// # Errors
    /// A [`FormatError`] naming the path to the first bad value.
    pub fn from_value(value: &serde_json::Value) -> Result<Catalog, FormatError> {
        json::catalog(value)
    }

    /// The plan with this name.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.index.get(name).and_then(|&i| self.plans.get(i))
    }

    /// The plans, in catalog order.
    pub fn plans(&self) -> impl ExactSizeIterator<Item = &Plan> + '_ {
        self.plans.iter()
    }

    /// The trial policy, if the catalog offers trials.
    pub fn trial(&self) -> Option<&Trial> {
        self.trial.as_ref()
    }

    /// The add-on with this name.
    pub fn addon(&self, name: &str) -> Option<&Addon> {
        self.addon_index.get(name).and_then(|&i| self.addons.get(i))
    }

    /// The add-ons, in catalog order.
    pub fn addons(&self) -> impl ExactSizeIterator<Item = &Addon> + '_ {
        self.addons.iter()
    }

    /// Every resource that some plan, add-on or meter names (the governed resources), sorted.
    pub fn resources(&self) -> &[Arc<str>] {
        &self.resources
    }

    /// Whether some plan, add-on or meter names `resource`, so requests to it are governed.
    pub fn is_governed(&self, resource: &str) -> bool {
        self.resources
            .binary_search_by(|r| (**r).cmp(resource))
            .is_ok()
    }

    /// The custom action names the catalog declares (or its plans use), sorted.
    pub fn custom_actions(&self) -> &[Arc<str>] {
        &self.actions
    }

    /// What a request to `action` of `resource` costs, if the catalog meters it. An
    /// [`Action::Custom`] carrying a REST name is that REST action. Does not allocate.
    pub fn cost(&self, resource: &str, action: &Action) -> Option<&Cost> {
        let action = action.normalised();
        self.meters
            .get(resource)?
            .iter()
            .find(|(metered, _)| *metered == *action)
            .map(|(_, meter)| meter)
    }

    /// Every metered resource and action, with its meter, in no particular order.
    pub fn meters(&self) -> impl Iterator<Item = (&Arc<str>, &Action, &Cost)> + '_ {
        self.meters.iter().flat_map(|(resource, meters)| {
            meters
                .iter()
                .map(move |(action, meter)| (resource, action, meter))
        })
    }

    /// Every credit pool some plan or add-on declares, sorted.
    pub fn pools(&self) -> &[Arc<str>] {
        &self.pools
    }
}

impl<'de> serde::Deserialize<'de> for Catalog {
    /// Reads the subscriber JSON form through the same checks as [`Catalog::from_value`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Catalog::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl Plan {
    /// A plan with no limits.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            limits: NameMap::default(),
            credits: NameMap::default(),
            anchor: None,
            rate: None,
        }
    }

    /// Declares the credit pool `pool` with its allowance (a number for a lifetime pool,
    /// [`Limit::Periodic`] for one that renews, [`Limit::Unlimited`]), builder style.
    #[must_use]
    pub fn with_credits(self, pool: impl Into<Arc<str>>, allowance: Limit) -> Self {
        self.with_credit_rule(pool, Rule::new(allowance))
    }

    /// Declares the credit pool `pool` with its allowance and the terms around it (an
    /// [`Overage`], an [`Anchor`]; a pool has no rate), builder style.
    #[must_use]
    pub fn with_credit_rule(mut self, pool: impl Into<Arc<str>>, rule: Rule) -> Self {
        self.credits.insert(pool.into(), rule);
        self
    }

    /// The allowance of the credit pool `pool`, `None` when the plan does not declare it (its
    /// requests that draw from it are refused).
    pub fn credits(&self, pool: &str) -> Option<Limit> {
        self.credit_rule(pool).map(|rule| rule.limit)
    }

    /// The allowance of the credit pool `pool` with the terms around it, `None` when the plan
    /// does not declare it.
    pub fn credit_rule(&self, pool: &str) -> Option<Rule> {
        self.credits.get(pool).copied()
    }

    /// The credit pools the plan declares, with their allowances, in no particular order.
    pub fn pools(&self) -> impl Iterator<Item = (&Arc<str>, Limit)> + '_ {
        self.credits.iter().map(|(pool, rule)| (pool, rule.limit))
    }

    /// Sets what the plan's quotas and pools follow (a limit may say otherwise), builder
    /// style: the JSON `"anchor": "subscription"` beside `limits`.
    #[must_use]
    pub fn with_anchor(mut self, anchor: Anchor) -> Self {
        self.anchor = Some(anchor);
        self
    }

    /// What the plan's quotas and pools follow, `None` when it does not say (the calendar).
    pub fn anchor(&self) -> Option<Anchor> {
        self.anchor
    }

    /// Sets the rate of every governed request of the plan's users, builder style: the JSON
    /// `"rate": {"max": 100, "per": "second"}` beside `limits`.
    #[must_use]
    pub fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// The plan-wide rate, if any.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// Sets the rule on `action` of `resource`, builder style.
    #[must_use]
    pub fn with_rule(mut self, resource: impl Into<Arc<str>>, action: Action, rule: Rule) -> Self {
        self.limits
            .get_or_insert_with(resource.into(), ResourceLimits::default)
            .set_rule(action, rule);
        self
    }

    /// The rule this plan sets on `action` of `resource` (with the `patch` fallback of
    /// [`limit`](Self::limit)), `None` when it sets none.
    pub fn rule(&self, resource: &str, action: &Action) -> Option<Rule> {
        self.limits.get(resource)?.rule(action)
    }

    /// Sets the limit on `action` of `resource`, builder style.
    #[must_use]
    pub fn with_limit(
        mut self,
        resource: impl Into<Arc<str>>,
        action: Action,
        limit: Limit,
    ) -> Self {
        self.limits
            .get_or_insert_with(resource.into(), ResourceLimits::default)
            .set(action, limit);
        self
    }

    /// Limits creating `resource` to `max` items (the JSON shorthand `{"clients": 3}`).
    #[must_use]
    pub fn create_limit(self, resource: impl Into<Arc<str>>, max: u64) -> Self {
        self.with_limit(resource, Action::Create, Limit::Limited(max))
    }

    /// Names `resource` without limiting it (the JSON `{"clients": null}`), so that it is
    /// governed. Limits already set on it are kept.
    #[must_use]
    pub fn unlimited(mut self, resource: impl Into<Arc<str>>) -> Self {
        self.limits
            .get_or_insert_with(resource.into(), ResourceLimits::default);
        self
    }

    /// Replaces the limits on `resource`.
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<Arc<str>>, limits: ResourceLimits) -> Self {
        self.limits.insert(resource.into(), limits);
        self
    }

    /// The plan's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plan's name, shared.
    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The limit this plan sets on `action` of `resource`.
    ///
    /// A resource the plan does not name, and an action it does not set, are
    /// [`Limit::Unlimited`], except that [`Action::Patch`] falls back to the [`Action::Update`]
    /// limit. The lookup does not allocate.
    pub fn limit(&self, resource: &str, action: &Action) -> Limit {
        match self.limits.get(resource) {
            Some(limits) => limits.limit(action),
            None => Limit::Unlimited,
        }
    }

    /// The limits on `resource`, if the plan names it.
    pub fn resource(&self, resource: &str) -> Option<&ResourceLimits> {
        self.limits.get(resource)
    }

    /// The resources this plan names, with their limits, in no particular order.
    pub fn resources(&self) -> impl Iterator<Item = (&Arc<str>, &ResourceLimits)> + '_ {
        self.limits.iter()
    }
}

impl Addon {
    /// An add-on that adds nothing yet.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            limits: NameMap::default(),
            credits: NameMap::default(),
        }
    }

    /// Adds `extra` to the credit pool `pool`, per unit ([`Limit::Unlimited`] makes it
    /// unlimited), builder style.
    #[must_use]
    pub fn with_credits(mut self, pool: impl Into<Arc<str>>, extra: Limit) -> Self {
        self.credits.insert(pool.into(), extra);
        self
    }

    /// What one unit of the add-on adds to the credit pool `pool`, `None` when it adds nothing.
    pub fn credits(&self, pool: &str) -> Option<Limit> {
        self.credits.get(pool).copied()
    }

    /// The credit pools the add-on adds to, with what it adds, in no particular order.
    pub fn pools(&self) -> impl Iterator<Item = (&Arc<str>, Limit)> + '_ {
        self.credits.iter().map(|(pool, limit)| (pool, *limit))
    }

    /// Sets what the add-on adds to `action` of `resource`, per unit, builder style:
    /// [`Limit::Limited`]`(n)` adds `n`, [`Limit::Unlimited`] makes the action unlimited.
    #[must_use]
    pub fn with_limit(
        mut self,
        resource: impl Into<Arc<str>>,
        action: Action,
        limit: Limit,
    ) -> Self {
        self.limits
            .get_or_insert_with(resource.into(), ResourceLimits::default)
            .set(action, limit);
        self
    }

    /// Adds `extra` items of `resource` per unit (the JSON shorthand `{"clients": 10}`).
    #[must_use]
    pub fn create_limit(self, resource: impl Into<Arc<str>>, extra: u64) -> Self {
        self.with_limit(resource, Action::Create, Limit::Limited(extra))
    }

    /// Names `resource` without adding to any of its actions (the JSON `{"clients": null}`),
    /// so that it is governed. A user without a plan who holds the add-on may use it without
    /// limit (see [`decide`](crate::decision::decide)).
    #[must_use]
    pub fn unlimited(mut self, resource: impl Into<Arc<str>>) -> Self {
        self.limits
            .get_or_insert_with(resource.into(), ResourceLimits::default);
        self
    }

    /// Replaces what the add-on adds to `resource`.
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<Arc<str>>, limits: ResourceLimits) -> Self {
        self.limits.insert(resource.into(), limits);
        self
    }

    /// The add-on's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The add-on's name, shared.
    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// What one unit of the add-on adds to `action` of `resource`: the limit it sets on the
    /// action, else for [`Action::Patch`] its [`Action::Update`] limit; `None` when it adds
    /// nothing (the resource or the action is not set). Does not allocate.
    pub fn limit(&self, resource: &str, action: &Action) -> Option<Limit> {
        self.limits.get(resource)?.declared(action)
    }

    /// What the add-on adds to `resource`, if it names it.
    pub fn resource(&self, resource: &str) -> Option<&ResourceLimits> {
        self.limits.get(resource)
    }

    /// The resources this add-on names, with what it adds to them, in no particular order.
    pub fn resources(&self) -> impl Iterator<Item = (&Arc<str>, &ResourceLimits)> + '_ {
        self.limits.iter()
    }
}

impl Trial {
    /// Trials of this length, without a fallback plan.
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            fallback: None,
        }
    }

    /// Trials of this many days, without a fallback plan.
    pub fn days(days: u32) -> Self {
        Self::new(Duration::from_secs(u64::from(days) * 86_400))
    }

    /// The plan a user falls back to when the trial ends, builder style.
    #[must_use]
    pub fn with_fallback(mut self, plan: impl Into<Arc<str>>) -> Self {
        self.fallback = Some(plan.into());
        self
    }

    /// How long a trial lasts.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How long a trial lasts, in whole milliseconds (saturating).
    pub(crate) fn duration_ms(&self) -> u64 {
        crate::time::millis(self.duration)
    }

    /// The plan a user falls back to when the trial ends.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_actions_are_unlimited_and_patch_falls_back_to_update() {
        let limits = ResourceLimits::new()
            .with(Action::Create, Limit::Limited(3))
            .with(Action::Update, Limit::Limited(7));
        assert_eq!(limits.limit(&Action::Create), Limit::Limited(3));
        assert_eq!(limits.limit(&Action::Index), Limit::Unlimited);
        assert_eq!(limits.limit(&Action::Patch), Limit::Limited(7));
        assert_eq!(limits.get(&Action::Patch), None);

        // An explicit patch limit, even unlimited, wins over update.
        let limits = limits.with(Action::Patch, Limit::Unlimited);
        assert_eq!(limits.limit(&Action::Patch), Limit::Unlimited);
    }

    #[test]
    fn custom_actions_carrying_rest_names_are_rest_actions() {
        let limits = ResourceLimits::new()
            .with(Action::Custom(Arc::from("destroy")), Limit::Limited(1))
            .with(Action::custom("archive"), Limit::Limited(2));
        assert_eq!(limits.limit(&Action::Delete), Limit::Limited(1));
        assert_eq!(
            limits.limit(&Action::Custom(Arc::from("delete"))),
            Limit::Limited(1)
        );
        assert_eq!(limits.limit(&Action::custom("archive")), Limit::Limited(2));
        assert_eq!(limits.limit(&Action::custom("export")), Limit::Unlimited);
        let set: Vec<_> = limits.iter().collect();
        assert_eq!(
            set,
            vec![
                (Action::Delete, Limit::Limited(1)),
                (Action::custom("archive"), Limit::Limited(2)),
            ]
        );
    }

    #[test]
    fn setting_a_custom_action_twice_replaces_it() {
        let mut limits = ResourceLimits::new();
        limits.set(Action::custom("archive"), Limit::Limited(2));
        limits.set(Action::custom("archive"), Limit::Limited(5));
        assert_eq!(limits.iter().count(), 1);
        assert_eq!(limits.limit(&Action::custom("archive")), Limit::Limited(5));
    }

    #[test]
    fn plans_do_not_limit_resources_they_do_not_name() {
        let plan = Plan::new("free")
            .create_limit("clients", 3)
            .unlimited("groups");
        assert_eq!(plan.limit("clients", &Action::Create), Limit::Limited(3));
        assert_eq!(plan.limit("groups", &Action::Create), Limit::Unlimited);
        assert_eq!(plan.limit("invoices", &Action::Create), Limit::Unlimited);
        assert!(plan
            .resource("groups")
            .is_some_and(ResourceLimits::is_empty));
        assert!(plan.resource("invoices").is_none());
    }

    #[test]
    fn governed_resources_are_sorted_and_deduplicated() {
        let catalog = Catalog::builder()
            .plan(
                Plan::new("free")
                    .create_limit("groups", 1)
                    .create_limit("clients", 3),
            )
            .plan(Plan::new("pro").unlimited("clients").unlimited("archives"))
            .build()
            .unwrap();
        let resources: Vec<&str> = catalog.resources().iter().map(|r| &**r).collect();
        assert_eq!(resources, ["archives", "clients", "groups"]);
        assert!(catalog.is_governed("archives"));
        assert!(catalog.is_governed("groups"));
        assert!(!catalog.is_governed("group"));
        assert!(!catalog.is_governed(""));
        let names: Vec<&str> = catalog.plans().map(Plan::name).collect();
        assert_eq!(names, ["free", "pro"]);
    }

    #[test]
    fn limits_combine_in_one_place() {
        let three = Limit::Limited(3);
        assert_eq!(three.plus(Limit::Limited(10), 1), Limit::Limited(13));
        assert_eq!(three.plus(Limit::Limited(10), 2), Limit::Limited(23));
        assert_eq!(
            Limit::Limited(0).plus(Limit::Limited(5), 1),
            Limit::Limited(5)
        );
        assert_eq!(three.plus(Limit::Limited(0), 7), three);
        assert_eq!(three.plus(Limit::Unlimited, 1), Limit::Unlimited);
        assert_eq!(
            Limit::Unlimited.plus(Limit::Limited(5), 1),
            Limit::Unlimited
        );
        // A quantity of 0 adds nothing, not even "unlimited".
        assert_eq!(three.plus(Limit::Unlimited, 0), three);
        assert_eq!(three.plus(Limit::Limited(10), 0), three);
        // Saturating, never overflowing.
        assert_eq!(
            three.plus(Limit::Limited(u64::MAX / 2), u64::MAX),
            Limit::Limited(u64::MAX)
        );
        assert_eq!(
            Limit::Limited(u64::MAX).plus(Limit::Limited(1), 1),
            Limit::Limited(u64::MAX)
        );

        // A quota on either side makes a quota; this limit's period wins.
        let daily = Limit::per(20, Period::Day);
        assert_eq!(
            daily.plus(Limit::Limited(10), 1),
            Limit::per(30, Period::Day)
        );
        assert_eq!(
            Limit::Limited(0).plus(daily, 2),
            Limit::per(40, Period::Day)
        );
        assert_eq!(
            daily.plus(Limit::per(5, Period::Month), 1),
            Limit::per(25, Period::Day)
        );
        assert_eq!(daily.plus(Limit::Unlimited, 1), Limit::Unlimited);
        assert_eq!(Limit::Unlimited.plus(daily, 1), Limit::Unlimited);
        assert_eq!(daily.plus(Limit::per(5, Period::Day), 0), daily);
    }

    #[test]
    fn an_addon_adds_what_it_sets_and_patch_reads_its_update() {
        let addon = Addon::new("edits")
            .with_limit("tasks", Action::Update, Limit::Limited(5))
            .with_limit("notes", Action::Patch, Limit::Limited(2))
            .with_limit("notes", Action::Update, Limit::Limited(9))
            .unlimited("files");
        assert_eq!(
            addon.limit("tasks", &Action::Patch),
            Some(Limit::Limited(5))
        );
        assert_eq!(
            addon.limit("notes", &Action::Patch),
            Some(Limit::Limited(2))
        );
        assert_eq!(addon.limit("tasks", &Action::Create), None);
        assert_eq!(addon.limit("files", &Action::Create), None);
        assert_eq!(addon.limit("groups", &Action::Create), None);
        assert!(addon
            .resource("files")
            .is_some_and(ResourceLimits::is_empty));
        assert_eq!(addon.resources().count(), 3);
        assert_eq!(addon.name(), "edits");
    }

    #[test]
    fn limits_serialise_as_numbers_or_null() {
        assert_eq!(serde_json::to_string(&Limit::Limited(3)).unwrap(), "3");
        assert_eq!(
            serde_json::to_string(&Limit::per(20, Period::Week)).unwrap(),
            r#"{"max":20,"per":"week"}"#
        );
        assert_eq!(Limit::per(20, Period::Week).maximum(), Some(20));
        assert_eq!(Limit::per(20, Period::Week).period(), Some(Period::Week));
        assert_eq!(Limit::Limited(20).period(), None);
        assert!(Limit::per(2, Period::Day).allows(1));
        assert!(!Limit::per(2, Period::Day).allows(2));
        assert_eq!(serde_json::to_string(&Limit::Unlimited).unwrap(), "null");
        assert!(Limit::Limited(3).allows(2));
        assert!(!Limit::Limited(3).allows(3));
        assert!(!Limit::Limited(0).allows(0));
        assert!(Limit::Unlimited.allows(u64::MAX));
        assert_eq!(Limit::Limited(3).maximum(), Some(3));
        assert_eq!(Limit::Unlimited.maximum(), None);
    }
}
