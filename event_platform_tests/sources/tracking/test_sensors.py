import datetime as dt
import gzip
import json

from dagster import SensorResult, build_sensor_context

from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.sources.tracking.defs.sensors import tracking_landed_files
from event_platform.sources.tracking.landed import commit_events, compact_day, landing_version


def land(lake: Lake, day: str) -> str:
    commit_events(lake, day, gzip.compress(b"{}\n"), lines=1, first_received="", last_received="")
    version = landing_version(lake, day)
    assert version is not None
    return version


def evaluate(lake_resource: LakeResource, cursor: str | None) -> SensorResult:
    context = build_sensor_context(cursor=cursor, resources={"lake": lake_resource})
    result = tracking_landed_files(context)
    assert isinstance(result, SensorResult)
    return result


def test_a_day_is_requested_once_per_new_landing(lake_resource: LakeResource) -> None:
    lake = lake_resource.lake()
    version = land(lake, "2026-11-01")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    land(lake, today)  # still open: its partition exists only once the day is over

    first = evaluate(lake_resource, None)
    assert [(r.partition_key, r.run_key) for r in first.run_requests or []] == [
        ("2026-11-01", f"2026-11-01@{version}")
    ]
    assert json.loads(first.cursor or "{}") == {"2026-11-01": version}

    assert evaluate(lake_resource, first.cursor).run_requests == []

    newer = land(lake, "2026-11-01")
    again = evaluate(lake_resource, first.cursor)
    assert [r.run_key for r in again.run_requests or []] == [f"2026-11-01@{newer}"]

    # Folding the records into the day's index (the asset does it) is not a new landing.
    assert compact_day(lake, "2026-11-01") == 2
    assert evaluate(lake_resource, again.cursor).run_requests == []


def test_nothing_landed_requests_nothing(lake_resource: LakeResource) -> None:
    result = evaluate(lake_resource, None)
    assert result.run_requests == [] and json.loads(result.cursor or "{}") == {}
