"""raw_export, events and their checks materialized through Dagster against the loopback emulator."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest
from dagster import AssetCheckEvaluation, DagsterInstance, materialize

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.lake.layout import quarantine_path
from event_platform.sandbox.amplitude import AmplitudeEmulator
from event_platform.sandbox.world import World
from event_platform.sources.amplitude.defs import assets, checks
from event_platform.sources.amplitude.defs.resources import AmplitudeResource
from event_platform.sources.amplitude.schema import EVENT_SCHEMA

pytestmark = pytest.mark.integration

DAYS = (dt.date(2026, 11, 1), dt.date(2026, 11, 2))
DEFINITIONS = [
    assets.raw_export, assets.events,
    checks.files_match_zip, checks.lines_reconcile, checks.uuid_unique, checks.not_empty,
]  # fmt: skip
CHECK_NAMES = {"files_match_zip", "lines_reconcile", "uuid_unique", "not_empty"}


@pytest.fixture(scope="module")
def emulator(world: World) -> Iterator[AmplitudeEmulator]:
    with AmplitudeEmulator(world, events_per_day=3_000, events_per_part=1_000) as running:
        yield running


@pytest.fixture(scope="module")
def faulty_emulator(world: World) -> Iterator[AmplitudeEmulator]:
    with AmplitudeEmulator(
        world, events_per_day=1_500, invalid_json_lines=4, malformed_timestamps=3
    ) as running:
        yield running


@dataclass(frozen=True)
class DayRun:
    checks: list[AssetCheckEvaluation]
    metadata: dict[str, dict[str, Any]]
    """Materialization metadata (plain values) by asset name."""


def run_day(
    emulator: AmplitudeEmulator, lake: LakeResource, day: dt.date, *, expect_passing: bool = True
) -> DayRun:
    secret_key = emulator.environment()["AMPLITUDE_SECRET_KEY"]
    amplitude = AmplitudeResource(
        api_key=emulator.api_key,
        secret_key=secret_key,
        base_url=emulator.url,
        pseudonym_key="test-pseudonym-key",
    )
    instance = DagsterInstance.ephemeral()
    result = materialize(
        DEFINITIONS,
        partition_key=day.isoformat(),
        resources={"amplitude": amplitude, "lake": lake, "io_manager": ParquetLakeIOManager(lake=lake)},
        instance=instance,
    )
    assert result.success
    # Logs, events and metadata of the run: the secret appears nowhere.
    assert secret_key not in "\n".join(str(entry) for entry in instance.all_logs(result.run_id))
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == CHECK_NAMES
    # Each result belongs to the day it checked.
    assert {e.partition for e in evaluations} == {day.isoformat()}
    if expect_passing:
        assert [e.check_name for e in evaluations if not e.passed] == []
    metadata = {
        materialization.asset_key.path[-1]: {k: v.value for k, v in materialization.metadata.items()}
        for materialization in (e.step_materialization_data.materialization
                                for e in result.get_asset_materialization_events())
    }  # fmt: skip
    return DayRun(list(evaluations), metadata)


def stored(lake: Lake, day: dt.date) -> pa.Table:
    return (
        delta.read(lake, "amplitude/events", [day.isoformat()])
        .to_table()
        .drop_columns(["date"])
        .sort_by("uuid")
    )


def test_two_days_land_type_and_reconcile_with_what_the_emulator_served(
    emulator: AmplitudeEmulator, lake_resource: LakeResource
) -> None:
    lake = lake_resource.lake()
    for day in DAYS:
        run = run_day(emulator, lake_resource, day)

        served = emulator.day_summary(day)
        landed, typed = run.metadata["raw_export"], run.metadata["events"]
        assert (landed["lines"], landed["files"], landed["zip_members"]) == (
            served.lines, len(served.members), len(served.members),
        )  # fmt: skip
        assert (typed["dagster/row_count"], typed["duplicates"], typed["quarantined_lines"]) == (
            served.unique_uuids, served.duplicates, 0,
        )  # fmt: skip
        # The emulator counts events it sent days late; a client clock a minute behind at 00:00 is late too.
        assert served.late_events <= typed["late_events"] <= served.late_events + served.lines // 200
        previewed = [column.name for column in typed["preview"].schema.columns]
        assert "ip_address" not in previewed and "uuid" in previewed
        assert len(typed["preview"].records) == 5
        table = stored(lake, day)
        assert table.schema == EVENT_SCHEMA
        assert table.num_rows == served.unique_uuids
        assert len(set(table["uuid"].to_pylist())) == table.num_rows
        # Addresses reach the lake only as pseudonyms (raw included); the derived coordinates not at all.
        addresses = {value for value in table["ip_address"].to_pylist() if value is not None}
        assert addresses and all(value.startswith("pii1:") for value in addresses)
        assert table["location_lat"].null_count == table["location_lng"].null_count == table.num_rows
        record = lake.read_manifest(quarantine_path("amplitude/events", day.isoformat()))
        assert record is not None
        assert (record.metadata["duplicates"], record.metadata["quarantined"]) == (served.duplicates, 0)
        assert record.metadata["raw_lines"] == served.lines


def test_rematerializing_a_day_leaves_it_identical(
    emulator: AmplitudeEmulator, lake_resource: LakeResource
) -> None:
    lake = lake_resource.lake()
    run_day(emulator, lake_resource, DAYS[0])
    first = stored(lake, DAYS[0])

    run_day(emulator, lake_resource, DAYS[0])

    again = stored(lake, DAYS[0])
    assert again.num_rows == first.num_rows == emulator.day_summary(DAYS[0]).unique_uuids
    assert again.equals(first)


def test_a_day_with_malformed_lines_quarantines_them_and_still_reconciles(
    faulty_emulator: AmplitudeEmulator, lake_resource: LakeResource
) -> None:
    lake = lake_resource.lake()
    day = DAYS[1]

    evaluations = run_day(faulty_emulator, lake_resource, day).checks

    served = faulty_emulator.day_summary(day)
    record = lake.read_manifest(quarantine_path("amplitude/events", day.isoformat()))
    assert record is not None
    quarantined = sum(entry.extra["lines"] for entry in record.files)
    assert quarantined >= served.invalid_json_lines + served.malformed_timestamps - 1  # the two may overlap
    assert stored(lake, day).num_rows + record.metadata["duplicates"] + quarantined == served.lines
    reconcile = next(e for e in evaluations if e.check_name == "lines_reconcile")
    assert reconcile.metadata["quarantined"].value == quarantined


def test_a_day_on_the_s3_lake(emulator: AmplitudeEmulator, s3_lake_resource: LakeResource) -> None:
    run_day(emulator, s3_lake_resource, DAYS[0])

    assert stored(s3_lake_resource.lake(), DAYS[0]).num_rows == emulator.day_summary(DAYS[0]).unique_uuids


def test_a_day_amplitude_exports_empty_is_stored_but_fails_its_check_on_that_day(
    emulator: AmplitudeEmulator, lake_resource: LakeResource
) -> None:
    """A project with traffic always exports events: an empty day (the export's 404) is an ERROR."""
    day = dt.date(2026, 11, 3)
    emulator.faults.missing_days.add(day)
    try:
        run = run_day(emulator, lake_resource, day, expect_passing=False)
    finally:
        emulator.faults.missing_days.discard(day)
    assert run.metadata["events"]["dagster/row_count"] == 0
    [empty] = [check for check in run.checks if not check.passed]
    assert (empty.check_name, empty.partition, empty.severity.value) == (
        "not_empty",
        day.isoformat(),
        "ERROR",
    )
    assert "AMPLITUDE_REGION" in (empty.description or "")


def test_typing_a_day_that_never_landed_fails_with_one_sentence_naming_the_fix(
    lake_resource: LakeResource,
) -> None:
    result = materialize(
        [assets.events],
        partition_key=DAYS[0].isoformat(),
        resources={"lake": lake_resource, "io_manager": ParquetLakeIOManager(lake=lake_resource)},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None and error.cause is None
    assert error.cls_name == "Failure"
    assert "FileNotFoundError" not in error.message
    message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert f"No Amplitude export landed for {DAYS[0]}" in message
    assert "materialize amplitude/raw_export for that day first" in message
    assert "\n" not in message
