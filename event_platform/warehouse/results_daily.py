"""Experiment results as of each day, computed from the day before: what the analyst would have seen.

Three daily tables, each day computed from its own inputs and the previous day, never from history:
- `experiment_units` (`new_units`): the people first exposed to an experiment that day. A day reads its
  exposures and the two key columns of the earlier days' units (who is new), and writes only its own.
- `experiment_unit_state` (`unit_state`): every unit still inside its attribution window, one row per
  unit and metric with what it accumulated (numerator and denominator events and values, and CUPED's
  pre-exposure value), plus the sums of the units whose window has closed. Day D starts from day D-1's
  state, adds the day's new units (their pre-exposure covariate read from the unified events of the 14
  days before), the day's conversions and exposures (a unit shown a second variation inside its window
  is excluded), then folds the cohort whose window closed into the closed sums: its size is a window of
  units, whatever the length of the experiment.
- `experiment_results_daily` (`results_as_of`): the cumulative results as of day D from the state's sums,
  with the sequential test continuing from day D-1's results (the running minimum p-value and the
  intersected confidence sequence): the looks an analyst took, one a day.

Semantics that follow (documented in docs/architecture.md, §5): a unit is excluded for seeing two
variations only inside its attribution window (afterwards nothing it does is measured); metric
definitions are fixed for an experiment's life: a changed or added metric fails the next day with what to
re-materialize.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow.dataset as ds

from event_platform.warehouse import models, results, schemas
from event_platform.warehouse.engine import Engine, load_sql
from event_platform.warehouse.experiment_catalog import Catalog
from event_platform.warehouse.inference import Inference

INTERVAL_COLUMNS = ["ci_low", "ci_high", "relative_ci_low", "relative_ci_high"]
PRE_PERIOD_DAYS = 14
"""CUPED's pre-exposure window: each unit's metric over the 14 days before its first exposure."""
UNIT, CLOSED, SEEN, METRIC = "unit", "closed", "seen", "metric"
SUM_COLUMNS = [
    name for name in schemas.EXPERIMENT_SUMS.names if name not in ("experiment_id", "variation_id")
]


class MetricsChangedError(ValueError):
    """An experiment's metrics differ from those its carried state was counted with."""


def new_units(
    engine: Engine, exposures: ds.Dataset | None, earlier_units: ds.Dataset | None
) -> models.ModelOutput:
    """`experiment_units` for the day of `exposures`: who was exposed for the first time."""
    engine.register_or_empty("exposures", exposures, schemas.EXPERIMENT_EXPOSURES)
    engine.register_or_empty("earlier_units", earlier_units, schemas.EXPERIMENT_UNITS)
    engine.create_table(models.OUTPUT_TABLE, load_sql("results_new_units"))
    per_experiment = engine.rows(
        f"SELECT experiment_id, count(*) AS n FROM {models.OUTPUT_TABLE} GROUP BY 1 ORDER BY 1"
    )
    return models.finish(
        engine,
        schemas.EXPERIMENT_UNITS,
        "first_exposed_at",
        {"new_units_per_experiment": {row["experiment_id"]: row["n"] for row in per_experiment}},
    )


def unit_state(
    engine: Engine,
    day: str,
    previous: ds.Dataset | None,
    units_of_day: ds.Dataset | None,
    exposures: ds.Dataset | None,
    conversions: ds.Dataset | None,
    pre_events: ds.Dataset | None,
    catalog: Catalog,
    window_days: int,
) -> models.ModelOutput:
    """`experiment_unit_state` for `day` from the day before's (`previous`) and the day's inputs."""
    engine.register_or_empty("previous", previous, schemas.EXPERIMENT_UNIT_STATE)
    engine.register_or_empty("new_units", units_of_day, schemas.EXPERIMENT_UNITS)
    engine.register_or_empty("exposures", exposures, schemas.EXPERIMENT_EXPOSURES)
    engine.register_or_empty("conversions", conversions, schemas.EXPERIMENT_CONVERSIONS)
    engine.register_or_empty("pre_events", pre_events, schemas.EVENTS)
    experiments = [row["experiment_id"] for row in engine.rows(EXPERIMENTS_SQL)]
    parts = catalog.metric_parts(experiments)
    engine.register("metric_parts", parts)
    check_metrics_unchanged(engine, day)
    engine.create_file_table(
        "carried",
        load_sql(
            "results_state",
            amount=results.amount_expression(parts, "m", "c"),
            pre_amount=results.amount_expression(parts, "p", "e"),
        ),
        {"day": day, "pre_period_days": PRE_PERIOD_DAYS},
    )
    # The cohort whose window closed today: its sums join the closed ones carried from the day before.
    closing = (dt.date.fromisoformat(day) - dt.timedelta(days=window_days)).isoformat()
    engine.create_view("unit_rows", f"FROM carried WHERE cohort_day <= DATE '{closing}'")
    engine.create_table("folded", load_sql("results_state_sums"))
    engine.create_table("parts", _closed_and("previous", "folded"))
    engine.create_view(
        models.OUTPUT_TABLE,
        f"""
        SELECT '{UNIT}' AS row_kind, * FROM carried WHERE cohort_day > DATE '{closing}'
        UNION ALL BY NAME
        SELECT '{CLOSED}' AS row_kind, * FROM ({load_sql("results_combine_sums")})
        UNION ALL BY NAME
        SELECT DISTINCT '{METRIC}' AS row_kind, experiment_id, metric_name, definition FROM metric_parts
        UNION ALL BY NAME
        SELECT DISTINCT '{SEEN}' AS row_kind, experiment_id, metric_name, source, event
        FROM (
            SELECT experiment_id, metric_name, source, event FROM previous WHERE row_kind = '{SEEN}'
            UNION ALL
            SELECT m.experiment_id, m.metric_name, m.source, m.event FROM metric_parts AS m
            SEMI JOIN conversions AS c ON c.source = m.source AND c.event_name = m.event
        )
        """,
    )
    counts = engine.rows(f"SELECT row_kind, count(*) AS n FROM {models.OUTPUT_TABLE} GROUP BY 1 ORDER BY 1")
    return models.finish(
        engine,
        schemas.EXPERIMENT_UNIT_STATE,
        None,
        {
            "rows_per_kind": {row["row_kind"]: row["n"] for row in counts},
            "closed_cohorts_through": closing,
        },
    )


def _closed_and(state: str, sums: str) -> str:
    """The closed sums of the state table `state` and the sums table `sums`, as one set of parts."""
    columns = ", ".join(["experiment_id", "variation_id", *SUM_COLUMNS])
    return f"SELECT {columns} FROM {state} WHERE row_kind = '{CLOSED}' UNION ALL SELECT {columns} FROM {sums}"


EXPERIMENTS_SQL = """
SELECT experiment_id FROM new_units UNION SELECT experiment_id FROM previous ORDER BY 1
"""


def check_metrics_unchanged(engine: Engine, day: str) -> None:
    """The metrics each carried experiment's state was counted with are today's: otherwise the sums would
    mix two definitions. Raises with what to re-materialize."""
    changed = engine.rows(
        """
        WITH carried AS (
            SELECT experiment_id, metric_name, definition FROM previous WHERE row_kind = 'metric'
        ),
        current AS (
            SELECT DISTINCT experiment_id, metric_name, definition FROM metric_parts
            WHERE experiment_id IN (SELECT experiment_id FROM previous WHERE row_kind = 'metric')
        )
        SELECT DISTINCT experiment_id FROM (
            (FROM carried EXCEPT FROM current) UNION ALL (FROM current EXCEPT FROM carried)
        )
        ORDER BY 1
        """
    )
    if changed:
        experiments = ", ".join(row["experiment_id"] for row in changed)
        raise MetricsChangedError(
            f"The metrics of experiment {experiments} changed (added, removed or redefined) since their "
            f"state before {day} was counted: re-materialize warehouse/experiment_unit_state and "
            "warehouse/experiment_results_daily from the experiment's first day, so every day counts the "
            "same metrics."
        )


def previous_looks(previous_results: ds.Dataset | None) -> dict[tuple[str, str, str], Inference]:
    """The sequential state each test continues from: day D-1's p-value and intervals per experiment,
    variation and metric (`FIRST_LOOK` for a test without one)."""
    if previous_results is None or not previous_results.schema.names:
        return {}
    columns = ["experiment_id", "variation_id", "metric_name", "p_value"]
    table = previous_results.to_table(columns=[*columns, *INTERVAL_COLUMNS])
    looks = {}
    for row in table.to_pylist():
        if row["p_value"] is None or row["metric_name"] is None:
            continue
        looks[(row["experiment_id"], row["variation_id"], row["metric_name"])] = Inference(
            row["p_value"],
            _bound(row["ci_low"], -1),
            _bound(row["ci_high"], 1),
            _bound(row["relative_ci_low"], -1),
            _bound(row["relative_ci_high"], 1),
        )
    return looks


def _bound(value: float | None, side: int) -> float:
    """A stored interval end; a missing one (no look defined it yet) is open."""
    return value if value is not None else side * float("inf")


def results_as_of(
    engine: Engine,
    state: ds.Dataset | None,
    previous_results: ds.Dataset | None,
    catalog: Catalog,
    settings: results.ResultsSettings,
) -> results.ResultsOutput:
    """The cumulative results as of the state's day, continuing the sequential tests of the day before."""
    sums = state_sums(engine, state, catalog)
    seen = engine.rows(
        f"SELECT experiment_id, metric_name, source, event FROM state WHERE row_kind = '{SEEN}'"
    )
    return results.results_from_sums(sums, seen, catalog, settings, previous_looks(previous_results))


def state_sums(engine: Engine, state: ds.Dataset | None, catalog: Catalog) -> list[dict[str, Any]]:
    """Per experiment, variation and metric, the sums over every unit of a day's state: the closed
    cohorts' and the open units' (registered as `state`)."""
    engine.register_or_empty("state", state, schemas.EXPERIMENT_UNIT_STATE)
    engine.create_view("unit_rows", f"FROM state WHERE row_kind = '{UNIT}'")
    experiments = [row["experiment_id"] for row in engine.rows("SELECT DISTINCT experiment_id FROM state")]
    engine.register("metric_parts", catalog.metric_parts(experiments))
    engine.create_table("open_sums", load_sql("results_state_sums"))
    engine.create_table("parts", _closed_and("state", "open_sums"))
    return engine.rows(load_sql("results_combine_sums"))


def chart_metadata(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per experiment and variation, the primary metric's relative lift and its interval as plain numbers
    (percent): Dagit plots numeric metadata across partitions, so the asset's page draws the lift day by
    day without any SQL."""
    points: dict[str, float] = {}
    for row in rows:
        if row.get("metric_role") != "primary" or row["is_control"] or row.get("relative_lift") is None:
            continue
        experiment = row["experiment_name"] or row["experiment_id"]
        label = f"{experiment} / {row['variation_name'] or row['variation_id']}"
        points[f"{label}: lift %"] = round(100 * row["relative_lift"], 3)
        for end in ("relative_ci_low", "relative_ci_high"):
            if row.get(end) is not None:
                points[f"{label}: {end.removeprefix('relative_ci_')} %"] = round(100 * row[end], 3)
    return points
