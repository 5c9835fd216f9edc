"""A loopback stand-in for the Amplitude Export API (`GET /api/2/export`), drawn from the sandbox world.

Data. A day's export is generated once, deterministically from the world (same day, same settings ->
byte-identical files), into a cache directory as Amplitude lays it out:
`<project>/<project>_<YYYY-MM-DD>_<H>#<n>.json.gz`, hour not zero-padded, a new part every
`events_per_part` lines. Lines are built from templates, not `json.dumps`, and big days are written by
one process per core, so a million-event day takes well under a minute. Lines have the real export's
55 keys in alphabetical order with nulls for the deprecated ones.
A day (by `server_upload_time`) holds:
- `events_per_day` background events (`session_start`, `page_view`, `course_view`, `video_play`,
  `search`, `session_end`) of the day's active people, more in the afternoon (UTC) than at night;
  about 2% arrive late, with an `event_time` one to three days earlier; about 1% have a whole-second
  `event_time` written without a fraction; server-side ones have `session_id` -1;
- the experiment conversions: every active person is exposed to every running experiment, and the world's
  converters (`World.converts`, the same draw the Optimizely emulator uses) convert on its metric
  (`purchase` or `subscribe` with `$revenue`, or `enroll`) on every day they are active;
- retried duplicates: about 0.2% of lines appear twice, the same `uuid` and bytes;
- on request, `invalid_json_lines` lines cut in half and `malformed_timestamps` lines whose `event_time`
  cannot be parsed (they stay valid JSON).

Faults (the `faults` attribute, changeable while serving): `too_large_bytes` (400 when a window's
members exceed it, so clients must split), `timeout_bytes` (504 likewise), `missing_days` (404 `Raw data
files were not found.`), and counters for the next requests: `throttle` (429 with `Retry-After:
retry_after`), `server_errors` (500), `html_pages` (200 with an HTML page), `truncated` (200 with a ZIP cut
in half). Every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import random
import shutil
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from event_platform.dates import day_start
from event_platform.sandbox.loopback import LoopbackService
from event_platform.sandbox.world import Experiment, Person, World

if TYPE_CHECKING:
    from event_platform.sandbox.runner import EmulatorContext

EXPORT_PATH = "/api/2/export"
WINDOW_FORMAT = "%Y%m%dT%H"
NO_DATA_BODY = "Raw data files were not found."
TOO_LARGE_BODY = "Raw data export is too large (the limit is 4GB); please request a smaller time range."
TIMEOUT_BODY = "Export timed out: too much data for this time range."
DEFAULT_API_KEY = "sandbox-amplitude-api-key"
DEFAULT_SECRET_KEY = "sandbox-amplitude-secret-key"
LATE_SHARE = 0.02
WHOLE_SECOND_SHARE = 0.01
ANONYMOUS_SHARE = 0.05
NO_SESSION_SHARE = 0.02
DUPLICATE_SHARE = 0.002
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PARALLEL_ABOVE_EVENTS = 100_000
_EPOCH = dt.date(1970, 1, 1)

# One line of the export with `%` slots for what changes per event and `@name@` markers for what is
# fixed per person (filled once per person). Keys are alphabetical, as the export writes them.
_LINE = (
    '{"$insert_id":"%s","$insert_key":null,"$schema":null,"adid":null,"amplitude_attribution_ids":null,'
    '"amplitude_event_type":null,"amplitude_id":@amplitude_id@,"app":@app@,"city":@city@,'
    '"client_event_time":"%s","client_upload_time":"%s","country":@country@,"data":%s,"data_type":"event",'
    '"device_brand":null,"device_carrier":@device_carrier@,"device_family":@device_family@,'
    '"device_id":@device_id@,"device_manufacturer":null,"device_model":null,"device_type":@device_type@,'
    '"dma":null,"event_id":%d,"event_properties":%s,"event_time":"%s","event_type":"%s",'
    '"global_user_properties":null,"group_properties":{},"groups":{},"idfa":null,"ip_address":@ip_address@,'
    '"is_attribution_event":null,"language":@language@,"library":"%s","location_lat":null,'
    '"location_lng":null,"os_name":@os_name@,"os_version":@os_version@,"partner_id":null,"paying":null,'
    '"plan":{},"platform":@platform@,"processed_time":"%s","region":@region@,"sample_rate":null,'
    '"server_received_time":"%s","server_upload_time":"%s","session_id":%d,"source_id":null,'
    '"start_version":null,"user_creation_time":null,"user_id":%s,"user_properties":@user_properties@,'
    '"uuid":"%s","version_name":@version_name@}\n'
)
_COUNTRY_NAMES = {
    "US": "United States", "GB": "United Kingdom", "DE": "Germany", "FR": "France", "SE": "Sweden",
    "IN": "India", "BR": "Brazil", "JP": "Japan", "CA": "Canada",
}  # fmt: skip
_REGIONS = {
    "Boston": "Massachusetts", "Austin": "Texas", "London": "England", "Berlin": "Land Berlin",
    "Paris": "Ile-de-France", "Stockholm": "Stockholm County", "Pune": "Maharashtra", "Recife": "Pernambuco",
    "Osaka": "Osaka", "Toronto": "Ontario",
}  # fmt: skip
_LANGUAGES = {"DE": "German", "FR": "French", "SE": "Swedish", "BR": "Portuguese", "JP": "Japanese"}
# device_carrier, device_family, device_type, os_name, os_version, SDK library, version_name
_PLATFORM_FIELDS = {
    "Web": (None, "Mac OS X", "Mac", "Chrome", "137", "amplitude-ts/2.16.1", None),
    "iOS": ("Vodafone", "Apple iPhone", "Apple iPhone 15", "ios", "18.1", "amplitude-swift/1.11.2", "4.2.0"),
    "Android": ("T-Mobile", "Samsung Phone", "Samsung Galaxy S24", "android", "15", "amplitude-kotlin/1.19.3",
                "4.2.0"),
}  # fmt: skip
_SERVER_LIBRARY = "http/2.0"
_SDK_DATA = '{"path":"/2/httpapi","user_properties_updated":false,"group_first_event":{},"group_ids":{}}'
_SERVER_DATA = '{"path":"/2/httpapi","user_properties_updated":true,"group_first_event":{},"group_ids":{}}'
_INITIAL_PROPERTIES = (
    "initial_utm_medium", "initial_referring_domain", "initial_utm_content", "initial_utm_campaign",
    "initial_gclid", "initial_utm_source", "initial_fbclid", "initial_utm_id", "initial_referrer",
    "initial_utm_term", "initial_msclkid",
)  # fmt: skip
_BACKGROUND_TYPES = ("session_start", "page_view", "page_view", "page_view", "course_view", "video_play",
                     "search", "session_end")  # fmt: skip
_PRODUCTS = {"checkout_button_colour": "course-certificate", "pricing_banner": "annual-plan"}
_MALFORMED_TIMES = ("2026-02-30 10:00:00.000000", "not a timestamp", "2026-11-01 24:61:00", "")


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@lru_cache(maxsize=256)
def _scalar(value: str | None) -> str:
    """A repeated string field as JSON, rendered once."""
    return _compact(value)


@lru_cache(maxsize=16)
def _user_properties(platform: str, plan: str) -> str:
    properties = dict.fromkeys(_INITIAL_PROPERTIES, "EMPTY")
    properties |= {"referrer": "https://www.google.com/", "referring_domain": "www.google.com",
                   "signup_platform": platform, "plan": plan}  # fmt: skip
    return json.dumps(properties, separators=(",", ":"))


@dataclass
class Faults:
    """What the emulator does wrong, on purpose; counters are spent one per request."""

    too_large_bytes: int | None = None
    timeout_bytes: int | None = None
    missing_days: set[dt.date] = field(default_factory=set)
    throttle: int = 0
    retry_after: int = 1
    server_errors: int = 0
    html_pages: int = 0
    truncated: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    start: str | None
    end: str | None
    status: int


@dataclass(frozen=True)
class DaySummary:
    """What a generated day holds, for tests and benchmarks to check against."""

    day: str
    lines: int
    unique_uuids: int
    duplicates: int
    late_events: int
    conversions: int
    invalid_json_lines: int
    malformed_timestamps: int
    gzip_bytes: int
    uncompressed_bytes: int
    members: list[str]


@dataclass(frozen=True)
class GenerationSettings:
    events_per_day: int = 2_000
    events_per_part: int = 20_000
    invalid_json_lines: int = 0
    malformed_timestamps: int = 0

    def cache_key(self, world: World) -> str:
        identity = repr((world.seed, world.people_count, world.amplitude_project_id, world.start, self))
        return hashlib.sha256(identity.encode()).hexdigest()[:16]


@lru_cache(maxsize=4_096)
def _minute_text(epoch_minute: int) -> str:
    return f"{dt.datetime.fromtimestamp(epoch_minute * 60, dt.UTC):%Y-%m-%d %H:%M}"


def format_time(epoch_ms: int) -> str:
    """Amplitude's `YYYY-MM-DD HH:MM:SS.ffffff` (UTC, no zone); a whole second has no fraction."""
    minutes, ms_of_minute = divmod(epoch_ms, 60_000)
    seconds, millis = divmod(ms_of_minute, 1000)
    if millis:
        return f"{_minute_text(minutes)}:{seconds:02d}.{millis:03d}000"
    return f"{_minute_text(minutes)}:{seconds:02d}"


def _uuid4(rng: random.Random) -> str:
    text = f"{rng.getrandbits(128):032x}"
    return (
        f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{'89ab'[int(text[16], 16) & 3]}{text[17:20]}-{text[20:32]}"
    )


def _person_template(person: Person, project_id: int) -> str:
    carrier, family, device_type, os_name, os_version, _, version_name = _PLATFORM_FIELDS[person.platform]
    values = {
        "amplitude_id": str(person.amplitude_id), "app": str(project_id), "city": _scalar(person.city),
        "country": _scalar(_COUNTRY_NAMES.get(person.country, person.country)),
        "device_carrier": _scalar(carrier), "device_family": _scalar(family),
        "device_id": _compact(person.device_id), "device_type": _scalar(device_type),
        "ip_address": _compact(person.ip_address),
        "language": _scalar(_LANGUAGES.get(person.country, "English")), "os_name": _scalar(os_name),
        "os_version": _scalar(os_version), "platform": _scalar(person.platform),
        "region": _scalar(_REGIONS.get(person.city)),
        "user_properties": _user_properties(person.platform, "free" if person.index % 4 else "pro"),
        "version_name": _scalar(version_name),
    }  # fmt: skip
    template = _LINE
    for name, value in values.items():
        template = template.replace(f"@{name}@", value.replace("%", "%%"))
    return template


def _background_properties(world: World) -> dict[str, tuple[str, ...]]:
    """A few prepared `event_properties` per background event type, picked at random per event."""
    courses = world.courses
    return {
        "session_start": ("{}",),
        "page_view": tuple(
            _compact({"page_path": f"/courses/{c.slug}/{unit}", "page_title": unit.replace("-", " ").title()})
            for c in courses for unit in c.unit_slugs
        ),
        "course_view": tuple(_compact({"course_run": c.run, "course_slug": c.slug}) for c in courses),
        "video_play": tuple(
            _compact({"course_slug": c.slug, "position_seconds": s, "video_id": f"{c.slug}-video-{n}"})
            for c in courses for n in range(1, 5) for s in (0, 30, 95)
        ),
        "search": tuple(_compact({"query": q}) for q in ("dagster assets", "p-value", "pandas join", "ci")),
        "session_end": tuple(_compact({"session_length_seconds": s}) for s in (45, 300, 1260, 2900)),
    }  # fmt: skip


def _conversion_properties(world: World, experiment: Experiment, variation_revenue_cents: int) -> str:
    if variation_revenue_cents:
        price = variation_revenue_cents / 100
        product = _PRODUCTS.get(experiment.name, experiment.name)
        return _compact({"$price": price, "$productId": product, "$quantity": 1, "$revenue": price,
                         "$revenueType": experiment.metric_event})  # fmt: skip
    course = world.courses[int(experiment.id) % len(world.courses)]
    return _compact({"course_run": course.run, "course_slug": course.slug})


@dataclass(frozen=True)
class _Conversion:
    person: Person
    experiment: Experiment
    properties: str


def _hour_weights() -> list[float]:
    """Busier in the (UTC) afternoon, quietest around 03:00."""
    return [1.0 + 0.8 * math.sin(math.pi * ((hour - 3) % 24) / 24) for hour in range(24)]


def _spread(total: int, weights: list[float]) -> list[int]:
    """`total` split by `weights` into integers that add up exactly (largest remainder)."""
    scale = total / sum(weights)
    shares = [w * scale for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: shares[i] - counts[i], reverse=True)
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts


@dataclass(frozen=True)
class _HourPlan:
    day: dt.date
    hour: int
    background: int
    conversions: tuple[_Conversion, ...]
    invalid_json_lines: int
    malformed_timestamps: int


@dataclass
class _HourTotals:
    members: list[str] = field(default_factory=list)
    lines: int = 0
    unique_valid: int = 0
    duplicates: int = 0
    late_events: int = 0
    conversions: int = 0
    gzip_bytes: int = 0
    uncompressed_bytes: int = 0


class DayGenerator:
    """Writes one day of the export as Amplitude's hour files; deterministic for a world and settings.

    Hours draw from their own random streams, so they can be written in parallel processes.
    """

    def __init__(self, world: World, settings: GenerationSettings) -> None:
        self.world = world
        self.settings = settings
        self._templates = [_person_template(p, world.amplitude_project_id) for p in world.people]
        self._properties = _background_properties(world)

    def conversions(self, day: dt.date) -> list[_Conversion]:
        """Every active person's conversions on the experiments running that day, at the planted rates."""
        converted = []
        for experiment in self.world.experiments:
            if not experiment.runs_on(day) or experiment.plants != "conversion":
                continue
            for person in self.world.active_people(day):
                if self.world.converts(experiment, person):
                    variation = self.world.assign(experiment, person)
                    properties = _conversion_properties(self.world, experiment, variation.revenue_cents)
                    converted.append(_Conversion(person, experiment, properties))
        return converted

    def plan(self, day: dt.date) -> list[_HourPlan]:
        settings = self.settings
        rng = self.world.rng("amplitude", day, "plan")
        background = _spread(settings.events_per_day, _hour_weights())
        conversions: list[list[_Conversion]] = [[] for _ in range(24)]
        for conversion in self.conversions(day):
            conversions[rng.randrange(24)].append(conversion)
        invalid, malformed = [0] * 24, [0] * 24
        for _ in range(settings.invalid_json_lines):
            invalid[rng.randrange(24)] += 1
        for _ in range(settings.malformed_timestamps):
            malformed[rng.randrange(24)] += 1
        return [
            _HourPlan(day, hour, background[hour], tuple(conversions[hour]), invalid[hour], malformed[hour])
            for hour in range(24)
        ]

    def write(self, day: dt.date, directory: Path, *, workers: int | None = None) -> DaySummary:
        """The day's files under `directory/<project>/`; returns what they hold.

        `workers` processes write the hours (default: one per core for days of `PARALLEL_ABOVE_EVENTS` or
        more, none for smaller ones). They are spawned, so a script calling this for a big day needs the
        usual `if __name__ == "__main__":` guard.
        """
        project_dir = Path(directory) / str(self.world.amplitude_project_id)
        project_dir.mkdir(parents=True, exist_ok=True)
        plans = self.plan(day)
        if workers is None:
            workers = os.cpu_count() or 1 if self.settings.events_per_day >= PARALLEL_ABOVE_EVENTS else 1
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                hours = list(pool.map(_write_hour_in_worker, repeat(self.world), repeat(self.settings),
                                      plans, repeat(project_dir)))  # fmt: skip
        else:
            hours = [self.write_hour(plan, project_dir) for plan in plans]
        return DaySummary(
            day=day.isoformat(), lines=sum(h.lines for h in hours),
            unique_uuids=sum(h.unique_valid for h in hours), duplicates=sum(h.duplicates for h in hours),
            late_events=sum(h.late_events for h in hours), conversions=sum(h.conversions for h in hours),
            invalid_json_lines=self.settings.invalid_json_lines,
            malformed_timestamps=self.settings.malformed_timestamps,
            gzip_bytes=sum(h.gzip_bytes for h in hours),
            uncompressed_bytes=sum(h.uncompressed_bytes for h in hours),
            members=[member for h in hours for member in h.members],
        )  # fmt: skip

    def write_hour(self, plan: _HourPlan, project_dir: Path) -> _HourTotals:
        rng = self.world.rng("amplitude", plan.day, plan.hour)
        random_ = rng.random  # local names: this loop runs a million times for a big day
        hour_start = ((plan.day - _EPOCH).days * 24 + plan.hour) * HOUR_MS
        people = self.world.active_people(plan.day) or list(self.world.people)
        background, total = plan.background, plan.background + len(plan.conversions)
        corrupted = rng.sample(range(total), min(plan.invalid_json_lines + plan.malformed_timestamps, total))
        invalid_at, malformed_at = (
            set(corrupted[: plan.invalid_json_lines]),
            set(corrupted[plan.invalid_json_lines :]),
        )
        totals = _HourTotals()
        writer = _PartWriter(
            project_dir, f"{project_dir.name}_{plan.day}_{plan.hour}", self.settings.events_per_part, totals
        )
        duplicates: list[str] = []
        templates, properties = self._templates, self._properties
        for index in range(total):
            upload = hour_start + int(random_() * HOUR_MS)
            client_event = upload - 50 - int(random_() * 60_000)
            if index < background:
                person = people[int(random_() * len(people))]
                event_type = _BACKGROUND_TYPES[int(random_() * len(_BACKGROUND_TYPES))]
                choices = properties[event_type]
                event_properties = choices[int(random_() * len(choices))]
                if random_() < LATE_SHARE:
                    client_event -= (1 + int(random_() * 3)) * DAY_MS
                    totals.late_events += 1
                server_side = random_() < NO_SESSION_SHARE
                user_id = "null" if random_() < ANONYMOUS_SHARE else f'"{person.user_id}"'
            else:
                conversion = plan.conversions[index - background]
                person, event_type = conversion.person, conversion.experiment.metric_event
                event_properties, server_side, user_id = conversion.properties, True, f'"{person.user_id}"'
                totals.conversions += 1
            if random_() < WHOLE_SECOND_SHARE:
                client_event -= client_event % 1000
            event_time = format_time(client_event)
            received = format_time(upload - int(random_() * 5))
            event_uuid = _uuid4(rng)
            line = templates[person.index] % (
                _uuid4(rng), event_time, received, _SERVER_DATA if server_side else _SDK_DATA,
                1 + int(random_() * 5_000), event_properties, event_time, event_type,
                _SERVER_LIBRARY if server_side else _PLATFORM_FIELDS[person.platform][5],
                format_time(upload + 500 + int(random_() * 4_500)), received, format_time(upload),
                -1 if server_side else hour_start - (person.index * 7_919) % HOUR_MS, user_id, event_uuid,
            )  # fmt: skip
            if index in malformed_at:
                bad_time = _MALFORMED_TIMES[int(random_() * len(_MALFORMED_TIMES))]
                line = line.replace(f'"event_time":"{event_time}"', f'"event_time":"{bad_time}"')
            if index in invalid_at:
                line = line[: len(line) // 2] + "\n"
            else:
                totals.unique_valid += 1
            writer.write(line)
            # Only clean lines are retried, so the corrupted counts stay exactly as asked.
            if random_() < DUPLICATE_SHARE and index not in invalid_at and index not in malformed_at:
                duplicates.append(line)
        for line in duplicates:
            writer.write(line)
            totals.duplicates += 1
        writer.close()
        return totals


_worker_generators: dict[tuple[World, GenerationSettings], DayGenerator] = {}


def _write_hour_in_worker(
    world: World, settings: GenerationSettings, plan: _HourPlan, project_dir: Path
) -> _HourTotals:
    generator = _worker_generators.get((world, settings))
    if generator is None:
        generator = _worker_generators[(world, settings)] = DayGenerator(world, settings)
    return generator.write_hour(plan, project_dir)


class _PartWriter:
    """Gzip parts `<stem>#<n>.json.gz` of at most `lines_per_part` lines, written in batches."""

    def __init__(self, directory: Path, stem: str, lines_per_part: int, totals: _HourTotals) -> None:
        self._directory, self._stem, self._limit, self._totals = directory, stem, lines_per_part, totals
        self._part = -1
        self._lines_in_part = lines_per_part
        self._batch: list[str] = []
        self._file: BinaryIO | None = None
        self._compressor = zlib.compressobj()

    def write(self, line: str) -> None:
        if self._lines_in_part >= self._limit:
            self._next_part()
        self._batch.append(line)
        self._lines_in_part += 1
        if len(self._batch) >= 2_000:
            self._flush()

    def _flush(self) -> None:
        assert self._file is not None
        data = "".join(self._batch).encode()
        self._batch.clear()
        self._totals.uncompressed_bytes += len(data)
        self._file.write(self._compressor.compress(data))

    def _next_part(self) -> None:
        self.close()
        self._part += 1
        self._lines_in_part = 0
        name = f"{self._stem}#{self._part}.json.gz"
        self._file = (self._directory / name).open("wb")
        # wbits=31: a gzip header with mtime 0 and no file name, so the bytes depend on the data only.
        self._compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
        self._totals.members.append(f"{self._directory.name}/{name}")

    def close(self) -> None:
        if self._file is None:
            return
        self._flush()
        self._file.write(self._compressor.flush())
        self._totals.gzip_bytes += self._file.tell()
        self._totals.lines += self._lines_in_part
        self._file.close()
        self._file = None


def write_day_files(
    world: World,
    day: dt.date,
    directory: Path,
    settings: GenerationSettings = GenerationSettings(),
    *,
    workers: int | None = None,
) -> DaySummary:
    """A day's hour files under `directory/<project>/`, as they sit inside Amplitude's ZIP."""
    return DayGenerator(world, settings).write(day, Path(directory), workers=workers)


class AmplitudeEmulator(LoopbackService):
    """`GET /api/2/export` on 127.0.0.1 with Basic auth; see the module docstring for data and faults."""

    name = "amplitude"

    def __init__(
        self,
        world: World,
        *,
        events_per_day: int = 2_000,
        events_per_part: int = 20_000,
        invalid_json_lines: int = 0,
        malformed_timestamps: int = 0,
        api_key: str = DEFAULT_API_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        cache_dir: Path | None = None,
    ) -> None:
        self.world = world
        self.settings = GenerationSettings(
            events_per_day, events_per_part, invalid_json_lines, malformed_timestamps
        )
        self.api_key = api_key
        self._secret_key = secret_key
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self._own_cache = None if cache_dir else tempfile.TemporaryDirectory(prefix="amplitude-emulator-")
        root = Path(cache_dir) if cache_dir else Path(self._own_cache.name)  # type: ignore[union-attr]
        self._cache = root / self.settings.cache_key(world)
        self._cache.mkdir(parents=True, exist_ok=True)
        self._generator: DayGenerator | None = None
        self._lock = threading.Lock()
        self._day_locks: dict[dt.date, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"AmplitudeEmulator(url={self._server.url if self._server else None!r})"

    def app(self) -> Starlette:
        return Starlette(routes=[Route(EXPORT_PATH, self._export, methods=["GET"])])

    def stop(self) -> None:
        super().stop()
        if self._own_cache is not None:
            self._own_cache.cleanup()

    def environment(self) -> dict[str, str]:
        return {
            "AMPLITUDE_BASE_URL": self.url,
            "AMPLITUDE_API_KEY": self.api_key,
            "AMPLITUDE_SECRET_KEY": self._secret_key,
        }

    def day_summary(self, day: dt.date) -> DaySummary:
        """What the export of `day` holds (generating it if needed)."""
        return DaySummary(**json.loads((self._day_dir(day) / "summary.json").read_text()))

    def _day_dir(self, day: dt.date) -> Path:
        """The day's generated files; generated once, atomically (a rename), however many ask at once."""
        final = self._cache / day.isoformat()
        with self._lock:
            day_lock = self._day_locks.setdefault(day, threading.Lock())
            if self._generator is None:
                self._generator = DayGenerator(self.world, self.settings)
        with day_lock:
            if not final.exists():
                staging = Path(tempfile.mkdtemp(prefix=f".{day}-", dir=self._cache.parent))
                summary = self._generator.write(day, staging)
                (staging / "summary.json").write_text(json.dumps(asdict(summary)))
                staging.rename(final)
        return final

    def _spend(self, counter: str) -> bool:
        with self._lock:
            left = getattr(self.faults, counter)
            if left > 0:
                setattr(self.faults, counter, left - 1)
            return left > 0

    def _export(self, request: Request) -> Response:
        start_text, end_text = request.query_params.get("start"), request.query_params.get("end")
        response = self._answer(request, start_text, end_text)
        with self._lock:
            self.requests.append(RecordedRequest(start_text, end_text, response.status_code))
        return response

    def _answer(self, request: Request, start_text: str | None, end_text: str | None) -> Response:
        if not self._authorised(request.headers.get("authorization", "")):
            return PlainTextResponse("Invalid API key / secret key", status_code=401)
        try:
            start = dt.datetime.strptime(start_text or "", WINDOW_FORMAT).replace(tzinfo=dt.UTC)
            end = dt.datetime.strptime(end_text or "", WINDOW_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            return PlainTextResponse("start and end must be YYYYMMDDTHH", status_code=400)
        if end < start or end - start >= dt.timedelta(days=365):
            return PlainTextResponse(
                "The time range must be at most 365 days, end after start", status_code=400
            )
        if self._spend("throttle"):
            return PlainTextResponse("Too many requests", status_code=429,
                                     headers={"Retry-After": str(self.faults.retry_after)})  # fmt: skip
        if self._spend("server_errors"):
            return PlainTextResponse("Internal server error", status_code=500)
        members = list(self._members(start, end))
        if not members:
            return PlainTextResponse(NO_DATA_BODY, status_code=404)
        size = sum(path.stat().st_size for path, _ in members)
        if self.faults.too_large_bytes is not None and size > self.faults.too_large_bytes:
            return PlainTextResponse(TOO_LARGE_BODY, status_code=400)
        if self.faults.timeout_bytes is not None and size > self.faults.timeout_bytes:
            return PlainTextResponse(TIMEOUT_BODY, status_code=504)
        if self._spend("html_pages"):
            return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", media_type="text/html")
        archive = self._build_zip(members)
        cleanup = BackgroundTask(archive.unlink, missing_ok=True)
        if self._spend("truncated"):
            cut_short = _head(archive, archive.stat().st_size // 2)
            return StreamingResponse(cut_short, media_type="application/zip", background=cleanup)
        return FileResponse(archive, media_type="application/zip", filename="export.zip", background=cleanup)

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.api_key) & hmac.compare_digest(password, self._secret_key)

    def _members(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[Path, str]]:
        """(cached file, member name) of every hour in the window, days in `missing_days` left out."""
        day = start.date()
        while day <= end.date():
            if day not in self.faults.missing_days:
                directory = self._day_dir(day)
                for name in self.day_summary(day).members:
                    hour = int(name.rsplit("_", 1)[1].split("#")[0])
                    if start <= day_start(day) + dt.timedelta(hours=hour) <= end:
                        yield directory / name, name
            day += dt.timedelta(days=1)

    def _build_zip(self, members: list[tuple[Path, str]]) -> Path:
        """The response ZIP (members stored: they are gzip already), in a temporary file."""
        handle, name = tempfile.mkstemp(prefix="response-", suffix=".zip", dir=self._cache.parent)
        os.close(handle)
        with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_STORED) as archive:
            for path, member in members:
                day_text, hour_text = member.rsplit("/", 1)[1].split("_")[1:3]
                stamp = dt.date.fromisoformat(day_text)
                info = zipfile.ZipInfo(
                    member, date_time=(stamp.year, stamp.month, stamp.day, int(hour_text.split("#")[0]), 0, 0)
                )
                info.file_size = path.stat().st_size
                with path.open("rb") as source, archive.open(info, "w") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
        return Path(name)


async def _head(path: Path, size: int) -> Any:
    """The first `size` bytes of a file, in chunks: a download cut short without an error."""
    with path.open("rb") as file:
        while size > 0:
            chunk = file.read(min(size, 1 << 16))
            if not chunk:
                return
            size -= len(chunk)
            yield chunk


def emulate(context: EmulatorContext, stack: ExitStack) -> dict[str, str]:
    """The sandbox's Amplitude (registered in `sources/amplitude`): any day on request."""
    emulator = stack.enter_context(
        AmplitudeEmulator(
            context.world,
            events_per_day=context.events_per_day["amplitude"],
            cache_dir=context.work_dir / "amplitude",
        )
    )
    return emulator.environment()
