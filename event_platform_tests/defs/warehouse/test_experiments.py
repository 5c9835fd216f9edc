"""Experiments as defined, through Dagster on hand-made source partitions: an Optimizely experiment with
metadata, one without (ids kept, a WARN check), one assigned by Amplitude `$exposure` events from the
metrics file, a metric over an event nobody has, the exploration kept apart, and a bad metrics file
failing the run with its line numbers."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.sources.amplitude.schema import EVENT_SCHEMA as AMPLITUDE_EVENTS
from event_platform.sources.optimizely.experiments import EXPERIMENT_METRICS, EXPERIMENTS
from event_platform.sources.optimizely.schema import CONVERSIONS, DECISIONS
from event_platform_tests.defs.warehouse.conftest import (
    check_results,
    materialized_metadata,
    platform_assets,
    resources_at,
    run_platform,
)

DAY_1, DAY_2 = "2025-04-01", "2025-04-02"
WITH_METADATA, WITHOUT_METADATA = "7100000001", "7100000002"
SNAPSHOT_AT = dt.datetime(2025, 4, 1, 6, tzinfo=dt.UTC)
METRICS_FILE = """
metrics:
  viewed_course:
    kind: conversion
    source: amplitude
    events: [course_view]
  course_views:
    kind: count
    source: amplitude
    events: [course_view]
    winning_direction: increasing
  minutes:
    kind: sum
    source: amplitude
    events: [course_view]
    property: watch.minutes
  mistyped:
    kind: conversion
    source: amplitude
    events: [course_veiw]

experiments:
  - id: onboarding_tour
    name: Onboarding tour
    description: Does a guided tour get learners into a course?
    assignment:
      source: amplitude
      event: $exposure
      experiment_property: flag_key
      variation_property: variant
    control: "off"
    variations: {"off": {name: Tour off, weight: 0.5}, "on": {name: Tour on, weight: 0.5}}
    metrics:
      - {metric: viewed_course, role: primary}
      - {metric: course_views, role: guardrail}
      - {metric: minutes}
      - {metric: mistyped, role: monitoring}
  - id: "7100000002"
    metrics:
      - {metric: viewed_course, role: primary}
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def decision(visitor: str, when: str, experiment: str, variation: str) -> dict[str, Any]:
    return {
        "uuid": f"D-{visitor}-{experiment}-{when}",
        "timestamp": at(when),
        "process_timestamp": at(when),
        "visitor_id": visitor,
        "experiment_id": experiment,
        "campaign_id": "7100000101",
        "variation_id": variation,
        "is_holdback": False,
    }


def conversion(visitor: str, when: str, name: str) -> dict[str, Any]:
    return {
        "uuid": f"C-{visitor}-{when}-{name}",
        "timestamp": at(when),
        "process_timestamp": at(when),
        "visitor_id": visitor,
        "entity_id": "9100649732601954",
        "event_name": name,
        "revenue": 4900,
    }


def amplitude(
    user: str, when: str, event_type: str, properties: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "uuid": f"A-{user}-{when}-{event_type}",
        "event_type": event_type,
        "event_time": at(when),
        "server_received_time": at(when),
        "user_id": user,
        "device_id": f"device-{user}",
        "session_id": 1,
        "event_properties": json.dumps(properties or {}),
    }


def exposure(user: str, when: str, variant: str) -> dict[str, Any]:
    return amplitude(user, when, "$exposure", {"flag_key": "onboarding_tour", "variant": variant})


EXPERIMENTS_SNAPSHOT = [
    {
        "snapshot_at": SNAPSHOT_AT,
        "project_id": "21",
        "project_name": "Web",
        "platform": "web",
        "experiment_id": WITH_METADATA,
        "campaign_id": "7100000101",
        "experiment_name": "hero_image",
        "description": "A photo or an illustration?",
        "status": "running",
        "experiment_type": "a/b",
        "variation_id": variation,
        "variation_key": name,
        "variation_name": name,
        "planned_weight_bp": 5000,
        "planned_weight": 0.5,
        "is_baseline": name == "photo",
    }
    for variation, name in (("7100001001", "photo"), ("7100001002", "illustration"))
]
METRICS_SNAPSHOT = [
    {
        "snapshot_at": SNAPSHOT_AT,
        "project_id": "21",
        "experiment_id": WITH_METADATA,
        "metric_index": 0,
        "role": "primary",
        "metric_name": "purchase (unique per visitor)",
        "aggregator": "unique",
        "scope": "visitor",
        "winning_direction": "increasing",
        "event_id": "9100649732601954",
        "event_key": "purchase",
        "event_name": "purchase",
    }
]

SOURCES = {
    ("optimizely", "decisions"): {
        DAY_1: pa.Table.from_pylist(
            [
                decision("alice", "2025-04-01T10:00:00", WITH_METADATA, "7100001001"),
                decision("bob", "2025-04-01T10:00:00", WITH_METADATA, "7100001002"),
                decision("carol", "2025-04-01T10:00:00", WITH_METADATA, "7100001002"),
                decision("alice", "2025-04-01T10:00:00", WITHOUT_METADATA, "7100002001"),
                decision("bob", "2025-04-01T10:00:00", WITHOUT_METADATA, "7100002002"),
            ],
            schema=DECISIONS,
        ),
        DAY_2: pa.Table.from_pylist([], schema=DECISIONS),
    },
    ("optimizely", "conversions"): {
        DAY_1: pa.Table.from_pylist(
            [conversion("bob", "2025-04-01T12:00:00", "purchase")], schema=CONVERSIONS
        ),
        DAY_2: pa.Table.from_pylist(
            [conversion("carol", "2025-04-02T12:00:00", "purchase")], schema=CONVERSIONS
        ),
    },
    ("amplitude", "events"): {
        DAY_1: pa.Table.from_pylist(
            [
                exposure("alice", "2025-04-01T09:00:00", "off"),
                exposure("bob", "2025-04-01T09:00:00", "on"),
                exposure("dave", "2025-04-01T09:00:00", "on"),
                exposure("erin", "2025-04-01T09:00:00", "off"),
                amplitude("bob", "2025-04-01T09:30:00", "course_view", {"watch": {"minutes": 3}}),
                amplitude("bob", "2025-04-01T09:40:00", "course_view", {"watch": {"minutes": 4.5}}),
                amplitude("erin", "2025-04-01T08:00:00", "course_view"),  # before erin's exposure
                # Another experiment's exposure on the same event type is not this one's.
                amplitude(
                    "frank", "2025-04-01T09:00:00", "$exposure", {"flag_key": "other", "variant": "on"}
                ),
            ],
            schema=AMPLITUDE_EVENTS,
        ),
        DAY_2: pa.Table.from_pylist(
            [
                exposure("alice", "2025-04-02T09:00:00", "off"),  # seen again: still one unit
                amplitude("dave", "2025-04-02T10:00:00", "course_view", {"watch": {"minutes": "2"}}),
            ],
            schema=AMPLITUDE_EVENTS,
        ),
    },
    ("optimizely", "experiments"): {DAY_1: pa.Table.from_pylist(EXPERIMENTS_SNAPSHOT, schema=EXPERIMENTS)},
    ("optimizely", "experiment_metrics"): {
        DAY_1: pa.Table.from_pylist(METRICS_SNAPSHOT, schema=EXPERIMENT_METRICS)
    },
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("experiments")
    metrics_file = directory / "metrics.yaml"
    metrics_file.write_text(METRICS_FILE)
    resources = resources_at(directory, metrics_file)
    runs = []
    for day in (DAY_1, DAY_2):
        present = {key: {day: days[day]} for key, days in SOURCES.items() if day in days}
        runs += run_platform(resources, present, [day], marts=False)
    runs += run_platform(resources, {}, [])
    lake: Lake = resources["lake"].lake()
    tables = {
        name: delta.read(lake, f"warehouse/{name}").to_table().to_pylist()
        for name in ("experiment_results", "experiment_exploration")
    }
    return {"resources": resources, "runs": runs, **tables}


def find(rows: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [row for row in rows if all(row[key] == value for key, value in where.items())]


def test_an_experiment_assigned_by_amplitude_events(platform: dict[str, Any]) -> None:
    rows = find(platform["experiment_results"], experiment_id="onboarding_tour")
    [off, on] = find(rows, metric_name="viewed_course")
    assert (off["variation_name"], off["is_control"], off["assignment"], off["metadata"]) == (
        "Tour off",
        True,
        "amplitude",
        "ok",
    )
    # alice (twice) and erin saw the tour off; bob and dave on. bob and dave viewed a course after;
    # erin only before hers.
    assert (off["units"], off["units_with_event"], on["units"], on["units_with_event"]) == (2, 0, 2, 2)
    [views] = find(rows, metric_name="course_views", variation_id="on")
    assert (views["total"], views["value"], views["metric_role"]) == (3.0, 1.5, "guardrail")
    [minutes] = find(rows, metric_name="minutes", variation_id="on")
    assert (minutes["total"], minutes["value"], minutes["metric_kind"]) == (9.5, 4.75, "sum")
    assert off["experiment_description"] == "Does a guided tour get learners into a course?"


def test_optimizely_metadata_names_the_experiment_and_its_primary_metric(platform: dict[str, Any]) -> None:
    rows = find(platform["experiment_results"], experiment_id=WITH_METADATA)
    assert {(r["variation_name"], r["is_control"], r["planned_weight"]) for r in rows} == {
        ("photo", True, 0.5),
        ("illustration", False, 0.5),
    }
    [treatment] = find(rows, is_control=False)
    assert (treatment["experiment_name"], treatment["metric_name"], treatment["metric_role"]) == (
        "hero_image",
        "purchase (unique per visitor)",
        "primary",
    )
    # bob and carol (a day later) bought: both in the illustration variation.
    assert (treatment["units"], treatment["units_with_event"], treatment["value"]) == (2, 2, 1.0)


def test_missing_metadata_keeps_ids_and_warns(platform: dict[str, Any]) -> None:
    rows = find(platform["experiment_results"], experiment_id=WITHOUT_METADATA)
    assert {(r["variation_id"], r["experiment_name"], r["metadata"]) for r in rows} == {
        ("7100002001", None, "missing"),
        ("7100002002", None, "missing"),
    }
    assert {r["metric_name"] for r in rows} == {"viewed_course"}  # the metrics file's metric, analysed
    check = check_results(platform["runs"][-1])["experiment_metadata_present"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert WITHOUT_METADATA in (check.description or "")


def test_a_metric_over_an_event_nobody_has_is_named(platform: dict[str, Any]) -> None:
    check = check_results(platform["runs"][-1])["metric_events_seen"]
    assert not check.passed
    assert "mistyped (Onboarding tour): amplitude course_veiw" in (check.description or "")


def test_only_defined_metrics_decide_and_every_event_is_in_the_exploration(platform: dict[str, Any]) -> None:
    defined = {row["metric_name"] for row in platform["experiment_results"]}
    assert defined == {
        "viewed_course",
        "course_views",
        "minutes",
        "mistyped",
        "purchase (unique per visitor)",
    }
    explored = {(row["metric_source"], row["metric_event"]) for row in platform["experiment_exploration"]}
    assert {("amplitude", "course_view"), ("amplitude", "$exposure"), ("optimizely", "purchase")} <= explored
    names = {row["experiment_name"] for row in platform["experiment_exploration"]}
    assert {"hero_image", "Onboarding tour", None} == names
    results = materialized_metadata(platform["runs"][-1], dg.AssetKey(["warehouse", "experiment_results"]))
    first_exposure = dt.datetime.fromtimestamp(results["first_exposure"], dt.UTC)
    assert (first_exposure.date().isoformat(), results["as_of"]) == ("2025-04-01", DAY_2)
    assert "### Onboarding tour (onboarding_tour)" in results["experiment: Onboarding tour"]


def test_a_bad_metrics_file_fails_the_run_with_its_lines(tmp_path: Path) -> None:
    metrics_file = tmp_path / "metrics.yaml"
    metrics_file.write_text(
        "metrics:\n  broken:\n    kind: ratio\n    numerator: {kind: count, events: [x]}\n"
    )
    resources = resources_at(tmp_path, metrics_file)
    result = dg.materialize(
        platform_assets({}),
        resources=resources,
        selection=[dg.AssetKey(["warehouse", "experiment_results"])],
        raise_on_error=False,
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert f"EVENT_PLATFORM_METRICS_FILE {metrics_file} has 2 problems" in message
    assert "line 2 (metrics.broken): a ratio needs a denominator" in message
    assert "line 4 (metrics.broken.numerator.events[0]): event 'x' has no source" in message
