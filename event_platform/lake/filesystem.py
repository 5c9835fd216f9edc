"""Where the lake's bytes live: a local directory or an S3 prefix, behind one `pyarrow.fs.FileSystem`.

Every path the rest of the platform handles is relative to the lake root ("amplitude/events/date=…");
`Lake` turns it into a path of its filesystem. Nothing above this module knows which one it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from event_platform import settings
from event_platform.lake.publish import (
    MANIFEST_NAME,
    REPLACED_KEPT_FOR,
    Manifest,
    PartitionWriter,
    write_manifest,
)

WriteMode = Literal["replace", "append"]


@dataclass(frozen=True)
class Lake:
    fs: pafs.FileSystem
    root: str
    """The root as a path of `fs`: "/abs/dir" locally, "bucket/prefix" on S3."""
    display_root: str
    """The root as a URI for people: "file:///abs/dir" or "s3://bucket/prefix"."""
    s3_endpoint_url: str | None = None
    """An S3 endpoint other than AWS's (MinIO, moto), for the libraries that open the lake themselves."""
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False, compare=False)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_uri(cls, uri: str, *, s3_endpoint_url: str | None = None) -> Lake:
        """A lake at a local path or `s3://bucket/prefix`; credentials come from the standard AWS chain."""
        return _lake_from_uri(uri, s3_endpoint_url)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, relative: str) -> str:
        relative = relative.strip("/")
        return f"{self.root}/{relative}" if relative else self.root

    def uri(self, relative: str = "") -> str:
        relative = relative.strip("/")
        return f"{self.display_root}/{relative}" if relative else self.display_root

    def relative(self, fs_path: str) -> str:
        return fs_path[len(self.root) :].lstrip("/")

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def open_input(self, relative: str) -> pa.NativeFile:
        """A sequential stream of the stored bytes: read in chunks, never decompressed on the way."""
        return self.fs.open_input_stream(self.path(relative), compression=None)

    def open_input_file(self, relative: str) -> pa.NativeFile:
        """A random-access file, for formats that seek (Parquet, ZIP)."""
        return self.fs.open_input_file(self.path(relative))

    def open_output(self, relative: str) -> pa.NativeFile:
        path = self.path(relative)
        if self.is_local:
            # S3 has no directories; locally the parent must exist.
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        # pyarrow would gzip a "*.gz" name on the way in; the lake keeps bytes exactly as given.
        return self.fs.open_output_stream(path, compression=None)

    def make_durable(self, relatives: list[str]) -> None:
        """fsync files (or a directory, after a rename in it) on local disk; an S3 PUT is durable as is."""
        if not self.is_local:
            return
        for relative in relatives:
            descriptor = os.open(self.path(relative), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def read_bytes(self, relative: str) -> bytes:
        with self.open_input(relative) as stream:
            return stream.read()

    def write_bytes(self, relative: str, data: bytes) -> None:
        with self.open_output(relative) as stream:
            stream.write(data)

    def file_infos(self, relative_dir: str) -> list[pafs.FileInfo]:
        """Every file below `relative_dir`, recursively, sorted by path; [] when there is none."""
        selector = pafs.FileSelector(self.path(relative_dir), recursive=True, allow_not_found=True)
        infos = [info for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File]
        return sorted(infos, key=lambda info: info.path)

    def list_files(self, relative_dir: str) -> list[str]:
        """Paths relative to the lake root of every file below `relative_dir`, recursively, sorted."""
        return [self.relative(info.path) for info in self.file_infos(relative_dir)]

    def list_dirs(self, relative_dir: str) -> list[str]:
        """Names of the immediate sub-directories of `relative_dir` (e.g. its `date=…` partitions)."""
        selector = pafs.FileSelector(self.path(relative_dir), recursive=False, allow_not_found=True)
        dirs = {
            info.base_name for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.Directory
        }
        return sorted(dirs)

    def delete(self, relative: str) -> None:
        self.fs.delete_file(self.path(relative))

    def delete_dir(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.delete_dir(self.path(relative))

    @contextmanager
    def write_partition(
        self,
        relative_dir: str,
        mode: WriteMode = "replace",
        *,
        keep_replaced_for: dt.timedelta = REPLACED_KEPT_FOR,
    ) -> Iterator[PartitionWriter]:
        """Write a new version of a partition; readers see the old version until it commits.

        On a clean exit the manifest is replaced in one atomic step; the replaced version's files stay
        readable for `keep_replaced_for` (see `publish`), then a later commit removes them. On an
        exception the files written so far are removed and nothing else changes.
        `mode="append"` keeps the committed files and adds the new ones (append-only landings).
        Commits to one partition are serialised within this process; concurrent writers of the same
        partition from different processes are the caller's to avoid (Dagster runs one run per partition).
        """
        writer = PartitionWriter(self, relative_dir.strip("/"))
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        with self._partition_lock(writer.relative_dir):
            previous = self.read_manifest(writer.relative_dir)
            writer.commit(previous, keep_previous=(mode == "append"), keep_replaced_for=keep_replaced_for)

    def drop_replaced(self, relative_dir: str) -> int:
        """Delete now the files a partition keeps of its replaced versions (for erasure); how many."""
        relative_dir = relative_dir.strip("/")
        with self._partition_lock(relative_dir):
            manifest = self.read_manifest(relative_dir)
            if manifest is None or not manifest.replaced:
                return 0
            write_manifest(self, relative_dir, dataclasses.replace(manifest, replaced=[]))
            for entry in manifest.replaced:
                if self.exists(f"{relative_dir}/{entry.path}"):
                    self.delete(f"{relative_dir}/{entry.path}")
            return len(manifest.replaced)

    def read_manifest(self, relative_dir: str) -> Manifest | None:
        path = f"{relative_dir.strip('/')}/{MANIFEST_NAME}"
        try:
            return Manifest.from_json(self.read_bytes(path))
        except FileNotFoundError:
            return None

    def current_files(self, relative_dir: str) -> list[str]:
        """Lake-relative paths of the files of a partition's committed version ([] if never written)."""
        manifest = self.read_manifest(relative_dir)
        if manifest is None:
            return []
        return [f"{relative_dir.strip('/')}/{entry.path}" for entry in manifest.files]

    def _partition_lock(self, relative_dir: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(relative_dir, threading.Lock())


@functools.lru_cache(maxsize=16)
def _lake_from_uri(uri: str, s3_endpoint_url: str | None) -> Lake:
    """One Lake (and one set of partition locks) per root in a process."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        bucket_and_prefix = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        return Lake(
            fs=_s3_filesystem(s3_endpoint_url),
            root=bucket_and_prefix,
            display_root=f"s3://{bucket_and_prefix}",
            s3_endpoint_url=s3_endpoint_url,
        )
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"Unsupported lake location {uri!r}: use a directory or s3://bucket/prefix.")
    local = str(Path(parsed.path if parsed.scheme == "file" else uri).resolve())
    return Lake(fs=pafs.LocalFileSystem(), root=local, display_root=f"file://{local}")


def _s3_filesystem(endpoint_url: str | None) -> pafs.S3FileSystem:
    options: dict[str, object] = {
        "region": settings.S3.read().region,
    }
    if endpoint_url:
        endpoint = urlparse(endpoint_url)
        options["endpoint_override"] = endpoint.netloc or endpoint.path
        options["scheme"] = endpoint.scheme or "https"
        # MinIO and moto serve buckets as paths, not virtual hosts.
        options["force_virtual_addressing"] = False
    return pafs.S3FileSystem(**options)
