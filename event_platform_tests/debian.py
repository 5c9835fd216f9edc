"""Debian packages for the tests that drive a real program (Chromium, PostgreSQL).

Installed with apt-get when missing (CI runs as root); where that cannot happen the caller skips with
the reason.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

APT_LOCK = Path(tempfile.gettempdir()) / "event-platform-tests-apt.lock"
"""Held around apt-get: the suite's workers (pytest -n) may each want a package at once, and apt-get
fails at once, not waits, on a lock another apt-get holds."""


class PackageUnavailable(RuntimeError):
    """A Debian package is missing and could not be installed here; the message says why."""


def apt_install(package: str) -> None:
    """Install `package` with apt-get, refreshing the package index once if the first attempt fails."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PackageUnavailable(f"{package} is not installed and apt-get is not usable here (not root?).")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    with APT_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(install, env=environment, capture_output=True).returncode == 0:
            return
        subprocess.run(["apt-get", "update", "-q"], env=environment, capture_output=True)
        done = subprocess.run(install, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise PackageUnavailable(f"apt-get install {package} failed: {done.stderr.strip()[-500:]}")
