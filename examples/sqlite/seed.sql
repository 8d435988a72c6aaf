-- The quickstart's plans and users (examples/quickstart.json), as rows: loaded into a fresh
-- database by the sqlite example. `tests/layer/sqlite.rs` checks that both hold the same data.

-- free keeps 3 clients and 1 project, which it may not delete, and makes 2 reports a month;
-- regular 10, 5 and 20 a month; pro 30 clients and any number of projects and reports (named,
-- without limits).
INSERT INTO plans (name, position) VALUES ('free', 0), ('regular', 1), ('pro', 2);

INSERT INTO plan_resources (plan, resource) VALUES
    ('free', 'clients'), ('free', 'projects'),
    ('regular', 'clients'), ('regular', 'projects'),
    ('pro', 'clients'), ('pro', 'projects'),
    ('free', 'reports'), ('regular', 'reports'), ('pro', 'reports');

INSERT INTO plan_limits (plan, resource, action, max) VALUES
    ('free', 'clients', 'create', 3),
    ('free', 'projects', 'create', 1),
    ('free', 'projects', 'delete', 0),
    ('regular', 'clients', 'create', 10),
    ('regular', 'projects', 'create', 5),
    ('pro', 'clients', 'create', 30);

INSERT INTO plan_limits (plan, resource, action, max, per) VALUES
    ('free', 'reports', 'create', 2, 'month'),
    ('regular', 'reports', 'create', 20, 'month');

-- An add-on: 10 more clients.
INSERT INTO addons (name, position) VALUES ('more-clients', 0);
INSERT INTO addon_resources (addon, resource) VALUES ('more-clients', 'clients');
INSERT INTO addon_limits (addon, resource, action, max) VALUES
    ('more-clients', 'clients', 'create', 10);

-- A 14-day trial that falls back to free.
INSERT INTO trial (id, duration_ms, fallback) VALUES (1, 14 * 86400000, 'free');

-- alice is on free; bob's trial of pro began on 2024-01-01 (so he is back on free); carol's
-- regular plan expired on 2025-01-01; dave is on pro; erin is on free.
INSERT INTO subscribers (id, name, plan, trial, joined_ms, expires_ms) VALUES
    ('alice', 'alice', 'free', 0, NULL, NULL),
    ('bob', 'bob', 'pro', 1, 1704067200000, NULL),
    ('carol', 'carol', 'regular', 0, NULL, 1735689600000),
    ('dave', 'dave', 'pro', 0, NULL, NULL),
    ('erin', 'erin', 'free', 0, NULL, NULL);

-- erin holds the "10 more clients" add-on from 2024-01-01 to 2100-01-01.
INSERT INTO subscriber_addons (user_id, addon, starts_ms, expires_ms, quantity) VALUES
    ('erin', 'more-clients', 1704067200000, 4102444800000, 1);

-- What they have: alice 2 clients, bob 1, dave 12, erin 5 (plain counts: '*').
INSERT INTO usage_counters (user_id, resource, counted, used) VALUES
    ('alice', 'clients', '*', 2),
    ('bob', 'clients', '*', 1),
    ('dave', 'clients', '*', 12),
    ('erin', 'clients', '*', 5);
