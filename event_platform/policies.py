"""How an asset retries and how a range of its days runs: the policies assets declare themselves.

A source asset asks a vendor for one day, so a backfill runs it as one run per day, in parallel under
the instance's run queue, and a failed day retries alone. A warehouse model computes any range of days
in one run (day by day inside it), so a 90-day backfill of the warehouse is a single run: one process,
and one writer at a time.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pyarrow as pa

from event_platform.retry import RETRYABLE_EXCEPTIONS, RetriesExhaustedError

SOURCE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3,
    delay=60,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)
"""On every source asset: 1, 2 and 4 minutes (±jitter) between attempts. The clients already retry
single requests (event_platform.retry); this covers what outlasts them: a vendor outage of minutes, a
token refreshed on the next attempt, a lost worker. The assets' bodies run under `only_outages_retry`,
so a failure no retry can mend (a refused key, a corrupt file, a missing setting) fails at once."""

PER_DAY_BACKFILL_POLICY = None
"""For an asset that handles one day per run (a vendor request per day): Dagster's default, a run per
day tagged with its day (`dagster/partition`). `BackfillPolicy.multi_run(max_partitions_per_run=1)`
also runs a day per run, but tags each as a one-day range: in such a run a check's result carries no
day, so the UI filed it under whichever day materialized last and left the day checked "Skipped"."""

RANGE_BACKFILL_POLICY = dg.BackfillPolicy.single_run()
"""For an asset that computes a range of days in one run and hands the IO manager one stream per day
(`lake.io_manager.PartitionStreams`)."""


def ignore_backfill_policy_beta() -> None:
    """`backfill_policy` is a "beta" parameter of `@asset` in Dagster 1.13, and the policies above are
    how sources run a day per run and the warehouse ranges in one: said here, not on every load."""
    warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


ignore_backfill_policy_beta()  # for the assets declared at import

SOURCE_ASSET: dict[str, Any] = {
    "retry_policy": SOURCE_RETRY_POLICY,
    "backfill_policy": PER_DAY_BACKFILL_POLICY,
}
"""The policies every source asset passes to `@asset(**SOURCE_ASSET, ...)`."""


OUTAGES: tuple[type[BaseException], ...] = (
    RetriesExhaustedError,
    *RETRYABLE_EXCEPTIONS,
    ConnectionError,
    TimeoutError,
)
"""What may pass if the step runs again later: a vendor outage that outlasted the client's own retries,
a dropped connection, a timeout."""


@contextmanager
def only_outages_retry() -> Iterator[None]:
    """Wrap a source asset's body: `SOURCE_RETRY_POLICY` retries an outage, and any other error (a key
    refused, a corrupt export, a schema that changed, a bug) fails the step at once, as a Failure that
    allows no retries, instead of three more attempts minutes apart that would fail the same way."""
    try:
        yield
    except (*OUTAGES, dg.Failure):
        raise
    except Exception as error:
        raise dg.Failure(description=f"{type(error).__name__}: {error}", allow_retries=False) from error


@contextmanager
def failing_plainly(*explained: type[Exception]) -> Iterator[None]:
    """Errors of the `explained` types already say what happened and what to do (a day not exported
    yet, an upstream day never landed): they fail the step with that sentence alone, without retries
    and without the type name and the frames that raised them, which only bury it."""
    try:
        yield
    except explained as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def only_outages_retry_while_reading(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """`reader`'s rows, read under `only_outages_retry`: the IO manager reads an asset's stream after
    its body has returned, and a corrupt file found then must fail at once too."""

    def batches() -> Iterator[pa.RecordBatch]:
        with only_outages_retry():
            yield from reader

    return pa.RecordBatchReader.from_batches(reader.schema, batches())
