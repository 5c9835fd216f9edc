"""Forgetting a person: their Profile Store events go from the vendor, the lake and the warehouse.

Who: an e-mail address (matched through its pseudonym, `user_email_key`) or a DeviceId (stored clear).
1. Find the person's events in `profile_store/events` (every partition): their keys, scopes, TrackIds.
2. Delete each at the vendor (`DELETE api/v2.0/TrackEvents/{scope}/{TrackId}`; 404 = already gone).
   This comes first: if it fails, the lake still holds what a re-run needs to find the events again.
3. Remove them from the lake:
   - every Delta table (profile_store/events and anything derived from it, such as warehouse/events):
     one Delta DELETE of the rows whose string columns hold one of the events' keys or the e-mail
     pseudonym, then the files of earlier versions and the log entries before it go at once
     (`lake.delta.erase`): no old version, and no DELETE predicate in the log, still names them;
   - raw/profile_store pages, rewritten through `lake.write_partition` (atomic), replaced versions
     deleted at once (`ERASE_AT_ONCE`): events whose key is one of those, or whose own User.Email /
     DeviceId is the person's;
   - quarantine/profile_store/events (untypable, maybe not even JSON), likewise: lines holding the
     identifier or a key anywhere.
   The raw manifest's `total_reported` drops by what was removed, so the row-count check stays true.
4. In the warehouse DuckDB file (if it exists): delete rows of every base table whose VARCHAR columns
   hold the pseudonym or a key; then re-publish the catalog so its views name the rewritten files.
A DeviceId is not searched outside Profile Store data: Amplitude shares it, and its data is not ours.
Nothing here logs or returns the e-mail address itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import PARTITION_KEY, partition_keys, quarantine_path, raw_path
from event_platform.lake.publish import MANIFEST_NAME, ManifestFile
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sources.profile_store import landing
from event_platform.sources.profile_store.client import ProfileStoreClient
from event_platform.sources.profile_store.transform import event_key
from event_platform.staging import gzip_lines, sql_text

ERASE_AT_ONCE = dt.timedelta(0)
"""Forgotten data must not outlive the rewrite, even for a reader mid-scan."""

PER_FILE_COUNTS = ("events", "lines")
FORGOTTEN = "forgotten_events"
"""Manifest metadata: how many events of the partition were removed at a person's request."""


@dataclass(frozen=True)
class Person:
    column: str
    """The `profile_store/events` column that identifies them: user_email_key or device_id."""
    value: str
    description: str
    """How logs may name them: never the e-mail address."""

    @classmethod
    def by_email(cls, email: str, pseudonymiser: Pseudonymiser) -> Person:
        key = pseudonymiser.email(email)
        return cls("user_email_key", key, f"the person with e-mail key {key[:17]}…")

    @classmethod
    def by_email_key(cls, key: str) -> Person:
        return cls("user_email_key", key, f"the person with e-mail key {key[:17]}…")

    @classmethod
    def by_device_id(cls, device_id: str) -> Person:
        return cls("device_id", device_id, f"the person with device {device_id}")


@dataclass(frozen=True)
class FoundEvent:
    day: str
    event_key: str
    scope: str | None
    track_id: str | None


@dataclass
class ForgetReport:
    events_found: int = 0
    vendor_deleted: int = 0
    vendor_unknown: int = 0
    vendor_without_track_id: int = 0
    replaced_files_deleted: int = 0
    """Files of replaced raw and quarantine versions, kept for readers, deleted before the search."""
    table_rows: dict[str, int] = field(default_factory=dict)
    """Lake table (Delta) -> rows deleted."""
    raw_events: dict[str, int] = field(default_factory=dict)
    quarantine_lines: dict[str, int] = field(default_factory=dict)
    warehouse_rows: dict[str, int] = field(default_factory=dict)
    """Warehouse table -> rows removed."""
    warehouse: str = "not looked at"


def find_events(lake: Lake, person: Person) -> list[FoundEvent]:
    """The person's events in every partition of `profile_store/events`."""
    matches = delta.read(lake, landing.TABLE, allow_missing=True)
    if not matches.schema.names:
        return []
    rows = matches.to_table(
        columns=[PARTITION_KEY, "event_key", "scope", "track_id"],
        filter=ds.field(person.column) == person.value,
    )
    return [FoundEvent(row.pop(PARTITION_KEY), **row) for row in rows.to_pylist()]


def delete_at_vendor(client: ProfileStoreClient, found: Iterable[FoundEvent], report: ForgetReport) -> None:
    for event in found:
        if not (event.track_id and event.scope):
            report.vendor_without_track_id += 1
        elif client.delete(event.scope, event.track_id):
            report.vendor_deleted += 1
        else:
            report.vendor_unknown += 1


def forget(
    person: Person,
    *,
    lake: Lake,
    client: ProfileStoreClient,
    warehouse: Path,
    republish: Callable[[Lake, Path], object],
    log: Callable[[str], None] = lambda message: None,
) -> ForgetReport:
    report = ForgetReport()
    # Raw and quarantine versions kept for readers may hold the person too: they go first.
    report.replaced_files_deleted = drop_replaced_versions(lake)
    found = find_events(lake, person)
    report.events_found = len(found)
    log(f"Found {len(found)} Profile Store event(s) of {person.description}.")
    delete_at_vendor(client, found, report)
    keys = {event.event_key for event in found}
    # The e-mail pseudonym names the person anywhere; a DeviceId only inside Profile Store data.
    everywhere = keys | ({person.value} if person.column == "user_email_key" else set())
    report.table_rows = remove_from_tables(lake, everywhere)
    report.raw_events = remove_from_raw_pages(lake, keys, person)
    report.quarantine_lines = remove_from_quarantine(lake, keys | {person.value})
    report.warehouse_rows, report.warehouse = remove_from_warehouse(warehouse, everywhere)
    if report.warehouse != "absent" and (report.table_rows or report.raw_events):
        republish(lake, warehouse)
        report.warehouse += "; catalog re-published"
    return report


def drop_replaced_versions(lake: Lake) -> int:
    """Delete the kept replaced versions of every raw and quarantine partition (see `lake.publish`)."""
    manifests = [
        path
        for place in ("raw", "quarantine")
        for path in lake.list_files(place)
        if path.rpartition("/")[2] == MANIFEST_NAME
    ]
    return sum(lake.drop_replaced(path.rpartition("/")[0]) for path in manifests)


# ---- Delta tables --------------------------------------------------------------------------------


def remove_from_tables(lake: Lake, identifiers: set[str]) -> dict[str, int]:
    """Delete the rows holding an identifier in any string column, table by table; table -> rows."""
    if not identifiers:
        return {}
    values = ", ".join(sql_text(value) for value in sorted(identifiers))
    removed: dict[str, int] = {}
    for table in delta.tables(lake):
        snapshot = delta.open_table(lake, table)
        schema = pa.schema(snapshot.schema().to_arrow()) if snapshot is not None else pa.schema([])
        columns = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        if not columns:
            continue
        predicate = " OR ".join(f"{_quoted_identifier(column)} IN ({values})" for column in columns)
        if deleted := delta.erase(lake, table, predicate):
            removed[table] = deleted
    return removed


def _quoted_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _less(metadata: dict[str, Any], count_names: tuple[str, ...], removed: int) -> dict[str, Any]:
    """A manifest's metadata after `removed` items went: its counts lowered, the removal recorded."""
    updated = dict(metadata)
    for name in count_names:
        if isinstance(updated.get(name), int):
            updated[name] -= removed
    updated[FORGOTTEN] = int(updated.get(FORGOTTEN) or 0) + removed
    return updated


# ---- raw pages and quarantine --------------------------------------------------------------------


def _quoted(values: Iterable[str]) -> list[bytes]:
    return [json.dumps(value, ensure_ascii=False).encode() for value in values]


def remove_from_raw_pages(lake: Lake, keys: set[str], person: Person) -> dict[str, int]:
    """Drop the person's events from every raw page (by key, or by their own identifier, as the typed
    rows were matched: another person's event that merely mentions them stays); partition -> removed."""

    def belongs(line: bytes) -> bool:
        event = json.loads(line)
        return event_key(event) in keys or _identifier(event, person.column) == person.value

    removed: dict[str, int] = {}
    for day in partition_keys(lake.list_dirs(f"raw/{landing.SOURCE_NAME}")):
        directory = raw_path(landing.SOURCE_NAME, day)
        counts = (landing.TOTAL_REPORTED, "events")
        count = _rewrite_line_partition(lake, directory, belongs, counts)
        if count:
            removed[directory] = count
    return removed


def _identifier(event: dict[str, Any], column: str) -> object:
    if column == "user_email_key":
        user = event.get("User")
        return user.get("Email") if isinstance(user, dict) else None
    return event.get("DeviceId")


def remove_from_quarantine(lake: Lake, identifiers: set[str]) -> dict[str, int]:
    markers = _quoted(identifiers)

    def belongs(line: bytes) -> bool:
        return any(marker in line for marker in markers)

    removed: dict[str, int] = {}
    for day in partition_keys(lake.list_dirs(f"quarantine/{landing.TABLE}")):
        directory = quarantine_path(landing.TABLE, day)
        # `lines` and the reconciliation's `quarantined` both count the quarantined lines.
        count = _rewrite_line_partition(lake, directory, belongs, ("lines", "quarantined"))
        if count:
            removed[directory] = count
    return removed


def _rewrite_line_partition(
    lake: Lake, directory: str, belongs: Callable[[bytes], bool], count_names: tuple[str, ...]
) -> int:
    """Rewrite a partition of gzip JSON-lines files without the lines that `belongs`; lines removed.

    Files are read twice (count, then rewrite) rather than held: a page is small, a day is not.
    """
    manifest = lake.read_manifest(directory)
    if manifest is None:
        return 0

    def lines(entry: ManifestFile) -> Iterator[bytes]:
        return gzip_lines(lake, [f"{directory}/{entry.path}"])

    total = sum(belongs(line) for entry in manifest.files for line in lines(entry))
    if not total:
        return 0
    with lake.write_partition(directory, keep_replaced_for=ERASE_AT_ONCE) as partition:
        for entry in manifest.files:
            kept = [line for line in lines(entry) if not belongs(line)]
            # Per-file counts (events=, lines=) follow what is kept.
            extra = {
                name: len(kept) if name in PER_FILE_COUNTS else value for name, value in entry.extra.items()
            }
            landing.write_lines(partition.open, entry.name, kept, **extra)
        partition.metadata.update(_less(manifest.metadata, count_names, total))
    return total


# ---- warehouse -----------------------------------------------------------------------------------


def remove_from_warehouse(path: Path, identifiers: set[str]) -> tuple[dict[str, int], str]:
    """Delete rows holding an identifier in any VARCHAR column of any base table; (removed, state)."""
    # Imported when a connection opens: duckdb would add 0.15 CPU-s to every definitions load.
    import duckdb

    if not path.exists():
        return {}, "absent"
    removed: dict[str, int] = {}
    connection = duckdb.connect(str(path))
    try:
        connection.execute("BEGIN TRANSACTION")
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_catalog = current_database()"
        ).fetchall()
        for schema, table in tables:
            columns = [
                name
                for (name,) in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                    "AND table_name = ? AND data_type = 'VARCHAR'",
                    [schema, table],
                ).fetchall()
            ]
            if not columns or not identifiers:
                continue
            relation = f'"{schema}"."{table}"'
            condition = " OR ".join(f'list_contains($ids, "{column}")' for column in columns)
            ids = {"ids": sorted(identifiers)}
            row = connection.execute(f"SELECT count(*) FROM {relation} WHERE {condition}", ids).fetchone()
            count = int(row[0]) if row else 0
            if count:
                connection.execute(f"DELETE FROM {relation} WHERE {condition}", ids)
                removed[f"{schema}.{table}"] = count
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
    return removed, f"{len(tables)} base table(s) searched"
