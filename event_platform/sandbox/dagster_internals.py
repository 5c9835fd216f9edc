"""The one module that imports Dagster's private modules (`dagster._...`): filing and reading asset backfills.

Dagster 1.13 has no public Python API to file an asset backfill or read its status: the public ways are
the UI's *Materialize → partition range* and the webserver's GraphQL mutation `launchPartitionBackfill`
(with `partitionBackfillOrError` to read it), and both need a running webserver. The demo, the backfill
benchmark and the backfill test run only the daemon, so they file it here as the webserver does. When
Dagster publishes a Python API for asset backfills, it replaces this module; nothing else imports `dagster._`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.selector import (
    PartitionRangeSelector,
    PartitionsByAssetSelector,
    PartitionsSelector,
)
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster._core.utils import make_new_backfill_id

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "BACKFILL_SUCCEEDED",
    "BACKFILL_TERMINAL",
    "PARTITION_NAME_TAG",
    "backfill_status",
    "submit_asset_backfill",
]

BACKFILL_TERMINAL = frozenset(
    status.value
    for status in (
        # A job backfill (`dagster job backfill`) is COMPLETED once its runs are queued; its runs are
        # followed.
        BulkActionStatus.COMPLETED,
        BulkActionStatus.COMPLETED_SUCCESS,
        BulkActionStatus.COMPLETED_FAILED,
        BulkActionStatus.FAILED,
        BulkActionStatus.CANCELED,
    )
)
BACKFILL_SUCCEEDED = frozenset({BulkActionStatus.COMPLETED.value, BulkActionStatus.COMPLETED_SUCCESS.value})


def submit_asset_backfill(
    instance: dg.DagsterInstance,
    asset_graph: BaseAssetGraph,
    asset_keys: Sequence[dg.AssetKey],
    partition_keys: Sequence[str],
    title: str,
) -> str:
    """File an asset backfill of `asset_keys` over the consecutive days `partition_keys`; the daemon runs
    it. Its id."""
    days = PartitionsSelector(
        ranges=[PartitionRangeSelector(start=partition_keys[0], end=partition_keys[-1])]
    )
    backfill = PartitionBackfill.from_partitions_by_assets(
        backfill_id=make_new_backfill_id(),
        asset_graph=asset_graph,
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        partitions_by_assets=[
            PartitionsByAssetSelector(
                asset_key=key, partitions=days if asset_graph.get(key).partitions_def else None
            )
            for key in asset_keys
        ],
        title=title,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_status(instance: dg.DagsterInstance, backfill_id: str) -> str | None:
    """The backfill's status (a `BulkActionStatus` value), or None when the instance has no such backfill."""
    backfill = instance.get_backfill(backfill_id)
    return backfill.status.value if backfill else None
