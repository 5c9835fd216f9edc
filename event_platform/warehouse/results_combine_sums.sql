-- Several sets of sums (results_state_sums.sql's columns) of the same experiments added together:
-- closed cohorts carried from the day before, the cohort closing today, the units still open.
-- Input: parts (the sets, UNION ALL BY NAME).
SELECT
    experiment_id, variation_id, metric_name,
    sum(units)::BIGINT AS units, sum(holdback_visitors)::BIGINT AS holdback_visitors,
    sum(excluded_visitors)::BIGINT AS excluded_visitors, sum(units_with_event)::BIGINT AS units_with_event,
    sum(sum_y) AS sum_y, sum(sum_y2) AS sum_y2, sum(sum_d) AS sum_d, sum(sum_d2) AS sum_d2,
    sum(sum_yd) AS sum_yd, sum(sum_x) AS sum_x, sum(sum_x2) AS sum_x2, sum(sum_xy) AS sum_xy,
    sum(sum_h) AS sum_h, sum(sum_hy) AS sum_hy,
    min(first_exposure) AS first_exposure, max(last_exposure) AS last_exposure
FROM parts
GROUP BY experiment_id, variation_id, metric_name
