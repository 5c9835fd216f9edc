"""`event-platform demo` and `event-platform sandbox [-- COMMAND…]`."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import threading

from event_platform import settings
from event_platform.dates import iso_date
from event_platform.sandbox.world import World

SECRET_WORDS = re.compile(r"KEY|SECRET|TOKEN|PASSWORD")
DEMO_DAYS = 3
"""Also the sandbox's default: `make ui` after `make demo` shows the demo's days as the whole history."""
LAST_DAY_HELP = (
    "the last of the days, YYYY-MM-DD (default: the last complete day: yesterday once Amplitude has "
    "exported all of it, about 03:00 UTC, else the day before)"
)


def add_commands(subcommands: argparse._SubParsersAction) -> None:
    demo = subcommands.add_parser(
        "demo", help="start the sandbox and materialize the last complete days through Dagster"
    )
    demo.add_argument(
        "--days", type=day_count, default=DEMO_DAYS, help="how many complete UTC days (default 3)"
    )
    demo.add_argument("--last-day", type=iso_date, metavar="DAY", help=LAST_DAY_HELP)
    demo.set_defaults(run=run_demo, days_parser=demo)

    sandbox = subcommands.add_parser(
        "sandbox",
        help="run the vendor emulators on 127.0.0.1; with `-- COMMAND…`, run COMMAND pointed at them",
        description="Starts every vendor emulator, prepares --days days up to --last-day, and either runs "
        "COMMAND with the sandbox's environment (e.g. `event-platform sandbox -- dagster dev`) or prints "
        "that environment and waits for Ctrl-C.",
    )
    sandbox.add_argument(
        "--days",
        type=day_count,
        default=DEMO_DAYS,
        help=f"days of data to prepare (default {DEMO_DAYS}, the demo's); the partitions start at the first",
    )
    sandbox.add_argument(
        "--last-day",
        type=iso_date,
        metavar="DAY",
        help=f"{LAST_DAY_HELP}; with the demo's --days and last day (its output names them), exactly "
        "the demo's days, however much later the sandbox starts",
    )
    sandbox.add_argument("command", nargs=argparse.REMAINDER, help="a command to run, after --")
    sandbox.set_defaults(run=run_sandbox, days_parser=sandbox)


def day_count(text: str) -> int:
    """An argparse `type`: a whole number of days, at least one (0 would run nothing and say it passed)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days: give 1 or more")
    return int(text)


def chosen_days(arguments: argparse.Namespace, now: dt.datetime | None = None) -> list[dt.date]:
    """`--days` days ending at `--last-day`, or at the last complete day at `now`. A later last day is
    refused: its data is not complete at any vendor yet."""
    from event_platform.demo import last_complete_days

    [latest] = last_complete_days(1, now)
    last: dt.date = arguments.last_day or latest
    if last > latest:
        arguments.days_parser.error(
            f"--last-day {last} is not complete yet: give a day up to {latest} (Amplitude exports a day "
            "a few hours after it ends, UTC)"
        )
    return [last - dt.timedelta(days=offset) for offset in range(arguments.days - 1, -1, -1)]


def run_demo(arguments: argparse.Namespace) -> int:
    from event_platform import demo

    succeeded = demo.run_demo(chosen_days(arguments), World())
    return 0 if succeeded else 1


def run_sandbox(arguments: argparse.Namespace) -> int:
    from event_platform.sandbox.runner import Sandbox

    command = [part for part in arguments.command if part != "--"]
    lake_root = settings.setting("EVENT_PLATFORM_LAKE", settings.DEFAULT_LAKE) or settings.DEFAULT_LAKE
    days = chosen_days(arguments)
    print(f"Starting the sandbox: {days[0]} to {days[-1]}, lake {lake_root} …", flush=True)
    with Sandbox(World(), lake_root=lake_root, days=days) as sandbox:
        environment = sandbox.environment()
        if command:
            return subprocess.run(command, env={**os.environ, **environment}, check=False).returncode
        for name, value in sorted(environment.items()):
            print(f"  {name}={'(set)' if SECRET_WORDS.search(name) else value}")
        print("The sandbox is up; run commands against it with `event-platform sandbox -- COMMAND`.")
        print("Ctrl-C stops it.", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0
