"""The settings: every variable declared once in settings.py, read when asked, checked with a message that
names it, secrets handed to Dagster only as EnvVars, and `.env.example` and the README generated from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dagster as dg
import pytest

from event_platform import settings
from event_platform.sources.amplitude.client import (
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
)
from event_platform.sources.amplitude.defs.resources import amplitude_resource
from event_platform.sources.amplitude.settings import AmplitudeSettings
from event_platform.sources.optimizely.client import DEFAULT_AUTH_URL, DEFAULT_BUCKET
from event_platform.sources.optimizely.defs.resources import optimizely_resource
from event_platform.sources.optimizely.rest_client import DEFAULT_REQUESTS_PER_SECOND, DEFAULT_REST_URL
from event_platform.sources.optimizely.settings import OptimizelySettings
from event_platform.sources.profile_store.client import DEFAULT_PAGE_SIZE
from event_platform.sources.profile_store.defs.resources import profile_store_resource
from event_platform.sources.profile_store.settings import ProfileStoreSettings
from event_platform.sources.tracking.collector import CollectorSettings
from event_platform.sources.tracking.defs.resources import tracking_resource
from event_platform.sources.tracking.server import ServerLimits
from event_platform.sources.tracking.settings import TrackingSettings
from event_platform.warehouse.engine import EngineSettings
from event_platform.warehouse.identity import default_rules
from event_platform.warehouse.inference import InferenceSettings
from event_platform_tests.conftest import REPO

PRODUCT = REPO / "event_platform"
OUR_VARIABLE = re.compile(
    r"\b(?:EVENT_PLATFORM|AMPLITUDE|OPTIMIZELY|PROFILE_STORE|TRACKING)_[A-Z0-9_]*[A-Z0-9]\b"
)


def every_variable() -> list[str]:
    return [name for part in settings.parts() for info in part.model_fields.values() for name in names(info)]


def names(info: object) -> tuple[str, ...]:
    return settings.variable_names(info)  # type: ignore[arg-type]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No variable of the platform set: every part at its defaults."""
    for name in every_variable():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ---- Declared once, and documented from the declaration -------------------------------------------


def test_env_example_is_generated_from_the_settings() -> None:
    assert (REPO / ".env.example").read_text() == settings.env_example(), (
        "`.env.example` differs from the settings: run `make settings-docs`"
    )


def test_the_readme_table_is_generated_from_the_settings() -> None:
    readme = (REPO / "README.md").read_text()
    assert settings.readme_with_table(readme) == readme, (
        "README.md's settings table differs from the settings: run `make settings-docs`"
    )


def test_every_variable_is_declared_once_and_described() -> None:
    variables = every_variable()
    assert len(variables) == len(set(variables))
    undescribed = [
        name
        for part in settings.parts()
        for field, info in part.model_fields.items()
        if not info.description
        for name in (part.name_of(field),)
    ]
    assert not undescribed


def test_every_variable_the_code_names_is_declared() -> None:
    declared = set(every_variable())
    named = {
        f"{path.relative_to(REPO)}: {match.group()}"
        for path in PRODUCT.rglob("*.py")
        for match in OUR_VARIABLE.finditer(path.read_text())
        if match.group() not in declared
    }
    assert not named, "Declare these in event_platform/settings.py (or fix the name):\n" + "\n".join(
        sorted(named)
    )


def environment_reads(path: Path) -> list[int]:
    """Lines of `os.environ.get(...)`, `os.environ[...]` read and `os.getenv(...)` in a file."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(node, ast.Call) and isinstance(target, ast.Attribute):
            if ast.unparse(target) in ("os.environ.get", "os.getenv"):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_settings_read_variables() -> None:
    reads = {
        f"{path.relative_to(REPO)}:{line}"
        for path in PRODUCT.rglob("*.py")
        if path != PRODUCT / "settings.py"
        for line in environment_reads(path)
    }
    assert not reads, "Read these through event_platform/settings.py:\n" + "\n".join(sorted(reads))


def test_the_defaults_are_the_components_own() -> None:
    """Where a plain component has a default of its own (tests and the sandbox build it directly), the
    variable's default is the same."""
    collector, server, engine, inference = (
        CollectorSettings(),
        ServerLimits(),
        EngineSettings(),
        InferenceSettings(),
    )
    tracking = TrackingSettings.model_fields
    assert {
        name: tracking[name].default for name in ("max_event_bytes", "max_batch_bytes", "flush_bytes")
    } == {
        "max_event_bytes": collector.max_event_bytes,
        "max_batch_bytes": collector.max_batch_bytes,
        "flush_bytes": collector.flush_bytes,
    }
    assert (tracking["flush_age_seconds"].default, tracking["seen_uuids"].default) == (
        collector.flush_age_seconds,
        collector.seen_uuids,
    )
    assert (tracking["body_seconds"].default, tracking["header_seconds"].default) == (
        collector.body_seconds,
        server.header_seconds,
    )
    assert (tracking["keep_alive_seconds"].default, tracking["max_connections"].default) == (
        server.keep_alive_seconds,
        server.max_connections,
    )
    warehouse, experiments = settings.Warehouse.model_fields, settings.Experiments.model_fields
    assert (warehouse["memory_limit"].default, warehouse["threads"].default) == (
        engine.memory_limit,
        engine.threads,
    )
    assert [experiments[name].default for name in ("method", "tuning_units", "correction")] == [
        inference.method,
        inference.tuning_units,
        inference.correction,
    ]
    amplitude = AmplitudeSettings.model_fields
    assert (amplitude["max_uncompressed_bytes"].default, amplitude["max_compression_ratio"].default) == (
        DEFAULT_MAX_UNCOMPRESSED_BYTES,
        DEFAULT_MAX_COMPRESSION_RATIO,
    )
    optimizely = OptimizelySettings.model_fields
    assert optimizely["rest_requests_per_second"].default == DEFAULT_REQUESTS_PER_SECOND
    assert ProfileStoreSettings.model_fields["page_size"].default == DEFAULT_PAGE_SIZE
    # Unset, these mean the component's own value, which .env.example shows as the example.
    assert [optimizely[name].examples for name in ("bucket", "auth_url", "rest_url")] == [
        [DEFAULT_BUCKET],
        [DEFAULT_AUTH_URL],
        [DEFAULT_REST_URL],
    ]
    rules = ",".join(f"{rule.source}.{rule.column}={rule.namespace}" for rule in default_rules())
    assert warehouse["identity_rules"].examples == [rules]


# ---- Read when asked, checked by name ----------------------------------------------------------------


def test_unset_or_empty_variables_are_the_defaults(clean_environment: pytest.MonkeyPatch) -> None:
    defaults = [part.read() for part in settings.parts()]
    for name in every_variable():
        clean_environment.setenv(name, "")
    assert [part.read() for part in settings.parts()] == defaults
    assert settings.Experiments.read().cuped is True
    assert settings.Platform.read().extensions == ()


def test_settings_are_read_when_asked(clean_environment: pytest.MonkeyPatch) -> None:
    assert TrackingSettings.read().allowed_origins == ()
    clean_environment.setenv("TRACKING_ALLOWED_ORIGINS", " https://a.example, ,https://b.example")
    clean_environment.setenv("TRACKING_FLUSH_AGE_SECONDS", "0.25")
    clean_environment.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    tracking = TrackingSettings.read()
    assert tracking.allowed_origins == ("https://a.example", "https://b.example")
    assert tracking.flush_age_seconds == 0.25
    assert settings.S3.read().region == "eu-west-1"
    clean_environment.setenv("AWS_REGION", "eu-central-1")
    assert settings.S3.read().region == "eu-central-1", "AWS_REGION before AWS_DEFAULT_REGION"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EVENT_PLATFORM_START_DATE", "2025-13-45", "must be a past day as YYYY-MM-DD (e.g. 2025-01-01)"),
        ("EVENT_PLATFORM_START_DATE", "20250101", "must be a past day as YYYY-MM-DD"),
        ("EVENT_PLATFORM_START_DATE", "2999-01-01", "must be a past day as YYYY-MM-DD"),
        ("EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS", "inf", "must be a positive number of seconds"),
        ("EVENT_PLATFORM_DUCKDB_THREADS", "0", "must be a positive whole number"),
        ("EVENT_PLATFORM_IDENTITY_LOOKBACK_DAYS", "0", "must be a whole number of days, 1 or more"),
        ("EVENT_PLATFORM_LOOKBACK_DAYS", "-1", "must be a whole number of days, 0 or more"),
        ("EVENT_PLATFORM_CUPED", "yes", "must be on or off"),
        ("EVENT_PLATFORM_EXPERIMENT_METHOD", "bayes", "must be one of sequential, fixed_z, fixed_welch"),
        ("EVENT_PLATFORM_EXPERIMENT_CORRECTION", "bonferroni", "must be one of benjamini_hochberg, holm"),
        ("EVENT_PLATFORM_EXPERIMENT_WEIGHTS", '{"9": [1, 2]}', 'must be JSON like {"<experiment_id>"'),
        ("EVENT_PLATFORM_EXPERIMENT_WEIGHTS", "half and half", "must be JSON like"),
        ("AMPLITUDE_REGION", "de", "must be us or eu"),
        ("AMPLITUDE_MAX_COMPRESSION_RATIO", "many", "must be a positive number"),
        ("OPTIMIZELY_PROJECT_IDS", "12,web", "must be project ids (digits) separated by commas"),
        ("PROFILE_STORE_TIME_SUFFIX_Z", "maybe", "must be true or false"),
        ("TRACKING_SEEN_UUIDS", "1.5", "must be a positive whole number"),
    ],
)
def test_a_wrong_value_names_its_variable_and_what_it_must_be(
    clean_environment: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    clean_environment.setenv(name, value)
    part = next(part for part in settings.parts() if name in every_variable_of(part))
    with pytest.raises(settings.InvalidSettingError) as raised:
        part.read()
    assert str(raised.value).startswith(f"{name} {message}")
    assert str(raised.value).endswith(
        f", got {value!r}. Fix it in the environment or in .env (see .env.example)."
    )


def every_variable_of(part: type[settings.Part]) -> list[str]:
    return [name for info in part.model_fields.values() for name in names(info)]


def test_every_wrong_value_of_a_part_is_named_at_once(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("TRACKING_FLUSH_BYTES", "lots")
    clean_environment.setenv("TRACKING_HEADER_SECONDS", "-1")
    with pytest.raises(
        settings.InvalidSettingError, match=r"TRACKING_FLUSH_BYTES .*; TRACKING_HEADER_SECONDS"
    ):
        TrackingSettings.read()


# ---- Secrets -----------------------------------------------------------------------------------------


def test_secrets_reach_the_resources_only_as_env_vars(clean_environment: pytest.MonkeyPatch) -> None:
    secrets = {
        "AMPLITUDE_API_KEY": "amplitude-key-0001",
        "AMPLITUDE_SECRET_KEY": "amplitude-secret-0002",
        "OPTIMIZELY_API_TOKEN": "optimizely-token-0003",
        "PROFILE_STORE_API_KEY": "profile-store-key-0004",
        "TRACKING_SHARED_SECRET": "tracking-secret-0005",
        "EVENT_PLATFORM_PSEUDONYM_KEY": "pseudonym-key-0006",
    }
    for name, value in secrets.items():
        clean_environment.setenv(name, value)
    declared = {
        part.name_of(field)
        for part in settings.parts()
        for field, info in part.model_fields.items()
        if settings.is_secret(info)
    }
    assert declared == {*secrets, "EVENT_PLATFORM_ALERT_WEBHOOK_URL"}

    amplitude, optimizely = amplitude_resource(), optimizely_resource()
    profile_store, tracking = profile_store_resource(), tracking_resource()
    assert {
        "AMPLITUDE_API_KEY": amplitude.api_key,
        "AMPLITUDE_SECRET_KEY": amplitude.secret_key,
        "OPTIMIZELY_API_TOKEN": optimizely.api_token,
        "PROFILE_STORE_API_KEY": profile_store.api_key,
        "TRACKING_SHARED_SECRET": tracking.shared_secret,
        "EVENT_PLATFORM_PSEUDONYM_KEY": amplitude.pseudonym_key,
    } == {name: dg.EnvVar(name) for name in secrets}
    assert (
        optimizely.pseudonym_key == profile_store.pseudonym_key == dg.EnvVar("EVENT_PLATFORM_PSEUDONYM_KEY")
    )
    shown = repr(
        [amplitude, optimizely, profile_store, tracking, *(part.read() for part in settings.parts())]
    )
    assert not [value for value in secrets.values() if value in shown]


def test_an_unset_secret_is_none_so_the_resource_names_it(clean_environment: pytest.MonkeyPatch) -> None:
    assert AmplitudeSettings.read().env_var("api_key") is None
    assert amplitude_resource().api_key is None
