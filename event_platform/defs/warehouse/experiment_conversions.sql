-- warehouse/experiment_conversions for one day of unified events: the events of people exposed to an
-- experiment, at or after their first exposure seen in the lookback and within the attribution window.
-- Inputs: events (warehouse/events of the day), exposures (the lookback's daily first exposures).
WITH first_exposure AS (
    SELECT experiment_id, person_key, min(first_exposed_at) AS first_exposed_at
    FROM exposures
    GROUP BY experiment_id, person_key
)
SELECT
    x.experiment_id,
    e.person_key,
    e.source,
    e.event_type AS event_name,
    e.event_id,
    e.occurred_at,
    e.revenue,
    x.first_exposed_at
FROM events AS e
JOIN first_exposure AS x ON x.person_key = e.person_key
WHERE e.occurred_at >= x.first_exposed_at
    AND e.occurred_at < x.first_exposed_at + to_days(CAST($window_days AS INTEGER))
