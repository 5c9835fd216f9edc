"""Helpers to put source-shaped Parquet in the lake through the IO manager and run the warehouse on it."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from event_platform.defs.warehouse import checks as warehouse_checks
from event_platform.defs.warehouse import definitions as warehouse_definitions
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.partitions import daily_partitions
from event_platform.sandbox.defs import checks as sandbox_checks
from event_platform.warehouse import models

SOURCE_KEYS = (
    ("amplitude", "events"),
    ("optimizely", "decisions"),
    ("optimizely", "conversions"),
    ("optimizely", "experiments"),
    ("optimizely", "experiment_metrics"),
    ("profile_store", "events"),
    ("tracking", "events"),
)
WAREHOUSE = warehouse_definitions(models.event_sources())
"""The warehouse's definitions as the platform builds them from the registered sources."""
MART_KEYS = {
    dg.AssetKey(["warehouse", "experiment_results"]),
    dg.AssetKey(["warehouse", "experiment_exploration"]),
    dg.AssetKey(["warehouse", "catalog"]),
}
DAILY_WAREHOUSE = [a for a in WAREHOUSE.assets or () if a.key not in MART_KEYS]
MARTS = [a for a in WAREHOUSE.assets or () if a.key in MART_KEYS]
CHECKS = [
    warehouse_checks.units_in_every_variation,
    warehouse_checks.no_sample_ratio_mismatch,
    sandbox_checks.sandbox_planted_truth,
]
DAY_CHECKS = [c for c in WAREHOUSE.asset_checks or () if c not in CHECKS]

SourceDays = Mapping[tuple[str, str], Mapping[str, pa.Table]]
"""(source, table) -> partition key -> the table the source asset returns for that day."""


def source_asset(key: tuple[str, str], days: Mapping[str, pa.Table]) -> dg.AssetsDefinition:
    """A stand-in for a source asset: returns the given table for a day, stored by the real IO manager."""

    @dg.asset(key=list(key), partitions_def=daily_partitions)
    def stand_in(context: dg.AssetExecutionContext) -> pa.Table:
        return days[context.partition_key]

    return stand_in


def platform_assets(sources: SourceDays) -> list[Any]:
    """Stand-ins for the given sources, external specs for the others, and the warehouse."""
    stand_ins: list[Any] = [source_asset(key, days) for key, days in sources.items()]
    absent = [
        dg.AssetSpec(list(key), partitions_def=daily_partitions) for key in SOURCE_KEYS if key not in sources
    ]
    return [
        *stand_ins,
        *absent,
        *DAILY_WAREHOUSE,
        *MARTS,
        *CHECKS,
        *DAY_CHECKS,
    ]


def resources_at(directory: Path, metrics_file: Path | None = None) -> dict[str, Any]:
    lake = LakeResource(root=str(directory / "lake"))
    warehouse = WarehouseResource(
        path=str(directory / "warehouse.duckdb"),
        memory_limit="1GB",
        metrics_file=str(metrics_file) if metrics_file else None,
    )
    return {"lake": lake, "io_manager": ParquetLakeIOManager(lake=lake), "warehouse": warehouse}


def run_platform(
    resources: Mapping[str, Any], sources: SourceDays, days: Sequence[str], *, marts: bool = True
) -> list[dg.ExecuteInProcessResult]:
    """Materialize the sources and the daily warehouse for each day, then (with `marts`) the results and
    the catalog with their checks; returns every run's result (all must succeed)."""
    assets = platform_assets(sources)
    daily_keys = [dg.AssetKey(list(key)) for key in sources] + [a.key for a in DAILY_WAREHOUSE]
    runs = [
        dg.materialize(assets, resources=dict(resources), partition_key=day, selection=daily_keys)
        for day in days
    ]
    if marts:
        final = dg.AssetSelection.assets(*MARTS) | dg.AssetSelection.checks(*CHECKS)
        runs.append(dg.materialize(assets, resources=dict(resources), selection=final))
    assert all(run.success for run in runs)
    return runs


def materialized_metadata(
    result: dg.ExecuteInProcessResult, key: dg.AssetKey, partition: str | None = None
) -> dict[str, Any]:
    """The metadata of `key`'s one materialization in the run (of `partition`, in a range run)."""
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == key and (partition is None or e.partition == partition)
    ]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}
