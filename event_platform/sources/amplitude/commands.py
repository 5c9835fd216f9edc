"""`event-platform amplitude export`: the lake's Amplitude layout for a range of days, without Dagster.

Credentials and the zip-bomb bounds come from the environment (`AmplitudeSettings`, and
AWS_ENDPOINT_URL_S3 for an S3 `--output`), as they do for the assets. Each day is
landed raw (`raw/amplitude/date=D/`) and then typed (`amplitude/events/date=D/`) by the same functions
the assets call, so the two paths cannot drift apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from event_platform import settings
from event_platform.dates import iso_date
from event_platform.lake.filesystem import Lake
from event_platform.retry import RetriesExhaustedError
from event_platform.scratch import scratch_dir
from event_platform.sources.amplitude.client import AmplitudeError
from event_platform.sources.amplitude.defs.resources import build_client
from event_platform.sources.amplitude.landing import land_export
from event_platform.sources.amplitude.settings import AmplitudeSettings
from event_platform.sources.amplitude.transform import write_events


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    source = subparsers.add_parser("amplitude", help="Amplitude Export API")
    commands = source.add_subparsers(dest="amplitude_command", required=True, metavar="COMMAND")
    export = commands.add_parser(
        "export",
        help="download days (UTC, by server upload time) into the lake layout: raw and typed Parquet",
    )
    export.add_argument("--start", type=iso_date, required=True, help="first day, YYYY-MM-DD")
    export.add_argument("--end", type=iso_date, required=True, help="last day, YYYY-MM-DD, inclusive")
    export.add_argument("--output", required=True, help="lake root: a directory or s3://bucket/prefix")
    export.add_argument(
        "--yes", action="store_true", help=f"do not ask before exporting more than {CONFIRM_DAYS} days"
    )
    export.set_defaults(run=run_export, export_parser=export)


CONFIRM_DAYS = 31
"""Longer exports say what they will do and wait for a yes (or `--yes`): a typo in a year is costly."""


def _confirmed(out: TextIO) -> bool:
    """Ask on a terminal; anywhere else (a script, CI) there is no one to answer, so the answer is no."""
    if not sys.stdin.isatty():
        return False
    print("This is a long export. Go ahead? [y/N] ", end="", file=out, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run_export(arguments: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stderr
    start: dt.date = arguments.start
    end: dt.date = arguments.end
    if end < start:
        arguments.export_parser.error(f"--end {end} is before --start {start}")
    try:
        amplitude = AmplitudeSettings.read()
        client = build_client(
            api_key=settings.reveal(amplitude.api_key),
            secret_key=settings.reveal(amplitude.secret_key),
            region=amplitude.region,
            base_url=amplitude.base_url,
            max_uncompressed_bytes=amplitude.max_uncompressed_bytes,
            max_compression_ratio=amplitude.max_compression_ratio,
        )
        pseudonymiser = settings.pseudonymiser(
            "Amplitude", settings.reveal(settings.Platform.read().pseudonym_key)
        )
    except settings.MissingSettingsError as error:
        print(error, file=out)
        return 2
    try:
        lake = Lake.from_uri(arguments.output, s3_endpoint_url=settings.S3.read().endpoint_url)
    except ValueError as error:
        print(f"error: --output: {error}", file=out)
        return 2
    days = [start + dt.timedelta(days=offset) for offset in range((end - start).days + 1)]
    plan = f"Exporting {len(days)} day(s), {start} to {end}, from {client.host} into {lake.uri()}"
    print(f"{plan}.", file=out)
    if len(days) > CONFIRM_DAYS and not arguments.yes and not _confirmed(out):
        print(f"Not exporting. Add --yes to export {len(days)} days without being asked.", file=out)
        return 2
    with (
        scratch_dir("amplitude-export") as tmp_dir,
        tqdm(total=len(days), unit="day", desc="days", file=out) as day_bar,
        tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="downloaded", file=out) as byte_bar,
    ):
        for day in days:
            try:
                landed = land_export(
                    client,
                    day,
                    lake,
                    pseudonymiser=pseudonymiser,
                    tmp_dir=Path(tmp_dir),
                    on_bytes=byte_bar.update,
                )
                typed = write_events(lake, day, Path(tmp_dir))
            except (AmplitudeError, RetriesExhaustedError) as error:
                tqdm.write(f"{day}: {error}", file=out)
                return 1
            tqdm.write(
                f"{day}: {landed.files} files, {landed.lines} lines landed at {landed.uri}; typed: {typed}",
                file=out,
            )
            day_bar.update()
    return 0
