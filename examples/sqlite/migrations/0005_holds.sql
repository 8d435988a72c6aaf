-- Migration 5: counts up to u64::MAX, reservations of several units on several counters, and
-- the counters of credit pools and their grants.
--
-- A used count, and a number of held units, is a u64: its 64 bits are stored in the SQLite
-- integer, which reads the same number up to i64::MAX (every count in practice) and a negative
-- one beyond (-1 is u64::MAX). `used` loses its CHECK (used >= 0) for it; SQLite cannot drop a
-- CHECK in place, so the table is copied.
CREATE TABLE usage_counters_u64 (
    user_id  TEXT NOT NULL,
    resource TEXT NOT NULL,
    counted  TEXT NOT NULL,
    used     INTEGER NOT NULL,
    PRIMARY KEY (user_id, resource, counted)
) WITHOUT ROWID;

INSERT INTO usage_counters_u64 (user_id, resource, counted, used)
SELECT user_id, resource, counted, used FROM usage_counters;

DROP TABLE usage_counters;
ALTER TABLE usage_counters_u64 RENAME TO usage_counters;

-- A reservation holds units, on one or more counters. A request that draws credits
-- holds several units of a pool (and of the one-off grants that top it up) and one of its
-- action: one row per counter the reservation holds units on, `units` of them, all under the
-- reservation's id. A counter's held units are the SUM(units) of its live rows.
--
-- The rows of migration 1 each held one unit of one counter: they become rows of one unit.
CREATE TABLE reservations_by_units (
    id         TEXT NOT NULL,    -- the ReservationId, 32 hexadecimal digits
    user_id    TEXT NOT NULL,
    resource   TEXT NOT NULL,
    counted    TEXT NOT NULL,
    units      INTEGER NOT NULL CHECK (units <> 0), -- a u64, as `used` is
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (id, user_id, resource, counted)
) WITHOUT ROWID;

INSERT INTO reservations_by_units (id, user_id, resource, counted, units, expires_ms)
SELECT id, user_id, resource, counted, 1, expires_ms FROM reservations;

DROP TABLE reservations;
ALTER TABLE reservations_by_units RENAME TO reservations;

CREATE INDEX reservations_by_counter
    ON reservations (user_id, resource, counted, expires_ms, units);
CREATE INDEX reservations_by_expiry ON reservations (expires_ms);

-- Credit pools and their grants are counters too, rows of usage_counters that are not part of
-- the subscriber record: `counted` = '$credits' for the credits drawn from the pool named by
-- `resource`, '$grant:<id>' for those spent from one-off grant <id> of that pool (a period, if
-- any, after an `@`, as for quotas). With 'items', '*' and the `@` of quotas, these names are
-- the store's own: a custom action may not take them, so that no action's row is read as one.
CREATE TRIGGER actions_keep_clear_of_counters_on_insert
BEFORE INSERT ON actions
WHEN NEW.name IN ('items', '*') OR instr(NEW.name, '@') > 0 OR substr(NEW.name, 1, 1) = '$'
BEGIN
    SELECT RAISE(ABORT, 'a custom action may not be named `items` or `*`, start with `$` or hold `@`: the usage counters use these names');
END;

CREATE TRIGGER actions_keep_clear_of_counters_on_update
BEFORE UPDATE OF name ON actions
WHEN NEW.name IN ('items', '*') OR instr(NEW.name, '@') > 0 OR substr(NEW.name, 1, 1) = '$'
BEGIN
    SELECT RAISE(ABORT, 'a custom action may not be named `items` or `*`, start with `$` or hold `@`: the usage counters use these names');
END;
