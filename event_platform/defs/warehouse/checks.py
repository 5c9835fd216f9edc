"""Checks on `warehouse/experiment_results`: every variation has units, sample-ratio mismatches are
surfaced with what the experiment's owners wrote about it, experiments without Optimizely metadata and
metrics counting events nobody has are named, and on the sandbox the planted truth is found again.

Those two are evaluated by the asset itself from what it computed (`results_checks.py`, which imports
nothing of the sandbox); these read the stored table."""

from collections import defaultdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    AssetKey,
    MetadataValue,
    asset_check,
)

from event_platform.defs.warehouse import planted
from event_platform.defs.warehouse.engine import has_rows_source, load_sql
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.defs.warehouse.results_checks import RESULTS
from event_platform.defs.warehouse.summary import p_phrase
from event_platform.lake.io_manager import ALLOW_MISSING_PARTITIONS
from event_platform.sandbox.world import World

UNIT_COLUMNS = [
    "experiment_id",
    "experiment_name",
    "experiment_description",
    "variation_id",
    "variation_name",
    "planned_weight",
    "units",
    "srm_flagged",
    "srm_p_value",
]


def _units_by_variation(results: ds.Dataset) -> list[dict[str, Any]]:
    """One row per experiment and variation (the results repeat them for every metric)."""
    table = results.to_table(columns=UNIT_COLUMNS)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for row in table.to_pylist():
        seen.setdefault((row["experiment_id"], row["variation_id"]), row)
    return list(seen.values())


@asset_check(asset=RESULTS, description="Every variation of every experiment has units to compare.")
def units_in_every_variation(experiment_results: ds.Dataset) -> AssetCheckResult:
    rows = _units_by_variation(experiment_results)
    empty = [f"{row['experiment_id']}/{row['variation_id']}" for row in rows if row["units"] == 0]
    return AssetCheckResult(
        passed=not empty,
        metadata={"variations": len(rows), "variations_without_units": MetadataValue.json(empty)},
    )


@asset_check(
    asset=RESULTS,
    description="No experiment's allocation departs from its configured split (chi-square, p < srm_alpha): "
    "a mismatch means assignment or logging is broken and the experiment's lifts cannot be trusted.",
)
def no_sample_ratio_mismatch(experiment_results: ds.Dataset) -> AssetCheckResult:
    rows = _units_by_variation(experiment_results)
    flagged: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["srm_flagged"]:
            entry = flagged.setdefault(
                row["experiment_name"] or row["experiment_id"],
                {
                    "experiment_id": row["experiment_id"],
                    "description": row["experiment_description"],
                    "p_value": row["srm_p_value"],
                    "units": {},
                    "planned": {},
                },
            )
            variation = row["variation_name"] or row["variation_id"]
            entry["units"][variation] = row["units"]
            entry["planned"][variation] = row["planned_weight"]
    # What the experiment's owners wrote travels with the finding (a planted fault says so there).
    described = [
        f"{name} ({p_phrase(entry['p_value'])})"
        + (f": {entry['description']}" if entry["description"] else "")
        for name, entry in flagged.items()
    ]
    return AssetCheckResult(
        passed=not flagged,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(described) or None,
        metadata={"flagged_experiments": MetadataValue.json(flagged)},
    )


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
            visit_rates = engine.rows(load_sql("sandbox_visit_rates"))
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
