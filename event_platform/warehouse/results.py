"""`warehouse/experiment_results`: per experiment x variation x defined metric, what an analyst decides on.

DuckDB reduces the daily exposure and conversion partitions to sums per experiment, variation and
metric (`results_*.sql`); the statistics then run in plain Python (`inference.py`, on scipy) over those
few rows.

- Experiments, names, planned weights, the control and the metrics come from `experiment_catalog.py`
  (Optimizely's metadata and the metrics file). Only defined metrics are analysed; the every-event view
  is `warehouse/experiment_exploration` (`exploration.py`), exploratory and kept apart.
- Units: people exposed, counted once over the experiment's whole window (first exposure of all time
  decides the variation); holdbacks and people shown two variations are left out and counted. A
  variation planned with a weight but never seen is shown with 0 units.
- Metrics: means per unit (a conversion's is its rate) and ratios of sums by the delta method, compared
  with the control by the test `InferenceSettings.method` names: by default the always-valid mixture SPRT
  (valid however often the table is read), or a fixed-horizon z or Welch test for an experiment read once
  at its planned end. Guardrails are tested one-sided, for harm.
- Decisions: the p-values of an experiment's metrics x variations are corrected in tiers (the primary
  metric alone; secondary metrics with guardrails; monitoring apart) by Benjamini-Hochberg (or Holm), and
  each row's `decision` reads its corrected p-value against the metric's winning direction: winner,
  loser, inconclusive; a guardrail reports only harm; an experiment whose allocation fails the
  sample-ratio test is invalid whatever its lifts.
- Sample-ratio mismatch: chi-square goodness of fit of units per variation against the planned weights
  (Optimizely's metadata, else EVENT_PLATFORM_EXPERIMENT_WEIGHTS or the metrics file, else equal),
  flagged below `srm_alpha` (0.001 by default, the usual threshold).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from event_platform.lake.layout import PARTITION_KEY
from event_platform.warehouse import inference, schemas
from event_platform.warehouse.engine import Engine, has_rows_source, load_sql
from event_platform.warehouse.experiment_catalog import Catalog, ExperimentInfo
from event_platform.warehouse.inference import (
    FIRST_LOOK,
    ArmSums,
    Decision,
    Inference,
    InferenceSettings,
    MetricKind,
    MetricRole,
    WinningDirection,
)
from event_platform.warehouse.metrics import ExperimentMetric

Weights = Mapping[str, Mapping[str, float]]

INVALID = "invalid: sample-ratio mismatch"


@dataclass(frozen=True)
class ResultsSettings:
    window_days: int = 7
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    traffic_weights: Weights = field(default_factory=dict)
    """experiment_id -> variation_id -> weight (EVENT_PLATFORM_EXPERIMENT_WEIGHTS), where the metadata
    gives none."""
    cuped: bool = True
    """Adjust conversion, count and sum metrics by their pre-exposure value (EVENT_PLATFORM_CUPED)."""

    @property
    def confidence(self) -> float:
        return 1.0 - self.inference.alpha

    @property
    def srm_alpha(self) -> float:
        return self.inference.srm_alpha


@dataclass(frozen=True)
class Arm:
    units: int
    holdback_visitors: int = 0
    excluded_visitors: int = 0


@dataclass(frozen=True)
class Allocation:
    """An experiment's variations (the control first), their units and the sample-ratio test."""

    experiment_id: str
    variations: list[str]
    arms: dict[str, Arm]
    planned: list[float]
    """Planned shares of `variations`, summing to 1."""
    srm: inference.SampleRatio | None
    flagged: bool
    first_exposure: dt.datetime | None
    last_exposure: dt.datetime | None

    @property
    def control(self) -> str:
        return self.variations[0]

    def planned_share(self, variation_id: str) -> float:
        return self.planned[self.variations.index(variation_id)]


def allocations(
    units: Sequence[Mapping[str, Any]], catalog: Catalog, settings: ResultsSettings
) -> dict[str, Allocation]:
    """Per experiment in the data: its variations, units, planned shares and sample-ratio test."""
    by_experiment: dict[str, list[Mapping[str, Any]]] = {}
    for row in units:
        by_experiment.setdefault(row["experiment_id"], []).append(row)
    found = {}
    for experiment_id in sorted(by_experiment, key=lambda e: (catalog.info(e).name or "", e)):
        rows = by_experiment[experiment_id]
        info = catalog.info(experiment_id)
        arms = {
            row["variation_id"]: Arm(row["units"], row["holdback_visitors"], row["excluded_visitors"])
            for row in rows
        }
        variations = info.variations_with(list(arms))
        arms = {v: arms.get(v, Arm(0)) for v in variations}
        planned = _planned_shares(info, variations, settings)
        srm = (
            inference.sample_ratio_test([arms[v].units for v in variations], planned, settings.srm_alpha)
            if len(variations) > 1
            else None
        )
        found[experiment_id] = Allocation(
            experiment_id,
            variations,
            arms,
            planned,
            srm,
            bool(srm and srm.mismatch),
            min(row["first_exposure"] for row in rows),
            max(row["last_exposure"] for row in rows),
        )
    return found


def _planned_shares(info: ExperimentInfo, variations: list[str], settings: ResultsSettings) -> list[float]:
    weights = info.planned_weights(variations)
    configured = settings.traffic_weights.get(info.id)
    if weights is None and configured:
        weights = [configured.get(v, 0.0) for v in variations]
        if any(weight <= 0.0 for weight in weights):
            raise ValueError(
                f"EVENT_PLATFORM_EXPERIMENT_WEIGHTS for experiment {info.id} must give every variation a "
                f"positive weight; variations seen: {', '.join(variations)}"
            )
    if weights is None:
        weights = [1.0] * len(variations)
    total = sum(weights)
    return [weight / total for weight in weights]


@dataclass
class ResultsOutput:
    table: pa.Table
    metadata: dict[str, Any]
    summaries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Each experiment's rows, by its label (name, else id): what `summary.py` formats."""


def register_inputs(engine: Engine, exposures: ds.Dataset | None, conversions: ds.Dataset | None) -> None:
    engine.register_or_empty("exposures", exposures, schemas.EXPERIMENT_EXPOSURES)
    engine.register_or_empty("conversions", conversions, schemas.EXPERIMENT_CONVERSIONS)


def registered_allocations(
    engine: Engine, catalog: Catalog, settings: ResultsSettings
) -> dict[str, Allocation]:
    """The allocations of the `exposures` in `engine` over all their days (the exploration's units)."""
    engine.create_table("visitors", load_sql("results_visitors"))
    return allocations(engine.rows(load_sql("results_units")), catalog, settings)


Look = tuple[str, str, str]
"""(experiment_id, variation_id, metric_name): a test, as the sequential state is keyed."""


def results_from_sums(
    sums: Sequence[Mapping[str, Any]],
    seen: Sequence[Mapping[str, Any]],
    catalog: Catalog,
    settings: ResultsSettings,
    previous: Mapping[Look, Inference] | None = None,
) -> ResultsOutput:
    """The results from the sums per experiment, variation and metric (metric '' for the units;
    `results_state_sums.sql`), the metric events some unit has had (`seen`), and the sequential tests'
    state of the look before (`previous`)."""
    units = [row for row in sums if row["metric_name"] == ""]
    allocation = allocations(units, catalog, settings)
    by_metric: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for row in sums:
        if row["metric_name"]:
            by_metric.setdefault((row["experiment_id"], row["metric_name"]), {})[row["variation_id"]] = row
    rows = result_rows(allocation, by_metric, catalog, settings, previous or {})
    return ResultsOutput(
        pa.Table.from_pylist(rows, schema=schemas.EXPERIMENT_RESULTS),
        summarise(rows, seen, catalog),
        by_experiment(rows),
    )


def by_experiment(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each experiment's rows, by its label (name, else id): what `summary.py` formats."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["experiment_name"] or row["experiment_id"], []).append(row)
    return grouped


def summarise(
    rows: Sequence[Mapping[str, Any]], seen: Sequence[Mapping[str, Any]], catalog: Catalog
) -> dict[str, Any]:
    """What the results' metadata and checks report: experiments, units, the days covered, sample-ratio
    mismatches, experiments without metadata, metrics not analysed, metric events nobody has had."""
    experiments = list(dict.fromkeys(row["experiment_id"] for row in rows))
    infos = [catalog.info(experiment_id) for experiment_id in experiments]
    arms = {(row["experiment_id"], row["variation_id"]): row for row in rows}
    exposures = [
        moment for row in arms.values() for moment in (row["first_exposure"], row["last_exposure"]) if moment
    ]
    return {
        "experiments": len(experiments),
        "units": sum(row["units"] or 0 for row in arms.values()),
        "first_exposure": min(exposures) if exposures else None,
        "last_exposure": max(exposures) if exposures else None,
        "sample_ratio_mismatch": sorted(
            {_label(catalog.info(r["experiment_id"])) for r in rows if r["srm_flagged"]}
        ),
        "metadata_missing": [info.id for info in infos if info.metadata != "ok"],
        "metrics_not_analysed": [
            {"experiment": _label(info), "metric": entry.name, "reason": entry.reason}
            for info in infos
            for entry in info.not_analysed
        ],
        "unseen_events": unseen_events(infos, seen),
    }


def latest_day(dataset: ds.Dataset | None) -> str | None:
    """The latest day a daily table holds, None when it holds none."""
    if not has_rows_source(dataset) or PARTITION_KEY not in dataset.schema.names:  # type: ignore[union-attr]
        return None
    days = dataset.to_table(columns=[PARTITION_KEY]).column(PARTITION_KEY)  # type: ignore[union-attr]
    return max(days.to_pylist(), default=None)


def rows_of_day(
    dataset: ds.Dataset | None, day: str | None, row_kind: str | None = None
) -> list[dict[str, Any]]:
    """The rows of one day of a daily table (of one `row_kind`, for the unit state), without `date`."""
    if day is None or not has_rows_source(dataset):
        return []
    assert dataset is not None
    where = pc.field(PARTITION_KEY) == day
    if row_kind is not None:
        where = where & (pc.field("row_kind") == row_kind)
    table = dataset.to_table(filter=where)
    return table.drop_columns([PARTITION_KEY]).to_pylist()


def unseen_events(infos: Sequence[ExperimentInfo], seen: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The events the experiments' metrics count that no exposed unit has had yet: usually a misspelt name
    or an event no source sends."""
    had = {(row["experiment_id"], row["metric_name"], row["source"], row["event"]) for row in seen}
    return [
        {"experiment": _label(info), "metric": entry.metric.name, "event": f"{match.source} {match.event}"}
        for info in infos
        for entry in info.metrics
        for part in (entry.metric.numerator, entry.metric.denominator)
        if part is not None
        for match in part.events
        if match.event is not None and (info.id, entry.metric.name, match.source, match.event) not in had
    ]


def amount_expression(parts: pa.Table, part: str = "m", event: str = "c") -> str:
    """What a sum adds per event (`event`, matched by the metric part `part`): revenue, or a property.
    `properties` (JSON text, the widest column) is named only when some metric sums one, since naming it
    makes DuckDB read it for every event."""
    if parts.column("json_path").null_count == parts.num_rows:
        return f"CASE WHEN {part}.use_revenue THEN {event}.revenue END"
    return (
        f"CASE WHEN {part}.use_revenue THEN {event}.revenue WHEN {part}.json_path IS NOT NULL "
        f"THEN TRY_CAST(json_extract_string({event}.properties, {part}.json_path) AS DOUBLE) END"
    )


def _label(info: ExperimentInfo) -> str:
    return info.name or info.id


def result_rows(
    allocation: Mapping[str, Allocation],
    by_metric: Mapping[tuple[str, str], Mapping[str, Mapping[str, Any]]],
    catalog: Catalog,
    settings: ResultsSettings,
    previous: Mapping[Look, Inference],
) -> list[dict[str, Any]]:
    """The results table's rows from the allocations and the sums per (experiment, metric name) and
    variation."""
    rows: list[dict[str, Any]] = []
    for experiment_id, experiment in allocation.items():
        info = catalog.info(experiment_id)
        analysed: list[dict[str, Any]] = []
        for entry in info.metrics:
            sums_of_metric = by_metric.get((experiment_id, entry.metric.name), {})
            analysed += _metric_rows(info, experiment, entry, sums_of_metric, settings, previous)
        decide_experiment(analysed, experiment, settings)
        rows += analysed
        for skipped in info.not_analysed:
            note = f"not analysed: {skipped.reason}"
            rows += [
                {
                    **_base(info, experiment, variation, settings),
                    "metric_name": skipped.name,
                    "metric_role": skipped.role,
                    "decision": INVALID if experiment.flagged else "not analysed",
                    "note": note,
                }
                for variation in experiment.variations
            ]
        if not info.metrics and not info.not_analysed:
            # Units and allocation still show, and the row says why there is nothing to decide on.
            note = (
                "no metrics: Optimizely's metadata has no such experiment; define its metrics in the "
                "metrics file"
                if info.metadata != "ok"
                else "no metrics are configured for this experiment"
            )
            rows += [
                {
                    **_base(info, experiment, variation, settings),
                    "decision": INVALID if experiment.flagged else None,
                    "note": note,
                }
                for variation in experiment.variations
            ]
    return rows


def _base(
    info: ExperimentInfo, experiment: Allocation, variation: str, settings: ResultsSettings
) -> dict[str, Any]:
    arm = experiment.arms[variation]
    srm = experiment.srm
    return {
        "experiment_id": info.id,
        "experiment_name": info.name,
        "experiment_description": info.description,
        "assignment": info.assignment,
        "metadata": info.metadata,
        "variation_id": variation,
        "variation_name": info.variations[variation].name if variation in info.variations else None,
        "is_control": variation == experiment.control,
        "planned_weight": experiment.planned_share(variation),
        "units": arm.units,
        "holdback_visitors": arm.holdback_visitors,
        "excluded_visitors": arm.excluded_visitors,
        "srm_chi_square": srm.statistic if srm else None,
        "srm_p_value": srm.p_value if srm else None,
        "srm_flagged": experiment.flagged,
        "first_exposure": experiment.first_exposure,
        "last_exposure": experiment.last_exposure,
        "confidence": settings.confidence,
        "attribution_window_days": settings.window_days,
        "note": "; ".join(info.notes) or None,
    }


SUM_FIELDS = ("sum_y", "sum_y2", "sum_d", "sum_d2", "sum_yd", "sum_x", "sum_x2", "sum_xy", "sum_h", "sum_hy")
"""What results_state_sums.sql sums per experiment, metric and variation: inference.ArmSums' fields."""


def _metric_rows(
    info: ExperimentInfo,
    experiment: Allocation,
    entry: ExperimentMetric,
    sums: Mapping[str, Mapping[str, Any]],
    settings: ResultsSettings,
    previous: Mapping[Look, Inference],
) -> list[dict[str, Any]]:
    """One row per variation: its estimate, and against the control the lift and its test (continuing
    the sequential test from its `previous` look), CUPED-adjusted where the metric allows. The p-values
    are corrected later, across the experiment (`decide_experiment`)."""
    metric = entry.metric
    kind = MetricKind(metric.kind)
    arms = [
        ArmSums(
            units=float(experiment.arms[variation].units),
            **{name: float(sums.get(variation, {}).get(name) or 0.0) for name in SUM_FIELDS},
        )
        for variation in experiment.variations
    ]
    estimates = dict(zip(experiment.variations, (inference.estimate(kind, arm) for arm in arms), strict=True))
    compared, variance_reduction = estimates, None
    if settings.cuped and kind is not MetricKind.RATIO and any(arm.sum_h > 0 for arm in arms):
        adjustment = inference.cuped(kind, arms)
        compared = dict(zip(experiment.variations, adjustment.arms, strict=True))
        variance_reduction = finite(adjustment.variance_reduction)
    control = compared[experiment.control]
    alternative = inference.alternative_for(
        MetricRole(entry.role), WinningDirection(metric.winning_direction)
    )
    rows = []
    for variation in experiment.variations:
        estimate = estimates[variation]
        row: dict[str, Any] = {
            **_base(info, experiment, variation, settings),
            "metric_name": metric.name,
            "metric_role": entry.role,
            "metric_kind": metric.kind,
            "metric_definition": metric.definition(),
            "winning_direction": metric.winning_direction,
            "method": settings.inference.method.value,
            "units_with_event": int(sums.get(variation, {}).get("units_with_event") or 0),
            "total": float(sums.get(variation, {}).get("sum_y") or 0.0),
            "denominator": (
                float(sums.get(variation, {}).get("sum_d") or 0.0)
                if kind is MetricKind.RATIO
                else float(experiment.arms[variation].units)
            ),
            "value": finite(estimate.mean),
            "standard_error": finite(math.sqrt(estimate.variance)) if estimate.variance >= 0 else None,
            "variance_reduction": variance_reduction,
            "attribution_window_days": metric.window_days,
        }
        if variation != experiment.control:
            comparison = inference.lift(control, compared[variation])
            look = previous.get((info.id, variation, metric.name), FIRST_LOOK)
            tested = inference.infer(comparison, settings.inference, alternative, look)
            row |= lift_columns(comparison, tested)
        rows.append(row)
    return rows


def lift_columns(comparison: inference.Lift, tested: Inference) -> dict[str, float | None]:
    """A treatment row's lift against the control and its test, as the results tables store them."""
    error = math.sqrt(comparison.variance) if comparison.variance > 0 else math.nan
    return {
        "absolute_lift": finite(comparison.absolute),
        "ci_low": finite(tested.ci_low),
        "ci_high": finite(tested.ci_high),
        "relative_lift": finite(comparison.relative),
        "relative_ci_low": finite(tested.relative_ci_low),
        "relative_ci_high": finite(tested.relative_ci_high),
        "statistic": finite(comparison.absolute / error),
        "p_value": finite(tested.p_value),
    }


def finite(value: float) -> float | None:
    """A finite float for the table; None where the data cannot define it (NaN, an open interval end)."""
    value = float(value)
    return value if math.isfinite(value) else None


def decide_experiment(rows: list[dict[str, Any]], experiment: Allocation, settings: ResultsSettings) -> None:
    """Correct the experiment's p-values across its metrics x variations in tiers (the primary metric on
    its own), then read each row's decision from its corrected p-value, in place."""
    tested = [row for row in rows if row.get("metric_role") and not row["is_control"] and row.get("method")]
    alpha = settings.inference.alpha
    if tested:
        p_values = [math.nan if row["p_value"] is None else row["p_value"] for row in tested]
        corrected = inference.correct(
            p_values, [MetricRole(row["metric_role"]) for row in tested], settings.inference.correction
        )
        for row, adjusted in zip(tested, corrected, strict=True):
            row["corrected_p_value"] = finite(adjusted)
            row["significant"] = bool(adjusted < alpha)
    for row in rows:
        if not row.get("method"):
            continue
        row.setdefault("significant", False)
        row["decision"] = decide(
            experiment.flagged,
            row["is_control"],
            row["metric_role"],
            row["winning_direction"],
            row.get("absolute_lift"),
            row.get("corrected_p_value"),
            alpha,
        )


def decide(
    flagged: bool,
    is_control: bool,
    role: str,
    direction: str,
    lift: float | None,
    corrected_p_value: float | None,
    alpha: float,
) -> str:
    """A row's verdict in the analyst's words: the allocation first, then `inference.decide` on the
    corrected p-value, read against the winning direction (a guardrail only for harm)."""
    if flagged:
        return INVALID
    if is_control:
        return "baseline"
    verdict = inference.decide(MetricRole(role), WinningDirection(direction), lift, corrected_p_value, alpha)
    return DECISIONS[verdict] if role != MetricRole.GUARDRAIL else GUARDRAIL_DECISIONS[verdict]


DECISIONS = {Decision.WINNER: "winner", Decision.LOSER: "loser", Decision.INCONCLUSIVE: "inconclusive"}
GUARDRAIL_DECISIONS = {
    Decision.GUARDRAIL_HARMED: "guardrail harmed",
    Decision.INCONCLUSIVE: "no harm detected",
}
