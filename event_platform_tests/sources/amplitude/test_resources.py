"""The Amplitude resource: configured from the environment, secrets kept as EnvVars, missing ones named."""

from __future__ import annotations

import pytest

from event_platform import settings
from event_platform.sources.amplitude.defs.resources import AmplitudeResource, amplitude_resource

SECRET = "amplitude-secret-from-env"


def test_missing_credentials_fail_at_once_naming_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AMPLITUDE_API_KEY", "AMPLITUDE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(settings.MissingSettingsError, match="AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY"):
        amplitude_resource().process_config_and_initialize().client()


def test_the_environment_configures_the_client_and_the_secret_stays_out_of_reprs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMPLITUDE_API_KEY", "key-from-env")
    monkeypatch.setenv("AMPLITUDE_SECRET_KEY", SECRET)
    monkeypatch.setenv("AMPLITUDE_REGION", "eu")
    monkeypatch.delenv("AMPLITUDE_BASE_URL", raising=False)
    resource = amplitude_resource()
    assert SECRET not in repr(resource), "configured as an EnvVar: only the variable's name shows"

    client = resource.process_config_and_initialize().client()
    assert client.export_url == "https://analytics.eu.amplitude.com/api/2/export"
    assert SECRET not in repr(client)


def test_an_explicit_base_url_wins_over_the_region() -> None:
    resource = AmplitudeResource(api_key="k", secret_key="s", region="eu", base_url="http://127.0.0.1:8123")
    assert resource.client().export_url == "http://127.0.0.1:8123/api/2/export"
