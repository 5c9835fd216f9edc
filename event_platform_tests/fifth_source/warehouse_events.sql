-- The second LMS's events in the unified event shape.
SELECT
    'lms' AS source,
    event_id,
    event_type,
    occurred_at,
    CAST(NULL AS TIMESTAMPTZ) AS received_at,
    CAST(NULL AS VARCHAR) AS device_id,
    CAST(NULL AS VARCHAR) AS session_id,
    to_json({'course': course})::VARCHAR AS properties,
    CAST(NULL AS DOUBLE) AS revenue,
    {{identity_reference}} AS identity_reference
FROM lms_events
