"""`event-platform lake migrate`: a lake written in the manifest format becomes Delta tables in place."""

import datetime as dt

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from event_platform.cli import main
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import partition_path, quarantine_path, raw_path

OLD_FILE = "part-00000.parquet"
SCHEMA = pa.schema([("n", pa.int64()), ("at", pa.timestamp("ms", tz="UTC"))])


def write_old_partition(lake: Lake, directory: str, values: list[int]) -> None:
    """A partition as the manifest-format IO manager wrote it: Parquet under a versioned name, then the
    manifest; a re-write keeps the replaced file, listed as `replaced`."""
    table = pa.table({"n": values, "at": [dt.datetime(2026, 11, 1, tzinfo=dt.UTC)] * len(values)}, SCHEMA)
    with lake.write_partition(directory) as partition:
        with partition.open(OLD_FILE) as stream, pq.ParquetWriter(stream, SCHEMA, compression="zstd") as out:
            out.write_table(table)
        partition.metadata["rows"] = len(values)


@pytest.fixture(params=["local", "s3"])
def old_lake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Lake:
    resource: LakeResource = request.getfixturevalue(
        "lake_resource" if request.param == "local" else "s3_lake_resource"
    )
    if resource.s3_endpoint_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", resource.s3_endpoint_url)
    lake = resource.lake()
    write_old_partition(lake, partition_path("amplitude/events", "2026-11-01"), [1, 2])
    write_old_partition(lake, partition_path("amplitude/events", "2026-11-02"), [3])
    write_old_partition(lake, partition_path("amplitude/events", "2026-11-02"), [4, 5])  # replaces [3]
    write_old_partition(lake, "warehouse/experiment_results", [6])
    # A killed writer's file, named by no manifest.
    lake.write_bytes("amplitude/events/date=2026-11-01/part-00000-stray.parquet", b"not parquet")
    with lake.write_partition(raw_path("amplitude", "2026-11-01")) as raw, raw.open("00.json.gz") as out:
        out.write(b"raw bytes")
    with (
        lake.write_partition(quarantine_path("amplitude/events", "2026-11-01")) as bad,
        bad.open("q.gz") as out,
    ):
        out.write(b"bad lines")
    return lake


def untouched(lake: Lake) -> dict[str, bytes]:
    return {path: lake.read_bytes(path) for place in ("raw", "quarantine") for path in lake.list_files(place)}


def test_migration_converts_each_table_to_its_committed_files_and_nothing_else(
    old_lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    landed = untouched(old_lake)

    assert main(["lake", "migrate", "--lake", old_lake.uri()]) == 0

    assert "2 table(s) converted" in capsys.readouterr().err
    assert delta.tables(old_lake) == ["amplitude/events", "warehouse/experiment_results"]
    events = delta.read(old_lake, "amplitude/events").to_table()
    assert sorted(zip(events["date"].to_pylist(), events["n"].to_pylist(), strict=True)) == [
        ("2026-11-01", 1),
        ("2026-11-01", 2),
        ("2026-11-02", 4),
        ("2026-11-02", 5),
    ]
    assert events.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert delta.read(old_lake, "warehouse/experiment_results").to_table()["n"].to_pylist() == [6]
    # Any engine sees the same: the data files are where they were, the log names exactly them.
    uri, options = delta.table_uri(old_lake, "amplitude/events"), delta.storage_options(old_lake)
    assert DeltaTable(uri, storage_options=options).to_pyarrow_table().num_rows == 4
    files = old_lake.list_files("amplitude/events")
    assert not [f for f in files if f.endswith("_manifest.json")], "the manifests are gone"
    assert len([f for f in files if f.endswith(".parquet") and "stray" not in f]) == 2, "replaced file gone"
    assert untouched(old_lake) == landed, "raw and quarantine are byte-identical, manifests and all"
    # The converted table takes new commits like any other.
    written = delta.write(
        old_lake, "amplitude/events", pa.table({"n": [9]}).to_reader(), partition="2026-11-01"
    )
    assert written.version == 1 and delta.read(old_lake, "amplitude/events", ["2026-11-01"]).count_rows() == 1


def test_migration_is_idempotent(old_lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lake", "migrate", "--lake", old_lake.uri()]) == 0
    snapshot = {path: old_lake.read_bytes(path) for path in old_lake.list_files("")}

    assert main(["lake", "migrate", "--lake", old_lake.uri()]) == 0

    assert "0 table(s) converted" in capsys.readouterr().err
    assert {path: old_lake.read_bytes(path) for path in old_lake.list_files("")} == snapshot


def test_an_interrupted_migration_finishes_on_the_next_run(old_lake: Lake) -> None:
    manifest = old_lake.read_bytes("amplitude/events/date=2026-11-01/_manifest.json")
    main(["lake", "migrate", "--lake", old_lake.uri()])
    # As if the run had died after the commit, before removing this manifest.
    old_lake.write_bytes("amplitude/events/date=2026-11-01/_manifest.json", manifest)

    main(["lake", "migrate", "--lake", old_lake.uri()])

    assert not old_lake.exists("amplitude/events/date=2026-11-01/_manifest.json")
    assert delta.read(old_lake, "amplitude/events").count_rows() == 4
    table = delta.open_table(old_lake, "amplitude/events")
    assert table is not None and table.version() == 0


def test_migrated_files_carry_statistics_that_never_skip_a_matching_file(lake_resource: LakeResource) -> None:
    """A column added over time: the older file lacks it, so its statistics hold no bounds (a reader
    would take the missing ones as null); the newer file's have them."""
    lake = lake_resource.lake()
    for day, table in (
        ("2026-11-01", pa.table({"n": [1, 2]})),
        ("2026-11-02", pa.table({"n": [3], "label": ["x"]})),
    ):
        with (
            lake.write_partition(partition_path("src/grown", day)) as partition,
            partition.open(OLD_FILE) as out,
        ):
            pq.write_table(table, out)

    assert main(["lake", "migrate", "--lake", lake.uri()]) == 0

    snapshot = delta.open_table(lake, "src/grown")
    assert snapshot is not None
    actions = pa.table(snapshot.get_add_actions(flatten=True)).sort_by("partition.date").to_pylist()
    assert [(a["num_records"], a.get("min.n"), a.get("max.n")) for a in actions] == [
        (2, None, None),
        (1, 3, 3),
    ]
    dataset = delta.read(lake, "src/grown")
    assert dataset.to_table(filter=ds.field("label").is_null())["n"].to_pylist() == [1, 2]
    assert dataset.to_table(filter=ds.field("label") == "x")["n"].to_pylist() == [3]
