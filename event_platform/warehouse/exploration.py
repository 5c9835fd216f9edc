"""`warehouse/experiment_exploration`: every source's every event type as a metric of every experiment.

Exploratory, and kept out of `experiment_results` on purpose: with dozens of uncorrected tests per
variation, about one in twenty null comparisons comes out "significant" by chance. It is where an analyst
looks for a metric worth defining, not what they decide from.

Per source and event type: `conversion_rate` (share of units with the event in the attribution window;
z-test, one look) and `events_per_visitor` (Welch t-test); per source `revenue_per_visitor` (Welch;
units without revenue count as 0). Units, the control and the sample-ratio test are those of
`experiment_results` (`results.allocations`), so both tables agree on who is in which variation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from event_platform.markdown import markdown_table
from event_platform.warehouse import inference, schemas
from event_platform.warehouse.engine import Engine, load_sql
from event_platform.warehouse.experiment_catalog import Catalog
from event_platform.warehouse.inference import ArmSums, Method, MetricKind
from event_platform.warehouse.results import (
    Allocation,
    ResultsOutput,
    ResultsSettings,
    finite,
    lift_columns,
    register_inputs,
    registered_allocations,
)

PREVIEW_ROWS = 12


@dataclass(frozen=True)
class _Sums:
    converted_units: int = 0
    total: float = 0.0
    total_of_squares: float = 0.0

    def arm(self, kind: MetricKind, units: int) -> ArmSums:
        """A conversion's y is 0/1 (its sums are the converted units); otherwise the per-unit total."""
        if kind is MetricKind.CONVERSION:
            return ArmSums(float(units), float(self.converted_units), float(self.converted_units))
        return ArmSums(float(units), self.total, self.total_of_squares)


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
    srm = experiment.srm
    rows = []
    kind = MetricKind.CONVERSION if metric == "conversion_rate" else MetricKind.SUM
    method = Method.FIXED_Z if kind is MetricKind.CONVERSION else Method.FIXED_WELCH
    estimates = {
        variation: inference.estimate(
            kind, by_variation.get(variation, _Sums()).arm(kind, experiment.arms[variation].units)
        )
        for variation in experiment.variations
    }
    for variation in experiment.variations:
        arm, sums = experiment.arms[variation], by_variation.get(variation, _Sums())
        estimate = estimates[variation]
        value = finite(estimate.mean)
        variance = finite(estimate.variance * arm.units)
        lifts = {}
        if variation != control:
            comparison = inference.lift(estimates[control], estimate)
            alpha = 1.0 - settings.confidence
            tested = inference.fixed_horizon(comparison, alpha, welch=method is Method.FIXED_WELCH)
            lifts = lift_columns(comparison, tested)
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
                "test": method.value,
                "units": arm.units,
                "conversions": sums.converted_units,
                "total": sums.total,
                "value": value,
                "variance": variance,
                **lifts,
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
