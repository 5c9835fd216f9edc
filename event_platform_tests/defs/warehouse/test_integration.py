"""End to end on the sandbox: the Optimizely emulator on 127.0.0.1, the real Optimizely assets landing
and typing its export into the lake, then every warehouse asset and check, all through Dagster."""

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from event_platform.defs.optimizely.assets import conversions, decisions
from event_platform.defs.optimizely.resources import OptimizelyResource
from event_platform.defs.warehouse import assets as warehouse_assets
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.partitions import daily_partitions
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sandbox.world import World
from event_platform_tests.defs.warehouse.conftest import CHECKS, DAILY_WAREHOUSE, SOURCE_KEYS, check_results

DAYS = ["2026-11-01", "2026-11-02"]


@pytest.mark.integration
def test_sandbox_export_to_experiment_results(
    world: World, lake_resource: LakeResource, tmp_path: Path
) -> None:
    warehouse_file = tmp_path / "warehouse.duckdb"
    with OptimizelySandbox(world, bucket=f"e3-{uuid.uuid4().hex[:12]}") as sandbox:
        for day in DAYS:
            sandbox.publish_day(dt.date.fromisoformat(day))
        resources: dict[str, Any] = {
            "lake": lake_resource,
            "io_manager": ParquetLakeIOManager(lake=lake_resource),
            "optimizely": OptimizelyResource(
                api_token=sandbox.token,
                auth_url=sandbox.auth_url,
                s3_endpoint_url=sandbox.s3_endpoint_url,
                pseudonym_key="test-pseudonym-key",
            ),
            "warehouse": WarehouseResource(path=str(warehouse_file), memory_limit="1GB"),
        }
        others = [
            dg.AssetSpec(list(key), partitions_def=daily_partitions)
            for key in SOURCE_KEYS
            if key[0] != "optimizely"
        ]
        assets = [decisions, conversions, *others, *DAILY_WAREHOUSE, warehouse_assets.experiment_results,
                  warehouse_assets.publish_catalog, *CHECKS]  # fmt: skip
        daily = [decisions.key, conversions.key, *(asset.key for asset in DAILY_WAREHOUSE)]
        for day in DAYS:
            assert dg.materialize(assets, resources=resources, partition_key=day, selection=daily).success
    marts = dg.AssetSelection.assets(
        warehouse_assets.experiment_results, warehouse_assets.publish_catalog
    ) | dg.AssetSelection.checks(*CHECKS)
    final = dg.materialize(assets, resources=resources, selection=marts)

    assert final.success
    checks = check_results(final)
    assert checks["units_in_every_variation"].passed
    assert checks["sandbox_planted_truth"].passed, checks["sandbox_planted_truth"].metadata["problems"].value
    with duckdb.connect(str(warehouse_file), read_only=True) as connection:
        experiments = connection.execute(
            "SELECT count(DISTINCT experiment_id), count(DISTINCT variation_id) FROM experiment_results"
        ).fetchall()
        units = connection.execute(
            "SELECT experiment_id, sum(units) FROM experiment_results WHERE metric = 'conversion_rate' "
            "AND metric_event = 'purchase' GROUP BY ALL ORDER BY 1"
        ).fetchall()
        exposed = connection.execute(
            "SELECT experiment_id, count(DISTINCT person_key) FROM experiment_exposures "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert experiments == [(3, 7)]
    # Everyone active on either day is one unit of every experiment (no holdbacks in the sandbox).
    active = {p.user_id for day in DAYS for p in world.active_people(dt.date.fromisoformat(day))}
    assert units == exposed
    assert {count for _, count in exposed} == {len(active)}
