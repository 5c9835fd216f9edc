-- warehouse/experiment_unit_state for day D: the units still inside their attribution window, one row
-- per unit and metric with what they accumulated so far, after day D's conversions; and, per experiment,
-- variation and metric, the sums of every unit whose window has closed (row_kind 'closed').
-- A unit first exposed on day c is open on days c .. c + window; after day c + window its values are
-- final and are folded into the closed sums, so a day's cost is the window's units plus the day's
-- events, never the experiment's whole history. The metric row '' carries the unit itself (units,
-- holdbacks, people shown several variations). `{{amount}}` is what a sum adds, from `c` (a conversion)
-- or `e` (a pre-exposure event): revenue, or a property.
-- Inputs: previous (this table's day D-1), new_units (experiment_units of day D), exposures and
-- conversions (day D), pre_events (warehouse/events of the CUPED window before day D's new units),
-- metric_parts (experiment_catalog.METRIC_PARTS). Parameters: $day, $window_days, $pre_period_days.
WITH metrics AS (
    SELECT DISTINCT experiment_id, metric_name, definition FROM metric_parts
),
new_rows AS (
    SELECT
        n.experiment_id, n.person_key, n.variation_id, n.is_holdback, n.first_exposed_at,
        CAST($day AS DATE) AS cohort_day, coalesce(m.metric_name, '') AS metric_name, m.definition
    FROM new_units AS n
    LEFT JOIN (SELECT * FROM metrics UNION ALL SELECT DISTINCT experiment_id, '', NULL FROM new_units) AS m
        ON m.experiment_id = n.experiment_id
),
pre_matched AS (
    -- CUPED's covariate: the metric's numerator over the pre-exposure window, and whether the unit had
    -- any event at all there (the has-history indicator).
    SELECT
        r.experiment_id, r.person_key, r.metric_name,
        count(p.experiment_id) AS pre_events,
        coalesce(sum({{pre_amount}}), 0.0) AS pre_amount,
        max(p.x_aggregation) AS aggregation
    FROM new_rows AS r
    JOIN pre_events AS e
        ON e.person_key = r.person_key
        AND e.occurred_at >= r.first_exposed_at - to_days(CAST($pre_period_days AS INTEGER))
        AND e.occurred_at < r.first_exposed_at
    LEFT JOIN metric_parts AS p
        ON p.experiment_id = r.experiment_id AND p.metric_name = r.metric_name AND p.part = 'x'
        AND p.source = e.source AND (p.event IS NULL OR p.event = e.event_type)
    GROUP BY ALL
),
opened AS (
    SELECT
        r.experiment_id, r.person_key, r.variation_id, r.is_holdback, r.first_exposed_at, r.cohort_day,
        r.variation_id AS first_variation, r.variation_id AS last_variation,
        r.metric_name, r.definition,
        0::BIGINT AS num_events, 0.0::DOUBLE AS num_amount, 0::BIGINT AS den_events, 0.0::DOUBLE AS den_amount,
        CASE p.aggregation
            WHEN 'unique' THEN (p.pre_events > 0)::DOUBLE WHEN 'count' THEN p.pre_events::DOUBLE
            ELSE coalesce(p.pre_amount, 0.0)
        END AS pre_value,
        p.person_key IS NOT NULL AS has_history
    FROM new_rows AS r
    LEFT JOIN pre_matched AS p
        ON p.experiment_id = r.experiment_id AND p.person_key = r.person_key AND p.metric_name = r.metric_name
),
carried AS (
    SELECT
        experiment_id, person_key, variation_id, is_holdback, first_exposed_at, cohort_day,
        first_variation, last_variation, metric_name, definition,
        num_events, num_amount, den_events, den_amount, pre_value, has_history
    FROM previous
    WHERE row_kind = 'unit'
    UNION ALL
    SELECT * FROM opened
),
seen AS (
    -- Every variation shown to an open unit on day D: two or more over its window exclude it.
    SELECT
        u.experiment_id, u.person_key, u.metric_name,
        least(u.first_variation, e.variation_ids[1]) AS first_variation,
        greatest(u.last_variation, e.variation_ids[-1]) AS last_variation
    FROM carried AS u
    JOIN exposures AS e ON e.experiment_id = u.experiment_id AND e.person_key = u.person_key
),
matched AS (
    SELECT
        u.experiment_id, u.person_key, u.metric_name,
        count(*) FILTER (WHERE m.part = 'x') AS num_events,
        coalesce(sum({{amount}}) FILTER (WHERE m.part = 'x'), 0.0) AS num_amount,
        count(*) FILTER (WHERE m.part = 'y') AS den_events,
        coalesce(sum({{amount}}) FILTER (WHERE m.part = 'y'), 0.0) AS den_amount
    FROM conversions AS c
    JOIN carried AS u ON u.experiment_id = c.experiment_id AND u.person_key = c.person_key
    JOIN metric_parts AS m
        ON m.experiment_id = u.experiment_id AND m.metric_name = u.metric_name AND m.source = c.source
        AND (m.event IS NULL OR m.event = c.event_name)
    WHERE c.occurred_at >= u.first_exposed_at
        AND c.occurred_at < u.first_exposed_at + to_days(CAST(m.window_days AS INTEGER))
    GROUP BY ALL
)
SELECT
    u.experiment_id, u.person_key, u.variation_id, u.is_holdback, u.first_exposed_at, u.cohort_day,
    coalesce(s.first_variation, u.first_variation) AS first_variation,
    coalesce(s.last_variation, u.last_variation) AS last_variation,
    u.metric_name, u.definition,
    u.num_events + coalesce(c.num_events, 0) AS num_events,
    u.num_amount + coalesce(c.num_amount, 0.0) AS num_amount,
    u.den_events + coalesce(c.den_events, 0) AS den_events,
    u.den_amount + coalesce(c.den_amount, 0.0) AS den_amount,
    u.pre_value, u.has_history
FROM carried AS u
LEFT JOIN seen AS s USING (experiment_id, person_key, metric_name)
LEFT JOIN matched AS c USING (experiment_id, person_key, metric_name)
