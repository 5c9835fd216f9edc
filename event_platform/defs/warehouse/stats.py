"""The statistics behind experiment results, in plain Python so the runtime needs no scipy.

Every function takes counts or summary statistics (what DuckDB aggregates) and matches scipy on the
same numbers to 1e-9 (`event_platform_tests/defs/warehouse/test_stats.py` compares them):
- rates: two-proportion z-test (pooled standard error for the test, unpooled Wald interval), the same
  p-value as `scipy.stats.chi2_contingency(table, correction=False)`;
- means: Welch's t-test with the Welch-Satterthwaite degrees of freedom, as
  `scipy.stats.ttest_ind_from_stats(..., equal_var=False)`;
- allocation: chi-square goodness of fit against expected shares, as `scipy.stats.chisquare`;
- ratios of sums (revenue per order): the delta method's variance of each variation's ratio, and a
  z-test of their difference (as GrowthBook and Eppo analyse ratio metrics).
The relative lift's interval is the delta method's (the control's own uncertainty included).
Special functions: the regularized incomplete beta (Student t) and gamma (chi-square) functions by
Lentz's continued fractions (Numerical Recipes §6.2, §6.4), log-beta as R's `lbeta` so a million
degrees of freedom keep full precision; the normal quantile is the stdlib's (Wichura's AS241).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()
_EPSILON = 1e-16
_TINY = 1e-300
_MAX_ITERATIONS = 1_000_000
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Comparison:
    """A treatment against the control: the lift, its interval and the two-sided test.

    Fields are None where the data cannot define them (no units, a control rate of zero, no variance).
    """

    absolute_lift: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None
    statistic: float | None
    p_value: float | None


@dataclass(frozen=True)
class GoodnessOfFit:
    statistic: float
    p_value: float
    degrees_of_freedom: int


NO_COMPARISON = Comparison(None, None, None, None, None, None, None, None)


# --- special functions ----------------------------------------------------------------------------


def _continued_fraction(first: float, term: Callable[[int], tuple[float, float]]) -> float:
    """b0 + a1/(b1 + a2/(b2 + ...)) by the modified Lentz method; `term(m)` gives (a_m, b_m)."""
    value = first if first != 0.0 else _TINY
    c, d = value, 0.0
    for m in range(1, _MAX_ITERATIONS):
        a, b = term(m)
        d = b + a * d
        d = 1.0 / (d if d != 0.0 else _TINY)
        c = b + a / c
        c = c if c != 0.0 else _TINY
        delta = c * d
        value *= delta
        if abs(delta - 1.0) < _EPSILON:
            return value
    raise ArithmeticError("continued fraction did not converge")


def _stirling_correction(x: float) -> float:
    """lgamma(x) - ((x - 0.5) log x - x + log sqrt(2 pi)) for x >= 10 (Stirling's series)."""
    inverse_square = 1.0 / (x * x)
    series = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
    total = 0.0
    for coefficient in reversed(series):
        total = total * inverse_square + coefficient
    return total / x


def log_beta(a: float, b: float) -> float:
    """log B(a, b) without the cancellation of lgamma differences when an argument is large (R's lbeta)."""
    p, q = min(a, b), max(a, b)
    if p >= 10.0:
        correction = _stirling_correction(p) + _stirling_correction(q) - _stirling_correction(p + q)
        return (
            -0.5 * math.log(q)
            + _LOG_SQRT_2PI
            + correction
            + (p - 0.5) * math.log(p / (p + q))
            + q * math.log1p(-p / (p + q))
        )
    if q >= 10.0:
        correction = _stirling_correction(q) - _stirling_correction(p + q)
        return math.lgamma(p) + correction + p - p * math.log(p + q) + (q - 0.5) * math.log1p(-p / (p + q))
    return math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)


def regularized_beta(a: float, b: float, x: float, one_minus_x: float | None = None) -> float:
    """I_x(a, b). Pass `one_minus_x` when 1 - x would lose digits to cancellation."""
    y = 1.0 - x if one_minus_x is None else one_minus_x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    # The fraction converges fast only below the mean; above it use I_x(a, b) = 1 - I_{1-x}(b, a).
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - regularized_beta(b, a, y, x)
    # Near 1, log1p of the small complement keeps the digits that log(x) would round away.
    log_x = math.log1p(-y) if x > 0.5 else math.log(x)
    log_y = math.log1p(-x) if y > 0.5 else math.log(y)
    log_front = a * log_x + b * log_y - log_beta(a, b)

    def term(m: int) -> tuple[float, float]:
        k = m // 2
        if m % 2 == 0:
            return k * (b - k) * x / ((a + 2 * k - 1) * (a + 2 * k)), 1.0
        return -(a + k) * (a + b + k) * x / ((a + 2 * k) * (a + 2 * k + 1)), 1.0

    return math.exp(log_front) / (a * _continued_fraction(1.0, term))


def regularized_gamma_upper(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a), the chi-square survival function's core."""
    if x <= 0.0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term, total, shape = 1.0 / a, 1.0 / a, a
        while abs(term) > abs(total) * _EPSILON:
            shape += 1.0
            term *= x / shape
            total += term
        return 1.0 - total * math.exp(log_front)
    fraction = _continued_fraction(x + 1.0 - a, lambda m: (-m * (m - a), x + 2.0 * m + 1.0 - a))
    return math.exp(log_front) / fraction


# --- distributions --------------------------------------------------------------------------------


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|), by erfc so that tiny p-values keep their digits."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def normal_quantile(probability: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(probability)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` (possibly fractional) degrees of freedom."""
    square = t * t
    return regularized_beta(df / 2.0, 0.5, df / (df + square), square / (df + square))


def t_quantile(probability: float, df: float) -> float:
    """The `probability` quantile (> 0.5) of Student's t: Newton's method on the CDF, kept in a bracket."""
    if not 0.5 < probability < 1.0:
        raise ValueError("t_quantile takes a probability in (0.5, 1)")
    tail = 1.0 - probability
    log_density_constant = math.lgamma(0.5) - log_beta(df / 2.0, 0.5) - 0.5 * math.log(df * math.pi)

    def excess_tail(t: float) -> float:  # upper tail at t minus the target: decreasing in t
        return 0.5 * t_two_sided_p(t, df) - tail

    low, high = 0.0, max(1.0, normal_quantile(probability))
    while excess_tail(high) > 0.0:
        low, high = high, high * 2.0
    t = min(max(normal_quantile(probability), low), high)
    for _ in range(200):
        excess = excess_tail(t)
        if excess > 0.0:
            low = t
        else:
            high = t
        density = math.exp(log_density_constant - (df + 1.0) / 2.0 * math.log1p(t * t / df))
        step = excess / density
        candidate = t + step
        if not low < candidate < high:
            candidate = (low + high) / 2.0
        if abs(candidate - t) <= 1e-15 * max(1.0, abs(t)):
            return candidate
        t = candidate
    return t


def chi_square_survival(statistic: float, degrees_of_freedom: int) -> float:
    return regularized_gamma_upper(degrees_of_freedom / 2.0, statistic / 2.0)


# --- tests ----------------------------------------------------------------------------------------


def _relative(
    difference: float,
    control: float,
    variance_control: float,
    variance_treatment: float,
    critical: float,
    treatment: float,
) -> tuple[float | None, float | None, float | None]:
    """Relative lift treatment/control - 1 with the delta method's interval."""
    if control == 0.0:
        return None, None, None
    relative = difference / control
    standard_error = math.sqrt(variance_treatment / control**2 + treatment**2 * variance_control / control**4)
    return relative, relative - critical * standard_error, relative + critical * standard_error


def two_proportion_test(
    control_conversions: int,
    control_units: int,
    treatment_conversions: int,
    treatment_units: int,
    confidence: float = 0.95,
) -> Comparison:
    """Rate difference treatment - control: pooled z-test, unpooled (Wald) interval."""
    if control_units == 0 or treatment_units == 0:
        return NO_COMPARISON
    rate_control = control_conversions / control_units
    rate_treatment = treatment_conversions / treatment_units
    difference = rate_treatment - rate_control
    variance_control = rate_control * (1.0 - rate_control) / control_units
    variance_treatment = rate_treatment * (1.0 - rate_treatment) / treatment_units
    critical = normal_quantile(0.5 + confidence / 2.0)
    half_width = critical * math.sqrt(variance_control + variance_treatment)
    pooled = (control_conversions + treatment_conversions) / (control_units + treatment_units)
    pooled_error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / control_units + 1.0 / treatment_units))
    z = difference / pooled_error if pooled_error > 0.0 else None
    relative = _relative(
        difference, rate_control, variance_control, variance_treatment, critical, rate_treatment
    )
    return Comparison(
        difference,
        difference - half_width,
        difference + half_width,
        *relative,
        z,
        normal_two_sided_p(z) if z is not None else None,
    )


def welch_test(
    control_mean: float,
    control_variance: float,
    control_units: int,
    treatment_mean: float,
    treatment_variance: float,
    treatment_units: int,
    confidence: float = 0.95,
) -> Comparison:
    """Mean difference treatment - control: Welch's t-test and interval (sample variances, ddof=1)."""
    if control_units < 2 or treatment_units < 2:
        return NO_COMPARISON
    difference = treatment_mean - control_mean
    share_control = control_variance / control_units
    share_treatment = treatment_variance / treatment_units
    variance = share_control + share_treatment
    if variance <= 0.0:
        return Comparison(difference, difference, difference, *((None,) * 5))
    standard_error = math.sqrt(variance)
    df = variance**2 / (share_control**2 / (control_units - 1) + share_treatment**2 / (treatment_units - 1))
    t = difference / standard_error
    critical = t_quantile(0.5 + confidence / 2.0, df)
    relative = _relative(difference, control_mean, share_control, share_treatment, critical, treatment_mean)
    return Comparison(
        difference,
        difference - critical * standard_error,
        difference + critical * standard_error,
        *relative,
        t,
        t_two_sided_p(t, df),
    )


@dataclass(frozen=True)
class RatioSums:
    """One variation's sums over units of a ratio metric's numerator x and denominator y (units without
    events contribute zeros, so only the sums are needed)."""

    units: int
    sum_x: float
    sum_xx: float
    sum_y: float
    sum_yy: float
    sum_xy: float

    @property
    def ratio(self) -> float | None:
        return self.sum_x / self.sum_y if self.sum_y else None

    def ratio_variance(self) -> float | None:
        """Var(sum x / sum y) by the delta method: (s_xx/ȳ² - 2 x̄ s_xy/ȳ³ + x̄² s_yy/ȳ⁴) / n, with the
        sample (co)variances s of per-unit x and y."""
        n = self.units
        if n < 2 or not self.sum_y:
            return None
        mean_x, mean_y = self.sum_x / n, self.sum_y / n
        var_x = (self.sum_xx - n * mean_x * mean_x) / (n - 1)
        var_y = (self.sum_yy - n * mean_y * mean_y) / (n - 1)
        cov_xy = (self.sum_xy - n * mean_x * mean_y) / (n - 1)
        variance = (var_x / mean_y**2 - 2 * mean_x * cov_xy / mean_y**3 + mean_x**2 * var_y / mean_y**4) / n
        return max(0.0, variance)


def ratio_test(control: RatioSums, treatment: RatioSums, confidence: float = 0.95) -> Comparison:
    """Ratio difference treatment - control: z-test and interval from the delta-method variances."""
    control_ratio, treatment_ratio = control.ratio, treatment.ratio
    control_variance, treatment_variance = control.ratio_variance(), treatment.ratio_variance()
    if (
        control_ratio is None
        or treatment_ratio is None
        or control_variance is None
        or treatment_variance is None
    ):
        return NO_COMPARISON
    difference = treatment_ratio - control_ratio
    variance = control_variance + treatment_variance
    if variance <= 0.0:
        return Comparison(difference, difference, difference, *((None,) * 5))
    standard_error = math.sqrt(variance)
    critical = normal_quantile(0.5 + confidence / 2.0)
    z = difference / standard_error
    relative = _relative(
        difference, control_ratio, control_variance, treatment_variance, critical, treatment_ratio
    )
    return Comparison(
        difference,
        difference - critical * standard_error,
        difference + critical * standard_error,
        *relative,
        z,
        normal_two_sided_p(z),
    )


def proportion_interval(conversions: int, units: int, confidence: float) -> tuple[float, float]:
    """The Wald interval of one rate, as the checks compare a planted rate with it."""
    rate = conversions / units
    half_width = normal_quantile(0.5 + confidence / 2.0) * math.sqrt(rate * (1.0 - rate) / units)
    return rate - half_width, rate + half_width


def sample_ratio_test(observed: Sequence[int], weights: Sequence[float] | None = None) -> GoodnessOfFit:
    """Chi-square goodness of fit of the units per variation against `weights` (equal when None)."""
    if len(observed) < 2:
        raise ValueError("a sample-ratio test needs at least two variations")
    weights = list(weights) if weights is not None else [1.0] * len(observed)
    if len(weights) != len(observed):
        raise ValueError("one weight per variation is needed")
    total, total_weight = sum(observed), sum(weights)
    degrees_of_freedom = len(observed) - 1
    if total == 0:
        return GoodnessOfFit(0.0, 1.0, degrees_of_freedom)
    statistic = 0.0
    for count, weight in zip(observed, weights, strict=True):
        expected = total * weight / total_weight
        statistic += (count - expected) ** 2 / expected
    return GoodnessOfFit(statistic, chi_square_survival(statistic, degrees_of_freedom), degrees_of_freedom)
