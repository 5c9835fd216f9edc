"""First-party tracking's Dagster objects, and the resource it registers."""

import dagster as dg

from event_platform.sources.tracking.defs import assets, checks, sensors
from event_platform.sources.tracking.defs.resources import tracking_resource


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[assets.events],
        asset_checks=[checks.rows_match_landed_events, checks.no_personal_data, checks.not_empty],
        sensors=[sensors.tracking_landed_files],
        resources={"tracking": tracking_resource()},
    )
