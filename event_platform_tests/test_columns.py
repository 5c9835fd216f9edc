from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from event_platform.columns import column, column_description
from event_platform.lake.io_manager import column_schema


def test_a_columns_description_travels_with_its_schema_into_dagsters_column_schema() -> None:
    schema = pa.schema(
        [column("uuid", pa.string(), "The event's primary key."), pa.field("plain", pa.int64())]
    )

    assert column_description(schema.field("uuid")) == "The event's primary key."
    assert column_description(schema.field("plain")) is None
    shown = {entry.name: entry for entry in column_schema(schema).columns}
    assert shown["uuid"].description == "The event's primary key."
    assert shown["uuid"].type == "string"
    assert shown["plain"].description is None


def test_a_description_survives_a_cast_and_a_parquet_round_trip(tmp_path: Path) -> None:
    schema = pa.schema([column("n", pa.int64(), "How many.")])
    table = pa.table({"n": pa.array([1, 2], pa.int32())}).cast(schema)
    pq.write_table(table, tmp_path / "t.parquet")

    assert column_description(pq.read_schema(tmp_path / "t.parquet").field("n")) == "How many."
