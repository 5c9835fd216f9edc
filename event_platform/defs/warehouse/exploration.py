"""`warehouse/experiment_exploration`: every source's every event type as a metric of every experiment.

Exploratory, and kept out of `experiment_results` on purpose: with dozens of uncorrected tests per
variation, about one in twenty null comparisons comes out "significant" by chance. It is where an analyst
looks for a metric worth defining, not what they decide from.

Per source and event type: `conversion_rate` (share of units with the event in the attribution window;
two-proportion z-test) and `events_per_visitor` (Welch t-test); per source `revenue_per_visitor` (Welch;
units without revenue count as 0). Units, the control and the sample-ratio test are those of
`experiment_results` (`results.allocations`), so both tables agree on who is in which variation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from event_platform.defs.warehouse import schemas, stats
from event_platform.defs.warehouse.engine import Engine, load_sql
from event_platform.defs.warehouse.experiment_catalog import Catalog
from event_platform.defs.warehouse.results import (
    Allocation,
    ResultsOutput,
    ResultsSettings,
    register_inputs,
    registered_allocations,
)
from event_platform.markdown import markdown_table

PREVIEW_ROWS = 12


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


def experiment_exploration(
    engine: Engine,
    exposures: ds.Dataset | None,
    conversions: ds.Dataset | None,
    catalog: Catalog,
    settings: ResultsSettings,
) -> ResultsOutput:
    register_inputs(engine, exposures, conversions)
    allocation = registered_allocations(engine, catalog, settings)
    sums = engine.rows(load_sql("exploration_metrics"), {"window_days": settings.window_days})
    rows = exploration_rows(allocation, sums, catalog, settings)
    preview_columns = ["experiment_name", "variation_name", "metric", "metric_source", "metric_event"]
    preview = [row for row in rows if row["metric"] == "conversion_rate"][:PREVIEW_ROWS]
    return ResultsOutput(
        pa.Table.from_pylist(rows, schema=schemas.EXPERIMENT_EXPLORATION),
        {
            "experiments": len(allocation),
            "metrics_per_variation": len(
                {(r["metric"], r["metric_source"], r["metric_event"]) for r in rows}
            ),
            "preview": markdown_table(
                [{**row, "units": row["units"], "value": _rounded(row["value"])} for row in preview],
                [*preview_columns, "units", "value"],
            ),
        },
    )


def _rounded(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def exploration_rows(
    allocation: Mapping[str, Allocation],
    sums: Sequence[Mapping[str, Any]],
    catalog: Catalog,
    settings: ResultsSettings,
) -> list[dict[str, Any]]:
    metrics: dict[str, dict[tuple[str, str, str | None], dict[str, _Sums]]] = {}
    for row in sums:
        key = (row["kind"], row["source"], row["event_name"])
        metrics.setdefault(row["experiment_id"], {}).setdefault(key, {})[row["variation_id"]] = _Sums(
            row["converted_units"], row["total"], row["total_of_squares"]
        )
    rows: list[dict[str, Any]] = []
    for experiment_id, experiment in allocation.items():
        found = metrics.get(experiment_id, {})
        for (kind, source, event_name), by_variation in sorted(
            found.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        ):
            names = (
                ("conversion_rate", "events_per_visitor") if kind == "events" else ("revenue_per_visitor",)
            )
            for metric in names:
                rows += _metric_rows(catalog, experiment, by_variation, metric, source, event_name, settings)
        if not found:
            # An experiment nobody converted in still shows its units and its allocation test.
            rows += _metric_rows(catalog, experiment, {}, "conversion_rate", None, None, settings)
    return rows


def _metric_rows(
    catalog: Catalog,
    experiment: Allocation,
    by_variation: Mapping[str, _Sums],
    metric: str,
    source: str | None,
    event_name: str | None,
    settings: ResultsSettings,
) -> list[dict[str, Any]]:
    info = catalog.info(experiment.experiment_id)
    control = experiment.control
    control_arm, control_sums = experiment.arms[control], by_variation.get(control, _Sums())
    srm = experiment.srm
    rows = []
    for variation in experiment.variations:
        arm, sums = experiment.arms[variation], by_variation.get(variation, _Sums())
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
                "experiment_id": experiment.experiment_id,
                "experiment_name": info.name,
                "variation_id": variation,
                "variation_name": info.variations[variation].name if variation in info.variations else None,
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
                "srm_flagged": experiment.flagged,
                "confidence": settings.confidence,
                "attribution_window_days": settings.window_days,
            }
        )
    return rows
