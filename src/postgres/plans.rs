//! The [`PlanStore`] of [`PostgresStore`]: the catalog and the subscriber records, read from
//! their tables.

use std::sync::Arc;

use serde_json::Value;

use super::PostgresStore;
use crate::catalog::{Action, Catalog};
use crate::store::{BoxError, PlanStore, StoreFuture};
use crate::subscriber::{AddonGrant, Assignment, CreditGrant, Subscriber};

/// The whole catalog as one JSON document in the form [`Catalog::from_value`] reads, built from
/// the tables in one statement (one snapshot).
const CATALOG: &str = "
SELECT jsonb_build_object(
  'trial', (SELECT CASE WHEN t.fallback IS NULL THEN to_jsonb(t.duration_days)
                        ELSE jsonb_build_object('duration', t.duration_days,
                                                'fallback', t.fallback) END
              FROM tower_plans.trial t),
  'actions', COALESCE((SELECT jsonb_agg(a.name ORDER BY a.position, a.name) FROM tower_plans.actions a),
                      '[]'),
  'plans', COALESCE((
      SELECT jsonb_agg(jsonb_build_object(
               'name', p.name,
               'limits', COALESCE((SELECT jsonb_object_agg(l.resource, l.limits)
                                     FROM tower_plans.plan_limits l WHERE l.plan = p.name), '{}'),
               'credits', COALESCE((SELECT jsonb_object_agg(c.pool, c.allowance)
                                      FROM tower_plans.plan_credits c WHERE c.plan = p.name), '{}'))
             ORDER BY p.position, p.name)
        FROM tower_plans.plans p), '[]'),
  'addons', COALESCE((
      SELECT jsonb_agg(jsonb_build_object(
               'name', a.name,
               'limits', COALESCE((SELECT jsonb_object_agg(l.resource, l.limits)
                                     FROM tower_plans.addon_limits l WHERE l.addon = a.name), '{}'),
               'credits', COALESCE((SELECT jsonb_object_agg(c.pool, c.allowance)
                                      FROM tower_plans.addon_credits c WHERE c.addon = a.name), '{}'))
             ORDER BY a.position, a.name)
        FROM tower_plans.addons a), '[]'),
  'meters', COALESCE((
      SELECT jsonb_object_agg(m.resource, m.actions)
        FROM (SELECT resource, jsonb_object_agg(action, meter) AS actions
                FROM tower_plans.meters GROUP BY resource) m), '{}')
)::text";

/// One subscriber's rows as one JSON object (one statement, one snapshot), or no row for an
/// unknown user.
const USER: &str = "
SELECT jsonb_build_object(
  'name', s.name,
  'plan', s.plan,
  'trial', s.trial,
  'joined', s.joined_ms,
  'expires', s.expires_ms,
  'cycle_anchor', s.cycle_anchor_ms,
  'usage', COALESCE((SELECT jsonb_agg(jsonb_build_array(u.resource, u.plain, u.actions))
                       FROM tower_plans.subscriber_usage u WHERE u.user_id = s.id), '[]'),
  'addons', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                         'name', a.addon, 'starts', a.starts_ms, 'expires', a.expires_ms,
                         'quantity', a.quantity, 'source', a.source) ORDER BY a.position)
                        FROM tower_plans.subscriber_addons a WHERE a.user_id = s.id), '[]'),
  'grants', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                         'id', g.id, 'pool', g.pool, 'amount', g.amount,
                         'starts', g.starts_ms, 'expires', g.expires_ms) ORDER BY g.position)
                        FROM tower_plans.subscriber_grants g WHERE g.user_id = s.id), '[]')
)::text
  FROM tower_plans.subscribers s WHERE s.id = $1";

/// A field of a row that must be there.
fn field<'v>(value: &'v Value, key: &str) -> Result<&'v Value, BoxError> {
    value
        .get(key)
        .ok_or_else(|| format!("postgres answered a subscriber without `{key}`").into())
}

/// An optional count or instant of a row.
fn number(value: &Value, key: &str) -> Result<Option<u64>, BoxError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(number) => number.as_u64().map(Some).ok_or_else(|| {
            format!("postgres answered {number} for `{key}` where a count was expected").into()
        }),
    }
}

/// An optional text of a row.
fn text<'v>(value: &'v Value, key: &str) -> Result<Option<&'v str>, BoxError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => {
            Err(format!("postgres answered {other} for `{key}` where a text was expected").into())
        }
    }
}

/// The rows of one array field.
fn rows<'v>(value: &'v Value, key: &str) -> Result<&'v [Value], BoxError> {
    field(value, key)?
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("postgres answered `{key}` that is not an array").into())
}

/// A subscriber record from the object that [`USER`] builds.
pub(super) fn subscriber(row: &Value) -> Result<Subscriber, BoxError> {
    let mut subscriber = Subscriber::new();
    if let Some(name) = text(row, "name")? {
        subscriber = subscriber.with_name(name);
    }
    if let Some(plan) = text(row, "plan")? {
        let mut assignment = Assignment::new(plan);
        if field(row, "trial")?.as_bool() == Some(true) {
            assignment = assignment.as_trial();
        }
        if let Some(joined) = number(row, "joined")? {
            assignment = assignment.joined_at(joined);
        }
        if let Some(expires) = number(row, "expires")? {
            assignment = assignment.expires_at(expires);
        }
        subscriber = subscriber.with_plan(assignment);
    }
    if let Some(anchor) = number(row, "cycle_anchor")? {
        subscriber = subscriber.with_cycle_anchor(anchor);
    }
    for usage in rows(row, "usage")? {
        let (Some(resource), Some(plain), Some(Value::Object(actions))) = (
            usage.get(0).and_then(Value::as_str),
            usage.get(1),
            usage.get(2),
        ) else {
            return Err("postgres answered a malformed usage row".into());
        };
        match plain {
            Value::Null => subscriber.usage.count_per_action(resource),
            count => subscriber.usage.set(
                resource,
                count
                    .as_u64()
                    .ok_or_else(|| format!("postgres answered {count} as a plain count"))?,
            ),
        }
        for (action, count) in actions {
            let count = count
                .as_u64()
                .ok_or_else(|| format!("postgres answered {count} as the count of {action}"))?;
            subscriber
                .usage
                .set_action(resource, &Action::custom(action.as_str()), count);
        }
    }
    for addon in rows(row, "addons")? {
        let name = text(addon, "name")?.ok_or("postgres answered an add-on without a name")?;
        let mut grant = AddonGrant::new(name).quantity(number(addon, "quantity")?.unwrap_or(1));
        if let Some(starts) = number(addon, "starts")? {
            grant = grant.starts_at(starts);
        }
        if let Some(expires) = number(addon, "expires")? {
            grant = grant.expires_at(expires);
        }
        if let Some(source) = text(addon, "source")? {
            grant = grant.source(source);
        }
        subscriber = subscriber.with_addon(grant);
    }
    for credit in rows(row, "grants")? {
        let id = text(credit, "id")?.ok_or("postgres answered a grant without an id")?;
        let pool = text(credit, "pool")?.ok_or("postgres answered a grant without a pool")?;
        let amount =
            number(credit, "amount")?.ok_or("postgres answered a grant without an amount")?;
        let mut grant = CreditGrant::new(id, pool, amount);
        if let Some(starts) = number(credit, "starts")? {
            grant = grant.starts_at(starts);
        }
        if let Some(expires) = number(credit, "expires")? {
            grant = grant.expires_at(expires);
        }
        subscriber = subscriber.with_grant(grant);
    }
    Ok(subscriber)
}

impl PostgresStore {
    async fn catalog(&self) -> Result<Arc<Catalog>, BoxError> {
        let json: String = sqlx::query_scalar(CATALOG).fetch_one(&self.pool).await?;
        let value: Value = serde_json::from_str(&json)?;
        Ok(Arc::new(Catalog::from_value(&value)?))
    }

    async fn record(&self, id: &str) -> Result<Option<Arc<Subscriber>>, BoxError> {
        let json: Option<String> = sqlx::query_scalar(USER)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(json) = json else {
            return Ok(None);
        };
        let row: Value = serde_json::from_str(&json)?;
        Ok(Some(Arc::new(subscriber(&row)?)))
    }
}

impl PlanStore for PostgresStore {
    fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
        StoreFuture::new(self.catalog())
    }

    fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
        StoreFuture::new(self.record(id))
    }
}
