-- warehouse/experiment_exploration: per experiment, variation, source and event type, how many units
-- converted, and the sum and sum of squares of the per-unit value (event count, revenue), from which
-- means and variances follow with the units.
-- The attribution window is checked again against the first exposure of all time.
-- Inputs: visitors (results_visitors.sql), conversions (every daily partition).
WITH attributed AS (
    SELECT v.experiment_id, v.variation_id, c.person_key, c.source, c.event_name, c.revenue
    FROM conversions AS c
    JOIN visitors AS v ON v.experiment_id = c.experiment_id AND v.person_key = c.person_key
    WHERE NOT v.in_several_variations AND NOT v.is_holdback
        AND c.occurred_at >= v.first_exposed_at
        AND c.occurred_at < v.first_exposed_at + to_days(CAST($window_days AS INTEGER))
),
events_per_person AS (
    SELECT experiment_id, variation_id, source, event_name, person_key, count(*) AS events
    FROM attributed
    GROUP BY ALL
),
revenue_per_person AS (
    SELECT experiment_id, variation_id, source, person_key, sum(revenue) AS revenue
    FROM attributed
    WHERE revenue IS NOT NULL
    GROUP BY ALL
)
SELECT
    experiment_id, variation_id, source, event_name, 'events' AS kind,
    count(*) AS converted_units,
    sum(events)::DOUBLE AS total,
    sum(events * events)::DOUBLE AS total_of_squares
FROM events_per_person
GROUP BY ALL
UNION ALL
SELECT
    experiment_id, variation_id, source, NULL AS event_name, 'revenue' AS kind,
    count(*) AS converted_units,
    sum(revenue)::DOUBLE AS total,
    sum(revenue * revenue)::DOUBLE AS total_of_squares
FROM revenue_per_person
GROUP BY ALL
