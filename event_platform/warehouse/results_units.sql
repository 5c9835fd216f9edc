-- Units per experiment and variation: people counted once, holdbacks and people in several variations
-- left out and counted (they are listed under the variation of their first exposure).
SELECT
    experiment_id,
    variation_id,
    count(*) FILTER (WHERE NOT in_several_variations AND NOT is_holdback) AS units,
    count(*) FILTER (WHERE NOT in_several_variations AND is_holdback) AS holdback_visitors,
    count(*) FILTER (WHERE in_several_variations) AS excluded_visitors,
    min(first_exposed_at) AS first_exposure,
    max(first_exposed_at) AS last_exposure
FROM visitors
GROUP BY experiment_id, variation_id
