"""Source assets retry an outage under their RetryPolicy, and fail at once on anything else."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.policies import failing_plainly, only_outages_retry, only_outages_retry_while_reading
from event_platform.retry import RetriesExhaustedError, TransientError
from event_platform.sources.amplitude.landing import DayNotReadyError

IMMEDIATE_RETRIES = dg.RetryPolicy(max_retries=2)


def attempts_until_done(error: Exception) -> tuple[int, str]:
    """Materialize an asset whose body raises `error` under `only_outages_retry`: its attempts, and
    what the run reported."""
    attempts: list[int] = []

    @dg.asset(retry_policy=IMMEDIATE_RETRIES)
    def vendor_day() -> None:
        attempts.append(1)
        with only_outages_retry():
            raise error

    result = dg.materialize([vendor_day], raise_on_error=False)
    assert not result.success
    return len(attempts), str(result.all_events)


@pytest.mark.parametrize(
    "outage",
    [RetriesExhaustedError("export failed after 6 attempts: 503"), TransientError("truncated body")],
)
def test_an_outage_is_retried_by_the_policy(outage: Exception) -> None:
    attempts, _ = attempts_until_done(outage)
    assert attempts == 1 + IMMEDIATE_RETRIES.max_retries


@pytest.mark.parametrize(
    "permanent",
    [ValueError("member 3 is not gzip"), PermissionError("401: check AMPLITUDE_API_KEY for region us")],
)
def test_anything_else_fails_at_once_and_says_what(permanent: Exception) -> None:
    attempts, report = attempts_until_done(permanent)
    assert attempts == 1
    assert f"{type(permanent).__name__}: {permanent}" in report


def test_an_error_found_while_the_io_manager_reads_fails_at_once_too(tmp_path: Path) -> None:
    attempts: list[int] = []
    schema = pa.schema([("n", pa.int64())])

    def corrupt() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"n": [1]}, schema=schema)
        raise ValueError("part-00003 is not Parquet")

    @dg.asset(retry_policy=IMMEDIATE_RETRIES)
    def vendor_day() -> pa.RecordBatchReader:
        attempts.append(1)
        return only_outages_retry_while_reading(pa.RecordBatchReader.from_batches(schema, corrupt()))

    lake = LakeResource(root=str(tmp_path))
    result = dg.materialize(
        [vendor_day], resources={"io_manager": ParquetLakeIOManager(lake=lake)}, raise_on_error=False
    )
    assert not result.success and len(attempts) == 1
    assert "ValueError: part-00003 is not Parquet" in str(result.all_events)


def test_an_error_that_names_its_fix_fails_as_that_sentence_alone() -> None:
    """Amplitude's day not exported yet says from when: no type name, no trace of the frames raising it."""
    not_ready = DayNotReadyError(
        "Amplitude's export of 2026-11-30 is complete only from 2026-12-01 03:00 UTC (hours become "
        "exportable about 2 hours after Amplitude receives them); try again then."
    )
    attempts: list[int] = []

    @dg.asset(retry_policy=IMMEDIATE_RETRIES)
    def vendor_day() -> None:
        attempts.append(1)
        with only_outages_retry(), failing_plainly(DayNotReadyError):
            raise not_ready

    result = dg.materialize([vendor_day], raise_on_error=False)
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert len(attempts) == 1
    assert error is not None and error.cls_name == "Failure" and error.cause is None
    assert failure.step_failure_data.user_failure_data.description == str(not_ready)  # type: ignore[union-attr]
