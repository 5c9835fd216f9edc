"""Amplitude's Dagster objects, and the resource it registers."""

import dagster as dg

from event_platform.sources.amplitude.defs import assets, checks
from event_platform.sources.amplitude.defs.resources import amplitude_resource


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[assets.raw_export, assets.events],
        asset_checks=[checks.files_match_zip, checks.lines_reconcile, checks.uuid_unique, checks.not_empty],
        resources={"amplitude": amplitude_resource()},
    )
