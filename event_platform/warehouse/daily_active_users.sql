-- warehouse/daily_active_users for one day: distinct people per source, and across all sources.
-- Input: events (warehouse/events of the day).
SELECT source, count(DISTINCT person_key) AS active_users, count(*) AS events
FROM events
WHERE person_key IS NOT NULL
GROUP BY source
UNION ALL
SELECT 'all' AS source, count(DISTINCT person_key) AS active_users, count(*) AS events
FROM events
WHERE person_key IS NOT NULL
