"""The experiment statistics against independent references: statsmodels and scipy where they have the
same estimator, the published formulas (Johari et al. 2017, GrowthBook's confidence sequence) and direct
computations (numerical integration of the mixture, finite-difference gradients, OLS on unit data)
written here."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats
from statsmodels.regression.linear_model import OLS
from statsmodels.stats import proportion
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from event_platform.warehouse import inference
from event_platform.warehouse.inference import (
    Alternative,
    ArmEstimate,
    ArmSums,
    Correction,
    Decision,
    InferenceSettings,
    Method,
    MetricKind,
    MetricRole,
    WinningDirection,
)

PRIMARY, SECONDARY, GUARDRAIL, MONITORING = (
    MetricRole.PRIMARY,
    MetricRole.SECONDARY,
    MetricRole.GUARDRAIL,
    MetricRole.MONITORING,
)
INCREASING, DECREASING = WinningDirection.INCREASING, WinningDirection.DECREASING


def unit_sums(
    y: np.ndarray,
    d: np.ndarray | None = None,
    x: np.ndarray | None = None,
    h: np.ndarray | None = None,
) -> ArmSums:
    """What the warehouse's SQL sums over one arm's units."""
    d = np.zeros_like(y) if d is None else d
    x = np.zeros_like(y) if x is None else x
    h = np.zeros_like(y) if h is None else h
    return ArmSums(
        len(y),
        y.sum(),
        (y * y).sum(),
        d.sum(),
        (d * d).sum(),
        (y * d).sum(),
        x.sum(),
        (x * x).sum(),
        (x * y).sum(),
        h.sum(),
        (h * y).sum(),
    )


def revenue(rng: np.random.Generator, units: int, mean: float) -> np.ndarray:
    """Skewed per-unit values: most units spend nothing."""
    return (rng.random(units) < 0.2) * rng.lognormal(math.log(mean), 1.0, units)


# --- estimates and the delta method ---------------------------------------------------------------


def test_mean_metric_estimate_is_the_mean_and_its_squared_standard_error() -> None:
    rng = np.random.default_rng(1)
    y = revenue(rng, 5_000, 30.0)
    arm = inference.estimate(MetricKind.SUM, unit_sums(y))
    assert arm.units == 5_000
    assert arm.mean == pytest.approx(y.mean(), rel=1e-12)
    assert arm.variance == pytest.approx(y.var(ddof=1) / len(y), rel=1e-9)


def test_conversion_variance_is_p_times_one_minus_p_over_n() -> None:
    arm = inference.estimate(MetricKind.CONVERSION, ArmSums(1_000, 120, 120))
    assert arm.mean == pytest.approx(0.12)
    assert arm.variance == pytest.approx(0.12 * 0.88 / 1_000, rel=1e-12)


def test_ratio_metric_variance_is_the_linearised_ratio_of_the_units() -> None:
    """Delta method from sums against the same estimator computed on the units: Var(y - R d) / (n d̄²)."""
    rng = np.random.default_rng(2)
    sessions = rng.poisson(2.0, 4_000) + 1.0
    minutes = sessions * rng.gamma(2.0, 4.0, 4_000)
    arm = inference.estimate(MetricKind.RATIO, unit_sums(minutes, d=sessions))
    ratio = minutes.sum() / sessions.sum()
    linearised = minutes - ratio * sessions
    assert arm.mean == pytest.approx(ratio, rel=1e-12)
    assert arm.variance == pytest.approx(
        linearised.var(ddof=1) / (len(minutes) * sessions.mean() ** 2), rel=1e-9
    )


def numerical_gradient(function: Callable[[np.ndarray], float], point: np.ndarray) -> np.ndarray:
    """Central differences with a step of a millionth of each coordinate."""
    steps = 1e-6 * np.abs(point)
    return np.array(
        [
            (function(point + unit * step) - function(point - unit * step)) / (2 * step)
            for unit, step in zip(np.eye(len(point)), steps, strict=True)
        ]
    )


def test_ratio_metric_variance_matches_a_numerical_gradient_delta_method() -> None:
    rng = np.random.default_rng(3)
    orders = rng.poisson(1.5, 3_000).astype(float)
    spend = orders * rng.lognormal(3.0, 0.5, 3_000)
    arm = inference.estimate(MetricKind.RATIO, unit_sums(spend, d=orders))
    covariance_of_means = np.cov(np.vstack([spend, orders]), ddof=1) / len(spend)
    gradient = numerical_gradient(lambda means: means[0] / means[1], np.array([spend.mean(), orders.mean()]))
    assert arm.variance == pytest.approx(gradient @ covariance_of_means @ gradient, rel=1e-6)


def test_relative_lift_variance_matches_a_numerical_gradient_delta_method() -> None:
    control = ArmEstimate(2_000, 4.0, 0.01)
    treatment = ArmEstimate(2_100, 4.6, 0.02)
    result = inference.lift(control, treatment)
    covariance = np.diag([treatment.variance, control.variance])  # arms are independent
    gradient = numerical_gradient(
        lambda means: means[0] / means[1] - 1.0, np.array([treatment.mean, control.mean])
    )
    assert result.relative == pytest.approx(0.15)
    assert result.relative_variance == pytest.approx(gradient @ covariance @ gradient, rel=1e-6)
    assert result.absolute == pytest.approx(0.6)
    assert result.variance == pytest.approx(0.03)
    assert result.units == 4_100


def test_delta_method_variances_match_the_spread_of_repeated_experiments() -> None:
    """Monte Carlo: over 2,000 simulated experiments the reported variances of a ratio and of a relative
    lift (the control's uncertainty included) equal the estimates' actual spread."""
    rng = np.random.default_rng(4)
    experiments, units = 2_000, 1_000
    denominators = rng.poisson(2.0, (experiments, 2, units)) + 1.0
    numerators = denominators * rng.gamma(2.0, 1.0, (experiments, 2, units))
    numerators[:, 1] *= 1.1
    arms = [
        inference.estimate(
            MetricKind.RATIO,
            ArmSums(
                units,
                numerators[:, a].sum(-1),
                (numerators[:, a] ** 2).sum(-1),
                denominators[:, a].sum(-1),
                (denominators[:, a] ** 2).sum(-1),
                (numerators[:, a] * denominators[:, a]).sum(-1),
            ),
        )
        for a in (0, 1)
    ]
    result = inference.lift(arms[0], arms[1])
    assert np.mean(arms[0].variance) == pytest.approx(np.var(arms[0].mean), rel=0.08)
    assert np.mean(result.relative_variance) == pytest.approx(np.var(result.relative), rel=0.08)


# --- fixed-horizon tests against scipy and statsmodels --------------------------------------------


def two_arms(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return revenue(rng, 800, 20.0), revenue(rng, 650, 24.0)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_welch_matches_scipy_and_statsmodels(seed: int) -> None:
    control, treatment = two_arms(seed)
    arms = [inference.estimate(MetricKind.SUM, unit_sums(values)) for values in (control, treatment)]
    result = inference.infer(inference.lift(*arms), InferenceSettings(method=Method.FIXED_WELCH))
    reference = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    compared = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    assert (result.ci_low, result.ci_high) == pytest.approx(
        compared.tconfint_diff(usevar="unequal"), rel=1e-9
    )


@pytest.mark.parametrize("alternative", list(Alternative))
def test_one_sided_welch_matches_scipy(alternative: Alternative) -> None:
    control, treatment = two_arms(8)
    arms = [inference.estimate(MetricKind.SUM, unit_sums(values)) for values in (control, treatment)]
    result = inference.fixed_horizon(inference.lift(*arms), 0.05, alternative, welch=True)
    reference = scipy_stats.ttest_ind(treatment, control, equal_var=False, alternative=alternative.value)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_z_test_matches_statsmodels() -> None:
    control, treatment = two_arms(9)
    arms = [inference.estimate(MetricKind.SUM, unit_sums(values)) for values in (control, treatment)]
    result = inference.infer(inference.lift(*arms), InferenceSettings(method=Method.FIXED_Z, alpha=0.1))
    compared = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, p_value = compared.ztest_ind(usevar="unequal")
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        compared.zconfint_diff(alpha=0.1, usevar="unequal"), rel=1e-9
    )


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((163, 3_304), (223, 3_329)), ((10, 100), (15, 100)), ((500_000, 5_000_000), (501_500, 5_000_000))],
)
def test_conversion_z_test_matches_statsmodels_wald(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    arms = [
        inference.estimate(MetricKind.CONVERSION, ArmSums(units, conversions, conversions))
        for conversions, units in (control, treatment)
    ]
    result = inference.infer(inference.lift(*arms), InferenceSettings(method=Method.FIXED_Z))
    reference = proportion.test_proportions_2indep(*treatment, *control, method="wald", compare="diff")
    low, high = proportion.confint_proportions_2indep(*treatment, *control, method="wald", compare="diff")
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)


# --- the mixture SPRT -----------------------------------------------------------------------------


def test_mixing_ratio_is_growthbooks_rho_squared() -> None:
    """GrowthBook's docs: rho = sqrt((-2 log(alpha) + log(-2 log(alpha) + 1)) / N*)."""
    rho = math.sqrt((-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 5_000)
    assert inference.mixing_ratio(0.05, 5_000) == pytest.approx(rho**2, rel=1e-12)


def test_always_valid_p_value_matches_johari_et_al_balanced_formula() -> None:
    """Johari et al. (2017) for n units per arm, per-unit variance s2 and mixing variance t2:
    Lambda = sqrt(2 s2 / (2 s2 + n t2)) exp(n^2 t2 D^2 / (4 s2 (2 s2 + n t2)))."""
    n, sigma2, difference = 4_000, 2.5, 0.09
    settings = InferenceSettings(tuning_units=20_000)
    comparison = inference.lift(ArmEstimate(n, 1.0, sigma2 / n), ArmEstimate(n, 1.0 + difference, sigma2 / n))
    tau2 = inference.mixing_variance(comparison, settings)
    likelihood_ratio = math.sqrt(2 * sigma2 / (2 * sigma2 + n * tau2)) * math.exp(
        n**2 * tau2 * difference**2 / (4 * sigma2 * (2 * sigma2 + n * tau2))
    )
    result = inference.infer(comparison, settings)
    assert result.p_value == pytest.approx(1 / likelihood_ratio, rel=1e-9)


def mixture_likelihood_ratio(estimate: float, variance: float, tau2: float, lower: float) -> float:
    """The mSPRT's statistic by integration: the likelihood ratio of the estimate under theta against
    theta = 0, averaged over the mixing density (normal, or half-normal above `lower` = 0)."""
    half_normal = lower == 0.0
    spread = math.sqrt(variance * tau2 / (variance + tau2))
    centre = estimate * tau2 / (variance + tau2)

    def integrand(theta: float) -> float:
        density = scipy_stats.norm.pdf(theta, scale=math.sqrt(tau2)) * (2.0 if half_normal else 1.0)
        return math.exp((2 * theta * estimate - theta**2) / (2 * variance)) * density

    start = max(lower, centre - 40 * spread)
    value, _ = integrate.quad(integrand, start, centre + 40 * spread, epsabs=0, epsrel=1e-11, limit=200)
    return value


@pytest.mark.parametrize("difference", [0.0, 0.02, -0.05, 0.11])
def test_always_valid_p_values_match_the_mixture_integrated_numerically(difference: float) -> None:
    control = ArmEstimate(9_000, 0.3, 0.0004)
    treatment = ArmEstimate(8_500, 0.3 + difference, 0.0005)
    comparison = inference.lift(control, treatment)
    settings = InferenceSettings()
    tau2 = float(inference.mixing_variance(comparison, settings))
    variance = float(comparison.variance)
    two_sided = inference.infer(comparison, settings)
    assert two_sided.p_value == pytest.approx(
        min(1.0, 1 / mixture_likelihood_ratio(difference, variance, tau2, -math.inf)), rel=1e-7
    )
    greater = inference.infer(comparison, settings, Alternative.GREATER)
    assert greater.p_value == pytest.approx(
        min(1.0, 1 / mixture_likelihood_ratio(difference, variance, tau2, 0.0)), rel=1e-7
    )
    less = inference.infer(comparison, settings, Alternative.LESS)
    assert less.p_value == pytest.approx(
        min(1.0, 1 / mixture_likelihood_ratio(-difference, variance, tau2, 0.0)), rel=1e-7
    )


def test_confidence_sequence_is_the_set_the_mixture_does_not_reject() -> None:
    """At either end of the interval the mSPRT of 'the lift equals this value' sits exactly at alpha."""
    control = ArmEstimate(30_000, 0.10, 0.1 * 0.9 / 30_000)
    treatment = ArmEstimate(30_000, 0.106, 0.106 * 0.894 / 30_000)
    comparison = inference.lift(control, treatment)
    settings = InferenceSettings(alpha=0.1)
    result = inference.infer(comparison, settings)
    for bound in (result.ci_low, result.ci_high):
        shifted = inference.Lift(
            comparison.absolute - bound,
            comparison.variance,
            comparison.relative,
            comparison.relative_variance,
            comparison.units,
            comparison.degrees_of_freedom,
        )
        assert inference.infer(shifted, settings).p_value == pytest.approx(0.1, rel=1e-9)


def test_confidence_sequence_matches_growthbooks_published_interval() -> None:
    """GrowthBook: mu ± sigma sqrt(N) sqrt(2 (N rho^2 + 1) / (N^2 rho^2) log(sqrt(N rho^2 + 1) / alpha)),
    sigma the estimate's standard error and N both arms' units; for the relative lift too."""
    comparison = inference.lift(ArmEstimate(6_000, 2.0, 0.0009), ArmEstimate(5_000, 2.1, 0.0012))
    settings = InferenceSettings(tuning_units=5_000)
    result = inference.infer(comparison, settings)
    n, rho2 = 11_000, inference.mixing_ratio(0.05, 5_000)
    factor = math.sqrt(n) * math.sqrt(
        2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / 0.05)
    )
    half = math.sqrt(comparison.variance) * factor
    assert (result.ci_low, result.ci_high) == pytest.approx((0.1 - half, 0.1 + half), rel=1e-9)
    relative_half = math.sqrt(comparison.relative_variance) * factor
    assert (result.relative_ci_low, result.relative_ci_high) == pytest.approx(
        (0.05 - relative_half, 0.05 + relative_half), rel=1e-9
    )


def test_sequential_state_carries_the_running_minimum_and_intersection() -> None:
    settings = InferenceSettings()
    state = inference.FIRST_LOOK
    for difference, variance in [(0.012, 0.00002), (0.004, 0.00001), (0.009, 0.000006)]:
        arms = [ArmEstimate(10_000, 0.1, variance / 2), ArmEstimate(10_000, 0.1 + difference, variance / 2)]
        comparison = inference.lift(*arms)
        this_look = inference.infer(comparison, settings)
        new = inference.infer(comparison, settings, previous=state)
        assert new.p_value == min(state.p_value, this_look.p_value)
        assert (new.ci_low, new.ci_high) == (
            max(state.ci_low, this_look.ci_low),
            min(state.ci_high, this_look.ci_high),
        )
        state = new
    # A look without data leaves the state as the look before left it.
    undefined = inference.lift(ArmEstimate(0, math.nan, math.nan), ArmEstimate(0, math.nan, math.nan))
    assert inference.infer(undefined, settings, previous=state) == state


def test_fixed_horizon_ignores_the_previous_look() -> None:
    comparison = inference.lift(ArmEstimate(500, 1.0, 0.01), ArmEstimate(500, 1.2, 0.01))
    settings = InferenceSettings(method=Method.FIXED_Z)
    stale = inference.Inference(1e-9, 0.5, 0.6, 0.5, 0.6)
    assert inference.infer(comparison, settings, previous=stale) == inference.infer(comparison, settings)


def test_sequential_stays_valid_under_peeking_where_the_fixed_test_does_not() -> None:
    """4,000 null experiments looked at 60 times: the always-valid test rejects at most alpha of them,
    the fixed-horizon test repeated at every look several times more."""
    rng = np.random.default_rng(10)
    experiments, looks, per_look, sigma = 4_000, 60, 500, 1.0
    draws = rng.normal(0.0, sigma / math.sqrt(per_look), (experiments, looks, 2))
    units = per_look * np.arange(1, looks + 1)
    means = np.cumsum(draws, axis=1) / np.arange(1, looks + 1)[None, :, None]
    state = inference.FIRST_LOOK
    settings = InferenceSettings(tuning_units=20_000)
    fixed_rejected = np.zeros(experiments, dtype=bool)
    for look in range(looks):
        arms = [ArmEstimate(units[look], means[:, look, a], sigma**2 / units[look]) for a in (0, 1)]
        comparison = inference.lift(*arms)
        state = inference.infer(comparison, settings, previous=state)
        fixed_rejected |= inference.fixed_horizon(comparison, 0.05).p_value < 0.05
    sequential_rate = np.mean(state.p_value < 0.05)
    assert sequential_rate <= 0.05
    assert np.mean(fixed_rejected) > 3 * 0.05


# --- false discovery rate -------------------------------------------------------------------------


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(11)
    p_values = rng.beta(0.4, 1.0, (500, 7))
    adjusted = inference.correct(p_values, [SECONDARY] * 7)
    np.testing.assert_allclose(adjusted, scipy_stats.false_discovery_control(p_values, axis=-1), rtol=1e-12)


def test_benjamini_hochberg_leaves_undefined_tests_out_of_the_family() -> None:
    p_values = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.2])
    adjusted = inference.correct(p_values, [SECONDARY] * 6)
    defined = ~np.isnan(p_values)
    assert np.isnan(adjusted[~defined]).all()
    np.testing.assert_allclose(adjusted[defined], scipy_stats.false_discovery_control(p_values[defined]))


def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(12)
    for p_values in rng.beta(0.5, 1.0, (50, 6)):
        expected = multipletests(p_values, method="holm")[1]
        np.testing.assert_allclose(
            inference.correct(p_values, [SECONDARY] * 6, Correction.HOLM), expected, rtol=1e-12
        )
    with_missing = np.array([0.02, np.nan, 0.001, 0.3])
    np.testing.assert_allclose(
        inference.correct(with_missing, [SECONDARY] * 4, Correction.HOLM)[[0, 2, 3]],
        multipletests(with_missing[[0, 2, 3]], method="holm")[1],
    )


def test_tiers_correct_the_primary_alone_guardrails_with_secondaries_and_monitoring_apart() -> None:
    roles = [PRIMARY, SECONDARY, GUARDRAIL, SECONDARY, MONITORING, MONITORING, PRIMARY]
    p_values = np.array([0.03, 0.01, 0.02, 0.04, 0.001, 0.5, 0.01])
    adjusted = inference.correct(p_values, roles)
    np.testing.assert_allclose(adjusted[[0, 6]], scipy_stats.false_discovery_control(p_values[[0, 6]]))
    np.testing.assert_allclose(adjusted[[1, 2, 3]], scipy_stats.false_discovery_control(p_values[[1, 2, 3]]))
    np.testing.assert_allclose(adjusted[[4, 5]], scipy_stats.false_discovery_control(p_values[[4, 5]]))
    # Many monitoring metrics do not move the primary or the secondaries.
    more = inference.correct(np.append(p_values, [0.9] * 20), roles + [MONITORING] * 20)
    np.testing.assert_allclose(more[:4], adjusted[:4])


def test_adjusted_p_values_never_rise_when_the_always_valid_ones_do_not() -> None:
    rng = np.random.default_rng(13)
    looks = np.minimum.accumulate(rng.random((200, 30, 5)), axis=1)
    adjusted = inference.correct(looks, [PRIMARY, SECONDARY, SECONDARY, GUARDRAIL, MONITORING])
    assert (np.diff(adjusted, axis=1) <= 1e-15).all()


def test_correct_rejects_mismatched_roles_and_impossible_p_values() -> None:
    with pytest.raises(ValueError, match="one role per test"):
        inference.correct([0.1, 0.2], [PRIMARY])
    with pytest.raises(ValueError, match="between 0 and 1"):
        inference.correct([0.1, 1.2], [PRIMARY, SECONDARY])


# --- CUPED ----------------------------------------------------------------------------------------


def cuped_experiment(seed: int, history_share: float, effect: float = 0.3) -> tuple[list[ArmSums], dict]:
    rng = np.random.default_rng(seed)
    sums, columns = [], {"y": [], "treated": [], "x": [], "h": []}
    for arm, units in enumerate((6_000, 5_000)):
        h = (rng.random(units) < history_share).astype(float)
        before = rng.gamma(2.0, 3.0, units)
        x = before * h
        # New units (no history) differ in level: the indicator absorbs it.
        y = 2.0 + 0.7 * x + 1.5 * (1 - h) + effect * arm + rng.normal(0, 2.0, units)
        sums.append(unit_sums(y, x=x, h=h))
        for name, values in (("y", y), ("treated", np.full(units, arm)), ("x", x), ("h", h)):
            columns[name].append(values)
    return sums, {name: np.concatenate(values) for name, values in columns.items()}


def test_cuped_equals_ols_with_the_history_indicator() -> None:
    sums, data = cuped_experiment(14, history_share=0.7)
    adjustment = inference.cuped(MetricKind.SUM, sums)
    design = np.column_stack([np.ones_like(data["y"]), data["treated"], data["x"], data["h"]])
    fit = OLS(data["y"], design).fit(cov_type="HC1")
    comparison = inference.lift(*adjustment.arms)
    assert adjustment.theta == pytest.approx(fit.params[2], rel=1e-9)
    assert adjustment.theta_history == pytest.approx(fit.params[3], rel=1e-9)
    assert comparison.absolute == pytest.approx(fit.params[1], rel=1e-9)
    # CUPED treats theta as known; the regression's robust error differs by O(1/n).
    assert math.sqrt(comparison.variance) == pytest.approx(fit.bse[1], rel=0.01)


def test_cuped_without_missing_history_is_deng_et_als_theta() -> None:
    sums, data = cuped_experiment(15, history_share=1.0)
    adjustment = inference.cuped(MetricKind.SUM, sums)
    treated = data["treated"] == 1
    within = [(data["x"][group], data["y"][group]) for group in (~treated, treated)]
    covariance = sum(np.cov(x, y, ddof=0)[0, 1] * len(x) for x, y in within)
    variance = sum(x.var() * len(x) for x, _ in within)
    assert adjustment.theta == pytest.approx(covariance / variance, rel=1e-9)
    assert adjustment.theta_history == 0.0
    rho = np.corrcoef(data["x"][~treated], data["y"][~treated])[0, 1]
    assert adjustment.variance_reduction == pytest.approx(rho**2, abs=0.02)


def test_cuped_without_any_history_changes_nothing() -> None:
    sums, _ = cuped_experiment(16, history_share=0.0)
    adjustment = inference.cuped(MetricKind.SUM, sums)
    plain = [inference.estimate(MetricKind.SUM, arm) for arm in sums]
    assert adjustment.theta == 0.0
    assert adjustment.theta_history == 0.0
    assert adjustment.variance_reduction == pytest.approx(0.0, abs=1e-12)
    for adjusted, unadjusted in zip(adjustment.arms, plain, strict=True):
        assert adjusted.mean == pytest.approx(unadjusted.mean, rel=1e-12)
        assert adjusted.variance == pytest.approx(unadjusted.variance, rel=1e-12)


def test_cuped_conversion_metric_equals_ols_on_binary_units() -> None:
    rng = np.random.default_rng(17)
    sums, ys, xs, hs, treated = [], [], [], [], []
    for arm in (0, 1):
        h = (rng.random(20_000) < 0.6).astype(float)
        x = (rng.random(20_000) < 0.2).astype(float) * h
        y = (rng.random(20_000) < 0.05 + 0.3 * x + 0.01 * arm).astype(float)
        sums.append(unit_sums(y, x=x, h=h))
        ys.append(y), xs.append(x), hs.append(h), treated.append(np.full(20_000, arm))
    adjustment = inference.cuped(MetricKind.CONVERSION, sums)
    design = np.column_stack(
        [np.ones(40_000), np.concatenate(treated), np.concatenate(xs), np.concatenate(hs)]
    )
    fit = OLS(np.concatenate(ys), design).fit()
    assert inference.lift(*adjustment.arms).absolute == pytest.approx(fit.params[1], rel=1e-9)
    assert adjustment.theta == pytest.approx(fit.params[2], rel=1e-9)
    assert adjustment.variance_reduction > 0.0


def test_cuped_refuses_ratio_metrics() -> None:
    with pytest.raises(ValueError, match="ratio metric unadjusted"):
        inference.cuped(MetricKind.RATIO, [ArmSums(10, 5, 5)])


# --- edge cases -----------------------------------------------------------------------------------


def test_zero_units_give_nan_and_leave_the_sequential_state_alone() -> None:
    empty = inference.estimate(MetricKind.SUM, ArmSums(0, 0.0, 0.0))
    assert math.isnan(empty.mean) and math.isnan(empty.variance)
    comparison = inference.lift(empty, inference.estimate(MetricKind.SUM, ArmSums(10, 5.0, 7.0)))
    assert math.isnan(comparison.absolute)
    state = inference.Inference(0.2, -1.0, 2.0, -0.5, 0.5)
    assert inference.infer(comparison, InferenceSettings(), previous=state) == state
    assert math.isnan(inference.fixed_horizon(comparison, 0.05).p_value)
    verdict = inference.decide(PRIMARY, INCREASING, comparison.absolute, math.nan, 0.05)
    assert verdict is Decision.INCONCLUSIVE
    assert inference.decide(GUARDRAIL, DECREASING, None, None, 0.05) is Decision.INCONCLUSIVE
    assert math.isnan(inference.estimate(MetricKind.RATIO, ArmSums(0, 0.0, 0.0)).mean)


def test_one_unit_has_a_mean_but_no_sample_variance() -> None:
    single = inference.estimate(MetricKind.COUNT, ArmSums(1, 3.0, 9.0))
    assert single.mean == 3.0
    assert math.isnan(single.variance)


def test_zero_variance_has_no_inference() -> None:
    nobody = inference.estimate(MetricKind.CONVERSION, ArmSums(1_000, 0, 0))
    everybody = inference.estimate(MetricKind.CONVERSION, ArmSums(1_000, 1_000, 1_000))
    assert nobody.variance == 0.0
    for control, treatment in ((nobody, nobody), (nobody, everybody)):
        comparison = inference.lift(control, treatment)
        fixed = inference.fixed_horizon(comparison, 0.05)
        assert math.isnan(fixed.p_value) and math.isnan(fixed.ci_low)
        assert inference.infer(comparison, InferenceSettings()) == inference.FIRST_LOOK


def test_control_mean_zero_has_no_relative_lift_but_an_absolute_one() -> None:
    comparison = inference.lift(ArmEstimate(100, 0.0, 0.0), ArmEstimate(100, 0.2, 0.0016))
    assert comparison.absolute == pytest.approx(0.2)
    assert math.isnan(comparison.relative) and math.isnan(comparison.relative_variance)
    result = inference.infer(comparison, InferenceSettings(method=Method.FIXED_Z))
    assert result.p_value < 0.001
    assert math.isnan(result.relative_ci_low)


def test_one_arm_has_estimates_but_no_comparison_or_allocation_test() -> None:
    sums, _ = cuped_experiment(18, history_share=0.5)
    adjustment = inference.cuped(MetricKind.SUM, sums[:1])
    assert len(adjustment.arms) == 1
    assert adjustment.variance_reduction > 0.0
    only = inference.sample_ratio_test([5_000])
    assert math.isnan(only.p_value) and not only.mismatch
    assert inference.correct([0.03], [PRIMARY])[0] == 0.03


# --- decisions and the sample-ratio test ----------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "direction", "lift", "p_value", "expected"),
    [
        (PRIMARY, INCREASING, 0.1, 0.01, Decision.WINNER),
        (PRIMARY, INCREASING, -0.1, 0.01, Decision.LOSER),
        (PRIMARY, DECREASING, -0.1, 0.01, Decision.WINNER),
        (SECONDARY, DECREASING, 0.1, 0.01, Decision.LOSER),
        (PRIMARY, INCREASING, 0.1, 0.05, Decision.INCONCLUSIVE),
        (GUARDRAIL, INCREASING, -0.1, 0.01, Decision.GUARDRAIL_HARMED),
        (GUARDRAIL, DECREASING, 0.1, 0.01, Decision.GUARDRAIL_HARMED),
        (GUARDRAIL, INCREASING, 0.1, 0.01, Decision.INCONCLUSIVE),
        (MONITORING, INCREASING, 0.1, 0.001, Decision.WINNER),
    ],
)
def test_decide(
    role: MetricRole, direction: WinningDirection, lift: float, p_value: float, expected: Decision
) -> None:
    assert inference.decide(role, direction, lift, p_value, 0.05) is expected
    mismatch = inference.decide(role, direction, lift, p_value, 0.05, sample_ratio_mismatch=True)
    assert mismatch is Decision.SAMPLE_RATIO_MISMATCH


def test_decide_works_on_arrays() -> None:
    verdicts = inference.decide(
        PRIMARY, INCREASING, np.array([0.1, -0.1, 0.1]), np.array([0.01, 0.01, 0.2]), 0.05
    )
    assert list(verdicts) == [Decision.WINNER, Decision.LOSER, Decision.INCONCLUSIVE]


def test_guardrails_are_tested_for_harm_only() -> None:
    assert inference.alternative_for(GUARDRAIL, INCREASING) is Alternative.LESS
    assert inference.alternative_for(GUARDRAIL, DECREASING) is Alternative.GREATER
    assert inference.alternative_for(PRIMARY, DECREASING) is Alternative.TWO_SIDED


def test_sample_ratio_test_matches_scipy_chisquare() -> None:
    result = inference.sample_ratio_test([5_000, 5_210, 4_950], weights=[1, 1, 1])
    reference = scipy_stats.chisquare([5_000, 5_210, 4_950])
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert not result.mismatch
    skewed = inference.sample_ratio_test([9_000, 1_200], weights=[0.9, 0.1])
    assert skewed.p_value == pytest.approx(scipy_stats.chisquare([9_000, 1_200], [9_180, 1_020]).pvalue)
    assert skewed.mismatch
    assert not inference.sample_ratio_test([0, 0]).mismatch


def test_sample_ratio_test_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="one weight per variation"):
        inference.sample_ratio_test([10, 12], weights=[1.0])
    with pytest.raises(ValueError, match="must be positive"):
        inference.sample_ratio_test([10, 12], weights=[1.0, 0.0])


def test_settings_reject_impossible_values() -> None:
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        InferenceSettings(alpha=1.5)
    with pytest.raises(ValueError, match="tuning_units must be a positive"):
        InferenceSettings(tuning_units=0)
