"""`event-platform profile-store read-day` (what reading a day costs), `… preview` (a KQL query, its
results pseudonymised) and `… email-key` (a pseudonym)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from event_platform.dates import day_window, iso_date
from event_platform.retry import RetriesExhaustedError
from event_platform.settings import MissingSettingsError
from event_platform.sources.profile_store.client import ProfileStoreError
from event_platform.sources.profile_store.defs.resources import profile_store_resource


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    profile_store = subparsers.add_parser("profile-store", help="the Profile Store TrackEvents API")
    commands = profile_store.add_subparsers(dest="profile_store_command", required=True, metavar="COMMAND")

    read_day = commands.add_parser(
        "read-day",
        help="read one UTC day through the API (PROFILE_STORE_*) and print the count, the API's total and "
        "the requests and window splits it took; prints no event",
    )
    read_day.add_argument("--date", required=True, type=iso_date, help="YYYY-MM-DD")
    read_day.set_defaults(run=_read_day)

    preview = commands.add_parser(
        "preview",
        help="run a KQL query on the API's preview endpoint (at most 1000 results) and print the events "
        "as JSON lines, pseudonymised like everything the platform keeps",
    )
    preview.add_argument("query", help="e.g. \"Events | where EventType == 'pageview' | take 2\"")
    preview.set_defaults(run=_preview)

    email_key = commands.add_parser(
        "email-key",
        help="read e-mail addresses from standard input, one a line, and print their pseudonyms "
        "(EVENT_PLATFORM_PSEUDONYM_KEY): for the forget job's email_key, keeping the address out of "
        "shell history and Dagster's run storage",
    )
    email_key.set_defaults(run=_email_key)


def _read_day(arguments: argparse.Namespace) -> int:
    today = dt.datetime.now(dt.UTC).date()
    if arguments.date > today:
        print(
            f"error: --date {arguments.date} is in the future: give a day up to {today} (UTC)",
            file=sys.stderr,
        )
        return 2
    try:
        client = profile_store_resource().client()
        start, end = day_window(arguments.date)
        events = sum(len(batch) for batch in client.track_events(start, end))
    except VENDOR_ERRORS as error:
        return _failed(error)
    stats = client.stats
    print(
        f"{arguments.date}: {events} events read, the API reported {stats.total_reported}; "
        f"{stats.requests} request(s) ({stats.retries} retries), {stats.windows_split} window split(s), "
        f"{stats.instants_read} instant(s) read whole"
    )
    return 0 if events == stats.total_reported else 1


def _preview(arguments: argparse.Namespace) -> int:
    resource = profile_store_resource()
    try:
        pseudonymiser = resource.pseudonymiser()
        events = resource.client().preview(arguments.query)
    except VENDOR_ERRORS as error:
        return _failed(error)
    for event in events:
        print(json.dumps(pseudonymiser.event(event), ensure_ascii=False))
    return 0


VENDOR_ERRORS = (ProfileStoreError, RetriesExhaustedError, MissingSettingsError, ValueError)


def _failed(error: Exception) -> int:
    message = error.description if isinstance(error, MissingSettingsError) else str(error)
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _email_key(arguments: argparse.Namespace) -> int:
    pseudonymiser = profile_store_resource().pseudonymiser()
    for line in sys.stdin:
        if line.strip():
            print(pseudonymiser.email(line))
    return 0
