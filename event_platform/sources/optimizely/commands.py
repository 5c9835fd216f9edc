"""`event-platform optimizely auth | paths | ls | load`: the `oevents` commands E3 users know, same flags;
and `event-platform optimizely experiments`: the experiments' metadata from the REST API.

Flags not given fall back to the environment (`OptimizelySettings`) as `oevents`' do
(`--token`/OPTIMIZELY_API_TOKEN, `--output`/OPTIMIZELY_DATA_DIR), plus OPTIMIZELY_AUTH_URL /
OPTIMIZELY_S3_ENDPOINT_URL for the sandbox; the environment is read when a command runs.
Unlike `oevents`, `--event` with `--type decisions` (and `--experiment` with events) is refused, and
date ranges are compared as dates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from tqdm import tqdm

from event_platform import settings
from event_platform.dates import iso_date
from event_platform.lake.layout import checked_relative_name
from event_platform.retry import RetriesExhaustedError
from event_platform.sources.optimizely.client import (
    DEFAULT_AUTH_URL,
    SUCCESS_MARKER,
    CredentialsApi,
    E3Client,
    E3Error,
    E3Location,
    E3Object,
)
from event_platform.sources.optimizely.experiments import format_listing, read_snapshot
from event_platform.sources.optimizely.rest_client import (
    DEFAULT_REST_URL,
    OptimizelyRestClient,
    OptimizelyRestError,
)
from event_platform.sources.optimizely.schema import DATA_TYPES, e3_type
from event_platform.sources.optimizely.settings import OptimizelySettings


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    token = argparse.ArgumentParser(add_help=False)
    token.add_argument("--token", help="personal access token (default: $OPTIMIZELY_API_TOKEN)")
    access = argparse.ArgumentParser(add_help=False, parents=[token])
    access.add_argument(
        "--account-id",
        help="account id, for plain AWS credentials instead of a token (default: $OPTIMIZELY_ACCOUNT_ID)",
    )
    access.add_argument(
        "--bucket", help="bucket, with --account-id (default: $OPTIMIZELY_BUCKET, else E3's own)"
    )
    access.add_argument("--auth-url", help=argparse.SUPPRESS)
    access.add_argument("--s3-endpoint-url", help=argparse.SUPPRESS)
    source = subparsers.add_parser("optimizely", help="Optimizely Enriched Events Export (E3), like oevents")
    commands = source.add_subparsers(dest="optimizely_command", required=True, metavar="COMMAND")

    auth = commands.add_parser("auth", parents=[access], help="print temporary AWS credentials as exports")
    auth.add_argument("--duration", default="1h", help="credentials lifetime, 15m..1h (default 1h)")
    auth.set_defaults(run=run_auth)

    paths = commands.add_parser("paths", parents=[access], help="print the S3 paths of both export types")
    paths.set_defaults(run=run_paths)

    listing = commands.add_parser("ls", parents=[access], help="list a date's experiment=/event= folders")
    listing.add_argument("--type", required=True, choices=DATA_TYPES)
    listing.add_argument("--date", type=iso_date, help="YYYY-MM-DD; without it, list the dates")
    listing.set_defaults(run=run_ls)

    load = commands.add_parser("load", parents=[access], help="mirror the S3 tree of a date range locally")
    load.add_argument("--type", required=True, choices=DATA_TYPES)
    load.add_argument("--date", type=iso_date, help="one date (same as --start D --end D)")
    load.add_argument("--start", type=iso_date, help="first date, inclusive")
    load.add_argument("--end", type=iso_date, help="last date, inclusive")
    only = load.add_mutually_exclusive_group()
    only.add_argument("--experiment", help="only this experiment id (decisions)")
    only.add_argument("--event", help="only this event name (events)")
    load.add_argument("--output", help="local directory (default: $OPTIMIZELY_DATA_DIR)")
    load.set_defaults(run=run_load, load_parser=load)

    experiments = commands.add_parser(
        "experiments",
        parents=[token],
        help="list experiments: name, status, variations with weights, metrics with roles",
    )
    experiments.add_argument(
        "--project",
        action="append",
        help="only this project id (repeatable; default: $OPTIMIZELY_PROJECT_IDS, else every project)",
    )
    experiments.add_argument("--rest-url", help=argparse.SUPPRESS)
    experiments.set_defaults(run=run_experiments)


FLAG_SETTINGS = {
    "account_id": "account_id",
    "bucket": "bucket",
    "auth_url": "auth_url",
    "s3_endpoint_url": "s3_endpoint_url",
    "output": "data_dir",
    "rest_url": "rest_url",
}
"""A command's flag -> the `OptimizelySettings` field it falls back to (and `--token` to the token)."""


def from_environment(arguments: argparse.Namespace) -> OptimizelySettings:
    """Give the flags not given the environment's values; the environment's settings."""
    optimizely = OptimizelySettings.read()
    if arguments.token is None:
        arguments.token = settings.reveal(optimizely.api_token)
    for flag, field in FLAG_SETTINGS.items():
        if hasattr(arguments, flag) and getattr(arguments, flag) is None:
            setattr(arguments, flag, getattr(optimizely, field))
    return optimizely


def run_auth(arguments: argparse.Namespace) -> int:
    from_environment(arguments)
    if not arguments.token:
        return fail("auth needs an API token: pass --token or set OPTIMIZELY_API_TOKEN.")
    try:
        api = CredentialsApi(
            arguments.token, auth_url=arguments.auth_url or DEFAULT_AUTH_URL, duration=arguments.duration
        )
        issued = api.fetch()
    except (E3Error, RetriesExhaustedError, ValueError) as error:
        return fail(str(error))
    credentials = issued.credentials
    # Printing the keys is what `auth` is for: the user evals these lines in their shell.
    print(f"export AWS_ACCESS_KEY_ID={credentials.access_key_id}")
    print(f"export AWS_SECRET_ACCESS_KEY={credentials.secret_access_key}")
    print(f"export AWS_SESSION_TOKEN={credentials.session_token}")
    print(f"export AWS_SESSION_EXPIRATION={int(credentials.expiration.timestamp() * 1000)}")
    print(f"export S3_BASE_PATH={issued.location.s3_path}/")
    return 0


def run_paths(arguments: argparse.Namespace) -> int:
    from_environment(arguments)
    try:
        location = _location(arguments)
    except (E3Error, RetriesExhaustedError, ValueError) as error:
        return fail(str(error))
    for name in DATA_TYPES:
        print(f"s3://{location.bucket}/{location.type_prefix(e3_type(name))}")
    return 0


def run_ls(arguments: argparse.Namespace) -> int:
    from_environment(arguments)
    e3 = e3_type(arguments.type)
    try:
        client = _client(arguments)
        names = (
            client.list_folders(e3, arguments.date)
            if arguments.date
            else [f"date={day.isoformat()}" for day in client.list_dates(e3)]
        )
    except (E3Error, RetriesExhaustedError, ValueError) as error:
        return fail(str(error))
    for name in names:
        print(f"{name}/")
    return 0


def run_load(arguments: argparse.Namespace) -> int:
    from_environment(arguments)
    parser: argparse.ArgumentParser = arguments.load_parser
    e3 = e3_type(arguments.type)
    if arguments.event and e3.name != "events":
        parser.error("--event selects conversions: use it with --type events")
    if arguments.experiment and e3.name != "decisions":
        parser.error("--experiment selects decisions: use it with --type decisions")
    if arguments.date and (arguments.start or arguments.end):
        parser.error("give --date, or --start and --end, not both")
    start, end = (arguments.date, arguments.date) if arguments.date else (arguments.start, arguments.end)
    if start is None or end is None:
        parser.error("give --date, or both --start and --end (inclusive)")
    if start > end:
        parser.error(f"--start {start} is after --end {end}")
    if not arguments.output:
        parser.error("give --output or set OPTIMIZELY_DATA_DIR")
    wanted = (
        f"experiment={arguments.experiment}"
        if arguments.experiment
        else (f"event={arguments.event}" if arguments.event else None)
    )
    try:
        client = _client(arguments)
        days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
        plan: list[tuple[E3Object, Path]] = []
        output = Path(arguments.output)
        for day in days:
            listing = client.list_day(e3, day)
            day_dir = output / f"type={e3.name}" / f"date={day.isoformat()}"
            # S3 keys come from outside: one with `..` must not write anywhere but under --output.
            plan += [
                (part, day_dir / checked_relative_name(part.relative_path, f"{day_dir}"))
                for part in listing.parts
                if wanted is None or part.folder == wanted
            ]
            if listing.has_success and wanted is None:
                day_dir.mkdir(parents=True, exist_ok=True)
                (day_dir / SUCCESS_MARKER).touch()
        total = sum(part.size for part, _ in plan)
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"E3 {e3.name}", file=sys.stderr) as progress:
            for part, target in plan:
                _download(client, part, target)
                progress.update(part.size)
    except (E3Error, RetriesExhaustedError, ValueError) as error:
        return fail(str(error))
    print(f"{len(plan)} files, {total} bytes of {e3.name} {start}..{end} in {output}")
    return 0


def run_experiments(arguments: argparse.Namespace) -> int:
    optimizely = from_environment(arguments)
    if not arguments.token:
        return fail("experiments needs an API token: pass --token or set OPTIMIZELY_API_TOKEN.")
    try:
        projects = optimizely.project_ids
        if arguments.project:  # checked as OPTIMIZELY_PROJECT_IDS is, which they replace
            projects = OptimizelySettings.read(project_ids=",".join(arguments.project)).project_ids
        client = OptimizelyRestClient(
            arguments.token,
            base_url=arguments.rest_url or DEFAULT_REST_URL,
            requests_per_second=optimizely.rest_requests_per_second,
        )
        snapshot = read_snapshot(client, projects)
    except (OptimizelyRestError, RetriesExhaustedError, ValueError) as error:
        return fail(str(error))
    for line in format_listing(snapshot):
        print(line)
    return 0


def _download(client: E3Client, part: E3Object, target: Path) -> None:
    """Into a temporary name, then renamed: an interrupted load never leaves a half file that looks whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    client.download(part, partial)
    partial.replace(target)


def _client(arguments: argparse.Namespace) -> E3Client:
    return E3Client.connect(
        token=arguments.token,
        account_id=arguments.account_id,
        auth_url=arguments.auth_url,
        bucket=arguments.bucket,
        s3_endpoint_url=arguments.s3_endpoint_url,
    )


def _location(arguments: argparse.Namespace) -> E3Location:
    if arguments.token:
        api = CredentialsApi(arguments.token, auth_url=arguments.auth_url or DEFAULT_AUTH_URL)
        return api.fetch().location
    return _client(arguments).location


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
