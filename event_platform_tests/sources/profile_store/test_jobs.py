"""Forgetting a person removes their Profile Store events everywhere, and nothing else."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sandbox.profile_store import ProfileStoreSandbox
from event_platform.sandbox.world import World
from event_platform.sources.profile_store import landing
from event_platform.sources.profile_store.defs.assets import events
from event_platform.sources.profile_store.defs.jobs import forget_profile_store_person
from event_platform.sources.profile_store.defs.resources import ProfileStoreResource
from event_platform.staging import gzip_lines, raw_files
from event_platform_tests.sources.profile_store.test_assets import lake_texts

DAYS = ("2026-11-01", "2026-11-02")
KEY = "test-pseudonym-key"


@pytest.fixture
def sandbox(world: World) -> Iterator[ProfileStoreSandbox]:
    with ProfileStoreSandbox(world, events_per_day=600) as running:
        yield running


def resources(sandbox: ProfileStoreSandbox, lake_resource: LakeResource) -> dict[str, Any]:
    return {
        "profile_store": ProfileStoreResource(
            base_url=sandbox.url, api_key=sandbox.api_key, pseudonym_key=KEY
        ),
        "lake": lake_resource,
        "io_manager": ParquetLakeIOManager(lake=lake_resource),
    }


def land(sandbox: ProfileStoreSandbox, lake_resource: LakeResource, day: str) -> bool:
    return dg.materialize([events], partition_key=day, resources=resources(sandbox, lake_resource)).success


def typed_rows(lake: Lake, days: tuple[str, ...] = DAYS) -> list[dict[str, Any]]:
    rows = delta.read(lake, landing.TABLE, days).to_table().drop_columns(["date"]).to_pylist()
    return rows


def raw_events(lake: Lake) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for day in DAYS
        for line in gzip_lines(lake, raw_files(lake, landing.SOURCE_NAME, day))
    ]


def plant_derived_data(lake: Lake, warehouse: Path, rows: list[dict[str, Any]]) -> None:
    """What the warehouse keeps of Profile Store events: a derived lake table and a base table."""
    derived = pa.table(
        {
            "event_id": [row["event_key"] for row in rows],
            "device_id": [row["device_id"] for row in rows],
        }
    )
    delta.write(lake, "warehouse/events", derived.to_reader(), partition=DAYS[0])
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("CREATE TABLE people_marts (person_key VARCHAR, events INTEGER)")
        keys = sorted({row["user_email_key"] for row in rows})
        connection.executemany("INSERT INTO people_marts VALUES (?, 1)", [[key] for key in keys])


@pytest.mark.integration
def test_forgetting_removes_the_person_everywhere_and_nothing_else(
    sandbox: ProfileStoreSandbox, lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    for day in DAYS:
        assert land(sandbox, lake_resource, day)
    # A re-run leaves the replaced version of the day in the lake for its readers: it holds them too.
    assert land(sandbox, lake_resource, DAYS[0])
    before = typed_rows(lake)
    warehouse = tmp_path / "warehouse.duckdb"
    plant_derived_data(lake, warehouse, before)

    email = sandbox.events_on(dt.date(2026, 11, 1))[0]["User"]["Email"]
    email_key = Pseudonymiser(KEY).email(email)
    # A partition whose current version no longer holds them, but whose replaced one, kept, does.
    for person_key in (email_key, "someone-else"):
        delta.write(
            lake,
            "warehouse/experiment_exposures",
            pa.table({"person_key": [person_key]}).to_reader(),
            partition=DAYS[0],
        )
    theirs = [row for row in before if row["user_email_key"] == email_key]
    others = [row for row in before if row["user_email_key"] != email_key]
    assert theirs and others

    untypable = [
        json.dumps({"EventTime": "broken", "User": {"Email": email_key}}).encode(),
        json.dumps({"EventTime": "broken", "User": {"Email": others[0]["user_email_key"]}}).encode(),
    ]
    with lake.write_partition(quarantine_path(landing.TABLE, DAYS[1])) as quarantine:
        landing.write_lines(quarantine.open, landing.QUARANTINE_FILE, untypable, lines=len(untypable))
        quarantine.metadata["lines"] = len(untypable)

    result = forget_profile_store_person.execute_in_process(
        run_config={
            "ops": {
                "forget_person": {
                    "config": {
                        "email": f"  {email.upper()} ",
                        "warehouse_path": str(warehouse),
                    }
                }
            }
        },
        resources=resources(sandbox, lake_resource),
    )
    assert result.success

    # The vendor: exactly their events with a TrackId were deleted.
    assert sandbox.deleted == {(row["scope"], row["track_id"]) for row in theirs if row["track_id"]}
    for day in DAYS:
        assert all(e["User"]["Email"] != email for e in sandbox.events_on(dt.date.fromisoformat(day)))
    # The lake: typed rows and raw pages hold everyone else, unchanged, and nothing of theirs.
    by_key = lambda row: row["event_key"]  # noqa: E731 - a sort key, named for the line below
    assert sorted(typed_rows(lake), key=by_key) == sorted(others, key=by_key)
    assert sorted(e["TrackId"] for e in raw_events(lake)) == sorted(r["track_id"] or "" for r in others)
    for day in DAYS:
        manifest = lake.read_manifest(raw_path(landing.SOURCE_NAME, day))
        assert manifest is not None
        rows = delta.read(lake, landing.TABLE, [day]).count_rows()
        assert manifest.metadata[landing.TOTAL_REPORTED] == rows
    derived = delta.read(lake, "warehouse/events").to_table()
    assert sorted(derived.column("event_id").to_pylist()) == sorted(row["event_key"] for row in others)
    quarantine = quarantine_path(landing.TABLE, DAYS[1])
    quarantined = list(gzip_lines(lake, lake.current_files(quarantine)))
    assert quarantined == untypable[1:]
    assert (lake.read_manifest(quarantine) or pytest.fail("no quarantine")).metadata["lines"] == 1
    # No file anywhere in the lake, current or kept for readers, data or Delta log, holds their pseudonym.
    assert not [path for path, text in lake_texts(lake) if email_key in text]
    assert not [path for path, text in lake_texts(lake) if any(r["event_key"] in text for r in theirs)]
    # The tables still read, at a version after the erasure, and the one without them was not rewritten.
    exposures = delta.open_table(lake, "warehouse/experiment_exposures")
    assert exposures is not None and exposures.history()[-1]["operation"] != "CREATE TABLE"
    assert delta.read(lake, "warehouse/experiment_exposures").to_table()["person_key"].to_pylist() == [
        "someone-else"
    ]
    # The warehouse: their row gone from the base table, the catalog's views re-pointed.
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        keys = {key for (key,) in connection.execute("SELECT person_key FROM people_marts").fetchall()}
        assert email_key not in keys and keys == {r["user_email_key"] for r in others}
        (left,) = connection.execute(
            "SELECT count(*) FROM profile_store_events WHERE user_email_key = ?", [email_key]
        ).fetchone() or (None,)
        assert left == 0

    # The report counts per place and never names the e-mail address.
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["events_found"].value == len(theirs)
    assert metadata["vendor_deleted"].value == len(sandbox.deleted)
    removed = metadata["table_rows_removed"].value
    # profile_store/events and the derived table; the stale exposures only in a replaced version.
    assert removed == {landing.TABLE: len(theirs), "warehouse/events": len(theirs)}
    assert metadata["warehouse_rows_removed"].value == {"main.people_marts": 1}
    for event in result.all_events:
        text = (event.message or "") + json.dumps(
            {k: str(v.value) for k, v in (getattr(event.event_specific_data, "metadata", None) or {}).items()}
        )
        assert email.lower() not in text.lower()


@pytest.mark.integration
def test_forgetting_a_device_spares_everyone_else(
    sandbox: ProfileStoreSandbox, lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    assert land(sandbox, lake_resource, DAYS[0])
    before = typed_rows(lake, DAYS[:1])
    device = before[0]["device_id"]
    result = forget_profile_store_person.execute_in_process(
        run_config={
            "ops": {
                "forget_person": {
                    "config": {
                        "device_id": device,
                        "warehouse_path": str(tmp_path / "absent.duckdb"),
                    }
                }
            }
        },
        resources=resources(sandbox, lake_resource),
    )
    assert result.success
    remaining = delta.read(lake, landing.TABLE, DAYS[:1]).to_table()
    assert device not in remaining.column("device_id").to_pylist()
    assert remaining.num_rows == sum(row["device_id"] != device for row in before)
    assert not (tmp_path / "absent.duckdb").exists()


def test_the_person_must_be_named_once(sandbox: ProfileStoreSandbox, lake_resource: LakeResource) -> None:
    result = forget_profile_store_person.execute_in_process(
        run_config={"ops": {"forget_person": {"config": {"email": "a@example.org", "device_id": "D"}}}},
        resources=resources(sandbox, lake_resource),
        raise_on_error=False,
    )
    assert not result.success
