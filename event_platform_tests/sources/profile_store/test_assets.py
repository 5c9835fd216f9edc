"""`profile_store/events` and its checks, materialized through Dagster against the sandbox."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.pseudonymise import Pseudonymiser, find_personal_data
from event_platform.sandbox.profile_store import Burst, ProfileStoreSandbox
from event_platform.sandbox.world import World
from event_platform.settings import MissingSettingsError
from event_platform.sources.profile_store.client import parse_event_time
from event_platform.sources.profile_store.defs import checks
from event_platform.sources.profile_store.defs.assets import events
from event_platform.sources.profile_store.defs.resources import ProfileStoreResource, profile_store_resource

DAY = "2026-11-01"
PSEUDONYM_KEY = "test-pseudonym-key"
CHECKS = [
    checks.rows_match_reported_total,
    checks.no_clear_personal_data,
    checks.event_keys_unique,
    checks.not_empty,
]


@pytest.fixture
def sandbox(world: World) -> Iterator[ProfileStoreSandbox]:
    burst = Burst(dt.date.fromisoformat(DAY), hour=9, count=9_500, tied=3_000)
    with ProfileStoreSandbox(world, events_per_day=1_000, bursts=(burst,)) as running:
        yield running


def materialize(sandbox: ProfileStoreSandbox, lake_resource: LakeResource) -> dg.ExecuteInProcessResult:
    resource = ProfileStoreResource(
        base_url=sandbox.url, api_key=sandbox.api_key, pseudonym_key=PSEUDONYM_KEY
    )
    return dg.materialize(
        [events, *CHECKS],
        partition_key=DAY,
        resources={
            "profile_store": resource,
            "lake": lake_resource,
            "io_manager": ParquetLakeIOManager(lake=lake_resource),
        },
    )


def lake_texts(lake: Lake) -> Iterator[tuple[str, str]]:
    """(path, text) of every file in the lake, decompressed: gzip pages, Parquet string columns, JSON."""
    for path in lake.list_files(""):
        data = lake.read_bytes(path)
        if path.endswith(".gz"):
            yield path, gzip.decompress(data).decode()
        elif path.endswith(".parquet"):
            yield path, json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str)
        else:
            yield path, data.decode()


@pytest.mark.integration
def test_events_land_pseudonymised_complete_and_checked(
    sandbox: ProfileStoreSandbox, lake_resource: LakeResource, world: World
) -> None:
    result = materialize(sandbox, lake_resource)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {name: e.passed for name, e in evaluations.items()} == {
        "rows_match_reported_total": True,
        "no_clear_personal_data": True,
        "event_keys_unique": True,
        "not_empty": True,
    }
    assert {e.partition for e in evaluations.values()} == {DAY}
    metadata = result.asset_materializations_for_node("profile_store__events")[0].metadata
    assert metadata["dagster/row_count"].value == metadata["total_reported"].value == 10_500
    assert "rows" not in metadata, "the row count is the IO manager's dagster/row_count, once"
    assert metadata["windows_split"].value >= 1
    assert metadata["requests"].value >= 11
    listed = [r for r in sandbox.requests if r.method == "GET"]
    assert max(r.skip_plus_top for r in listed) < 10_000

    lake = lake_resource.lake()
    table = delta.read(lake, "profile_store/events", [DAY]).to_table()
    assert str(table.schema.field("event_time").type) == "timestamp[us, tz=UTC]"
    expected = sandbox.events_on(dt.date.fromisoformat(DAY))
    ticks = table.column("event_time_ticks").to_pylist()
    assert sorted(ticks) == sorted(parse_event_time(e["EventTime"]) for e in expected)
    micros = table.column("event_time").cast(pa.int64()).to_pylist()
    assert micros == [tick // 10 for tick in ticks]  # the 7th digit lives on in event_time_ticks
    names = {person.name for person in world.people}  # e-mails and addresses: find_personal_data
    for path, text in lake_texts(lake):
        assert not list(find_personal_data(text)), path
        assert not any(name in text for name in names), path

    # Stable: the key computed anew from the address (any casing) is the one the run stored.
    person = world.person_by_email(expected[0]["User"]["Email"])
    assert person is not None
    stored_keys = table.column("user_email_key").to_pylist()
    assert Pseudonymiser(PSEUDONYM_KEY).email(person.email.upper()) in stored_keys


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROFILE_STORE_BASE_URL", "PROFILE_STORE_API_KEY", "EVENT_PLATFORM_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    resource = profile_store_resource()
    with pytest.raises(MissingSettingsError, match="PROFILE_STORE_BASE_URL, PROFILE_STORE_API_KEY"):
        resource.client()
    with pytest.raises(MissingSettingsError, match="EVENT_PLATFORM_PSEUDONYM_KEY"):
        resource.pseudonymiser()


def test_resource_reads_the_environment_and_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILE_STORE_BASE_URL", "https://profiles.example")
    monkeypatch.setenv("PROFILE_STORE_API_KEY", "api-secret-1")
    monkeypatch.setenv("EVENT_PLATFORM_PSEUDONYM_KEY", "pseudonym-secret-1")
    monkeypatch.setenv("PROFILE_STORE_PAGE_SIZE", "500")
    monkeypatch.setenv("PROFILE_STORE_TIME_SUFFIX_Z", "true")
    resource = profile_store_resource()
    assert "api-secret-1" not in repr(resource) and "pseudonym-secret-1" not in repr(resource)
    resolved = ProfileStoreResource(api_key="api-secret-1", pseudonym_key="pseudonym-secret-1")
    assert "secret-1" not in repr(resolved) and "<hidden>" in repr(resolved)
    client = resource.client()
    assert client.base_url == "https://profiles.example"
    assert (client.page_size, client.time_suffix_z) == (500, True)
    assert "api-secret-1" not in repr(client)
    # Outside a run the key is read from the variable, never taken to be the variable's name.
    expected = Pseudonymiser("pseudonym-secret-1").email("a@example.org")
    assert resource.pseudonymiser().email("a@example.org") == expected
