"""Local scratch directories that a killed process does not leave behind for ever (no Dagster).

Every scratch directory is named `event-platform-<purpose>-<pid>-<random>` in the system's temporary
directory (or under `base`). A process that is killed (kill -9, out of memory) cannot remove its own;
the next scratch directory any process makes first removes those whose process is gone. A process id
reused by another process only delays that: a live process's directories are never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "event-platform-"


def new_scratch_dir(purpose: str, base: Path | None = None) -> Path:
    """A new scratch directory the caller removes (or `scratch_dir` for a `with` block)."""
    remove_orphans(base)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}-{os.getpid()}-", dir=base))


@contextmanager
def scratch_dir(purpose: str, base: Path | None = None) -> Iterator[Path]:
    path = new_scratch_dir(purpose, base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphans(base: Path | None = None) -> list[Path]:
    """Remove scratch directories whose process is gone; the ones removed."""
    removed = []
    for path in Path(base or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = _owner(path.name)
        if pid is not None and path.is_dir() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _owner(name: str) -> int | None:
    """The pid in `event-platform-<purpose>-<pid>-<random>` (the purpose may hold dashes)."""
    parts = name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
