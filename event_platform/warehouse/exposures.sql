-- warehouse/experiment_exposures for one day of Optimizely decisions (E3 `date=` is the processing day):
-- per experiment and person, the first decision of the day and every variation shown that day.
-- Decisions without an experiment, variation, time or visitor cannot be exposures (they are counted).
-- Inputs: decisions (E3 decisions), identity_links (links seen in the lookback).
WITH links AS (
    SELECT reference, arg_min(person_reference, first_seen_at) AS person_reference
    FROM identity_links
    GROUP BY reference
),
usable AS (
    SELECT *, {{identity_reference}} AS identity_reference
    FROM decisions
    WHERE experiment_id IS NOT NULL AND variation_id IS NOT NULL AND "timestamp" IS NOT NULL
),
resolved AS (
    SELECT
        u.experiment_id,
        coalesce(l.person_reference, u.identity_reference) AS person_reference,
        u."timestamp",
        u.variation_id,
        -- Ties on the timestamp are broken by the case-folded uuid so reruns pick the same decision.
        ("timestamp", lower(u.uuid)) AS decision_order,
        {
            'campaign_id': u.campaign_id, 'visitor_id': u.visitor_id, 'variation_id': u.variation_id,
            'is_holdback': coalesce(u.is_holdback, false)
        } AS decision
    FROM usable AS u
    LEFT JOIN links AS l ON l.reference = u.identity_reference
    WHERE u.identity_reference IS NOT NULL
),
first_decisions AS (
    SELECT
        experiment_id,
        person_reference,
        arg_min(decision, decision_order) AS first_decision,
        min("timestamp") AS first_exposed_at,
        list_sort(list_distinct(list(variation_id))) AS variation_ids,
        count(*) AS decisions
    FROM resolved
    GROUP BY experiment_id, person_reference
)
SELECT
    experiment_id,
    first_decision.campaign_id AS campaign_id,
    person_key(person_reference) AS person_key,
    first_decision.visitor_id AS visitor_id,
    first_decision.variation_id AS variation_id,
    first_decision.is_holdback AS is_holdback,
    first_exposed_at,
    variation_ids,
    decisions
FROM first_decisions
