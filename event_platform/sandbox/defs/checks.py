"""The sandbox's own check, registered by the sandbox (`EVENT_PLATFORM_EXTENSIONS`), never by the product:
the results find again what the sandbox's world planted."""

from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetIn,
    AssetKey,
    MetadataValue,
    asset_check,
)

from event_platform.defs.warehouse.checks import UNIT_COLUMNS
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.defs.warehouse.results_checks import RESULTS
from event_platform.lake.io_manager import ALLOW_MISSING_PARTITIONS
from event_platform.sandbox import planted
from event_platform.sandbox.world import World
from event_platform.warehouse.engine import has_rows_source, load_sql

VISIT_RATES_SQL = Path(__file__).parents[1] / "visit_rates.sql"


@asset_check(
    asset=RESULTS,
    description="On the sandbox: per-visit conversion rates contain the world's planted rates (99.9% "
    "intervals), every planted variation has units, and the planted sample-ratio mismatch is flagged. "
    "Passes without comparing when the results hold no sandbox experiment.",
    additional_ins={
        "exposures": AssetIn(
            key=AssetKey(["warehouse", "experiment_exposures"]), metadata={ALLOW_MISSING_PARTITIONS: True}
        ),
        "events": AssetIn(key=AssetKey(["warehouse", "events"]), metadata={ALLOW_MISSING_PARTITIONS: True}),
    },
)
def sandbox_planted_truth(
    context: AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    experiment_results: ds.Dataset,
    exposures: ds.Dataset,
    events: ds.Dataset,
) -> AssetCheckResult:
    world = World()
    planted_ids = [experiment.id for experiment in world.experiments]
    results = experiment_results.to_table(
        columns=UNIT_COLUMNS, filter=pc.field("experiment_id").isin(planted_ids)
    ).to_pylist()
    if not results:
        return AssetCheckResult(passed=True, metadata={"compared": "no sandbox experiment in the results"})
    units: dict[str, dict[str, int]] = defaultdict(dict)
    for row in results:
        units[row["experiment_id"]][row["variation_id"]] = row["units"]
    flagged = {row["experiment_id"] for row in results if row["srm_flagged"]}
    visit_rates: list[dict[str, Any]] = []
    if has_rows_source(exposures) and has_rows_source(events):
        converting = [experiment for experiment in world.experiments if experiment.plants == "conversion"]
        metric_events = pa.table(
            {
                "experiment_id": [experiment.id for experiment in converting],
                "metric_event": [experiment.metric_event for experiment in converting],
            }
        )
        with warehouse.engine() as engine:
            engine.register("exposures", exposures)
            engine.register("events", events)
            engine.register("metric_events", metric_events)
            visit_rates = engine.rows(load_sql(VISIT_RATES_SQL))
    verdict = planted.judge(world, visit_rates, units, flagged, warehouse.srm_alpha)
    context.log.info(
        "sandbox truth: %d comparisons, %d problems", len(verdict.details), len(verdict.problems)
    )
    return AssetCheckResult(
        passed=verdict.passed,
        metadata={
            "problems": MetadataValue.json(verdict.problems),
            "comparisons": MetadataValue.json(verdict.details),
        },
    )
