-- Optimizely conversions (E3 type=events) in the unified event shape. Revenue arrives in cents.
SELECT
    'optimizely' AS source,
    lower(uuid) AS event_id,
    event_name AS event_type,
    "timestamp" AS occurred_at,
    process_timestamp AS received_at,
    CAST(NULL AS VARCHAR) AS device_id,
    session_id,
    to_json({
        'entity_id': entity_id, 'event_type': event_type, 'value': "value", 'quantity': quantity,
        'tags': tags, 'experiments': experiments, 'attributes': attributes
    })::VARCHAR AS properties,
    revenue / 100.0 AS revenue,
    {{identity_reference}} AS identity_reference
FROM optimizely_conversions
