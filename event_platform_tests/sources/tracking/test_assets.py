import datetime as dt
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import DagsterInstance, materialize
from dagster._core.execution.execution_result import ExecutionResult

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.lake.layout import quarantine_path
from event_platform.sandbox.tracking import TrackingSandbox
from event_platform.sandbox.world import World
from event_platform.sources.tracking import landed
from event_platform.sources.tracking.defs.assets import events
from event_platform.sources.tracking.defs.checks import (
    compare_rows_with_landing,
    no_personal_data,
    not_empty,
    rows_match_landed_events,
)
from event_platform.sources.tracking.landed import EVENTS_SCHEMA, TABLE
from event_platform_tests.conftest import table_counts, table_records

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 11, 1)
KEY = DAY.isoformat()
CHECKS = [rows_match_landed_events, no_personal_data, not_empty]


@pytest.fixture
def sandbox_day(world: World, lake_resource: LakeResource, tmp_path: Path) -> int:
    with TrackingSandbox(world, lake_resource.lake(), tmp_path / "spool") as sandbox:
        return sandbox.send_day(DAY, events_per_person=4)


def run(lake_resource: LakeResource) -> ExecutionResult:
    """The asset and its checks, materialized as Dagster runs them (the checks read the run's records)."""
    return materialize(
        [events, *CHECKS],
        partition_key=KEY,
        instance=DagsterInstance.ephemeral(),
        resources={"lake": lake_resource, "io_manager": ParquetLakeIOManager(lake=lake_resource)},
        raise_on_error=False,
    )


def metadata(result: ExecutionResult) -> dict[str, object]:
    [materialization] = result.asset_materializations_for_node("tracking__events")
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def checks(result: ExecutionResult) -> dict[str, tuple[bool, dict[str, object]]]:
    return {
        evaluation.check_name: (evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()})
        for evaluation in result.get_asset_check_evaluations()
    }


def land_directly(lake: Lake, lines: list[bytes]) -> None:
    """What a buggy or older collector might have landed: lines that bypassed validation."""
    data = gzip.compress(b"\n".join(lines) + b"\n")
    landed.commit_events(lake, KEY, data, lines=len(lines), first_received="", last_received="")


def test_a_sandbox_day_materializes_typed_with_passing_checks(
    sandbox_day: int, lake_resource: LakeResource
) -> None:
    result = run(lake_resource)
    assert result.success
    described = metadata(result)
    assert described["landed_events"] == described["dagster/row_count"] == sandbox_day
    assert described["duplicates"] == described["quarantined"] == 0
    assert dt.datetime.fromtimestamp(described["first_event_time"], dt.UTC).date() == DAY  # type: ignore[arg-type]
    preview = table_records(described["preview"])
    assert len(preview) == 5 and list(preview[0])[:2] == ["time", "event_type"]
    assert sum(table_counts(described["events_per_type"]).values()) == sandbox_day  # type: ignore[arg-type]
    assert {name: passed for name, (passed, _) in checks(result).items()} == {
        "rows_match_landed_events": True,
        "no_personal_data": True,
        "not_empty": True,
    }
    assert {evaluation.partition for evaluation in result.get_asset_check_evaluations()} == {KEY}
    lake = lake_resource.lake()
    stored = delta.read(lake, TABLE, [KEY]).to_table().drop_columns(["date"])
    assert stored.schema.equals(EVENTS_SCHEMA)
    assert stored.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert stored.num_rows == len(set(stored["uuid"].to_pylist())) == sandbox_day
    json.loads(stored["event_data"][0].as_py())


def test_duplicates_are_removed_and_untypable_lines_quarantined(
    sandbox_day: int, lake_resource: LakeResource
) -> None:
    lake = lake_resource.lake()
    first_file = landed.landed_files(lake, KEY)[0]
    resent = gzip.decompress(lake.read_bytes(first_file)).splitlines()[0]
    without_time = b'{"uuid": "x", "event_type": "t", "anon_username": "a"}'
    land_directly(lake, [resent, b'{"uuid": "half', without_time])
    result = run(lake_resource)
    assert result.success
    described = metadata(result)
    assert (described["dagster/row_count"], described["duplicates"], described["quarantined"]) == (
        sandbox_day,
        1,
        2,
    )
    assert described["landed_events"] == sandbox_day + 3
    assert checks(result)["rows_match_landed_events"][0] is True
    quarantined = lake.current_files(quarantine_path(TABLE, KEY))
    assert gzip.decompress(lake.read_bytes(quarantined[0])).splitlines()[0] == b'{"uuid": "half'


def test_personal_data_that_slipped_into_the_lake_fails_the_check(
    sandbox_day: int, lake_resource: LakeResource
) -> None:
    leaked = {
        "uuid": "0f0e0d0c-0b0a-4909-8807-060504030201",
        "event_type": "kinesinlms.course.forum.post",
        "time": f"{KEY}T10:00:00.000000+00:00",
        "received_at": f"{KEY}T10:00:01.000000+00:00",
        "anon_username": "learner-000001",
        "event_data": {"body": "mail me: grace.hopper@example.org"},
    }
    land_directly(lake_resource.lake(), [json.dumps(leaked).encode()])
    result = run(lake_resource)
    passed, details = checks(result)["no_personal_data"]
    assert passed is False
    assert details == {"rows_with_personal_data": 1, "sample_uuids": leaked["uuid"]}
    assert "grace" not in json.dumps(details)


def test_the_row_check_notices_events_landed_after_the_materialization(
    sandbox_day: int, lake_resource: LakeResource
) -> None:
    assert run(lake_resource).success
    late = {
        "uuid": "1f0e0d0c-0b0a-4909-8807-060504030201",
        "event_type": "kinesinlms.core.user.login",
        "time": f"{KEY}T23:59:59.000000+00:00",
        "received_at": f"{KEY}T23:59:59.500000+00:00",
        "anon_username": "learner-000001",
        "event_data": {},
    }
    land_directly(lake_resource.lake(), [json.dumps(late).encode()])
    result = compare_rows_with_landing(lake_resource.lake(), KEY, duplicates=0)
    assert result.passed is False
    assert result.metadata["expected_rows"].value == sandbox_day + 1
    assert result.metadata["rows"].value == sandbox_day
    assert "run it again" in str(result.metadata["hint"].value)


def test_the_same_code_lands_and_types_a_day_on_s3(
    world: World, s3_lake_resource: LakeResource, tmp_path: Path
) -> None:
    with TrackingSandbox(world, s3_lake_resource.lake(), tmp_path / "spool") as sandbox:
        sent = sandbox.send_day(DAY, events_per_person=2)
    result = run(s3_lake_resource)
    assert result.success
    assert metadata(result)["dagster/row_count"] == sent
    assert all(passed for passed, _ in checks(result).values())
    assert str(metadata(result)["uri"]).startswith("s3://")


def test_a_day_without_tracking_is_stored_empty_and_its_check_warns_on_that_day(
    lake_resource: LakeResource,
) -> None:
    """The LMS can have a quiet day, so an empty one is no error; but never a good-looking day either."""
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [events, *CHECKS],
        partition_key=KEY,
        instance=instance,
        resources={"lake": lake_resource, "io_manager": ParquetLakeIOManager(lake=lake_resource)},
    )
    assert result.success
    assert metadata(result)["dagster/row_count"] == 0
    [record] = instance.event_log_storage.get_asset_check_execution_history(not_empty.check_key, limit=5)
    assert (record.partition, record.status.value) == (KEY, "FAILED")
    evaluation = record.evaluation
    assert evaluation is not None and evaluation.severity.value == "WARN"
    assert "collector" in (evaluation.description or "")
