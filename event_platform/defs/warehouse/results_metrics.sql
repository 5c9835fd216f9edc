-- warehouse/experiment_results: per experiment, defined metric and variation, the sums over units of
-- the metric's per-unit numerator x and denominator y (a ratio's; else y is 0), their squares and
-- product, from which rates, means, ratios and their variances follow with the units. A unit's x (or y)
-- is 1 if it has any of the part's events (`unique`), their number (`count`), or the property's total
-- (`sum`), counting events from its first exposure of all time until the metric's window ends.
-- The conversions are first reduced per unit, event and day after the first exposure (a window is whole
-- days, so `day < window_days` is exact), which keeps the metric join small however many events a unit
-- has. `{{property_sums}}` adds one total per property a metric sums, `{{amount}}` picks a part's total.
-- Inputs: visitors (results_visitors.sql), conversions (every daily partition), metric_parts
-- (experiment_catalog.METRIC_PARTS: one row per event a metric part counts, with both parts' kinds).
WITH units AS (
    SELECT experiment_id, variation_id, person_key, first_exposed_at
    FROM visitors
    WHERE NOT in_several_variations AND NOT is_holdback
),
attributed AS (
    SELECT
        c.experiment_id, u.variation_id, c.person_key, c.source, c.event_name,
        (epoch_us(c.occurred_at) - epoch_us(u.first_exposed_at)) // 86400000000 AS day,
        count(*) AS events,
        sum(c.revenue) AS revenue
        {{property_sums}}
    FROM conversions AS c
    JOIN units AS u ON u.experiment_id = c.experiment_id AND u.person_key = c.person_key
    SEMI JOIN metric_parts AS m
        ON m.experiment_id = c.experiment_id AND m.source = c.source
        AND (m.event IS NULL OR m.event = c.event_name)
    WHERE c.occurred_at >= u.first_exposed_at
        AND c.occurred_at < u.first_exposed_at + to_days(CAST($window_days AS INTEGER))
    GROUP BY ALL
),
matched AS (
    SELECT
        m.experiment_id, m.metric_index, m.part, m.x_aggregation, m.y_aggregation, a.variation_id,
        a.person_key, a.events, {{amount}} AS amount
    FROM attributed AS a
    JOIN metric_parts AS m
        ON m.experiment_id = a.experiment_id AND m.source = a.source
        AND (m.event IS NULL OR m.event = a.event_name)
    WHERE a.day < m.window_days
),
-- One aggregation per unit and metric gives both parts (each part's kind is the same on all its rows).
per_unit AS (
    SELECT
        experiment_id, metric_index, variation_id,
        bool_or(part = 'x') AS has_event,
        CASE any_value(x_aggregation)
            WHEN 'unique' THEN CASE WHEN bool_or(part = 'x') THEN 1.0 ELSE 0.0 END
            WHEN 'count' THEN coalesce(sum(events) FILTER (WHERE part = 'x'), 0)::DOUBLE
            ELSE coalesce(sum(amount) FILTER (WHERE part = 'x'), 0.0)
        END AS x,
        CASE any_value(y_aggregation)
            WHEN 'unique' THEN CASE WHEN bool_or(part = 'y') THEN 1.0 ELSE 0.0 END
            WHEN 'count' THEN coalesce(sum(events) FILTER (WHERE part = 'y'), 0)::DOUBLE
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
