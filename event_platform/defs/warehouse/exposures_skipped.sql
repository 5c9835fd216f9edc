-- Decisions the exposures cannot use (no experiment, variation, time or visitor), counted for metadata.
SELECT count(*) AS skipped
FROM decisions
WHERE experiment_id IS NULL OR variation_id IS NULL OR "timestamp" IS NULL
    OR len({{identity_references}}) = 0
