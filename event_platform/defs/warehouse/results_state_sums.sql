-- Per experiment, variation and metric, the sums over units that inference.ArmSums takes: units and
-- their metric values y (numerator), d (a ratio's denominator), x (the numerator over the
-- pre-exposure window, CUPED's covariate) and h (1 when the unit had any event then), with their
-- squares and products. Holdbacks and people shown several variations are counted, not summed. The
-- metric row '' gives the units themselves and the experiment's first and last exposure.
-- Inputs: unit_rows (rows of results_state.sql), metric_parts (experiment_catalog.METRIC_PARTS).
WITH kinds AS (
    SELECT DISTINCT experiment_id, metric_name, x_aggregation, y_aggregation FROM metric_parts
),
valued AS (
    SELECT
        u.experiment_id, u.variation_id, u.metric_name, u.definition, u.first_exposed_at,
        u.is_holdback AND u.first_variation = u.last_variation AS held_back,
        u.first_variation <> u.last_variation AS excluded,
        NOT u.is_holdback AND u.first_variation = u.last_variation AS counted,
        u.num_events > 0 AS has_event,
        CASE k.x_aggregation
            WHEN 'unique' THEN (u.num_events > 0)::DOUBLE WHEN 'count' THEN u.num_events::DOUBLE
            WHEN 'sum' THEN u.num_amount ELSE 0.0
        END AS y,
        CASE k.y_aggregation
            WHEN 'unique' THEN (u.den_events > 0)::DOUBLE WHEN 'count' THEN u.den_events::DOUBLE
            WHEN 'sum' THEN u.den_amount ELSE 0.0
        END AS d,
        u.pre_value AS x,
        u.has_history::DOUBLE AS h
    FROM unit_rows AS u
    LEFT JOIN kinds AS k ON k.experiment_id = u.experiment_id AND k.metric_name = u.metric_name
)
SELECT
    experiment_id, variation_id, metric_name, any_value(definition) AS definition,
    count(*) FILTER (WHERE counted) AS units,
    count(*) FILTER (WHERE held_back) AS holdback_visitors,
    count(*) FILTER (WHERE excluded) AS excluded_visitors,
    count(*) FILTER (WHERE counted AND has_event) AS units_with_event,
    coalesce(sum(y) FILTER (WHERE counted), 0.0) AS sum_y,
    coalesce(sum(y * y) FILTER (WHERE counted), 0.0) AS sum_y2,
    coalesce(sum(d) FILTER (WHERE counted), 0.0) AS sum_d,
    coalesce(sum(d * d) FILTER (WHERE counted), 0.0) AS sum_d2,
    coalesce(sum(y * d) FILTER (WHERE counted), 0.0) AS sum_yd,
    coalesce(sum(x) FILTER (WHERE counted), 0.0) AS sum_x,
    coalesce(sum(x * x) FILTER (WHERE counted), 0.0) AS sum_x2,
    coalesce(sum(x * y) FILTER (WHERE counted), 0.0) AS sum_xy,
    coalesce(sum(h) FILTER (WHERE counted), 0.0) AS sum_h,
    coalesce(sum(h * y) FILTER (WHERE counted), 0.0) AS sum_hy,
    min(first_exposed_at) AS first_exposure,
    max(first_exposed_at) AS last_exposure
FROM valued
GROUP BY experiment_id, variation_id, metric_name
