"""Experiment statistics from sufficient statistics: estimates, fixed-horizon and always-valid tests,
false discovery rate control across metrics, CUPED, and the decision an analyst reads.

Everything starts from what DuckDB aggregates per variation (`ArmSums`: the units and the sums of each
unit's value, its square and cross-products) and works elementwise on floats or numpy arrays of any
shape, so one call analyses one comparison or thousands of simulated experiments at once
(`benchmarks/experiment_stats.py` proves these very functions). Results the data cannot define (no
units, no variance, a control mean of 0) are NaN. scipy supplies the distributions; the formulas here
are the ones that are ours. Methods, formulas and the choice of defaults: `docs/architecture.md` §5,
"Statistics".

One experiment, one look (the warehouse recomputes day by day; the sequential state of the previous
day's look is the only history a look needs):

    arms = [estimate(kind, sums) for sums in sums_by_variation]   # or cuped(kind, sums_by_variation).arms
    comparison = lift(arms[0], arms[i])                              # control first
    result = infer(comparison, settings, alternative_for(role, direction), previous=yesterday)
    corrected = correct(p-values of all the experiment's metrics x variations, their roles)
    decide(role, direction, comparison.absolute, corrected, settings.alpha, sample_ratio.mismatch)
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Values = float | FloatArray
"""One number or an array of them: every function here works elementwise on either."""


class MetricKind(enum.StrEnum):
    CONVERSION = "conversion"
    """y = 1 when the unit converted, else 0."""
    COUNT = "count"
    """y = the unit's number of events."""
    SUM = "sum"
    """y = the unit's total of a value (revenue, minutes)."""
    RATIO = "ratio"
    """Σy / Σd over the arm's units (revenue per order, minutes per session)."""


class MetricRole(enum.StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    GUARDRAIL = "guardrail"
    MONITORING = "monitoring"


class WinningDirection(enum.StrEnum):
    INCREASING = "increasing"
    DECREASING = "decreasing"


class Alternative(enum.StrEnum):
    """What a test rejects for, named as scipy names it: treatment above control, below it, or either."""

    TWO_SIDED = "two-sided"
    GREATER = "greater"
    LESS = "less"


class Method(enum.StrEnum):
    SEQUENTIAL = "sequential"
    """Always-valid mSPRT p-values and confidence sequences: valid however often one looks."""
    FIXED_Z = "fixed_z"
    """Normal test and interval, valid only when analysed once, at a sample size planned in advance."""
    FIXED_WELCH = "fixed_welch"
    """Welch's t (Welch-Satterthwaite degrees of freedom), for small samples analysed once."""


class Correction(enum.StrEnum):
    BENJAMINI_HOCHBERG = "benjamini_hochberg"
    """Controls the false discovery rate (as Optimizely's Stats Engine)."""
    HOLM = "holm"
    """Controls the family-wise error rate (stricter, as GrowthBook offers)."""


class Decision(enum.StrEnum):
    WINNER = "winner"
    LOSER = "loser"
    INCONCLUSIVE = "inconclusive"
    GUARDRAIL_HARMED = "guardrail_harmed"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"


@dataclass(frozen=True)
class InferenceSettings:
    alpha: float = 0.05
    """Significance level of every test and of the corrections (1 - alpha is the intervals' coverage)."""
    method: Method = Method.SEQUENTIAL
    tuning_units: float = 100_000
    """N*, the units of both compared arms together at which the sequential interval is narrowest
    (the mixing variance tau^2 follows from it, see `mixing_variance`). Set it to the sample size at
    which the experiment is expected to be decided; fixed for an experiment's life."""
    correction: Correction = Correction.BENJAMINI_HOCHBERG
    srm_alpha: float = 0.001
    """A sample-ratio mismatch is flagged below this p-value: rare false alarms, real ones seldom missed."""

    def __post_init__(self) -> None:
        for name in ("alpha", "srm_alpha"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be between 0 and 1 (exclusive), not {getattr(self, name)}")
        if not self.tuning_units > 0:
            raise ValueError(f"tuning_units must be a positive number of units, not {self.tuning_units}")


@dataclass(frozen=True)
class ArmSums:
    """One variation's sufficient statistics for one metric, summed over its units (in DuckDB).

    Per unit: y its value (0/1 for a conversion, a ratio metric's numerator), d a ratio metric's
    denominator, x the same metric over the pre-exposure window and h = 1 when the unit has
    pre-exposure history, else 0 (x is 0 without history). Sums a metric does not use stay 0.
    """

    units: Values
    sum_y: Values
    sum_y2: Values
    sum_d: Values = 0.0
    sum_d2: Values = 0.0
    sum_yd: Values = 0.0
    sum_x: Values = 0.0
    sum_x2: Values = 0.0
    sum_xy: Values = 0.0
    sum_h: Values = 0.0
    sum_hy: Values = 0.0


@dataclass(frozen=True)
class ArmEstimate:
    units: Values
    mean: Values
    """The metric's value in the arm: the mean per unit, or Σy / Σd for a ratio metric."""
    variance: Values
    """The variance of `mean` as an estimate: its squared standard error."""


@dataclass(frozen=True)
class CupedAdjustment:
    theta: Values
    """Coefficient of the pre-exposure value x, pooled within arms."""
    theta_history: Values
    """Coefficient of the has-history indicator h."""
    arms: list[ArmEstimate]
    """The adjusted estimates, in the order the arms were given."""
    variance_reduction: Values
    """1 - (sum of the adjusted variances) / (sum of the unadjusted ones): the share of variance removed."""


@dataclass(frozen=True)
class Lift:
    """A treatment against the control."""

    absolute: Values
    variance: Values
    relative: Values
    """treatment / control - 1; its variance by the delta method, the control's uncertainty included."""
    relative_variance: Values
    units: Values
    """Both arms' units: the sequential test's sample size."""
    degrees_of_freedom: Values
    """Welch-Satterthwaite, for the Welch test."""


@dataclass(frozen=True)
class Inference:
    """A test's p-value and 1 - alpha intervals of the absolute and relative lift. For the sequential
    test it is also the state the next look starts from: the p-value is the running minimum over looks
    and the intervals the running intersection."""

    p_value: Values = 1.0
    ci_low: Values = -math.inf
    ci_high: Values = math.inf
    relative_ci_low: Values = -math.inf
    relative_ci_high: Values = math.inf


FIRST_LOOK = Inference()
"""The sequential state before any look: no evidence yet."""


@dataclass(frozen=True)
class SampleRatio:
    statistic: float
    p_value: float
    mismatch: bool


# --- estimates ------------------------------------------------------------------------------------


def _value(result: npt.ArrayLike) -> Values:
    """A 0-d result as a numpy float (a `float`), an array as an array."""
    return np.asarray(result, dtype=np.float64)[()]


def _covariance(units: Values, sum_a: Values, sum_b: Values, sum_ab: Values, ddof: int) -> FloatArray:
    """Covariance of per-unit a and b from their sums, (Σab - ΣaΣb/n) / (n - ddof); NaN without units.
    From raw sums a variance keeps about 16 - 2 log10(mean / sd) significant digits: ample for
    experiment metrics, whose mean is rarely a thousand times their standard deviation."""
    n = np.asarray(units, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = (sum_ab - np.multiply(sum_a, sum_b) / n) / (n - ddof)
    return np.where(n > ddof, covariance, np.nan)


def _variance(units: Values, total: Values, total_of_squares: Values, ddof: int) -> FloatArray:
    # Rounding can leave a zero variance slightly negative.
    return np.maximum(_covariance(units, total, total, total_of_squares, ddof), 0.0)


def _ddof(kind: MetricKind) -> int:
    """A conversion's variance is p(1 - p), as the proportion tests have it; other kinds use the sample
    variance (n - 1)."""
    return 0 if kind is MetricKind.CONVERSION else 1


def estimate(kind: MetricKind, sums: ArmSums) -> ArmEstimate:
    """The arm's value and its squared standard error; a ratio's by the delta method."""
    ddof = _ddof(kind)
    n = np.asarray(sums.units, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind is MetricKind.RATIO:
            ratio = np.divide(sums.sum_y, sums.sum_d)
            mean_d = np.divide(sums.sum_d, n)
            # Var(Σy/Σd) ~ Var(y - R d) / (n mean(d)^2): the linearised ratio.
            residual = (
                _covariance(n, sums.sum_y, sums.sum_y, sums.sum_y2, ddof)
                - 2.0 * ratio * _covariance(n, sums.sum_y, sums.sum_d, sums.sum_yd, ddof)
                + ratio**2 * _covariance(n, sums.sum_d, sums.sum_d, sums.sum_d2, ddof)
            )
            return ArmEstimate(_value(n), _value(ratio), _value(np.maximum(residual, 0.0) / (n * mean_d**2)))
        mean = np.divide(sums.sum_y, n)
        return ArmEstimate(_value(n), _value(mean), _value(_variance(n, sums.sum_y, sums.sum_y2, ddof) / n))


def cuped(kind: MetricKind, arms: Sequence[ArmSums]) -> CupedAdjustment:
    """CUPED (Deng et al. 2013) with the has-history indicator: the arms' values adjusted by
    theta = (pooled within-arm covariance of w = (x, h))^-1 x (its covariance with y), which is the
    OLS fit of y ~ arm + x + h. Units without pre-exposure history carry x = 0 and h = 0, so they are
    adjusted by their own mean rather than mistaken for units whose history was 0."""
    if kind is MetricKind.RATIO:
        raise ValueError(
            "CUPED adjusts conversion, count and sum metrics; compare a ratio metric unadjusted (estimate)"
        )
    if not arms:
        raise ValueError("CUPED needs at least one arm")
    ddof = _ddof(kind)
    scatter, cross = 0.0, 0.0
    for arm in arms:
        moments = _pre_period_moments(arm, ddof=0)
        n = np.asarray(arm.units, dtype=np.float64)
        scatter = scatter + np.nan_to_num(moments.scatter * n[..., None, None])
        cross = cross + np.nan_to_num(moments.cross * n[..., None])
    theta = _regression_coefficients(np.asarray(scatter), np.asarray(cross))
    units = sum(np.asarray(arm.units, dtype=np.float64) for arm in arms)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre_x = sum(np.asarray(arm.sum_x, dtype=np.float64) for arm in arms) / units
        centre_h = sum(np.asarray(arm.sum_h, dtype=np.float64) for arm in arms) / units
    adjusted, unadjusted_variance, adjusted_variance = [], 0.0, 0.0
    for arm in arms:
        plain = estimate(kind, arm)
        moments = _pre_period_moments(arm, ddof)
        n = np.asarray(arm.units, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = theta[..., 0] * (arm.sum_x / n - centre_x) + theta[..., 1] * (arm.sum_h / n - centre_h)
            residual = (
                _variance(n, arm.sum_y, arm.sum_y2, ddof)
                - 2.0 * np.sum(theta * moments.cross, axis=-1)
                + np.einsum("...i,...ij,...j->...", theta, moments.scatter, theta)
            )
            variance = np.maximum(residual, 0.0) / n
        adjusted.append(ArmEstimate(plain.units, _value(plain.mean - shift), _value(variance)))
        unadjusted_variance = unadjusted_variance + np.asarray(plain.variance)
        adjusted_variance = adjusted_variance + variance
    with np.errstate(divide="ignore", invalid="ignore"):
        reduction = 1.0 - np.asarray(adjusted_variance) / unadjusted_variance
    return CupedAdjustment(_value(theta[..., 0]), _value(theta[..., 1]), adjusted, _value(reduction))


@dataclass(frozen=True)
class _Moments:
    scatter: FloatArray
    """Covariance matrix of w = (x, h), shape (..., 2, 2)."""
    cross: FloatArray
    """Covariances of w with y, shape (..., 2)."""


def _pre_period_moments(arm: ArmSums, ddof: int) -> _Moments:
    # x h = x and h^2 = h, since x is 0 for units without history.
    n = arm.units
    xx = _covariance(n, arm.sum_x, arm.sum_x, arm.sum_x2, ddof)
    hh = _covariance(n, arm.sum_h, arm.sum_h, arm.sum_h, ddof)
    xh = _covariance(n, arm.sum_x, arm.sum_h, arm.sum_x, ddof)
    xy = _covariance(n, arm.sum_x, arm.sum_y, arm.sum_xy, ddof)
    hy = _covariance(n, arm.sum_h, arm.sum_y, arm.sum_hy, ddof)
    xx, hh, xh, xy, hy = np.broadcast_arrays(xx, hh, xh, xy, hy)
    scatter = np.stack([np.stack([xx, xh], axis=-1), np.stack([xh, hh], axis=-1)], axis=-2)
    return _Moments(scatter, np.stack([xy, hy], axis=-1))


def _regression_coefficients(scatter: FloatArray, cross: FloatArray) -> FloatArray:
    """Solve scatter @ theta = cross for stacks of 2x2 systems. A covariate without variation (every
    unit has history, or none) gets coefficient 0; scaling to correlations first lets the pseudo-inverse
    tell a truly collinear pair from covariates on very different scales."""
    scale = np.sqrt(np.maximum(np.diagonal(scatter, axis1=-2, axis2=-1), 0.0))
    safe = np.where(scale > 0.0, scale, 1.0)
    correlation = scatter / (safe[..., :, None] * safe[..., None, :])
    solved = np.linalg.pinv(correlation, rcond=1e-10, hermitian=True) @ (cross / safe)[..., None]
    return solved[..., 0] / safe


# --- comparisons and tests ------------------------------------------------------------------------


def lift(control: ArmEstimate, treatment: ArmEstimate) -> Lift:
    """Treatment minus control, and treatment / control - 1 by the delta method (arms independent)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        absolute = np.subtract(treatment.mean, control.mean)
        variance = np.add(treatment.variance, control.variance)
        control_mean = np.where(np.asarray(control.mean) != 0.0, control.mean, np.nan)
        relative = absolute / control_mean
        relative_variance = (
            np.divide(treatment.variance, control_mean**2)
            + np.multiply(np.square(treatment.mean), control.variance) / control_mean**4
        )
        degrees_of_freedom = variance**2 / (
            np.square(treatment.variance) / (np.subtract(treatment.units, 1.0))
            + np.square(control.variance) / (np.subtract(control.units, 1.0))
        )
    return Lift(
        _value(absolute),
        _value(variance),
        _value(relative),
        _value(relative_variance),
        _value(np.add(treatment.units, control.units)),
        _value(degrees_of_freedom),
    )


def _standard_error(variance: Values) -> FloatArray:
    """sqrt(variance) where it is positive; NaN otherwise (no variance, no inference)."""
    variance = np.asarray(variance, dtype=np.float64)
    return np.sqrt(np.where(variance > 0.0, variance, np.nan))


def _special() -> ModuleType:
    """scipy.special, imported at the first statistic: every process that loads the definitions imports
    this module (the settings name its choices), and scipy would add 0.2 CPU-s to each."""
    from scipy import special

    return special


@dataclass(frozen=True)
class _Reference:
    """The standard normal (no degrees of freedom) or Student's t, from scipy.special's functions:
    scipy.stats would add about a second of imports to every run's process for the same numbers."""

    degrees_of_freedom: Values | None = None

    def cdf(self, x: Values) -> Values:
        if self.degrees_of_freedom is None:
            return _special().ndtr(x)
        return _special().stdtr(self.degrees_of_freedom, x)

    def sf(self, x: Values) -> Values:
        return self.cdf(-np.asarray(x))  # both are symmetric about 0

    def ppf(self, q: float) -> Values:
        if self.degrees_of_freedom is None:
            return _special().ndtri(q)
        return _special().stdtrit(self.degrees_of_freedom, q)


def fixed_horizon(
    comparison: Lift, alpha: float, alternative: Alternative = Alternative.TWO_SIDED, welch: bool = False
) -> Inference:
    """The classical test and interval: normal (large samples) or Welch's t. Valid for one look only."""
    distribution = _Reference(comparison.degrees_of_freedom if welch else None)
    error = _standard_error(comparison.variance)
    relative_error = _standard_error(comparison.relative_variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.asarray(comparison.absolute) / error
    if alternative is Alternative.TWO_SIDED:
        p_value = 2.0 * distribution.sf(np.abs(statistic))
    elif alternative is Alternative.GREATER:
        p_value = distribution.sf(statistic)
    else:
        p_value = distribution.cdf(statistic)
    critical = distribution.ppf(1.0 - alpha / 2.0)
    return Inference(
        _value(p_value),
        _value(comparison.absolute - critical * error),
        _value(comparison.absolute + critical * error),
        _value(comparison.relative - critical * relative_error),
        _value(comparison.relative + critical * relative_error),
    )


def mixing_ratio(alpha: float, tuning_units: float) -> float:
    """rho^2 = tau^2 / (N V), the normal mixture's variance in units of the per-unit variance of the
    difference: chosen so the confidence sequence is narrowest at N = tuning_units (Waudby-Smith et al.
    2023, eq. 161, as GrowthBook sets it)."""
    log_alpha = math.log(alpha)
    return (-2.0 * log_alpha + math.log(1.0 - 2.0 * log_alpha)) / tuning_units


def mixing_variance(comparison: Lift, settings: InferenceSettings) -> Values:
    """tau^2 of the mSPRT's N(0, tau^2) mixture over the true absolute lift, in the metric's units^2."""
    ratio = mixing_ratio(settings.alpha, settings.tuning_units)
    return _value(ratio * np.multiply(comparison.units, comparison.variance))


def sequential(
    comparison: Lift,
    previous: Inference,
    alpha: float,
    tuning_units: float,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> Inference:
    """The mixture SPRT of Johari, Koomen, Pekelis & Walsh (2017) for the difference of means, with a
    N(0, tau^2) mixture over it: always-valid p-value and confidence sequence at this look, combined with
    the previous look's (`FIRST_LOOK` at the start). A look the data cannot define leaves the state as it
    was. One-sided alternatives mix over the half-normal on their side (the guardrails' harm test)."""
    error = _standard_error(comparison.variance)
    relative_error = _standard_error(comparison.relative_variance)
    # x = tau^2 / V: how much the mixture spreads beyond the estimate's own noise.
    x = mixing_ratio(alpha, tuning_units) * np.asarray(comparison.units, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.asarray(comparison.absolute) / error
        # log of the mixture likelihood ratio: sqrt(V / (V + tau^2)) exp(tau^2 D^2 / (2 V (V + tau^2))).
        log_ratio = -0.5 * np.log1p(x) + x * z**2 / (2.0 * (1.0 + x))
        if alternative is not Alternative.TWO_SIDED:
            side = 1.0 if alternative is Alternative.GREATER else -1.0
            log_ratio = log_ratio + math.log(2.0) + _special().log_ndtr(side * z * np.sqrt(x / (1.0 + x)))
        p_value = np.minimum(1.0, np.exp(-log_ratio))
        # The values of the lift the mixture does not reject at alpha.
        width = np.sqrt((1.0 + x) / x * (np.log1p(x) - 2.0 * math.log(alpha)))
    absolute_low, absolute_high = _intersect(
        previous.ci_low,
        previous.ci_high,
        comparison.absolute - width * error,
        comparison.absolute + width * error,
    )
    relative_low, relative_high = _intersect(
        previous.relative_ci_low,
        previous.relative_ci_high,
        comparison.relative - width * relative_error,
        comparison.relative + width * relative_error,
    )
    return Inference(
        _value(np.fmin(previous.p_value, p_value)),
        absolute_low,
        absolute_high,
        relative_low,
        relative_high,
    )


def _intersect(low: Values, high: Values, new_low: Values, new_high: Values) -> tuple[Values, Values]:
    """The running intersection. NaN bounds (an undefined look) keep the previous ones; an empty
    intersection, which happens only in the alpha-probability event the sequence failed, shows this
    look's interval rather than nothing."""
    kept_low, kept_high = np.fmax(low, new_low), np.fmin(high, new_high)
    empty = kept_low > kept_high
    return _value(np.where(empty, new_low, kept_low)), _value(np.where(empty, new_high, kept_high))


def infer(
    comparison: Lift,
    settings: InferenceSettings,
    alternative: Alternative = Alternative.TWO_SIDED,
    previous: Inference = FIRST_LOOK,
) -> Inference:
    """The test `settings.method` names; `previous` matters only to the sequential one."""
    if settings.method is Method.SEQUENTIAL:
        return sequential(comparison, previous, settings.alpha, settings.tuning_units, alternative)
    return fixed_horizon(comparison, settings.alpha, alternative, welch=settings.method is Method.FIXED_WELCH)


# --- multiple comparisons and decisions -----------------------------------------------------------


def tier(role: MetricRole) -> str:
    """The family a metric's tests are corrected in: the primary metric alone, secondary metrics and
    guardrails together, monitoring metrics apart so they never slow the others."""
    return {MetricRole.PRIMARY: "primary", MetricRole.MONITORING: "monitoring"}.get(role, "secondary")


def alternative_for(role: MetricRole, direction: WinningDirection) -> Alternative:
    """Guardrails are tested one-sided, for harm only; every other metric two-sided."""
    if role is not MetricRole.GUARDRAIL:
        return Alternative.TWO_SIDED
    return Alternative.LESS if direction is WinningDirection.INCREASING else Alternative.GREATER


def correct(
    p_values: npt.ArrayLike,
    roles: Sequence[MetricRole],
    method: Correction = Correction.BENJAMINI_HOCHBERG,
) -> FloatArray:
    """Adjusted p-values of one experiment's tests (metrics x variations along the last axis, `roles`
    giving each one's metric role), corrected within each tier. Applied to always-valid p-values at
    every look this is Optimizely's sequential Benjamini-Hochberg; as those p-values never rise, neither
    do the adjusted ones. NaN (a test the data could not define) is left out of its family."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] != len(roles):
        raise ValueError(f"one role per test is needed: {len(roles)} roles for p-values of shape {p.shape}")
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("p-values must lie between 0 and 1")
    adjusted = np.full_like(p, np.nan)
    tiers = [tier(role) for role in roles]
    for family in set(tiers):
        members = [index for index, name in enumerate(tiers) if name == family]
        adjusted[..., members] = _adjust(p[..., members], method)
    return adjusted


def _adjust(p: FloatArray, method: Correction) -> FloatArray:
    """Benjamini-Hochberg or Holm along the last axis, NaN excluded from the count of tests. scipy's
    `false_discovery_control` (the same BH, tested equal) counts a NaN as a test, and scipy has no Holm."""
    order = np.argsort(p, axis=-1)  # NaN sorts last
    ordered = np.take_along_axis(p, order, axis=-1)
    tests = np.sum(~np.isnan(p), axis=-1, keepdims=True)
    rank = np.arange(1, p.shape[-1] + 1)
    if method is Correction.BENJAMINI_HOCHBERG:
        # q_(k) = min over j >= k of m p_(j) / j
        adjusted = np.fmin.accumulate((ordered * tests / rank)[..., ::-1], axis=-1)[..., ::-1]
    else:
        # Holm: max over j <= k of (m - j + 1) p_(j)
        adjusted = np.fmax.accumulate(ordered * (tests - rank + 1), axis=-1)
    adjusted = np.where(np.isnan(ordered), np.nan, np.minimum(adjusted, 1.0))
    result = np.empty_like(adjusted)
    np.put_along_axis(result, order, adjusted, axis=-1)
    return result


def decide(
    role: MetricRole,
    direction: WinningDirection,
    absolute_lift: Values | None,
    corrected_p_value: Values | None,
    alpha: float,
    sample_ratio_mismatch: bool | npt.NDArray[np.bool_] = False,
) -> Decision | npt.NDArray[np.str_]:
    """What the analyst reads: a significant lift in the winning direction wins, in the other loses; a
    guardrail can only be harmed (significant in the losing direction); a sample-ratio mismatch
    invalidates the experiment whatever the metrics say."""
    # None (a null from the table) becomes NaN, and NaN is never significant.
    significant = np.asarray(corrected_p_value, dtype=np.float64) < alpha
    lift_value = np.asarray(absolute_lift, dtype=np.float64)
    improved = lift_value > 0.0 if direction is WinningDirection.INCREASING else lift_value < 0.0
    if role is MetricRole.GUARDRAIL:
        verdict = np.where(significant & ~improved, Decision.GUARDRAIL_HARMED, Decision.INCONCLUSIVE)
    else:
        verdict = np.where(
            significant, np.where(improved, Decision.WINNER, Decision.LOSER), Decision.INCONCLUSIVE
        )
    verdict = np.where(sample_ratio_mismatch, Decision.SAMPLE_RATIO_MISMATCH, verdict)
    return Decision(verdict[()]) if verdict.ndim == 0 else verdict


def sample_ratio_test(
    units: Sequence[float], weights: Sequence[float] | None = None, alpha: float = 0.001
) -> SampleRatio:
    """Chi-square goodness of fit of the units per variation against their planned weights (equal when
    None), the p-value from scipy's chi-square survival function. With fewer than two variations, or
    no units, there is nothing to test."""
    if weights is not None and len(weights) != len(units):
        raise ValueError(
            f"one weight per variation is needed: {len(weights)} weights, {len(units)} variations"
        )
    if weights is not None and any(weight <= 0.0 for weight in weights):
        raise ValueError("every variation's planned weight must be positive")
    total = float(sum(units))
    if len(units) < 2 or total == 0.0:
        return SampleRatio(math.nan, math.nan, False)
    shares = np.asarray(weights if weights is not None else [1.0] * len(units), dtype=np.float64)
    expected = total * shares / shares.sum()
    statistic = float(np.sum((np.asarray(units, dtype=np.float64) - expected) ** 2 / expected))
    p_value = float(_special().chdtrc(len(units) - 1, statistic))
    return SampleRatio(statistic, p_value, p_value < alpha)
