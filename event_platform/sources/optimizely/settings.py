"""The Optimizely settings: the environment variables this source reads, declared once (see
`event_platform/settings.py` for the types and how a part is read)."""

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

from event_platform.settings import Must, Part, PositiveNumber, Secret, comma_list, var


def digit_ids(value: object) -> object:
    """Optimizely project ids: digits, separated by commas."""
    ids = comma_list(value)
    if isinstance(ids, tuple) and not all(isinstance(id_, str) and id_.isdigit() for id_ in ids):
        raise ValueError("not digits")
    return ids


class OptimizelySettings(Part):
    title = "Optimizely Enriched Events Export (E3)"

    api_token: Secret = var(
        "OPTIMIZELY_API_TOKEN",
        None,
        "A personal access token, which the platform exchanges for short-lived S3 credentials and reads "
        "experiment metadata from the REST API with.",
        fill_in=True,
    )
    account_id: str | None = var(
        "OPTIMIZELY_ACCOUNT_ID", None, "Without a token: the account id, with plain AWS credentials."
    )
    bucket: str | None = var(
        "OPTIMIZELY_BUCKET",
        None,
        "The export's bucket, with an account id; E3's own when unset.",
        example="optimizely-events-data",
    )
    auth_url: str | None = var(
        "OPTIMIZELY_AUTH_URL",
        None,
        "The Authentication API, for the sandbox or a proxy; Optimizely's when unset.",
        example="https://api.optimizely.com/v2/export/credentials",
    )
    s3_endpoint_url: str | None = var(
        "OPTIMIZELY_S3_ENDPOINT_URL", None, "E3's S3 endpoint, for the sandbox or a proxy; AWS's when unset."
    )
    data_dir: str | None = var(
        "OPTIMIZELY_DATA_DIR",
        None,
        "Where `event-platform optimizely load` mirrors the export (as oevents' OPTIMIZELY_DATA_DIR).",
    )
    rest_url: str | None = var(
        "OPTIMIZELY_REST_URL",
        None,
        "Base of the REST API's /v2/... and /flags/v1/..., for the sandbox or a proxy; Optimizely's when "
        "unset.",
        example="https://api.optimizely.com",
    )
    project_ids: Annotated[
        tuple[str, ...],
        NoDecode,
        BeforeValidator(digit_ids),
        Must("project ids (digits) separated by commas"),
    ] = var(
        "OPTIMIZELY_PROJECT_IDS",
        (),
        "Only these projects' experiment metadata (comma-separated ids); unset: every project the token "
        "can see.",
    )
    rest_requests_per_second: PositiveNumber = var(
        "OPTIMIZELY_REST_REQUESTS_PER_SECOND",
        2.0,
        "How fast experiment metadata is read (the Flags API allows 2 requests per second).",
    )
