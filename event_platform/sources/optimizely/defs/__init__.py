"""Optimizely's Dagster objects (E3 and the REST metadata), and the resource it registers."""

import dagster as dg

from event_platform.sources.optimizely.defs import assets, experiment_assets, sensors
from event_platform.sources.optimizely.defs.resources import optimizely_resource


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[assets.decisions, assets.conversions, experiment_assets.experiment_metadata],
        sensors=[sensors.optimizely_e3_sensor],
        resources={"optimizely": optimizely_resource()},
    )
