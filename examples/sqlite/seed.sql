-- The quickstart's plans and users (examples/quickstart.json), as rows: loaded into a fresh
-- database by the sqlite example. `tests/layer/sqlite.rs` checks that both hold the same data.

-- free keeps 3 clients and 1 project, which it may not delete, and makes 2 reports a month;
-- regular 10, 5 and 20 a month; pro 30 clients and any number of projects and reports (named,
-- without limits). Each has a pool of AI credits, which images and chats draw from.
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

-- AI credits, a pool of each plan that resets every month: free 8, regular 200, pro 1000.
INSERT INTO plan_credits (plan, pool, max, per) VALUES
    ('free', 'ai', 8, 'month'),
    ('regular', 'ai', 200, 'month'),
    ('pro', 'ai', 1000, 'month');

-- Two add-ons: 10 more clients, and 500 more AI credits.
INSERT INTO addons (name, position) VALUES ('more-clients', 0), ('more-ai', 1);
INSERT INTO addon_resources (addon, resource) VALUES ('more-clients', 'clients');
INSERT INTO addon_limits (addon, resource, action, max) VALUES
    ('more-clients', 'clients', 'create', 10);
INSERT INTO addon_credits (addon, pool, max) VALUES ('more-ai', 'ai', 500);

-- What requests consume: an image costs 5 AI credits; a chat costs what its handler reports,
-- 200 reserved before.
INSERT INTO meters (resource, action, cost, pool) VALUES ('images', 'create', 5, 'ai');
INSERT INTO meters (resource, action, report, estimate, pool) VALUES
    ('chat', 'create', 1, 200, 'ai');

-- A 14-day trial that falls back to free.
INSERT INTO trial (id, duration_ms, fallback) VALUES (1, 14 * 86400000, 'free');

-- alice is on free; bob's trial of pro began on 2024-01-01 (so he is back on free); carol's
-- regular plan expired on 2025-01-01; dave is on pro; erin, grace and ivan are on free.
INSERT INTO subscribers (id, name, plan, trial, joined_ms, expires_ms) VALUES
    ('alice', 'alice', 'free', 0, NULL, NULL),
    ('bob', 'bob', 'pro', 1, 1704067200000, NULL),
    ('carol', 'carol', 'regular', 0, NULL, 1735689600000),
    ('dave', 'dave', 'pro', 0, NULL, NULL),
    ('erin', 'erin', 'free', 0, NULL, NULL),
    ('grace', 'grace', 'free', 0, NULL, NULL),
    ('ivan', 'ivan', 'free', 0, NULL, NULL);

-- erin holds the "10 more clients" add-on, ivan the "500 more AI credits" one, from 2024-01-01
-- to 2100-01-01.
INSERT INTO subscriber_addons (user_id, addon, starts_ms, expires_ms, quantity) VALUES
    ('erin', 'more-clients', 1704067200000, 4102444800000, 1),
    ('ivan', 'more-ai', 1704067200000, 4102444800000, 1);

-- grace holds a top-up of 100 AI credits over the same years, spent once her month's 8 are.
INSERT INTO subscriber_grants (user_id, id, pool, amount, starts_ms, expires_ms) VALUES
    ('grace', 'topup-1', 'ai', 100, 1704067200000, 4102444800000);

-- What they have: alice 2 clients, bob 1, dave 12, erin 5 (plain counts: '*').
INSERT INTO usage_counters (user_id, resource, counted, used) VALUES
    ('alice', 'clients', '*', 2),
    ('bob', 'clients', '*', 1),
    ('dave', 'clients', '*', 12),
    ('erin', 'clients', '*', 5);
