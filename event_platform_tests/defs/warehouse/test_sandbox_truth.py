"""On the sandbox world's Optimizely export, the checks find what the world planted: per-visit rates
inside their 99.9% intervals, and the sample-ratio mismatch on `pricing_banner` flagged."""

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from scipy import stats as scipy_stats

from event_platform.sandbox import planted
from event_platform.sandbox.optimizely import generate_day
from event_platform.sandbox.world import World
from event_platform.sources.optimizely.schema import CONVERSIONS, DECISIONS
from event_platform_tests.defs.warehouse.conftest import check_results, resources_at, run_platform

DAYS = [dt.date(2025, 3, 1), dt.date(2025, 3, 2), dt.date(2025, 3, 3)]


def day_tables(world: World, day: dt.date) -> tuple[pa.Table, pa.Table]:
    decisions, conversions = generate_day(world, day)
    decision_rows = [row for rows in decisions.values() for row in rows]
    conversion_rows = [
        {**row, "event_name": folder.removeprefix("event=")}
        for folder, rows in conversions.items()
        for row in rows
    ]
    return pa.Table.from_pylist(decision_rows, schema=DECISIONS), pa.Table.from_pylist(
        conversion_rows, schema=CONVERSIONS
    )


@pytest.fixture(scope="module")
def sandbox_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    world = World()
    tables = {day.isoformat(): day_tables(world, day) for day in DAYS}
    sources = {
        ("optimizely", "decisions"): {day: pair[0] for day, pair in tables.items()},
        ("optimizely", "conversions"): {day: pair[1] for day, pair in tables.items()},
    }
    runs = run_platform(resources_at(tmp_path_factory.mktemp("sandbox")), sources, list(tables))
    return check_results(runs[-1])


def test_planted_rates_and_mismatch_are_found(sandbox_run: dict[str, Any]) -> None:
    truth = sandbox_run["sandbox_planted_truth"]
    assert truth.passed, truth.metadata["problems"].value
    comparisons = truth.metadata["comparisons"].value
    assert len(comparisons) == 7  # every variation of the three experiments
    assert all(c["interval"][0] <= c["expected"] <= c["interval"][1] for c in comparisons)


def test_the_planted_sample_ratio_mismatch_is_flagged_and_only_it(sandbox_run: dict[str, Any]) -> None:
    mismatch = sandbox_run["no_sample_ratio_mismatch"]
    assert not mismatch.passed
    assert mismatch.severity.value == "WARN"
    assert set(mismatch.metadata["flagged_experiments"].value) == {"9300000003"}
    assert sandbox_run["units_in_every_variation"].passed


def test_the_truth_check_notices_a_wrong_rate() -> None:
    world = World()
    checkout = world.experiments[0]
    wrong = [{"experiment_id": checkout.id, "variation_id": checkout.variations[1].id, "visits": 5000,
              "converted_visits": 500}]  # fmt: skip
    verdict = planted.judge(world, wrong, {}, set(), alpha=0.001)
    assert not verdict.passed
    assert checkout.name in verdict.problems[0] and checkout.variations[1].id in verdict.problems[0]


def test_an_undetectably_small_mismatch_is_not_demanded() -> None:
    pricing = World().experiments[2]
    assert not planted.srm_detectable(pricing, 300, alpha=0.001)
    assert planted.srm_detectable(pricing, 5000, alpha=0.001)


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (3, 40), (97, 1000), (1000, 1000)])
def test_the_wilson_interval_is_scipys(successes: int, trials: int) -> None:
    expected = scipy_stats.binomtest(successes, trials).proportion_ci(0.999, method="wilson")
    assert planted.wilson_interval(successes, trials, 0.999) == pytest.approx((expected.low, expected.high))
