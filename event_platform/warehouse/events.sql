-- warehouse/events for one day: every source's events in one shape, each row's person resolved
-- through the identity links (a device seen with a user belongs to that user).
-- Inputs: one relation per present source (see events_<source>.sql), identity_links (the lookback).
WITH links AS (
    SELECT reference, arg_min(person_reference, first_seen_at) AS person_reference
    FROM identity_links
    GROUP BY reference
),
unified AS (
{{sources}}
)
SELECT
    u.source,
    u.event_id,
    u.event_type,
    u.occurred_at,
    u.received_at,
    person_key(coalesce(l.person_reference, u.identity_reference)) AS person_key,
    u.device_id,
    u.session_id,
    u.properties,
    u.revenue
FROM unified AS u
LEFT JOIN links AS l ON l.reference = u.identity_reference
