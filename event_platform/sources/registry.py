"""The source registry: every source the platform lands, each declaring itself once in its own folder.

A source is a package `event_platform/sources/<name>/` whose `__init__.py` declares `SOURCE = Source(...)`
(plain data, imported by the CLI, the warehouse and the sandbox without loading Dagster), with beside it:
- `defs/`: its Dagster objects, gathered by `defs/__init__.py`'s `definitions()` (assets, checks,
  sensors, jobs and the resources it registers);
- `commands.py`: its `event-platform <name> ...` commands (`add_commands(subparsers)`);
- `warehouse_events.sql`: how its events table maps onto `warehouse/events` (when it has one).

Adding a source is that folder plus its package in `REGISTERED`; everything that spans sources (the code
location, the schedules and freshness, the warehouse's unified events and identity map, the catalog,
the CLI and the sandbox) is built from `sources()`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

REGISTERED: tuple[str, ...] = (
    "event_platform.sources.amplitude",
    "event_platform.sources.optimizely",
    "event_platform.sources.profile_store",
    "event_platform.sources.tracking",
)
"""The packages of the registered sources, in the order they are listed everywhere."""

WAREHOUSE_EVENTS_SQL = "warehouse_events.sql"


@dataclass(frozen=True)
class SourceTable:
    """A typed table a source lands in the lake as `<source>/<name>` (its asset key too)."""

    name: str
    description: str
    """What a row is: the table's `COMMENT` in the analysts' warehouse.duckdb."""
    event_time: str | None = None
    """On the table whose rows are the source's events: the column saying when each happened. That
    table feeds `warehouse/events` through the source's `warehouse_events.sql`."""
    partitioned: bool = True


@dataclass(frozen=True)
class IdentityField:
    """A column of the source's events table naming a person in a namespace (`user`, `device`)."""

    column: str
    namespace: str


@dataclass(frozen=True)
class DailySchedule:
    """When the source's day D is requested, and by when it must have landed."""

    cron: str
    """When on D+1 (UTC) day D is requested."""
    fresh_by: str
    """The cron by which day D must have landed."""
    why: str


@dataclass(frozen=True)
class EmptyDay:
    """What a day with no rows means for the source, said by its `not_empty` check."""

    possible: bool
    """True where a quiet day really happens (no learners on the LMS, no experiment running)."""
    meaning: str
    """What an empty day most likely means and what to do, in a sentence."""

    def describe(self) -> str:
        verdict = "WARN: it can be a quiet day" if self.possible else "ERROR: a day is never empty"
        return f"The day has rows ({verdict}; {self.meaning})"


@dataclass(frozen=True)
class Source:
    name: str
    """The source's Dagster group, the first part of its asset keys, its lake folder and CLI command."""
    title: str
    tables: tuple[SourceTable, ...]
    empty_day: EmptyDay
    identity: tuple[IdentityField, ...] = ()
    """Its events' identifiers, strongest first (the default identity rules)."""
    schedule: DailySchedule | None = None
    """None for a source requested by its own sensor (it then gets a freshness window instead)."""
    settings: str | None = None
    """`module:Class` of its settings part (an `event_platform.settings.Part`): the environment variables
    it reads, listed with the platform's in `.env.example` and the README."""
    sandbox: str | None = None
    """`module:function` of its emulator in the sandbox package (see `sandbox/runner.py`)."""
    package: str = field(default="", compare=False)
    """Filled in by the registry: the package that declared it."""

    @property
    def events_table(self) -> SourceTable | None:
        return next((table for table in self.tables if table.event_time), None)

    @property
    def defs_module(self) -> str:
        return f"{self.package}.defs"

    @property
    def commands_module(self) -> str:
        return f"{self.package}.commands"

    def settings_part(self) -> Any:
        """Its settings class, or None (imported when asked: it imports `event_platform.settings`)."""
        return _attribute(self.settings) if self.settings else None

    def folder(self) -> Path:
        module = importlib.import_module(self.package)
        assert module.__file__ is not None
        return Path(module.__file__).parent

    def warehouse_events_sql(self) -> Path:
        return self.folder() / WAREHOUSE_EVENTS_SQL


def _attribute(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


class RegistryError(ValueError):
    """A registered package does not declare a usable source."""


def _declared(package: str) -> Source:
    module: ModuleType = importlib.import_module(package)
    source = getattr(module, "SOURCE", None)
    if not isinstance(source, Source):
        raise RegistryError(f"{package} is registered as a source but declares no `SOURCE = Source(...)`")
    if source.events_table and not (Path(str(module.__file__)).parent / WAREHOUSE_EVENTS_SQL).exists():
        raise RegistryError(f"{package} has an events table but no {WAREHOUSE_EVENTS_SQL} beside it")
    return Source(**{**source.__dict__, "package": package})


_extra: list[str] = []


@cache
def _sources(packages: tuple[str, ...]) -> tuple[Source, ...]:
    sources = tuple(_declared(package) for package in packages)
    names = [source.name for source in sources]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise RegistryError(f"two registered sources are named {', '.join(duplicated)}")
    return sources


def sources() -> tuple[Source, ...]:
    """Every registered source, in `REGISTERED` order."""
    return _sources((*REGISTERED, *_extra))


def source(name: str) -> Source:
    for candidate in sources():
        if candidate.name == name:
            return candidate
    raise KeyError(f"no registered source is named {name!r}")


@contextmanager
def registered(*packages: str) -> Iterator[tuple[Source, ...]]:
    """Register more source packages for the duration (an extension's tests, a plug-in)."""
    _extra.extend(packages)
    try:
        yield sources()
    finally:
        del _extra[-len(packages) :]
