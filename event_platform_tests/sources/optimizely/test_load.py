"""Landing and typing E3 dates: the real samples without loss, duplicates, corrupt parts, schema drift."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sources.optimizely.client import E3Client
from event_platform.sources.optimizely.load import (
    CorruptPartError,
    E3NotReadyError,
    SchemaMismatchError,
    land_day,
    quarantine_dir,
    raw_dir,
    type_day,
)
from event_platform.sources.optimizely.schema import CONVERSIONS, DECISIONS, E3_TYPES, SOURCE_FILE_COLUMN
from event_platform_tests.sources.optimizely.conftest import SAMPLE_DAY, SPARK_EXAMPLE_DAY

DAY = dt.date(2026, 11, 1)
PSEUDONYMISER = Pseudonymiser("test-pseudonym-key")
SAMPLE_EVENT_ROWS = {"add_to_cart": 2264, "detail_page_view": 14198, "homepage_view": 19922, "purchase": 2264}


@pytest.fixture
def lake(lake_resource: LakeResource) -> Lake:
    return lake_resource.lake()


def parquet_bytes(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    return buffer.getvalue()


def decision(uuid: str, second: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in DECISIONS.names}
    row.update(
        uuid=uuid,
        timestamp=dt.datetime(2026, 11, 1, 12, 0, second, tzinfo=dt.UTC),
        process_timestamp=dt.datetime(2026, 11, 1, 12, 1, second, tzinfo=dt.UTC),
        visitor_id="learner-000001",
        experiment_id="42",
        variation_id="7",
    )
    row.update(overrides)
    return row


@pytest.mark.parametrize(
    ("type_name", "schema", "rows_by_folder"),
    [
        ("decisions", DECISIONS, {"18786493712": 10_000}),
        ("events", CONVERSIONS, SAMPLE_EVENT_ROWS),
    ],
)
def test_the_real_samples_land_byte_identical_and_type_without_loss(
    e3_client: E3Client,
    lake: Lake,
    samples_on_s3: dict[str, Path],
    type_name: str,
    schema: pa.Schema,
    rows_by_folder: dict[str, int],
) -> None:
    e3 = E3_TYPES[type_name]

    landing = land_day(e3_client, lake, e3, SAMPLE_DAY, PSEUDONYMISER)
    typed = type_day(lake, landing)
    table = typed.reader.read_all()

    assert landing.listing.has_success == (type_name == "events"), "the sample has _SUCCESS for events only"
    assert len(landing.parts) == len(rows_by_folder)
    for part in landing.parts:
        sample = samples_on_s3[f"type={type_name}/date={SAMPLE_DAY}/{part.name}"]
        stored, vendor = pq.read_table(lake.open_input_file(part.lake_path)), pq.read_table(sample)
        # The vendor's rows and columns, but for the visitor's address, hashed as every source's are.
        assert stored.drop_columns(["user_ip"]).equals(vendor.drop_columns(["user_ip"]))
        assert stored["user_ip"].to_pylist() == [
            None if ip is None else PSEUDONYMISER.ip_address(ip) for ip in vendor["user_ip"].to_pylist()
        ]
        assert part.bytes == sample.stat().st_size
    assert landing.part_rows == table.num_rows == sum(rows_by_folder.values())
    assert typed.stats.duplicates == 0
    assert typed.stats.rows_by_folder == rows_by_folder
    assert table.schema.names == [*schema.names, SOURCE_FILE_COLUMN]
    assert len(schema) == (17 if type_name == "decisions" else 21)
    for field in schema:
        assert table.schema.field(field.name).type.equals(field.type), field.name
    originals = pa.concat_tables(
        pq.read_table(path)
        for name, path in samples_on_s3.items()
        if name.startswith(f"type={type_name}/")
        and name.endswith(".parquet")
        and f"date={SAMPLE_DAY}" in name
    )
    assert sorted(table["uuid"].to_pylist()) == sorted(originals["uuid"].to_pylist())
    assert table.column("revenue" if type_name == "events" else "variation_id").null_count == (
        originals.column("revenue" if type_name == "events" else "variation_id").null_count
    )
    assert typed.stats.lag_seconds_p50 is not None and typed.stats.lag_seconds_p50 > 0
    assert typed.stats.timestamp_range[0] is not None


@pytest.mark.parametrize(("type_name", "rows"), [("decisions", 9001), ("events", 11109)])
def test_the_spark_example_parts_load_too(
    e3_client: E3Client, lake: Lake, samples_on_s3: dict[str, Path], type_name: str, rows: int
) -> None:
    landing = land_day(e3_client, lake, E3_TYPES[type_name], SPARK_EXAMPLE_DAY, PSEUDONYMISER)
    table = type_day(lake, landing).reader.read_all()

    assert not landing.listing.has_success
    assert table.num_rows == landing.part_rows == rows


def test_duplicates_differing_in_case_keep_the_earliest_row(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, lake: Lake
) -> None:
    first = [
        decision("aaaa-1", 30, variation_id="late"),
        decision("bbbb-2", 0),
        decision(None, 1),
        decision(None, 2),
    ]
    second = [decision("AAAA-1", 10, variation_id="early"), decision("BBBB-2", 5)]
    folder = f"type=decisions/date={DAY}/experiment=42"
    e3_sandbox.put_object(f"{folder}/part-00000-a.c000.snappy.parquet", parquet_bytes(first, DECISIONS))
    e3_sandbox.put_object(f"{folder}/part-00001-a.c000.snappy.parquet", parquet_bytes(second, DECISIONS))

    landing = land_day(e3_client, lake, E3_TYPES["decisions"], DAY, PSEUDONYMISER)
    typed = type_day(lake, landing)
    rows = {row["uuid"]: row for row in typed.reader.read_all().to_pylist()}

    assert typed.stats.duplicates == 2
    assert typed.streamed.rows == landing.part_rows - typed.stats.duplicates == 4
    assert rows["AAAA-1"]["variation_id"] == "early", "the earlier timestamp wins, whatever its case or file"
    assert "bbbb-2" in rows and "BBBB-2" not in rows
    assert rows["AAAA-1"][SOURCE_FILE_COLUMN] == "experiment=42/part-00001-a.c000.snappy.parquet"
    assert sum(1 for uuid in rows if uuid is None) == 1 and typed.stats.rows == 4, (
        "null uuids are never merged"
    )


def test_a_corrupt_part_is_named_quarantined_and_nothing_of_the_date_is_published(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, lake: Lake
) -> None:
    e3_sandbox.publish_day(DAY)
    e3 = E3_TYPES["events"]
    land_day(e3_client, lake, e3, DAY, PSEUDONYMISER)
    before = lake.read_manifest(raw_dir(e3, DAY))
    files_before = lake.current_files(raw_dir(e3, DAY))
    good = parquet_bytes([], CONVERSIONS)
    broken_name = "event=purchase/part-00009-broken.c000.snappy.parquet"
    e3_sandbox.put_object(f"type=events/date={DAY}/{broken_name}", good[:4] + b"\x00garbage" * 40 + good[-8:])

    with pytest.raises(CorruptPartError) as raised:
        land_day(e3_client, lake, e3, DAY, PSEUDONYMISER)

    assert broken_name in str(raised.value)
    assert "nothing of events 2026-11-01 was published" in str(raised.value)
    after = lake.read_manifest(raw_dir(e3, DAY))
    assert before is not None and after is not None and after.version == before.version
    assert lake.current_files(raw_dir(e3, DAY)) == files_before
    assert all(lake.exists(path) for path in files_before)
    quarantined = lake.read_manifest(quarantine_dir(e3, DAY))
    assert quarantined is not None and [entry.name for entry in quarantined.files] == [f"{broken_name}.json"]
    note = json.loads(lake.read_bytes(f"{quarantine_dir(e3, DAY)}/{quarantined.files[0].path}"))
    assert note["s3_key"].endswith(broken_name) and note["vendor_bytes"] == 4 + 8 * 40 + 8


def test_a_part_whose_pages_are_damaged_is_caught_before_publishing(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, lake: Lake
) -> None:
    """The footer reads fine, a data page does not: the full decode catches it."""
    data = bytearray(
        parquet_bytes([decision(f"u-{n}", n % 60, user_agent="x" * 200) for n in range(500)], DECISIONS)
    )
    middle = len(data) // 3
    data[middle : middle + 64] = b"\xff" * 64
    e3_sandbox.put_object(
        f"type=decisions/date={DAY}/experiment=42/part-00000-x.c000.snappy.parquet", bytes(data)
    )

    with pytest.raises(CorruptPartError, match=re.escape("experiment=42/part-00000-x.c000.snappy.parquet")):
        land_day(e3_client, lake, E3_TYPES["decisions"], DAY, PSEUDONYMISER)

    assert lake.read_manifest(raw_dir(E3_TYPES["decisions"], DAY)) is None


def test_an_extra_vendor_column_is_carried_after_the_e3_columns(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, lake: Lake
) -> None:
    extended = DECISIONS.append(pa.field("consent_state", pa.string()))
    e3_sandbox.put_object(
        f"type=decisions/date={DAY}/experiment=42/part-00000-a.c000.snappy.parquet",
        parquet_bytes([decision("u-1", 1, consent_state="granted")], extended),
    )
    e3_sandbox.put_object(
        f"type=decisions/date={DAY}/experiment=42/part-00001-a.c000.snappy.parquet",
        parquet_bytes([decision("u-2", 2)], DECISIONS),
    )

    landing = land_day(e3_client, lake, E3_TYPES["decisions"], DAY, PSEUDONYMISER)
    table = type_day(lake, landing).reader.read_all()

    assert landing.extra_columns == ["consent_state"]
    assert table.schema.names == [*DECISIONS.names, "consent_state", SOURCE_FILE_COLUMN]
    assert dict(zip(table["uuid"].to_pylist(), table["consent_state"].to_pylist(), strict=True)) == {
        "u-1": "granted",
        "u-2": None,
    }


def test_a_missing_column_fails_typing_but_the_raw_landing_is_kept(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, lake: Lake
) -> None:
    narrowed = pa.schema([field for field in DECISIONS if field.name != "visitor_id"])
    row = decision("u-1", 1)
    del row["visitor_id"]
    name = "experiment=42/part-00000-a.c000.snappy.parquet"
    e3_sandbox.put_object(f"type=decisions/date={DAY}/{name}", parquet_bytes([row], narrowed))

    landing = land_day(e3_client, lake, E3_TYPES["decisions"], DAY, PSEUDONYMISER)
    with pytest.raises(SchemaMismatchError, match=f"{name}: missing columns visitor_id"):
        type_day(lake, landing)

    assert len(lake.current_files(raw_dir(E3_TYPES["decisions"], DAY))) == 1


def test_the_folder_fills_an_empty_event_name(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, lake: Lake
) -> None:
    row: dict[str, Any] = {name: None for name in CONVERSIONS.names}
    row.update(uuid="u-1", timestamp=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), event_name=None)
    e3_sandbox.put_object(
        f"type=events/date={DAY}/event=signup/part-00000-a.c000.snappy.parquet",
        parquet_bytes([row], CONVERSIONS),
    )

    table = type_day(
        lake, land_day(e3_client, lake, E3_TYPES["events"], DAY, PSEUDONYMISER)
    ).reader.read_all()

    assert table["event_name"].to_pylist() == ["signup"]


def test_a_date_with_nothing_yet_is_not_landed(e3_client: E3Client, lake: Lake) -> None:
    with pytest.raises(E3NotReadyError, match="may not have run yet"):
        land_day(e3_client, lake, E3_TYPES["decisions"], DAY, PSEUDONYMISER)

    assert lake.read_manifest(raw_dir(E3_TYPES["decisions"], DAY)) is None


def test_a_lake_on_s3_takes_the_same_path(
    e3_client: E3Client, s3_lake_resource: LakeResource, samples_on_s3: dict[str, Path]
) -> None:
    lake = s3_lake_resource.lake()

    landing = land_day(e3_client, lake, E3_TYPES["decisions"], SAMPLE_DAY, PSEUDONYMISER)
    table = type_day(lake, landing).reader.read_all()

    assert lake.uri(landing.raw_dir).startswith("s3://")
    assert table.num_rows == landing.part_rows == 10_000
