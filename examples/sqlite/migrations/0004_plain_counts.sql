-- Migration 4: a resource's plain count has a row of its own, `counted` = '*'. A record's plain
-- count ("clients": 3) is the resource's item count, which creates and deletes change, and the
-- usage of every action without a row of its own, before and after other counters of the
-- resource exist; 'items' is now only the `create` count of a resource counted per action
-- ("tasks": {"create": 2, "show": 40}), whose other actions read 0 without a row of their own.
--
-- Until now a resource whose only row (quotas aside) was 'items' read as a plain count, and one
-- with 'items' beside action rows read per action: the first becomes a '*' row, the second stays,
-- so that every record reads as it did.
UPDATE usage_counters SET counted = '*'
 WHERE counted = 'items'
   AND NOT EXISTS (SELECT 1 FROM usage_counters AS other
                    WHERE other.user_id = usage_counters.user_id
                      AND other.resource = usage_counters.resource
                      AND other.counted <> 'items'
                      AND instr(other.counted, '@') = 0);
