"""The stored shape of every warehouse table: models are cast to these, so Parquet types never drift
with DuckDB's inference, and an absent input is replaced by an empty table of the right shape."""

from __future__ import annotations

import pyarrow as pa

from event_platform.columns import column

TIMESTAMP = pa.timestamp("us", tz="UTC")

PERSON_KEY = (
    "The person, pseudonymous: a hash of their strongest identity reference after resolving devices "
    "to users through the identity links; the same person has the same key in every warehouse table."
)

EVENTS = pa.schema(
    [
        column(
            "source",
            pa.string(),
            "Where the event came from: amplitude, optimizely, profile_store, tracking.",
        ),
        column(
            "event_id", pa.string(), "The event's id in its source (uuid, or the Profile Store's event_key)."
        ),
        column("event_type", pa.string(), "The event's name in its source (Optimizely: the event_name)."),
        column("occurred_at", TIMESTAMP, "When the event happened (UTC)."),
        column("received_at", TIMESTAMP, "When the source received it (UTC); null for the Profile Store."),
        column("person_key", pa.string(), PERSON_KEY),
        column("device_id", pa.string(), "The device or browser id, where the source has one."),
        column("session_id", pa.string(), "The session id in the source's own terms, where it has one."),
        column(
            "properties",
            pa.string(),
            "The event's properties and the source's context fields (JSON text; `properties::JSON`).",
        ),
        column(
            "revenue", pa.float64(), "Revenue of the event in currency units, where the source records it."
        ),
    ]
)
"""`properties` is JSON text (DuckDB reads it with `properties::JSON`); `revenue` is in currency units."""

IDENTITY_LINKS = pa.schema(
    [
        column("reference", pa.string(), "A weaker identity reference, e.g. `device:<device_id>`."),
        column(
            "person_reference",
            pa.string(),
            "The stronger reference it was first seen with on one row, e.g. `user:<user_id>`.",
        ),
        column("first_seen_at", TIMESTAMP, "When the two were first seen together that day (UTC)."),
    ]
)
"""A weaker identity reference (e.g. `device:…`) seen on one row with a stronger one (`user:…`)."""

EXPERIMENT_EXPOSURES = pa.schema(
    [
        column("experiment_id", pa.string(), "The Optimizely experiment."),
        column("campaign_id", pa.string(), "The experiment's campaign (layer)."),
        column("person_key", pa.string(), PERSON_KEY),
        column(
            "visitor_id", pa.string(), "The Optimizely visitor id of the person's first decision that day."
        ),
        column("variation_id", pa.string(), "The variation of the person's first decision that day."),
        column("is_holdback", pa.bool_(), "Whether that first decision held the person back."),
        column("first_exposed_at", TIMESTAMP, "When the person's first decision of that day happened (UTC)."),
        column(
            "variation_ids",
            pa.list_(pa.string()),
            "Every variation the person was shown that day; two or more exclude them from the results.",
        ),
        column("decisions", pa.int64(), "How many decisions the person had in the experiment that day."),
    ]
)
"""One row per experiment and person for one day's decisions: the first decision of that day, and
every variation the person was shown that day (two or more exclude them from the results)."""

EXPERIMENT_CONVERSIONS = pa.schema(
    [
        column("experiment_id", pa.string(), "The experiment the person was exposed to."),
        column("person_key", pa.string(), PERSON_KEY),
        column("source", pa.string(), "The source of the event, as in `events`."),
        column("event_name", pa.string(), "The event's name (its event_type in `events`)."),
        column("event_id", pa.string(), "The event's id in its source, as in `events`."),
        column("occurred_at", TIMESTAMP, "When the event happened (UTC)."),
        column("revenue", pa.float64(), "Revenue of the event in currency units, where recorded."),
        column(
            "first_exposed_at",
            TIMESTAMP,
            "The person's first exposure to the experiment within the lookback (UTC); the event counts if "
            "it happened at or after it and within the attribution window.",
        ),
    ]
)
"""Events of one day by exposed people within the attribution window of their first exposure seen
in the lookback; `experiment_results` re-checks the window against the first exposure of all time."""

DAILY_ACTIVE_USERS = pa.schema(
    [
        column("source", pa.string(), "A source, or `all` for people active in any source (counted once)."),
        column("active_users", pa.int64(), "Distinct people (person_key) with at least one event that day."),
        column("events", pa.int64(), "Their events that day."),
    ]
)
"""One row per source and one with source `all` (people active in any source, counted once)."""

EXPERIMENT_RESULTS = pa.schema(
    [
        ("experiment_id", pa.string()),
        ("variation_id", pa.string()),
        ("is_control", pa.bool_()),
        ("metric", pa.string()),
        ("metric_source", pa.string()),
        ("metric_event", pa.string()),
        ("test", pa.string()),
        ("units", pa.int64()),
        ("conversions", pa.int64()),
        ("total", pa.float64()),
        ("value", pa.float64()),
        ("variance", pa.float64()),
        ("absolute_lift", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("relative_lift", pa.float64()),
        ("relative_ci_low", pa.float64()),
        ("relative_ci_high", pa.float64()),
        ("statistic", pa.float64()),
        ("p_value", pa.float64()),
        ("holdback_visitors", pa.int64()),
        ("excluded_visitors", pa.int64()),
        ("srm_chi_square", pa.float64()),
        ("srm_p_value", pa.float64()),
        ("srm_flagged", pa.bool_()),
        ("confidence", pa.float64()),
        ("attribution_window_days", pa.int64()),
    ]
)
