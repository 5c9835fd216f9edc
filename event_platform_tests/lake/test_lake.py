"""The lake's contract, run once against local disk and once against S3 (moto's server on 127.0.0.1)."""

from __future__ import annotations

import hashlib

import pytest

from event_platform.lake import publish
from event_platform.lake.filesystem import Lake, WriteMode
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import partition_keys, partition_path, quarantine_path, raw_path

PARTITION = "amplitude/events/date=2026-11-01"


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest) -> Lake:
    fixture = "lake_resource" if request.param == "local" else "s3_lake_resource"
    resource: LakeResource = request.getfixturevalue(fixture)
    return resource.lake()


def write(lake: Lake, files: dict[str, bytes], mode: WriteMode = "replace") -> None:
    with lake.write_partition(PARTITION, mode=mode) as writer:
        for name, data in files.items():
            with writer.open(name, lines=data.count(b"\n")) as stream:
                stream.write(data)
        writer.metadata["source"] = "test"


def read_current(lake: Lake) -> dict[str, bytes]:
    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None
    return {entry.name: lake.read_bytes(f"{PARTITION}/{entry.path}") for entry in manifest.files}


def test_a_committed_partition_reads_back_with_sizes_hashes_and_metadata(lake: Lake) -> None:
    write(lake, {"374182/374182_2026-11-01_0#0.json.gz": b"a\nb\n", "other.txt": b"c\n"})

    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None
    assert read_current(lake) == {"374182/374182_2026-11-01_0#0.json.gz": b"a\nb\n", "other.txt": b"c\n"}
    first = manifest.files[0]
    assert (first.bytes, first.sha256, first.extra) == (
        4,
        hashlib.sha256(b"a\nb\n").hexdigest(),
        {"lines": 2},
    )
    assert first.path.startswith("374182/374182_2026-11-01_0#0-") and first.path.endswith(".json.gz")
    assert manifest.metadata == {"source": "test"}
    assert sorted(lake.current_files(PARTITION)) == sorted(f"{PARTITION}/{f.path}" for f in manifest.files)


def test_rewriting_a_partition_replaces_it_whole_and_keeps_the_old_files_for_their_readers(
    lake: Lake,
) -> None:
    write(lake, {"a.txt": b"old", "b.txt": b"old"})
    resolved_by_a_reader = lake.current_files(PARTITION)
    write(lake, {"a.txt": b"new"})

    assert read_current(lake) == {"a.txt": b"new"}
    # A reader that resolved the old version before the commit can still read it to the end.
    assert [lake.read_bytes(path) for path in resolved_by_a_reader] == [b"old", b"old"]
    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None
    assert sorted(f"{PARTITION}/{entry.path}" for entry in manifest.replaced) == sorted(resolved_by_a_reader)


def test_replaced_versions_go_once_their_time_is_up_or_at_once_on_demand(lake: Lake) -> None:
    write(lake, {"a.txt": b"v1"})
    first = lake.current_files(PARTITION)
    write(lake, {"a.txt": b"v2"})
    second = lake.current_files(PARTITION)
    # The next commit keeps what it replaces now (v2) and drops what was replaced long enough ago (v1).
    soon = publish.dt.timedelta(microseconds=1)
    with lake.write_partition(PARTITION, keep_replaced_for=soon) as writer, writer.open("a.txt") as stream:
        stream.write(b"v3")
    files = set(lake.list_files(PARTITION))
    assert not files & set(first) and set(second) <= files

    assert lake.drop_replaced(PARTITION) == 1
    assert sorted(lake.list_files(PARTITION)) == sorted(
        [*lake.current_files(PARTITION), f"{PARTITION}/_manifest.json"]
    )
    assert read_current(lake) == {"a.txt": b"v3"}


def test_a_failed_write_leaves_the_previous_version_visible_and_no_partial_files(lake: Lake) -> None:
    write(lake, {"a.txt": b"good"})
    before = lake.list_files(PARTITION)

    with pytest.raises(RuntimeError, match="parser exploded"), lake.write_partition(PARTITION) as writer:
        with writer.open("a.txt") as stream:
            stream.write(b"half of the new vers")
        with writer.open("b.txt") as stream:
            stream.write(b"also half")
            raise RuntimeError("parser exploded")

    assert read_current(lake) == {"a.txt": b"good"}
    assert lake.list_files(PARTITION) == before


def test_append_keeps_the_committed_files(lake: Lake) -> None:
    write(lake, {"batch-1.ndjson.gz": b"1"}, mode="append")
    write(lake, {"batch-2.ndjson.gz": b"2"}, mode="append")

    assert read_current(lake) == {"batch-1.ndjson.gz": b"1", "batch-2.ndjson.gz": b"2"}


def test_strays_of_a_killed_writer_are_removed_once_old(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake.write_bytes(f"{PARTITION}/part-00000-killed.parquet", b"orphan of a killed run")
    write(lake, {"a.txt": b"x"})
    assert f"{PARTITION}/part-00000-killed.parquet" in lake.list_files(PARTITION), (
        "young strays may be in flight"
    )

    monkeypatch.setattr(publish, "STRAY_AGE", publish.dt.timedelta(seconds=-60))
    write(lake, {"a.txt": b"y"})
    assert f"{PARTITION}/part-00000-killed.parquet" not in lake.list_files(PARTITION)


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.txt", "a/../../b"])
def test_file_names_cannot_leave_the_partition(lake: Lake, name: str) -> None:
    with pytest.raises(ValueError, match="Invalid"), lake.write_partition(PARTITION) as writer:
        writer.open(name).__enter__()
    assert lake.read_manifest(PARTITION) is None


def test_layout_is_hive_style() -> None:
    assert partition_path("amplitude/events", "2026-11-01") == "amplitude/events/date=2026-11-01"
    assert raw_path("amplitude", "2026-11-01") == "raw/amplitude/date=2026-11-01"
    assert quarantine_path("amplitude/events", "2026-11-01") == "quarantine/amplitude/events/date=2026-11-01"
    assert partition_keys(["date=2026-11-02", "_tmp", "date=2026-11-01"]) == ["2026-11-01", "2026-11-02"]


def test_lake_uris_name_the_place() -> None:
    assert Lake.from_uri("s3://bucket/some/prefix/").uri("a/b") == "s3://bucket/some/prefix/a/b"
    with pytest.raises(ValueError, match="Unsupported lake location"):
        Lake.from_uri("gs://bucket")
