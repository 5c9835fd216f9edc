-- Each experiment's people over its whole window, from the daily exposure partitions: the first
-- exposure of all time decides the variation; someone shown two variations on any days is excluded.
-- Input: exposures (every daily partition).
SELECT
    experiment_id,
    person_key,
    min(first_exposed_at) AS first_exposed_at,
    arg_min(variation_id, first_exposed_at) AS variation_id,
    arg_min(is_holdback, first_exposed_at) AS is_holdback,
    -- Each day's list is sorted, so all days' variations are one iff the smallest equals the largest.
    min(variation_ids[1]) <> max(variation_ids[-1]) AS in_several_variations
FROM exposures
GROUP BY experiment_id, person_key
