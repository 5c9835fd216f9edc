"""The plain-Python statistics against scipy on the same numbers, to 1e-9."""

import math

import pytest
from scipy import stats as scipy_stats

from event_platform.defs.warehouse import stats

TOLERANCE = 1e-9

PROPORTIONS = [
    (10, 100, 15, 100),
    (163, 3304, 223, 3329),
    (1, 10, 0, 7),
    (500_000, 5_000_000, 501_500, 5_000_000),
    (3, 4_000_000, 9, 4_000_000),
]


@pytest.mark.parametrize(("control_x", "control_n", "treatment_x", "treatment_n"), PROPORTIONS)
def test_two_proportion_test_matches_scipy(
    control_x: int, control_n: int, treatment_x: int, treatment_n: int
) -> None:
    result = stats.two_proportion_test(control_x, control_n, treatment_x, treatment_n)
    table = [[control_x, control_n - control_x], [treatment_x, treatment_n - treatment_x]]
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert result.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
    assert result.statistic is not None
    assert result.statistic**2 == pytest.approx(expected.statistic, rel=TOLERANCE)
    p_c, p_t = control_x / control_n, treatment_x / treatment_n
    half = scipy_stats.norm.ppf(0.975) * math.sqrt(
        p_c * (1 - p_c) / control_n + p_t * (1 - p_t) / treatment_n
    )
    assert result.absolute_lift == pytest.approx(p_t - p_c, abs=TOLERANCE)
    assert result.ci_low == pytest.approx(p_t - p_c - half, abs=TOLERANCE)
    assert result.ci_high == pytest.approx(p_t - p_c + half, abs=TOLERANCE)


MEANS = [
    (1.0, 2.0, 10, 1.5, 3.0, 12),
    (0.3, 0.21, 5_000_000, 0.301, 0.22, 5_000_000),
    (5.0, 1.0, 2, 7.0, 40.0, 3),
    (10.0, 100.0, 100_000, 10.2, 130.0, 90_000),
]


@pytest.mark.parametrize(("mean_c", "var_c", "n_c", "mean_t", "var_t", "n_t"), MEANS)
def test_welch_test_matches_scipy(
    mean_c: float, var_c: float, n_c: int, mean_t: float, var_t: float, n_t: int
) -> None:
    result = stats.welch_test(mean_c, var_c, n_c, mean_t, var_t, n_t)
    expected = scipy_stats.ttest_ind_from_stats(
        mean_t, math.sqrt(var_t), n_t, mean_c, math.sqrt(var_c), n_c, equal_var=False
    )
    assert result.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
    assert result.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
    standard_error = math.sqrt(var_c / n_c + var_t / n_t)
    df = standard_error**4 / ((var_c / n_c) ** 2 / (n_c - 1) + (var_t / n_t) ** 2 / (n_t - 1))
    half = scipy_stats.t.ppf(0.975, df) * standard_error
    assert result.ci_low == pytest.approx(mean_t - mean_c - half, abs=TOLERANCE)
    assert result.ci_high == pytest.approx(mean_t - mean_c + half, abs=TOLERANCE)


@pytest.mark.parametrize("df", [1, 1.5, 2, 3, 7.3, 30, 1_000, 1e6, 1e7])
@pytest.mark.parametrize("probability", [0.6, 0.975, 0.9995])
def test_t_quantile_matches_scipy(df: float, probability: float) -> None:
    assert stats.t_quantile(probability, df) == pytest.approx(
        scipy_stats.t.ppf(probability, df), abs=TOLERANCE
    )


@pytest.mark.parametrize("df", [1, 2.5, 10, 1e5, 1e7])
@pytest.mark.parametrize("t", [0.0, 0.5, 2.0, 6.0, 40.0])
def test_t_two_sided_p_matches_scipy(df: float, t: float) -> None:
    assert stats.t_two_sided_p(t, df) == pytest.approx(2 * scipy_stats.t.sf(t, df), abs=TOLERANCE)


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ([5600, 4400], None),
        ([3304, 3329, 3367], None),
        ([100, 130, 90, 101], None),
        ([1, 0], None),
        ([560, 440], [0.56, 0.44]),
        ([70, 20, 10], [7, 2, 1]),
    ],
)
def test_sample_ratio_test_matches_scipy(observed: list[int], weights: list[float] | None) -> None:
    result = stats.sample_ratio_test(observed, weights)
    total = sum(observed)
    expected_counts = None if weights is None else [total * w / sum(weights) for w in weights]
    expected = scipy_stats.chisquare(observed, expected_counts)
    assert result.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
    assert result.degrees_of_freedom == len(observed) - 1


def test_relative_lift_interval_is_the_delta_method() -> None:
    result = stats.two_proportion_test(100, 1000, 130, 1000)
    p_c, p_t = 0.1, 0.13
    standard_error = math.sqrt(p_t * (1 - p_t) / 1000 / p_c**2 + p_t**2 * p_c * (1 - p_c) / 1000 / p_c**4)
    assert result.relative_lift == pytest.approx(0.3)
    assert result.relative_ci_low == pytest.approx(0.3 - scipy_stats.norm.ppf(0.975) * standard_error)


def test_undefined_comparisons_are_none_not_errors() -> None:
    assert stats.two_proportion_test(0, 0, 1, 10) == stats.NO_COMPARISON
    no_variance = stats.two_proportion_test(10, 10, 5, 5)
    assert no_variance.absolute_lift == 0.0
    assert no_variance.p_value is None
    assert stats.two_proportion_test(0, 10, 1, 10).relative_lift is None
    assert stats.welch_test(1.0, 0.0, 5, 1.0, 0.0, 5).p_value is None
    assert stats.sample_ratio_test([0, 0]).p_value == 1.0


def test_sample_ratio_test_refuses_mismatched_weights() -> None:
    with pytest.raises(ValueError, match="one weight per variation"):
        stats.sample_ratio_test([10, 10], [1.0])
