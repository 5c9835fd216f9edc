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
    def killed(*_: object) -> str:
        raise OSError("killed while staging the record")

    monkeypatch.setattr(publish, "_staged_durably", killed)
    with pytest.raises(OSError, match="killed"):
        commit_events(lake, DAY, gzip.compress(b"{}\n"), lines=1, first_received="", last_received="")
    monkeypatch.undo()

    data_files = [info.base_name for info in lake.file_infos(raw_path("tracking", DAY))]
    assert len(data_files) == 1 and data_files[0].startswith("events-")  # durable, but uncommitted
    assert landed_files(lake, DAY) == [] and landed_line_count(lake, DAY) == 0
    commit_events(lake, DAY, gzip.compress(b"{}\n" * 2), lines=2, first_received="", last_received="")
    assert landed_line_count(lake, DAY) == 2
    assert lake.list_files(STAGING_ROOT) == []  # the record's staging went with its rename


def test_compacting_deletes_uncommitted_data_files_once_they_are_old(lake: Lake) -> None:
    commit_events(lake, DAY, gzip.compress(b"{}\n"), lines=1, first_received="", last_received="")
    directory = raw_path("tracking", DAY)
    dead = dt.datetime.now(dt.UTC) - STRAY_AGE - dt.timedelta(minutes=1)
    old = f"{directory}/{DATA_PREFIX}{dead:{VERSION_TIME_FORMAT}}-deadbeef{DATA_SUFFIX}"
    fresh = f"{directory}/{DATA_PREFIX}{new_version()}{DATA_SUFFIX}"  # a commit still in progress
    for path in (old, fresh):
        lake.write_bytes(path, b"half a gzip")
    assert compact_day(lake, DAY) == 1
    assert not lake.exists(old) and lake.exists(fresh)
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
