"""`warehouse/experiment_results`: per experiment x variation x defined metric, what an analyst decides on.

DuckDB reduces the daily exposure and conversion partitions to sums per experiment, variation and
metric (`results_*.sql`); the statistics then run in plain Python (`stats.py`) over those few rows.

- Experiments, names, planned weights, the control and the metrics come from `experiment_catalog.py`
  (Optimizely's metadata and the metrics file). Only defined metrics are analysed; the every-event view
  is `warehouse/experiment_exploration` (`exploration.py`), exploratory and kept apart.
- Units: people exposed, counted once over the experiment's whole window (first exposure of all time
  decides the variation); holdbacks and people shown two variations are left out and counted. A
  variation planned with a weight but never seen is shown with 0 units.
- Metrics: a conversion is compared by a two-proportion z-test, a count or sum per unit by Welch's
  t-test, a ratio of sums by a z-test on delta-method variances. Each row's `decision` reads the test
  against the metric's winning direction and role: winner, loser, inconclusive; a guardrail reports
  only harm; an experiment whose allocation fails the sample-ratio test is invalid whatever its lifts.
- Sample-ratio mismatch: chi-square goodness of fit of units per variation against the planned weights
  (Optimizely's metadata, else EVENT_PLATFORM_EXPERIMENT_WEIGHTS or the metrics file, else equal),
  flagged below `srm_alpha` (0.001 by default, the usual threshold).
These tests are fixed-horizon: read once at a planned end, not every day (`method` says which test).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from event_platform.defs.warehouse import schemas, stats
from event_platform.defs.warehouse.engine import Engine, load_sql
from event_platform.defs.warehouse.experiment_catalog import Catalog, ExperimentInfo
from event_platform.defs.warehouse.metrics import ExperimentMetric

Weights = Mapping[str, Mapping[str, float]]

METHODS = {"conversion": "two_proportion_z", "count": "welch_t", "sum": "welch_t", "ratio": "delta_method_z"}
INVALID = "invalid: sample-ratio mismatch"


@dataclass(frozen=True)
class ResultsSettings:
    window_days: int = 7
    confidence: float = 0.95
    srm_alpha: float = 0.001
    traffic_weights: Weights = field(default_factory=dict)
    """experiment_id -> variation_id -> weight (EVENT_PLATFORM_EXPERIMENT_WEIGHTS), where the metadata
    gives none."""


def parse_traffic_weights(text: str | None) -> dict[str, dict[str, float]]:
    """`{"<experiment_id>": {"<variation_id>": weight, ...}, ...}` as JSON; empty when unset."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
        return {str(exp): {str(var): float(w) for var, w in weights.items()} for exp, weights in raw.items()}
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(
            'traffic weights must be JSON like {"<experiment_id>": {"<variation_id>": 0.5, ...}}'
        ) from error


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
    srm: stats.GoodnessOfFit | None
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
            stats.sample_ratio_test([arms[v].units for v in variations], planned)
            if len(variations) > 1
            else None
        )
        found[experiment_id] = Allocation(
            experiment_id,
            variations,
            arms,
            planned,
            srm,
            bool(srm and srm.p_value < settings.srm_alpha),
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


def experiment_results(
    engine: Engine,
    exposures: ds.Dataset | None,
    conversions: ds.Dataset | None,
    catalog: Catalog,
    settings: ResultsSettings,
) -> ResultsOutput:
    register_inputs(engine, exposures, conversions)
    return results_of_registered(engine, catalog, settings)


def register_inputs(engine: Engine, exposures: ds.Dataset | None, conversions: ds.Dataset | None) -> None:
    engine.register_or_empty("exposures", exposures, schemas.EXPERIMENT_EXPOSURES)
    engine.register_or_empty("conversions", conversions, schemas.EXPERIMENT_CONVERSIONS)


def registered_allocations(
    engine: Engine, catalog: Catalog, settings: ResultsSettings
) -> dict[str, Allocation]:
    """The allocations of the `exposures` in `engine`; leaves the `visitors` table the metrics join."""
    engine.create_table("visitors", load_sql("results_visitors"))
    return allocations(engine.rows(load_sql("results_units")), catalog, settings)


def results_of_registered(engine: Engine, catalog: Catalog, settings: ResultsSettings) -> ResultsOutput:
    """The results from the relations `exposures` and `conversions` already in `engine`, however they
    read the lake (the benchmark compares readers)."""
    allocation = registered_allocations(engine, catalog, settings)
    parts = catalog.metric_parts(list(allocation))
    engine.register("metric_parts", parts)
    sums = engine.rows(load_sql("results_metrics", **amount_fragments(parts)))
    unseen = engine.rows(load_sql("results_unseen_events"))
    rows = result_rows(allocation, sums, catalog, settings)
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_experiment.setdefault(row["experiment_name"] or row["experiment_id"], []).append(row)
    infos = [catalog.info(experiment_id) for experiment_id in allocation]
    exposures = [a.first_exposure for a in allocation.values() if a.first_exposure] + [
        a.last_exposure for a in allocation.values() if a.last_exposure
    ]
    return ResultsOutput(
        pa.Table.from_pylist(rows, schema=schemas.EXPERIMENT_RESULTS),
        {
            "experiments": len(allocation),
            "units": sum(arm.units for a in allocation.values() for arm in a.arms.values()),
            "first_exposure": min(exposures).isoformat() if exposures else None,
            "last_exposure": max(exposures).isoformat() if exposures else None,
            "sample_ratio_mismatch": [_label(catalog.info(e)) for e, a in allocation.items() if a.flagged],
            "metadata_missing": [info.id for info in infos if info.metadata != "ok"],
            "metrics_not_analysed": [
                {"experiment": _label(info), "metric": entry.name, "reason": entry.reason}
                for info in infos
                for entry in info.not_analysed
            ],
            "unseen_events": [
                {
                    "experiment": _label(catalog.info(row["experiment_id"])),
                    "metric": catalog.info(row["experiment_id"]).metrics[row["metric_index"]].metric.name,
                    "event": f"{row['source']} {row['event']}",
                }
                for row in unseen
            ],
        },
        by_experiment,
    )


def amount_fragments(parts: pa.Table) -> dict[str, str]:
    """What a sum adds per event: revenue, or a property; `properties` (JSON text, the widest column) is
    named only when some metric sums one, since naming it makes DuckDB read it for every conversion."""
    if parts.column("json_path").null_count == parts.num_rows:
        return {"amount": "CASE WHEN m.use_revenue THEN c.revenue END"}
    return {
        "amount": "CASE WHEN m.use_revenue THEN c.revenue WHEN m.json_path IS NOT NULL "
        "THEN TRY_CAST(json_extract_string(c.properties, m.json_path) AS DOUBLE) END"
    }


def _label(info: ExperimentInfo) -> str:
    return info.name or info.id


def result_rows(
    allocation: Mapping[str, Allocation],
    sums: Sequence[Mapping[str, Any]],
    catalog: Catalog,
    settings: ResultsSettings,
) -> list[dict[str, Any]]:
    """The results table's rows from the allocations and the per-metric sums (results_metrics.sql)."""
    by_metric: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
    for row in sums:
        by_metric.setdefault((row["experiment_id"], row["metric_index"]), {})[row["variation_id"]] = row
    rows: list[dict[str, Any]] = []
    for experiment_id, experiment in allocation.items():
        info = catalog.info(experiment_id)
        for index, entry in enumerate(info.metrics):
            rows += _metric_rows(info, experiment, entry, by_metric.get((experiment_id, index), {}), settings)
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


@dataclass(frozen=True)
class _Estimate:
    value: float | None
    standard_error: float | None
    total: float
    denominator: float


def _metric_rows(
    info: ExperimentInfo,
    experiment: Allocation,
    entry: ExperimentMetric,
    sums: Mapping[str, Mapping[str, Any]],
    settings: ResultsSettings,
) -> list[dict[str, Any]]:
    metric = entry.metric
    ratio_sums = {
        variation: stats.RatioSums(
            experiment.arms[variation].units,
            *(
                float(sums.get(variation, {}).get(name) or 0.0)
                for name in ("sum_x", "sum_xx", "sum_y", "sum_yy", "sum_xy")
            ),
        )
        for variation in experiment.variations
    }
    control = ratio_sums[experiment.control]
    alpha = 1.0 - settings.confidence
    rows = []
    for variation in experiment.variations:
        treatment = ratio_sums[variation]
        estimate = _estimate(metric.kind, treatment)
        comparison = (
            stats.NO_COMPARISON
            if variation == experiment.control
            else _compare(metric.kind, control, treatment, settings.confidence)
        )
        significant = comparison.p_value is not None and comparison.p_value < alpha
        rows.append(
            {
                **_base(info, experiment, variation, settings),
                "metric_name": metric.name,
                "metric_role": entry.role,
                "metric_kind": metric.kind,
                "metric_definition": metric.definition(),
                "winning_direction": metric.winning_direction,
                "method": METHODS[metric.kind],
                "units_with_event": int(sums.get(variation, {}).get("units_with_event") or 0),
                "total": estimate.total,
                "denominator": estimate.denominator,
                "value": estimate.value,
                "standard_error": estimate.standard_error,
                "absolute_lift": comparison.absolute_lift,
                "ci_low": comparison.ci_low,
                "ci_high": comparison.ci_high,
                "relative_lift": comparison.relative_lift,
                "relative_ci_low": comparison.relative_ci_low,
                "relative_ci_high": comparison.relative_ci_high,
                "statistic": comparison.statistic,
                "p_value": comparison.p_value,
                "significant": significant,
                "decision": decide(
                    experiment.flagged,
                    variation == experiment.control,
                    entry.role,
                    metric.winning_direction,
                    comparison.absolute_lift,
                    significant,
                ),
                "attribution_window_days": metric.window_days,
            }
        )
    return rows


def _estimate(kind: str, sums: stats.RatioSums) -> _Estimate:
    units = sums.units
    if kind == "ratio":
        variance = sums.ratio_variance()
        return _Estimate(
            sums.ratio, math.sqrt(variance) if variance is not None else None, sums.sum_x, sums.sum_y
        )
    if units == 0:
        return _Estimate(None, None, sums.sum_x, 0.0)
    mean = sums.sum_x / units
    if kind == "conversion":
        return _Estimate(mean, math.sqrt(mean * (1.0 - mean) / units), sums.sum_x, float(units))
    variance = _sample_variance(sums.sum_x, sums.sum_xx, units)
    standard_error = math.sqrt(variance / units) if variance is not None else None
    return _Estimate(mean, standard_error, sums.sum_x, float(units))


def _sample_variance(total: float, total_of_squares: float, units: int) -> float | None:
    if units < 2:
        return None
    return max(0.0, (total_of_squares - total * total / units) / (units - 1))


def _compare(
    kind: str, control: stats.RatioSums, treatment: stats.RatioSums, confidence: float
) -> stats.Comparison:
    if kind == "ratio":
        return stats.ratio_test(control, treatment, confidence)
    if kind == "conversion":
        return stats.two_proportion_test(
            round(control.sum_x), control.units, round(treatment.sum_x), treatment.units, confidence
        )
    control_variance = _sample_variance(control.sum_x, control.sum_xx, control.units)
    treatment_variance = _sample_variance(treatment.sum_x, treatment.sum_xx, treatment.units)
    if control_variance is None or treatment_variance is None:
        return stats.NO_COMPARISON
    return stats.welch_test(
        control.sum_x / control.units,
        control_variance,
        control.units,
        treatment.sum_x / treatment.units,
        treatment_variance,
        treatment.units,
        confidence,
    )


def decide(
    flagged: bool, is_control: bool, role: str, direction: str, lift: float | None, significant: bool
) -> str:
    """A row's verdict: the allocation first, then the test read against the winning direction."""
    if flagged:
        return INVALID
    if is_control:
        return "baseline"
    if not significant or lift is None or lift == 0.0:
        return "no harm detected" if role == "guardrail" else "inconclusive"
    better = (lift > 0) == (direction == "increasing")
    if role == "guardrail":
        return "no harm detected" if better else "guardrail harmed"
    return "winner" if better else "loser"
