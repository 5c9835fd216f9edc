"""The ProfileStore settings: the environment variables this source reads, declared once (see
`event_platform/settings.py` for the types and how a part is read)."""

from event_platform.settings import Part, PositiveInt, Secret, TrueFalse, var


class ProfileStoreSettings(Part):
    title = "Optimizely Profile Store"

    base_url: str | None = var(
        "PROFILE_STORE_BASE_URL",
        None,
        "The base URL issued to your account; the client appends /api/v2.0/...",
        fill_in=True,
    )
    api_key: Secret = var("PROFILE_STORE_API_KEY", None, "The TrackEvents API's key.", fill_in=True)
    page_size: PositiveInt = var(
        "PROFILE_STORE_PAGE_SIZE",
        1000,
        "Events per request (the API's $top); $skip + $top always stays below the vendor's 10,000.",
    )
    time_suffix_z: TrueFalse = var(
        "PROFILE_STORE_TIME_SUFFIX_Z",
        False,
        "Whether EventTime literals in $filter carry a trailing Z (the vendor's examples have none).",
    )
