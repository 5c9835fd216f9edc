-- warehouse/experiment_results: per experiment, defined metric and variation, the sums over units of
-- the metric's per-unit numerator x and denominator y (a ratio's; else y is 0), their squares and
-- product, from which rates, means, ratios and their variances follow with the units. A unit's x (or y)
-- is 1 if it has any of the part's events (`unique`), their number (`count`), or the property's total
-- (`sum`), counting events from its first exposure of all time until the metric's window ends.
-- Per unit and metric only numbers are aggregated (the part kinds join afterwards), so DuckDB can spill
-- that aggregation past its memory limit. `{{amount}}` is what a sum adds: revenue, or a property.
-- Inputs: visitors (results_visitors.sql), conversions (every daily partition), metric_parts
-- (experiment_catalog.METRIC_PARTS: one row per event a metric part counts, with both parts' kinds).
WITH units AS (
    SELECT experiment_id, variation_id, person_key, first_exposed_at
    FROM visitors
    WHERE NOT in_several_variations AND NOT is_holdback
),
matched AS (
    SELECT
        m.experiment_id, m.metric_index, m.part = 'x' AS is_x, u.variation_id, u.person_key,
        {{amount}} AS amount
    FROM conversions AS c
    JOIN units AS u ON u.experiment_id = c.experiment_id AND u.person_key = c.person_key
    JOIN metric_parts AS m
        ON m.experiment_id = c.experiment_id AND m.source = c.source
        AND (m.event IS NULL OR m.event = c.event_name)
    WHERE c.occurred_at >= u.first_exposed_at
        AND c.occurred_at < u.first_exposed_at + to_days(CAST(m.window_days AS INTEGER))
),
per_unit AS (
    SELECT
        experiment_id, metric_index, variation_id,
        count(*) FILTER (WHERE is_x) AS x_events,
        coalesce(sum(amount) FILTER (WHERE is_x), 0.0) AS x_amount,
        count(*) FILTER (WHERE NOT is_x) AS y_events,
        coalesce(sum(amount) FILTER (WHERE NOT is_x), 0.0) AS y_amount
    FROM matched
    GROUP BY experiment_id, metric_index, variation_id, person_key
),
kinds AS (
    SELECT DISTINCT experiment_id, metric_index, x_aggregation, y_aggregation FROM metric_parts
),
values_per_unit AS (
    SELECT
        p.experiment_id, p.metric_index, p.variation_id, p.x_events > 0 AS has_event,
        CASE k.x_aggregation
            WHEN 'unique' THEN (p.x_events > 0)::DOUBLE WHEN 'count' THEN p.x_events::DOUBLE ELSE p.x_amount
        END AS x,
        CASE k.y_aggregation
            WHEN 'unique' THEN (p.y_events > 0)::DOUBLE WHEN 'count' THEN p.y_events::DOUBLE ELSE p.y_amount
        END AS y
    FROM per_unit AS p
    JOIN kinds AS k ON k.experiment_id = p.experiment_id AND k.metric_index = p.metric_index
)
SELECT
    experiment_id, metric_index, variation_id,
    count(*) FILTER (WHERE has_event) AS units_with_event,
    sum(x) AS sum_x, sum(x * x) AS sum_xx,
    coalesce(sum(y), 0.0) AS sum_y, coalesce(sum(y * y), 0.0) AS sum_yy, coalesce(sum(x * y), 0.0) AS sum_xy
FROM values_per_unit
GROUP BY experiment_id, metric_index, variation_id
