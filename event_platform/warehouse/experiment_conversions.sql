-- warehouse/experiment_conversions for one day of unified events: the events of people exposed to an
-- experiment, at or after their first exposure seen in the lookback and within the attribution window.
-- Inputs: events (warehouse/events of the day), exposures (the lookback's daily first exposures).
WITH people_of_the_day AS (
    SELECT DISTINCT person_key FROM events WHERE person_key IS NOT NULL
),
-- Only the day's people: the lookback's exposures are many more than those who act on one day.
first_exposure AS (
    SELECT x.experiment_id, x.person_key, min(x.first_exposed_at) AS first_exposed_at
    FROM exposures AS x
    SEMI JOIN people_of_the_day AS p ON p.person_key = x.person_key
    GROUP BY x.experiment_id, x.person_key
)
SELECT
    x.experiment_id,
    e.person_key,
    e.source,
    e.event_type AS event_name,
    e.event_id,
    e.occurred_at,
    e.revenue,
    x.first_exposed_at,
    e.properties
FROM events AS e
JOIN first_exposure AS x ON x.person_key = e.person_key
WHERE e.occurred_at >= x.first_exposed_at
    AND e.occurred_at < x.first_exposed_at + to_days(CAST($window_days AS INTEGER))
