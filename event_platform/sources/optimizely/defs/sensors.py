"""Watch the E3 prefix and request a date of both E3 assets, and that day's experiment metadata, when its
part files are new or changed.

A date is requested once its folders are complete: `_SUCCESS` is in every type's date folder, or the
listing has not changed for `stable_seconds` (the marker is not promised). The cursor keeps, per
recent date, a fingerprint of its listing (key, size, ETag of every part) and the fingerprint last
requested, so an unchanged folder is never requested twice and a changed part is requested again.
"""

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from event_platform.partitions import daily_partitions
from event_platform.sources.optimizely.defs.experiment_assets import EXPERIMENT_METRICS, EXPERIMENTS
from event_platform.sources.optimizely.defs.resources import OptimizelyResource
from event_platform.sources.optimizely.schema import E3_TYPES

if TYPE_CHECKING:
    from event_platform.sources.optimizely.client import DayListing, E3Client

ASSET_KEYS = [AssetKey(["optimizely", e3.asset_name]) for e3 in E3_TYPES.values()]
METADATA_KEYS = [EXPERIMENTS, EXPERIMENT_METRICS]
"""Requested with the export, so a day's results find that day's names, weights and metrics."""
STABLE_SECONDS = 2 * 3600
LOOKBACK_DAYS = 7


@dataclass
class DateState:
    fingerprint: str
    unchanged_since: float
    requested: str | None = None


def fingerprint(listings: "list[DayListing]") -> str:
    """Changes whenever a part file appears, disappears or is rewritten; the marker does not count."""
    digest = hashlib.sha256()
    for listing in listings:
        for part in listing.parts:
            digest.update(f"{listing.type_name}\0{part.key}\0{part.size}\0{part.etag}\n".encode())
    return digest.hexdigest()


def plan(
    client: "E3Client",
    cursor: dict[str, DateState],
    *,
    now: float,
    today: dt.date,
    stable_seconds: float,
    lookback_days: int,
) -> tuple[list[str], dict[str, DateState]]:
    """The dates to request now, and the cursor to keep."""
    earliest = today - dt.timedelta(days=lookback_days)
    dates = sorted({day for e3 in E3_TYPES.values() for day in client.list_dates(e3) if day >= earliest})
    requests: list[str] = []
    state: dict[str, DateState] = {}
    for day in dates:
        key = day.isoformat()
        if not daily_partitions.has_partition_key(key):
            continue
        listings = [client.list_day(e3, day) for e3 in E3_TYPES.values()]
        if not any(listing.parts for listing in listings):
            continue
        current = fingerprint(listings)
        previous = cursor.get(key)
        if previous is None or previous.fingerprint != current:
            entry = DateState(current, now, previous.requested if previous else None)
        else:
            entry = previous
        complete = all(listing.has_success for listing in listings)
        stable = now - entry.unchanged_since >= stable_seconds
        if entry.requested != current and (complete or stable):
            requests.append(key)
            entry.requested = current
        state[key] = entry
    return requests, state


def build_e3_sensor(
    *, stable_seconds: float = STABLE_SECONDS, lookback_days: int = LOOKBACK_DAYS
) -> SensorDefinition:
    @sensor(
        name="optimizely_e3_sensor",
        asset_selection=[*ASSET_KEYS, *METADATA_KEYS],
        minimum_interval_seconds=600,
        default_status=DefaultSensorStatus.STOPPED,
        description="Requests optimizely/decisions, optimizely/conversions and the day's experiment "
        "metadata for an E3 date whose part files are new or changed, once `_SUCCESS` is there or the "
        "listing has been stable.",
    )
    def optimizely_e3_sensor(
        context: SensorEvaluationContext, optimizely: OptimizelyResource
    ) -> SensorResult:
        cursor = {key: DateState(**value) for key, value in json.loads(context.cursor or "{}").items()}
        now = dt.datetime.now(dt.UTC)
        requests, state = plan(
            optimizely.client(),
            cursor,
            now=now.timestamp(),
            today=now.date(),
            stable_seconds=stable_seconds,
            lookback_days=lookback_days,
        )
        new_cursor = json.dumps({key: asdict(value) for key, value in state.items()}, sort_keys=True)
        run_requests = [
            RunRequest(run_key=f"optimizely-e3-{key}-{state[key].fingerprint[:16]}", partition_key=key)
            for key in requests
        ]
        if not run_requests:
            skip = SkipReason("No new or changed E3 date is ready.")
            return SensorResult(skip_reason=skip, cursor=new_cursor)
        return SensorResult(run_requests=run_requests, cursor=new_cursor)

    return optimizely_e3_sensor


optimizely_e3_sensor = build_e3_sensor()
