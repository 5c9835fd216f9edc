import datetime as dt
from pathlib import Path

from event_platform.dates import day_start
from event_platform.lake.io_manager import LakeResource
from event_platform.sandbox.tracking import SimulatedClock, TrackingSandbox, day_of_events
from event_platform.sandbox.world import World
from event_platform.sources.tracking.events import EventTypeRegistry, format_time, new_uuid
from event_platform.sources.tracking.landed import landed_entries

DAY = dt.date(2026, 11, 1)


def test_a_day_is_deterministic_valid_and_anonymous(world: World) -> None:
    events = day_of_events(world, DAY)
    assert events == day_of_events(world, DAY)
    assert events != day_of_events(world, DAY + dt.timedelta(days=1))
    registry = EventTypeRegistry()
    user_ids = {person.user_id for person in world.people}
    for event in events:
        registry.validate({**event, "uuid": new_uuid(), "time": format_time(event["time"])})
        assert event["anon_username"] in user_ids  # the id shared with Amplitude and Optimizely
        assert event["time"].date() == DAY
    assert len({event["event_type"] for event in events}) >= 10


def test_the_clock_stays_within_the_simulated_day() -> None:
    clock = SimulatedClock()
    assert abs((clock() - dt.datetime.now(dt.UTC)).total_seconds()) < 5
    clock.set_day(DAY)
    first, second = clock(), clock()
    assert day_start(DAY) < first <= second < day_start(DAY + dt.timedelta(days=1))


def test_send_day_lands_the_day_on_its_own_partition(
    world: World, lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    with TrackingSandbox(world, lake, tmp_path / "spool") as sandbox:
        assert sandbox.environment() == {"TRACKING_COLLECTOR_URL": sandbox.url}
        sent = sandbox.send_day(DAY, events_per_person=3)
    entries = landed_entries(lake, DAY.isoformat())
    assert sum(entry.extra["lines"] for entry in entries) == sent > 0
    assert all(
        entry.extra["last_received"] < day_start(DAY + dt.timedelta(days=1)).isoformat() for entry in entries
    )
