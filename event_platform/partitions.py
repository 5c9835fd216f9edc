"""The one partitioning every asset shares: UTC days, from EVENT_PLATFORM_START_DATE to yesterday.

A day becomes a partition once it is over (UTC). The checks of a daily asset are partitioned the same
way, so each result belongs to the day it checked, however many days run at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from event_platform import settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.Platform.read().start_date.isoformat(), timezone="UTC"
)


def daily_asset_check(**kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetChecksDefinition]:
    """`dagster.asset_check(**kwargs)` for a daily asset, evaluated per day.

    An unpartitioned check of a partitioned asset records its result without a day: the UI then shows
    it against whichever day materialized last, and the day the run planned it for stays "Skipped".
    """

    def decorate(function: Callable[..., Any]) -> dg.AssetChecksDefinition:
        with _partitioned_checks():
            return dg.asset_check(partitions_def=daily_partitions, **kwargs)(function)

    return decorate


def daily_check_spec(name: str, *, asset: dg.AssetKey, description: str) -> dg.AssetCheckSpec:
    """An `AssetCheckSpec` of a daily asset that evaluates its checks in its own body, per day."""
    with _partitioned_checks():
        return dg.AssetCheckSpec(name, asset=asset, description=description, partitions_def=daily_partitions)


@contextmanager
def _partitioned_checks() -> Iterator[None]:
    """Partitioned checks are a "preview" in Dagster 1.13, and the only way a check result names its
    day: we opt in here, once, so the warning does not repeat on every load of the code location."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield
