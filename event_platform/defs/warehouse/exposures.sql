-- warehouse/experiment_exposures for one day of Optimizely decisions (E3 `date=` is the processing day):
-- per experiment and person, the first decision of the day and every variation shown that day.
-- Inputs: decisions (E3 decisions), identity_links (links seen in the lookback).
WITH links AS (
    SELECT reference, arg_min(person_reference, first_seen_at) AS person_reference
    FROM identity_links
    GROUP BY reference
),
usable AS (
    SELECT *, {{identity_references}} AS identity_references
    FROM decisions
    WHERE experiment_id IS NOT NULL AND variation_id IS NOT NULL AND "timestamp" IS NOT NULL
),
resolved AS (
    SELECT u.*, coalesce(l.person_reference, u.identity_references[1]) AS person_reference
    FROM usable AS u
    LEFT JOIN links AS l ON l.reference = u.identity_references[1]
    WHERE len(u.identity_references) > 0
)
SELECT
    experiment_id,
    -- Ties on the timestamp are broken by the case-folded uuid so reruns pick the same decision.
    arg_min(campaign_id, ("timestamp", lower(uuid))) AS campaign_id,
    person_key(person_reference) AS person_key,
    arg_min(visitor_id, ("timestamp", lower(uuid))) AS visitor_id,
    arg_min(variation_id, ("timestamp", lower(uuid))) AS variation_id,
    coalesce(arg_min(is_holdback, ("timestamp", lower(uuid))), false) AS is_holdback,
    min("timestamp") AS first_exposed_at,
    list_sort(list_distinct(list(variation_id))) AS variation_ids,
    count(*) AS decisions
FROM resolved
GROUP BY experiment_id, person_reference
