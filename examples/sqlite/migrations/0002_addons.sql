-- Migration 2: add-ons. An add-on names resources and sets limits on their actions, as a plan
-- does; its limits are added, times the grant's quantity, to the plan's while a grant is active.

CREATE TABLE addons (
    name     TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
    position INTEGER NOT NULL DEFAULT 0 -- the catalog's order
);

CREATE TABLE addon_resources (
    addon    TEXT NOT NULL REFERENCES addons (name) ON DELETE CASCADE ON UPDATE CASCADE,
    resource TEXT NOT NULL CHECK (resource <> ''),
    PRIMARY KEY (addon, resource)
) WITHOUT ROWID;

CREATE TABLE addon_limits (
    addon    TEXT NOT NULL,
    resource TEXT NOT NULL,
    action   TEXT NOT NULL REFERENCES actions (name) ON UPDATE CASCADE,
    -- what one unit adds; NULL makes the action unlimited
    max      INTEGER CHECK (max >= 0),
    PRIMARY KEY (addon, resource, action),
    FOREIGN KEY (addon, resource) REFERENCES addon_resources (addon, resource)
        ON DELETE CASCADE ON UPDATE CASCADE
) WITHOUT ROWID;

-- The add-ons granted to subscribers, each grant with its own period and quantity. `addon` is a
-- foreign key: a grant of an add-on the catalog does not know is refused here (the layer would
-- only ignore it, with a warning).
CREATE TABLE subscriber_addons (
    id         INTEGER NOT NULL PRIMARY KEY, -- the record's order
    user_id    TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE ON UPDATE CASCADE,
    addon      TEXT NOT NULL REFERENCES addons (name) ON UPDATE CASCADE,
    starts_ms  INTEGER CHECK (starts_ms >= 0),   -- NULL: always started
    expires_ms INTEGER CHECK (expires_ms >= 0),  -- NULL: never ends
    quantity   INTEGER NOT NULL DEFAULT 1 CHECK (quantity >= 0),
    CHECK (starts_ms IS NULL OR expires_ms IS NULL OR starts_ms <= expires_ms)
);

CREATE INDEX subscriber_addons_by_user ON subscriber_addons (user_id, id);
