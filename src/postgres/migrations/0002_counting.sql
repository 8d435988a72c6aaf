-- Migration 2: the counting functions. Each is one statement for the client (one round trip),
-- run in that statement's transaction under READ COMMITTED: it locks the counter rows it reads
-- (`SELECT ... FOR UPDATE`, or `INSERT ... ON CONFLICT` on first use), in key order so that two
-- calls never wait on each other, and writes the holds beside them before the locks go. Every
-- other writer of a counter or of its holds takes the same row locks first, so a reservation
-- sees no count and no hold change between its check and its write.
--
-- A part is one counter of a reservation: a line's own counter, then the grants that line
-- spills over to. Arrays carry one element per part, in the hold's order.

-- Locks one counter, creating it at its seed when it does not exist yet (`p_follows`: at the
-- used count of the resource's item counter when that exists). `o_created` says it was created
-- here: the callers drop it again unless it ends up holding or counting something.
CREATE FUNCTION tower_plans.lock_counter(
    p_user text, p_resource text, p_counted text, p_period text, p_period_end bigint,
    p_seed numeric, p_follows boolean,
    OUT o_used numeric, OUT o_created boolean)
LANGUAGE plpgsql AS $$
BEGIN
    LOOP
        SELECT c.used INTO o_used FROM tower_plans.counters c
         WHERE c.user_id = p_user AND c.resource = p_resource AND c.counted = p_counted
           AND c.period = p_period
           FOR UPDATE;
        IF FOUND THEN
            o_created := false;
            RETURN;
        END IF;
        INSERT INTO tower_plans.counters AS c (user_id, resource, counted, period, used, period_end_ms)
        VALUES (p_user, p_resource, p_counted, p_period,
                CASE WHEN p_follows THEN
                    COALESCE((SELECT i.used FROM tower_plans.counters i
                               WHERE i.user_id = p_user AND i.resource = p_resource
                                 AND i.counted = 'i' AND i.period = ''), p_seed)
                ELSE p_seed END,
                p_period_end)
        ON CONFLICT DO NOTHING
        RETURNING c.used INTO o_used;
        IF FOUND THEN
            o_created := true;
            RETURN;
        END IF;
        -- Another transaction created it meanwhile and has committed: lock that row.
    END LOOP;
END
$$;

-- Drops the counters among the parts that this call created and that hold and count nothing.
CREATE FUNCTION tower_plans.drop_created(
    p_user text, p_resource text[], p_counted text[], p_period text[], p_drop boolean[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tower_plans.counters c
     USING unnest(p_resource, p_counted, p_period, p_drop) AS k(r, c, p, d)
     WHERE k.d AND c.user_id = p_user AND c.resource = k.r AND c.counted = k.c AND c.period = k.p
       AND NOT EXISTS (SELECT 1 FROM tower_plans.holds h
                        WHERE h.user_id = p_user AND h.resource = k.r AND h.counted = k.c
                          AND h.period = k.p);
END
$$;

-- Locks every part's counter in key order; returns each part's used count and whether the call
-- created its row.
CREATE FUNCTION tower_plans.lock_parts(
    p_user text, p_resource text[], p_counted text[], p_period text[], p_period_end bigint[],
    p_seed numeric[], p_follows boolean[],
    OUT o_used numeric[], OUT o_created boolean[])
LANGUAGE plpgsql AS $$
DECLARE
    n integer := COALESCE(array_length(p_resource, 1), 0);
    i bigint;
    v record;
BEGIN
    o_used := array_fill(NULL::numeric, ARRAY[n]);
    o_created := array_fill(false, ARRAY[n]);
    FOR i IN
        SELECT t.ord FROM unnest(p_resource, p_counted, p_period) WITH ORDINALITY AS t(r, c, p, ord)
         ORDER BY t.r, t.c, t.p, t.ord
    LOOP
        SELECT * INTO v FROM tower_plans.lock_counter(p_user, p_resource[i], p_counted[i],
            p_period[i], p_period_end[i], p_seed[i], p_follows[i]);
        o_used[i] := v.o_used;
        o_created[i] := v.o_created;
    END LOOP;
END
$$;

-- Reserves a hold, all lines or none (see the crate's `UsageStore::reserve`). `p_units` is the
-- line's units on each of its parts; `p_max` the line's limit on its counter's part (null:
-- unlimited) and the grant's amount on a grant's. Answers whether it is held and, when it is,
-- each line's count before (used, and held by other reservations); when it is not, the first
-- line that does not fit (0-based) and its count.
CREATE FUNCTION tower_plans.reserve(
    p_reservation uuid, p_user text, p_line integer[], p_grant boolean[],
    p_resource text[], p_counted text[], p_period text[], p_period_end bigint[],
    p_units numeric[], p_max numeric[], p_seed numeric[], p_follows boolean[],
    p_lease_ms bigint,
    OUT o_reserved boolean, OUT o_line integer, OUT o_used numeric[], OUT o_held numeric[])
LANGUAGE plpgsql AS $$
DECLARE
    n integer := COALESCE(array_length(p_resource, 1), 0);
    v_used numeric[];
    v_created boolean[];
    v_held numeric[];
    v_take numeric[];
    v_now timestamptz;
    v_expires timestamptz;
    v_renewed bigint;
    v_room numeric;
    v_rest numeric;
    v_t numeric;
    i integer;
    j integer;
BEGIN
    o_reserved := true;
    o_used := '{}';
    o_held := '{}';
    IF n = 0 THEN
        RETURN;
    END IF;
    SELECT l.o_used, l.o_created INTO v_used, v_created
      FROM tower_plans.lock_parts(p_user, p_resource, p_counted, p_period, p_period_end,
                                  p_seed, p_follows) l;
    v_now := clock_timestamp();
    v_expires := CASE WHEN p_lease_ms IS NULL THEN NULL
                      ELSE v_now + p_lease_ms * interval '1 millisecond' END;
    -- The expired holds of these counters are forgotten.
    DELETE FROM tower_plans.holds h
     USING unnest(p_resource, p_counted, p_period) AS k(r, c, p)
     WHERE h.user_id = p_user AND h.resource = k.r AND h.counted = k.c AND h.period = k.p
       AND h.expires_at <= v_now;
    -- Held already (a retry): its lease is renewed, and nothing more is held.
    UPDATE tower_plans.holds h SET expires_at = v_expires
      FROM unnest(p_resource, p_counted, p_period) AS k(r, c, p)
     WHERE h.reservation = p_reservation AND h.user_id = p_user
       AND h.resource = k.r AND h.counted = k.c AND h.period = k.p;
    GET DIAGNOSTICS v_renewed = ROW_COUNT;
    -- What other reservations hold on each part.
    SELECT array_agg(COALESCE(s.held, 0) ORDER BY k.ord) INTO v_held
      FROM unnest(p_resource, p_counted, p_period) WITH ORDINALITY AS k(r, c, p, ord)
      LEFT JOIN LATERAL (
          SELECT sum(h.units) AS held FROM tower_plans.holds h
           WHERE h.user_id = p_user AND h.resource = k.r AND h.counted = k.c AND h.period = k.p
             AND h.reservation <> p_reservation) s ON true;
    IF v_renewed > 0 THEN
        FOR i IN 1..n LOOP
            IF NOT p_grant[i] THEN
                o_used := o_used || v_used[i];
                o_held := o_held || v_held[i];
            END IF;
        END LOOP;
        PERFORM tower_plans.drop_created(p_user, p_resource, p_counted, p_period, v_created);
        RETURN;
    END IF;
    v_take := array_fill(0::numeric, ARRAY[n]);
    i := 1;
    WHILE i <= n LOOP
        -- Part i is a line's own counter; the line's grants follow it.
        o_used := o_used || v_used[i];
        o_held := o_held || v_held[i];
        v_room := CASE WHEN p_max[i] IS NULL THEN NULL
                       ELSE GREATEST(p_max[i] - v_used[i] - v_held[i], 0) END;
        j := i + 1;
        IF j > n OR NOT p_grant[j] THEN
            IF v_room IS NOT NULL AND p_units[i] > v_room THEN
                o_reserved := false;
            ELSE
                v_take[i] := p_units[i];
            END IF;
        ELSE
            v_take[i] := CASE WHEN v_room IS NULL THEN p_units[i] ELSE LEAST(p_units[i], v_room) END;
            v_rest := p_units[i] - v_take[i];
            WHILE j <= n AND p_grant[j] LOOP
                v_t := LEAST(v_rest, GREATEST(p_max[j] - v_used[j] - v_held[j], 0));
                v_take[j] := v_t;
                v_rest := v_rest - v_t;
                j := j + 1;
            END LOOP;
            IF v_rest > 0 THEN
                o_reserved := false;
            END IF;
        END IF;
        IF NOT o_reserved THEN
            o_line := p_line[i];
            o_used := ARRAY[v_used[i]];
            o_held := ARRAY[v_held[i]];
            PERFORM tower_plans.drop_created(p_user, p_resource, p_counted, p_period, v_created);
            RETURN;
        END IF;
        i := j;
    END LOOP;
    INSERT INTO tower_plans.holds (user_id, resource, counted, period, reservation, units, expires_at)
    SELECT p_user, k.r, k.c, k.p, p_reservation, sum(k.t), v_expires
      FROM unnest(p_resource, p_counted, p_period, v_take) AS k(r, c, p, t)
     WHERE k.t > 0
     GROUP BY k.r, k.c, k.p;
    PERFORM tower_plans.drop_created(p_user, p_resource, p_counted, p_period, v_created);
END
$$;

-- Commits what a reservation held (see the crate's `UsageStore::commit`): `p_spent` is the
-- line's spent units on each of its parts, `p_max` as for `reserve`. A reservation not held
-- (settled, expired or unknown) changes nothing.
CREATE FUNCTION tower_plans.commit(
    p_reservation uuid, p_user text, p_grant boolean[],
    p_resource text[], p_counted text[], p_period text[], p_period_end bigint[],
    p_spent numeric[], p_max numeric[], p_seed numeric[], p_follows boolean[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n integer := COALESCE(array_length(p_resource, 1), 0);
    v_used numeric[];
    v_created boolean[];
    v_mine numeric[];
    v_take numeric[];
    v_keep boolean[];
    v_now timestamptz;
    v_any boolean;
    v_rest numeric;
    v_beside numeric;
    v_t numeric;
    i integer;
    j integer;
    k integer;
BEGIN
    IF n = 0 OR NOT EXISTS (SELECT 1 FROM tower_plans.holds h
                             WHERE h.reservation = p_reservation AND h.user_id = p_user) THEN
        RETURN;
    END IF;
    SELECT l.o_used, l.o_created INTO v_used, v_created
      FROM tower_plans.lock_parts(p_user, p_resource, p_counted, p_period, p_period_end,
                                  p_seed, p_follows) l;
    v_now := clock_timestamp();
    DELETE FROM tower_plans.holds h
     USING unnest(p_resource, p_counted, p_period) AS k(r, c, p)
     WHERE h.user_id = p_user AND h.resource = k.r AND h.counted = k.c AND h.period = k.p
       AND h.expires_at <= v_now;
    -- What this reservation held on each part, given back (null: nothing held there).
    v_mine := array_fill(NULL::numeric, ARRAY[n]);
    FOR i IN 1..n LOOP
        DELETE FROM tower_plans.holds h
         WHERE h.user_id = p_user AND h.resource = p_resource[i] AND h.counted = p_counted[i]
           AND h.period = p_period[i] AND h.reservation = p_reservation
        RETURNING h.units INTO v_t;
        IF FOUND THEN
            v_mine[i] := v_t;
        END IF;
    END LOOP;
    v_take := array_fill(0::numeric, ARRAY[n]);
    v_keep := array_fill(false, ARRAY[n]);
    i := 1;
    WHILE i <= n LOOP
        j := i + 1;
        WHILE j <= n AND p_grant[j] LOOP
            j := j + 1;
        END LOOP;
        -- The line's parts are i .. j - 1.
        v_any := false;
        FOR k IN i .. j - 1 LOOP
            v_any := v_any OR v_mine[k] IS NOT NULL;
        END LOOP;
        IF v_any THEN
            -- Spent units go to the parts held first, in order.
            v_rest := p_spent[i];
            FOR k IN i .. j - 1 LOOP
                v_take[k] := LEAST(v_rest, COALESCE(v_mine[k], 0));
                v_rest := v_rest - v_take[k];
            END LOOP;
            -- Beyond: on each part while its limit allows, the rest on the counter past it.
            k := i;
            WHILE v_rest > 0 AND k < j LOOP
                IF p_max[k] IS NULL THEN
                    v_take[k] := v_take[k] + v_rest;
                    v_rest := 0;
                ELSE
                    SELECT COALESCE(sum(h.units), 0) INTO v_beside FROM tower_plans.holds h
                     WHERE h.user_id = p_user AND h.resource = p_resource[k]
                       AND h.counted = p_counted[k] AND h.period = p_period[k];
                    v_t := LEAST(v_rest,
                                 GREATEST(p_max[k] - (v_used[k] + v_beside + v_take[k]), 0));
                    v_take[k] := v_take[k] + v_t;
                    v_rest := v_rest - v_t;
                END IF;
                k := k + 1;
            END LOOP;
            v_take[i] := v_take[i] + v_rest;
            FOR k IN i .. j - 1 LOOP
                IF v_take[k] > 0 THEN
                    UPDATE tower_plans.counters c
                       SET used = LEAST(c.used + v_take[k], 18446744073709551615)
                     WHERE c.user_id = p_user AND c.resource = p_resource[k]
                       AND c.counted = p_counted[k] AND c.period = p_period[k]
                    RETURNING c.used INTO v_t;
                    v_used[k] := v_t;
                    v_keep[k] := true;
                END IF;
            END LOOP;
        END IF;
        i := j;
    END LOOP;
    FOR i IN 1..n LOOP
        v_created[i] := v_created[i] AND NOT v_keep[i];
    END LOOP;
    PERFORM tower_plans.drop_created(p_user, p_resource, p_counted, p_period, v_created);
END
$$;

-- Adds `p_delta` to a counter's used count, saturating at 0 and at the largest u64, creating it
-- at its seed when it does not exist yet; returns the count after.
CREATE FUNCTION tower_plans.adjust(
    p_user text, p_resource text, p_counted text, p_period text, p_period_end bigint,
    p_delta numeric, p_seed numeric, p_follows boolean)
RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    v_used numeric;
BEGIN
    PERFORM tower_plans.lock_counter(p_user, p_resource, p_counted, p_period, p_period_end,
                                     p_seed, p_follows);
    UPDATE tower_plans.counters c
       SET used = LEAST(GREATEST(c.used + p_delta, 0), 18446744073709551615)
     WHERE c.user_id = p_user AND c.resource = p_resource AND c.counted = p_counted
       AND c.period = p_period
    RETURNING c.used INTO v_used;
    RETURN v_used;
END
$$;

-- Deletes the expired holds and the counters of periods that ended more than `p_kept_ms` ago
-- (and hold nothing), skipping rows that a reservation has locked; returns how many of each.
CREATE FUNCTION tower_plans.sweep(p_kept_ms bigint, OUT o_holds bigint, OUT o_counters bigint)
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
END
$$;
