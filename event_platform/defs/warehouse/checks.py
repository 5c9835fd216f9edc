"""Checks on `warehouse/experiment_results`: every variation has units, sample-ratio mismatches are
surfaced with what the experiment's owners wrote about it, experiments without Optimizely metadata and
metrics counting events nobody has are named (the sandbox registers its own check of planted truth).

Those two are evaluated by the asset itself from what it computed (`results_checks.py`, which imports
nothing of the sandbox); these read the stored table."""

from typing import Any

import pyarrow.dataset as ds
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from event_platform.defs.warehouse.results_checks import RESULTS
from event_platform.warehouse.summary import p_phrase

UNIT_COLUMNS = [
    "experiment_id",
    "experiment_name",
    "experiment_description",
    "variation_id",
    "variation_name",
    "planned_weight",
    "units",
    "srm_flagged",
    "srm_p_value",
]


def _units_by_variation(results: ds.Dataset) -> list[dict[str, Any]]:
    """One row per experiment and variation (the results repeat them for every metric)."""
    table = results.to_table(columns=UNIT_COLUMNS)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for row in table.to_pylist():
        seen.setdefault((row["experiment_id"], row["variation_id"]), row)
    return list(seen.values())


@asset_check(asset=RESULTS, description="Every variation of every experiment has units to compare.")
def units_in_every_variation(experiment_results: ds.Dataset) -> AssetCheckResult:
    rows = _units_by_variation(experiment_results)
    empty = [f"{row['experiment_id']}/{row['variation_id']}" for row in rows if row["units"] == 0]
    return AssetCheckResult(
        passed=not empty,
        metadata={"variations": len(rows), "variations_without_units": MetadataValue.json(empty)},
    )


@asset_check(
    asset=RESULTS,
    description="No experiment's allocation departs from its configured split (chi-square, p < srm_alpha): "
    "a mismatch means assignment or logging is broken and the experiment's lifts cannot be trusted.",
)
def no_sample_ratio_mismatch(experiment_results: ds.Dataset) -> AssetCheckResult:
    rows = _units_by_variation(experiment_results)
    flagged: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["srm_flagged"]:
            entry = flagged.setdefault(
                row["experiment_name"] or row["experiment_id"],
                {
                    "experiment_id": row["experiment_id"],
                    "description": row["experiment_description"],
                    "p_value": row["srm_p_value"],
                    "units": {},
                    "planned": {},
                },
            )
            variation = row["variation_name"] or row["variation_id"]
            entry["units"][variation] = row["units"]
            entry["planned"][variation] = row["planned_weight"]
    # What the experiment's owners wrote travels with the finding (a planted fault says so there).
    described = [
        f"{name} ({p_phrase(entry['p_value'])})"
        + (f": {entry['description']}" if entry["description"] else "")
        for name, entry in flagged.items()
    ]
    return AssetCheckResult(
        passed=not flagged,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(described) or None,
        metadata={"flagged_experiments": MetadataValue.json(flagged)},
    )
