-- Migration 6: metered plans. What a request costs (the catalog's `meters`), the credit pools
-- that plans and add-ons declare (their `credits`), and the one-off grants of credits that
-- subscriber records hold (their `grants`). The counters of pools and grants are rows of
-- usage_counters already (migration 5).

-- A plan's credit pools, the JSON `"credits": {"ai": {"max": 1000, "per": "month"}}`: a `max`
-- without a `per` is a lifetime pool, with one it resets each UTC day, ISO week, month or year;
-- a NULL `max` is an unlimited pool. A plan without a row for a pool has none of it (a request
-- that draws from it is refused).
CREATE TABLE plan_credits (
    plan TEXT NOT NULL REFERENCES plans (name) ON DELETE CASCADE ON UPDATE CASCADE,
    pool TEXT NOT NULL CHECK (pool <> ''),
    max  INTEGER CHECK (max >= 0),
    per  TEXT CHECK (per IS NULL OR (per IN ('day', 'week', 'month', 'year') AND max IS NOT NULL)),
    PRIMARY KEY (plan, pool)
) WITHOUT ROWID;

-- What one unit of an add-on adds to a credit pool, as a plan's pool reads (NULL: unlimited).
CREATE TABLE addon_credits (
    addon TEXT NOT NULL REFERENCES addons (name) ON DELETE CASCADE ON UPDATE CASCADE,
    pool  TEXT NOT NULL CHECK (pool <> ''),
    max   INTEGER CHECK (max >= 0),
    per   TEXT CHECK (per IS NULL OR (per IN ('day', 'week', 'month', 'year') AND max IS NOT NULL)),
    PRIMARY KEY (addon, pool)
) WITHOUT ROWID;

-- What a request to one action of one resource consumes, the JSON
-- `"meters": {"images": {"create": {"cost": 5, "credits": "ai"}}}`: `cost` units (NULL: 1), or,
-- for a meter whose handler reports what it consumed (`report` = 1), `estimate` units reserved
-- before (NULL: 1); drawn from the credit pool `pool`, or from the action's own limit when
-- `pool` is NULL. A request takes at least one unit. A metered resource is governed, whether a
-- plan names it or not.
CREATE TABLE meters (
    resource TEXT NOT NULL CHECK (resource <> ''),
    action   TEXT NOT NULL REFERENCES actions (name) ON UPDATE CASCADE,
    cost     INTEGER CHECK (cost > 0),
    report   INTEGER NOT NULL DEFAULT 0 CHECK (report IN (0, 1)),
    estimate INTEGER CHECK (estimate > 0),
    pool     TEXT CHECK (pool <> ''),
    -- a reported meter has an estimate and no fixed cost; another has a cost and no estimate
    CHECK (report = 1 OR estimate IS NULL),
    CHECK (report = 0 OR cost IS NULL),
    PRIMARY KEY (resource, action)
) WITHOUT ROWID;

-- A meter draws from a pool that some plan or add-on declares: a meter naming another is
-- refused, and so is dropping (or renaming) the last declaration of a pool that a meter draws
-- from, also when its plan or add-on is deleted.
CREATE TRIGGER meters_draw_from_declared_pools_on_insert
BEFORE INSERT ON meters
WHEN NEW.pool IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM plan_credits WHERE pool = NEW.pool)
 AND NOT EXISTS (SELECT 1 FROM addon_credits WHERE pool = NEW.pool)
BEGIN
    SELECT RAISE(ABORT, 'a meter draws from a credit pool that no plan or add-on declares');
END;

CREATE TRIGGER meters_draw_from_declared_pools_on_update
BEFORE UPDATE OF pool ON meters
WHEN NEW.pool IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM plan_credits WHERE pool = NEW.pool)
 AND NOT EXISTS (SELECT 1 FROM addon_credits WHERE pool = NEW.pool)
BEGIN
    SELECT RAISE(ABORT, 'a meter draws from a credit pool that no plan or add-on declares');
END;

CREATE TRIGGER plan_credits_keep_metered_pools_on_delete
BEFORE DELETE ON plan_credits
WHEN EXISTS (SELECT 1 FROM meters WHERE pool = OLD.pool)
 AND NOT EXISTS (SELECT 1 FROM plan_credits WHERE pool = OLD.pool AND plan <> OLD.plan)
 AND NOT EXISTS (SELECT 1 FROM addon_credits WHERE pool = OLD.pool)
BEGIN
    SELECT RAISE(ABORT, 'a meter draws from this credit pool, which no other plan or add-on declares');
END;

CREATE TRIGGER plan_credits_keep_metered_pools_on_update
BEFORE UPDATE OF pool ON plan_credits
WHEN NEW.pool <> OLD.pool
 AND EXISTS (SELECT 1 FROM meters WHERE pool = OLD.pool)
 AND NOT EXISTS (SELECT 1 FROM plan_credits WHERE pool = OLD.pool AND plan <> OLD.plan)
 AND NOT EXISTS (SELECT 1 FROM addon_credits WHERE pool = OLD.pool)
BEGIN
    SELECT RAISE(ABORT, 'a meter draws from this credit pool, which no other plan or add-on declares');
END;

CREATE TRIGGER addon_credits_keep_metered_pools_on_delete
BEFORE DELETE ON addon_credits
WHEN EXISTS (SELECT 1 FROM meters WHERE pool = OLD.pool)
 AND NOT EXISTS (SELECT 1 FROM plan_credits WHERE pool = OLD.pool)
 AND NOT EXISTS (SELECT 1 FROM addon_credits WHERE pool = OLD.pool AND addon <> OLD.addon)
BEGIN
    SELECT RAISE(ABORT, 'a meter draws from this credit pool, which no other plan or add-on declares');
END;

CREATE TRIGGER addon_credits_keep_metered_pools_on_update
BEFORE UPDATE OF pool ON addon_credits
WHEN NEW.pool <> OLD.pool
 AND EXISTS (SELECT 1 FROM meters WHERE pool = OLD.pool)
 AND NOT EXISTS (SELECT 1 FROM plan_credits WHERE pool = OLD.pool)
 AND NOT EXISTS (SELECT 1 FROM addon_credits WHERE pool = OLD.pool AND addon <> OLD.addon)
BEGIN
    SELECT RAISE(ABORT, 'a meter draws from this credit pool, which no other plan or add-on declares');
END;

-- The one-off grants of credits (top-ups) that subscribers hold, the JSON
-- `"grants": [{"id": "g1", "credits": "ai", "amount": 500, "starts": <ms>, "expires": <ms>}]`:
-- `amount` units of the pool `pool`, spent once the period's allowance is used up, from
-- `starts_ms` (NULL: always started) until `expires_ms` (NULL: never ends). What a grant spent is
-- the usage_counters row `$grant:<id>` of the pool. `pool` is not a foreign key: a pool the
-- catalog does not declare is a grant that no request draws from, as in the JSON formats.
CREATE TABLE subscriber_grants (
    user_id    TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE ON UPDATE CASCADE,
    id         TEXT NOT NULL CHECK (id <> ''),  -- unique among the user's grants
    position   INTEGER NOT NULL DEFAULT 0,      -- the record's order (then the id)
    pool       TEXT NOT NULL CHECK (pool <> ''),
    amount     INTEGER NOT NULL CHECK (amount >= 0),
    starts_ms  INTEGER CHECK (starts_ms >= 0),  -- milliseconds since the Unix epoch
    expires_ms INTEGER CHECK (expires_ms >= 0),
    CHECK (starts_ms IS NULL OR expires_ms IS NULL OR starts_ms <= expires_ms),
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
