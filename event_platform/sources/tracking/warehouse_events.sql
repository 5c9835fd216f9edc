-- First-party tracking events in the unified event shape; the course context joins event_data.
SELECT
    'tracking' AS source,
    uuid AS event_id,
    event_type,
    "time" AS occurred_at,
    received_at,
    CAST(NULL AS VARCHAR) AS device_id,
    CAST(NULL AS VARCHAR) AS session_id,
    json_merge_patch(
        to_json({
            'course_slug': course_slug, 'course_run': course_run, 'unit_node_slug': unit_node_slug,
            'course_unit_id': course_unit_id, 'course_unit_slug': course_unit_slug,
            'block_uuid': block_uuid, 'page_url': page_url
        }),
        event_data::JSON
    )::VARCHAR AS properties,
    CAST(NULL AS DOUBLE) AS revenue,
    {{identity_reference}} AS identity_reference
FROM tracking_events
