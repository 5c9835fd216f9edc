"""Benchmark of the experiment statistics' error rates: A/A experiments under daily peeking, power against
planted lifts with and without CUPED, and CUPED's variance reduction against theory.

Run: `.venv/bin/python benchmarks/experiment_stats.py [--experiments 5000] [--days 30]
[--units-per-day 5000]`; writes `benchmarks/results/experiment_stats.json`.

Each scenario simulates thousands of two-variation experiments with five metrics (two conversions, a
sum, a count and a ratio: every kind, every role) and analyses each one every day for 30 days with the
warehouse's own functions (`warehouse/inference.py`, vectorised over experiments), as an analyst
who opens the results each morning would see them. A unit's metric values are drawn when it is
exposed and each day adds a fixed number of units per arm. The per-day sufficient statistics are drawn
exactly, without a loop over units: multinomial counts over each metric's discrete per-unit
distribution (conversions with their pre-period conversion, tickets, sessions x minutes), and for
revenue one log-normal amount per purchaser, summed per experiment and day. Seeds are fixed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from event_platform.warehouse import inference
from event_platform.warehouse.inference import (
    ArmSums,
    Decision,
    InferenceSettings,
    Method,
    MetricKind,
    MetricRole,
    WinningDirection,
)

from measure import cpu_seconds, describe_machine

RESULTS_FILE = Path(__file__).parent / "results" / "experiment_stats.json"
SEED = 2017  # the year of Johari et al.
LIFTS = (0.02, 0.05, 0.10)
"""Relative lifts planted on the primary metric in the power scenarios."""

# The primary metric: returning units (with pre-exposure history) convert at 10% and converted at 10%
# in the pre-exposure window, the two correlated at 0.5; new units convert at 6%.
HISTORY_SHARE = 0.7
PRE_PERIOD_RATE = 0.10
RETURNING_RATE = 0.10
NEW_RATE = 0.06
PRE_PERIOD_CORRELATION = 0.5
PURCHASE_RATE = 0.03
SPEND_MEAN, SPEND_LOG_SD = 40.0, 1.0
TICKETS_MEAN, TICKETS_DISPERSION = 0.3, 0.5
SESSIONS = np.arange(1, 7)
SESSION_SHARES = np.array([0.40, 0.25, 0.15, 0.10, 0.06, 0.04])
MINUTES_PER_SESSION = np.array([2.0, 5.0, 10.0, 20.0, 45.0])
MINUTES_SHARES = np.array([0.30, 0.30, 0.20, 0.15, 0.05])

# CUPED against theory: pairs of (value, pre-period value) with these correlations, some units without
# history whose level differs from the others' by LEVEL_SHIFT standard deviations.
CORRELATIONS = (0.2, 0.4, 0.6, 0.8, 0.9)
CUPED_HISTORY_SHARES = (1.0, 0.7)
LEVEL_SHIFT = 0.5
CUPED_REPLICATIONS, CUPED_UNITS_PER_ARM = 8_000, 500


@dataclass(frozen=True)
class Metric:
    name: str
    kind: MetricKind
    role: MetricRole
    direction: WinningDirection
    simulated: str


METRICS = (
    Metric(
        "enrolled",
        MetricKind.CONVERSION,
        MetricRole.PRIMARY,
        WinningDirection.INCREASING,
        f"conversion: {RETURNING_RATE:.0%} of the {HISTORY_SHARE:.0%} of units with pre-exposure history, "
        f"{NEW_RATE:.0%} of the others; correlated {PRE_PERIOD_CORRELATION} with the pre-exposure "
        f"conversion ({PRE_PERIOD_RATE:.0%}); the power scenarios' lift multiplies both rates",
    ),
    Metric(
        "purchased",
        MetricKind.CONVERSION,
        MetricRole.SECONDARY,
        WinningDirection.INCREASING,
        f"conversion: {PURCHASE_RATE:.0%} of units purchase",
    ),
    Metric(
        "revenue",
        MetricKind.SUM,
        MetricRole.SECONDARY,
        WinningDirection.INCREASING,
        f"sum: each purchaser spends a log-normal amount (mean {SPEND_MEAN:.0f}, log sd {SPEND_LOG_SD}), "
        "others 0",
    ),
    Metric(
        "support_tickets",
        MetricKind.COUNT,
        MetricRole.GUARDRAIL,
        WinningDirection.DECREASING,
        f"count: negative binomial per unit, mean {TICKETS_MEAN}, dispersion {TICKETS_DISPERSION}; "
        "judged one-sided, on harm (an increase)",
    ),
    Metric(
        "minutes_per_session",
        MetricKind.RATIO,
        MetricRole.MONITORING,
        WinningDirection.INCREASING,
        "ratio: minutes / sessions, 1-6 sessions per unit, each unit's sessions lasting 2-45 minutes",
    ),
)
ROLES = [metric.role for metric in METRICS]
PRIMARY = 0


@dataclass(frozen=True)
class Procedure:
    """How the experiments are analysed: the test, BH in tiers or none, CUPED on the primary metric or
    not, and every day or only on the last."""

    name: str
    method: Method
    corrected: bool = True
    cuped: bool = False
    once_at_end: bool = False


FIXED_DAILY = Procedure(
    "fixed-horizon z, looked at daily, uncorrected (the warehouse today)", Method.FIXED_Z, corrected=False
)
FIXED_DAILY_CORRECTED = Procedure("fixed-horizon z, looked at daily, BH in tiers", Method.FIXED_Z)
FIXED_ONCE = Procedure(
    "fixed-horizon z, analysed once on the last day, BH in tiers", Method.FIXED_Z, once_at_end=True
)
FIXED_ONCE_CUPED = Procedure(
    "fixed-horizon z + CUPED, analysed once on the last day, BH in tiers",
    Method.FIXED_Z,
    cuped=True,
    once_at_end=True,
)
SEQUENTIAL = Procedure("sequential (mSPRT), looked at daily, BH in tiers", Method.SEQUENTIAL)
SEQUENTIAL_CUPED = Procedure(
    "sequential (mSPRT) + CUPED, looked at daily, BH in tiers", Method.SEQUENTIAL, cuped=True
)
A_A_PROCEDURES = (FIXED_DAILY, FIXED_DAILY_CORRECTED, FIXED_ONCE, SEQUENTIAL, SEQUENTIAL_CUPED)
POWER_PROCEDURES = (SEQUENTIAL, SEQUENTIAL_CUPED, FIXED_ONCE, FIXED_ONCE_CUPED)
TUNING_UNITS = (5_000, 20_000, 100_000, 300_000, 1_000_000)
"""N* values the sequential test's power is measured at: GrowthBook's default, ours, and around them."""


# --- simulation -----------------------------------------------------------------------------------


def primary_cells(lift: float) -> np.ndarray:
    """Shares of the primary metric's six kinds of unit: with history (x, y) in (1,1), (1,0), (0,1),
    (0,0), then without history y = 1, y = 0."""
    returning, new = RETURNING_RATE * (1 + lift), NEW_RATE * (1 + lift)
    both = PRE_PERIOD_RATE * returning + PRE_PERIOD_CORRELATION * math.sqrt(
        PRE_PERIOD_RATE * (1 - PRE_PERIOD_RATE) * returning * (1 - returning)
    )
    with_history = [both, PRE_PERIOD_RATE - both, returning - both, 1 - PRE_PERIOD_RATE - returning + both]
    cells = [HISTORY_SHARE * share for share in with_history]
    return np.array([*cells, (1 - HISTORY_SHARE) * new, (1 - HISTORY_SHARE) * (1 - new)])


def ticket_distribution() -> tuple[np.ndarray, np.ndarray]:
    """Negative binomial support and probabilities, cut where the tail is below 1e-12."""
    size = TICKETS_DISPERSION
    probability = size / (size + TICKETS_MEAN)
    values = np.arange(0, int(stats.nbinom.isf(1e-12, size, probability)) + 1)
    shares = stats.nbinom.pmf(values, size, probability)
    return values.astype(float), shares / shares.sum()


def cumulative(counts: np.ndarray) -> np.ndarray:
    """Per-day sums to sums over the days so far (the day axis is 1)."""
    return np.cumsum(counts, axis=1, dtype=np.float64)


def simulate(
    rng: np.random.Generator, experiments: int, days: int, units: int, lift: float
) -> list[list[ArmSums]]:
    """Cumulative sufficient statistics per metric and arm, each an array (experiments, days)."""
    shape = (experiments, days)
    cumulative_units = np.broadcast_to(units * np.arange(1.0, days + 1), shape)
    by_metric: list[list[ArmSums]] = [[] for _ in METRICS]
    tickets, ticket_shares = ticket_distribution()
    sessions = np.repeat(SESSIONS, len(MINUTES_PER_SESSION)).astype(float)
    minutes = sessions * np.tile(MINUTES_PER_SESSION, len(SESSIONS))
    session_cells = np.outer(SESSION_SHARES, MINUTES_SHARES).ravel()
    for arm in (0, 1):
        arm_lift = lift if arm == 1 else 0.0
        cells = cumulative(rng.multinomial(units, primary_cells(arm_lift), size=shape))
        y = cells[..., 0] + cells[..., 2] + cells[..., 4]
        x = cells[..., 0] + cells[..., 1]
        by_metric[0].append(
            ArmSums(
                cumulative_units,
                y,
                y,
                sum_x=x,
                sum_x2=x,
                sum_xy=cells[..., 0],
                sum_h=cells[..., :4].sum(-1),
                sum_hy=cells[..., 0] + cells[..., 2],
            )
        )
        purchasers = rng.binomial(units, PURCHASE_RATE, size=shape)
        by_metric[1].append(ArmSums(cumulative_units, cumulative(purchasers), cumulative(purchasers)))
        spend, spend_squares = purchaser_spend(rng, purchasers)
        by_metric[2].append(ArmSums(cumulative_units, cumulative(spend), cumulative(spend_squares)))
        counts = cumulative(rng.multinomial(units, ticket_shares, size=shape))
        by_metric[3].append(ArmSums(cumulative_units, counts @ tickets, counts @ tickets**2))
        counts = cumulative(rng.multinomial(units, session_cells, size=shape))
        by_metric[4].append(
            ArmSums(
                cumulative_units,
                counts @ minutes,
                counts @ minutes**2,
                counts @ sessions,
                counts @ sessions**2,
                counts @ (minutes * sessions),
            )
        )
    return by_metric


def purchaser_spend(rng: np.random.Generator, purchasers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares of one log-normal amount per purchaser, per experiment and day (drawn a
    day at a time, so memory holds one day's purchasers)."""
    spend, squares = np.zeros(purchasers.shape), np.zeros(purchasers.shape)
    location = math.log(SPEND_MEAN) - SPEND_LOG_SD**2 / 2
    for day in range(purchasers.shape[1]):
        buyers = purchasers[:, day]
        amounts = rng.lognormal(location, SPEND_LOG_SD, int(buyers.sum()))
        owner = np.repeat(np.arange(buyers.size), buyers)
        spend[:, day] = np.bincount(owner, weights=amounts, minlength=buyers.size)
        squares[:, day] = np.bincount(owner, weights=amounts**2, minlength=buyers.size)
    return spend, squares


def on_day(sums: ArmSums, day: int) -> ArmSums:
    return ArmSums(
        **{
            field.name: value[:, day] if np.ndim(value := getattr(sums, field.name)) else value
            for field in dataclasses.fields(ArmSums)
        }
    )


# --- analysis -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Looks:
    decisions: np.ndarray
    """(experiments, days, metrics) of Decision values; inconclusive on days not analysed."""
    variance_reduction: np.ndarray
    """(experiments, days): CUPED's on the primary metric (NaN without CUPED)."""
    primary_lift: np.ndarray
    """(experiments, days): the primary metric's absolute lift as the procedure estimates it."""


def analyse(by_metric: list[list[ArmSums]], procedure: Procedure, settings: InferenceSettings) -> Looks:
    """Every day's decisions as the warehouse would show them, carrying the sequential state forward."""
    settings = dataclasses.replace(settings, method=procedure.method)
    experiments, days = np.shape(by_metric[0][0].sum_y)
    decisions = np.full((experiments, days, len(METRICS)), Decision.INCONCLUSIVE.value, dtype=object)
    reduction = np.full((experiments, days), np.nan)
    primary_lift = np.full((experiments, days), np.nan)
    states = [inference.FIRST_LOOK] * len(METRICS)
    for day in range(days):
        p_values = np.empty((experiments, len(METRICS)))
        lifts = []
        for index, metric in enumerate(METRICS):
            arms = [on_day(sums, day) for sums in by_metric[index]]
            if procedure.cuped and index == PRIMARY:
                adjustment = inference.cuped(metric.kind, arms)
                estimates = adjustment.arms
                reduction[:, day] = adjustment.variance_reduction
            else:
                estimates = [inference.estimate(metric.kind, arm) for arm in arms]
            comparison = inference.lift(*estimates)
            alternative = inference.alternative_for(metric.role, metric.direction)
            states[index] = inference.infer(comparison, settings, alternative, previous=states[index])
            p_values[:, index] = states[index].p_value
            lifts.append(comparison.absolute)
        primary_lift[:, day] = lifts[PRIMARY]
        if procedure.once_at_end and day < days - 1:
            continue
        corrected = (
            inference.correct(p_values, ROLES, settings.correction) if procedure.corrected else p_values
        )
        for index, metric in enumerate(METRICS):
            decisions[:, day, index] = inference.decide(
                metric.role, metric.direction, lifts[index], corrected[:, index], settings.alpha
            )
    return Looks(decisions, reduction, primary_lift)


def share(hits: np.ndarray) -> dict[str, Any]:
    """A proportion with its exact (Clopper-Pearson) 95% interval."""
    successes, trials = int(np.sum(hits)), int(np.size(hits))
    interval = stats.binomtest(successes, trials).proportion_ci(0.95, method="exact")
    return {
        "share": round(successes / trials, 4),
        "ci95": [round(interval.low, 4), round(interval.high, 4)],
        "experiments": successes,
    }


def a_a_summary(looks: Looks) -> dict[str, Any]:
    declared = looks.decisions != Decision.INCONCLUSIVE.value
    decision_metrics = [
        index for index, metric in enumerate(METRICS) if metric.role is not MetricRole.MONITORING
    ]
    return {
        "primary_ever_declared": share(declared[:, :, PRIMARY].any(axis=1)),
        "any_decision_metric_ever_declared": share(declared[:, :, decision_metrics].any(axis=(1, 2))),
        "any_metric_ever_declared": share(declared.any(axis=(1, 2))),
        "per_metric_ever_declared": {
            metric.name: share(declared[:, :, index].any(axis=1))["share"]
            for index, metric in enumerate(METRICS)
        },
    }


def power_summary(looks: Looks) -> dict[str, Any]:
    wins = looks.decisions[:, :, PRIMARY] == Decision.WINNER.value
    detected = wins.any(axis=1)
    first_day = wins.argmax(axis=1) + 1
    wrong = (looks.decisions[:, :, PRIMARY] == Decision.LOSER.value).any(axis=1)
    return {
        "detected": share(detected),
        "median_detection_day": float(np.median(first_day[detected])) if detected.any() else None,
        "wrong_direction_share": round(float(np.mean(wrong)), 4),
    }


# --- CUPED against theory -------------------------------------------------------------------------


def realised_reduction(adjusted: np.ndarray, plain: np.ndarray) -> dict[str, float]:
    """1 - Var(adjusted lift) / Var(plain lift) across simulated experiments with no effect (so second
    moments about 0), and its standard error by the delta method."""
    ratio = np.mean(adjusted**2) / np.mean(plain**2)
    error = np.std(adjusted**2 - ratio * plain**2) / math.sqrt(adjusted.size) / np.mean(plain**2)
    return {"realised": round(1 - float(ratio), 4), "realised_standard_error": round(float(error), 4)}


def cuped_against_theory(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Units with a normal value and pre-period value correlated rho: the reduction CUPED reports and the
    one realised across replications, against 1 - rho^2. With a share of units without history, whose
    level differs by LEVEL_SHIFT, the indicator absorbs the shift: theory 1 - (1 - share rho^2) / (the
    value's variance, the shift's included)."""
    rows = []
    shape = (CUPED_REPLICATIONS, CUPED_UNITS_PER_ARM)
    for history_share in CUPED_HISTORY_SHARES:
        for rho in CORRELATIONS:
            sums = []
            for _ in (0, 1):
                before = rng.standard_normal(shape)
                value = rho * before + math.sqrt(1 - rho**2) * rng.standard_normal(shape)
                has_history = rng.random(shape) < history_share
                value = value + LEVEL_SHIFT * ~has_history
                covariate = np.where(has_history, before, 0.0)
                sums.append(
                    ArmSums(
                        CUPED_UNITS_PER_ARM,
                        value.sum(-1),
                        (value**2).sum(-1),
                        sum_x=covariate.sum(-1),
                        sum_x2=(covariate**2).sum(-1),
                        sum_xy=(covariate * value).sum(-1),
                        sum_h=has_history.sum(-1),
                        sum_hy=(value * has_history).sum(-1),
                    )
                )
            adjustment = inference.cuped(MetricKind.SUM, sums)
            plain = inference.lift(*[inference.estimate(MetricKind.SUM, arm) for arm in sums]).absolute
            total_variance = 1 + history_share * (1 - history_share) * LEVEL_SHIFT**2
            rows.append(
                {
                    "rho": rho,
                    "history_share": history_share,
                    "theoretical": round(1 - (1 - history_share * rho**2) / total_variance, 4),
                    "reported_mean": round(float(np.mean(adjustment.variance_reduction)), 4),
                    **realised_reduction(inference.lift(*adjustment.arms).absolute, plain),
                }
            )
    return rows


def primary_cuped_theory() -> float:
    """The primary metric's reduction in theory: with history and pre-period conversion the regression
    on (x, h) is saturated, so what remains is each group's own Bernoulli variance."""
    cells = primary_cells(0.0)
    groups = [
        (cells[0] + cells[1], cells[0]),
        (cells[2] + cells[3], cells[2]),
        (cells[4] + cells[5], cells[4]),
    ]
    residual = sum(size * (converted / size) * (1 - converted / size) for size, converted in groups)
    rate = cells[0] + cells[2] + cells[4]
    return 1 - residual / (rate * (1 - rate))


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=5_000, help="simulated experiments per scenario")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--units-per-day", type=int, default=5_000, help="new units per arm per day")
    arguments = parser.parse_args(argv)
    load_before, started, cpu_started = os.getloadavg()[0], time.monotonic(), cpu_seconds()
    settings = InferenceSettings()
    seeds = np.random.SeedSequence(SEED).spawn(len(LIFTS) + 2)

    def scenario(seed: np.random.SeedSequence, lift: float) -> list[list[ArmSums]]:
        rng = np.random.default_rng(seed)
        return simulate(rng, arguments.experiments, arguments.days, arguments.units_per_day, lift)

    def report(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)

    null = scenario(seeds[0], 0.0)
    a_a, null_looks = [], {}
    for procedure in A_A_PROCEDURES:
        null_looks[procedure] = analyse(null, procedure, settings)
        a_a.append({"procedure": procedure.name, **a_a_summary(null_looks[procedure])})
        report(f"A/A, {procedure.name}: any metric declared {a_a[-1]['any_metric_ever_declared']}")
    power, tuning = [], []
    for seed, lift in zip(seeds[1:-1], LIFTS, strict=True):
        planted = scenario(seed, lift)
        for procedure in POWER_PROCEDURES:
            power.append(
                {
                    "lift": lift,
                    "procedure": procedure.name,
                    **power_summary(analyse(planted, procedure, settings)),
                }
            )
            report(f"power at {lift:.0%}, {procedure.name}: {power[-1]['detected']}")
        for tuning_units in TUNING_UNITS:
            tuned = dataclasses.replace(settings, tuning_units=tuning_units)
            tuning.append(
                {
                    "lift": lift,
                    "tuning_units": tuning_units,
                    **power_summary(analyse(planted, SEQUENTIAL, tuned)),
                }
            )
    cuped_looks, plain_looks = null_looks[SEQUENTIAL_CUPED], null_looks[SEQUENTIAL]
    primary_conversion = {
        "theoretical": round(primary_cuped_theory(), 4),
        "reported_mean_on_the_last_day": round(float(np.mean(cuped_looks.variance_reduction[:, -1])), 4),
        **realised_reduction(cuped_looks.primary_lift[:, -1], plain_looks.primary_lift[:, -1]),
    }
    normal_pairs = cuped_against_theory(np.random.default_rng(seeds[-1]))
    report("CUPED against theory done")
    result = {
        "benchmark": "experiment statistics: A/A under daily peeking, power, CUPED",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(load_before),
        "seconds": round(time.monotonic() - started, 1),
        "cpu_seconds": round(cpu_seconds() - cpu_started, 1),
        "settings": {
            "alpha": settings.alpha,
            "method": settings.method.value,
            "sequential_tuning_units": settings.tuning_units,
            "mixing_ratio_rho_squared": inference.mixing_ratio(settings.alpha, settings.tuning_units),
            "correction": settings.correction.value,
            "tiers": {metric.name: inference.tier(metric.role) for metric in METRICS},
            "days": arguments.days,
            "daily_units_per_arm": arguments.units_per_day,
            "experiments_per_scenario": arguments.experiments,
            "variations": 2,
            "seed": SEED,
        },
        "metrics": [
            {
                "name": metric.name,
                "kind": metric.kind.value,
                "role": metric.role.value,
                "winning_direction": metric.direction.value,
                "simulated": metric.simulated,
            }
            for metric in METRICS
        ],
        "a_a_under_daily_peeking": a_a,
        "power_on_the_primary_metric": power,
        "sequential_power_by_tuning_units": tuning,
        "cuped_variance_reduction": {"primary_conversion": primary_conversion, "normal_pairs": normal_pairs},
    }
    RESULTS_FILE.write_text(json.dumps(result, indent=2) + "\n")
    report(f"wrote {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
