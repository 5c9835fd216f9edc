-- warehouse/experiment_unit_state for day D, its unit rows: every unit still inside its attribution
-- window after day D (metric_name ''), and, only where there is something to count, its values per
-- metric (numerator and denominator events and amounts, and CUPED's pre-exposure value). Zeros are not
-- stored: a unit without a row for a metric has 0 there, which adds nothing to any sum. Day D starts from
-- day D-1's rows, adds the units first exposed on D (with their pre-exposure history), marks a unit shown
-- another variation on D, and adds D's conversions inside each unit's window. `{{amount}}` is what a sum
-- adds, from `c` (a conversion) or `e` (a pre-exposure event): revenue, or a property.
-- Inputs: previous (this table's day D-1), new_units (experiment_units of day D), exposures and
-- conversions (day D), pre_events (warehouse/events of the CUPED window before day D's new units),
-- metric_parts (experiment_catalog.METRIC_PARTS). Parameters: $day, $pre_period_days.
WITH arrivals AS (
    SELECT
        experiment_id, person_key, variation_id, is_holdback, first_exposed_at,
        CAST($day AS DATE) AS cohort_day, variation_id AS first_variation, variation_id AS last_variation
    FROM new_units
),
pre AS (
    -- Per new unit: its events in the pre-exposure window (any: the has-history indicator) and, per
    -- metric, those its numerator counts.
    SELECT
        a.experiment_id, a.person_key, p.metric_name,
        count(p.metric_name) AS pre_events,
        coalesce(sum({{pre_amount}}), 0.0) AS pre_amount,
        any_value(p.x_aggregation) AS aggregation
    FROM arrivals AS a
    JOIN pre_events AS e
        ON e.person_key = a.person_key
        AND e.occurred_at >= a.first_exposed_at - to_days(CAST($pre_period_days AS INTEGER))
        AND e.occurred_at < a.first_exposed_at
    LEFT JOIN metric_parts AS p
        ON p.experiment_id = a.experiment_id AND p.part = 'x'
        AND p.source = e.source AND (p.event IS NULL OR p.event = e.event_type)
    GROUP BY ALL
),
units AS (
    SELECT
        u.experiment_id, u.person_key, u.variation_id, u.is_holdback, u.first_exposed_at, u.cohort_day,
        least(u.first_variation, coalesce(x.variation_ids[1], u.first_variation)) AS first_variation,
        greatest(u.last_variation, coalesce(x.variation_ids[-1], u.last_variation)) AS last_variation,
        u.has_history
    FROM (
        SELECT
            experiment_id, person_key, variation_id, is_holdback, first_exposed_at, cohort_day,
            first_variation, last_variation, has_history
        FROM previous
        WHERE row_kind = 'unit' AND metric_name = ''
        UNION ALL
        SELECT a.*, a.person_key IN (SELECT person_key FROM pre AS h WHERE h.experiment_id = a.experiment_id)
        FROM arrivals AS a
    ) AS u
    LEFT JOIN exposures AS x ON x.experiment_id = u.experiment_id AND x.person_key = u.person_key
),
counted AS (
    SELECT experiment_id, person_key, cohort_day, metric_name, num_events, num_amount, den_events, den_amount,
        pre_value
    FROM previous
    WHERE row_kind = 'unit' AND metric_name <> ''
    UNION ALL
    SELECT
        experiment_id, person_key, CAST($day AS DATE), metric_name, 0, 0.0, 0, 0.0,
        CASE aggregation
            WHEN 'unique' THEN (pre_events > 0)::DOUBLE WHEN 'count' THEN pre_events::DOUBLE ELSE pre_amount
        END
    FROM pre
    WHERE metric_name IS NOT NULL
    UNION ALL
    SELECT
        u.experiment_id, u.person_key, u.cohort_day, m.metric_name,
        count(*) FILTER (WHERE m.part = 'x'),
        coalesce(sum({{amount}}) FILTER (WHERE m.part = 'x'), 0.0),
        count(*) FILTER (WHERE m.part = 'y'),
        coalesce(sum({{amount}}) FILTER (WHERE m.part = 'y'), 0.0),
        0.0
    FROM conversions AS c
    JOIN units AS u ON u.experiment_id = c.experiment_id AND u.person_key = c.person_key
    JOIN metric_parts AS m
        ON m.experiment_id = u.experiment_id AND m.source = c.source
        AND (m.event IS NULL OR m.event = c.event_name)
    WHERE c.occurred_at >= u.first_exposed_at
        AND c.occurred_at < u.first_exposed_at + to_days(CAST(m.window_days AS INTEGER))
    GROUP BY ALL
)
SELECT
    experiment_id, person_key, variation_id, is_holdback, first_exposed_at, cohort_day, first_variation,
    last_variation, '' AS metric_name, has_history
FROM units
UNION ALL BY NAME
SELECT
    experiment_id, person_key, cohort_day, metric_name,
    sum(num_events)::BIGINT AS num_events, sum(num_amount) AS num_amount,
    sum(den_events)::BIGINT AS den_events, sum(den_amount) AS den_amount, sum(pre_value) AS pre_value
FROM counted
GROUP BY experiment_id, person_key, cohort_day, metric_name
