-- warehouse/identity_links for one day: each weaker reference (e.g. device:…) seen on a row together
-- with a stronger one (user:…) links to it; the earliest pairing wins.
-- Input: the (reference, person_reference, occurred_at) pairs of every source whose rules name two
-- namespaces (built from the rules by identity.py).
WITH pairs AS (
{{pairs}}
)
SELECT reference, arg_min(person_reference, occurred_at) AS person_reference, min(occurred_at) AS first_seen_at
FROM pairs
GROUP BY reference
