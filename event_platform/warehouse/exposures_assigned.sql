-- Exposures of experiments not run in Optimizely (the metrics file's `assignment`), from one day of
-- unified events: per experiment and person, the first assignment event of the day and every variation
-- it carried that day, in the shape of exposures.sql.
-- Inputs: events (warehouse/events of the day), assignments (experiment_id, source, event,
-- variation_path, experiment_path: JSON paths into `properties`).
WITH assigned AS (
    SELECT
        a.experiment_id,
        e.person_key,
        e.occurred_at,
        e.event_id,
        json_extract_string(e.properties, a.variation_path) AS variation_id
    FROM events AS e
    JOIN assignments AS a ON e.source = a.source AND e.event_type = a.event
    WHERE e.person_key IS NOT NULL
        AND (
            a.experiment_path IS NULL
            OR json_extract_string(e.properties, a.experiment_path) = a.experiment_id
        )
)
SELECT
    experiment_id,
    CAST(NULL AS VARCHAR) AS campaign_id,
    person_key,
    CAST(NULL AS VARCHAR) AS visitor_id,
    -- Ties on the time are broken by the event id so reruns pick the same event.
    arg_min(variation_id, (occurred_at, event_id)) AS variation_id,
    false AS is_holdback,
    min(occurred_at) AS first_exposed_at,
    list_sort(list_distinct(list(variation_id))) AS variation_ids,
    count(*) AS decisions
FROM assigned
WHERE variation_id IS NOT NULL
GROUP BY experiment_id, person_key
