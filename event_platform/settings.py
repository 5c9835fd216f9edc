"""Every setting and secret of the platform: each environment variable declared once, with its type,
default, validation and description (what `.env.example` and the README's table show; both are generated
from the declarations, `make settings-docs`). The platform's parts are declared here; each registered
source declares its own part in its folder's `settings.py` (its registration names it), with the types
and helpers of this module.

The variables are grouped in parts (`parts()`), each a pydantic-settings class read from the environment
when code asks for it (`TrackingSettings.read()`), not once per process: tests and the sandbox change
the environment, and a wrong value fails where its part is used, naming the variable and what it must
be (`InvalidSettingError`).
`.env` is read by the CLI (`load_dotenv`) and by `dagster dev`, into the environment, not here.

Secrets (`SecretStr`) reach Dagster resources only as `dagster.EnvVar`s (`Part.env_var`), so Dagster shows
their names, never their values. A source whose credentials are absent still loads; its resource raises
`MissingSettingsError` naming the variables the moment something asks it for a client.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self, get_args

from dagster import EnvVar, Failure
from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from event_platform.pseudonymise import Pseudonymiser
from event_platform.warehouse.inference import Correction, Method


class MissingSettingsError(Failure):
    """A source was asked for a client but the environment lacks the variables it needs.

    A Dagster Failure that allows no retries: waiting does not set a variable.
    """

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


class InvalidSettingError(ValueError):
    """A variable is set to something the platform cannot use; the message names it and what it needs."""


# ---- Types: what a value must be, said in the message when it is not -------------------------------


@dataclass(frozen=True)
class Must:
    """What a variable of this type must be, as `InvalidSettingError` says it."""

    text: str


def _lowercase(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _on_off(value: object) -> object:
    words = {"on": True, "off": False}
    if isinstance(value, str) and (word := value.strip().lower()) in words:
        return words[word]
    if isinstance(value, bool):
        return value
    raise ValueError("not on or off")


def comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def _past_day(value: object) -> object:
    """YYYY-MM-DD, exactly (`date.fromisoformat` also takes 20250101), and not after today (UTC)."""
    day = value
    if isinstance(value, str):
        if len(value) != len("YYYY-MM-DD"):
            raise ValueError("not YYYY-MM-DD")
        day = dt.date.fromisoformat(value)
    if isinstance(day, dt.date) and day > dt.datetime.now(dt.UTC).date():
        raise ValueError("in the future")
    return day


def one_of(options: type[Enum]) -> str:
    return "one of " + ", ".join(str(option.value) for option in options)


PositiveInt = Annotated[int, Field(gt=0), Must("a positive whole number")]
PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False), Must("a positive number")]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False), Must("a positive number of seconds")]
Days = Annotated[int, Field(ge=1), Must("a whole number of days, 1 or more")]
DaysOrZero = Annotated[int, Field(ge=0), Must("a whole number of days, 0 or more")]
Switch = Annotated[bool, BeforeValidator(_on_off), Must("on or off")]
TrueFalse = Annotated[bool, Must("true or false")]
Names = Annotated[tuple[str, ...], NoDecode, BeforeValidator(comma_list), Must("names separated by commas")]
Secret = SecretStr | None

DEFAULT_START_DATE = dt.date(2025, 1, 1)


def var(
    name: str | AliasChoices,
    default: Any,
    description: str,
    *,
    example: str | None = None,
    fill_in: bool = False,
) -> Any:
    """A field read from the variable `name` (or the first of several names that is set).

    `example` is shown where the default is empty; `fill_in` variables appear uncommented, empty, in
    `.env.example`: the ones a new deployment sets."""
    extra = {"fill_in": True} if fill_in else None
    return Field(
        default,
        validation_alias=name,
        description=description,
        examples=[example] if example else None,
        json_schema_extra=extra,
    )


# ---- The parts ---------------------------------------------------------------------------------------


class Part(BaseSettings):
    """A group of variables, read from the environment by `read()` (exact names, empty means unset)."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, frozen=True)
    title: ClassVar[str]
    """The part's heading in `.env.example` and in the README's table."""
    notes: ClassVar[str] = ""
    """What else a reader of the part should know (variables that libraries, not our code, read)."""

    @classmethod
    def read(cls, **overrides: object) -> Self:
        """The part as the environment sets it now; `overrides` that are not None win over the environment
        (a resource's own configuration) and are checked the same way."""
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            return cls(**{cls.name_of(name): value for name, value in given.items()})
        except ValidationError as error:
            problems = dict.fromkeys(cls._problem(detail, given) for detail in error.errors())
            message = "; ".join(text for text, _ in problems)
            if any(from_environment for _, from_environment in problems):
                message += ". Fix it in the environment or in .env (see .env.example)"
            raise InvalidSettingError(message + ".") from None

    @classmethod
    def name_of(cls, field: str) -> str:
        """The variable a field is read from (the first name, where it has several)."""
        return variable_names(cls.model_fields[field])[0]

    @classmethod
    def _problem(cls, detail: Mapping[str, Any], given: Mapping[str, object]) -> tuple[str, bool]:
        """What is wrong, naming the variable and what it must be; and whether the environment set it."""
        place = str(detail["loc"][0]) if detail["loc"] else ""
        field = next((name for name, info in cls.model_fields.items() if place in variable_names(info)), None)
        if field is None:
            return f"{place}: {detail['msg']}", False
        info = cls.model_fields[field]
        must = next((item.text for item in info.metadata if isinstance(item, Must)), None)
        requirement = f"must be {must}" if must else f"is wrong ({detail['msg']})"
        value = given[field] if field in given else os.environ.get(place)
        got = "(hidden)" if is_secret(info) else repr(value)
        if field in given:
            return f"{field} (as {cls.name_of(field)}) {requirement}, got {got}", False
        return f"{place} {requirement}, got {got}", True

    def env_var(self, field: str) -> EnvVar | None:
        """A secret for a Dagster resource's configuration: its variable as a `dagster.EnvVar` (Dagster
        reads the value when a run starts the resource and shows only the name); None when unset, so the
        resource can say what is missing."""
        return EnvVar(self.name_of(field)) if getattr(self, field) is not None else None


def variable_names(info: FieldInfo) -> tuple[str, ...]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (str(alias),)


def is_secret(info: FieldInfo) -> bool:
    return SecretStr in get_args(info.annotation)


def reveal(secret: SecretStr | None) -> str | None:
    """A secret's value, for code that runs outside Dagster's resources (the CLI, the collector)."""
    return secret.get_secret_value() if secret is not None else None


class Platform(Part):
    title = "The lake and the warehouse"

    lake: str = var(
        "EVENT_PLATFORM_LAKE",
        "./data/lake",
        "A directory, or s3://bucket/prefix (then the S3 settings below apply).",
    )
    warehouse: str = var(
        "EVENT_PLATFORM_WAREHOUSE",
        "./data/warehouse.duckdb",
        "The analysts' DuckDB file, written only by the warehouse/catalog asset.",
    )
    start_date: Annotated[
        dt.date,
        BeforeValidator(_past_day),
        Must(f"a past day as YYYY-MM-DD (e.g. {DEFAULT_START_DATE})"),
    ] = var(
        "EVENT_PLATFORM_START_DATE",
        DEFAULT_START_DATE,
        "First daily partition (UTC). The sandbox (make demo, make ui) sets it to its own first day.",
    )
    pseudonym_key: Secret = var(
        "EVENT_PLATFORM_PSEUDONYM_KEY",
        None,
        "Key of the keyed hash (HMAC-SHA256) that pseudonymises emails, names and IP addresses of every "
        "source (Amplitude, Optimizely and the Profile Store need it). Changing it breaks joins with data "
        "hashed under the old key.",
        fill_in=True,
    )
    max_retry_after_seconds: Seconds = var(
        "EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS",
        300.0,
        "The longest Retry-After a vendor client waits; a vendor asking for longer fails the call at once.",
    )
    extensions: Names = var(
        "EVENT_PLATFORM_EXTENSIONS",
        (),
        "Packages (comma-separated) whose definitions() join the code location; the sandbox names its own.",
    )


class Warehouse(Part):
    title = "The warehouse's DuckDB models"
    notes = (
        "The attribution window and the identity lookback shape the assets' partition mappings, so they "
        "are read when the definitions load, not per run."
    )

    memory_limit: str = var(
        "EVENT_PLATFORM_DUCKDB_MEMORY_LIMIT",
        "2GB",
        "Memory of each in-process DuckDB (it spills to disk past the limit).",
    )
    threads: PositiveInt = var("EVENT_PLATFORM_DUCKDB_THREADS", 2, "Threads of each in-process DuckDB.")
    attribution_window_days: Days = var(
        "EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS",
        7,
        "Conversions count this many days after a visitor's first exposure.",
    )
    identity_lookback_days: Days = var(
        "EVENT_PLATFORM_IDENTITY_LOOKBACK_DAYS",
        30,
        "Days of identity links (device seen with user) a day's events resolve through.",
    )
    identity_rules: str | None = var(
        "EVENT_PLATFORM_IDENTITY_RULES",
        None,
        "Which source columns denote one person: source.column=namespace, comma-separated, strongest first "
        "within a source (see event_platform/warehouse/identity.py); unset, each source's own.",
        example="amplitude.user_id=user,amplitude.device_id=device,optimizely.visitor_id=user,"
        "profile_store.device_id=device,tracking.anon_username=user",
    )


class Experiments(Part):
    title = "Experiment results"

    traffic_weights: Annotated[
        dict[str, dict[str, float]],
        NoDecode,
        BeforeValidator(_json),
        Must('JSON like {"<experiment_id>": {"<variation_id>": 0.5, ...}}'),
    ] = var(
        "EVENT_PLATFORM_EXPERIMENT_WEIGHTS",
        {},
        "Planned splits for experiments Optimizely's REST metadata does not give (the sample-ratio-mismatch "
        'test uses the metadata\'s weights first): {"experiment_id": {"variation_id": weight}}.',
    )
    metrics_file: str | None = var(
        "EVENT_PLATFORM_METRICS_FILE",
        None,
        "Metric and experiment definitions (YAML) for experiment_results; see the README's section for "
        "analysts.",
        example="metrics.yaml",
    )
    method: Annotated[Method, BeforeValidator(_lowercase), Must(one_of(Method))] = var(
        "EVENT_PLATFORM_EXPERIMENT_METHOD",
        Method.SEQUENTIAL,
        "The test experiment_results uses: sequential (always-valid mixture SPRT, valid however often the "
        "table is read), or fixed_z / fixed_welch for an experiment analysed once at a planned end.",
    )
    tuning_units: PositiveNumber = var(
        "EVENT_PLATFORM_SEQUENTIAL_TUNING_UNITS",
        100_000,
        "Units (both arms) at which the sequential interval is narrowest; keep it for an experiment's life.",
    )
    correction: Annotated[Correction, BeforeValidator(_lowercase), Must(one_of(Correction))] = var(
        "EVENT_PLATFORM_EXPERIMENT_CORRECTION",
        Correction.BENJAMINI_HOCHBERG,
        "Multiple-comparison correction across an experiment's metrics x variations: benjamini_hochberg or "
        "holm.",
    )
    cuped: Switch = var(
        "EVENT_PLATFORM_CUPED",
        True,
        "CUPED: adjust conversion, count and sum metrics by each unit's same metric over the 14 days before "
        "its first exposure (narrower intervals where behaviour persists): on or off.",
    )


class Operations(Part):
    title = "Operations"
    notes = (
        "The production instance (deploy/dagster.postgres.yaml) reads DAGSTER_PG_HOST, DAGSTER_PG_PORT "
        "(5432), DAGSTER_PG_DB, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD, DAGSTER_COMPUTE_LOGS_BUCKET and "
        "DAGSTER_COMPUTE_LOGS_PREFIX itself: PostgreSQL and S3 compute logs."
    )

    lookback_days: DaysOrZero = var(
        "EVENT_PLATFORM_LOOKBACK_DAYS",
        1,
        "Each scheduled tick also re-materializes this many days before yesterday, for late data.",
    )
    alert_webhook_url: Secret = var(
        "EVENT_PLATFORM_ALERT_WEBHOOK_URL",
        None,
        "Where failed runs (and assets turning stale) are POSTed as JSON, e.g. a Slack incoming webhook.",
    )


class S3(Part):
    title = "S3 for the lake (moto, MinIO or AWS)"
    notes = (
        "Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a "
        "profile or a role), read by boto3, Arrow and delta-rs themselves."
    )

    endpoint_url: str | None = var(
        "AWS_ENDPOINT_URL_S3",
        None,
        "An S3-compatible endpoint instead of AWS's (MinIO, moto).",
        example="http://127.0.0.1:9000",
    )
    region: str = var(
        AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        "us-east-1",
        "The lake's region (AWS_DEFAULT_REGION when AWS_REGION is unset).",
    )


PLATFORM_PARTS: tuple[type[Part], ...] = (Platform, Warehouse, Experiments, Operations, S3)
"""The parts of the platform itself; each registered source declares its own (`Source.settings`)."""


def parts() -> tuple[type[Part], ...]:
    """Every part, in the order `.env.example` and the README list them: the platform's, then each
    registered source's."""
    from event_platform.sources import registry  # the sources' settings modules import this one

    return (*PLATFORM_PARTS, *(part for source in registry.sources() if (part := source.settings_part())))


# ---- Secrets at work -----------------------------------------------------------------------------------


def require(source: str, values: Mapping[str, object | None]) -> None:
    """Raise MissingSettingsError naming every variable in `values` (name -> value) that is unset."""
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise MissingSettingsError(
            f"{source} is not configured: set {', '.join(missing)} in the environment or in .env "
            "(see .env.example)."
        )


def pseudonymiser(source: str, key: str | None) -> Pseudonymiser:
    """The one keyed hash every source pseudonymises with, or MissingSettingsError naming the key
    (`key` is a resource's field, see `resolved`)."""
    value = resolved(key)
    require(source, {Platform.name_of("pseudonym_key"): value})
    assert value  # require() raised otherwise
    return Pseudonymiser(value)


def resolved(value: str | None) -> str | None:
    """A resource field's value. Dagster resolves EnvVar fields when a run starts its resources; outside
    a run (the CLI) the field still holds the EnvVar, a str of the variable's *name*, which must never be
    used as the secret itself."""
    return value.get_value() if isinstance(value, EnvVar) else value


# ---- .env.example and the README's table, generated --------------------------------------------------

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
README = ENV_EXAMPLE.with_name("README.md")
README_START = "<!-- settings:start -->"
README_END = "<!-- settings:end -->"
WIDTH = 105
ENV_EXAMPLE_HEADER = """\
# event-platform settings, generated by `make settings-docs` from event_platform/settings.py and each
# registered source's settings.py (edit there).
# Copy to .env (read by `dagster dev` and by `event-platform`) and fill in the empty ones; a commented
# line shows the default, or an example. The sandbox (`make demo`, `make ui`) sets its own values for
# everything vendor-related.
"""


def shown(info: FieldInfo) -> str:
    """A field's default as one writes it in the environment ('' for none)."""
    value = info.default
    if value is None or value in ((), {}):
        return ""
    if isinstance(value, bool):
        switch = any(isinstance(item, BeforeValidator) and item.func is _on_off for item in info.metadata)
        return ("on" if value else "off") if switch else str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def description(info: FieldInfo) -> str:
    text = info.description or ""
    return f"Secret: {text[:1].lower()}{text[1:]}" if is_secret(info) else text


def env_example() -> str:
    """`.env.example`: every part under its heading, each variable with its description above it."""
    lines = [ENV_EXAMPLE_HEADER.rstrip("\n")]
    for part in parts():
        lines += ["", f"# ---- {part.title} ".ljust(WIDTH, "-")]
        if part.notes:
            lines += [*_comment(part.notes), "#"]
        for name, info in part.model_fields.items():
            lines += _comment(description(info))
            value = shown(info) or (info.examples[0] if info.examples else "")
            fill_in = bool(info.json_schema_extra and info.json_schema_extra.get("fill_in"))
            lines.append(f"{'' if fill_in else '# '}{part.name_of(name)}={value}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)


def readme_table() -> str:
    """The README's table of every variable, default and description, between its marker comments."""
    lines = [
        README_START,
        "<!-- Generated by `make settings-docs` from event_platform/settings.py and each source's "
        "settings.py: edit them there. -->",
        "",
        _row("Variable", "Default", "Description"),
        "|---|---|---|",
    ]
    for part in parts():
        lines.append(_row(f"**{part.title}**", "", _cell(part.notes)))
        for name, info in part.model_fields.items():
            default = f"`{shown(info)}`" if shown(info) else ""
            example = f" E.g. `{info.examples[0]}`." if info.examples else ""
            lines.append(_row(f"`{part.name_of(name)}`", default, _cell(description(info)) + example))
    lines.append(README_END)
    return "\n".join(lines)


def _row(*cells: str) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme_with_table(readme: str) -> str:
    """The README with its table replaced by the generated one."""
    if README_START not in readme or README_END not in readme:
        raise ValueError(f"README.md lacks the lines {README_START} and {README_END} around the table")
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    return readme[:start] + readme_table() + readme[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m event_platform.settings",
        description="Print .env.example or the README's settings table, or write both into the checkout.",
    )
    parser.add_argument("what", choices=["env-example", "readme-table", "write"])
    what = parser.parse_args(argv).what
    if what == "env-example":
        sys.stdout.write(env_example())
    elif what == "readme-table":
        print(readme_table())
    else:
        ENV_EXAMPLE.write_text(env_example())
        README.write_text(readme_with_table(README.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
