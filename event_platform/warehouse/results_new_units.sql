-- warehouse/experiment_units for day D: the people first exposed to an experiment on day D, i.e. in no
-- earlier day's partition, with the variation of that first decision. Each unit is in exactly one day,
-- so the day's cost is its own exposures plus a scan of the earlier units' two key columns.
-- Inputs: exposures (experiment_exposures of day D), earlier_units (this table's days before D).
SELECT e.experiment_id, e.person_key, e.variation_id, e.is_holdback, e.first_exposed_at
FROM exposures AS e
ANTI JOIN earlier_units AS u ON u.experiment_id = e.experiment_id AND u.person_key = e.person_key
