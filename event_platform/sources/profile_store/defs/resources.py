"""The Dagster resource that builds a Profile Store client and the pseudonymiser from the environment
(`ProfileStoreSettings`, and the pseudonym key of `settings.Platform`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from event_platform import settings
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sources.profile_store.client import DEFAULT_PAGE_SIZE, ProfileStoreClient
from event_platform.sources.profile_store.settings import ProfileStoreSettings

SOURCE_LABEL = "Profile Store"
SECRET_FIELDS = ("api_key", "pseudonym_key")


class ProfileStoreResource(ConfigurableResource):
    """TrackEvents API access and the key that pseudonymises its personal data."""

    base_url: str | None = Field(default=None, description="PROFILE_STORE_BASE_URL: the customer's API host")
    api_key: str | None = Field(default=None, description="PROFILE_STORE_API_KEY (secret)")
    pseudonym_key: str | None = Field(default=None, description="EVENT_PLATFORM_PSEUDONYM_KEY (secret)")
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, description="PROFILE_STORE_PAGE_SIZE: $top per request")
    time_suffix_z: bool = Field(
        default=False, description="PROFILE_STORE_TIME_SUFFIX_Z: end EventTime literals with Z"
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A run resolves the EnvVars into the fields: the repr must not show what they resolved to.
        for name, value in super().__repr_args__():
            yield name, ("<hidden>" if name in SECRET_FIELDS and value else value)

    def client(self) -> ProfileStoreClient:
        base_url, api_key = settings.resolved(self.base_url), settings.resolved(self.api_key)
        settings.require(SOURCE_LABEL, {"PROFILE_STORE_BASE_URL": base_url, "PROFILE_STORE_API_KEY": api_key})
        assert base_url and api_key  # for the type checker: require() raised otherwise
        return ProfileStoreClient(
            base_url, api_key, page_size=self.page_size, time_suffix_z=self.time_suffix_z
        )

    def pseudonymiser(self) -> Pseudonymiser:
        return settings.pseudonymiser(SOURCE_LABEL, self.pseudonym_key)


def profile_store_resource() -> ProfileStoreResource:
    """The resource as the environment configures it; the keys stay EnvVars, never plain strings."""
    profile_store = ProfileStoreSettings.read()
    return ProfileStoreResource(
        base_url=profile_store.base_url,
        api_key=profile_store.env_var("api_key"),
        pseudonym_key=settings.Platform.read().env_var("pseudonym_key"),
        page_size=profile_store.page_size,
        time_suffix_z=profile_store.time_suffix_z,
    )
