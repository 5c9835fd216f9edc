"""Converting a lake of the manifest format (before Delta Lake) in place: `event-platform lake migrate`.

Before, a typed table was `<table>/date=D/` directories of Parquet files, each with a `_manifest.json`
naming its committed version's files and the replaced ones kept for readers. Each such table becomes a
Delta table in one commit whose files are exactly the manifests' committed files, where they lie: no
data is copied or rewritten. Then the manifests go, and with them the replaced files they kept.

Raw landings (`raw/`) and quarantine (`quarantine/`) are not tables and stay as they are. Running it
again converts what is left and changes nothing else: a table that already has a Delta log is only
cleared of manifests an interrupted run left behind. Stop the platform's runs while it works: a run
writing the old format meanwhile would not be seen by the new table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import Schema
from deltalake.transaction import CommitProperties, create_table_with_add_actions

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import OUTSIDE_TABLES, PARTITION_KEY, partition_keys, partition_path
from event_platform.lake.publish import MANIFEST_NAME, Manifest


@dataclass
class MigratedTable:
    table: str
    partitions: int = 0
    files: int = 0
    rows: int = 0
    version: int | None = None
    """The Delta version created; None when the table was already a Delta table."""
    manifests_removed: int = 0
    replaced_files_removed: int = 0


@dataclass
class MigrationReport:
    tables: list[MigratedTable] = field(default_factory=list)

    @property
    def converted(self) -> list[MigratedTable]:
        return [table for table in self.tables if table.version is not None]


@dataclass(frozen=True)
class _Partition:
    key: str | None
    directory: str
    manifest: Manifest


def migrate(lake: Lake, log: Callable[[str], None] = lambda message: None) -> MigrationReport:
    """Convert every manifest-format table of the lake to a Delta table; what was done, per table."""
    report = MigrationReport()
    for table in manifest_tables(lake):
        migrated = _migrate_table(lake, table)
        report.tables.append(migrated)
        if migrated.version is not None:
            log(
                f"{table}: {migrated.partitions} partition(s), {migrated.files} file(s), "
                f"{migrated.rows} row(s) -> Delta version {migrated.version}"
            )
        else:
            log(f"{table}: already a Delta table; {migrated.manifests_removed} leftover manifest(s) removed")
    return report


def manifest_tables(lake: Lake, under: str = "") -> list[str]:
    """Directories holding manifest-format partitions (or an unpartitioned manifest), raw landings,
    quarantine and staged writes aside, sorted."""
    names = lake.list_dirs(under)
    if any(name.startswith(f"{PARTITION_KEY}=") for name in names) or (
        under and lake.exists(f"{under}/{MANIFEST_NAME}")
    ):
        return [under]
    found: list[str] = []
    for name in names:
        if (not under and name in OUTSIDE_TABLES) or name == delta.LOG_DIR:
            continue
        found += manifest_tables(lake, f"{under}/{name}".strip("/"))
    return sorted(found)


def _partitions(lake: Lake, table: str) -> list[_Partition]:
    found = []
    if (manifest := lake.read_manifest(table)) is not None:
        found.append(_Partition(None, table, manifest))
    for key in partition_keys(lake.list_dirs(table)):
        directory = partition_path(table, key)
        if (manifest := lake.read_manifest(directory)) is not None:
            found.append(_Partition(key, directory, manifest))
    return found


def _migrate_table(lake: Lake, table: str) -> MigratedTable:
    migrated = MigratedTable(table)
    partitions = _partitions(lake, table)
    if not delta.is_table(lake, table):
        _commit_as_delta(lake, table, partitions, migrated)
    for partition in partitions:
        for replaced in partition.manifest.replaced:
            if lake.exists(f"{partition.directory}/{replaced.path}"):
                lake.delete(f"{partition.directory}/{replaced.path}")
                migrated.replaced_files_removed += 1
        lake.delete(f"{partition.directory}/{MANIFEST_NAME}")
        migrated.manifests_removed += 1
    return migrated


def _commit_as_delta(lake: Lake, table: str, partitions: list[_Partition], migrated: MigratedTable) -> None:
    keyed = {partition.key is not None for partition in partitions}
    if len(keyed) != 1:
        raise ValueError(
            f"{lake.uri(table)} holds both a manifest of its own and date= partitions: move one aside, "
            "then run the migration again."
        )
    partitioned = keyed == {True}
    files, schemas = [], []
    for partition in partitions:
        for entry in partition.manifest.files:
            relative = f"{partition.directory}/{entry.path}"
            metadata = pq.read_metadata(lake.open_input_file(relative))
            schemas.append(metadata.schema.to_arrow_schema())
            files.append((relative[len(table) :].lstrip("/"), entry.bytes, partition.key, metadata))
            migrated.rows += metadata.num_rows
        migrated.partitions += 1
    if not files:
        return
    schema = _delta_compatible(pa.unify_schemas(schemas, promote_options="permissive"))
    actions = [delta.add_action(*file, schema.names) for file in files]
    if partitioned:
        if PARTITION_KEY in schema.names:
            raise ValueError(
                f"{lake.uri(table)}: its files hold a `{PARTITION_KEY}` column beside the date= directories; "
                "the Delta table takes the date from the partition. Rewrite those files without it first."
            )
        schema = schema.append(delta.PARTITION_FIELD)
    create_table_with_add_actions(
        delta.table_uri(lake, table),
        Schema.from_arrow(schema),
        actions,
        mode="error",
        partition_by=[PARTITION_KEY] if partitioned else None,
        name=table,
        configuration=delta.TABLE_PROPERTIES,
        storage_options=delta.storage_options(lake),
        commit_properties=CommitProperties(custom_metadata={"event_platform.migrated_from": "manifests"}),
    )
    migrated.files = len(actions)
    snapshot = delta.open_table(lake, table)
    migrated.version = snapshot.version() if snapshot is not None else None


def _delta_compatible(schema: pa.Schema) -> pa.Schema:
    """Delta Lake stores timestamps in microseconds: a file's milliseconds read back as microseconds."""
    return pa.schema(
        [
            field.with_type(pa.timestamp("us", tz=field.type.tz))
            if pa.types.is_timestamp(field.type) and field.type.unit != "us"
            else field
            for field in schema
        ],
        metadata=schema.metadata,
    )
