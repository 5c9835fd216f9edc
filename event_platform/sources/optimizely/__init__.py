"""Optimizely: Enriched Events (E3) decisions and conversions from S3, and the experiments' metadata from
its REST API."""

from event_platform.sources.registry import EmptyDay, IdentityField, Source, SourceTable

SOURCE = Source(
    name="optimizely",
    title="Optimizely",
    tables=(
        SourceTable(
            "decisions",
            "Optimizely E3 decisions (a visitor bucketed into a variation), one row per uuid, "
            "by processing day.",
        ),
        SourceTable(
            "conversions",
            "Optimizely E3 conversion events, one row per uuid, by processing day (`date`).",
            event_time="timestamp",
        ),
        SourceTable(
            "experiments",
            "Optimizely's experiments as its REST API described them each day: one row per variation, with "
            "names, status and planned weights.",
        ),
        SourceTable(
            "experiment_metrics",
            "Each Optimizely experiment's configured metrics as the REST API gave them each day, in order "
            "(the first is primary).",
        ),
    ),
    identity=(IdentityField("visitor_id", "user"),),
    # No schedule: E3 exports a day at an hour it does not publish, so its sensor watches the bucket.
    empty_day=EmptyDay(
        possible=True,
        meaning="no experiment ran (decisions) or no tracked event converted (conversions) that date, or E3 "
        "has not exported it yet: compare with the experiments' schedule in Optimizely.",
    ),
    settings="event_platform.sources.optimizely.settings:OptimizelySettings",
    sandbox="event_platform.sandbox.optimizely:emulate",
)
