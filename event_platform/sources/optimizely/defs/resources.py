"""The Dagster resource that builds Optimizely's clients from the environment (see settings.py): the E3
client for the export, and the REST client for experiment metadata."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from event_platform import settings
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sources.optimizely.client import E3Client
from event_platform.sources.optimizely.rest_client import (
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_REST_URL,
    OptimizelyRestClient,
)

SOURCE_LABEL = "Optimizely E3"
REST_LABEL = "Optimizely's REST API (experiment metadata)"


def parse_project_ids(text: str | None) -> list[str]:
    """OPTIMIZELY_PROJECT_IDS: comma-separated project ids; empty means every project the token sees."""
    ids = [part.strip() for part in (text or "").split(",") if part.strip()]
    wrong = [project_id for project_id in ids if not project_id.isdigit()]
    if wrong:
        raise ValueError(
            f"OPTIMIZELY_PROJECT_IDS holds {', '.join(map(repr, wrong))}: give project ids (digits), "
            "separated by commas"
        )
    return ids


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
        return parse_project_ids(self.project_ids)


def optimizely_resource() -> OptimizelyResource:
    """The resource as the environment configures it; the token stays an EnvVar, never a plain string."""
    return OptimizelyResource(
        api_token=settings.secret("OPTIMIZELY_API_TOKEN"),
        auth_url=settings.setting("OPTIMIZELY_AUTH_URL"),
        s3_endpoint_url=settings.setting("OPTIMIZELY_S3_ENDPOINT_URL"),
        account_id=settings.setting("OPTIMIZELY_ACCOUNT_ID"),
        bucket=settings.setting("OPTIMIZELY_BUCKET"),
        pseudonym_key=settings.secret(settings.PSEUDONYM_KEY),
        rest_url=settings.setting("OPTIMIZELY_REST_URL"),
        project_ids=settings.setting("OPTIMIZELY_PROJECT_IDS"),
        rest_requests_per_second=requests_per_second(),
    )


def requests_per_second() -> float:
    """OPTIMIZELY_REST_REQUESTS_PER_SECOND, positive (default 2: the Flags API's documented limit)."""
    return settings.positive_number("OPTIMIZELY_REST_REQUESTS_PER_SECOND", DEFAULT_REQUESTS_PER_SECOND)
