-- Migration 4: a resource's plain count has a row of its own. A record's plain count
-- ("clients": 3) is the usage of every action without a count of its own, before and after the
-- resource's other counters exist, so it is kept apart from the item count that creates and
-- deletes change: its `counted` is '*'. Until now a resource with only an `items` row was a
-- plain count: that row becomes the plain count.
UPDATE usage_counters SET counted = '*'
 WHERE counted = 'items'
   AND NOT EXISTS (SELECT 1 FROM usage_counters AS other
                    WHERE other.user_id = usage_counters.user_id
                      AND other.resource = usage_counters.resource
                      AND other.counted <> 'items'
                      AND other.counted NOT LIKE '%@%');
