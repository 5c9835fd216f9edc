"""What the warehouse knows about each experiment: names, planned weights, baseline and the metrics to
analyse, from Optimizely's metadata snapshot (`optimizely/experiments`, `optimizely/experiment_metrics`)
and the metrics file (`metrics.py`). Plain Python, no Dagster.

- An Optimizely experiment takes its names, planned weights, baseline and configured metrics from the
  latest snapshot at or before the day analysed; the metrics file adds metrics with roles (its primary,
  if it names one, replaces Optimizely's, which stays as a secondary).
- An experiment assigned by events takes everything from the metrics file.
- An experiment in the data but in neither is kept by id, marked `metadata: missing`, with only the
  metrics file's metrics for it, if any: missing metadata never blocks results.
- The control is the metadata's baseline, else the metrics file's `control`, else the lowest id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from event_platform.lake.layout import PARTITION_KEY
from event_platform.warehouse.engine import has_rows_source
from event_platform.warehouse.metrics import (
    REVENUE,
    ExperimentMetric,
    MetricsConfig,
    NotAnalysed,
    Part,
    from_optimizely,
)

OPTIMIZELY = "optimizely"
METADATA_OK = "ok"
METADATA_MISSING = "missing"

METRIC_PARTS = pa.schema(
    [
        ("experiment_id", pa.string()),
        ("metric_index", pa.int64()),
        ("metric_name", pa.string()),
        ("definition", pa.string()),
        ("part", pa.string()),
        ("x_aggregation", pa.string()),
        ("y_aggregation", pa.string()),
        ("source", pa.string()),
        ("event", pa.string()),
        ("use_revenue", pa.bool_()),
        ("json_path", pa.string()),
        ("window_days", pa.int64()),
    ]
)
"""One row per event a metric's numerator (`x`) or denominator (`y`) counts, with how each part
aggregates (unique, count, sum): what results_state.sql joins the conversions and events with."""


def control_order(variation_id: str) -> tuple[int, int, str]:
    """Sort key putting the lowest id first: digit ids by number, then other ids by text."""
    return (0, int(variation_id), "") if variation_id.isdigit() else (1, 0, variation_id)


@dataclass(frozen=True)
class VariationInfo:
    name: str | None = None
    planned_weight: float | None = None
    is_baseline: bool = False


@dataclass
class ExperimentInfo:
    id: str
    name: str | None = None
    description: str | None = None
    assignment: str = OPTIMIZELY
    metadata: str = METADATA_MISSING
    variations: dict[str, VariationInfo] = field(default_factory=dict)
    configured_control: str | None = None
    metrics: list[ExperimentMetric] = field(default_factory=list)
    not_analysed: list[NotAnalysed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def variations_with(self, observed: Sequence[str]) -> list[str]:
        """The observed variations and the planned ones with a weight (a planned variation nobody saw
        is a finding, not an absence), the control first, then by id."""
        planned = [v for v, info in self.variations.items() if info.planned_weight]
        ids = sorted(set(observed) | set(planned), key=control_order)
        control = self.control(ids)
        return [control, *(v for v in ids if v != control)]

    def control(self, variations: Sequence[str]) -> str:
        baseline = next((v for v in variations if self.variations.get(v, VariationInfo()).is_baseline), None)
        if baseline is not None:
            return baseline
        if self.configured_control in variations:
            return self.configured_control  # type: ignore[return-value]
        return min(variations, key=control_order)

    def planned_weights(self, variations: Sequence[str]) -> list[float] | None:
        """The metadata's (or the metrics file's) weights of `variations`, if it gives every one."""
        weights = [self.variations.get(v, VariationInfo()).planned_weight for v in variations]
        if all(weight is not None and weight > 0 for weight in weights):
            return [float(weight) for weight in weights]  # type: ignore[arg-type]
        return None


@dataclass
class Catalog:
    experiments: dict[str, ExperimentInfo] = field(default_factory=dict)

    def info(self, experiment_id: str) -> ExperimentInfo:
        """The experiment's info; one only the data knows is added as `metadata: missing`, no metrics."""
        return self.experiments.setdefault(experiment_id, ExperimentInfo(experiment_id))

    def metric_parts(self, experiment_ids: Sequence[str]) -> pa.Table:
        rows: list[dict[str, Any]] = []
        for experiment_id in experiment_ids:
            for index, entry in enumerate(self.info(experiment_id).metrics):
                metric = entry.metric
                parts: list[tuple[str, Part]] = [("x", metric.numerator)]
                if metric.denominator is not None:
                    parts.append(("y", metric.denominator))
                for name, part in parts:
                    rows += [
                        {
                            "experiment_id": experiment_id,
                            "metric_index": index,
                            "metric_name": metric.name,
                            "definition": metric.definition(),
                            "part": name,
                            "x_aggregation": metric.numerator.aggregation,
                            "y_aggregation": metric.denominator.aggregation if metric.denominator else None,
                            "source": match.source,
                            "event": match.event,
                            "use_revenue": part.value_property == REVENUE,
                            "json_path": part.json_path,
                            "window_days": metric.window_days,
                        }
                        for match in part.events
                    ]
        return pa.Table.from_pylist(rows, schema=METRIC_PARTS)


def latest_snapshot(dataset: ds.Dataset | None, on_or_before: str | None = None) -> list[dict[str, Any]]:
    """The rows of the latest daily snapshot at or before `on_or_before` (any day when None)."""
    if not has_rows_source(dataset) or PARTITION_KEY not in dataset.schema.names:  # type: ignore[union-attr]
        return []
    assert dataset is not None
    days = sorted(set(dataset.to_table(columns=[PARTITION_KEY]).column(PARTITION_KEY).to_pylist()))
    eligible = [day for day in days if on_or_before is None or str(day) <= on_or_before]
    if not eligible:
        return []
    return dataset.to_table(filter=pc.field(PARTITION_KEY) == eligible[-1]).to_pylist()


def build_catalog(
    config: MetricsConfig,
    experiment_rows: Sequence[Mapping[str, Any]],
    metric_rows: Sequence[Mapping[str, Any]],
    window_days: int,
) -> Catalog:
    catalog = Catalog()
    for row in experiment_rows:
        experiment_id = row["experiment_id"]
        if experiment_id is None:
            continue
        info = catalog.experiments.setdefault(
            experiment_id,
            ExperimentInfo(
                experiment_id,
                name=row.get("experiment_name"),
                description=row.get("description"),
                metadata=METADATA_OK,
            ),
        )
        if row.get("variation_id") is not None:
            info.variations[row["variation_id"]] = VariationInfo(
                row.get("variation_name"), row.get("planned_weight"), bool(row.get("is_baseline"))
            )
    for row in sorted(metric_rows, key=lambda r: (r["experiment_id"], r["metric_index"])):
        info = catalog.experiments.get(row["experiment_id"])
        if info is None:
            continue
        metric = from_optimizely(row, window_days)
        if isinstance(metric, NotAnalysed):
            info.not_analysed.append(metric)
        else:
            info.metrics.append(ExperimentMetric(metric, row["role"], OPTIMIZELY))
    for configured in config.experiments.values():
        if configured.assignment is not None:
            info = ExperimentInfo(
                configured.id, assignment=configured.assignment.source, metadata=METADATA_OK
            )
        else:
            info = catalog.experiments.get(configured.id) or ExperimentInfo(configured.id)
        catalog.experiments[configured.id] = info
        info.name = configured.name or info.name
        info.description = configured.description or info.description
        info.configured_control = configured.control
        for variation_id in set(configured.variation_names) | set(configured.planned_weights):
            known = info.variations.get(variation_id, VariationInfo())
            info.variations[variation_id] = VariationInfo(
                configured.variation_names.get(variation_id, known.name),
                configured.planned_weights.get(variation_id, known.planned_weight),
                known.is_baseline,
            )
        extra = config.experiment_metrics(configured.id)
        if any(entry.role == "primary" for entry in extra):
            for position, entry in enumerate(info.metrics):
                if entry.role == "primary":
                    info.metrics[position] = ExperimentMetric(entry.metric, "secondary", entry.origin)
                    info.notes.append(
                        f"the metrics file's primary metric replaces Optimizely's ({entry.metric.name}), "
                        "which is analysed as a secondary"
                    )
        info.metrics += extra
    return catalog
