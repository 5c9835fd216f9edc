-- Per experiment and variation, the share of exposure days (a person's first decision of a day) on
-- which that person converted on the metric event later the same day: the rate the sandbox world
-- plants, independent of how many days a person visits.
-- Inputs: exposures (daily partitions, with `date`), events (daily partitions, with `date`),
-- metric_events (experiment_id, metric_event).
WITH visits AS (
    SELECT x.date, x.experiment_id, x.variation_id, x.person_key, x.first_exposed_at, m.metric_event
    FROM exposures AS x
    JOIN metric_events AS m ON m.experiment_id = x.experiment_id
    WHERE NOT x.is_holdback AND len(x.variation_ids) = 1
),
converted AS (
    SELECT DISTINCT v.date, v.experiment_id, v.person_key
    FROM visits AS v
    JOIN events AS e
        ON e.date = v.date AND e.person_key = v.person_key AND e.event_type = v.metric_event
    WHERE e.source = 'optimizely' AND e.occurred_at >= v.first_exposed_at
)
SELECT
    v.experiment_id,
    v.variation_id,
    count(*) AS visits,
    count(c.person_key) AS converted_visits
FROM visits AS v
LEFT JOIN converted AS c
    ON c.date = v.date AND c.experiment_id = v.experiment_id AND c.person_key = v.person_key
GROUP BY v.experiment_id, v.variation_id
