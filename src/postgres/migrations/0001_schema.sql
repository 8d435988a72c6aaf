-- Migration 1: the catalog, the subscribers, the counters and the holds, in schema tower_plans.
-- Applied once, in one transaction, by the store when it connects; a later change goes in a new
-- file, never into this one.
--
-- Limits, credit allowances and meters are kept in the catalog's JSON form (jsonb): the crate
-- reads them with its own catalog reader, which names the path of a bad value, and a new form of
-- limit needs no migration. Counts are numeric(20,0): every u64 fits.

-- The custom actions the catalog declares (its `actions` array).
CREATE TABLE tower_plans.actions (
    name     text PRIMARY KEY CHECK (name <> ''),
    position integer NOT NULL DEFAULT 0 -- the catalog's order
);

-- The trial policy: no row, or one.
CREATE TABLE tower_plans.trial (
    id            integer PRIMARY KEY CHECK (id = 1),
    duration_days double precision NOT NULL CHECK (duration_days > 0),
    fallback      text CHECK (fallback <> '')
);

CREATE TABLE tower_plans.plans (
    name     text PRIMARY KEY CHECK (name <> ''),
    position integer NOT NULL DEFAULT 0 -- the catalog's order
);

-- One plan's limits on one resource, as the catalog writes them: a number (a create limit),
-- null (unlimited) or an object per action (`{"show": 10, "create": {"max": 3, "per": "month"}}`).
CREATE TABLE tower_plans.plan_limits (
    plan     text NOT NULL REFERENCES tower_plans.plans (name) ON DELETE CASCADE ON UPDATE CASCADE,
    resource text NOT NULL CHECK (resource <> ''),
    limits   jsonb NOT NULL DEFAULT 'null',
    PRIMARY KEY (plan, resource)
);

-- One plan's credit pool: its allowance (`1000`, `{"max": 1000, "per": "month"}` or null).
CREATE TABLE tower_plans.plan_credits (
    plan      text NOT NULL REFERENCES tower_plans.plans (name) ON DELETE CASCADE ON UPDATE CASCADE,
    pool      text NOT NULL CHECK (pool <> ''),
    allowance jsonb NOT NULL DEFAULT 'null',
    PRIMARY KEY (plan, pool)
);

CREATE TABLE tower_plans.addons (
    name     text PRIMARY KEY CHECK (name <> ''),
    position integer NOT NULL DEFAULT 0
);

CREATE TABLE tower_plans.addon_limits (
    addon    text NOT NULL REFERENCES tower_plans.addons (name) ON DELETE CASCADE ON UPDATE CASCADE,
    resource text NOT NULL CHECK (resource <> ''),
    limits   jsonb NOT NULL DEFAULT 'null',
    PRIMARY KEY (addon, resource)
);

CREATE TABLE tower_plans.addon_credits (
    addon     text NOT NULL REFERENCES tower_plans.addons (name) ON DELETE CASCADE ON UPDATE CASCADE,
    pool      text NOT NULL CHECK (pool <> ''),
    allowance jsonb NOT NULL DEFAULT 'null',
    PRIMARY KEY (addon, pool)
);

-- What a request consumes (the catalog's `meters`): `{"cost": 5, "credits": "ai"}` for an action.
CREATE TABLE tower_plans.meters (
    resource text NOT NULL CHECK (resource <> ''),
    action   text NOT NULL CHECK (action <> ''),
    meter    jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (resource, action)
);

-- Subscribers and their plan assignment. `plan` is no foreign key: a plan the catalog does not
-- know is treated as no plan (and logged by the layer). Instants are milliseconds since the
-- Unix epoch.
CREATE TABLE tower_plans.subscribers (
    id              text PRIMARY KEY,
    name            text,
    plan            text,
    trial           boolean NOT NULL DEFAULT false,
    joined_ms       bigint CHECK (joined_ms >= 0),
    expires_ms      bigint CHECK (expires_ms >= 0),
    cycle_anchor_ms bigint CHECK (cycle_anchor_ms >= 0),
    CHECK (NOT trial OR joined_ms IS NOT NULL OR expires_ms IS NOT NULL)
);

-- A record's usage of one resource, as the application keeps it: a plain count, counts per
-- action (`{"show": 40}`), or both. The layer seeds its counters from it.
CREATE TABLE tower_plans.subscriber_usage (
    user_id  text NOT NULL REFERENCES tower_plans.subscribers (id) ON DELETE CASCADE ON UPDATE CASCADE,
    resource text NOT NULL CHECK (resource <> ''),
    plain    numeric(20, 0) CHECK (plain >= 0 AND plain <= 18446744073709551615),
    actions  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(actions) = 'object'),
    PRIMARY KEY (user_id, resource)
);

-- The add-ons granted to a subscriber, in the record's order. `addon` is no foreign key: an
-- add-on the catalog does not know counts for nothing (and is logged by the layer).
CREATE TABLE tower_plans.subscriber_addons (
    user_id    text NOT NULL REFERENCES tower_plans.subscribers (id) ON DELETE CASCADE ON UPDATE CASCADE,
    position   integer NOT NULL,
    addon      text NOT NULL CHECK (addon <> ''),
    starts_ms  bigint CHECK (starts_ms >= 0),
    expires_ms bigint CHECK (expires_ms >= 0),
    quantity   numeric(20, 0) NOT NULL DEFAULT 1 CHECK (quantity >= 0 AND quantity <= 18446744073709551615),
    source     text,
    PRIMARY KEY (user_id, position)
);

-- One-off credit grants (top-ups) of a subscriber, in the record's order.
CREATE TABLE tower_plans.subscriber_grants (
    user_id    text NOT NULL REFERENCES tower_plans.subscribers (id) ON DELETE CASCADE ON UPDATE CASCADE,
    position   integer NOT NULL,
    id         text NOT NULL CHECK (id <> ''),
    pool       text NOT NULL CHECK (pool <> ''),
    amount     numeric(20, 0) NOT NULL CHECK (amount >= 0 AND amount <= 18446744073709551615),
    starts_ms  bigint CHECK (starts_ms >= 0),
    expires_ms bigint CHECK (expires_ms >= 0),
    PRIMARY KEY (user_id, position)
);

-- Counted usage: one row per counter. `counted` is `i` (a resource's item count, and its
-- creates), `a:<action>` (an action's calls), `c` (a credit pool) or `g:<grant id>` (what one
-- grant gave); `period` is empty for a count that never resets, else `<per>:<start ms>`, and
-- `period_end_ms` says when that period ends. No foreign key to subscribers: the store counts for
-- users whose records live elsewhere too.
CREATE TABLE tower_plans.counters (
    user_id       text NOT NULL,
    resource      text NOT NULL,
    counted       text NOT NULL,
    period        text NOT NULL DEFAULT '',
    used          numeric(20, 0) NOT NULL CHECK (used >= 0 AND used <= 18446744073709551615),
    period_end_ms bigint,
    PRIMARY KEY (user_id, resource, counted, period)
);

CREATE INDEX counters_by_period_end ON tower_plans.counters (period_end_ms)
    WHERE period_end_ms IS NOT NULL;

-- Units held by requests in flight, one row per reservation and counter. A hold counts while
-- `expires_at` (the server's clock) is in the future, or always when it is null; expired holds
-- are ignored, deleted when their counter is next reserved or committed, and by `sweep`.
CREATE TABLE tower_plans.holds (
    user_id     text NOT NULL,
    resource    text NOT NULL,
    counted     text NOT NULL,
    period      text NOT NULL,
    reservation uuid NOT NULL,
    units       numeric(20, 0) NOT NULL CHECK (units > 0),
    expires_at  timestamptz,
    PRIMARY KEY (user_id, resource, counted, period, reservation),
    FOREIGN KEY (user_id, resource, counted, period)
        REFERENCES tower_plans.counters (user_id, resource, counted, period) ON DELETE CASCADE
);

CREATE INDEX holds_by_reservation ON tower_plans.holds (reservation);
CREATE INDEX holds_by_expiry ON tower_plans.holds (expires_at) WHERE expires_at IS NOT NULL;

-- Invalidation: a change to a subscriber's rows notifies `user:<id>` on channel tower_plans, a
-- change to the catalog `catalog`, delivered when the transaction commits (and once per
-- transaction). Every instance listening drops its cached entry, whoever made the change: the
-- store's writers, or the application's own SQL.
CREATE FUNCTION tower_plans.notify_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('tower_plans', 'user:' || (to_jsonb(NEW) ->> TG_ARGV[0]));
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('tower_plans', 'user:' || (to_jsonb(OLD) ->> TG_ARGV[0]));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION tower_plans.notify_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tower_plans', 'catalog');
    RETURN NULL;
END
$$;

CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON tower_plans.subscribers
    FOR EACH ROW EXECUTE FUNCTION tower_plans.notify_user('id');
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON tower_plans.subscriber_usage
    FOR EACH ROW EXECUTE FUNCTION tower_plans.notify_user('user_id');
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON tower_plans.subscriber_addons
    FOR EACH ROW EXECUTE FUNCTION tower_plans.notify_user('user_id');
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON tower_plans.subscriber_grants
    FOR EACH ROW EXECUTE FUNCTION tower_plans.notify_user('user_id');

CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.actions
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.trial
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.plans
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.plan_limits
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.plan_credits
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.addons
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.addon_limits
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.addon_credits
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tower_plans.meters
    FOR EACH STATEMENT EXECUTE FUNCTION tower_plans.notify_catalog();
