"""Atomic partitions: a manifest names the files of a partition's committed version.

A writer puts each file under a name unique to its version, so nothing it writes can clobber what
readers see. Committing replaces `_manifest.json` in one step (a rename locally, a single PUT on S3);
readers that go through the manifest therefore see the old version or the new one, never a mix, and a
write that fails or is killed leaves the old version in place.

A reader holds the file list it resolved for as long as its step runs, so a replaced version is not
deleted at once: the manifest lists its files as `replaced` with the time, and a later commit of the
partition deletes them once `REPLACED_KEPT_FOR` has passed (a run that re-materializes day D-1 while
another reads D-1 as its look-back must not pull the files from under it). Erasure (forgetting a
person) passes `keep_replaced_for=timedelta(0)`.

On local disk a file is written under `_staging/<partition>/<version>/` and moved into the partition
only at commit, just before the manifest: a writer killed mid-file leaves nothing in the partition
directory, so pyarrow datasets and DuckDB globs over the hive layout never meet a truncated file. The
next commit of the partition removes staging left by writers dead for `STRAY_AGE` (their version names
carry the time). On S3 an object appears only once its upload completes, so files go straight to
their place. Strays in the partition itself (only a writer killed between its moves and its manifest
leaves any, and they are whole) go once they are old.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from event_platform.lake.layout import STAGING_ROOT, checked_relative_name

if TYPE_CHECKING:
    from event_platform.lake.filesystem import Lake

MANIFEST_NAME = "_manifest.json"
REPLACED_KEPT_FOR = dt.timedelta(hours=6)
"""How long a replaced version's files stay readable: longer than any step reads its inputs."""
STRAY_AGE = dt.timedelta(hours=6)
"""A file no manifest names, older than this, was left by a killed writer, not by one still writing."""


@dataclass(frozen=True)
class ManifestFile:
    name: str
    """The logical name the writer gave, e.g. the vendor's member path."""
    path: str
    """Where the bytes are, relative to the partition directory."""
    bytes: int
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplacedFile:
    path: str
    """A file of an earlier version, relative to the partition directory; no reader resolves it now."""
    replaced_at: str


@dataclass(frozen=True)
class Manifest:
    version: str
    committed_at: str
    files: list[ManifestFile]
    metadata: dict[str, Any]
    replaced: list[ReplacedFile] = field(default_factory=list)
    """Files of earlier versions kept for readers that resolved them before this commit."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True, default=str).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        return cls(
            version=raw["version"],
            committed_at=raw["committed_at"],
            files=[ManifestFile(**entry) for entry in raw["files"]],
            metadata=raw.get("metadata", {}),
            replaced=[ReplacedFile(**entry) for entry in raw.get("replaced", [])],
        )


VERSION_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def new_version() -> str:
    """Sortable by time, unique across concurrent writers."""
    return f"{dt.datetime.now(dt.UTC):{VERSION_TIME_FORMAT}}-{uuid.uuid4().hex[:8]}"


def version_time(version: str) -> dt.datetime | None:
    """When a version (a `new_version()` string) was started; None for anything else."""
    try:
        return dt.datetime.strptime(version.partition("-")[0], VERSION_TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def staging_dir(relative_dir: str, version: str) -> str:
    """Where a local writer puts a version's files until it commits them."""
    return f"{STAGING_ROOT}/{relative_dir}/{version}"


def write_atomically(lake: Lake, relative: str, data: bytes) -> None:
    """Make `data` the content of `relative` in one step, durably: staged, fsynced and renamed over it
    locally; one PUT on S3 (an object appears only once whole)."""
    if not lake.is_local:
        lake.write_bytes(relative, data)
        return
    with _staging(lake, relative) as staging:
        staged = f"{staging}/{relative.rpartition('/')[2]}"
        _write_durably(lake, staged, data)
        _move_durably(lake, staged, relative)


def write_committed_by_record(
    lake: Lake, data_relative: str, data: bytes, record_relative: str, record: bytes
) -> None:
    """Land `data` and then the `record` that commits it, both durably; readers count a data file only
    once its record exists.

    Locally both are staged and flushed at once (the data on a second thread), then the data file is
    renamed into its partition and that directory flushed, then the record likewise: three disk flushes
    in sequence instead of the five of two `write_atomically` calls (each is a wait on the disk, and the
    collector's acknowledgements wait on them). A data file reaches its partition only whole and
    durable, and its record only after it; a writer killed between the two renames leaves a whole,
    uncommitted data file, which no reader counts.
    """
    if not lake.is_local:
        lake.write_bytes(data_relative, data)
        lake.write_bytes(record_relative, record)
        return
    with _staging(lake, data_relative) as staging:
        staged_data, staged_record = (
            f"{staging}/{path.rpartition('/')[2]}" for path in (data_relative, record_relative)
        )
        data_durable = _FLUSHES.submit(_write_durably, lake, staged_data, data)
        try:
            _write_durably(lake, staged_record, record)
        finally:
            wait([data_durable])  # nothing of a failed commit is still being written once it returns
        data_durable.result()
        _move_durably(lake, staged_data, data_relative)
        _move_durably(lake, staged_record, record_relative)


def _flush_pool() -> ThreadPoolExecutor:
    # fsync releases the GIL: a second file's flush overlaps the first's instead of following it.
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="lake-flush")


_FLUSHES = _flush_pool()


def _replace_flush_pool_in_child() -> None:
    # A forked child (collector workers, a benchmark's collector) inherits the pool without its threads,
    # and the pool, counting them idle, would never start one: each process needs its own.
    global _FLUSHES
    _FLUSHES = _flush_pool()


os.register_at_fork(after_in_child=_replace_flush_pool_in_child)


@contextmanager
def _staging(lake: Lake, relative: str) -> Iterator[str]:
    """A fresh staging directory for a write into `relative`'s directory, deleted afterwards whatever
    happened (a killed writer's is removed by `remove_dead_staging`)."""
    staging = staging_dir(relative.rpartition("/")[0], new_version())
    try:
        yield staging
    finally:
        lake.delete_dir(staging)


def _write_durably(lake: Lake, relative: str, data: bytes) -> None:
    lake.write_bytes(relative, data)
    lake.make_durable([relative])


def _move_durably(lake: Lake, source: str, target: str) -> None:
    directory = target.rpartition("/")[0]
    lake.fs.create_dir(lake.path(directory), recursive=True)
    lake.fs.move(lake.path(source), lake.path(target))
    lake.make_durable([directory])


def versioned_name(name: str, version: str) -> str:
    """`a/b/part-0.json.gz` -> `a/b/part-0-<version>.json.gz`: the vendor's name stays recognisable."""
    directory, base = posixpath.split(name)
    stem, dot, suffixes = base.partition(".")
    return posixpath.join(directory, f"{stem}-{version}{dot}{suffixes}")


class _HashingStream(io.RawIOBase):
    """Counts and hashes what passes through on its way to the lake."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._sha256.update(view)
        self._target.write(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if not self.closed:
            self._target.close()
        super().close()

    @property
    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


class PartitionWriter:
    """Collects the files of one new version of a partition; `Lake.write_partition` commits it."""

    def __init__(self, lake: Lake, relative_dir: str) -> None:
        self.lake = lake
        self.relative_dir = relative_dir
        self.version = new_version()
        self.metadata: dict[str, Any] = {}
        self.files: list[ManifestFile] = []
        self._written: list[str] = []

    @contextmanager
    def open(self, name: str, **extra: Any) -> Iterator[_HashingStream]:
        """A binary stream for a new file called `name`; `extra` goes into its manifest entry."""
        checked_relative_name(name, f"partition {self.relative_dir}")
        if any(entry.name == name for entry in self.files):
            raise ValueError(f"Invalid or repeated file name {name!r} in partition {self.relative_dir}")
        stored = versioned_name(name, self.version)
        self._written.append(stored)
        stream = _HashingStream(self.lake.open_output(self._where_written(stored)))
        with stream:
            yield stream
        self.files.append(ManifestFile(name, stored, stream.size, stream.hexdigest, dict(extra)))

    def _where_written(self, stored: str) -> str:
        """Locally a file is staged until commit; on S3 it goes to its place (invisible until whole)."""
        if self.lake.is_local:
            return f"{staging_dir(self.relative_dir, self.version)}/{stored}"
        return f"{self.relative_dir}/{stored}"

    def commit(
        self, previous: Manifest | None, *, keep_previous: bool, keep_replaced_for: dt.timedelta
    ) -> Manifest:
        now = dt.datetime.now(dt.UTC)
        files = [*(previous.files if previous and keep_previous else []), *self.files]
        metadata = {**(previous.metadata if previous and keep_previous else {}), **self.metadata}
        replaced = _still_kept(previous, {entry.path for entry in files}, now, keep_replaced_for)
        manifest = Manifest(self.version, now.isoformat(), files, metadata, replaced)
        self._move_into_place()
        write_manifest(self.lake, self.relative_dir, manifest)
        self._remove_unreferenced(manifest, previous)
        remove_dead_staging(self.lake, self.relative_dir)
        return manifest

    def _move_into_place(self) -> None:
        if not self.lake.is_local:
            return  # already in place, and durable once the upload completed
        final = [f"{self.relative_dir}/{stored}" for stored in self._written]
        staged = [self._where_written(stored) for stored in self._written]
        self.lake.make_durable(staged)
        for source, target in zip(staged, final, strict=True):
            self.lake.fs.create_dir(self.lake.path(target.rpartition("/")[0]), recursive=True)
            self.lake.fs.move(self.lake.path(source), self.lake.path(target))
        self.lake.make_durable(sorted({target.rpartition("/")[0] for target in final}))
        self.lake.delete_dir(staging_dir(self.relative_dir, self.version))

    def abort(self) -> None:
        if self.lake.is_local:
            self.lake.delete_dir(staging_dir(self.relative_dir, self.version))
            return
        for stored in self._written:
            if self.lake.exists(f"{self.relative_dir}/{stored}"):
                self.lake.delete(f"{self.relative_dir}/{stored}")

    def _remove_unreferenced(self, manifest: Manifest, previous: Manifest | None) -> None:
        kept = {entry.path for entry in manifest.files} | {entry.path for entry in manifest.replaced}
        known = (
            {entry.path for entry in previous.files} | {e.path for e in previous.replaced}
            if previous
            else set()
        )
        stray_before = dt.datetime.now(dt.UTC) - STRAY_AGE
        prefix = f"{self.relative_dir}/"
        for info in self.lake.file_infos(self.relative_dir):
            relative = self.lake.relative(info.path)[len(prefix) :]
            if relative == MANIFEST_NAME or relative in kept:
                continue
            is_stray = info.mtime is not None and info.mtime.astimezone(dt.UTC) < stray_before
            if relative in known or is_stray:
                self.lake.delete(f"{prefix}{relative}")


def write_manifest(lake: Lake, relative_dir: str, manifest: Manifest) -> None:
    """Make `manifest` the partition's committed one in one step."""
    write_atomically(lake, f"{relative_dir}/{MANIFEST_NAME}", manifest.to_json())


def remove_dead_staging(lake: Lake, relative_dir: str) -> int:
    """Delete the staging of this partition's versions started over `STRAY_AGE` ago: their writers
    were killed (a live one commits or aborts long before). Returns how many versions went."""
    if not lake.is_local:
        return 0
    root = f"{STAGING_ROOT}/{relative_dir}"
    dead_before = dt.datetime.now(dt.UTC) - STRAY_AGE
    removed = 0
    for version in lake.list_dirs(root):
        started = version_time(version)
        if started is not None and started < dead_before:
            lake.delete_dir(f"{root}/{version}")
            removed += 1
    return removed


def _still_kept(
    previous: Manifest | None, current: set[str], now: dt.datetime, keep_for: dt.timedelta
) -> list[ReplacedFile]:
    """The replaced files the new manifest keeps: the previous version's that it drops, stamped now,
    and those replaced earlier whose time is not up."""
    if previous is None or keep_for <= dt.timedelta(0):
        return []
    earlier = [
        entry
        for entry in previous.replaced
        if entry.path not in current and now - dt.datetime.fromisoformat(entry.replaced_at) < keep_for
    ]
    dropped = [ReplacedFile(e.path, now.isoformat()) for e in previous.files if e.path not in current]
    return earlier + dropped
