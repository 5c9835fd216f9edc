"""The E3 sensor: a run request per new or changed date, never two for an unchanged folder."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sources.optimizely.client import E3Client
from event_platform.sources.optimizely.defs.assets import conversions, decisions
from event_platform.sources.optimizely.defs.experiment_assets import experiment_metadata
from event_platform.sources.optimizely.defs.resources import OptimizelyResource
from event_platform.sources.optimizely.defs.sensors import ASSET_KEYS, METADATA_KEYS, build_e3_sensor, plan
from event_platform.sources.optimizely.schema import DECISIONS

DAY = dt.date(2026, 11, 1)
TODAY = dt.datetime.now(dt.UTC).date()
LOOKBACK = (TODAY - DAY).days + 5


def evaluate(sandbox: OptimizelySandbox, sensor: dg.SensorDefinition, cursor: str | None) -> dg.SensorResult:
    resource = OptimizelyResource(
        api_token=sandbox.token, auth_url=sandbox.auth_url, s3_endpoint_url=sandbox.s3_endpoint_url
    )
    context = dg.build_sensor_context(cursor=cursor, resources={"optimizely": resource})
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_fires_for_a_new_date_not_again_unchanged_and_again_when_a_part_changes(
    e3_sandbox: OptimizelySandbox, tmp_path: Path
) -> None:
    sensor = build_e3_sensor(stable_seconds=3600, lookback_days=LOOKBACK)
    e3_sandbox.publish_day(DAY)

    first = evaluate(e3_sandbox, sensor, None)
    again = evaluate(e3_sandbox, sensor, first.cursor)
    key = f"type=decisions/date={DAY}/experiment=9300000001/part-00000-extra.c000.snappy.parquet"
    buffer = io.BytesIO()
    pq.write_table(DECISIONS.empty_table(), buffer)
    e3_sandbox.put_object(key, buffer.getvalue())
    changed = evaluate(e3_sandbox, sensor, again.cursor)
    settled = evaluate(e3_sandbox, sensor, changed.cursor)

    assert [r.partition_key for r in first.run_requests or []] == [DAY.isoformat()]
    assert not again.run_requests
    assert [r.partition_key for r in changed.run_requests or []] == [DAY.isoformat()]
    assert not settled.run_requests
    run_keys = {r.run_key for r in [*(first.run_requests or []), *(changed.run_requests or [])]}
    assert len(run_keys) == 2, "a changed folder is a new run key"

    lake = LakeResource(root=str(tmp_path))
    defs = dg.Definitions(
        assets=[decisions, conversions, experiment_metadata],
        sensors=[sensor],
        resources={
            "lake": lake,
            "io_manager": ParquetLakeIOManager(lake=lake),
            "optimizely": OptimizelyResource(),
        },
    )
    targeted = defs.resolve_sensor_def(sensor.name).asset_selection
    assert targeted is not None
    # The day's experiment metadata is requested with its export.
    assert targeted.resolve(defs.resolve_asset_graph()) == {*ASSET_KEYS, *METADATA_KEYS}


def test_without_success_marker_it_waits_for_the_folder_to_be_stable(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client
) -> None:
    e3_sandbox.publish_day(DAY, success_marker=False)
    now = dt.datetime.now(dt.UTC).timestamp()

    early, cursor = plan(e3_client, {}, now=now, today=TODAY, stable_seconds=600, lookback_days=LOOKBACK)
    still_early, cursor = plan(
        e3_client, cursor, now=now + 300, today=TODAY, stable_seconds=600, lookback_days=LOOKBACK
    )
    stable, cursor = plan(
        e3_client, cursor, now=now + 601, today=TODAY, stable_seconds=600, lookback_days=LOOKBACK
    )
    after, _ = plan(
        e3_client, cursor, now=now + 6000, today=TODAY, stable_seconds=600, lookback_days=LOOKBACK
    )

    assert (early, still_early, stable, after) == ([], [], [DAY.isoformat()], [])


def test_dates_outside_the_lookback_or_the_partitions_are_ignored(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client
) -> None:
    e3_sandbox.publish_day(DAY)
    e3_sandbox.publish_day(TODAY)  # today's partition does not exist until tomorrow

    requested, cursor = plan(e3_client, {}, now=0, today=TODAY, stable_seconds=0, lookback_days=LOOKBACK)
    recent_only, _ = plan(e3_client, {}, now=0, today=TODAY, stable_seconds=0, lookback_days=2)

    assert requested == [DAY.isoformat()] and list(cursor) == [DAY.isoformat()]
    assert recent_only == []
