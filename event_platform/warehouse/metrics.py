"""Metric and experiment definitions: the YAML file `EVENT_PLATFORM_METRICS_FILE` names, loaded and checked.

Plain Python (pydantic and PyYAML, no Dagster). The file defines:
- `metrics`: named metrics over the unified events (`warehouse/events`: a `source` and an `event_type`),
  each of a kind:
  - `conversion`: the share of units with at least one of the events (two-proportion test);
  - `count`: events per unit; `sum`: a property's total per unit (`property: revenue` is the unified
    revenue column, any other name a path into the event's properties, e.g. `value` or `score.raw`);
  - `ratio`: the sum of a numerator over the sum of a denominator, each a conversion, count or sum over
    events (e.g. revenue per order), analysed with the delta method;
  with an attribution window (days after a unit's first exposure, at most
  `EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS`) and a winning direction (increasing or decreasing);
- `experiments`: extra metrics with roles (primary, secondary, guardrail, monitoring) for Optimizely
  experiments, matched by id, and experiments not run in Optimizely, whose assignment comes from any
  source's events (an event, the property that holds the variation, optionally the property that holds
  the experiment's id), with their control variation named.

A file that cannot be used fails with every problem listed by file, line and reason (`MetricsFileError`);
the assets turn it into a `dagster.Failure` at the start of the run, so Dagster shows the message, not a
stack trace. Event names are checked where a source has a closed list of them (the tracker's registered
types); for other sources an event no unit has is reported by the results' checks.

Optimizely's own configured metrics become the same `Metric`s (`from_optimizely`): aggregator unique is
a conversion, count a count, sum with field revenue or value a sum; index 0 is primary, 1-4 secondary,
5 and on monitoring. Metrics per session or per event, and bounce, exit and ratio aggregators, are listed
by name as not analysed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from event_platform.sources.tracking.events import load_registry
from event_platform.sources.tracking.settings import TrackingSettings
from event_platform.warehouse.models import event_sources

SETTING = "EVENT_PLATFORM_METRICS_FILE"
WINDOW_SETTING = "EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS"


def source_names() -> tuple[str, ...]:
    """The unified events' sources (`warehouse/events.source`)."""
    return tuple(source.name for source in event_sources())


REVENUE = "revenue"
"""`property: revenue` is the unified events' revenue column (currency units), not a property."""
ROLES = ("primary", "secondary", "guardrail", "monitoring")
_PROPERTY_PATH = re.compile(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*")

Kind = Literal["conversion", "count", "sum", "ratio"]
PartKind = Literal["conversion", "count", "sum"]
Direction = Literal["increasing", "decreasing"]
Role = Literal["primary", "secondary", "guardrail", "monitoring"]


# ---- what the analysis uses ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventMatch:
    source: str
    event: str | None
    """The unified `event_type`; None matches every event of the source (Optimizely's global metrics)."""

    def label(self) -> str:
        return f"{self.source} {self.event}" if self.event else f"any {self.source} event"


@dataclass(frozen=True)
class Part:
    """What one unit contributes: 1 if it has any of the events, their count, or a property's total."""

    aggregation: Literal["unique", "count", "sum"]
    events: tuple[EventMatch, ...]
    value_property: str | None = None
    """For a sum: `revenue`, or a path into the event's properties."""

    @property
    def json_path(self) -> str | None:
        """The property as a JSON path into the unified `properties`; None for revenue or no property."""
        if self.value_property is None or self.value_property == REVENUE:
            return None
        return _json_path(self.value_property)

    def describe(self) -> str:
        events = " or ".join(match.label() for match in self.events)
        if self.aggregation == "unique":
            return f"units with {events}"
        if self.aggregation == "count":
            return f"{events} events"
        return f"{self.value_property} of {events}"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    numerator: Part
    denominator: Part | None
    """Only for ratios; the other kinds are per unit."""
    window_days: int
    winning_direction: Direction = "increasing"
    description: str | None = None

    def definition(self) -> str:
        """How the metric is computed, in words (the results' `metric_definition`)."""
        within = f"within {self.window_days} days of the first exposure"
        if self.kind == "conversion":
            return f"share of units with {' or '.join(m.label() for m in self.numerator.events)} {within}"
        if self.kind == "ratio" and self.denominator is not None:
            return f"({self.numerator.describe()}) / ({self.denominator.describe()}), {within}"
        return f"{self.numerator.describe()} per unit, {within}"


@dataclass(frozen=True)
class ExperimentMetric:
    metric: Metric
    role: Role
    origin: str
    """Where it was defined: `optimizely` (the experiment's configuration) or the metrics file."""


@dataclass(frozen=True)
class NotAnalysed:
    name: str
    role: str
    reason: str


@dataclass(frozen=True)
class Assignment:
    """How an experiment not run in Optimizely assigns units: events of one type carry the variation."""

    source: str
    event: str
    variation_property: str
    experiment_property: str | None = None

    @property
    def variation_path(self) -> str:
        return _json_path(self.variation_property)

    @property
    def experiment_path(self) -> str | None:
        return _json_path(self.experiment_property) if self.experiment_property else None


@dataclass(frozen=True)
class ConfiguredExperiment:
    id: str
    name: str | None
    description: str | None
    assignment: Assignment | None
    """None: an Optimizely experiment, matched by id, gaining the file's metrics."""
    control: str | None
    variation_names: Mapping[str, str]
    planned_weights: Mapping[str, float]
    metrics: tuple[tuple[str, Role], ...]
    """(metric name, role) in the file's order."""


@dataclass(frozen=True)
class MetricsConfig:
    path: str | None
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    experiments: Mapping[str, ConfiguredExperiment] = field(default_factory=dict)

    @property
    def assigned_by_events(self) -> list[ConfiguredExperiment]:
        return [experiment for experiment in self.experiments.values() if experiment.assignment]

    def experiment_metrics(self, experiment_id: str) -> list[ExperimentMetric]:
        configured = self.experiments.get(experiment_id)
        if configured is None:
            return []
        return [
            ExperimentMetric(self.metrics[name], role, "metrics file") for name, role in configured.metrics
        ]


EMPTY = MetricsConfig(path=None)

ASSIGNMENTS = pa.schema(
    [
        ("experiment_id", pa.string()),
        ("source", pa.string()),
        ("event", pa.string()),
        ("variation_path", pa.string()),
        ("experiment_path", pa.string()),
    ]
)
"""The relation exposures_assigned.sql joins the day's events with."""


def assignments_table(config: MetricsConfig) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "experiment_id": experiment.id,
                "source": experiment.assignment.source,
                "event": experiment.assignment.event,
                "variation_path": experiment.assignment.variation_path,
                "experiment_path": experiment.assignment.experiment_path,
            }
            for experiment in config.assigned_by_events
            if experiment.assignment is not None
        ],
        schema=ASSIGNMENTS,
    )


def _json_path(path: str) -> str:
    return "$." + ".".join(f'"{segment}"' for segment in path.split("."))


# ---- the file's shape (pydantic) -------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _EventRef(_Strict):
    source: str
    event: str


EventEntry = str | _EventRef


class _Part(_Strict):
    kind: PartKind
    source: str | None = None
    events: list[EventEntry] = Field(min_length=1)
    property: str | None = None


class _Metric(_Strict):
    kind: Kind
    description: str | None = None
    source: str | None = None
    events: list[EventEntry] | None = None
    property: str | None = None
    numerator: _Part | None = None
    denominator: _Part | None = None
    window_days: int | None = Field(default=None, ge=1)
    winning_direction: Direction = "increasing"


class _Assignment(_Strict):
    source: str
    event: str
    variation_property: str
    experiment_property: str | None = None


class _Variation(_Strict):
    name: str | None = None
    weight: float | None = Field(default=None, gt=0)


class _ExperimentMetric(_Strict):
    metric: str
    role: Role = "secondary"


class _Experiment(_Strict):
    id: str | int
    name: str | None = None
    description: str | None = None
    assignment: _Assignment | None = None
    control: str | None = None
    variations: dict[str, _Variation] = Field(default_factory=dict)
    metrics: list[_ExperimentMetric] = Field(default_factory=list)


class _File(_Strict):
    metrics: dict[str, _Metric] = Field(default_factory=dict)
    experiments: list[_Experiment] = Field(default_factory=list)


# ---- loading -----------------------------------------------------------------------------------------


class MetricsFileError(ValueError):
    """The metrics file cannot be used; the message lists every problem by line."""


Location = tuple[str | int, ...]


@dataclass
class _Problems:
    path: str
    root: yaml.Node | None
    found: list[tuple[Location, str]] = field(default_factory=list)

    def add(self, location: Location, reason: str) -> None:
        self.found.append((location, reason))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        lines = [
            f"  line {_line(self.root, location)} ({_dotted(location)}): {reason}"
            for location, reason in self.found
        ]
        count = f"{len(self.found)} problem{'s' if len(self.found) > 1 else ''}"
        raise MetricsFileError(f"{SETTING} {self.path} has {count}:\n" + "\n".join(lines))


def load_config(
    path: str | None,
    *,
    window_days: int,
    known_events: Callable[[str], Collection[str] | None] | None = None,
) -> MetricsConfig:
    """The definitions in the YAML file at `path` (none when `path` is empty), checked in full."""
    if not path:
        return EMPTY
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise MetricsFileError(f"{SETTING} {path}: cannot read it ({error.strerror or error}).") from None
    return parse_config(text, path, window_days=window_days, known_events=known_events or known_event_types)


def parse_config(
    text: str,
    path: str,
    *,
    window_days: int,
    known_events: Callable[[str], Collection[str] | None] = lambda source: None,
) -> MetricsConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        reason = getattr(error, "problem", None) or str(error)
        raise MetricsFileError(f"{SETTING} {path}: {where}: not valid YAML ({reason}).") from None
    problems = _Problems(path, root)
    try:
        parsed = _File.model_validate(raw or {})
    except ValidationError as error:
        for detail in error.errors():
            location = tuple(part for part in detail["loc"] if part not in ("str", "_EventRef"))
            problems.add(location, detail["msg"])
        problems.raise_if_any()
        raise AssertionError("unreachable") from None
    metrics = {
        name: metric
        for name, definition in parsed.metrics.items()
        if (metric := _metric(name, definition, window_days, known_events, problems)) is not None
    }
    experiments = _experiments(parsed.experiments, parsed.metrics, known_events, problems)
    problems.raise_if_any()
    return MetricsConfig(path=path, metrics=metrics, experiments=experiments)


def known_event_types(source: str) -> Collection[str] | None:
    """The event types a source can have, where it has a closed list (the tracker's registry)."""
    if source != "tracking":
        return None
    # The tracker validates every event against its registry, so nothing else can be in the lake.
    return load_registry(TrackingSettings.read().event_types_file).names


def _metric(
    name: str,
    definition: _Metric,
    window_days: int,
    known_events: Callable[[str], Collection[str] | None],
    problems: _Problems,
) -> Metric | None:
    here: Location = ("metrics", name)
    before = len(problems.found)
    window = definition.window_days or window_days
    if window > window_days:
        problems.add(
            (*here, "window_days"),
            f"{window} days is longer than the {window_days} days the warehouse keeps conversions for; "
            f"raise {WINDOW_SETTING} to {window} or shorten the window",
        )
    numerator: Part | None
    denominator: Part | None = None
    if definition.kind == "ratio":
        for unused in ("events", "property", "source"):
            if getattr(definition, unused) is not None:
                problems.add(
                    (*here, unused), f"a ratio takes `{unused}` inside its numerator and denominator"
                )
        if definition.numerator is None:
            problems.add(here, "a ratio needs a numerator (a conversion, count or sum over events)")
        if definition.denominator is None:
            problems.add(here, "a ratio needs a denominator (a conversion, count or sum over events)")
        numerator = _part(definition.numerator, (*here, "numerator"), known_events, problems)
        denominator = _part(definition.denominator, (*here, "denominator"), known_events, problems)
    else:
        for unused in ("numerator", "denominator"):
            if getattr(definition, unused) is not None:
                problems.add(
                    (*here, unused), f"only a ratio has a {unused}; this metric is a {definition.kind}"
                )
        numerator = _part(
            _Part(
                kind=definition.kind,
                source=definition.source,
                events=definition.events,
                property=definition.property,
            )
            if definition.events
            else None,
            here,
            known_events,
            problems,
        )
        if not definition.events:
            problems.add(here, f"a {definition.kind} metric needs `events` (the event types it counts)")
    if len(problems.found) > before or numerator is None:
        return None
    return Metric(
        name=name,
        kind=definition.kind,
        numerator=numerator,
        denominator=denominator,
        window_days=window,
        winning_direction=definition.winning_direction,
        description=definition.description,
    )


def _part(
    part: _Part | None,
    here: Location,
    known_events: Callable[[str], Collection[str] | None],
    problems: _Problems,
) -> Part | None:
    if part is None:
        return None
    matches = []
    for index, entry in enumerate(part.events):
        location = (*here, "events", index)
        source = entry.source if isinstance(entry, _EventRef) else part.source
        event = entry.event if isinstance(entry, _EventRef) else entry
        if source is None:
            problems.add(
                location, f"event {event!r} has no source: give `source:` ({', '.join(source_names())})"
            )
            continue
        if source not in source_names():
            problems.add(location, f"unknown source {source!r}; the sources are {', '.join(source_names())}")
            continue
        known = known_events(source)
        if known is not None and event not in known:
            problems.add(location, f"{source} has no event {event!r} (its event types are registered ones)")
            continue
        matches.append(EventMatch(source, event))
    if part.kind == "sum" and not part.property:
        problems.add(here, "a sum needs `property`: `revenue`, or the path of a numeric property")
    if part.kind != "sum" and part.property:
        problems.add((*here, "property"), f"a {part.kind} counts events; only a sum takes a property")
    if part.property and not _PROPERTY_PATH.fullmatch(part.property):
        problems.add(
            (*here, "property"), f"{part.property!r} is not a property path like `value` or `score.raw`"
        )
    aggregation = {"conversion": "unique", "count": "count", "sum": "sum"}[part.kind]
    return Part(aggregation, tuple(matches), part.property)  # type: ignore[arg-type]


def _experiments(
    experiments: Sequence[_Experiment],
    metrics: Mapping[str, _Metric],
    known_events: Callable[[str], Collection[str] | None],
    problems: _Problems,
) -> dict[str, ConfiguredExperiment]:
    found: dict[str, ConfiguredExperiment] = {}
    for index, experiment in enumerate(experiments):
        here: Location = ("experiments", index)
        experiment_id = str(experiment.id).strip()
        if experiment_id in found:
            problems.add((*here, "id"), f"experiment {experiment_id} is defined twice")
        primaries = [entry.metric for entry in experiment.metrics if entry.role == "primary"]
        if len(primaries) > 1:
            problems.add(
                (*here, "metrics"),
                f"{len(primaries)} primary metrics ({', '.join(primaries)}); an experiment has one",
            )
        for position, entry in enumerate(experiment.metrics):
            if entry.metric not in metrics:
                known = ", ".join(sorted(metrics)) or "none"
                problems.add(
                    (*here, "metrics", position, "metric"),
                    f"no metric {entry.metric!r} is defined under `metrics` (defined: {known})",
                )
        assignment = None
        if experiment.assignment is not None:
            raw = experiment.assignment
            location = (*here, "assignment")
            if raw.source not in source_names():
                problems.add(
                    (*location, "source"),
                    f"unknown source {raw.source!r}; the sources are {', '.join(source_names())}",
                )
            elif (known := known_events(raw.source)) is not None and raw.event not in known:
                problems.add((*location, "event"), f"{raw.source} has no event {raw.event!r}")
            for name in ("variation_property", "experiment_property"):
                value = getattr(raw, name)
                if value is not None and not _PROPERTY_PATH.fullmatch(value):
                    problems.add((*location, name), f"{value!r} is not a property path like `variant`")
            assignment = Assignment(raw.source, raw.event, raw.variation_property, raw.experiment_property)
        found[experiment_id] = ConfiguredExperiment(
            id=experiment_id,
            name=experiment.name,
            description=experiment.description,
            assignment=assignment,
            control=experiment.control,
            variation_names={key: v.name for key, v in experiment.variations.items() if v.name},
            planned_weights={key: v.weight for key, v in experiment.variations.items() if v.weight},
            metrics=tuple((entry.metric, entry.role) for entry in experiment.metrics),
        )
    return found


def _dotted(location: Location) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the file"


def _line(root: yaml.Node | None, location: Location) -> int:
    """The 1-based line of the deepest node of `location` the file has."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


# ---- Optimizely's configured metrics ---------------------------------------------------------------

_AGGREGATION_KINDS: dict[str, Kind] = {"unique": "conversion", "count": "count", "sum": "sum"}


def from_optimizely(row: Mapping[str, Any], window_days: int) -> Metric | NotAnalysed:
    """An `optimizely/experiment_metrics` row as a Metric, or the reason the warehouse cannot analyse it."""
    name = row["metric_name"]
    role = row["role"]
    aggregator, scope, metric_field = row.get("aggregator"), row.get("scope") or "visitor", row.get("field")
    if aggregator not in _AGGREGATION_KINDS:
        return NotAnalysed(
            name, role, f"Optimizely's {aggregator} aggregator has no counterpart per visitor here"
        )
    if scope != "visitor":
        return NotAnalysed(name, role, f"counted per {scope} in Optimizely; the warehouse analyses visitors")
    if aggregator == "sum" and metric_field not in ("revenue", "value"):
        return NotAnalysed(name, role, f"a sum of {metric_field!r}: only revenue and value can be summed")
    if row.get("event_id") is not None and not row.get("event_key"):
        return NotAnalysed(name, role, f"its event {row['event_id']} is not among the project's events")
    event = EventMatch("optimizely", row.get("event_key"))
    kind = _AGGREGATION_KINDS[aggregator]
    aggregation = {"conversion": "unique", "count": "count", "sum": "sum"}[kind]
    return Metric(
        name=name,
        kind=kind,
        numerator=Part(aggregation, (event,), metric_field if kind == "sum" else None),  # type: ignore[arg-type]
        denominator=None,
        window_days=window_days,
        winning_direction=row.get("winning_direction") or "increasing",
    )
