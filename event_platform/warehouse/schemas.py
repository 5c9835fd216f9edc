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
        column(
            "properties",
            pa.string(),
            "The event's properties as JSON, as in `events`, for metrics that sum a value of one.",
        ),
    ]
)
"""Events of one day by exposed people within the attribution window of their first exposure seen
in the lookback; `experiment_results` re-checks the window against the first exposure of all time.
`properties` (the event's, JSON text) is there for metrics that sum a property other than revenue."""

DAILY_ACTIVE_USERS = pa.schema(
    [
        column("source", pa.string(), "A source, or `all` for people active in any source (counted once)."),
        column("active_users", pa.int64(), "Distinct people (person_key) with at least one event that day."),
        column("events", pa.int64(), "Their events that day."),
    ]
)
"""One row per source and one with source `all` (people active in any source, counted once)."""

_EXPERIMENT_ID = column(
    "experiment_id", pa.string(), "Optimizely's experiment id (E3 experiment_id), or the metrics file's id."
)
_VARIATION_ID = column("variation_id", pa.string(), "The variation's id (E3 variation_id), or its value.")
_IS_CONTROL = column(
    "is_control",
    pa.bool_(),
    "The baseline the others are compared with: Optimizely's baseline variation, else the metrics "
    "file's control, else the lowest id.",
)
_UNITS = column(
    "units",
    pa.int64(),
    "People in the variation, each counted once over the whole experiment (their first exposure decides "
    "the variation); holdbacks and people shown two variations are left out.",
)
_LIFTS = [
    column("absolute_lift", pa.float64(), "value minus the control's value."),
    column(
        "ci_low",
        pa.float64(),
        "Lower end of the absolute lift's interval at `confidence` (a confidence sequence when sequential).",
    ),
    column("ci_high", pa.float64(), "Upper end of the absolute lift's interval."),
    column("relative_lift", pa.float64(), "value / control's value - 1 (0.05 is +5%)."),
    column("relative_ci_low", pa.float64(), "Lower end of the relative lift's interval (delta method)."),
    column("relative_ci_high", pa.float64(), "Upper end of the relative lift's interval."),
    column("statistic", pa.float64(), "The test statistic (z or Welch's t)."),
    column(
        "p_value",
        pa.float64(),
        "p-value of no difference from the control by `method` (sequential: always valid; a guardrail's "
        "is one-sided, for harm), before any correction.",
    ),
]
_ALLOCATION = [
    column("holdback_visitors", pa.int64(), "People held back (Optimizely holdback), not counted as units."),
    column("excluded_visitors", pa.int64(), "People shown two or more variations, left out of the units."),
    column("srm_chi_square", pa.float64(), "Sample-ratio test: chi-square of units against planned weights."),
    column("srm_p_value", pa.float64(), "Sample-ratio test p-value (one per experiment)."),
    column(
        "srm_flagged",
        pa.bool_(),
        "Units depart from the planned weights (p below 0.001): assignment or logging is broken, and the "
        "experiment's lifts cannot be trusted.",
    ),
]

EXPERIMENT_RESULTS = pa.schema(
    [
        _EXPERIMENT_ID,
        column("experiment_name", pa.string(), "The experiment's name; null when its metadata is missing."),
        column(
            "experiment_description", pa.string(), "The experiment's description, as its owners wrote it."
        ),
        column(
            "assignment",
            pa.string(),
            "Where units were assigned: optimizely (E3 decisions), or the source whose events carry the "
            "variation (experiments defined in the metrics file).",
        ),
        column(
            "metadata",
            pa.string(),
            "ok: names, planned weights and metrics are known; missing: Optimizely's REST metadata has no "
            "such experiment, so only ids and the metrics file's metrics are there.",
        ),
        _VARIATION_ID,
        column("variation_name", pa.string(), "The variation's name; null when unknown."),
        _IS_CONTROL,
        column(
            "planned_weight",
            pa.float64(),
            "Planned share of units: Optimizely's weight, else EVENT_PLATFORM_EXPERIMENT_WEIGHTS or the "
            "metrics file, else equal shares. The sample-ratio test compares units with it.",
        ),
        column(
            "metric_name",
            pa.string(),
            "The metric's name; null on the one row per variation of an experiment without metrics.",
        ),
        column("metric_role", pa.string(), "primary, secondary, guardrail or monitoring."),
        column("metric_kind", pa.string(), "conversion, count, sum or ratio."),
        column("metric_definition", pa.string(), "How the metric is computed from events, in words."),
        column("winning_direction", pa.string(), "increasing or decreasing: which way is better."),
        column(
            "method",
            pa.string(),
            "The test: sequential (always-valid mixture SPRT, valid at every daily look; the default), "
            "fixed_z or fixed_welch (valid once, at a planned end). Ratios use delta-method variances.",
        ),
        _UNITS,
        column(
            "units_with_event", pa.int64(), "Units with at least one of the metric's events in the window."
        ),
        column(
            "total",
            pa.float64(),
            "Sum over units: conversions, events, the property's total, or a ratio's numerator.",
        ),
        column(
            "denominator", pa.float64(), "What total is divided by: units, or a ratio's denominator total."
        ),
        column(
            "value",
            pa.float64(),
            "The estimate: conversion rate, mean per unit, or ratio (total / denominator).",
        ),
        column("standard_error", pa.float64(), "Standard error of value."),
        column(
            "variance_reduction",
            pa.float64(),
            "CUPED: the share of the lift's variance removed by adjusting for each unit's same metric over "
            "the 14 days before its first exposure (the lift, interval and p-value are the adjusted ones); "
            "null when not adjusted (ratio metrics, no pre-exposure history, EVENT_PLATFORM_CUPED=off).",
        ),
        *_LIFTS,
        column(
            "corrected_p_value",
            pa.float64(),
            "p_value corrected across the experiment's metrics x variations in tiers (primary alone; "
            "secondary with guardrails; monitoring apart), Benjamini-Hochberg by default.",
        ),
        column("significant", pa.bool_(), "corrected_p_value below 1 - confidence: what decision reads."),
        column(
            "decision",
            pa.string(),
            "baseline (the control's row); winner, loser or inconclusive (read against winning_direction); "
            "for a guardrail, guardrail harmed or no harm detected; not analysed; or invalid: sample-ratio "
            "mismatch, on every row of an experiment whose allocation failed.",
        ),
        column("note", pa.string(), "Why a metric was not analysed, or what else to know about the row."),
        *_ALLOCATION,
        column("first_exposure", TIMESTAMP, "The experiment's first exposure in the data (UTC)."),
        column("last_exposure", TIMESTAMP, "The experiment's latest first exposure in the data (UTC)."),
        column("confidence", pa.float64(), "Confidence level of the intervals (0.95)."),
        column("attribution_window_days", pa.int64(), "Days after a unit's first exposure its events count."),
    ]
)
"""`warehouse/experiment_results`: per experiment x variation x defined metric, the numbers an analyst
decides on."""

EXPERIMENT_UNITS = pa.schema(
    [
        _EXPERIMENT_ID,
        column("person_key", pa.string(), PERSON_KEY),
        column("variation_id", pa.string(), "The variation of the person's first decision of all time."),
        column("is_holdback", pa.bool_(), "Whether that first decision held the person back."),
        column("first_exposed_at", TIMESTAMP, "The person's first exposure to the experiment (UTC)."),
    ]
)
"""`warehouse/experiment_units`: each person's first exposure to an experiment, filed under its day."""

_SUM_COLUMNS = [
    column("units", pa.int64(), "Units summed (holdbacks and people shown several variations left out)."),
    column("holdback_visitors", pa.int64(), "People held back, counted apart."),
    column("excluded_visitors", pa.int64(), "People shown several variations in their window."),
    column("units_with_event", pa.int64(), "Units with at least one of the metric's numerator events."),
    column("sum_y", pa.float64(), "Sum over units of the metric's per-unit value (a ratio's numerator)."),
    column("sum_y2", pa.float64(), "Sum of its squares."),
    column("sum_d", pa.float64(), "Sum of a ratio metric's per-unit denominator (0 for other kinds)."),
    column("sum_d2", pa.float64(), "Sum of the denominator's squares."),
    column("sum_yd", pa.float64(), "Sum of value x denominator."),
    column("sum_x", pa.float64(), "Sum of the value over the pre-exposure window (CUPED's covariate)."),
    column("sum_x2", pa.float64(), "Sum of the covariate's squares."),
    column("sum_xy", pa.float64(), "Sum of covariate x value."),
    column("sum_h", pa.float64(), "Units with any event in the pre-exposure window."),
    column("sum_hy", pa.float64(), "Sum of the value over those units."),
    column("first_exposure", TIMESTAMP, "The earliest first exposure among the units (UTC)."),
    column("last_exposure", TIMESTAMP, "The latest first exposure among the units (UTC)."),
]

EXPERIMENT_UNIT_STATE = pa.schema(
    [
        column(
            "row_kind",
            pa.string(),
            "unit: an open unit (still inside its attribution window; metric_name '') or what it has "
            "counted for one metric (only where not 0); closed: the sums of every unit whose window has "
            "closed, per experiment, variation and metric; seen: an event a metric counts that some exposed "
            "unit has had; metric: a metric's definition the state was counted with.",
        ),
        _EXPERIMENT_ID,
        column("variation_id", pa.string(), "The unit's variation (its first exposure's)."),
        column("metric_name", pa.string(), "The metric; '' for the unit itself (counts, exposures)."),
        column("definition", pa.string(), "metric rows: the metric's definition."),
        column("person_key", pa.string(), "unit rows: " + PERSON_KEY),
        column("is_holdback", pa.bool_(), "unit rows: the first decision held the person back."),
        column("first_exposed_at", TIMESTAMP, "unit rows: the person's first exposure (UTC)."),
        column("cohort_day", pa.date32(), "unit rows: the day of that first exposure."),
        column("first_variation", pa.string(), "unit rows: the lowest variation id shown in the window."),
        column("last_variation", pa.string(), "unit rows: the highest; unequal means several variations."),
        column("num_events", pa.int64(), "unit rows: the metric's numerator events so far."),
        column("num_amount", pa.float64(), "unit rows: the numerator's value (revenue, a property) so far."),
        column("den_events", pa.int64(), "unit rows: a ratio's denominator events so far."),
        column("den_amount", pa.float64(), "unit rows: the denominator's value so far."),
        column("pre_value", pa.float64(), "unit rows: the numerator over the pre-exposure window (CUPED)."),
        column("has_history", pa.bool_(), "unit rows: any event in the pre-exposure window."),
        column("source", pa.string(), "seen rows: the source of an event the metric counts that a unit had."),
        column("event", pa.string(), "seen rows: that event's name."),
        *_SUM_COLUMNS,
    ]
)
"""`warehouse/experiment_unit_state`: what day D+1's results start from (see results_daily.py)."""

EXPERIMENT_SUMS = pa.schema(
    [
        _EXPERIMENT_ID,
        column("variation_id", pa.string(), "The variation."),
        column("metric_name", pa.string(), "The metric; '' for the units themselves."),
        *_SUM_COLUMNS,
    ]
)
"""Sums per experiment, variation and metric (results_state_sums.sql's shape)."""


EXPERIMENT_EXPLORATION = pa.schema(
    [
        _EXPERIMENT_ID,
        column("experiment_name", pa.string(), "The experiment's name; null when unknown."),
        _VARIATION_ID,
        column("variation_name", pa.string(), "The variation's name; null when unknown."),
        _IS_CONTROL,
        column(
            "metric",
            pa.string(),
            "conversion_rate (share of units with the event), events_per_visitor, or revenue_per_visitor.",
        ),
        column("metric_source", pa.string(), "The source of the events."),
        column("metric_event", pa.string(), "The event type (null for revenue, which sums every event's)."),
        column("test", pa.string(), "fixed_z (rates) or fixed_welch (means): one look, uncorrected."),
        _UNITS,
        column("conversions", pa.int64(), "Units with at least one such event in the window."),
        column("total", pa.float64(), "Sum over units of events or revenue."),
        column("value", pa.float64(), "Rate or mean per unit."),
        column("variance", pa.float64(), "Per-unit variance of the value."),
        *_LIFTS,
        *_ALLOCATION,
        column("confidence", pa.float64(), "Confidence level of the intervals (0.95)."),
        column("attribution_window_days", pa.int64(), "Days after a unit's first exposure its events count."),
    ]
)
"""`warehouse/experiment_exploration`: every source's every event type as a metric, uncorrected.
Exploratory: with dozens of tests per variation some are "significant" by chance; decide from
`experiment_results`."""
