"""The stored shape of every warehouse table: models are cast to these, so Parquet types never drift
with DuckDB's inference, and an absent input is replaced by an empty table of the right shape."""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

EVENTS = pa.schema(
    [
        ("source", pa.string()),
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("occurred_at", TIMESTAMP),
        ("received_at", TIMESTAMP),
        ("person_key", pa.string()),
        ("device_id", pa.string()),
        ("session_id", pa.string()),
        ("properties", pa.string()),
        ("revenue", pa.float64()),
    ]
)
"""`properties` is JSON text (DuckDB reads it with `properties::JSON`); `revenue` is in currency units."""

IDENTITY_LINKS = pa.schema(
    [
        ("reference", pa.string()),
        ("person_reference", pa.string()),
        ("first_seen_at", TIMESTAMP),
    ]
)
"""A weaker identity reference (e.g. `device:…`) seen on one row with a stronger one (`user:…`)."""

EXPERIMENT_EXPOSURES = pa.schema(
    [
        ("experiment_id", pa.string()),
        ("campaign_id", pa.string()),
        ("person_key", pa.string()),
        ("visitor_id", pa.string()),
        ("variation_id", pa.string()),
        ("is_holdback", pa.bool_()),
        ("first_exposed_at", TIMESTAMP),
        ("variation_ids", pa.list_(pa.string())),
        ("decisions", pa.int64()),
    ]
)
"""One row per experiment and person for one day's decisions: the first decision of that day, and
every variation the person was shown that day (two or more exclude them from the results)."""

EXPERIMENT_CONVERSIONS = pa.schema(
    [
        ("experiment_id", pa.string()),
        ("person_key", pa.string()),
        ("source", pa.string()),
        ("event_name", pa.string()),
        ("event_id", pa.string()),
        ("occurred_at", TIMESTAMP),
        ("revenue", pa.float64()),
        ("first_exposed_at", TIMESTAMP),
    ]
)
"""Events of one day by exposed people within the attribution window of their first exposure seen
in the lookback; `experiment_results` re-checks the window against the first exposure of all time."""

DAILY_ACTIVE_USERS = pa.schema(
    [
        ("source", pa.string()),
        ("active_users", pa.int64()),
        ("events", pa.int64()),
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
