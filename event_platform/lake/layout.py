"""The lake's layout: one hive-style `date=YYYY-MM-DD` directory per daily partition.

<table>/date=D/                  a typed Delta table's partition, e.g. amplitude/events/date=2026-11-01/
raw/<source>/date=D/             what the vendor sent, byte-identical but for personal data
quarantine/<table>/date=D/       lines that could not be typed, byte-identical
_staging/<partition>/<version>/  files being written locally, moved into the partition at commit

Names that come from outside (a vendor's member or S3 key) pass `checked_relative_name` before they
become a path: the lake's partition writer and every command that writes local files use it.
"""

from __future__ import annotations

import posixpath
import re

PARTITION_KEY = "date"
STAGING_ROOT = "_staging"
"""Outside every table's directory: a glob over the hive layout never sees a half-written file."""
OUTSIDE_TABLES = ("raw", "quarantine", STAGING_ROOT)
"""Top-level directories that hold landings and staged writes, never a typed table."""

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeNameError(ValueError):
    """A name from outside would leave the directory it is meant for."""


def checked_relative_name(name: str, where: str) -> str:
    """`name` if it is a plain relative path (no absolute path, drive, `..`, `.`, empty segment,
    backslash or NUL), else UnsafeNameError naming it and `where` it was meant to go."""
    segments = name.split("/")
    unsafe = (
        not name
        or posixpath.isabs(name)
        or _DRIVE.match(name) is not None
        or "\\" in name
        or "\0" in name
        or any(segment in ("", ".", "..") for segment in segments)
    )
    if unsafe:
        raise UnsafeNameError(
            f"Invalid file name {name!r} for {where}: a name must stay inside it "
            "(no absolute path, '..', '.', empty segment, backslash or NUL); refusing it."
        )
    return name


def partition_path(table: str, partition_key: str) -> str:
    return f"{table.strip('/')}/{PARTITION_KEY}={partition_key}"


def raw_path(source: str, partition_key: str) -> str:
    return partition_path(f"raw/{source}", partition_key)


def quarantine_path(table: str, partition_key: str) -> str:
    return partition_path(f"quarantine/{table}", partition_key)


def partition_keys(partition_dirs: list[str]) -> list[str]:
    """The keys of `date=…` directory names, ignoring anything else."""
    prefix = f"{PARTITION_KEY}="
    return sorted(name[len(prefix) :] for name in partition_dirs if name.startswith(prefix))
