"""What the sandbox world plants, and whether the warehouse finds it (for the sandbox-truth check).

The world decides once per person and experiment whether that person converts (`World.converts`), and
a converter converts on the experiment's own metric event on every day they are exposed. So the share of
exposure days with a conversion (`visit_rates.sql`) and the share of units converting are both
the variation's planted `conversion_rate`, however many days people visit.
A planted sample-ratio mismatch is expected to be flagged only when the units give the test a 99.9%
chance to see it (otherwise a small world would fail the check by bad luck).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy import special

from event_platform.sandbox.world import Experiment, World

CHECK_CONFIDENCE = 0.999
DETECTION_POWER = 0.999


def planted_rate(experiment: Experiment, variation_id: str) -> float:
    return next(v for v in experiment.variations if v.id == variation_id).conversion_rate


def srm_detectable(experiment: Experiment, total_units: int, alpha: float) -> bool:
    """Whether a chi-square test at `alpha` finds the planted split with probability DETECTION_POWER
    (normal approximation of the noncentral chi-square for one degree of freedom)."""
    equal = 1.0 / len(experiment.variations)
    noncentrality = total_units * sum((v.traffic_share - equal) ** 2 / equal for v in experiment.variations)
    needed = float(special.ndtri(1.0 - alpha / 2.0) + special.ndtri(DETECTION_POWER))
    return math.sqrt(noncentrality) >= needed


def wilson_interval(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval of a rate (as scipy.stats.binomtest(...).proportion_ci(method="wilson"),
    tested equal; scipy.stats itself is not imported in the code location for this one check)."""
    z = float(special.ndtri(0.5 + confidence / 2.0))
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return centre - half, centre + half


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def judge(
    world: World,
    visit_rates: Sequence[Mapping[str, Any]],
    units_by_experiment: Mapping[str, Mapping[str, int]],
    flagged: set[str],
    alpha: float,
) -> Verdict:
    """Compare measured per-visit rates and SRM flags with what `world` planted."""
    verdict = Verdict()
    planted = {experiment.id: experiment for experiment in world.experiments}
    for row in visit_rates:
        experiment = planted.get(row["experiment_id"])
        if experiment is None or row["visits"] == 0:
            continue
        expected = planted_rate(experiment, row["variation_id"])
        low, high = wilson_interval(row["converted_visits"], row["visits"], CHECK_CONFIDENCE)
        measured = row["converted_visits"] / row["visits"]
        verdict.details.append(
            {
                "experiment": experiment.name,
                "variation": row["variation_id"],
                "expected": round(expected, 5),
                "measured": round(measured, 5),
                "interval": [round(low, 5), round(high, 5)],
                "visits": row["visits"],
            }
        )
        if not low <= expected <= high:
            verdict.problems.append(
                f"{experiment.name} variation {row['variation_id']}: planted per-visit rate "
                f"{expected:.4f} outside the {CHECK_CONFIDENCE:.1%} interval [{low:.4f}, {high:.4f}] "
                f"of {row['visits']} visits"
            )
    for experiment_id, units in units_by_experiment.items():
        experiment = planted.get(experiment_id)
        if experiment is None:
            continue
        missing = [v.id for v in experiment.variations if units.get(v.id, 0) == 0]
        if missing:
            verdict.problems.append(f"{experiment.name}: no units in variations {', '.join(missing)}")
        if experiment.sample_ratio_mismatch and experiment_id not in flagged:
            if srm_detectable(experiment, sum(units.values()), alpha):
                verdict.problems.append(
                    f"{experiment.name}: the planted sample-ratio mismatch was not flagged"
                )
        elif not experiment.sample_ratio_mismatch and experiment_id in flagged:
            verdict.problems.append(
                f"{experiment.name}: flagged for a sample-ratio mismatch the world did not plant"
            )
    return verdict
