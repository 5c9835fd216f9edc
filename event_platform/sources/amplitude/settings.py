"""The Amplitude settings: the environment variables this source reads, declared once (see
`event_platform/settings.py` for the types and how a part is read)."""

from typing import Annotated, Literal

from event_platform.settings import Must, Part, PositiveInt, PositiveNumber, Secret, var


class AmplitudeSettings(Part):
    title = "Amplitude Export API"

    api_key: Secret = var("AMPLITUDE_API_KEY", None, "The project's API key.", fill_in=True)
    secret_key: Secret = var("AMPLITUDE_SECRET_KEY", None, "The project's secret key.", fill_in=True)
    region: Annotated[Literal["us", "eu"], Must("us or eu")] = var(
        "AMPLITUDE_REGION", "us", "us or eu (EU data residency: analytics.eu.amplitude.com)."
    )
    base_url: str | None = var(
        "AMPLITUDE_BASE_URL",
        None,
        "An explicit scheme and host that replaces the region's; the client appends /api/2/export.",
    )
    max_uncompressed_bytes: PositiveInt = var(
        "AMPLITUDE_MAX_UNCOMPRESSED_BYTES",
        64 * 1024**3,
        "Zip-bomb bound: the most bytes one day's export may decompress to.",
    )
    max_compression_ratio: PositiveNumber = var(
        "AMPLITUDE_MAX_COMPRESSION_RATIO",
        200.0,
        "Zip-bomb bound: the most decompressed bytes per compressed byte of a member (NDJSON events gzip "
        "5-20x).",
    )
