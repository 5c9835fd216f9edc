"""Experiment metadata as typed tables: what `optimizely/experiments` and `optimizely/experiment_metrics`
store for a day, read from the REST API (`rest_client.py`); no Dagster here.

Two shapes an analyst and the warehouse join on `experiment_id` (E3's `decisions.experiment_id`):
- `EXPERIMENTS`: one row per experiment and variation, with the planned weight in basis points and as a
  share, and which variation is the baseline;
- `EXPERIMENT_METRICS`: one row per experiment and configured metric, in Optimizely's order (index 0 is
  the primary metric, 1-4 secondary, 5 and on monitoring), with the event it counts resolved to its key
  (E3 `event_name`) and name through the project's events (`entity_id` = `Event.id`).

Web Experimentation experiments come from `/v2/experiments`; Feature Experimentation experiments are the
a/b and multi-armed-bandit rules of the Flags API, whose `layer_experiment_id` is E3's `experiment_id` and
`layer_id` its `campaign_id`. A Web experiment has no baseline field: Optimizely compares against the
first variation ("Original") unless someone picks another in the results page, so that one is marked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from event_platform.columns import column
from event_platform.sources.optimizely.rest_client import (
    OptimizelyRestClient,
    ProjectForbiddenError,
    as_id,
)

BASIS_POINTS = 10_000
EXPERIMENT_RULE_TYPES = frozenset({"a/b", "multi_armed_bandit"})
"""Flags API rule types that are experiments (targeted deliveries are rollouts, not tests)."""
PRIMARY_INDEX = 0
LAST_SECONDARY_INDEX = 4

TIMESTAMP = pa.timestamp("us", tz="UTC")

_SNAPSHOT_AT = column("snapshot_at", TIMESTAMP, "When the REST API was read for this snapshot (UTC).")
_PROJECT_ID = column("project_id", pa.string(), "Optimizely project id.")
_EXPERIMENT_ID = column(
    "experiment_id",
    pa.string(),
    "Experiment id as E3 writes it in decisions.experiment_id (a Flags API rule's layer_experiment_id).",
)

EXPERIMENTS = pa.schema(
    [
        _SNAPSHOT_AT,
        _PROJECT_ID,
        column("project_name", pa.string(), "Optimizely project name."),
        column("platform", pa.string(), "`web` (Web Experimentation) or `feature` (Feature Experimentation)"),
        _EXPERIMENT_ID,
        column("campaign_id", pa.string(), "E3 campaign_id (a Flags API rule's layer_id)."),
        column("experiment_name", pa.string(), "The experiment's (or flag rule's) name in Optimizely."),
        column("experiment_key", pa.string(), "The flag rule's key (Feature Experimentation only)."),
        column("flag_key", pa.string(), "The flag the rule belongs to (Feature Experimentation only)."),
        column("environment_key", pa.string(), "The rule's environment (Feature Experimentation only)."),
        column("description", pa.string(), "The experiment's description in Optimizely."),
        column("status", pa.string(), "running, paused, archived, concluded, not_started, draft, …"),
        column("experiment_type", pa.string(), "a/b, multivariate, multi_armed_bandit, personalization, …"),
        column(
            "traffic_allocation_bp", pa.int64(), "Share of eligible traffic in the experiment, basis points."
        ),
        column("created_at", TIMESTAMP, "When the experiment was created."),
        column("last_modified_at", TIMESTAMP, "When the experiment was last changed."),
        column("started_at", TIMESTAMP, "First activation (Web `earliest`)."),
        column("variation_id", pa.string(), "Variation id as E3 writes it in decisions.variation_id."),
        column("variation_key", pa.string(), "The variation's key."),
        column("variation_name", pa.string(), "The variation's name in Optimizely."),
        column("variation_status", pa.string(), "active, paused or archived (Web only)."),
        column("planned_weight_bp", pa.int64(), "Planned share of the experiment's traffic, basis points."),
        column("planned_weight", pa.float64(), "Planned share of the experiment's traffic, 0 to 1."),
        column(
            "is_baseline",
            pa.bool_(),
            "The variation others are compared with: the rule's baseline_variation_id, or a Web "
            "experiment's first variation.",
        ),
    ]
)
"""One row per experiment and variation (an experiment without variations has one row of nulls)."""

EXPERIMENT_METRICS = pa.schema(
    [
        _SNAPSHOT_AT,
        _PROJECT_ID,
        _EXPERIMENT_ID,
        column("metric_index", pa.int64(), "Position in the experiment's metrics, from 0."),
        column("role", pa.string(), "primary (index 0), secondary (1-4) or monitoring (5 and on)."),
        column("metric_name", pa.string(), "display_title, else built from the event and aggregation."),
        column("aggregator", pa.string(), "unique, count, sum, bounce, exit or ratio."),
        column("scope", pa.string(), "The denominator: visitor, session or event."),
        column("field", pa.string(), "revenue or value, for sum metrics."),
        column("winning_direction", pa.string(), "increasing or decreasing."),
        column("event_id", pa.string(), "The event's id (E3 entity_id); null for global metrics."),
        column("event_key", pa.string(), "The event's key, which E3 writes as conversions.event_name."),
        column("event_name", pa.string(), "The event's name in Optimizely."),
        column("event_type", pa.string(), "custom, click, pageview, …"),
        column("display_title", pa.string(), "The title someone gave the metric, if any."),
    ]
)
"""One row per experiment and configured metric, in Optimizely's order."""


def metric_role(index: int) -> str:
    if index == PRIMARY_INDEX:
        return "primary"
    return "secondary" if index <= LAST_SECONDARY_INDEX else "monitoring"


@dataclass
class Snapshot:
    """One read of the account's experiment metadata."""

    snapshot_at: dt.datetime
    experiments: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    projects: list[dict[str, Any]] = field(default_factory=list)
    """Projects read: id, name, platform, experiments."""
    skipped_projects: list[dict[str, str]] = field(default_factory=list)
    """Projects the token may not read (403): id and the API's reason."""

    def experiments_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.experiments, schema=EXPERIMENTS)

    def metrics_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.metrics, schema=EXPERIMENT_METRICS)

    @property
    def experiment_count(self) -> int:
        return len({row["experiment_id"] for row in self.experiments})


def read_snapshot(
    client: OptimizelyRestClient, project_ids: Sequence[str] = (), now: dt.datetime | None = None
) -> Snapshot:
    """Every experiment of the given projects (else of every project the token sees).

    A project the token may not read (403) is skipped and listed in `skipped_projects`; any
    other error ends the read, since a snapshot missing a project it could have read would look whole.
    """
    snapshot = Snapshot(snapshot_at=now or dt.datetime.now(dt.UTC))
    projects: list[dict[str, Any]] = []
    if project_ids:
        for project_id in project_ids:
            try:
                projects.append(client.project(project_id))
            except ProjectForbiddenError as error:
                _skip(snapshot, project_id, error)
    else:
        projects = client.projects()
    for project in projects:
        project_id = as_id(project.get("id")) or ""
        try:
            experiments, metrics = _read_project(client, project, snapshot.snapshot_at)
        except ProjectForbiddenError as error:
            _skip(snapshot, project_id, error)
            continue
        snapshot.experiments += experiments
        snapshot.metrics += metrics
        snapshot.projects.append(
            {
                "id": project_id,
                "name": project.get("name"),
                "platform": _platform(project),
                "experiments": len({row["experiment_id"] for row in experiments}),
            }
        )
    return snapshot


def _skip(snapshot: Snapshot, project_id: str, error: ProjectForbiddenError) -> None:
    """Callers report the skipped projects (the asset logs a warning, the CLI prints them)."""
    snapshot.skipped_projects.append({"id": project_id, "reason": str(error)})


def _platform(project: Mapping[str, Any]) -> str:
    return "feature" if project.get("is_flags_enabled") else "web"


def _read_project(
    client: OptimizelyRestClient, project: Mapping[str, Any], snapshot_at: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    project_id = as_id(project.get("id")) or ""
    events = {as_id(event.get("id")): event for event in client.events(project_id)}
    context = {"snapshot_at": snapshot_at, "project_id": project_id}
    experiment_rows: list[dict[str, Any]] = []
    metric_rows: list[dict[str, Any]] = []
    if _platform(project) == "feature":
        records = [
            _rule_record(rule)
            for rule in client.rules(project_id)
            if rule.get("type") in EXPERIMENT_RULE_TYPES
        ]
    else:
        records = [_web_record(experiment) for experiment in client.experiments(project_id)]
    for record, variations, metrics in records:
        base = {**context, "project_name": project.get("name"), "platform": _platform(project), **record}
        experiment_rows += [{**base, **variation} for variation in variations] or [base]
        metric_rows += [
            {**context, "experiment_id": record["experiment_id"], **_metric_row(index, metric, events)}
            for index, metric in enumerate(metrics)
        ]
    return experiment_rows, metric_rows


Record = tuple[dict[str, Any], list[dict[str, Any]], list[Mapping[str, Any]]]
"""An experiment's own columns, its variations' columns, and its metrics as the API gave them."""


def _web_record(experiment: Mapping[str, Any]) -> Record:
    record = {
        "experiment_id": as_id(experiment.get("id")),
        "campaign_id": as_id(experiment.get("campaign_id")),
        "experiment_name": experiment.get("name"),
        "experiment_key": None,
        "flag_key": None,
        "environment_key": None,
        "description": experiment.get("description"),
        "status": experiment.get("status"),
        "experiment_type": experiment.get("type"),
        "traffic_allocation_bp": _int(experiment.get("traffic_allocation")),
        "created_at": _time(experiment.get("created")),
        "last_modified_at": _time(experiment.get("last_modified")),
        "started_at": _time(experiment.get("earliest")),
    }
    variations = [
        _variation(
            variation.get("variation_id"),
            variation.get("key"),
            variation.get("name"),
            variation.get("status"),
            variation.get("weight"),
            is_baseline=position == 0,
        )
        for position, variation in enumerate(experiment.get("variations") or [])
    ]
    return record, variations, list(experiment.get("metrics") or [])


def _rule_record(rule: Mapping[str, Any]) -> Record:
    baseline = as_id(rule.get("baseline_variation_id"))
    record = {
        "experiment_id": as_id(rule.get("layer_experiment_id")),
        "campaign_id": as_id(rule.get("layer_id")),
        "experiment_name": rule.get("name"),
        "experiment_key": rule.get("key"),
        "flag_key": rule.get("flag_key"),
        "environment_key": rule.get("environment_key"),
        "description": rule.get("description"),
        "status": rule.get("status"),
        "experiment_type": rule.get("type"),
        "traffic_allocation_bp": _int(rule.get("percentage_included")),
        "created_at": _time(rule.get("created_time")),
        "last_modified_at": _time(rule.get("updated_time")),
        "started_at": None,
    }
    variations = []
    for key, variation in (rule.get("variations") or {}).items():
        variation_id = as_id(variation.get("variation_id"))
        variations.append(
            _variation(
                variation_id,
                variation.get("key") or key,
                variation.get("name"),
                None,
                variation.get("percentage_included"),
                is_baseline=baseline is not None and variation_id == baseline,
            )
        )
    return record, variations, list(rule.get("metrics") or [])


def _variation(
    variation_id: object, key: object, name: object, status: object, weight_bp: object, *, is_baseline: bool
) -> dict[str, Any]:
    weight = _int(weight_bp)
    return {
        "variation_id": as_id(variation_id),
        "variation_key": key,
        "variation_name": name,
        "variation_status": status,
        "planned_weight_bp": weight,
        "planned_weight": weight / BASIS_POINTS if weight is not None else None,
        "is_baseline": is_baseline,
    }


def _metric_row(
    index: int, metric: Mapping[str, Any], events: Mapping[str | None, Mapping[str, Any]]
) -> dict[str, Any]:
    event_id = as_id(metric.get("event_id"))
    event = events.get(event_id) if event_id is not None else None
    row = {
        "metric_index": index,
        "role": metric_role(index),
        "aggregator": metric.get("aggregator"),
        "scope": metric.get("scope"),
        "field": metric.get("field"),
        "winning_direction": metric.get("winning_direction"),
        "event_id": event_id,
        "event_key": event.get("key") if event else None,
        "event_name": event.get("name") if event else None,
        "event_type": (event.get("event_type") if event else None) or metric.get("event_type"),
        "display_title": metric.get("display_title") or None,
    }
    row["metric_name"] = row["display_title"] or default_metric_name(row)
    return row


def default_metric_name(metric: Mapping[str, Any]) -> str:
    """A name like Optimizely's own: `purchase (unique per visitor)`, `overall revenue (sum per visitor)`."""
    if metric.get("event_id") is None:
        subject = "Overall " + (metric.get("field") or "revenue")
    else:
        subject = metric.get("event_name") or metric.get("event_key") or f"event {metric['event_id']}"
    aggregator = metric.get("aggregator") or "?"
    measured = (
        f"{aggregator} {metric['field']}" if metric.get("field") and metric.get("event_id") else aggregator
    )
    return f"{subject} ({measured} per {metric.get('scope') or 'visitor'})"


def _int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _time(value: object) -> dt.datetime | None:
    """ISO 8601 from the API (`2020-09-14T10:00:00.000Z`); unreadable values are left out, not guessed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def summary_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Per experiment: name, status, variations with weights, metrics with roles (the CLI's listing)."""
    by_experiment: dict[str, dict[str, Any]] = {}
    for row in snapshot.experiments:
        entry = by_experiment.setdefault(
            row["experiment_id"],
            {
                "project": row["project_name"] or row["project_id"],
                "experiment_id": row["experiment_id"],
                "name": row["experiment_name"],
                "status": row["status"],
                "variations": [],
                "metrics": [],
            },
        )
        if row.get("variation_id") is not None:
            entry["variations"].append(row)
    for metric in snapshot.metrics:
        if metric["experiment_id"] in by_experiment:
            by_experiment[metric["experiment_id"]]["metrics"].append(metric)
    return list(by_experiment.values())


def format_listing(snapshot: Snapshot) -> Iterable[str]:
    """The lines `event-platform optimizely experiments` prints."""
    for entry in summary_rows(snapshot):
        name = entry["name"] or "(no name)"
        yield f"{name}  [{entry['experiment_id']}]  {entry['status']}  ({entry['project']})"
        for variation in entry["variations"]:
            weight = variation["planned_weight"]
            share = f"{weight:.1%}" if weight is not None else "?"
            baseline = "  baseline" if variation["is_baseline"] else ""
            label = f"{variation['variation_name']} [{variation['variation_id']}]"
            yield f"    variation {label}  {share}{baseline}"
        for metric in entry["metrics"]:
            direction = metric["winning_direction"] or "increasing"
            yield f"    {metric['role']:<10} {metric['metric_name']}  ({direction})"
    for skipped in snapshot.skipped_projects:
        yield f"skipped project {skipped['id']}: {skipped['reason']}"
