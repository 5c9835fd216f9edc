"""The Dagster resource that builds an `E3Client` from the environment (see settings.py)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from event_platform import settings
from event_platform.defs.optimizely.client import E3Client
from event_platform.pseudonymise import Pseudonymiser

SOURCE_LABEL = "Optimizely E3"


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


def optimizely_resource() -> OptimizelyResource:
    """The resource as the environment configures it; the token stays an EnvVar, never a plain string."""
    return OptimizelyResource(
        api_token=settings.secret("OPTIMIZELY_API_TOKEN"),
        auth_url=settings.setting("OPTIMIZELY_AUTH_URL"),
        s3_endpoint_url=settings.setting("OPTIMIZELY_S3_ENDPOINT_URL"),
        account_id=settings.setting("OPTIMIZELY_ACCOUNT_ID"),
        bucket=settings.setting("OPTIMIZELY_BUCKET"),
        pseudonym_key=settings.secret(settings.PSEUDONYM_KEY),
    )
