"""What every benchmark measures the same way: the machine it ran on, a process's CPU time and peak
memory, and a measurement run in a fresh process so that its memory is its own."""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Sets the Arrow allocator the platform runs with, which every fresh process started here inherits.
import event_platform  # noqa: F401


def describe_machine(load_before: float) -> dict[str, Any]:
    """Cores, Python and OS, and the 1-minute load average before the run and now: other work on a
    small shared machine skews wall times, so a reader must be able to see it."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "arrow_memory_pool": os.environ["ARROW_DEFAULT_MEMORY_POOL"],
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU time: unlike wall time, barely moved by other work on a shared machine."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec,
    so a spawned child would report its parent's peak if that were higher."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def in_fresh_process(function: Callable[..., dict[str, Any]], *arguments: Any) -> dict[str, Any]:
    """`function(*arguments)` in a newly spawned interpreter: its peak memory and CPU time are its own."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *arguments).result()


def commit_of(source: Path) -> str:
    """The short commit a checkout is at: what a `--baseline` is called in results."""
    return subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def compile_bytecode(directory: Path) -> None:
    """Compile the package ahead, as a wheel install does: where bytecode is not cached (an editable
    install under PYTHONDONTWRITEBYTECODE, as on this machine) every process would compile it again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(directory)], check=True)


def add_baseline_option(parser: argparse.ArgumentParser) -> None:
    """`--baseline CHECKOUT`, repeatable: other checkouts a benchmark measures in the same rounds."""
    parser.add_argument(
        "--baseline", type=Path, action="append", default=[],
        help="another checkout (e.g. the commit before a change) measured in the same rounds; repeatable",
    )  # fmt: skip
