"""The checks `warehouse/experiment_results` evaluates itself, from what it computed: experiments without
Optimizely metadata, and defined metrics whose events no exposed unit has (both WARN: results go on)."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

RESULTS = AssetKey(["warehouse", "experiment_results"])
METADATA_PRESENT = "experiment_metadata_present"
METRIC_EVENTS_SEEN = "metric_events_seen"


def results_check_specs() -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            METADATA_PRESENT,
            asset=RESULTS,
            description="Every Optimizely experiment in the data has REST metadata (names, planned weights, "
            "metrics); one without keeps its ids and is marked `metadata: missing` (WARN).",
        ),
        AssetCheckSpec(
            METRIC_EVENTS_SEEN,
            asset=RESULTS,
            description="Every event a defined metric counts was had by some exposed unit; one nobody has "
            "is usually a misspelt name or an event no source sends (WARN).",
        ),
    ]


def metadata_present(missing: list[str]) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=METADATA_PRESENT,
        passed=not missing,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"No Optimizely metadata for {', '.join(missing)}: results keep their ids. Check that "
            "optimizely/experiments ran and that OPTIMIZELY_PROJECT_IDS includes their projects."
            if missing
            else None
        ),
        metadata={"experiments_without_metadata": MetadataValue.json(missing)},
    )


def metric_events_seen(unseen: list[dict[str, str]]) -> AssetCheckResult:
    named = [f"{entry['metric']} ({entry['experiment']}): {entry['event']}" for entry in unseen]
    return AssetCheckResult(
        check_name=METRIC_EVENTS_SEEN,
        passed=not unseen,
        severity=AssetCheckSeverity.WARN,
        description=(
            "No exposed unit has these metrics' events: " + "; ".join(named) + ". Check the names in the "
            "metrics file (or Optimizely's events)."
            if unseen
            else None
        ),
        metadata={"unseen_events": MetadataValue.json(unseen)},
    )
