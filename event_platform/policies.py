"""How an asset retries and how a range of its days runs: the policies assets declare themselves.

A source asset asks a vendor for one day, so a backfill runs it as one run per day, in parallel under
the instance's run queue, and a failed day retries alone. A warehouse model computes any range of days
in one run (day by day inside it), so a 90-day backfill of the warehouse is a single run: one process,
and one writer at a time.
"""

from typing import Any

import dagster as dg

SOURCE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3,
    delay=60,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)
"""On every source asset: 1, 2 and 4 minutes (±jitter) between attempts. The clients already retry
single requests (event_platform.retry); this covers what outlasts them: a vendor outage of minutes, a
token refreshed on the next attempt, a lost worker. A failure no retry can mend (a missing setting)
raises a Failure that allows no retries."""

PER_DAY_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
"""For an asset that handles one day per run (a vendor request per day): one run per day."""

RANGE_BACKFILL_POLICY = dg.BackfillPolicy.single_run()
"""For an asset that computes a range of days in one run and hands the IO manager one stream per day
(`lake.io_manager.PartitionStreams`)."""

SOURCE_ASSET: dict[str, Any] = {
    "retry_policy": SOURCE_RETRY_POLICY,
    "backfill_policy": PER_DAY_BACKFILL_POLICY,
}
"""The policies every source asset passes to `@asset(**SOURCE_ASSET, ...)`."""
