-- warehouse/experiment_results: per experiment, defined metric and variation, the sums over units of
-- the metric's per-unit numerator x and denominator y (a ratio's; else y is 0), their squares and
-- product, from which rates, means, ratios and their variances follow with the units. A unit's x (or y)
-- is 1 if it has any of the part's events (`unique`), their number (`count`), or the property's total
-- (`sum`), counting events from its first exposure of all time until the metric's window ends.
-- `{{amount}}` is the value a `sum` adds: revenue, or also a property (results.py reads `properties`,
-- the widest column, only when a metric sums one).
-- Inputs: visitors (results_visitors.sql), conversions (every daily partition), metric_parts
-- (experiment_catalog.METRIC_PARTS: one row per event a metric part counts, with both parts' kinds).
WITH units AS (
    SELECT experiment_id, variation_id, person_key, first_exposed_at
    FROM visitors
    WHERE NOT in_several_variations AND NOT is_holdback
),
matched AS (
    SELECT
        m.experiment_id, m.metric_index, m.part, m.x_aggregation, m.y_aggregation, u.variation_id,
        u.person_key,
        {{amount}} AS amount
    FROM conversions AS c
    JOIN units AS u ON u.experiment_id = c.experiment_id AND u.person_key = c.person_key
    JOIN metric_parts AS m
        ON m.experiment_id = c.experiment_id AND m.source = c.source
        AND (m.event IS NULL OR m.event = c.event_name)
    WHERE c.occurred_at >= u.first_exposed_at
        AND c.occurred_at < u.first_exposed_at + to_days(CAST(m.window_days AS INTEGER))
),
-- One aggregation per unit and metric gives both parts (each part's kind is the same on all its rows).
per_unit AS (
    SELECT
        experiment_id, metric_index, variation_id,
        bool_or(part = 'x') AS has_event,
        CASE any_value(x_aggregation)
            WHEN 'unique' THEN CASE WHEN bool_or(part = 'x') THEN 1.0 ELSE 0.0 END
            WHEN 'count' THEN count(*) FILTER (WHERE part = 'x')::DOUBLE
            ELSE coalesce(sum(amount) FILTER (WHERE part = 'x'), 0.0)
        END AS x,
        CASE any_value(y_aggregation)
            WHEN 'unique' THEN CASE WHEN bool_or(part = 'y') THEN 1.0 ELSE 0.0 END
            WHEN 'count' THEN count(*) FILTER (WHERE part = 'y')::DOUBLE
            ELSE coalesce(sum(amount) FILTER (WHERE part = 'y'), 0.0)
        END AS y
    FROM matched
    GROUP BY experiment_id, metric_index, variation_id, person_key
)
SELECT
    experiment_id, metric_index, variation_id,
    count(*) FILTER (WHERE has_event) AS units_with_event,
    sum(x) AS sum_x, sum(x * x) AS sum_xx,
    sum(y) AS sum_y, sum(y * y) AS sum_yy, sum(x * y) AS sum_xy
FROM per_unit
GROUP BY experiment_id, metric_index, variation_id
