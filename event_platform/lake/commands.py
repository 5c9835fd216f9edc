"""`event-platform lake`: converting a lake of the manifest format to Delta tables, and vacuuming them.

The lake is EVENT_PLATFORM_LAKE (with AWS_ENDPOINT_URL_S3 for MinIO or moto), as for the assets, or
`--lake`. Neither command needs Dagster.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import lake_resource
from event_platform.lake.migrate import migrate


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    lake = subparsers.add_parser("lake", help="the lake's Delta tables: migrate, vacuum")
    commands = lake.add_subparsers(dest="lake_command", required=True, metavar="COMMAND")
    migration = commands.add_parser(
        "migrate",
        help="convert the typed tables of a lake of the manifest format to Delta tables, in place "
        "(idempotent; raw and quarantine untouched; stop the platform's runs first)",
    )
    migration.set_defaults(run=run_migrate)
    vacuuming = commands.add_parser(
        "vacuum",
        help=f"delete files replaced more than {delta.REMOVED_FILES_KEPT_FOR.seconds // 3600} hours ago "
        "and those no version names (killed writers'), in every table",
    )
    vacuuming.set_defaults(run=run_vacuum)
    for command in (migration, vacuuming):
        command.add_argument(
            "--lake", help="lake root: a directory or s3://bucket/prefix (EVENT_PLATFORM_LAKE)"
        )


def _lake(arguments: argparse.Namespace) -> Lake:
    configured = lake_resource()
    return Lake.from_uri(arguments.lake or configured.root, s3_endpoint_url=configured.s3_endpoint_url)


def run_migrate(arguments: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stderr
    lake = _lake(arguments)
    report = migrate(lake, log=lambda message: print(message, file=out))
    print(
        f"{len(report.converted)} table(s) converted to Delta Lake in {lake.uri()}, "
        f"{len(report.tables) - len(report.converted)} already converted.",
        file=out,
    )
    return 0


def run_vacuum(arguments: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stderr
    lake = _lake(arguments)
    for table in delta.tables(lake):
        print(f"{table}: {len(delta.vacuum(lake, table))} file(s) deleted", file=out)
    return 0
