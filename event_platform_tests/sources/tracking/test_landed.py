import datetime as dt
import gzip
import json
import multiprocessing
from pathlib import Path

import pytest

from event_platform.ingest import read_day
from event_platform.lake import publish
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import STAGING_ROOT, quarantine_path, raw_path
from event_platform.lake.publish import STRAY_AGE, VERSION_TIME_FORMAT, new_version
from event_platform.sources.tracking.landed import (
    DATA_PREFIX,
    DATA_SUFFIX,
    SPEC,
    TABLE,
    commit_events,
    compact_day,
    landed_files,
    landed_line_count,
)
from event_platform.staging import gzip_lines

DAY = "2026-11-01"


def test_a_damaged_landed_file_is_named(lake: Lake) -> None:
    damaged = gzip.compress(b'{"uuid": "a"}\n{"uuid": "b"}\n')[:-12]
    commit_events(lake, "2026-11-01", damaged, lines=2, first_received="", last_received="")
    with pytest.raises(ValueError, match=r"events-.*\.ndjson\.gz is not a complete gzip file"):
        list(gzip_lines(lake, landed_files(lake, "2026-11-01")))


def typed_day(lake: Lake, lines: list[bytes], tmp_path: Path) -> tuple[list[dict[str, object]], list[bytes]]:
    """The rows and the quarantined lines of a day landed as `lines`, through the ingestion path."""
    commit_events(lake, DAY, gzip.compress(b"\n".join(lines) + b"\n"), lines=len(lines), first_received="",
                  last_received="")  # fmt: skip
    rows = read_day(SPEC, lake, DAY, tmp_dir=tmp_path).reader.read_all().to_pylist()
    quarantined = [
        gzip.decompress(lake.read_bytes(path)) for path in lake.current_files(quarantine_path(TABLE, DAY))
    ]
    return rows, b"".join(quarantined).splitlines()


@pytest.mark.parametrize(
    "line",
    [
        b"[1]",  # not a JSON object
        b'{"uuid": "u", "event_type": "t"}',  # anon_username is missing
        b'{"uuid": "u", "event_type": "t", "anon_username": "a", "time": "2026-11-01"}',  # no UTC offset
        b'{"uuid": "u", "event_type": "t", "anon_username": "a", "time": "2026-11-01T00:00:00+00:00", '
        b'"received_at": "2026-11-01T00:00:01+00:00", "event_data": 3}',  # event_data is not an object
    ],
)
def test_untypable_lines_are_quarantined_as_they_were(lake: Lake, line: bytes, tmp_path: Path) -> None:
    assert typed_day(lake, [line], tmp_path) == ([], [line])


def test_a_typed_row_keeps_ids_as_text_and_event_data_as_sorted_json(lake: Lake, tmp_path: Path) -> None:
    [row], quarantined = typed_day(
        lake,
        [
            b'{"uuid": "u", "event_type": "t", "anon_username": "a", "time": "2026-11-01T01:00:00+01:00", '
            b'"received_at": "2026-11-01T00:00:01+00:00", "course_unit_id": 7, '
            b'"event_data": {"b": 1, "a": "x"}}'
        ],
        tmp_path,
    )
    assert quarantined == []
    assert row["course_unit_id"] == "7" and row["event_data"] == '{"a":"x","b":1}'
    assert row["time"].isoformat() == "2026-11-01T00:00:00+00:00"  # type: ignore[attr-defined]
    json.loads(str(row["event_data"]))


def test_a_commit_killed_before_its_record_leaves_nothing_counted(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    move = publish._move_durably

    def killed_before_the_record(lake: Lake, source: str, target: str) -> None:
        if "/_commits/" in target:
            raise OSError("killed before the record's rename")
        move(lake, source, target)

    monkeypatch.setattr(publish, "_move_durably", killed_before_the_record)
    with pytest.raises(OSError, match="killed"):
        commit_events(lake, DAY, gzip.compress(b"{}\n"), lines=1, first_received="", last_received="")
    monkeypatch.undo()

    [data_file] = lake.list_files(raw_path("tracking", DAY))
    assert gzip.decompress(lake.read_bytes(data_file)) == b"{}\n"  # whole and durable, but uncommitted
    assert landed_files(lake, DAY) == [] and landed_line_count(lake, DAY) == 0
    commit_events(lake, DAY, gzip.compress(b"{}\n" * 2), lines=2, first_received="", last_received="")
    assert landed_line_count(lake, DAY) == 2
    assert lake.list_files(STAGING_ROOT) == []  # a commit's staging goes with it, failed or not


def test_a_commit_killed_while_writing_leaves_nothing_in_the_partition(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = publish._write_durably

    def killed_mid_file(lake: Lake, relative: str, data: bytes) -> None:
        write(lake, relative, data[: len(data) // 2])
        raise OSError("killed while writing")

    monkeypatch.setattr(publish, "_write_durably", killed_mid_file)
    with pytest.raises(OSError, match="killed"):
        commit_events(lake, DAY, gzip.compress(b"{}\n" * 100), lines=100, first_received="", last_received="")
    monkeypatch.undo()
    # A glob over the partition (or a pyarrow dataset) never meets a half-written file.
    assert lake.list_files(raw_path("tracking", DAY)) == []
    assert landed_line_count(lake, DAY) == 0


def test_compacting_deletes_uncommitted_data_files_and_staging_once_they_are_old(lake: Lake) -> None:
    commit_events(lake, DAY, gzip.compress(b"{}\n"), lines=1, first_received="", last_received="")
    directory = raw_path("tracking", DAY)
    dead = f"{dt.datetime.now(dt.UTC) - STRAY_AGE - dt.timedelta(minutes=1):{VERSION_TIME_FORMAT}}-deadbeef"
    old = f"{directory}/{DATA_PREFIX}{dead}{DATA_SUFFIX}"
    fresh = f"{directory}/{DATA_PREFIX}{new_version()}{DATA_SUFFIX}"  # a commit still in progress
    old_staging = f"{STAGING_ROOT}/{directory}/{dead}/{DATA_PREFIX}{dead}{DATA_SUFFIX}"
    fresh_staging = f"{STAGING_ROOT}/{directory}/{new_version()}/{DATA_PREFIX}x{DATA_SUFFIX}"
    for path in (old, fresh, old_staging, fresh_staging):
        lake.write_bytes(path, b"half a gzip")
    assert compact_day(lake, DAY) == 1
    assert not lake.exists(old) and lake.exists(fresh)
    assert not lake.exists(old_staging) and lake.exists(fresh_staging)
    assert landed_line_count(lake, DAY) == 1


def _commit_one(lake_root: str) -> None:
    lake = Lake.from_uri(lake_root)
    commit_events(lake, DAY, gzip.compress(b"{}\n"), lines=1, first_received="", last_received="")


def test_a_process_forked_after_a_commit_commits_too(lake: Lake) -> None:
    # The collector's workers are forked; a flush pool inherited without its threads would hang.
    _commit_one(lake.root)
    child = multiprocessing.get_context("fork").Process(target=_commit_one, args=(lake.root,))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert landed_line_count(lake, DAY) == 2
