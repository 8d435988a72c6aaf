-- Migration 3: quotas that reset. A plan or add-on limit with a `per` allows `max` in each UTC
-- day, ISO week, month or year (the JSON `{"max": 20, "per": "day"}`); without one it is a
-- lifetime limit. A quota's counters are rows of usage_counters whose `counted` names the period
-- after an `@` ('create@2026-11'); they are not part of the subscriber record's usage.
ALTER TABLE plan_limits ADD COLUMN per TEXT
    CHECK (per IS NULL OR (per IN ('day', 'week', 'month', 'year') AND max IS NOT NULL));
ALTER TABLE addon_limits ADD COLUMN per TEXT
    CHECK (per IS NULL OR (per IN ('day', 'week', 'month', 'year') AND max IS NOT NULL));
