"""The whole sandbox at once: every vendor emulator on 127.0.0.1, fed by one world.

`Sandbox.environment()` holds the same variables a real deployment sets (DESIGN.md, Settings), pointed
at the emulators, so the platform runs the one code path it runs against the vendors.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from event_platform.defs.tracking.landed import landing_version
from event_platform.lake.filesystem import Lake
from event_platform.sandbox.amplitude import AmplitudeEmulator
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sandbox.profile_store import ProfileStoreSandbox
from event_platform.sandbox.tracking import TrackingSandbox
from event_platform.sandbox.world import World

SANDBOX_PSEUDONYM_KEY = "sandbox-only-pseudonym-key-not-a-secret"
SANDBOX_METRICS_FILE = Path(__file__).with_name("metrics.yaml")
"""The sandbox's metric and experiment definitions (EVENT_PLATFORM_METRICS_FILE)."""


class Sandbox:
    """Start with `with Sandbox(world, lake_root=…, days=[…]) as sandbox:`; the days' data is then ready.

    Amplitude and the Profile Store generate any day on request; Optimizely's S3 export and the
    tracking landings exist only for `days`, as they would only for days that have happened, so the
    environment starts the platform's partitions at the first of `days`.
    """

    def __init__(
        self,
        world: World,
        *,
        lake_root: str,
        days: Sequence[dt.date],
        amplitude_events_per_day: int = 20_000,
        profile_store_events_per_day: int = 5_000,
        work_dir: Path | None = None,
    ) -> None:
        self.world = world
        self.lake_root = lake_root
        self.days = list(days)
        self.amplitude_events_per_day = amplitude_events_per_day
        self.profile_store_events_per_day = profile_store_events_per_day
        self.work_dir = work_dir
        self._stack = ExitStack()
        self._environment: dict[str, str] = {}

    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def environment(self) -> dict[str, str]:
        return dict(self._environment)

    def _start(self) -> None:
        work_dir = self.work_dir or Path(
            self._stack.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-"))
        )
        lake = Lake.from_uri(self.lake_root, s3_endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"))
        amplitude = self._stack.enter_context(
            AmplitudeEmulator(
                self.world, events_per_day=self.amplitude_events_per_day, cache_dir=work_dir / "amplitude"
            )
        )
        optimizely = self._stack.enter_context(OptimizelySandbox(self.world))
        profile_store = self._stack.enter_context(
            ProfileStoreSandbox(self.world, events_per_day=self.profile_store_events_per_day)
        )
        tracking = self._stack.enter_context(TrackingSandbox(self.world, lake, work_dir / "tracker-spool"))
        for day in self.days:
            optimizely.publish_day(day)
            # The learners' events reach the collector once; a restarted sandbox does not send them again.
            if landing_version(lake, day.isoformat()) is None:
                tracking.send_day(day)
        self._environment = {
            **amplitude.environment(),
            **optimizely.environment(),
            **profile_store.environment(),
            **tracking.environment(),
            "EVENT_PLATFORM_LAKE": self.lake_root,
            "EVENT_PLATFORM_PSEUDONYM_KEY": SANDBOX_PSEUDONYM_KEY,
            "EVENT_PLATFORM_METRICS_FILE": str(SANDBOX_METRICS_FILE),
            # The partitions start where the sandbox's data does: the UI shows its days as the whole history.
            "EVENT_PLATFORM_START_DATE": min(self.days).isoformat(),
        }
