-- Amplitude events in the unified event shape. `uuid` is the export's primary key; `session_id` -1
-- means no session; revenue is the `$revenue` event property Amplitude's revenue tracking writes.
SELECT
    'amplitude' AS source,
    uuid AS event_id,
    event_type,
    event_time AS occurred_at,
    server_received_time AS received_at,
    device_id,
    CASE WHEN session_id = -1 THEN NULL ELSE CAST(session_id AS VARCHAR) END AS session_id,
    coalesce(event_properties, '{}') AS properties,
    TRY_CAST(
        coalesce(event_properties ->> '$."$revenue"', event_properties ->> '$.revenue') AS DOUBLE
    ) AS revenue,
    {{identity_reference}} AS identity_reference
FROM amplitude_events
