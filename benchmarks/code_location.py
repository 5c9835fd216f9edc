"""What every run pays before it does any work: loading the code location, and one asset's whole run.

Both are measured as the commands people and Dagster's processes run, each in a fresh process:
- load: `dagster definitions validate -m event_platform.definitions`, which imports the package and
  builds every definition as a code server or a run worker does;
- run: `dagster asset materialize` of one partition of `tracking/events` over a lake the sandbox filled
  beforehand (so the run reads the lake and calls no vendor).
Both commands are also run against Dagster's floor: a code location of one asset that does nothing,
so what the platform adds on top of Dagster's own CLI and run machinery is measured, not estimated.
Wall seconds and CPU seconds (the child's user + system time) are the medians of `--repeats` rounds.
Each `--baseline` checkout (e.g. the commit before a change, with the same virtualenv) is measured in
the same rounds: every round runs every subject and the floor in turn, and what a subject adds above
the floor is the median of its per-round differences, because this shared machine drifts by a third
within minutes and alternating cancels it. Every package is compiled to bytecode first, as a wheel
install leaves it (this machine sets PYTHONDONTWRITEBYTECODE, so otherwise each process compiles).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import add_baseline_option, commit_of, compile_bytecode, describe_machine

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


@dataclass
class Subject:
    """A code location measured: its commands, environment and the runs taken so far."""

    label: str
    source: Path
    load: list[str]
    run: list[str]
    environment: dict[str, str]
    loads: list[dict[str, float]] = field(default_factory=list)
    runs: list[dict[str, float]] = field(default_factory=list)

    def measure_once(self) -> None:
        self.loads.append(timed(self.load, self.environment, self.source))
        self.runs.append(timed(self.run, self.environment, self.source))


def platform(label: str, source: Path, work: Path, day: dt.date) -> Subject:
    work.mkdir()
    compile_bytecode(source / "event_platform")
    module = ["-m", "event_platform.definitions"]
    return Subject(
        label,
        source,
        [str(BIN / "dagster"), "definitions", "validate", *module],
        [str(BIN / "dagster"), "asset", "materialize", *module, "--select", TABLE, "--partition", str(day)],
        prepare_lake(work, day, source),
    )


def floor(work: Path, environment: dict[str, str]) -> Subject:
    work.mkdir()
    (work / f"{FLOOR_MODULE}.py").write_text(FLOOR_SOURCE)
    compile_bytecode(work)
    module = ["-m", FLOOR_MODULE]
    return Subject(
        "dagster floor",
        work,
        [str(BIN / "dagster"), "definitions", "validate", *module],
        [str(BIN / "dagster"), "asset", "materialize", *module, "--select", "nothing"],
        {**environment, "PYTHONPATH": str(work)},
    )


def above_floor(subject: Subject, floor_subject: Subject) -> dict[str, Any]:
    """CPU seconds over the floor measured in the same round, per round, and their median: rounds
    alternate the subjects, so a drift of the machine moves both sides of each difference alike."""
    summary: dict[str, Any] = {}
    for name, ours, theirs in (
        ("load_code_location", subject.loads, floor_subject.loads),
        ("one_asset_run", subject.runs, floor_subject.runs),
    ):
        differences = [
            round(a["cpu_seconds"] - b["cpu_seconds"], 3) for a, b in zip(ours, theirs, strict=True)
        ]
        summary[name] = {"cpu_seconds": round(statistics.median(differences), 3), "rounds": differences}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--source", type=Path, default=REPO, help="the checkout whose package is measured")
    add_baseline_option(parser)
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    load_before = os.getloadavg()[0]
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    with tempfile.TemporaryDirectory(prefix="bench-code-location-") as tmp:
        work = Path(tmp)
        sources = [arguments.source.resolve(), *(baseline.resolve() for baseline in arguments.baseline)]
        subjects = [
            platform(f"{commit_of(source)} ({source})", source, work / f"source-{n}", day)
            for n, source in enumerate(sources)
        ]
        floor_subject = floor(work / "floor", subjects[0].environment)
        for _ in range(arguments.repeats):
            for subject in [*subjects, floor_subject]:
                subject.measure_once()
    results = {
        "benchmark": "code location load and one-asset run, in CPU seconds, against Dagster's floor",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(load_before),
        "repeats": arguments.repeats,
        "dagster_floor": {
            "what": "the same commands on a code location of one asset that does nothing",
            "load_code_location": median_of(floor_subject.loads),
            "one_asset_run": median_of(floor_subject.runs),
        },
        "subjects": [
            {
                "label": subject.label,
                "load_code_location": median_of(subject.loads),
                "one_asset_run": {"asset": TABLE, **median_of(subject.runs)},
                "above_floor": above_floor(subject, floor_subject),
            }
            for subject in subjects
        ],
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n")
    for subject in results["subjects"]:
        above = subject["above_floor"]
        print(
            f"{subject['label']}: load {subject['load_code_location']['cpu_seconds']} CPU-s, "
            f"{above['load_code_location']['cpu_seconds']} above the floor; one run "
            f"{subject['one_asset_run']['cpu_seconds']}, {above['one_asset_run']['cpu_seconds']} above"
        )
    floor_result = results["dagster_floor"]
    print(
        f"floor: load {floor_result['load_code_location']['cpu_seconds']}, "
        f"run {floor_result['one_asset_run']['cpu_seconds']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
