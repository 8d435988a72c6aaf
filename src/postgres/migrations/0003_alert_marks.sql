-- Migration 3: the markers of usage alerts. A row says that the marker `mark` (an alert's
-- threshold, `alert:80%`) is set on one counter, keyed as the counters are (user, resource,
-- what is counted, period): inserted by `INSERT ... ON CONFLICT DO NOTHING RETURNING`, so that
-- of any number of instances marking at once exactly one inserts it. A row does not need its
-- counter's row: markers outlive the counters of ended periods.
CREATE TABLE tower_plans.alert_marks (
    user_id       text NOT NULL,
    resource      text NOT NULL,
    counted       text NOT NULL,
    period        text NOT NULL DEFAULT '',
    mark          text NOT NULL,
    -- When `sweep` may delete it (ms since the Unix epoch): one period after the period's end;
    -- null for a counter without a period, whose markers stay.
    kept_until_ms bigint,
    created       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, resource, counted, period, mark)
);

CREATE INDEX alert_marks_by_expiry ON tower_plans.alert_marks (kept_until_ms)
    WHERE kept_until_ms IS NOT NULL;

-- The sweep of migration 2, which also deletes the markers kept past their time. Its answer
-- gains a column, so it is dropped and created again.
DROP FUNCTION tower_plans.sweep(bigint);

CREATE FUNCTION tower_plans.sweep(
    p_kept_ms bigint, OUT o_holds bigint, OUT o_counters bigint, OUT o_marks bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    DELETE FROM tower_plans.holds h
     WHERE h.ctid IN (SELECT x.ctid FROM tower_plans.holds x
                       WHERE x.expires_at <= v_now FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS o_holds = ROW_COUNT;
    DELETE FROM tower_plans.counters c
     WHERE c.ctid IN (
         SELECT x.ctid FROM tower_plans.counters x
          WHERE x.period_end_ms IS NOT NULL
            AND x.period_end_ms + p_kept_ms < extract(epoch FROM v_now) * 1000
            AND NOT EXISTS (SELECT 1 FROM tower_plans.holds h
                             WHERE h.user_id = x.user_id AND h.resource = x.resource
                               AND h.counted = x.counted AND h.period = x.period)
            FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS o_counters = ROW_COUNT;
    DELETE FROM tower_plans.alert_marks m
     WHERE m.kept_until_ms IS NOT NULL
       AND m.kept_until_ms < extract(epoch FROM v_now) * 1000;
    GET DIAGNOSTICS o_marks = ROW_COUNT;
END
$$;
