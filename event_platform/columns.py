"""What each stored column means: a table's Arrow schema carries its columns' descriptions.

A description lives in the field's metadata under `description`, so the one schema a table is cast to
also documents it: the IO manager shows it in Dagster's column schema, and the analysts' catalog turns
it into `COMMENT ON COLUMN` in `warehouse.duckdb`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

DESCRIPTION = b"description"


def column(
    name: str,
    data_type: pa.DataType,
    description: str,
    *,
    nullable: bool = True,
    metadata: Mapping[str, str] | None = None,
) -> pa.Field:
    """A field of a stored table, with what it means (and any other field `metadata`)."""
    extra = {key.encode(): value.encode() for key, value in (metadata or {}).items()}
    return pa.field(name, data_type, nullable=nullable, metadata={**extra, DESCRIPTION: description.encode()})


def column_description(field: pa.Field) -> str | None:
    """The field's description, or None when the schema does not say."""
    raw = (field.metadata or {}).get(DESCRIPTION)
    return raw.decode() if raw else None
