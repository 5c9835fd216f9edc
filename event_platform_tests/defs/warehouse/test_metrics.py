"""The metrics file: every kind, experiments of both origins, and each problem reported by line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from event_platform.sandbox.runner import SANDBOX_METRICS_FILE
from event_platform.warehouse.commands import add_commands
from event_platform.warehouse.metrics import (
    EventMatch,
    MetricsConfig,
    MetricsFileError,
    assignments_table,
    from_optimizely,
    load_config,
    parse_config,
)

GOOD = """
metrics:
  revenue_per_order:
    kind: ratio
    numerator: {kind: sum, source: optimizely, events: [purchase], property: revenue}
    denominator: {kind: count, events: [{source: optimizely, event: purchase}]}
  score:
    kind: sum
    source: tracking
    events: [kinesinlms.course.assessment.submitted]
    property: score.raw
    window_days: 3
    winning_direction: decreasing
experiments:
  - id: 42
    metrics: [{metric: revenue_per_order, role: primary}, {metric: score}]
  - id: welcome_email
    name: Welcome email
    assignment: {source: tracking, event: kinesinlms.survey.completed, variation_property: arm}
    control: A
"""


TRACKED = ["kinesinlms.course.assessment.submitted", "kinesinlms.survey.completed"]


def parse(text: str, window_days: int = 7) -> MetricsConfig:
    return parse_config(
        text,
        "metrics.yaml",
        window_days=window_days,
        known_events=lambda source: TRACKED if source == "tracking" else None,
    )


def problems(text: str, window_days: int = 7) -> str:
    with pytest.raises(MetricsFileError) as raised:
        parse(text, window_days)
    return str(raised.value)


def test_a_good_file_defines_every_kind_and_both_kinds_of_experiment() -> None:
    config = parse(GOOD)
    ratio, score = config.metrics["revenue_per_order"], config.metrics["score"]
    assert ratio.denominator is not None and ratio.denominator.events == (
        EventMatch("optimizely", "purchase"),
    )
    assert ratio.definition() == (
        "(revenue of optimizely purchase) / (optimizely purchase events), within 7 days of the first exposure"
    )
    assert (score.window_days, score.winning_direction, score.numerator.json_path) == (
        3,
        "decreasing",
        '$."score"."raw"',
    )
    assert [(m.metric.name, m.role) for m in config.experiment_metrics("42")] == [
        ("revenue_per_order", "primary"),
        ("score", "secondary"),
    ]
    [assigned] = assignments_table(config).to_pylist()
    assert assigned == {
        "experiment_id": "welcome_email",
        "source": "tracking",
        "event": "kinesinlms.survey.completed",
        "variation_path": '$."arm"',
        "experiment_path": None,
    }


M = "metrics:\n  m:\n"
COUNT_OF_A = M + "    kind: count\n    source: optimizely\n    events: [a]\n"
CASES = [
    (
        M + "    kind: count\n    source: segment\n    events: [x]\n",
        "line 5 (metrics.m.events[0]): unknown source",
    ),
    (M + "    kind: count\n    source: tracking\n    events: [nope]\n", "tracking has no event 'nope'"),
    (
        M + "    kind: ratio\n    numerator: {kind: count, source: optimizely, events: [a]}\n",
        "line 2 (metrics.m): a ratio needs a denominator",
    ),
    (
        M + "    kind: sum\n    source: optimizely\n    events: [a]\n",
        "line 2 (metrics.m): a sum needs `property`",
    ),
    (COUNT_OF_A + "    property: revenue\n", "line 6 (metrics.m.property): a count counts events"),
    (COUNT_OF_A + "    window_days: 30\n", "raise EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS to 30"),
    (
        M + "    kind: mean\n",
        "line 3 (metrics.m.kind): Input should be 'conversion', 'count', 'sum' or 'ratio'",
    ),
    (
        COUNT_OF_A + "experiments:\n  - id: 1\n    metrics:\n      - {metric: m, role: primary}\n"
        "      - {metric: m, role: primary}\n",
        "line 8 (experiments[0].metrics): 2 primary metrics (m, m)",
    ),
    (
        "experiments:\n  - id: 1\n    metrics:\n      - {metric: gone}\n",
        "(experiments[0].metrics[0].metric): no metric",
    ),
    ("experiments:\n  - id: 1\n  - id: 1\n", "line 3 (experiments[1].id): experiment 1 is defined twice"),
    ("metrics: [oops\n", "line 2: not valid YAML"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_problem_is_named_with_its_line(text: str, expected: str) -> None:
    message = problems(text)
    assert message.startswith("EVENT_PLATFORM_METRICS_FILE metrics.yaml")
    assert expected in message


def test_every_problem_of_a_file_is_listed_at_once() -> None:
    message = problems(
        "metrics:\n  a: {kind: count, events: [x]}\n  b: {kind: sum, source: optimizely, events: [y]}\n"
    )
    assert "has 2 problems" in message and "line 2" in message and "line 3" in message


def test_optimizely_metrics_map_onto_the_same_kinds() -> None:
    base = {"metric_name": "m", "role": "primary", "scope": "visitor", "event_id": "1", "event_key": "buy"}
    assert from_optimizely({**base, "aggregator": "unique"}, 7).kind == "conversion"
    revenue = from_optimizely({**base, "aggregator": "sum", "field": "revenue"}, 7)
    assert (revenue.kind, revenue.numerator.value_property) == ("sum", "revenue")
    assert "per session" in from_optimizely({**base, "aggregator": "count", "scope": "session"}, 7).reason
    assert "exit" in from_optimizely({**base, "aggregator": "exit"}, 7).reason
    assert (
        "not among the project's events"
        in from_optimizely({**base, "aggregator": "unique", "event_key": None}, 7).reason
    )


def test_the_sandbox_ships_a_valid_file_and_the_cli_checks_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert set(load_config(str(SANDBOX_METRICS_FILE), window_days=7).metrics) >= {
        "course_views",
        "quiz_attempts",
    }

    def run(*argv: str) -> int:
        root = argparse.ArgumentParser(prog="event-platform")
        add_commands(root.add_subparsers(dest="command", required=True))
        arguments = root.parse_args(["experiments", *argv])
        return int(arguments.run(arguments))

    assert run("check-metrics", str(SANDBOX_METRICS_FILE)) == 0
    assert "metric cart_adds_per_product_view (ratio, increasing)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics:\n  m: {kind: count}\n")
    assert run("check-metrics", str(bad)) == 2
    assert "line 2 (metrics.m): a count metric needs `events`" in capsys.readouterr().err
    with pytest.raises(MetricsFileError, match="cannot read it"):
        load_config(str(tmp_path / "absent.yaml"), window_days=7)
