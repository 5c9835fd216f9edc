"""What every run pays before it does any work: loading the code location, and one asset's whole run.

Both are measured as the commands people and Dagster's processes run, each in a fresh process:
- load: `dagster definitions validate -m event_platform.definitions`, which imports the package and
  builds every definition as a code server or a run worker does;
- run: `dagster asset materialize` of one partition of `tracking/events` over a lake the sandbox filled
  beforehand (so the run reads the lake and calls no vendor).
Both commands are also run against Dagster's floor: a code location of one asset that does nothing,
so what the platform adds on top of Dagster's own CLI and run machinery is measured, not estimated.
Wall seconds and CPU seconds (the child's user + system time, which other work on a shared machine
barely moves) are the medians of `--repeats` runs. `--source DIR` measures another checkout of the
package (e.g. the commit before a change) with the same virtualenv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import describe_machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "code_location.json"
BIN = Path(sys.executable).parent
TABLE = "tracking/events"


def timed(command: list[str], environment: dict[str, str], cwd: Path) -> dict[str, float]:
    """Wall and CPU seconds of one command; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)}


def median_of(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "seconds": round(statistics.median(run["seconds"] for run in runs), 3),
        "cpu_seconds": round(statistics.median(run["cpu_seconds"] for run in runs), 3),
        "runs": runs,
    }


FLOOR_MODULE = "dagster_floor"
FLOOR_SOURCE = '''"""The smallest code location: one asset that does nothing, run in process as ours are."""
import dagster as dg


@dg.asset
def nothing() -> None:
    """Does nothing."""


defs = dg.Definitions(assets=[nothing], executor=dg.in_process_executor)
'''


def prepare_lake(work: Path, day: dt.date, source: Path) -> dict[str, str]:
    """A lake holding one landed day of tracking, and the environment that points the platform at it."""
    lake = work / "lake"
    script = (
        "import datetime as dt, sys\n"
        "from event_platform.sandbox.runner import Sandbox\n"
        "from event_platform.sandbox.world import World\n"
        f"day = dt.date.fromisoformat({day.isoformat()!r})\n"
        f"with Sandbox(World(people_count=300), lake_root={str(lake)!r}, days=[day]):\n"
        "    pass\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(source)}
    subprocess.run([sys.executable, "-c", script], env=environment, check=True, cwd=work)
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {
        **environment,
        "DAGSTER_HOME": str(home),
        "EVENT_PLATFORM_LAKE": str(lake),
        "EVENT_PLATFORM_WAREHOUSE": str(work / "warehouse.duckdb"),
        "EVENT_PLATFORM_START_DATE": (day - dt.timedelta(days=7)).isoformat(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--source", type=Path, default=REPO, help="the checkout whose package is measured")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--label", default="current", help="names this measurement in the results file")
    arguments = parser.parse_args()
    source = arguments.source.resolve()
    load_before = os.getloadavg()[0]
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    with tempfile.TemporaryDirectory(prefix="bench-code-location-") as tmp:
        work = Path(tmp)
        environment = prepare_lake(work, day, source)
        load_command = [str(BIN / "dagster"), "definitions", "validate", "-m", "event_platform.definitions"]
        run_command = [
            str(BIN / "dagster"), "asset", "materialize", "-m", "event_platform.definitions",
            "--select", TABLE, "--partition", day.isoformat(),
        ]  # fmt: skip
        (work / f"{FLOOR_MODULE}.py").write_text(FLOOR_SOURCE)
        floor_environment = {**environment, "PYTHONPATH": str(work)}
        floor_load = [str(BIN / "dagster"), "definitions", "validate", "-m", FLOOR_MODULE]
        floor_run = [str(BIN / "dagster"), "asset", "materialize", "-m", FLOOR_MODULE, "--select", "nothing"]
        loads, materializations, floor_loads, floor_runs = [], [], [], []
        for _ in range(arguments.repeats):
            loads.append(timed(load_command, environment, source))
            materializations.append(timed(run_command, environment, source))
            floor_loads.append(timed(floor_load, floor_environment, work))
            floor_runs.append(timed(floor_run, floor_environment, work))
    measurement = {
        "label": arguments.label,
        "source": str(source),
        "commit": subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(load_before),
        "load_code_location": median_of(loads),
        "one_asset_run": {"asset": TABLE, **median_of(materializations)},
        "dagster_floor": {
            "what": "the same commands on a code location of one asset that does nothing",
            "load_code_location": median_of(floor_loads),
            "one_asset_run": median_of(floor_runs),
        },
    }
    existing = json.loads(arguments.output.read_text()) if arguments.output.exists() else {}
    measurements = {**existing.get("measurements", {}), arguments.label: measurement}
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(
        json.dumps(
            {"benchmark": "code location load and one-asset run", "measurements": measurements}, indent=2
        )
        + "\n"
    )
    print(json.dumps({k: v for k, v in measurement.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
