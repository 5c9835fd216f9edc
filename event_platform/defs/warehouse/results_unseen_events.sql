-- The events the defined metrics count that no exposed unit ever had: a typo in a name, or an event no
-- source sends. Inputs: metric_parts (experiment_catalog.METRIC_PARTS), conversions (every partition).
SELECT DISTINCT m.experiment_id, m.metric_index, m.source, m.event
FROM metric_parts AS m
WHERE m.event IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM conversions AS c WHERE c.source = m.source AND c.event_name = m.event
    )
