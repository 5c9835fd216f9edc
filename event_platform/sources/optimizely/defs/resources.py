"""The Dagster resource that builds Optimizely's clients from the environment (see settings.py): the E3
client for the export, and the REST client for experiment metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from event_platform import settings
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sources.optimizely.rest_client import (
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_REST_URL,
    OptimizelyRestClient,
)
from event_platform.sources.optimizely.settings import OptimizelySettings

if TYPE_CHECKING:
    from event_platform.sources.optimizely.client import E3Client

SOURCE_LABEL = "Optimizely E3"
REST_LABEL = "Optimizely's REST API (experiment metadata)"


class OptimizelyResource(ConfigurableResource):
    """E3 access: a personal access token (temporary credentials), else plain AWS credentials + account id."""

    api_token: str | None = Field(default=None, description="OPTIMIZELY_API_TOKEN (secret)")
    auth_url: str | None = Field(default=None, description="OPTIMIZELY_AUTH_URL; Optimizely's when unset")
    s3_endpoint_url: str | None = Field(default=None, description="OPTIMIZELY_S3_ENDPOINT_URL (sandbox)")
    account_id: str | None = Field(default=None, description="OPTIMIZELY_ACCOUNT_ID, with AWS_* credentials")
    bucket: str | None = Field(default=None, description="OPTIMIZELY_BUCKET; E3's if unset")
    credentials_duration: str = Field(default="1h", description="Lifetime asked of the Authentication API")
    pseudonym_key: str | None = Field(default=None, description="EVENT_PLATFORM_PSEUDONYM_KEY (secret)")

    def pseudonymiser(self) -> Pseudonymiser:
        return settings.pseudonymiser(SOURCE_LABEL, self.pseudonym_key)

    rest_url: str | None = Field(default=None, description="OPTIMIZELY_REST_URL; Optimizely's when unset")
    project_ids: str | None = Field(
        default=None, description="OPTIMIZELY_PROJECT_IDS, comma-separated; every visible project if unset"
    )
    rest_requests_per_second: float = Field(
        default=DEFAULT_REQUESTS_PER_SECOND,
        description="OPTIMIZELY_REST_REQUESTS_PER_SECOND: how fast metadata is read (the Flags API allows 2)",
    )

    def client(self) -> E3Client:
        # Imported when a client is built: boto3 and botocore would add 0.08 CPU-s to every definitions load.
        from event_platform.sources.optimizely.client import E3Client

        settings.require(
            SOURCE_LABEL, {"OPTIMIZELY_API_TOKEN or OPTIMIZELY_ACCOUNT_ID": self.api_token or self.account_id}
        )
        return E3Client.connect(
            token=self.api_token,
            account_id=self.account_id,
            auth_url=self.auth_url,
            bucket=self.bucket,
            s3_endpoint_url=self.s3_endpoint_url,
            duration=self.credentials_duration,
        )

    def rest_client(self) -> OptimizelyRestClient:
        """Experiment metadata needs the personal access token: plain AWS keys reach only the export."""
        settings.require(REST_LABEL, {"OPTIMIZELY_API_TOKEN": self.api_token})
        return OptimizelyRestClient(
            self.api_token or "",
            base_url=self.rest_url or DEFAULT_REST_URL,
            requests_per_second=self.rest_requests_per_second,
        )

    def rest_project_ids(self) -> list[str]:
        return list(OptimizelySettings.read(project_ids=self.project_ids).project_ids)


def optimizely_resource() -> OptimizelyResource:
    """The resource as the environment configures it; the token stays an EnvVar, never a plain string."""
    optimizely = OptimizelySettings.read()
    return OptimizelyResource(
        api_token=optimizely.env_var("api_token"),
        auth_url=optimizely.auth_url,
        s3_endpoint_url=optimizely.s3_endpoint_url,
        account_id=optimizely.account_id,
        bucket=optimizely.bucket,
        pseudonym_key=settings.Platform.read().env_var("pseudonym_key"),
        rest_url=optimizely.rest_url,
        project_ids=",".join(optimizely.project_ids) or None,
        rest_requests_per_second=optimizely.rest_requests_per_second,
    )
