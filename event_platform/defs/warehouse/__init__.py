"""The warehouse's Dagster objects: the daily models and marts over the registered sources, their
checks, and the resource it registers."""

from collections.abc import Sequence

import dagster as dg

from event_platform.defs.warehouse import assets, checks, day_checks
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.warehouse import catalog
from event_platform.warehouse.models import EventSource


def definitions(feeds: Sequence[EventSource]) -> dg.Definitions:
    """`feeds`: the registered sources' events tables, which `identity_links` and `events` read."""
    return dg.Definitions(
        assets=[
            assets.identity_links_asset(feeds),
            assets.events_asset(feeds),
            assets.experiment_exposures,
            assets.experiment_conversions,
            assets.daily_active_users,
            assets.experiment_units,
            assets.experiment_unit_state,
            assets.experiment_results_daily,
            assets.experiment_results,
            assets.experiment_exploration,
            assets.catalog_asset(catalog.catalog_tables()),
        ],
        asset_checks=[
            *day_checks.source_day_checks(feeds),
            checks.units_in_every_variation,
            checks.no_sample_ratio_mismatch,
        ],
        resources={"warehouse": WarehouseResource()},
    )
