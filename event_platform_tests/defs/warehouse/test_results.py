"""Assembling experiment results from sums: the catalog (metadata + metrics file), the control, planned
weights and the sample-ratio test, each metric kind's statistics, decisions, and the summary text."""

import datetime as dt
from typing import Any

import pytest
from scipy import stats as scipy_stats

from event_platform.defs.warehouse.experiment_catalog import build_catalog, control_order
from event_platform.defs.warehouse.metrics import EMPTY, parse_config
from event_platform.defs.warehouse.resources import WarehouseResource, attribution_window_days
from event_platform.defs.warehouse.results import (
    INVALID,
    ResultsSettings,
    allocations,
    decide,
    parse_traffic_weights,
    result_rows,
)
from event_platform.defs.warehouse.summary import experiment_summary, number, p_value, percent

DAY = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def units(experiment: str, counts: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "experiment_id": experiment,
            "variation_id": v,
            "units": n,
            "holdback_visitors": 0,
            "excluded_visitors": 0,
            "first_exposure": DAY,
            "last_exposure": DAY + dt.timedelta(days=2),
        }
        for v, n in counts.items()
    ]


def metadata(
    experiment: str, variations: list[tuple[str, str, int]], baseline: str | None = None
) -> list[dict]:
    return [
        {
            "experiment_id": experiment,
            "experiment_name": f"exp {experiment}",
            "description": "what we test",
            "variation_id": variation,
            "variation_name": name,
            "planned_weight": weight / 10_000,
            "is_baseline": variation == baseline,
        }
        for variation, name, weight in variations
    ]


def metric_row(experiment: str, index: int, aggregator: str, **extra: Any) -> dict[str, Any]:
    return {
        "experiment_id": experiment,
        "metric_index": index,
        "role": ["primary", "secondary"][min(index, 1)],
        "metric_name": f"m{index}",
        "aggregator": aggregator,
        "scope": "visitor",
        "field": None,
        "winning_direction": "increasing",
        "event_id": "91",
        "event_key": "purchase",
        **extra,
    }


def sums(experiment: str, index: int, variation: str, **values: float) -> dict[str, Any]:
    return {
        "experiment_id": experiment,
        "metric_index": index,
        "variation_id": variation,
        "units_with_event": int(values.get("sum_x", 0)),
        **{name: values.get(name, 0.0) for name in ("sum_x", "sum_xx", "sum_y", "sum_yy", "sum_xy")},
    }


def test_the_control_is_the_baseline_then_the_configured_control_then_the_lowest_id() -> None:
    assert sorted(["100", "99", "b", "a"], key=control_order) == ["99", "100", "a", "b"]
    settings = ResultsSettings()
    no_metadata = build_catalog(EMPTY, [], [], 7)
    assert allocations(units("e", {"1002": 5, "999": 5}), no_metadata, settings)["e"].control == "999"
    with_baseline = build_catalog(
        EMPTY, metadata("e", [("999", "a", 5000), ("1002", "b", 5000)], "1002"), [], 7
    )
    assert allocations(units("e", {"1002": 5, "999": 5}), with_baseline, settings)["e"].control == "1002"
    config = parse_config('experiments: [{id: e, control: "1002"}]', "m.yaml", window_days=7)
    configured = build_catalog(config, [], [], 7)
    assert allocations(units("e", {"1002": 5, "999": 5}), configured, settings)["e"].control == "1002"


def test_planned_weights_come_from_metadata_before_the_setting() -> None:
    catalog = build_catalog(EMPTY, metadata("e", [("1", "a", 5600), ("2", "b", 4400)]), [], 7)
    settings = ResultsSettings(traffic_weights={"e": {"1": 0.5, "2": 0.5}})
    [allocation] = allocations(units("e", {"1": 560, "2": 440}), catalog, settings).values()
    assert allocation.planned == pytest.approx([0.56, 0.44])
    assert not allocation.flagged and allocation.srm.p_value == pytest.approx(1.0)
    # Without metadata the setting applies, then equal shares.
    [fallback] = allocations(units("f", {"1": 560, "2": 440}), catalog, settings).values()
    assert fallback.flagged
    assert fallback.srm.p_value == pytest.approx(scipy_stats.chisquare([560, 440]).pvalue, abs=1e-12)


def test_a_planned_variation_nobody_saw_is_a_variation_with_no_units() -> None:
    catalog = build_catalog(EMPTY, metadata("e", [("1", "a", 5000), ("2", "b", 5000)]), [], 7)
    [allocation] = allocations(units("e", {"1": 500}), catalog, ResultsSettings()).values()
    assert allocation.variations == ["1", "2"] and allocation.arms["2"].units == 0
    assert allocation.flagged


def test_setting_weights_must_cover_every_variation() -> None:
    settings = ResultsSettings(traffic_weights={"e": {"1": 1.0}})
    with pytest.raises(ValueError, match="every variation a positive weight"):
        allocations(units("e", {"1": 5, "2": 5}), build_catalog(EMPTY, [], [], 7), settings)


def test_optimizely_metrics_map_to_kinds_and_unsupported_ones_are_listed() -> None:
    rows = [
        metric_row("e", 0, "unique"),
        metric_row("e", 1, "sum", field="revenue", metric_name="revenue"),
        metric_row("e", 2, "count", scope="session"),
        metric_row("e", 3, "bounce"),
        metric_row("e", 4, "sum", field="revenue", event_id=None, event_key=None),
    ]
    info = build_catalog(EMPTY, metadata("e", [("1", "a", 5000)]), rows, 7).info("e")
    assert [(m.metric.kind, m.role) for m in info.metrics] == [
        ("conversion", "primary"),
        ("sum", "secondary"),
        ("sum", "secondary"),
    ]
    assert info.metrics[1].metric.numerator.value_property == "revenue"
    assert info.metrics[2].metric.numerator.events[0].event is None  # overall revenue: any event
    assert [(n.name, "per session" in n.reason or "bounce" in n.reason) for n in info.not_analysed] == [
        ("m2", True),
        ("m3", True),
    ]


def test_the_metrics_files_primary_replaces_optimizelys_which_stays_as_secondary() -> None:
    config = parse_config(
        """
metrics:
  views: {kind: count, source: amplitude, events: [course_view]}
experiments:
  - id: e
    metrics: [{metric: views, role: primary}]
""",
        "m.yaml",
        window_days=7,
    )
    info = build_catalog(config, metadata("e", [("1", "a", 5000)]), [metric_row("e", 0, "unique")], 7).info(
        "e"
    )
    assert [(m.metric.name, m.role, m.origin) for m in info.metrics] == [
        ("m0", "secondary", "optimizely"),
        ("views", "primary", "metrics file"),
    ]
    assert "replaces Optimizely's" in info.notes[0]


def rows_for(metric_kind_yaml: str, sum_rows: list[dict[str, Any]], counts: dict[str, int]) -> list[dict]:
    config = parse_config(
        f"metrics:\n  m: {metric_kind_yaml}\n"
        "experiments: [{id: e, metrics: [{metric: m, role: primary}]}]",
        "m.yaml",
        window_days=7,
    )
    catalog = build_catalog(config, [], [], 7)
    settings = ResultsSettings()
    return result_rows(allocations(units("e", counts), catalog, settings), sum_rows, catalog, settings)


def test_a_conversion_is_a_two_proportion_test() -> None:
    rows = rows_for(
        "{kind: conversion, source: optimizely, events: [purchase]}",
        [sums("e", 0, "1", sum_x=100, sum_xx=100), sums("e", 0, "2", sum_x=130, sum_xx=130)],
        {"1": 1000, "2": 1000},
    )
    control, treatment = rows
    assert (control["decision"], control["value"]) == ("baseline", 0.1)
    table = [[100, 900], [130, 870]]
    assert treatment["p_value"] == pytest.approx(scipy_stats.chi2_contingency(table, correction=False).pvalue)
    assert treatment["relative_lift"] == pytest.approx(0.3)
    assert (treatment["method"], treatment["decision"], treatment["significant"]) == (
        "two_proportion_z",
        "winner",
        True,
    )


def test_a_sum_per_unit_is_welchs_t_test_with_zeros_for_units_without_events() -> None:
    control_values = [3.0, 0.0, 5.0, 0.0]
    treatment_values = [1.0, 2.0, 0.0]
    rows = rows_for(
        "{kind: sum, source: optimizely, events: [purchase], property: revenue, "
        "winning_direction: decreasing}",
        [
            sums("e", 0, "1", sum_x=sum(control_values), sum_xx=sum(v * v for v in control_values)),
            sums("e", 0, "2", sum_x=sum(treatment_values), sum_xx=sum(v * v for v in treatment_values)),
        ],
        {"1": 4, "2": 3},
    )
    treatment = rows[1]
    expected = scipy_stats.ttest_ind(treatment_values, control_values, equal_var=False)
    assert treatment["p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
    assert treatment["value"] == pytest.approx(1.0)
    assert treatment["standard_error"] == pytest.approx(scipy_stats.sem(treatment_values))


def test_a_ratio_uses_the_delta_method() -> None:
    # Per unit (x, y): revenue and orders.
    control_units = [(10.0, 1.0), (30.0, 2.0), (0.0, 0.0), (20.0, 1.0)]
    treatment_units = [(15.0, 1.0), (40.0, 1.0), (25.0, 2.0)]

    def moments(pairs: list[tuple[float, float]]) -> dict[str, float]:
        return {
            "sum_x": sum(x for x, _ in pairs),
            "sum_xx": sum(x * x for x, _ in pairs),
            "sum_y": sum(y for _, y in pairs),
            "sum_yy": sum(y * y for _, y in pairs),
            "sum_xy": sum(x * y for x, y in pairs),
        }

    rows = rows_for(
        "{kind: ratio, numerator: {kind: sum, source: optimizely, events: [purchase], property: revenue}, "
        "denominator: {kind: count, source: optimizely, events: [purchase]}}",
        [sums("e", 0, "1", **moments(control_units)), sums("e", 0, "2", **moments(treatment_units))],
        {"1": 4, "2": 3},
    )
    control, treatment = rows
    assert control["value"] == pytest.approx(60.0 / 4.0) and treatment["value"] == pytest.approx(80.0 / 4.0)

    def delta_variance(pairs: list[tuple[float, float]]) -> float:
        xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
        n, mx, my = len(pairs), sum(xs) / len(xs), sum(ys) / len(ys)
        cov = scipy_stats.tvar(xs), scipy_stats.tvar(ys)
        cxy = sum((x - mx) * (y - my) for x, y in pairs) / (n - 1)
        return (cov[0] / my**2 - 2 * mx * cxy / my**3 + mx**2 * cov[1] / my**4) / n

    se = (delta_variance(control_units) + delta_variance(treatment_units)) ** 0.5
    z = (treatment["value"] - control["value"]) / se
    assert treatment["statistic"] == pytest.approx(z)
    assert treatment["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
    assert treatment["method"] == "delta_method_z"


def test_decisions_read_the_test_against_direction_role_and_allocation() -> None:
    assert decide(True, False, "primary", "increasing", 0.1, True) == INVALID
    assert decide(False, True, "primary", "increasing", None, False) == "baseline"
    assert decide(False, False, "primary", "increasing", 0.1, True) == "winner"
    assert decide(False, False, "primary", "decreasing", 0.1, True) == "loser"
    assert decide(False, False, "secondary", "increasing", 0.1, False) == "inconclusive"
    assert decide(False, False, "guardrail", "increasing", -0.1, True) == "guardrail harmed"
    assert decide(False, False, "guardrail", "increasing", 0.1, True) == "no harm detected"
    assert decide(False, False, "guardrail", "decreasing", 0.1, True) == "guardrail harmed"


def test_an_experiment_without_metadata_keeps_its_ids_units_and_allocation() -> None:
    catalog = build_catalog(EMPTY, [], [], 7)
    settings = ResultsSettings()
    rows = result_rows(
        allocations(units("77", {"1": 560, "2": 440}), catalog, settings), [], catalog, settings
    )
    assert [(r["experiment_id"], r["experiment_name"], r["metadata"], r["units"]) for r in rows] == [
        ("77", None, "missing", 560),
        ("77", None, "missing", 440),
    ]
    assert all(r["decision"] == INVALID and r["note"].startswith("no metrics") for r in rows)


def test_the_summary_names_the_verdict_with_rounded_lifts_and_intervals() -> None:
    rows = rows_for(
        "{kind: conversion, source: optimizely, events: [purchase]}",
        [sums("e", 0, "1", sum_x=100, sum_xx=100), sums("e", 0, "2", sum_x=130, sum_xx=130)],
        {"1": 1000, "2": 1000},
    )
    text = experiment_summary(rows)
    assert text.startswith("### experiment e")
    assert "2,000 units in 2 variations, first exposed 2026-11-01 to 2026-11-03" in text
    assert "Primary metric **m** (increasing is better; 1 10.0%): 2 **winner**, +30.0% (95% CI " in text
    assert "no sample-ratio mismatch (p = 1.000)" in text
    assert "| m | primary | 2 | 13.0% | 10.0% | +30.0% |" in text


def test_numbers_are_rounded_as_people_read_them() -> None:
    assert (percent(0.2941, signed=True), percent(0.0042), percent(None)) == ("+29.4%", "0.42%", "")
    assert (number(49.0), number(6.4), number(0.012345), number(12345.6)) == (
        "49.0",
        "6.40",
        "0.0123",
        "12,346",
    )
    assert (p_value(0.0004), p_value(0.04123)) == ("< 0.001", "0.041")


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
