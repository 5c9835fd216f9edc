"""`event-platform tracking serve` (the collector) and `event-platform tracking track` (one event)."""

from __future__ import annotations

import argparse
import json

from event_platform import settings
from event_platform.lake.io_manager import lake_resource
from event_platform.sources.tracking.collector import Collector, CollectorSettings
from event_platform.sources.tracking.defs.resources import tracking_resource
from event_platform.sources.tracking.events import InvalidEventError, load_registry
from event_platform.sources.tracking.server import ServerLimits, run_workers
from event_platform.sources.tracking.settings import TrackingSettings

DATA_EXAMPLE = """--data '{"page": "home"}'"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    tracking = subparsers.add_parser("tracking", help="the first-party tracking collector and Tracker")
    commands = tracking.add_subparsers(dest="tracking_command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the collector: POST /api/tracking and /api/tracking/batch, landing in the lake "
        "(EVENT_PLATFORM_LAKE) with the TRACKING_* limits",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    serve.add_argument(
        "--workers", type=_positive, default=1, help="processes sharing the port (at most one per core)"
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (uvicorn's access log: a sizeable share of the collector's CPU at thousands "
        "of requests a second, so off by default; refusals are in each answer, write failures logged anyway)",
    )
    serve.set_defaults(run=_serve)

    track = commands.add_parser(
        "track", help="record one event through a Tracker (TRACKING_COLLECTOR_URL, TRACKING_SPOOL_DIR)"
    )
    track.add_argument("event_type")
    track.add_argument("anon_username")
    track.add_argument("--data", default="{}", type=_json_object, help="event_data as a JSON object")
    track.add_argument("--course-slug")
    track.add_argument("--course-run")
    track.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for delivery")
    track.set_defaults(run=_track)


def collector_settings(tracking: TrackingSettings) -> CollectorSettings:
    """The collector's limits and flush policy, from the environment's settings."""
    return CollectorSettings(
        max_event_bytes=tracking.max_event_bytes,
        max_batch_bytes=tracking.max_batch_bytes,
        flush_bytes=tracking.flush_bytes,
        flush_age_seconds=tracking.flush_age_seconds,
        seen_uuids=tracking.seen_uuids,
        body_seconds=tracking.body_seconds,
        shared_secret=settings.reveal(tracking.shared_secret),
        allowed_origins=tracking.allowed_origins,
    )


def server_limits(tracking: TrackingSettings) -> ServerLimits:
    """How the collector's server treats slow clients and floods, from the environment's settings."""
    return ServerLimits(
        header_seconds=tracking.header_seconds,
        keep_alive_seconds=tracking.keep_alive_seconds,
        max_connections=tracking.max_connections,
    )


def _serve(arguments: argparse.Namespace) -> int:
    lake = lake_resource().lake()
    tracking = TrackingSettings.read()
    registry = load_registry(tracking.event_types_file)
    limits, collector_limits = server_limits(tracking), collector_settings(tracking)
    print(f"Collector on http://{arguments.host}:{arguments.port}/api/tracking, landing in {lake.uri()}")
    run_workers(
        lambda: Collector(lake, registry=registry, settings=collector_limits).app,
        host=arguments.host,
        port=arguments.port,
        limits=limits,
        workers=arguments.workers,
        log_level="info",
        access_log=arguments.access_log,
    )
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _json_object(text: str) -> dict[str, object]:
    """An argparse `type`: `--data` must be a JSON object (argparse turns the error into one line)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a JSON object: give e.g. {DATA_EXAMPLE}")
    return value


def _track(arguments: argparse.Namespace) -> int:
    context = {"course_slug": arguments.course_slug, "course_run": arguments.course_run}
    with tracking_resource().tracker() as tracker:
        try:
            uuid = tracker.track(
                arguments.event_type,
                arguments.anon_username,
                arguments.data,
                **{name: value for name, value in context.items() if value is not None},
            )
        except InvalidEventError as error:
            print(f"refused: {error}")
            return 2
        delivered = tracker.flush(arguments.timeout)
    print(f"{uuid} {'delivered' if delivered else 'spooled; it will be delivered when the collector is up'}")
    return 0
