"""The Dagster resource that builds an Amplitude `ExportClient` from the environment (see settings.py)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from event_platform import settings
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sources.amplitude.client import (
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    ExportClient,
)
from event_platform.sources.amplitude.settings import AmplitudeSettings

SOURCE_LABEL = "Amplitude"


class AmplitudeResource(ConfigurableResource):
    """Export API access: a project's API key and secret key, for the US or EU region or an explicit host."""

    api_key: str | None = Field(default=None, description="AMPLITUDE_API_KEY (secret)")
    secret_key: str | None = Field(default=None, description="AMPLITUDE_SECRET_KEY (secret)")
    region: str = Field(default="us", description="AMPLITUDE_REGION: us (amplitude.com) or eu (EU residency)")
    base_url: str | None = Field(
        default=None, description="AMPLITUDE_BASE_URL: scheme and host replacing the region's (sandbox)"
    )
    max_uncompressed_bytes: int = Field(
        default=DEFAULT_MAX_UNCOMPRESSED_BYTES,
        description="AMPLITUDE_MAX_UNCOMPRESSED_BYTES: decompressed bytes allowed per day (zip bombs)",
    )
    pseudonym_key: str | None = Field(default=None, description="EVENT_PLATFORM_PSEUDONYM_KEY (secret)")
    max_compression_ratio: float = Field(
        default=DEFAULT_MAX_COMPRESSION_RATIO,
        description="AMPLITUDE_MAX_COMPRESSION_RATIO: decompressed bytes allowed per compressed byte",
    )

    def pseudonymiser(self) -> Pseudonymiser:
        return settings.pseudonymiser(SOURCE_LABEL, self.pseudonym_key)

    def client(self) -> ExportClient:
        return build_client(
            api_key=self.api_key, secret_key=self.secret_key, region=self.region, base_url=self.base_url,
            max_uncompressed_bytes=self.max_uncompressed_bytes,
            max_compression_ratio=self.max_compression_ratio,
        )  # fmt: skip


def build_client(
    *,
    api_key: str | None,
    secret_key: str | None,
    region: str | None,
    base_url: str | None,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO,
) -> ExportClient:
    """The client, or `MissingSettingsError` naming the unset variables (for the resource and the CLI)."""
    settings.require(SOURCE_LABEL, {"AMPLITUDE_API_KEY": api_key, "AMPLITUDE_SECRET_KEY": secret_key})
    assert api_key and secret_key  # for the type checker: require() raised otherwise
    return ExportClient(
        api_key,
        secret_key,
        region=region or "us",
        base_url=base_url,
        max_uncompressed_bytes=max_uncompressed_bytes,
        max_compression_ratio=max_compression_ratio,
    )


def amplitude_resource() -> AmplitudeResource:
    """The resource as the environment configures it; the keys stay EnvVars, never plain strings."""
    amplitude = AmplitudeSettings.read()
    return AmplitudeResource(
        api_key=amplitude.env_var("api_key"),
        secret_key=amplitude.env_var("secret_key"),
        region=amplitude.region,
        pseudonym_key=settings.Platform.read().env_var("pseudonym_key"),
        base_url=amplitude.base_url,
        max_uncompressed_bytes=amplitude.max_uncompressed_bytes,
        max_compression_ratio=amplitude.max_compression_ratio,
    )
