//! Writing the catalog and the subscriber records of a [`PostgresStore`]: from the JSON forms
//! of [`Catalog::from_json`] and [`Subscriber::from_json`], or from a [`Subscriber`].

use std::sync::Arc;

use serde_json::{Map, Value};
use sqlx::{PgConnection, Postgres, Transaction};

use super::error::bigint;
use super::{Error, PostgresStore};
use crate::catalog::Catalog;
use crate::store::{json_kind, LoadError};
use crate::subscriber::Subscriber;

impl PostgresStore {
    /// Replaces the catalog (in the JSON form of [`Catalog::from_json`]): its plans with their
    /// limits and credit pools, its add-ons, meters, custom actions and trial policy, in one
    /// transaction. The catalog is checked first; nothing is written when it is not valid.
    /// Every instance listening drops its cached catalog when the transaction commits.
    ///
    /// # Errors
    /// [`Error::Load`] when the JSON is not a valid catalog; an [`Error::Database`] when
    /// Postgres fails (nothing is changed then).
    pub async fn set_catalog_json(&self, json: &str) -> Result<(), Error> {
        let value = catalog_value(json)?;
        let mut tx = self.pool.begin().await?;
        write_catalog(&mut tx, &value).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the record of user `id` (a subscriber record in the JSON form of
    /// [`Subscriber::from_json`]; `null` removes the user), checked first. Every instance
    /// listening drops its cached entry for the user when the transaction commits.
    ///
    /// The record's add-on names are not checked against the catalog: the layer ignores an
    /// add-on its catalog does not know, with a warning.
    ///
    /// # Errors
    /// [`Error::Load`] when the JSON is not a valid record (nothing is written);
    /// [`Error::OutOfRange`] for an instant past `i64::MAX` milliseconds; an
    /// [`Error::Database`] when Postgres fails.
    pub async fn set_user_json(&self, id: &str, json: &str) -> Result<(), Error> {
        let value: Value =
            serde_json::from_str(json).map_err(|error| LoadError::UsersJson(Arc::new(error)))?;
        let mut tx = self.pool.begin().await?;
        if value.is_null() {
            delete_user(&mut tx, id).await?;
        } else {
            let subscriber = Subscriber::from_value(&value).map_err(|error| LoadError::User {
                id: Arc::from(id),
                error,
            })?;
            write_user(&mut tx, id, &subscriber).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores `subscriber` as the record of user `id`, replacing the one it had: its name, plan
    /// assignment, cycle anchor, usage, add-ons and credit grants. Counters are not touched.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for an instant past `i64::MAX` milliseconds; an
    /// [`Error::Database`] when Postgres fails (nothing is changed then).
    pub async fn put_user(&self, id: &str, subscriber: &Subscriber) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        write_user(&mut tx, id, subscriber).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the record of user `id`: the user becomes unknown. Counters are not touched.
    ///
    /// # Errors
    /// When Postgres fails.
    pub async fn remove_user(&self, id: &str) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        delete_user(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Loads the catalog and the users in the formats of
    /// [`MemoryStore::from_json`](crate::MemoryStore::from_json): the catalog, and a JSON object
    /// that maps each user id to its record (a `null` record removes the user). Everything is
    /// checked before anything is written, the records' add-on names against the catalog too;
    /// the writes then run in one transaction. Users the document does not name are kept.
    ///
    /// # Errors
    /// [`Error::Load`] naming the bad document, user or value (nothing is written);
    /// [`Error::OutOfRange`] for an instant past `i64::MAX` milliseconds; an
    /// [`Error::Database`] when Postgres fails (nothing is changed then).
    pub async fn load_json(&self, plans_json: &str, users_json: &str) -> Result<(), Error> {
        let catalog_value = catalog_value(plans_json)?;
        let catalog = Catalog::from_value(&catalog_value).map_err(LoadError::Catalog)?;
        let users: Value = serde_json::from_str(users_json)
            .map_err(|error| LoadError::UsersJson(Arc::new(error)))?;
        let mut records: Vec<(&str, Option<Subscriber>)> = Vec::new();
        match &users {
            Value::Object(map) => {
                for (id, record) in map {
                    if record.is_null() {
                        records.push((id, None));
                        continue;
                    }
                    let subscriber = Subscriber::from_value(record)
                        .and_then(|subscriber| {
                            subscriber.check_addons(&catalog)?;
                            Ok(subscriber)
                        })
                        .map_err(|error| LoadError::User {
                            id: Arc::from(id.as_str()),
                            error,
                        })?;
                    records.push((id, Some(subscriber)));
                }
            }
            Value::Null => {}
            other => {
                return Err(LoadError::UsersNotObject {
                    found: json_kind(other),
                }
                .into())
            }
        }
        let mut tx = self.pool.begin().await?;
        write_catalog(&mut tx, &catalog_value).await?;
        for (id, record) in &records {
            match record {
                Some(subscriber) => write_user(&mut tx, id, subscriber).await?,
                None => delete_user(&mut tx, id).await?,
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The catalog JSON, checked.
fn catalog_value(json: &str) -> Result<Value, Error> {
    let value: Value =
        serde_json::from_str(json).map_err(|error| LoadError::CatalogJson(Arc::new(error)))?;
    Catalog::from_value(&value).map_err(LoadError::Catalog)?;
    Ok(value)
}

/// One plan's or add-on's rows: its name, its limits per resource and its credit pools.
struct Named<'v> {
    name: &'v str,
    limits: Vec<(&'v String, &'v Value)>,
    credits: Vec<(&'v String, &'v Value)>,
}

/// Reads a checked plan or add-on: `limits` when given, else every property but `name` and
/// `credits`.
fn named(value: &Value) -> Option<Named<'_>> {
    let map = value.as_object()?;
    let name = map.get("name")?.as_str()?;
    let limits = match map.get("limits") {
        Some(Value::Object(limits)) => limits.iter().collect(),
        Some(_) => Vec::new(),
        None => map
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "name" | "credits"))
            .collect(),
    };
    let credits = map
        .get("credits")
        .and_then(Value::as_object)
        .map(|credits| credits.iter().collect())
        .unwrap_or_default();
    Some(Named {
        name,
        limits,
        credits,
    })
}

/// The rows of named limits, as three columns for `unnest`.
#[derive(Default)]
struct Rows {
    owner: Vec<String>,
    key: Vec<String>,
    value: Vec<String>,
}

impl Rows {
    fn push(&mut self, owner: &str, key: &str, value: &Value) {
        self.owner.push(owner.to_owned());
        self.key.push(key.to_owned());
        self.value.push(value.to_string());
    }

    async fn insert(&self, tx: &mut PgConnection, sql: &str) -> Result<(), Error> {
        if self.owner.is_empty() {
            return Ok(());
        }
        sqlx::query(sql)
            .bind(&self.owner)
            .bind(&self.key)
            .bind(&self.value)
            .execute(tx)
            .await?;
        Ok(())
    }
}

/// Replaces the catalog's rows with those of `value`, a checked catalog.
async fn write_catalog(tx: &mut Transaction<'_, Postgres>, value: &Value) -> Result<(), Error> {
    sqlx::raw_sql(
        "DELETE FROM tower_plans.trial;
         DELETE FROM tower_plans.actions;
         DELETE FROM tower_plans.meters;
         DELETE FROM tower_plans.plans;
         DELETE FROM tower_plans.addons;",
    )
    .execute(&mut **tx)
    .await?;
    let empty = Map::new();
    let (plans, root) = match value {
        Value::Array(plans) => (plans.as_slice(), &empty),
        Value::Object(root) => (
            root.get("plans")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice),
            root,
        ),
        _ => (&[][..], &empty),
    };
    let actions: Vec<&str> = root
        .get("actions")
        .and_then(Value::as_array)
        .map(|actions| actions.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO tower_plans.actions (name, position)
         SELECT name, position - 1 FROM unnest($1::text[]) WITH ORDINALITY AS t(name, position)",
    )
    .bind(&actions)
    .execute(&mut **tx)
    .await?;
    let trial = match root.get("trial") {
        Some(Value::Number(days)) => days.as_f64().map(|days| (days, None)),
        Some(Value::Object(trial)) => trial
            .get("duration")
            .and_then(Value::as_f64)
            .map(|days| (days, trial.get("fallback").and_then(Value::as_str))),
        _ => None,
    };
    if let Some((days, fallback)) = trial {
        sqlx::query(
            "INSERT INTO tower_plans.trial (id, duration_days, fallback) VALUES (1, $1, $2)",
        )
        .bind(days)
        .bind(fallback)
        .execute(&mut **tx)
        .await?;
    }
    write_named(
        tx,
        plans,
        "plans",
        "INSERT INTO tower_plans.plans (name, position)
         SELECT * FROM unnest($1::text[], $2::int[])",
        "INSERT INTO tower_plans.plan_limits (plan, resource, limits)
         SELECT n, r, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(n, r, v)",
        "INSERT INTO tower_plans.plan_credits (plan, pool, allowance)
         SELECT n, r, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(n, r, v)",
    )
    .await?;
    let addons = root
        .get("addons")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    write_named(
        tx,
        addons,
        "addons",
        "INSERT INTO tower_plans.addons (name, position)
         SELECT * FROM unnest($1::text[], $2::int[])",
        "INSERT INTO tower_plans.addon_limits (addon, resource, limits)
         SELECT n, r, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(n, r, v)",
        "INSERT INTO tower_plans.addon_credits (addon, pool, allowance)
         SELECT n, r, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(n, r, v)",
    )
    .await?;
    let mut meters = Rows::default();
    if let Some(Value::Object(resources)) = root.get("meters") {
        for (resource, actions) in resources {
            for (action, meter) in actions.as_object().into_iter().flatten() {
                meters.push(resource, action, meter);
            }
        }
    }
    meters
        .insert(
            tx,
            "INSERT INTO tower_plans.meters (resource, action, meter)
             SELECT r, a, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(r, a, v)",
        )
        .await?;
    Ok(())
}

/// Writes plans or add-ons: their names and positions, limits and credit pools.
async fn write_named(
    tx: &mut Transaction<'_, Postgres>,
    items: &[Value],
    what: &str,
    names_sql: &str,
    limits_sql: &str,
    credits_sql: &str,
) -> Result<(), Error> {
    let mut names = Vec::new();
    let mut positions = Vec::new();
    let mut limits = Rows::default();
    let mut credits = Rows::default();
    for (index, item) in items.iter().enumerate() {
        let Some(named) = named(item) else {
            continue;
        };
        names.push(named.name);
        positions.push(i32::try_from(index).map_err(|_| Error::OutOfRange {
            what: format!("{what}[{index}]'s position"),
        })?);
        for (resource, value) in named.limits {
            limits.push(named.name, resource, value);
        }
        for (pool, value) in named.credits {
            credits.push(named.name, pool, value);
        }
    }
    sqlx::query(names_sql)
        .bind(&names)
        .bind(&positions)
        .execute(&mut **tx)
        .await?;
    limits.insert(tx, limits_sql).await?;
    credits.insert(tx, credits_sql).await?;
    Ok(())
}

/// Deletes user `id`'s record (its other rows follow by cascade).
async fn delete_user(tx: &mut Transaction<'_, Postgres>, id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM tower_plans.subscribers WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An optional instant as a `bigint`, or [`Error::OutOfRange`] naming it.
fn instant(value: Option<u64>, id: &str, what: &str) -> Result<Option<i64>, Error> {
    value
        .map(|ms| bigint(ms, || format!("{id:?}'s {what}")))
        .transpose()
}

/// Replaces user `id`'s rows with `subscriber`.
async fn write_user(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    subscriber: &Subscriber,
) -> Result<(), Error> {
    let plan = subscriber.assignment.as_ref();
    sqlx::query(
        "INSERT INTO tower_plans.subscribers
             (id, name, plan, trial, joined_ms, expires_ms, cycle_anchor_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, plan = excluded.plan,
             trial = excluded.trial, joined_ms = excluded.joined_ms,
             expires_ms = excluded.expires_ms, cycle_anchor_ms = excluded.cycle_anchor_ms",
    )
    .bind(id)
    .bind(subscriber.name.as_deref())
    .bind(plan.map(|plan| &*plan.plan))
    .bind(plan.is_some_and(|plan| plan.trial))
    .bind(instant(plan.and_then(|plan| plan.joined), id, "join")?)
    .bind(instant(plan.and_then(|plan| plan.expires), id, "expiry")?)
    .bind(instant(subscriber.cycle_anchor, id, "cycle anchor")?)
    .execute(&mut **tx)
    .await?;
    for table in [
        "DELETE FROM tower_plans.subscriber_usage WHERE user_id = $1",
        "DELETE FROM tower_plans.subscriber_addons WHERE user_id = $1",
        "DELETE FROM tower_plans.subscriber_grants WHERE user_id = $1",
    ] {
        sqlx::query(table).bind(id).execute(&mut **tx).await?;
    }
    let mut resources = Vec::new();
    let mut plain = Vec::new();
    let mut actions = Vec::new();
    for (resource, usage) in subscriber.usage.iter() {
        resources.push(resource.to_string());
        plain.push(usage.count().map(|count| count.to_string()));
        let counts: Map<String, Value> = usage
            .actions()
            .map(|(action, count)| (action.to_string(), Value::from(count)))
            .collect();
        actions.push(Value::Object(counts).to_string());
    }
    if !resources.is_empty() {
        sqlx::query(
            "INSERT INTO tower_plans.subscriber_usage (user_id, resource, plain, actions)
             SELECT $1, r, p::numeric, a::jsonb
               FROM unnest($2::text[], $3::text[], $4::text[]) AS t(r, p, a)",
        )
        .bind(id)
        .bind(&resources)
        .bind(&plain)
        .bind(&actions)
        .execute(&mut **tx)
        .await?;
    }
    for (position, addon) in subscriber.addons.iter().enumerate() {
        sqlx::query(
            "INSERT INTO tower_plans.subscriber_addons
                 (user_id, position, addon, starts_ms, expires_ms, quantity, source)
             VALUES ($1, $2, $3, $4, $5, $6::numeric, $7)",
        )
        .bind(id)
        .bind(i32::try_from(position).map_err(|_| Error::OutOfRange {
            what: format!("{id:?}'s add-on {position}"),
        })?)
        .bind(&*addon.name)
        .bind(instant(addon.starts, id, "add-on start")?)
        .bind(instant(addon.expires, id, "add-on expiry")?)
        .bind(addon.quantity.to_string())
        .bind(addon.source.as_deref())
        .execute(&mut **tx)
        .await?;
    }
    for (position, grant) in subscriber.grants.iter().enumerate() {
        sqlx::query(
            "INSERT INTO tower_plans.subscriber_grants
                 (user_id, position, id, pool, amount, starts_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5::numeric, $6, $7)",
        )
        .bind(id)
        .bind(i32::try_from(position).map_err(|_| Error::OutOfRange {
            what: format!("{id:?}'s grant {position}"),
        })?)
        .bind(&*grant.id)
        .bind(&*grant.pool)
        .bind(grant.amount.to_string())
        .bind(instant(grant.starts, id, "grant start")?)
        .bind(instant(grant.expires, id, "grant expiry")?)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
