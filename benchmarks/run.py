"""`make bench`: every benchmark, one after the other, each in its own process on an otherwise idle machine.

Each script writes benchmarks/results/<name>.json; this runner only sequences them and stops at the
first failure, so a number in results/ always comes from a complete, successful run of its script.
Run one alone with `.venv/bin/python benchmarks/<name>.py --help` for its options.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "amplitude",
    "ingest",
    "optimizely",
    "profile_store",
    "tracking",
    "warehouse",
    "experiment_stats",
    "cuped_sandbox",
    "backfill",
    "code_location",
)


def main(names: list[str]) -> int:
    for name in names or BENCHMARKS:
        started = time.monotonic()
        print(f"== {name} ==", flush=True)
        completed = subprocess.run([sys.executable, str(HERE / f"{name}.py")], check=False)
        print(f"== {name}: exit {completed.returncode} in {time.monotonic() - started:.0f}s ==", flush=True)
        if completed.returncode:
            return completed.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
