"""The whole sandbox at once: every vendor emulator on 127.0.0.1, fed by one world.

`Sandbox.environment()` holds the same variables a real deployment sets (DESIGN.md, Settings), pointed
at the emulators, so the platform runs the one code path it runs against the vendors.
"""

from __future__ import annotations

import datetime as dt
import importlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from event_platform import settings
from event_platform.lake.filesystem import Lake
from event_platform.sandbox.world import World
from event_platform.sources import registry

SANDBOX_PSEUDONYM_KEY = "sandbox-only-pseudonym-key-not-a-secret"
SANDBOX_METRICS_FILE = Path(__file__).with_name("metrics.yaml")
SANDBOX_DEFINITIONS = "event_platform.sandbox.defs"
"""The sandbox's metric and experiment definitions (EVENT_PLATFORM_METRICS_FILE)."""


@dataclass(frozen=True)
class EmulatorContext:
    """What a source's emulator is started with (its registration's `sandbox` function)."""

    world: World
    lake: Lake
    days: Sequence[dt.date]
    """The days that have happened: exports and landings exist for these."""
    work_dir: Path
    events_per_day: Mapping[str, int]
    """Per source name, for emulators that generate a day's volume on request."""


Emulate = Callable[[EmulatorContext, ExitStack], Mapping[str, str]]
"""Starts a source's emulator on the stack and returns the environment pointing the platform at it."""


def emulator_of(source: registry.Source) -> Emulate:
    assert source.sandbox is not None
    module, _, function = source.sandbox.partition(":")
    return getattr(importlib.import_module(module), function)


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
        lake = Lake.from_uri(self.lake_root, s3_endpoint_url=settings.S3.read().endpoint_url)
        context = EmulatorContext(
            self.world,
            lake,
            self.days,
            work_dir,
            {"amplitude": self.amplitude_events_per_day, "profile_store": self.profile_store_events_per_day},
        )
        emulated: dict[str, str] = {}
        for source in registry.sources():
            if source.sandbox:
                emulated.update(emulator_of(source)(context, self._stack))
        self._environment = {
            **emulated,
            "EVENT_PLATFORM_LAKE": self.lake_root,
            "EVENT_PLATFORM_PSEUDONYM_KEY": SANDBOX_PSEUDONYM_KEY,
            "EVENT_PLATFORM_METRICS_FILE": str(SANDBOX_METRICS_FILE),
            # The partitions start where the sandbox's data does: the UI shows its days as the whole history.
            "EVENT_PLATFORM_START_DATE": min(self.days).isoformat(),
            # The sandbox's own Dagster objects (its check of planted truth) join the code location.
            "EVENT_PLATFORM_EXTENSIONS": SANDBOX_DEFINITIONS,
        }
