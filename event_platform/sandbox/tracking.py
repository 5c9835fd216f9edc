"""The learning platform, simulated: the world's learners send a deterministic day of tracking events
through the real Tracker to a real collector on 127.0.0.1, which lands them in the lake.

    with TrackingSandbox(world, lake, spool_dir) as sandbox:
        os.environ.update(sandbox.environment())      # TRACKING_COLLECTOR_URL
        sandbox.send_day(dt.date(2026, 11, 1))

Each learner's `anon_username` is `person.user_id`, the anonymous id shared with the other sources.
The Tracker is given each event's simulated `time`. The collector lands by the day it *received* an
event, so a simulated day would land on today's partition; instead the collector runs on a
`SimulatedClock` that `send_day` moves to the last second of the simulated day (as if the events
arrived just before midnight), so day D's events land in `raw/tracking/date=D/` with
`time <= received_at`.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from starlette.types import ASGIApp

from event_platform.dates import day_start
from event_platform.lake.filesystem import Lake
from event_platform.retry import Backoff
from event_platform.sandbox.loopback import LoopbackService
from event_platform.sandbox.world import Course, Person, World
from event_platform.sources.tracking.collector import Collector, CollectorSettings
from event_platform.sources.tracking.events import VIDEO_EVENT_TYPES
from event_platform.sources.tracking.landed import landing_version
from event_platform.sources.tracking.tracker import Tracker

if TYPE_CHECKING:
    from event_platform.sandbox.runner import EmulatorContext

SANDBOX_COLLECTOR = CollectorSettings(flush_age_seconds=0.05)
"""Short flushes: a sandbox day is sent in a burst and the demo should not wait."""

SANDBOX_BACKOFF = Backoff(base_seconds=0.05, max_seconds=1.0)

ACTIVITY: tuple[tuple[str, int], ...] = (
    ("kinesinlms.course.content.page_view", 30),
    ("kinesinlms.course.video.activity", 25),
    ("kinesinlms.course.assessment.submitted", 12),
    ("kinesinlms.course.home.page_view", 8),
    ("kinesinlms.course.search.search_request", 5),
    ("kinesinlms.course.bookmark.created", 3),
    ("kinesinlms.course.resource.download", 4),
    ("kinesinlms.course.forum.post", 3),
    ("kinesinlms.course.progress.milestone.completed", 4),
    ("kinesinlms.course.progress.passed", 1),
    ("kinesinlms.course.progress.badge.earned", 1),
    ("kinesinlms.survey.completed", 1),
    ("kinesinlms.core.user.enrollment.activated", 2),
    ("kinesinlms.core.user.enrollment.deactivated", 1),
)
SEARCHES = ("p-value", "dagster sensor", "confidence interval", "asset check", "histogram")
HOME_PAGES = ("overview", "progress", "bookmarks", "forum")


class SimulatedClock:
    """The collector's clock: the last second of a simulated day, advancing with real time within it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day_end: dt.datetime | None = None
        self._set_at = 0.0

    def set_day(self, day: dt.date) -> None:
        with self._lock:
            self._day_end = day_start(day + dt.timedelta(days=1))
            self._set_at = time.monotonic()

    def __call__(self) -> dt.datetime:
        with self._lock:
            if self._day_end is None:
                return dt.datetime.now(dt.UTC)
            elapsed = min(time.monotonic() - self._set_at, 0.999)
            return self._day_end - dt.timedelta(seconds=1) + dt.timedelta(seconds=elapsed)


def day_of_events(world: World, day: dt.date, events_per_person: int = 8) -> list[dict[str, Any]]:
    """The day's events as `track()` arguments, the same for a given world and day, sorted by time."""
    plan = []
    for person in world.active_people(day):
        rng = world.rng("tracking", day, person.user_id)
        course = rng.choice(world.courses)
        moments = sorted(
            day_start(day) + dt.timedelta(microseconds=rng.randrange(86_400 * 10**6 - 2 * 10**6))
            for _ in range(max(1, events_per_person))
        )
        plan.append(_login(person, course, moments[0]))
        plan.extend(_activity(rng, person, course, moment) for moment in moments[1:])
    return sorted(plan, key=lambda event: (event["time"], event["anon_username"]))


def _login(person: Person, course: Course, moment: dt.datetime) -> dict[str, Any]:
    return {
        "event_type": "kinesinlms.core.user.login",
        "anon_username": person.user_id,
        "time": moment,
        "event_data": {},
        "course_slug": course.slug,
        "course_run": course.run,
    }


def _activity(rng: random.Random, person: Person, course: Course, moment: dt.datetime) -> dict[str, Any]:
    names, weights = zip(*ACTIVITY, strict=True)
    event_type = rng.choices(names, weights)[0]
    unit_index = rng.randrange(len(course.unit_slugs))
    unit = course.unit_slugs[unit_index]
    data: dict[str, Any] = {}
    if event_type.endswith("content.page_view"):
        data = {"unit_display_name": f"Unit {unit_index + 1}"}
    elif event_type.endswith("video.activity"):
        data = {"video_id": f"{unit}-video", "video_event_type": rng.choice(VIDEO_EVENT_TYPES)}
    elif event_type.endswith("assessment.submitted"):
        data = {
            "assessment_id": f"{unit}-quiz",
            "assessment_type": rng.choice(("multiple_choice", "long_form")),
            "answer_id": rng.randrange(1, 10**6),
            "status": rng.choice(("complete", "incorrect", "correct")),
            "attempts": rng.randint(1, 3),
        }
    elif event_type.endswith("home.page_view"):
        data = {"page": rng.choice(HOME_PAGES)}
    elif event_type.endswith("search_request"):
        data = {"search_text": rng.choice(SEARCHES)}
    elif event_type.endswith("resource.download"):
        data = {"course_resource_name": f"{unit}-slides.pdf"}
    elif event_type.endswith("milestone.completed"):
        data = {"milestone_type": rng.choice(("video", "assessment")), "milestone_id": rng.randrange(1, 50)}
    elif event_type.endswith("enrollment.activated"):
        data = {"cohort_id": rng.randrange(1, 5), "cohort_name": f"{course.slug} cohort"}
    return {
        "event_type": event_type,
        "anon_username": person.user_id,
        "time": moment,
        "event_data": data,
        "course_slug": course.slug,
        "course_run": course.run,
        "unit_node_slug": unit,
        "course_unit_slug": unit,
        "course_unit_id": unit_index + 1,
        "block_uuid": None,
        "page_url": f"/courses/{course.slug}/{course.run}/{unit}/",
    }


class TrackingSandbox(LoopbackService):
    """A collector on 127.0.0.1 landing in `lake`, and a Tracker (spooling in `spool_dir`) sending to it."""

    name = "tracking-collector"

    def __init__(
        self,
        world: World,
        lake: Lake,
        spool_dir: str | Path,
        *,
        settings: CollectorSettings = SANDBOX_COLLECTOR,
    ) -> None:
        self.world = world
        self.clock = SimulatedClock()
        self.collector = Collector(lake, settings=settings, clock=self.clock)
        self._spool_dir = Path(spool_dir)
        self._tracker: Tracker | None = None

    def app(self) -> ASGIApp:
        return self.collector.app

    def start(self) -> Self:
        super().start()
        if self._tracker is None:
            self._tracker = Tracker(self.url, self._spool_dir, backoff=SANDBOX_BACKOFF, poll_seconds=0.02)
        return self

    def stop(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
        super().stop()

    def environment(self) -> dict[str, str]:
        return {"TRACKING_COLLECTOR_URL": self.url}

    def send_day(self, day: dt.date, events_per_person: int = 8, timeout: float = 60.0) -> int:
        """Track the day's events and wait until the collector has landed them all; returns how many."""
        if self._tracker is None:
            raise RuntimeError("the tracking sandbox is not started")
        events = day_of_events(self.world, day, events_per_person)
        self.clock.set_day(day)
        self._tracker.track_many(events)
        if not self._tracker.flush(timeout):
            pending = self._tracker.pending
            raise TimeoutError(f"{pending} tracking event(s) of {day} not delivered in {timeout}s")
        return len(events)


def emulate(context: EmulatorContext, stack: ExitStack) -> dict[str, str]:
    """The sandbox's LMS (registered in `sources/tracking`): the learners' events of the days that happened
    reach the collector once; a restarted sandbox does not send them again."""
    sandbox = stack.enter_context(
        TrackingSandbox(context.world, context.lake, context.work_dir / "tracker-spool")
    )
    for day in context.days:
        if landing_version(context.lake, day.isoformat()) is None:
            sandbox.send_day(day)
    return sandbox.environment()
