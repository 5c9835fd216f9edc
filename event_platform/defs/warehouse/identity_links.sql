-- warehouse/identity_links for one day: each weaker reference (e.g. device:…) seen on a row together
-- with a stronger one (user:…) links to it; the earliest pairing wins.
-- Inputs: the day's rows of every source whose rules name two namespaces (see events_<source>.sql).
WITH seen AS (
{{sources}}
),
pairs AS (
    SELECT
        unnest(identity_references[2:]) AS reference,
        identity_references[1] AS person_reference,
        occurred_at
    FROM seen
    WHERE len(identity_references) > 1
)
SELECT reference, arg_min(person_reference, occurred_at) AS person_reference, min(occurred_at) AS first_seen_at
FROM pairs
WHERE split_part(reference, ':', 1) <> split_part(person_reference, ':', 1)
GROUP BY reference
