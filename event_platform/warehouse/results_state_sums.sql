-- Per experiment, variation and metric, the sums over units that inference.ArmSums takes: units and
-- their metric values y (numerator), d (a ratio's denominator), x (the numerator over the
-- pre-exposure window, CUPED's covariate) and h (1 when the unit had any event then), with their
-- squares and products. Holdbacks and people shown several variations are counted, not summed. The
-- metric row '' gives the units themselves and the experiment's first and last exposure.
-- Inputs: unit_rows (rows of results_state.sql: units, and their values where not 0),
-- metric_parts (experiment_catalog.METRIC_PARTS).
WITH kinds AS (
    SELECT DISTINCT experiment_id, metric_name, x_aggregation, y_aggregation FROM metric_parts
),
units AS (
    SELECT
        experiment_id, person_key, variation_id, first_exposed_at, has_history,
        is_holdback AND first_variation = last_variation AS held_back,
        first_variation <> last_variation AS excluded,
        NOT is_holdback AND first_variation = last_variation AS counted
    FROM unit_rows
    WHERE metric_name = ''
),
per_variation AS (
    SELECT
        experiment_id, variation_id,
        count(*) FILTER (WHERE counted) AS units,
        count(*) FILTER (WHERE held_back) AS holdback_visitors,
        count(*) FILTER (WHERE excluded) AS excluded_visitors,
        count(*) FILTER (WHERE counted AND has_history)::DOUBLE AS sum_h,
        min(first_exposed_at) AS first_exposure,
        max(first_exposed_at) AS last_exposure
    FROM units
    GROUP BY experiment_id, variation_id
),
valued AS (
    SELECT
        u.experiment_id, u.variation_id, v.metric_name, u.has_history::DOUBLE AS h,
        v.num_events > 0 AS has_event,
        CASE k.x_aggregation
            WHEN 'unique' THEN (v.num_events > 0)::DOUBLE WHEN 'count' THEN v.num_events::DOUBLE
            WHEN 'sum' THEN v.num_amount ELSE 0.0
        END AS y,
        CASE k.y_aggregation
            WHEN 'unique' THEN (v.den_events > 0)::DOUBLE WHEN 'count' THEN v.den_events::DOUBLE
            WHEN 'sum' THEN v.den_amount ELSE 0.0
        END AS d,
        v.pre_value AS x
    FROM unit_rows AS v
    JOIN units AS u ON u.experiment_id = v.experiment_id AND u.person_key = v.person_key
    LEFT JOIN kinds AS k ON k.experiment_id = v.experiment_id AND k.metric_name = v.metric_name
    WHERE v.metric_name <> '' AND u.counted
),
per_metric AS (
    SELECT
        experiment_id, variation_id, metric_name,
        count(*) FILTER (WHERE has_event) AS units_with_event,
        sum(y) AS sum_y, sum(y * y) AS sum_y2, sum(d) AS sum_d, sum(d * d) AS sum_d2, sum(y * d) AS sum_yd,
        sum(x) AS sum_x, sum(x * x) AS sum_x2, sum(x * y) AS sum_xy, sum(h * y) AS sum_hy
    FROM valued
    GROUP BY experiment_id, variation_id, metric_name
)
SELECT
    experiment_id, variation_id, '' AS metric_name, units, holdback_visitors, excluded_visitors,
    0::BIGINT AS units_with_event, 0.0 AS sum_y, 0.0 AS sum_y2, 0.0 AS sum_d, 0.0 AS sum_d2, 0.0 AS sum_yd,
    0.0 AS sum_x, 0.0 AS sum_x2, 0.0 AS sum_xy, sum_h, 0.0 AS sum_hy, first_exposure, last_exposure
FROM per_variation
UNION ALL BY NAME
SELECT
    p.experiment_id, p.variation_id, k.metric_name, p.units, 0::BIGINT AS holdback_visitors,
    0::BIGINT AS excluded_visitors, coalesce(m.units_with_event, 0) AS units_with_event,
    coalesce(m.sum_y, 0.0) AS sum_y, coalesce(m.sum_y2, 0.0) AS sum_y2, coalesce(m.sum_d, 0.0) AS sum_d,
    coalesce(m.sum_d2, 0.0) AS sum_d2, coalesce(m.sum_yd, 0.0) AS sum_yd, coalesce(m.sum_x, 0.0) AS sum_x,
    coalesce(m.sum_x2, 0.0) AS sum_x2, coalesce(m.sum_xy, 0.0) AS sum_xy, p.sum_h,
    coalesce(m.sum_hy, 0.0) AS sum_hy, NULL::TIMESTAMPTZ AS first_exposure, NULL::TIMESTAMPTZ AS last_exposure
FROM per_variation AS p
JOIN (SELECT DISTINCT experiment_id, metric_name FROM kinds) AS k ON k.experiment_id = p.experiment_id
LEFT JOIN per_metric AS m
    ON m.experiment_id = p.experiment_id AND m.variation_id = p.variation_id AND m.metric_name = k.metric_name
