"""The lake's IO manager (Delta Lake tables) through real Dagster materializations, on disk and on S3."""

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    DailyPartitionsDefinition,
    asset,
    materialize,
)

from event_platform.lake import delta
from event_platform.lake.io_manager import (
    ALLOW_MISSING_PARTITIONS,
    LakeResource,
    ParquetLakeIOManager,
    PartitionStreams,
    partitions_of,
)

days = DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")


@asset(key_prefix=["src"], partitions_def=days)
def numbers(context: AssetExecutionContext) -> pa.RecordBatchReader:
    day = int(context.partition_key[-2:])
    return pa.table({"n": list(range(day)), "label": ["x"] * day}).to_reader()


@asset(key_prefix=["src"], partitions_def=days, ins={"numbers": AssetIn(key=["src", "numbers"])})
def doubled(numbers: ds.Dataset) -> pa.Table:
    table = numbers.to_table()
    return pa.table({"n2": [2 * n for n in table["n"].to_pylist()], "seen_date": table["date"]})


@asset(ins={"numbers": AssetIn(key=["src", "numbers"], metadata={ALLOW_MISSING_PARTITIONS: True})})
def total(numbers: ds.Dataset) -> pa.Table:
    return pa.table(
        {"rows": [numbers.count_rows()], "days": [len(set(numbers.to_table()["date"].to_pylist()))]}
    )


NUMBERS = pa.schema([("n", pa.int64()), ("label", pa.string())])
RANGE = {
    "dagster/asset_partition_range_start": "2026-11-02",
    "dagster/asset_partition_range_end": "2026-11-04",
}


@asset(key_prefix=["src"], partitions_def=days, backfill_policy=BackfillPolicy.single_run())
def numbers_by_range(context: AssetExecutionContext) -> PartitionStreams:
    """Like `numbers`, for any range of days in one run, one stream per day."""

    def per_day() -> Iterator[tuple[str, pa.RecordBatchReader]]:
        for key in context.partition_keys:
            day = int(key[-2:])
            yield key, pa.table({"n": list(range(day)), "label": ["x"] * day}, schema=NUMBERS).to_reader()

    return PartitionStreams(
        NUMBERS,
        per_day(),
        on_written=lambda key, meta: context.add_asset_metadata(dict(meta), partition_key=key),
    )


@asset(
    key_prefix=["src"],
    partitions_def=days,
    backfill_policy=BackfillPolicy.single_run(),
    ins={"numbers": AssetIn(key=["src", "numbers_by_range"])},
)
def days_seen(context: AssetExecutionContext, numbers: ds.Dataset) -> PartitionStreams:
    """Per day of the range, how many rows that day's slice of the input holds."""
    schema = pa.schema([("rows", pa.int64())])
    streams = (
        (key, pa.table({"rows": [partitions_of(numbers, [key]).count_rows()]}, schema=schema).to_reader())
        for key in context.partition_keys
    )
    return PartitionStreams(schema, streams)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest) -> LakeResource:
    return request.getfixturevalue("lake_resource" if request.param == "local" else "s3_lake_resource")


def resources(lake: LakeResource) -> dict[str, object]:
    return {"io_manager": ParquetLakeIOManager(lake=lake)}


def test_partitions_round_trip_as_lazy_datasets_with_metadata(lake: LakeResource) -> None:
    for key in ("2026-11-02", "2026-11-03"):
        result = materialize([numbers, doubled], partition_key=key, resources=resources(lake))
        assert result.success

    materialization = result.asset_materializations_for_node("src__numbers")[0]
    assert materialization.metadata["dagster/row_count"].value == 3
    assert materialization.metadata["files"].value == 1
    assert materialization.metadata["size"].value.endswith("B")
    assert materialization.metadata["delta_version"].value == 2, "created, then one commit per day"
    assert materialization.metadata["uri"].value.endswith("src/numbers/date=2026-11-03")
    assert [c.name for c in materialization.metadata["dagster/column_schema"].value.columns] == ["n", "label"]
    stored = delta.read(lake.lake(), "src/doubled", ["2026-11-03"]).to_table()
    assert stored["n2"].to_pylist() == [0, 2, 4]
    assert stored["seen_date"].to_pylist() == stored["date"].to_pylist() == ["2026-11-03"] * 3


def test_an_unpartitioned_reader_sees_every_materialized_partition(lake: LakeResource) -> None:
    for key in ("2026-11-02", "2026-11-04"):
        materialize([numbers], partition_key=key, resources=resources(lake))

    result = materialize([numbers.to_source_asset(), total], selection=[total], resources=resources(lake))

    stored = delta.read(lake.lake(), "total").to_table().to_pylist()
    assert result.success and stored == [{"rows": 6, "days": 2}]


def test_a_missing_upstream_partition_is_one_sentence_naming_the_asset_the_day_and_the_fix(
    lake: LakeResource,
) -> None:
    result = materialize(
        [numbers.to_source_asset(), doubled],
        partition_key="2026-11-05",
        resources=resources(lake),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    # A dagster.Failure, as Dagster reports it: not a load-input error wrapping a FileNotFoundError.
    assert error is not None and error.cls_name == "Failure" and error.cause is None
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description.startswith("src/numbers has no partition 2026-11-05 in ")
    assert description.endswith("materialize src/numbers for 2026-11-05 first.")
    assert "\n" not in description


def test_re_materializing_a_partition_replaces_it_in_one_commit(lake: LakeResource) -> None:
    for _ in range(2):
        materialize([numbers], partition_key="2026-11-03", resources=resources(lake))
    store = lake.lake()
    assert delta.read(store, "src/numbers", ["2026-11-03"]).count_rows() == 3
    table = delta.open_table(store, "src/numbers")
    assert table is not None and table.version() == 2
    assert [commit["operation"] for commit in table.history()] == ["WRITE", "WRITE", "CREATE TABLE"]
    parquet = [f for f in store.list_files("src/numbers/date=2026-11-03") if f.endswith(".parquet")]
    assert len(parquet) == 2, "the replaced version's file stays for readers of the previous snapshot"


def test_an_empty_day_is_a_materialized_partition_with_no_rows(lake: LakeResource) -> None:
    @asset(key=["src", "numbers"], partitions_def=days)
    def no_numbers() -> pa.Table:
        return NUMBERS.empty_table()

    result = materialize([no_numbers, doubled], partition_key="2026-11-03", resources=resources(lake))

    assert result.success
    meta = result.asset_materializations_for_node("src__numbers")[0].metadata
    assert (meta["dagster/row_count"].value, meta["files"].value) == (0, 1)
    assert delta.read(lake.lake(), "src/numbers", ["2026-11-03"]).count_rows() == 0


def test_anything_but_arrow_is_refused(lake: LakeResource) -> None:
    @asset
    def a_list() -> list[int]:
        return [1, 2]

    result = materialize([a_list], resources=resources(lake), raise_on_error=False)
    assert not result.success
    assert "stores a pyarrow.Table, a pyarrow.RecordBatchReader or PartitionStreams" in str(result.all_events)


def test_a_range_run_writes_each_partition_with_its_own_metadata(lake: LakeResource) -> None:
    result = materialize([numbers_by_range, days_seen], tags=RANGE, resources=resources(lake))

    assert result.success
    materializations = {
        m.partition: m.metadata for m in result.asset_materializations_for_node("src__numbers_by_range")
    }
    assert sorted(materializations) == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert {key: meta["dagster/row_count"].value for key, meta in materializations.items()} == {
        "2026-11-02": 2,
        "2026-11-03": 3,
        "2026-11-04": 4,
    }
    assert materializations["2026-11-03"]["uri"].value.endswith("src/numbers_by_range/date=2026-11-03")
    assert [m["delta_version"].value for _, m in sorted(materializations.items())] == [1, 2, 3]
    store = lake.lake()
    for key, rows in (("2026-11-02", 2), ("2026-11-04", 4)):
        assert delta.read(store, "src/numbers_by_range", [key]).count_rows() == rows
    # The downstream range run saw each day's slice of its range input, not the whole range.
    seen = delta.read(store, "src/days_seen")
    assert sorted(seen.to_table().to_pylist(), key=lambda row: row["date"]) == [
        {"rows": 2, "date": "2026-11-02"},
        {"rows": 3, "date": "2026-11-03"},
        {"rows": 4, "date": "2026-11-04"},
    ]


def test_a_range_run_must_hand_over_one_stream_per_partition(lake: LakeResource) -> None:
    @asset(key_prefix=["src"], partitions_def=days, backfill_policy=BackfillPolicy.single_run())
    def one_table_for_a_range() -> pa.Table:
        return pa.table({"n": [1]})

    @asset(key_prefix=["src"], partitions_def=days, backfill_policy=BackfillPolicy.single_run())
    def forgets_a_day() -> PartitionStreams:
        return PartitionStreams(NUMBERS, [("2026-11-02", NUMBERS.empty_table().to_reader())])

    for broken, message in (
        (one_table_for_a_range, "returned one table"),
        (forgets_a_day, "no stream for partitions 2026-11-03, 2026-11-04"),
    ):
        result = materialize([broken], tags=RANGE, resources=resources(lake), raise_on_error=False)
        assert not result.success
        assert message in str(result.all_events)
