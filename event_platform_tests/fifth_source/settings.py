"""The fifth source's settings: where its nightly export is served."""

from event_platform.settings import Part, var


class LmsSettings(Part):
    title = "A second LMS"

    export_url: str = var(
        "LMS_EXPORT_URL", "http://127.0.0.1:8500", "Where the second LMS serves its export."
    )
