"""A local Optimizely E3: the Authentication API on 127.0.0.1 and an S3 endpoint (moto) holding the export,
and on the same server the REST API for experiment metadata (`optimizely_rest.py`).

The export is drawn from the world: each published day has, per running experiment, one decision per
active person (bucketed by `World.assign`, which plants the sample-ratio mismatch) and conversions on
the experiment's metric at each variation's planted rate, plus page events that belong to no experiment.
Like Optimizely's Spark job it writes `part-0000n-<job uuid>.c000.snappy.parquet` files, a `_SUCCESS`
marker per date, a few duplicate rows whose `uuid` differs only in case, and, after 2023-10-09, null
`session_id` and `experiments`.

Credentials expire after `credential_seconds` (a minute by default) so every long load refreshes them.
The S3 endpoint is moto's app behind a gate that enforces that expiry: a request signed with keys this
sandbox issued is answered 403 `ExpiredToken` once they have expired, as AWS would; any other keys
pass (moto itself accepts any).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import itertools
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Self

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.serving import BaseWSGIServer, make_server

from event_platform.dates import day_start
from event_platform.sandbox.loopback import LoopbackService
from event_platform.sandbox.optimizely_rest import RestApi
from event_platform.sandbox.world import (
    HABIT_EVENT,
    PAGE_EVENTS,
    Experiment,
    Person,
    World,
    optimizely_event_id,
)
from event_platform.sources.optimizely.client import (
    DEFAULT_BUCKET,
    SUCCESS_MARKER,
    E3Location,
    parse_duration,
)
from event_platform.sources.optimizely.schema import E3_TYPES, DataType

if TYPE_CHECKING:
    from event_platform.sandbox.runner import EmulatorContext

CREDENTIALS_PATH = "/v2/export/credentials"
SANDBOX_TOKEN = "sandbox-optimizely-token"
SANDBOX_REQUESTS_PER_SECOND = 20
SESSION_IDS_DROPPED = dt.date(2023, 10, 9)
"""Since this date E3 no longer fills `session_id` (nor `experiments` on conversions)."""
ROWS_PER_PART = 2_000
DUPLICATE_SHARE = 0.01
USER_AGENTS = {
    "Web": ("js", "0.220.0", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"),
    "iOS": ("swift-sdk", "4.0.1", "Optimizely-Swift/4.0.1 (iPhone; iOS 18.1)"),
    "Android": ("android-sdk", "5.0.0", "Optimizely-Android/5.0.0 (Linux; Android 15)"),
}
DAY_MS = 86_400_000
SIGNED_ACCESS_KEY = re.compile(r"Credential=([A-Z0-9]+)/")
EXPIRED_TOKEN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code>'
    b"<Message>The provided token has expired.</Message></Error>"
)


class OptimizelySandbox(LoopbackService):
    """Start with `with OptimizelySandbox(world) as sandbox:`; `publish_day(day)` makes a date exist."""

    name = "optimizely-auth"

    def __init__(
        self,
        world: World,
        *,
        bucket: str = DEFAULT_BUCKET,
        token: str = SANDBOX_TOKEN,
        credential_seconds: int = 60,
        clock: Callable[[], float] = time.time,
        rows_per_part: int = ROWS_PER_PART,
    ) -> None:
        self.world = world
        self.bucket = bucket
        self.token = token
        self._initial_token = token
        self.credential_seconds = credential_seconds
        self.clock = clock
        self.rows_per_part = rows_per_part
        self.location = E3Location.for_account(world.account_id, bucket)
        self.issued_access_keys: list[str] = []
        self._expiry_by_access_key: dict[str, float] = {}
        self._s3_endpoint_url: str | None = None
        self._s3_server: BaseWSGIServer | None = None
        self._s3_thread: threading.Thread | None = None
        self._issue_lock = threading.Lock()
        self.rest = RestApi(world, token=lambda: self.token)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        # moto's request log would drown the demo's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = self._expiry_gate(DomainDispatcherApplication(create_backend_app))
        self._s3_server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        # A short poll interval lets stop() return at once.
        self._s3_thread = threading.Thread(
            target=self._s3_server.serve_forever, kwargs={"poll_interval": 0.05}, name="e3-s3", daemon=True
        )
        self._s3_thread.start()
        host, port = self._s3_server.server_address[:2]
        self._s3_endpoint_url = f"http://{host}:{port}"
        super().start()
        self._s3.create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        super().stop()
        if self._s3_server is not None and self._s3_thread is not None:
            self._s3_server.shutdown()
            self._s3_thread.join(timeout=10)
            self._s3_server = None

    @property
    def auth_url(self) -> str:
        return f"{self.url}{CREDENTIALS_PATH}"

    @property
    def s3_endpoint_url(self) -> str:
        if self._s3_endpoint_url is None:
            raise RuntimeError("The Optimizely sandbox is not started.")
        return self._s3_endpoint_url

    @property
    def rest_url(self) -> str:
        """The base of the REST API's `/v2/…` and `/flags/v1/…` (OPTIMIZELY_REST_URL)."""
        return self.url

    def environment(self) -> dict[str, str]:
        """The variables that point the platform's OptimizelyResource and CLI at this sandbox."""
        return {
            "OPTIMIZELY_API_TOKEN": self.token,
            "OPTIMIZELY_AUTH_URL": self.auth_url,
            "OPTIMIZELY_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "OPTIMIZELY_REST_URL": self.rest_url,
            # Optimizely's own limit is 2 requests/s; the loopback emulator has none worth waiting for.
            "OPTIMIZELY_REST_REQUESTS_PER_SECOND": str(SANDBOX_REQUESTS_PER_SECOND),
        }

    # -- the Authentication API --------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route(CREDENTIALS_PATH, self._credentials, methods=["GET"]), *self.rest.routes()]
        )

    async def _credentials(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse({"code": "UNAUTHORIZED", "message": "Authentication required."}, 401)
        if token.strip() != self.token:
            return JSONResponse({"code": "FORBIDDEN", "message": "Invalid token."}, 403)
        try:
            seconds = parse_duration(request.query_params.get("duration", "1h"))
        except ValueError as error:
            return JSONResponse({"code": "BAD_REQUEST", "message": str(error)}, status_code=400)
        lifetime = min(seconds, self.credential_seconds)
        expires = self.clock() + lifetime
        with self._issue_lock:
            number = len(self.issued_access_keys) + 1
            access_key = f"ASIASANDBOX{number:09d}"
            self.issued_access_keys.append(access_key)
            self._expiry_by_access_key[access_key] = expires
        # The real API is inconsistent about the trailing slash; so is this one.
        s3_path = self.location.s3_path + ("/" if number % 2 else "")
        return JSONResponse(
            {
                "credentials": {
                    "accessKeyId": access_key,
                    "secretAccessKey": uuid.uuid4().hex,
                    "sessionToken": uuid.uuid4().hex * 4,
                    "expiration": int(expires * 1000),
                },
                "s3Path": s3_path,
            }
        )

    def _expiry_gate(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """WSGI middleware: 403 ExpiredToken for a request signed with keys of ours that have expired."""

        def gate(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            match = SIGNED_ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
            expires = self._expiry_by_access_key.get(match.group(1)) if match else None
            if expires is not None and self.clock() >= expires:
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [EXPIRED_TOKEN_XML]
            return app(environ, start_response)

        return gate

    # -- the export --------------------------------------------------------------------------------

    def publish_day(self, day: dt.date, *, success_marker: bool = True) -> dict[str, int]:
        """Write one processing date of both exports; returns row counts (duplicates included)."""
        decisions, conversions = generate_day(self.world, day)
        counts = {"decisions": 0, "events": 0, "duplicates": 0}
        for type_name, folders in (("decisions", decisions), ("events", conversions)):
            job_rng = self.world.rng("optimizely", "job", type_name, day)
            job = uuid.UUID(int=job_rng.getrandbits(128), version=4)
            for folder, rows in sorted(folders.items()):
                dup_rng = self.world.rng("optimizely", "dup", type_name, day, folder)
                duplicates = with_case_duplicates(dup_rng, rows)
                counts[type_name] += len(rows) + len(duplicates)
                counts["duplicates"] += len(duplicates)
                self._write_parts(type_name, day, folder, job, rows, duplicates)
            if success_marker:
                self.put_object(self.relative_key(type_name, day, SUCCESS_MARKER), b"")
        return counts

    def relative_key(self, type_name: DataType, day: dt.date, name: str) -> str:
        return f"type={type_name}/date={day.isoformat()}/{name}"

    def put_object(self, relative_key: str, data: bytes) -> str:
        """Store bytes below the account prefix (tests add corrupt parts this way); returns the key."""
        key = f"{self.location.prefix}/{relative_key}"
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def reset(self, *, clock: Callable[[], float] = time.time) -> None:
        """An empty export and no credentials issued yet, on the same running servers (for tests)."""
        stored = [f"{self.location.prefix}/{key}" for key in self.keys()]
        for start in range(0, len(stored), 1000):
            batch = [{"Key": key} for key in stored[start : start + 1000]]
            self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
        with self._issue_lock:
            self.issued_access_keys.clear()
            self._expiry_by_access_key.clear()
        self.token = self._initial_token
        self.clock = clock

    def keys(self) -> list[str]:
        """Every stored key, below the account prefix."""
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=f"{self.location.prefix}/")
        return [
            item["Key"][len(self.location.prefix) + 1 :]
            for page in pages
            for item in page.get("Contents", [])
        ]

    def read_object(self, relative_key: str) -> bytes:
        response = self._s3.get_object(Bucket=self.bucket, Key=f"{self.location.prefix}/{relative_key}")
        return response["Body"].read()

    def delete_object(self, relative_key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=f"{self.location.prefix}/{relative_key}")

    def _write_parts(
        self,
        type_name: DataType,
        day: dt.date,
        folder: str,
        job: uuid.UUID,
        rows: list[dict[str, Any]],
        duplicates: list[dict[str, Any]],
    ) -> None:
        schema = E3_TYPES[type_name].schema
        size = self.rows_per_part
        chunks = [rows[start : start + size] for start in range(0, len(rows), size)]
        # Duplicates land in a part of their own, as when the vendor re-sends a batch.
        for number, chunk in enumerate([*chunks, duplicates] if duplicates else chunks):
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(chunk, schema=schema), buffer, compression="snappy")
            name = f"{folder}/part-{number:05d}-{job}.c000.snappy.parquet"
            self.put_object(self.relative_key(type_name, day, name), buffer.getvalue())

    @functools.cached_property
    def _s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
            config=Config(s3={"addressing_style": "path"}),
        )


def generate_day(
    world: World, day: dt.date
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """({"experiment=<id>": decision rows}, {"event=<name>": conversion rows}) for one processing date."""
    rng = world.rng("optimizely", day)
    day_ms = int(day_start(day).timestamp() * 1000)
    with_sessions = day < SESSION_IDS_DROPPED
    decisions: dict[str, list[dict[str, Any]]] = {}
    conversions: dict[str, list[dict[str, Any]]] = {}
    running = [experiment for experiment in world.experiments if experiment.runs_on(day)]
    for person in world.active_people(day):
        # Some visits start before midnight and are processed after it, so they belong to this date.
        seen_ms = day_ms - 1_200_000 + rng.randrange(DAY_MS // 2)
        session = str(rng.randrange(-(2**31), 2**31)) if with_sessions else None
        memberships = []
        habit_lift = 0.0
        for experiment in running:
            if not world.meets(experiment, person, day):
                continue
            variation = world.assign(experiment, person)
            habit_lift = max(habit_lift, variation.habit_lift)
            memberships.append(
                {
                    "campaign_id": experiment.campaign_id,
                    "experiment_id": experiment.id,
                    "variation_id": variation.id,
                    "is_holdback": False,
                }
            )
            decision_ms = seen_ms + rng.randrange(60_000)
            decisions.setdefault(f"experiment={experiment.id}", []).append(
                _decision(world, rng, person, experiment, variation.id, decision_ms, session, day_ms)
            )
            if experiment.plants == "conversion" and world.converts(experiment, person):
                converted_ms = decision_ms + rng.randrange(1_000, 6 * 3_600_000)
                revenue = variation.revenue_cents
                tags = {"revenue": str(revenue), "experiment_name": experiment.name} if revenue else {}
                conversions.setdefault(f"event={experiment.metric_event}", []).append(
                    _conversion(
                        world,
                        rng,
                        person,
                        experiment.metric_event,
                        converted_ms,
                        session,
                        day_ms,
                        revenue=revenue,
                        quantity=1 if revenue else 0,
                        tags=tags,
                        experiments=memberships if with_sessions else None,
                    )
                )
        habit = world.habit_rate(person) * (1.0 + habit_lift)
        for name, mean in (*PAGE_EVENTS, (HABIT_EVENT, habit)):
            for _ in range(_poisson(rng, mean)):
                conversions.setdefault(f"event={name}", []).append(
                    _conversion(
                        world,
                        rng,
                        person,
                        name,
                        seen_ms + rng.randrange(DAY_MS // 2),
                        session,
                        day_ms,
                        revenue=0,
                        quantity=0,
                        tags={},
                        experiments=memberships if with_sessions else None,
                    )
                )
    for rows in itertools.chain(decisions.values(), conversions.values()):
        rows.sort(key=lambda row: row["process_timestamp"])
    return decisions, conversions


def with_case_duplicates(rng: random.Random, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A few rows again, their uuid upper-cased: what E3 delivers when a batch is processed twice."""
    count = max(1, int(len(rows) * DUPLICATE_SHARE)) if rows else 0
    return [{**row, "uuid": row["uuid"].upper()} for row in rng.sample(rows, count)]


def _common(
    world: World, rng: random.Random, person: Person, event_ms: int, session: str | None, day_ms: int
) -> dict[str, Any]:
    engine, version, agent = USER_AGENTS[person.platform]
    # `date=` is the processing date: the event itself may be from the evening before.
    processed_ms = min(max(event_ms + int(rng.expovariate(1 / 30_000)), day_ms), day_ms + DAY_MS - 1)
    return {
        "uuid": world.uuid(rng),
        "timestamp": dt.datetime.fromtimestamp(min(event_ms, processed_ms) / 1000, tz=dt.UTC),
        "process_timestamp": dt.datetime.fromtimestamp(processed_ms / 1000, tz=dt.UTC),
        "visitor_id": person.user_id,
        "session_id": session,
        "account_id": world.account_id,
        "attributes": [
            {"id": "$opt_bot_filtering", "name": "$opt_bot_filtering", "type": "custom", "value": "false"},
            {"id": None, "name": "country", "type": "custom", "value": person.country},
            {"id": None, "name": "platform", "type": "custom", "value": person.platform},
        ],
        "user_ip": person.ip_address,
        "user_agent": agent,
        "referer": "https://learn.example.org/" if person.platform == "Web" else None,
        "revision": "42",
        "client_engine": engine,
        "client_version": version,
    }


def _decision(
    world: World,
    rng: random.Random,
    person: Person,
    experiment: Experiment,
    variation_id: str,
    event_ms: int,
    session: str | None,
    day_ms: int,
) -> dict[str, Any]:
    row = _common(world, rng, person, event_ms, session, day_ms)
    row.update(
        campaign_id=experiment.campaign_id,
        experiment_id=experiment.id,
        variation_id=variation_id,
        is_holdback=False,
    )
    return row


def _conversion(
    world: World,
    rng: random.Random,
    person: Person,
    name: str,
    event_ms: int,
    session: str | None,
    day_ms: int,
    *,
    revenue: int,
    quantity: int,
    tags: dict[str, str],
    experiments: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    row = _common(world, rng, person, event_ms, session, day_ms)
    row.update(
        experiments=experiments,
        entity_id=optimizely_event_id(name),
        event_type=None,
        event_name=name,
        revenue=revenue,
        value=None,
        quantity=quantity,
        tags=list(tags.items()),
    )
    return row


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def emulate(context: EmulatorContext, stack: ExitStack) -> dict[str, str]:
    """The sandbox's Optimizely (registered in `sources/optimizely`): E3 exports of the days that happened."""
    sandbox = stack.enter_context(OptimizelySandbox(context.world))
    for day in context.days:
        sandbox.publish_day(day)
    return sandbox.environment()
