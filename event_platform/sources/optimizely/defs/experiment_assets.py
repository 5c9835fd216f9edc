"""optimizely/experiments and optimizely/experiment_metrics: the account's experiment metadata, a
snapshot per day.

The REST API has no history: a day's partition holds the metadata as it was read when that day ran
(`snapshot_at`). The warehouse reads the latest snapshot at or before the day it analyses, and an
experiment missing from every snapshot keeps its ids there (marked `metadata: missing`): metadata never
blocks results. Both tables are requested with the day's E3 data (the E3 sensor selects them too) and
by the `daily_events` job; metadata changes rarely, so once a day is enough.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    MetadataValue,
    Output,
    multi_asset,
)

from event_platform.markdown import markdown_table
from event_platform.partitions import daily_partitions
from event_platform.policies import SOURCE_ASSET, only_outages_retry
from event_platform.sources.optimizely import SOURCE
from event_platform.sources.optimizely.defs.resources import OptimizelyResource
from event_platform.sources.optimizely.experiments import read_snapshot

SOURCE_NAME = SOURCE.name
EXPERIMENTS = AssetKey([SOURCE_NAME, "experiments"])
EXPERIMENT_METRICS = AssetKey([SOURCE_NAME, "experiment_metrics"])
METADATA_KINDS = {"optimizely", "rest"}


@multi_asset(
    name="optimizely_experiment_metadata",
    outs={
        "experiments": AssetOut(
            key=EXPERIMENTS,
            group_name=SOURCE_NAME,
            kinds=METADATA_KINDS,
            description="Optimizely's experiments as the REST API describes them on this day: one row per "
            "experiment and variation, with names, status, planned weights (basis points and share) and "
            "the baseline. Web experiments from /v2/experiments, Feature Experimentation rules from the "
            "Flags API (experiment_id = layer_experiment_id).",
        ),
        "experiment_metrics": AssetOut(
            key=EXPERIMENT_METRICS,
            group_name=SOURCE_NAME,
            kinds=METADATA_KINDS,
            description="Each Optimizely experiment's configured metrics in order (index 0 primary, 1-4 "
            "secondary, 5+ monitoring), with the event each one counts resolved to its key and name.",
        ),
    },
    partitions_def=daily_partitions,
    **SOURCE_ASSET,
)
def experiment_metadata(context: AssetExecutionContext, optimizely: OptimizelyResource) -> Iterator[Output]:
    with only_outages_retry():
        client = optimizely.rest_client()
        snapshot = read_snapshot(client, optimizely.rest_project_ids())
    for skipped in snapshot.skipped_projects:
        context.log.warning("Optimizely project %s skipped: %s", skipped["id"], skipped["reason"])
    shared = {
        "snapshot_at": MetadataValue.timestamp(snapshot.snapshot_at),
        "projects": MetadataValue.md(
            markdown_table(snapshot.projects, ["id", "name", "platform", "experiments"])
        ),
        "skipped_projects": MetadataValue.json(snapshot.skipped_projects),
        "requests": MetadataValue.int(client.requests_made),
    }
    yield Output(
        snapshot.experiments_table(),
        output_name="experiments",
        metadata={**shared, "experiments": MetadataValue.int(snapshot.experiment_count)},
    )
    yield Output(
        snapshot.metrics_table(),
        output_name="experiment_metrics",
        metadata={**shared, "metrics": MetadataValue.int(len(snapshot.metrics))},
    )
