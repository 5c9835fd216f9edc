"""`warehouse/experiment_results`: per experiment x variation x metric, the numbers an analyst decides on.

DuckDB reduces the daily exposure and conversion partitions to counts and sums (`results_*.sql`);
the statistics then run in plain Python (`stats.py`) over those few rows.

- Units: people exposed, counted once over the experiment's whole window (first exposure of all
  time decides the variation); holdbacks and people shown two variations are left out and counted.
- Metrics, per source and event name: `conversion_rate` (share of units with at least one event in
  the attribution window; two-proportion z-test), `events_per_visitor` (Welch t-test), and per source
  `revenue_per_visitor` (Welch t-test; revenue of units without revenue counts as 0).
- Control: E3 carries no variation names, so the control is the variation with the lowest id
  (numerically for Optimizely's digit ids); lifts are against it.
- Sample-ratio mismatch: chi-square goodness of fit of units per variation against equal allocation,
  or the experiment's configured traffic weights; flagged below `srm_alpha` (0.001 by default, the
  usual threshold, so a real mismatch is rare to miss and a false alarm rarer still).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from event_platform.defs.warehouse import schemas, stats
from event_platform.defs.warehouse.engine import Engine, load_sql
from event_platform.markdown import markdown_table

Weights = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class ResultsSettings:
    window_days: int = 7
    confidence: float = 0.95
    srm_alpha: float = 0.001
    traffic_weights: Weights = field(default_factory=dict)
    """experiment_id -> variation_id -> weight, for experiments not split equally."""


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


def control_order(variation_id: str) -> tuple[int, int, str]:
    """Sort key putting the control first: digit ids by number, then other ids by text."""
    return (0, int(variation_id), "") if variation_id.isdigit() else (1, 0, variation_id)


@dataclass(frozen=True)
class _Arm:
    units: int
    holdback_visitors: int
    excluded_visitors: int


@dataclass(frozen=True)
class _Sums:
    converted_units: int = 0
    total: float = 0.0
    total_of_squares: float = 0.0

    def mean_and_variance(self, units: int) -> tuple[float | None, float | None]:
        if units == 0:
            return None, None
        mean = self.total / units
        if units < 2:
            return mean, None
        return mean, max(0.0, (self.total_of_squares - self.total * mean) / (units - 1))


@dataclass
class ResultsOutput:
    table: pa.Table
    metadata: dict[str, Any]


def experiment_results(
    engine: Engine, exposures: ds.Dataset | None, conversions: ds.Dataset | None, settings: ResultsSettings
) -> ResultsOutput:
    engine.register_or_empty("exposures", exposures, schemas.EXPERIMENT_EXPOSURES)
    engine.register_or_empty("conversions", conversions, schemas.EXPERIMENT_CONVERSIONS)
    return results_of_registered(engine, settings)


def results_of_registered(engine: Engine, settings: ResultsSettings) -> ResultsOutput:
    """The results from the relations `exposures` and `conversions` already in `engine`, however they
    read the lake (the benchmark compares readers)."""
    engine.create_table("visitors", load_sql("results_visitors"))
    units = engine.rows(load_sql("results_units"))
    sums = engine.rows(load_sql("results_metrics"), {"window_days": settings.window_days})
    rows = result_rows(units, sums, settings)
    table = pa.Table.from_pylist(rows, schema=schemas.EXPERIMENT_RESULTS)
    flagged = sorted({row["experiment_id"] for row in rows if row["srm_flagged"]})
    preview_columns = [
        "experiment_id",
        "variation_id",
        "metric_event",
        "units",
        "conversions",
        "value",
        "absolute_lift",
        "p_value",
        "srm_p_value",
    ]
    preview = [row for row in rows if row["metric"] == "conversion_rate"][:12]
    return ResultsOutput(
        table,
        {
            "experiments": len({row["experiment_id"] for row in units}),
            "variations": len(units),
            "units": sum(row["units"] for row in units),
            "excluded_visitors": sum(row["excluded_visitors"] for row in units),
            "holdback_visitors": sum(row["holdback_visitors"] for row in units),
            "sample_ratio_mismatch": flagged,
            "preview": markdown_table(preview, preview_columns),
        },
    )


def result_rows(
    units: Sequence[Mapping[str, Any]], sums: Sequence[Mapping[str, Any]], settings: ResultsSettings
) -> list[dict[str, Any]]:
    """The results table's rows from units per variation and per-metric sums (see results_*.sql)."""
    arms: dict[str, dict[str, _Arm]] = defaultdict(dict)
    for row in units:
        arms[row["experiment_id"]][row["variation_id"]] = _Arm(
            row["units"], row["holdback_visitors"], row["excluded_visitors"]
        )
    metrics: dict[str, dict[tuple[str, str, str | None], dict[str, _Sums]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for row in sums:
        key = (row["kind"], row["source"], row["event_name"])
        metrics[row["experiment_id"]][key][row["variation_id"]] = _Sums(
            row["converted_units"], row["total"], row["total_of_squares"]
        )
    rows: list[dict[str, Any]] = []
    for experiment_id in sorted(arms, key=control_order):
        variations = sorted(arms[experiment_id], key=control_order)
        srm = _sample_ratio(experiment_id, variations, arms[experiment_id], settings)
        for (kind, source, event_name), by_variation in sorted(
            metrics[experiment_id].items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        ):
            names = (
                ("conversion_rate", "events_per_visitor") if kind == "events" else ("revenue_per_visitor",)
            )
            for metric in names:
                rows += _metric_rows(
                    experiment_id,
                    variations,
                    arms[experiment_id],
                    by_variation,
                    metric,
                    source,
                    event_name,
                    settings,
                    srm,
                )
        if not metrics[experiment_id]:
            # An experiment nobody converted in still shows its units and its allocation test.
            rows += _metric_rows(
                experiment_id,
                variations,
                arms[experiment_id],
                {},
                "conversion_rate",
                None,
                None,
                settings,
                srm,
            )
    return rows


def _sample_ratio(
    experiment_id: str, variations: list[str], arms: Mapping[str, _Arm], settings: ResultsSettings
) -> stats.GoodnessOfFit | None:
    if len(variations) < 2:
        return None
    configured = settings.traffic_weights.get(experiment_id)
    weights = [configured.get(v, 0.0) for v in variations] if configured else None
    if weights is not None and any(weight <= 0.0 for weight in weights):
        raise ValueError(
            f"traffic weights for experiment {experiment_id} must give every variation a positive weight; "
            f"variations seen: {', '.join(variations)}"
        )
    return stats.sample_ratio_test([arms[v].units for v in variations], weights)


def _metric_rows(
    experiment_id: str,
    variations: list[str],
    arms: Mapping[str, _Arm],
    by_variation: Mapping[str, _Sums],
    metric: str,
    source: str | None,
    event_name: str | None,
    settings: ResultsSettings,
    srm: stats.GoodnessOfFit | None,
) -> list[dict[str, Any]]:
    control = variations[0]
    control_arm, control_sums = arms[control], by_variation.get(control, _Sums())
    rows = []
    for variation in variations:
        arm, sums = arms[variation], by_variation.get(variation, _Sums())
        if metric == "conversion_rate":
            test = "two_proportion_z"
            value = sums.converted_units / arm.units if arm.units else None
            variance = value * (1.0 - value) if value is not None else None
            comparison = stats.two_proportion_test(
                control_sums.converted_units,
                control_arm.units,
                sums.converted_units,
                arm.units,
                settings.confidence,
            )
        else:
            test = "welch_t"
            value, variance = sums.mean_and_variance(arm.units)
            control_mean, control_variance = control_sums.mean_and_variance(control_arm.units)
            comparison = (
                stats.welch_test(
                    control_mean,
                    control_variance,
                    control_arm.units,
                    value,
                    variance,
                    arm.units,
                    settings.confidence,
                )
                if None not in (value, variance, control_mean, control_variance)
                else stats.NO_COMPARISON
            )
        if variation == control:
            comparison = stats.NO_COMPARISON
        rows.append(
            {
                "experiment_id": experiment_id,
                "variation_id": variation,
                "is_control": variation == control,
                "metric": metric,
                "metric_source": source,
                "metric_event": event_name,
                "test": test,
                "units": arm.units,
                "conversions": sums.converted_units,
                "total": sums.total,
                "value": value,
                "variance": variance,
                "absolute_lift": comparison.absolute_lift,
                "ci_low": comparison.ci_low,
                "ci_high": comparison.ci_high,
                "relative_lift": comparison.relative_lift,
                "relative_ci_low": comparison.relative_ci_low,
                "relative_ci_high": comparison.relative_ci_high,
                "statistic": comparison.statistic,
                "p_value": comparison.p_value,
                "holdback_visitors": arm.holdback_visitors,
                "excluded_visitors": arm.excluded_visitors,
                "srm_chi_square": srm.statistic if srm else None,
                "srm_p_value": srm.p_value if srm else None,
                "srm_flagged": bool(srm and srm.p_value < settings.srm_alpha),
                "confidence": settings.confidence,
                "attribution_window_days": settings.window_days,
            }
        )
    return rows
