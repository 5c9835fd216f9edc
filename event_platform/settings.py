"""Every setting and secret of the platform, read from the environment in this one place.

Secrets become `dagster.EnvVar`s so Dagster shows their names, never their values. A source whose
credentials are absent still loads; its resource raises `MissingSettingsError` naming the variables
the moment something asks it for a client.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from dagster import EnvVar, Failure

from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.pseudonymise import Pseudonymiser

DEFAULT_LAKE = "./data/lake"
DEFAULT_WAREHOUSE = "./data/warehouse.duckdb"
DEFAULT_START_DATE = "2025-01-01"


class MissingSettingsError(Failure):
    """A source was asked for a client but the environment lacks the variables it needs.

    A Dagster Failure that allows no retries: waiting does not set a variable.
    """

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


def setting(name: str, default: str | None = None) -> str | None:
    """A plain (non-secret) setting: the variable's value, or `default` when unset or empty."""
    return os.environ.get(name) or default


def positive_number(name: str, default: float) -> float:
    """The setting `name` as a number above 0, `default` when unset; anything else is refused by name."""
    text = setting(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"{name} must be a positive number; it is {text!r}")
    return value


def secret(name: str) -> EnvVar | None:
    """A secret as an EnvVar when the variable is set, else None so the resource can say what is missing."""
    return EnvVar(name) if os.environ.get(name) else None


def require(source: str, values: Mapping[str, object | None]) -> None:
    """Raise MissingSettingsError naming every variable in `values` (name -> value) that is unset."""
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise MissingSettingsError(
            f"{source} is not configured: set {', '.join(missing)} in the environment or in .env "
            "(see .env.example)."
        )


class InvalidSettingError(ValueError):
    """A variable is set to something the platform cannot use; the message names it and what it needs."""


PSEUDONYM_KEY = "EVENT_PLATFORM_PSEUDONYM_KEY"


def pseudonymiser(source: str, key: str | None) -> Pseudonymiser:
    """The one keyed hash every source pseudonymises with, or MissingSettingsError naming the key
    (`key` is a resource's field, see `resolved`)."""
    value = resolved(key)
    require(source, {PSEUDONYM_KEY: value})
    assert value  # require() raised otherwise
    return Pseudonymiser(value)


def resolved(value: str | None) -> str | None:
    """A resource field's value. Dagster resolves EnvVar fields when a run starts its resources; outside
    a run (the CLI) the field still holds the EnvVar, a str of the variable's *name*, which must never be
    used as the secret itself."""
    return value.get_value() if isinstance(value, EnvVar) else value


def start_date() -> str:
    """The first daily partition, YYYY-MM-DD; an unusable value is named at load, not deep in a run."""
    value = setting("EVENT_PLATFORM_START_DATE", DEFAULT_START_DATE) or DEFAULT_START_DATE
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != len("YYYY-MM-DD") or day > dt.datetime.now(dt.UTC).date():
        raise InvalidSettingError(
            f"EVENT_PLATFORM_START_DATE must be a past day as YYYY-MM-DD (e.g. {DEFAULT_START_DATE}), "
            f"got {value!r}: fix it in the environment or in .env"
        )
    return value


def lake_resource() -> LakeResource:
    return LakeResource(
        root=setting("EVENT_PLATFORM_LAKE", DEFAULT_LAKE) or DEFAULT_LAKE,
        s3_endpoint_url=setting("AWS_ENDPOINT_URL_S3"),
    )


def resources() -> dict[str, Any]:
    """The resources every part shares; each source and the warehouse register their own."""
    lake = lake_resource()
    return {"lake": lake, "io_manager": ParquetLakeIOManager(lake=lake)}


EXTENSIONS = "EVENT_PLATFORM_EXTENSIONS"


def extensions() -> list[str]:
    """EVENT_PLATFORM_EXTENSIONS: packages whose `definitions()` join the code location (the sandbox
    names its own, for its checks of planted truth)."""
    return [name.strip() for name in (setting(EXTENSIONS) or "").split(",") if name.strip()]
