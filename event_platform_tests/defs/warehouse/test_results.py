"""Assembling experiment results from sums: the catalog (metadata + metrics file), the control, planned
weights and the sample-ratio test, each metric kind's statistics, decisions, and the summary text."""

import datetime as dt
import math
from typing import Any

import pytest
from scipy import stats as scipy_stats

from event_platform import settings
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.warehouse.experiment_catalog import Catalog, build_catalog, control_order
from event_platform.warehouse.inference import Correction, InferenceSettings, Method
from event_platform.warehouse.metrics import EMPTY, parse_config
from event_platform.warehouse.results import (
    INVALID,
    SUM_FIELDS,
    ResultsSettings,
    allocations,
    decide,
    result_rows,
)
from event_platform.warehouse.summary import experiment_summary, number, p_value, percent

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
        "units_with_event": int(values.get("sum_y", 0)),
        **{name: values.get(name, 0.0) for name in SUM_FIELDS},
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


FIXED_Z = ResultsSettings(inference=InferenceSettings(method=Method.FIXED_Z))
FIXED_WELCH = ResultsSettings(inference=InferenceSettings(method=Method.FIXED_WELCH))


def rows_for(
    metrics_yaml: str,
    sum_rows: list[dict[str, Any]],
    counts: dict[str, int],
    settings: ResultsSettings,
    roles: str = "[{metric: m, role: primary}]",
) -> list[dict]:
    config = parse_config(
        f"metrics:\n{metrics_yaml}\nexperiments: [{{id: e, metrics: {roles}}}]", "m.yaml", window_days=7
    )
    catalog = build_catalog(config, [], [], 7)
    return result_rows(
        allocations(units("e", counts), catalog, settings),
        by_metric(sum_rows, catalog),
        catalog,
        settings,
        {},
    )


def by_metric(sum_rows: list[dict[str, Any]], catalog: Catalog) -> dict[tuple[str, str], dict[str, Any]]:
    """`sums` rows (by metric index) keyed as result_rows takes them: (experiment, metric name) ->
    variation -> sums."""
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sum_rows:
        name = catalog.info(row["experiment_id"]).metrics[row["metric_index"]].metric.name
        keyed.setdefault((row["experiment_id"], name), {})[row["variation_id"]] = row
    return keyed


PURCHASE = "  m: {kind: conversion, source: optimizely, events: [purchase]}"
CONVERSIONS = [sums("e", 0, "1", sum_y=100, sum_y2=100), sums("e", 0, "2", sum_y=130, sum_y2=130)]


def test_a_conversion_at_a_fixed_horizon_is_the_unpooled_z_test() -> None:
    control, treatment = rows_for(PURCHASE, CONVERSIONS, {"1": 1000, "2": 1000}, FIXED_Z)
    assert (control["decision"], control["value"]) == ("baseline", 0.1)
    standard_error = (0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000) ** 0.5
    assert treatment["statistic"] == pytest.approx(0.03 / standard_error)
    assert treatment["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(0.03 / standard_error))
    assert treatment["relative_lift"] == pytest.approx(0.3)
    # One primary test: the correction leaves it as it is.
    assert treatment["corrected_p_value"] == pytest.approx(treatment["p_value"])
    assert (treatment["method"], treatment["decision"], treatment["significant"]) == (
        "fixed_z",
        "winner",
        True,
    )


def msprt_p_value(lift: float, variance: float, units: float, alpha: float, tuning_units: float) -> float:
    """Johari et al. (2017), written out here: the normal-mixture likelihood ratio with
    tau^2 = rho^2 N V, rho^2 from Waudby-Smith et al. eq. 161; p = min(1, 1 / ratio)."""
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuning_units
    tau2 = rho2 * units * variance
    ratio = math.sqrt(variance / (variance + tau2)) * math.exp(
        tau2 * lift**2 / (2 * variance * (variance + tau2))
    )
    return min(1.0, 1.0 / ratio)


def test_by_default_a_conversion_gets_the_always_valid_p_value_and_a_wider_interval() -> None:
    treatment = rows_for(PURCHASE, CONVERSIONS, {"1": 1000, "2": 1000}, ResultsSettings())[1]
    variance = 0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000
    expected = msprt_p_value(0.03, variance, 2000, 0.05, 100_000)
    assert treatment["method"] == "sequential"
    assert treatment["p_value"] == pytest.approx(expected, rel=1e-9)
    fixed = rows_for(PURCHASE, CONVERSIONS, {"1": 1000, "2": 1000}, FIXED_Z)[1]
    assert treatment["p_value"] > fixed["p_value"]  # the price of looking every day
    assert treatment["ci_low"] < fixed["ci_low"] < 0.03 < fixed["ci_high"] < treatment["ci_high"]
    assert treatment["decision"] == ("winner" if expected < 0.05 else "inconclusive")


def test_an_experiments_tests_are_corrected_by_tier_with_benjamini_hochberg() -> None:
    metrics = "\n".join(
        f"  {name}: {{kind: conversion, source: optimizely, events: [{name}]}}" for name in "abcd"
    )
    roles = (
        "[{metric: a, role: primary}, {metric: b, role: secondary}, {metric: c, role: secondary}, "
        "{metric: d, role: monitoring}]"
    )
    converted = {0: (100, 135), 1: (100, 128), 2: (100, 112), 3: (100, 131)}
    sum_rows = [
        sums("e", index, variation, sum_y=count, sum_y2=count)
        for index, pair in converted.items()
        for variation, count in zip(("1", "2"), pair, strict=True)
    ]
    for correction in Correction:
        settings = ResultsSettings(inference=InferenceSettings(method=Method.FIXED_Z, correction=correction))
        rows = rows_for(metrics, sum_rows, {"1": 1000, "2": 1000}, settings, roles)
        tested = {row["metric_name"]: row for row in rows if not row["is_control"]}
        # The primary metric and the monitoring metric are each alone in their tier.
        for alone in ("a", "d"):
            assert tested[alone]["corrected_p_value"] == pytest.approx(tested[alone]["p_value"])
        secondary = [tested["b"]["p_value"], tested["c"]["p_value"]]
        if correction is Correction.BENJAMINI_HOCHBERG:
            expected = scipy_stats.false_discovery_control(secondary, method="bh")
        else:
            # Holm with two tests: the smaller p doubled, the larger kept but never below it.
            smaller = min(1.0, 2 * min(secondary))
            expected = [smaller if p == min(secondary) else max(smaller, p) for p in secondary]
        assert [tested["b"]["corrected_p_value"], tested["c"]["corrected_p_value"]] == pytest.approx(expected)
        for row in tested.values():
            assert row["significant"] == (row["corrected_p_value"] < 0.05)


def test_a_sum_per_unit_at_a_fixed_horizon_is_welchs_t_test_with_zeros_for_units_without_events() -> None:
    control_values = [3.0, 0.0, 5.0, 0.0]
    treatment_values = [1.0, 2.0, 0.0]
    rows = rows_for(
        "  m: {kind: sum, source: optimizely, events: [purchase], property: revenue, "
        "winning_direction: decreasing}",
        [
            sums("e", 0, "1", sum_y=sum(control_values), sum_y2=sum(v * v for v in control_values)),
            sums("e", 0, "2", sum_y=sum(treatment_values), sum_y2=sum(v * v for v in treatment_values)),
        ],
        {"1": 4, "2": 3},
        FIXED_WELCH,
    )
    treatment = rows[1]
    expected = scipy_stats.ttest_ind(treatment_values, control_values, equal_var=False)
    assert treatment["p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
    assert treatment["value"] == pytest.approx(1.0)
    assert treatment["standard_error"] == pytest.approx(scipy_stats.sem(treatment_values))


def test_a_ratio_uses_the_delta_method() -> None:
    # Per unit (y, d): revenue and orders.
    control_units = [(10.0, 1.0), (30.0, 2.0), (0.0, 0.0), (20.0, 1.0)]
    treatment_units = [(15.0, 1.0), (40.0, 1.0), (25.0, 2.0)]

    def moments(pairs: list[tuple[float, float]]) -> dict[str, float]:
        return {
            "sum_y": sum(y for y, _ in pairs),
            "sum_y2": sum(y * y for y, _ in pairs),
            "sum_d": sum(d for _, d in pairs),
            "sum_d2": sum(d * d for _, d in pairs),
            "sum_yd": sum(y * d for y, d in pairs),
        }

    rows = rows_for(
        "  m: {kind: ratio, "
        "numerator: {kind: sum, source: optimizely, events: [purchase], property: revenue}, "
        "denominator: {kind: count, source: optimizely, events: [purchase]}}",
        [sums("e", 0, "1", **moments(control_units)), sums("e", 0, "2", **moments(treatment_units))],
        {"1": 4, "2": 3},
        FIXED_Z,
    )
    control, treatment = rows
    assert control["value"] == pytest.approx(60.0 / 4.0) and treatment["value"] == pytest.approx(80.0 / 4.0)

    def delta_variance(pairs: list[tuple[float, float]]) -> float:
        ys, ds = [y for y, _ in pairs], [d for _, d in pairs]
        n, my, md = len(pairs), sum(ys) / len(ys), sum(ds) / len(ds)
        cyd = sum((y - my) * (d - md) for y, d in pairs) / (n - 1)
        return (
            scipy_stats.tvar(ys) / md**2 - 2 * my * cyd / md**3 + my**2 * scipy_stats.tvar(ds) / md**4
        ) / n

    se = (delta_variance(control_units) + delta_variance(treatment_units)) ** 0.5
    z = (treatment["value"] - control["value"]) / se
    assert treatment["statistic"] == pytest.approx(z)
    assert treatment["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
    assert treatment["method"] == "fixed_z"


def test_decisions_read_the_corrected_p_value_against_direction_role_and_allocation() -> None:
    assert decide(True, False, "primary", "increasing", 0.1, 0.01, 0.05) == INVALID
    assert decide(False, True, "primary", "increasing", None, None, 0.05) == "baseline"
    assert decide(False, False, "primary", "increasing", 0.1, 0.01, 0.05) == "winner"
    assert decide(False, False, "primary", "decreasing", 0.1, 0.01, 0.05) == "loser"
    assert decide(False, False, "secondary", "increasing", 0.1, 0.2, 0.05) == "inconclusive"
    assert decide(False, False, "secondary", "increasing", 0.1, None, 0.05) == "inconclusive"
    assert decide(False, False, "guardrail", "increasing", -0.1, 0.01, 0.05) == "guardrail harmed"
    assert decide(False, False, "guardrail", "increasing", 0.1, 0.01, 0.05) == "no harm detected"
    assert decide(False, False, "guardrail", "decreasing", 0.1, 0.01, 0.05) == "guardrail harmed"


def test_a_guardrail_is_tested_one_sided_for_harm() -> None:
    guardrail = "[{metric: a, role: primary}, {metric: m, role: guardrail}]"
    metrics = "  a: {kind: conversion, source: optimizely, events: [a]}\n" + PURCHASE
    # The guardrail (an increasing metric) fell: harm is the side tested.
    falling = [
        sums("e", 1, "1", sum_y=130, sum_y2=130),
        sums("e", 1, "2", sum_y=100, sum_y2=100),
    ]
    [row] = [
        r
        for r in rows_for(metrics, falling, {"1": 1000, "2": 1000}, FIXED_Z, guardrail)
        if r["metric_name"] == "m" and not r["is_control"]
    ]
    standard_error = (0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000) ** 0.5
    assert row["p_value"] == pytest.approx(scipy_stats.norm.cdf(-0.03 / standard_error))
    assert row["decision"] == "guardrail harmed"


def test_an_experiment_without_metadata_keeps_its_ids_units_and_allocation() -> None:
    catalog = build_catalog(EMPTY, [], [], 7)
    settings = ResultsSettings()
    rows = result_rows(
        allocations(units("77", {"1": 560, "2": 440}), catalog, settings), {}, catalog, settings, {}
    )
    assert [(r["experiment_id"], r["experiment_name"], r["metadata"], r["units"]) for r in rows] == [
        ("77", None, "missing", 560),
        ("77", None, "missing", 440),
    ]
    assert all(r["decision"] == INVALID and r["note"].startswith("no metrics") for r in rows)


def test_the_summary_names_the_verdict_with_rounded_lifts_and_intervals() -> None:
    rows = rows_for(PURCHASE, CONVERSIONS, {"1": 1000, "2": 1000}, FIXED_Z)
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


def test_traffic_weights_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_PLATFORM_EXPERIMENT_WEIGHTS", raising=False)
    assert WarehouseResource().results_settings(7).traffic_weights == {}
    resource = WarehouseResource(traffic_weights='{"9": {"1": 3, "2": 1}}')
    assert resource.results_settings(7).traffic_weights == {"9": {"1": 3.0, "2": 1.0}}
    with pytest.raises(ValueError, match=r"traffic_weights \(as EVENT_PLATFORM_EXPERIMENT_WEIGHTS\) must"):
        WarehouseResource(traffic_weights='{"9": [1, 2]}').results_settings(7)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_WAREHOUSE", "/tmp/analysts.duckdb")
    monkeypatch.setenv("EVENT_PLATFORM_EXPERIMENT_WEIGHTS", '{"9": {"1": 1, "2": 1}}')
    monkeypatch.setenv("EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS", "14")
    monkeypatch.setenv("EVENT_PLATFORM_EXPERIMENT_METHOD", "Fixed_Welch")
    monkeypatch.setenv("EVENT_PLATFORM_CUPED", "off")
    resource = WarehouseResource()
    window_days = settings.Warehouse.read().attribution_window_days
    results_settings = resource.results_settings(window_days)
    assert str(resource.warehouse_path()) == "/tmp/analysts.duckdb"
    assert results_settings.traffic_weights == {"9": {"1": 1.0, "2": 1.0}}
    assert (results_settings.inference.method, results_settings.cuped) == (Method.FIXED_WELCH, False)
    assert window_days == 14
    monkeypatch.setenv("EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS", "a week")
    with pytest.raises(ValueError, match="EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS must be a whole number"):
        settings.Warehouse.read()


def test_the_resource_s_fields_win_and_are_checked_like_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_CUPED", "off")
    assert WarehouseResource(cuped=True, correction="holm").results_settings(7).cuped
    assert WarehouseResource(correction="holm").results_settings(7).inference.correction == Correction.HOLM
    with pytest.raises(ValueError, match=r"method \(as EVENT_PLATFORM_EXPERIMENT_METHOD\) must be one of"):
        WarehouseResource(method="bayesian").results_settings(7)
    monkeypatch.setenv("EVENT_PLATFORM_CUPED", "yes")
    with pytest.raises(ValueError, match="EVENT_PLATFORM_CUPED must be on or off, got 'yes'"):
        WarehouseResource().results_settings(7)
