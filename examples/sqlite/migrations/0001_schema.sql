-- Migration 1: plans and their limits, the trial policy, subscribers with their plan assignment,
-- usage counters and reservations. Applied once, in one transaction, by `migrate` in store.rs;
-- a later change goes in a new file (0002_...), never into this one.

-- The plan catalog. A plan names resources (plan_resources); a named resource without limits is
-- governed but unlimited, the JSON `{"clients": null}`. Each limit is one action of one resource.
CREATE TABLE plans (
    name     TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
    position INTEGER NOT NULL DEFAULT 0 -- the catalog's order
);

-- The action names a limit may use: the REST actions, and the custom actions the catalog declares
-- (the JSON `actions` array). A misspelt action in plan_limits ('craete') fails its foreign key.
CREATE TABLE actions (
    name   TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
    custom INTEGER NOT NULL DEFAULT 1 CHECK (custom IN (0, 1))
);

INSERT INTO actions (name, custom) VALUES
    ('index', 0), ('show', 0), ('create', 0), ('update', 0), ('patch', 0), ('delete', 0);

CREATE TABLE plan_resources (
    plan     TEXT NOT NULL REFERENCES plans (name) ON DELETE CASCADE ON UPDATE CASCADE,
    resource TEXT NOT NULL CHECK (resource <> ''),
    PRIMARY KEY (plan, resource)
) WITHOUT ROWID;

CREATE TABLE plan_limits (
    plan     TEXT NOT NULL,
    resource TEXT NOT NULL,
    action   TEXT NOT NULL REFERENCES actions (name) ON UPDATE CASCADE,
    -- the maximum; NULL is a limit set to unlimited (a `patch` set to NULL does not fall back to
    -- the `update` limit, an absent `patch` row does)
    max      INTEGER CHECK (max >= 0),
    PRIMARY KEY (plan, resource, action),
    FOREIGN KEY (plan, resource) REFERENCES plan_resources (plan, resource)
        ON DELETE CASCADE ON UPDATE CASCADE
) WITHOUT ROWID;

-- The trial policy: no row, or one.
CREATE TABLE trial (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    duration_ms INTEGER NOT NULL CHECK (duration_ms > 0),
    fallback    TEXT REFERENCES plans (name) ON UPDATE CASCADE
);

-- Subscribers and their plan assignment. `plan` is not a foreign key: a plan name the catalog
-- does not know is treated as no plan (and logged by the layer), as in the JSON formats.
CREATE TABLE subscribers (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT,
    plan       TEXT,          -- NULL: no plan
    trial      INTEGER NOT NULL DEFAULT 0 CHECK (trial IN (0, 1)),
    joined_ms  INTEGER CHECK (joined_ms >= 0),  -- milliseconds since the Unix epoch
    expires_ms INTEGER CHECK (expires_ms >= 0),
    CHECK (trial = 0 OR joined_ms IS NOT NULL OR expires_ms IS NOT NULL)
);

-- Counted usage, one row per counter. `counted` is 'items' (the resource's item count, which a
-- create raises and a delete lowers) or the name of an action counted per call ('show',
-- 'export'). These rows are also the usage of the subscriber records.
CREATE TABLE usage_counters (
    user_id  TEXT NOT NULL,
    resource TEXT NOT NULL,
    counted  TEXT NOT NULL,
    used     INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, resource, counted)
) WITHOUT ROWID;

-- Units held by requests in flight. A hold counts while now < expires_ms (milliseconds since the
-- Unix epoch); expired holds are ignored by every query and deleted as their counter is touched
-- and by `purge_expired`.
CREATE TABLE reservations (
    id         TEXT NOT NULL PRIMARY KEY, -- the ReservationId, 32 hexadecimal digits
    user_id    TEXT NOT NULL,
    resource   TEXT NOT NULL,
    counted    TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);

CREATE INDEX reservations_by_counter ON reservations (user_id, resource, counted, expires_ms);
CREATE INDEX reservations_by_expiry ON reservations (expires_ms);
