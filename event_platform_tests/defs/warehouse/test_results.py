"""Assembling experiment results from counts: control choice, metrics, allocation tests and settings."""

import pytest
from scipy import stats as scipy_stats

from event_platform.defs.warehouse.resources import WarehouseResource, attribution_window_days
from event_platform.defs.warehouse.results import (
    ResultsSettings,
    control_order,
    parse_traffic_weights,
    result_rows,
)


def units(experiment: str, counts: dict[str, int]) -> list[dict]:
    return [
        {
            "experiment_id": experiment,
            "variation_id": v,
            "units": n,
            "holdback_visitors": 0,
            "excluded_visitors": 0,
        }
        for v, n in counts.items()
    ]


def test_the_control_is_the_lowest_id_numerically() -> None:
    assert sorted(["100", "99", "b", "a"], key=control_order) == ["99", "100", "a", "b"]
    rows = result_rows(units("e", {"1002": 50, "999": 50}), [], ResultsSettings())
    assert [(r["variation_id"], r["is_control"]) for r in rows] == [("999", True), ("1002", False)]


def test_an_experiment_without_conversions_still_shows_units_and_allocation() -> None:
    rows = result_rows(units("e", {"1": 560, "2": 440}), [], ResultsSettings())
    assert [r["units"] for r in rows] == [560, 440]
    assert all(r["conversions"] == 0 and r["srm_flagged"] for r in rows)
    assert rows[0]["srm_p_value"] == pytest.approx(scipy_stats.chisquare([560, 440]).pvalue, abs=1e-9)


def test_configured_weights_replace_equal_allocation() -> None:
    settings = ResultsSettings(traffic_weights={"e": {"1": 0.56, "2": 0.44}})
    rows = result_rows(units("e", {"1": 560, "2": 440}), [], settings)
    assert not rows[0]["srm_flagged"]
    assert rows[0]["srm_p_value"] == pytest.approx(1.0)


def test_weights_must_cover_every_variation() -> None:
    settings = ResultsSettings(traffic_weights={"e": {"1": 1.0}})
    with pytest.raises(ValueError, match="every variation a positive weight"):
        result_rows(units("e", {"1": 5, "2": 5}), [], settings)


def test_metrics_from_sums() -> None:
    metric = {"experiment_id": "e", "source": "amplitude", "event_name": "buy", "kind": "events"}
    sums = [
        {**metric, "variation_id": "1", "converted_units": 10, "total": 15.0, "total_of_squares": 25.0},
        {**metric, "variation_id": "2", "converted_units": 20, "total": 30.0, "total_of_squares": 60.0},
    ]
    rows = result_rows(units("e", {"1": 100, "2": 100}), sums, ResultsSettings())
    by_metric = {(r["metric"], r["variation_id"]): r for r in rows}
    rate = by_metric[("conversion_rate", "2")]
    assert (rate["value"], rate["absolute_lift"], rate["test"]) == (
        0.2,
        pytest.approx(0.1),
        "two_proportion_z",
    )
    mean = by_metric[("events_per_visitor", "2")]
    assert mean["value"] == 0.3
    assert mean["variance"] == pytest.approx((60.0 - 30.0 * 0.3) / 99)
    control_deviation = by_metric[("events_per_visitor", "1")]["variance"] ** 0.5
    expected = scipy_stats.ttest_ind_from_stats(
        0.3, mean["variance"] ** 0.5, 100, 0.15, control_deviation, 100, equal_var=False
    )
    assert mean["p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
    assert by_metric[("conversion_rate", "1")]["p_value"] is None  # the control is not compared with itself


def test_traffic_weights_setting() -> None:
    assert parse_traffic_weights(None) == {}
    assert parse_traffic_weights('{"9": {"1": 3, "2": 1}}') == {"9": {"1": 3.0, "2": 1.0}}
    with pytest.raises(ValueError, match="traffic weights must be JSON"):
        parse_traffic_weights('{"9": [1, 2]}')


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_WAREHOUSE", "/tmp/analysts.duckdb")
    monkeypatch.setenv("EVENT_PLATFORM_EXPERIMENT_WEIGHTS", '{"9": {"1": 1, "2": 1}}')
    monkeypatch.setenv("EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS", "14")
    resource = WarehouseResource()
    assert str(resource.warehouse_path()) == "/tmp/analysts.duckdb"
    assert resource.results_settings(attribution_window_days()).traffic_weights == {"9": {"1": 1.0, "2": 1.0}}
    assert attribution_window_days() == 14
    monkeypatch.setenv("EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS", "a week")
    with pytest.raises(ValueError, match="EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS must be a whole number"):
        attribution_window_days()
