"""The warehouse on Optimizely's real E3 sample (one experiment, three variations, four event names), with
the experiment's metadata read by the real `optimizely/experiments` asset from a test double of the REST
API (`responses`), checked against an independent computation in plain Python over pyarrow."""

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import responses
from scipy import stats as scipy_stats

from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.partitions import daily_partitions
from event_platform.sources.optimizely.defs.experiment_assets import experiment_metadata
from event_platform.sources.optimizely.defs.resources import OptimizelyResource
from event_platform_tests.defs.warehouse.conftest import (
    CHECKS,
    DAILY_WAREHOUSE,
    MARTS,
    SOURCE_KEYS,
    resources_at,
    source_asset,
)
from event_platform_tests.defs.warehouse.test_results import msprt_p_value

DAY = "2025-03-02"
RESULTS = dg.AssetKey(["warehouse", "experiment_results"])
WINDOW = dt.timedelta(days=7)
REST = "https://rest.optimizely.test"
EXPERIMENT = "18786493712"
ORIGINAL, FIRST, SECOND = "18817551468", "18802093142", "18818611832"
"""The metadata lists the original first (the baseline), though its id is not the lowest."""
VARIATIONS = {ORIGINAL: "Original", FIRST: "Variation #1", SECOND: "Variation #2"}
WEIGHTS = {ORIGINAL: 3334, FIRST: 3333, SECOND: 3333}
EVENTS = {
    "15762370046": "purchase",
    "15776040040": "add_to_cart",
    "18803874034": "detail_page_view",
    "18822540003": "homepage_view",
}


def serve_metadata(mock: responses.RequestsMock) -> None:
    """The REST API as Optimizely answers for this sample's project: raw JSON, so ids are JSON int64s."""

    def json_body(text: str) -> dict[str, Any]:
        return {"body": text, "content_type": "application/json"}

    mock.get(
        f"{REST}/v2/projects", **json_body('[{"id": 18812222002, "name": "Covid test", "platform": "web"}]')
    )
    events = ", ".join(
        f'{{"id": {i}, "key": "{key}", "name": "{key}", "event_type": "custom"}}' for i, key in EVENTS.items()
    )
    mock.get(f"{REST}/v2/events", **json_body(f"[{events}]"))
    variations = ", ".join(
        f'{{"variation_id": {v}, "name": "{name}", "key": "{name.lower()}", "weight": {WEIGHTS[v]}}}'
        for v, name in VARIATIONS.items()
    )
    mock.get(
        f"{REST}/v2/experiments",
        **json_body(
            f'[{{"id": {EXPERIMENT}, "campaign_id": 18811053836, "name": "Covid messaging", '
            f'"status": "running", "type": "a/b", "variations": [{variations}], '
            '"metrics": [{"aggregator": "unique", "event_id": 15762370046, "scope": "visitor", '
            '"winning_direction": "increasing"}]}]'
        ),
    )


def read_sample(root: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(path) for path in sorted(root.rglob("*.parquet")))


@pytest.fixture(scope="module")
def covid_sample(vendor_samples: Path) -> tuple[pa.Table, pa.Table]:
    base = vendor_samples / "optimizely" / "covid_test_data"
    return read_sample(base / "type=decisions"), read_sample(base / "type=events")


@pytest.fixture(scope="module")
def sample_run(
    covid_sample: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict]]:
    """The sample's day through Dagster with the real metadata asset, then the marts: both tables' rows."""
    decisions, conversions = covid_sample
    directory = tmp_path_factory.mktemp("covid")
    resources = {
        **resources_at(directory),
        # Unadjusted, so the p-values can be recomputed from counts alone (CUPED is tested on its own).
        "warehouse": WarehouseResource(
            path=str(directory / "warehouse.duckdb"), memory_limit="1GB", cuped=False
        ),
        "optimizely": OptimizelyResource(
            api_token="sample-token", rest_url=REST, rest_requests_per_second=100
        ),
    }
    sources = {
        ("optimizely", "decisions"): {DAY: decisions},
        ("optimizely", "conversions"): {DAY: conversions},
    }
    others = [
        dg.AssetSpec(list(key), partitions_def=daily_partitions)
        for key in SOURCE_KEYS
        if key not in sources and key[1] not in ("experiments", "experiment_metrics")
    ]
    assets = [*(source_asset(key, days) for key, days in sources.items()), experiment_metadata, *others,
              *DAILY_WAREHOUSE, *MARTS, *CHECKS]  # fmt: skip
    daily = [
        *(dg.AssetKey(list(key)) for key in sources),
        *experiment_metadata.keys,
        *(a.key for a in DAILY_WAREHOUSE),
    ]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        serve_metadata(mock)
        assert dg.materialize(assets, resources=resources, partition_key=DAY, selection=daily).success
    marts = dg.AssetSelection.assets(*MARTS) | dg.AssetSelection.checks(*CHECKS)
    assert dg.materialize(assets, resources=resources, selection=marts).success
    lake: Lake = resources["lake"].lake()
    return {
        name: delta.read(lake, f"warehouse/{name}").to_table().to_pylist()
        for name in ("experiment_results", "experiment_exploration")
    }


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


def test_real_sample_results_carry_names_the_primary_metric_and_independent_counts(
    covid_sample: tuple[pa.Table, pa.Table], sample_run: dict[str, list[dict]]
) -> None:
    decisions, conversions = covid_sample
    rows = sample_run["experiment_results"]

    assert {row["experiment_name"] for row in rows} == {"Covid messaging"}
    assert {(row["variation_id"], row["variation_name"]) for row in rows} == set(VARIATIONS.items())
    assert {(row["metric_name"], row["metric_role"], row["metric_kind"]) for row in rows} == {
        ("purchase (unique per visitor)", "primary", "conversion")
    }
    expected = independent_counts(decisions, conversions, "purchase")
    assert {row["variation_id"]: (row["units"], row["units_with_event"]) for row in rows} == expected
    by_variation = {row["variation_id"]: row for row in rows}
    assert by_variation[ORIGINAL]["is_control"] and by_variation[ORIGINAL]["decision"] == "baseline"
    c_units, c_converted = expected[ORIGINAL]
    for variation, (units, converted) in expected.items():
        row = by_variation[variation]
        assert row["value"] == pytest.approx(converted / units)
        assert row["planned_weight"] == pytest.approx(WEIGHTS[variation] / 10_000)
        if variation != ORIGINAL:
            # The default test, the always-valid mSPRT, recomputed from the independent counts.
            rate, control_rate = converted / units, c_converted / c_units
            variance = rate * (1 - rate) / units + control_rate * (1 - control_rate) / c_units
            expected_p = msprt_p_value(rate - control_rate, variance, units + c_units, 0.05, 100_000)
            assert row["method"] == "sequential"
            assert row["p_value"] == pytest.approx(expected_p, rel=1e-9)
    # Allocation of the sample matches its planned thirds: no mismatch flagged.
    units = [expected[v][0] for v in VARIATIONS]
    planned = [sum(units) * WEIGHTS[v] / 10_000 for v in VARIATIONS]
    assert not any(row["srm_flagged"] for row in rows)
    assert rows[0]["srm_p_value"] == pytest.approx(scipy_stats.chisquare(units, planned).pvalue)


def test_real_sample_exploration_has_every_event(sample_run: dict[str, list[dict]]) -> None:
    rows = sample_run["experiment_exploration"]
    assert {row["metric_event"] for row in rows if row["metric"] == "conversion_rate"} == set(EVENTS.values())
    assert {row["experiment_name"] for row in rows} == {"Covid messaging"}


def test_real_sample_revenue_per_visitor_matches_scipy_on_the_raw_values(
    covid_sample: tuple[pa.Table, pa.Table], sample_run: dict[str, list[dict]]
) -> None:
    decisions, conversions = covid_sample
    explored = sample_run["experiment_exploration"]
    revenue = {row["variation_id"]: row for row in explored if row["metric"] == "revenue_per_visitor"}

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
    control = ORIGINAL
    assert len(values) == 3
    for variation, row in revenue.items():
        assert row["units"] == len(values[variation])
        assert row["value"] == pytest.approx(sum(values[variation]) / len(values[variation]), rel=1e-9)
        assert row["variance"] == pytest.approx(scipy_stats.tvar(values[variation]), rel=1e-6)
        if variation != control:
            expected = scipy_stats.ttest_ind(values[variation], values[control], equal_var=False)
            assert row["p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
