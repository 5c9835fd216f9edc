"""The warehouse on Optimizely's real E3 sample (one experiment, three variations, four event names),
checked against an independent computation in plain Python over pyarrow."""

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as scipy_stats

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform_tests.defs.warehouse.conftest import resources_at, run_platform

DAY = "2025-03-02"
RESULTS = dg.AssetKey(["warehouse", "experiment_results"])
WINDOW = dt.timedelta(days=7)


def read_sample(root: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(path) for path in sorted(root.rglob("*.parquet")))


@pytest.fixture(scope="module")
def covid_sample(vendor_samples: Path) -> tuple[pa.Table, pa.Table]:
    base = vendor_samples / "optimizely" / "covid_test_data"
    return read_sample(base / "type=decisions"), read_sample(base / "type=events")


@pytest.fixture(scope="module")
def sample_results(
    covid_sample: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory
) -> list[dict]:
    """The warehouse run once on the sample, through Dagster: the experiment_results rows."""
    decisions, conversions = covid_sample
    resources = resources_at(tmp_path_factory.mktemp("covid"))
    run_platform(
        resources,
        {("optimizely", "decisions"): {DAY: decisions}, ("optimizely", "conversions"): {DAY: conversions}},
        [DAY],
    )
    lake: Lake = resources["lake"].lake()
    return delta.read(lake, "warehouse/experiment_results").to_table().to_pylist()


def independent_counts(
    decisions: pa.Table, conversions: pa.Table, event_name: str
) -> dict[str, tuple[int, int]]:
    """variation -> (units, visitors converting on `event_name` within 7 days of their first decision)."""
    first: dict[str, tuple[dt.datetime, str]] = {}
    for row in decisions.select(["visitor_id", "timestamp", "variation_id"]).to_pylist():
        known = first.get(row["visitor_id"])
        if known is None or row["timestamp"] < known[0]:
            first[row["visitor_id"]] = (row["timestamp"], row["variation_id"])
    converted: set[str] = set()
    for row in conversions.select(["visitor_id", "timestamp", "event_name"]).to_pylist():
        exposure = first.get(row["visitor_id"])
        if (
            row["event_name"] == event_name
            and exposure
            and exposure[0] <= row["timestamp"] < exposure[0] + WINDOW
        ):
            converted.add(row["visitor_id"])
    units = Counter(variation for _, variation in first.values())
    conversions_per_variation = Counter(first[visitor][1] for visitor in converted)
    return {variation: (units[variation], conversions_per_variation[variation]) for variation in units}


def test_real_sample_units_and_purchases_match_an_independent_count(
    covid_sample: tuple[pa.Table, pa.Table], sample_results: list[dict]
) -> None:
    decisions, conversions = covid_sample
    rows = sample_results

    assert {row["experiment_id"] for row in rows} == {"18786493712"}
    assert {row["variation_id"] for row in rows} == set(decisions["variation_id"].to_pylist())
    assert {row["metric_event"] for row in rows if row["metric"] == "conversion_rate"} == {
        "add_to_cart",
        "detail_page_view",
        "homepage_view",
        "purchase",
    }

    expected = independent_counts(decisions, conversions, "purchase")
    purchase = {
        row["variation_id"]: row
        for row in rows
        if row["metric"] == "conversion_rate" and row["metric_event"] == "purchase"
    }
    assert {v: (r["units"], r["conversions"]) for v, r in purchase.items()} == expected
    control = min(expected, key=int)
    assert purchase[control]["is_control"]
    for variation, (units, converted) in expected.items():
        row = purchase[variation]
        assert row["value"] == pytest.approx(converted / units)
        if variation != control:
            c_units, c_converted = expected[control]
            table = [[c_converted, c_units - c_converted], [converted, units - converted]]
            assert row["p_value"] == pytest.approx(
                scipy_stats.chi2_contingency(table, correction=False).pvalue
            )
    # Allocation of the sample is even: no mismatch flagged.
    assert not any(row["srm_flagged"] for row in rows)
    assert rows[0]["srm_p_value"] == pytest.approx(
        scipy_stats.chisquare(list(Counter(decisions["variation_id"].to_pylist()).values())).pvalue
    )


def test_real_sample_revenue_per_visitor_matches_scipy_on_the_raw_values(
    covid_sample: tuple[pa.Table, pa.Table], sample_results: list[dict]
) -> None:
    decisions, conversions = covid_sample
    revenue = {row["variation_id"]: row for row in sample_results if row["metric"] == "revenue_per_visitor"}

    first = {}
    for row in sorted(
        decisions.select(["visitor_id", "timestamp", "variation_id"]).to_pylist(),
        key=lambda r: r["timestamp"],
    ):
        first.setdefault(row["visitor_id"], row)
    per_visitor: dict[str, float] = defaultdict(float)
    for row in conversions.select(["visitor_id", "timestamp", "revenue"]).to_pylist():
        exposure = first.get(row["visitor_id"])
        if exposure and exposure["timestamp"] <= row["timestamp"] < exposure["timestamp"] + WINDOW:
            per_visitor[row["visitor_id"]] += (row["revenue"] or 0) / 100
    values = {
        variation: [per_visitor.get(v, 0.0) for v, r in first.items() if r["variation_id"] == variation]
        for variation in revenue
    }
    control = min(values, key=int)
    assert len(values) == 3
    for variation, row in revenue.items():
        assert row["units"] == len(values[variation])
        assert row["value"] == pytest.approx(sum(values[variation]) / len(values[variation]), rel=1e-9)
        assert row["variance"] == pytest.approx(scipy_stats.tvar(values[variation]), rel=1e-6)
        if variation != control:
            expected = scipy_stats.ttest_ind(values[variation], values[control], equal_var=False)
            assert row["p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
