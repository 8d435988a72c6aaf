-- Migration 7: the markers of usage alerts. A row says that the marker `mark` (an alert's
-- threshold, `alert:80%`) is set on one counter, keyed as the counter's holds are (user,
-- resource, and `counted` with the period after an `@` for a quota's counter: `items@2026-11`),
-- so that each period has markers of its own. `INSERT ... ON CONFLICT DO NOTHING RETURNING`
-- inserts it: of any number of writers marking at once, exactly one gets the row back.
CREATE TABLE alert_marks (
    user_id       TEXT NOT NULL,
    resource      TEXT NOT NULL,
    counted       TEXT NOT NULL,
    mark          TEXT NOT NULL,
    -- When `purge_expired` may delete it (milliseconds since the Unix epoch): one period after
    -- the period's end; NULL for a counter without a period, whose markers stay.
    kept_until_ms INTEGER,
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (user_id, resource, counted, mark)
) WITHOUT ROWID;

CREATE INDEX alert_marks_by_expiry ON alert_marks (kept_until_ms)
    WHERE kept_until_ms IS NOT NULL;
