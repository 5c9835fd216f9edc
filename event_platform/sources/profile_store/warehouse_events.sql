-- Profile Store track events in the unified event shape. `event_key` is the source's dedupe key
-- (TrackId, else a hash of the event); the pseudonymised user and address keys stay in the source table.
SELECT
    'profile_store' AS source,
    event_key AS event_id,
    event_type,
    event_time AS occurred_at,
    CAST(NULL AS TIMESTAMPTZ) AS received_at,
    device_id,
    session_id,
    to_json({
        'track_id': track_id, 'value': "value", 'scope': scope, 'country_code': country_code,
        'page_uri': page_uri, 'page_title': page_title, 'city': city,
        'user_info': user_info::JSON, 'payload': payload::JSON
    })::VARCHAR AS properties,
    CAST(NULL AS DOUBLE) AS revenue,
    {{identity_reference}} AS identity_reference
FROM profile_store_events
