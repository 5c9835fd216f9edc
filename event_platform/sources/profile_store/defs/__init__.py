"""The Profile Store's Dagster objects, and the resource it registers."""

import dagster as dg

from event_platform.sources.profile_store.defs import assets, checks, jobs
from event_platform.sources.profile_store.defs.resources import profile_store_resource


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[assets.events],
        asset_checks=[
            checks.rows_match_reported_total,
            checks.no_clear_personal_data,
            checks.event_keys_unique,
            checks.not_empty,
        ],
        jobs=[jobs.forget_profile_store_person],
        resources={"profile_store": profile_store_resource()},
    )
