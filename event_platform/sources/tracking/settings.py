"""The Tracking settings: the environment variables this source reads, declared once (see
`event_platform/settings.py` for the types and how a part is read)."""

from event_platform.settings import Names, Part, PositiveInt, Seconds, Secret, var


class TrackingSettings(Part):
    title = "First-party tracking"

    collector_url: str = var(
        "TRACKING_COLLECTOR_URL",
        "http://127.0.0.1:8400",
        "Where the Tracker sends events (`event-platform tracking serve` listens there).",
    )
    spool_dir: str = var(
        "TRACKING_SPOOL_DIR",
        "./data/tracking-spool",
        "The Tracker's durable spool: events wait here while the collector is unreachable.",
    )
    event_types_file: str | None = var(
        "TRACKING_EVENT_TYPES_FILE",
        None,
        "A JSON file of extra event types and their event_data fields, added to the built-in registry.",
    )
    max_event_bytes: PositiveInt = var(
        "TRACKING_MAX_EVENT_BYTES", 64 * 1024, "The largest event the collector accepts and a Tracker sends."
    )
    max_batch_bytes: PositiveInt = var(
        "TRACKING_MAX_BATCH_BYTES", 4 * 1024 * 1024, "The largest batch request the collector accepts."
    )
    flush_bytes: PositiveInt = var(
        "TRACKING_FLUSH_BYTES",
        8 * 1024 * 1024,
        "The collector commits a landed file once its waiting events reach this many bytes...",
    )
    flush_age_seconds: Seconds = var(
        "TRACKING_FLUSH_AGE_SECONDS",
        0.5,
        "...or once its oldest event has waited this long (the bound on an acknowledgement's latency).",
    )
    seen_uuids: PositiveInt = var(
        "TRACKING_SEEN_UUIDS",
        200_000,
        "How many recent event uuids the collector remembers to acknowledge a re-send without storing it "
        "twice.",
    )
    shared_secret: Secret = var(
        "TRACKING_SHARED_SECRET",
        None,
        "When set, every request to the collector needs `Authorization: Bearer <secret>` (the Tracker sends "
        "it).",
    )
    allowed_origins: Names = var(
        "TRACKING_ALLOWED_ORIGINS",
        (),
        "Web origins whose pages may post client events cross-site (comma-separated); none by default.",
        example="https://lms.example.org",
    )
    header_seconds: Seconds = var(
        "TRACKING_HEADER_SECONDS", 10.0, "A request's head must arrive within this many seconds..."
    )
    body_seconds: Seconds = var("TRACKING_BODY_SECONDS", 10.0, "...and its body within this many more.")
    keep_alive_seconds: Seconds = var(
        "TRACKING_KEEP_ALIVE_SECONDS", 5.0, "An idle keep-alive connection closes after this many seconds."
    )
    max_connections: PositiveInt = var(
        "TRACKING_MAX_CONNECTIONS",
        1000,
        "Connections and requests in flight; past it the collector answers 503 at once.",
    )
