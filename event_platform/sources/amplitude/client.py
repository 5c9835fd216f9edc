"""The Amplitude Export API (`GET /api/2/export`), spoken from plain Python: no Dagster here.

What the vendor does and what we do about it (VENDORS.md §1):
- a window is `start`..`end` in `YYYYMMDDTHH`, both hours inclusive, filtered on `server_upload_time`,
  at most 365 days per request: longer ranges are cut into several requests;
- 200 is a ZIP, streamed to a temporary file and checked (magic and central directory): a body that is not
  a ZIP or is cut short is retried, and a retry overwrites the same file, so nothing is ever kept twice;
- 400 (over 4 GB) and 504 (timed out) mean "too much": the window is halved, recursively, down to one hour;
- 404 with `Raw data files were not found.` is an empty window, not an error;
- 401/403 is fatal and says to check the key pair and the region, naming the host, never the secret;
- 429/5xx, broken connections and timeouts go through `retry.call_with_retries`, honouring `Retry-After`.

`iter_members` reads a downloaded ZIP member by member without ever extracting it: member names are
validated (they come from outside), a member of another day than the one asked for is refused, and
what the members decompress to is bounded (zip bombs) by a `DecompressionBudget`: each member at most
`AMPLITUDE_MAX_COMPRESSION_RATIO` times its compressed size (JSON gzips 5-20x; 200x by default),
the whole day at most `AMPLITUDE_MAX_UNCOMPRESSED_BYTES`. A 200 whose body is an empty ZIP is an empty
window, not a broken download.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from event_platform.dates import day_start
from event_platform.lake.layout import UnsafeNameError, checked_relative_name
from event_platform.retry import Backoff, TransientError, call_with_retries, retry_after_seconds

REGION_HOSTS = {"us": "https://amplitude.com", "eu": "https://analytics.eu.amplitude.com"}
EXPORT_PATH = "/api/2/export"
WINDOW_FORMAT = "%Y%m%dT%H"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
"""An archive with no member starts with its end-of-central-directory record."""
NO_DATA_TEXT = "raw data files were not found"
VENDOR_SIZE_LIMIT = "4 GB"
MAX_REQUEST_HOURS = 365 * 24
CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT = (10.0, 300.0)
"""(connect, read) seconds; a read timeout is between two chunks, not for the whole download."""
DEFAULT_MAX_DOWNLOAD_BYTES = 8 * 1024**3
"""A body past this is treated like a 400 (window too large): it bounds the temporary file on disk."""
DEFAULT_MAX_UNCOMPRESSED_BYTES = 64 * 1024**3
"""Decompressed bytes allowed per day: far above the vendor's 4 GB of gzip, far below a zip bomb."""
DEFAULT_MAX_COMPRESSION_RATIO = 200.0
"""Decompressed bytes allowed per compressed byte of a member; NDJSON events gzip 5-20x."""
RATIO_SETTING = "AMPLITUDE_MAX_COMPRESSION_RATIO"
DAY_BYTES_SETTING = "AMPLITUDE_MAX_UNCOMPRESSED_BYTES"
MEMBER_NAME = re.compile(
    r"(?P<project>\d+)/(?P=project)_(?P<day>\d{4}-\d{2}-\d{2})_(?P<hour>1?\d|2[0-3])#(?P<part>\d+)\.json\.gz"
)
DEFAULT_BACKOFF = Backoff()
_HOUR = dt.timedelta(hours=1)


class AmplitudeError(Exception):
    """A failure the Export API or its archive reports that retrying cannot fix."""


class AmplitudeAuthError(AmplitudeError):
    """401/403: wrong or missing key pair, or a key of one region used against the other."""


class ExportTooLargeError(AmplitudeError):
    """A single hour is still more than the vendor (or our download bound) accepts."""


class ArchiveError(AmplitudeError):
    """A ZIP member with an unsafe or unexpected name, a corrupt member, or too much decompressed data."""


class _WindowTooLarge(Exception):
    """Internal: the window has to be halved (400, 504 or a body past `max_download_bytes`)."""


@dataclass(frozen=True)
class ExportWindow:
    """Hours `start`..`end`, both inclusive, aware UTC datetimes on the hour."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if value.tzinfo is None or value.utcoffset() != dt.timedelta(0):
                raise ValueError(f"Export window bounds must be UTC datetimes, got {value!r}")
            if value.minute or value.second or value.microsecond:
                raise ValueError(f"Export window bounds must be on the hour, got {value.isoformat()}")
        if self.end < self.start:
            raise ValueError(f"Export window ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def for_day(cls, day: dt.date) -> ExportWindow:
        """A UTC day: T00..T23."""
        start = day_start(day)
        return cls(start, start + 23 * _HOUR)

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / _HOUR) + 1

    @property
    def params(self) -> dict[str, str]:
        return {"start": self.start.strftime(WINDOW_FORMAT), "end": self.end.strftime(WINDOW_FORMAT)}

    def halves(self) -> tuple[ExportWindow, ExportWindow]:
        first_end = self.start + (self.hours // 2 - 1) * _HOUR
        return ExportWindow(self.start, first_end), ExportWindow(first_end + _HOUR, self.end)

    def chunks(self, max_hours: int) -> Iterator[ExportWindow]:
        """Consecutive windows of at most `max_hours` covering this one."""
        start = self.start
        while start <= self.end:
            end = min(self.end, start + (max_hours - 1) * _HOUR)
            yield ExportWindow(start, end)
            start = end + _HOUR

    def __str__(self) -> str:
        return f"{self.params['start']}..{self.params['end']}"


@dataclass(frozen=True)
class ExportedArchive:
    """One downloaded ZIP; the caller owns the file and deletes it when done."""

    window: ExportWindow
    path: Path
    size: int


@dataclass
class ExportStats:
    """Counters of one `export` call, filled in as it runs."""

    requests: int = 0
    """HTTP requests sent, retries included."""
    windows_split: int = 0
    """Windows the vendor found too large and that were halved."""
    empty_windows: int = 0
    """Windows answered 404 (no data)."""
    archives: int = 0
    bytes_downloaded: int = 0
    """Bytes of the ZIPs kept (attempts that were retried are not counted)."""


class ExportClient:
    """Downloads Amplitude raw-event exports. Holds the key pair; never shows the secret."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        region: str = "us",
        base_url: str | None = None,
        session: requests.Session | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
        max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if base_url is None:
            if region not in REGION_HOSTS:
                raise ValueError(f"Amplitude region must be one of {sorted(REGION_HOSTS)}, got {region!r}")
            base_url = REGION_HOSTS[region]
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"Amplitude base URL must be a scheme and host like https://amplitude.com, got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.host = parts.netloc
        self.region = region
        self._auth = (api_key, secret_key)
        self._session = session or requests.Session()
        self._backoff = backoff
        self._timeout = timeout
        self._sleep = sleep or time.sleep
        self.max_download_bytes = max_download_bytes
        self.max_uncompressed_bytes = max_uncompressed_bytes
        self.max_compression_ratio = max_compression_ratio

    def budget(self) -> DecompressionBudget:
        """A fresh budget for one day's archives."""
        return DecompressionBudget(self.max_uncompressed_bytes, self.max_compression_ratio)

    def __repr__(self) -> str:
        return f"ExportClient(base_url={self.base_url!r})"

    @property
    def export_url(self) -> str:
        return f"{self.base_url}{EXPORT_PATH}"

    def export(
        self,
        start: dt.datetime,
        end: dt.datetime,
        directory: Path,
        *,
        stats: ExportStats | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Iterator[ExportedArchive]:
        """Download hours `start`..`end` (both inclusive), one ZIP at a time, into `directory`.

        Lazily: the next request goes out only when the caller asks for the next archive, so a caller that
        deletes each archive once handled keeps at most one on disk. `on_bytes` is told of every chunk
        written (progress bars); a retried attempt's bytes are reported again.
        """
        stats = stats if stats is not None else ExportStats()
        for window in ExportWindow(start, end).chunks(MAX_REQUEST_HOURS):
            yield from self._export_window(window, Path(directory), stats, on_bytes)

    def _export_window(
        self,
        window: ExportWindow,
        directory: Path,
        stats: ExportStats,
        on_bytes: Callable[[int], None] | None,
    ) -> Iterator[ExportedArchive]:
        try:
            archive = self._download(window, directory, stats, on_bytes)
        except _WindowTooLarge as reason:
            if window.hours == 1:
                raise ExportTooLargeError(
                    f"Amplitude cannot export hour {window.params['start']} in one request ({reason}); "
                    f"the vendor's limit is {VENDOR_SIZE_LIMIT} per export and one hour is the smallest "
                    "window the Export API accepts: ask Amplitude support for a bulk export of that hour."
                ) from None
            stats.windows_split += 1
            for half in window.halves():
                yield from self._export_window(half, directory, stats, on_bytes)
            return
        if archive is None:
            stats.empty_windows += 1
            return
        stats.archives += 1
        stats.bytes_downloaded += archive.size
        yield archive

    def _download(
        self,
        window: ExportWindow,
        directory: Path,
        stats: ExportStats,
        on_bytes: Callable[[int], None] | None,
    ) -> ExportedArchive | None:
        """The window's ZIP in a temporary file, or None when it holds no data."""
        directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            prefix=f"amplitude-{window.params['start']}-", suffix=".zip", dir=directory
        )
        os.close(handle)
        path = Path(name)

        def attempt() -> int | None:
            stats.requests += 1
            return self._fetch_to(window, path, on_bytes)

        try:
            size = call_with_retries(
                attempt,
                backoff=self._backoff,
                description=f"Amplitude export {window} from {self.host}",
                sleep=self._sleep,
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if size is None:
            path.unlink(missing_ok=True)
            return None
        return ExportedArchive(window, path, size)

    def _fetch_to(
        self, window: ExportWindow, path: Path, on_bytes: Callable[[int], None] | None
    ) -> int | None:
        """One request; the body replaces whatever an earlier attempt left in `path`."""
        with self._session.get(
            self.export_url, params=window.params, auth=self._auth, stream=True, timeout=self._timeout
        ) as response:
            status = response.status_code
            if status in (401, 403):
                raise AmplitudeAuthError(
                    f"Amplitude refused the credentials ({status}) at {self.host}: check the API key and "
                    "secret key (AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY) and the region: a project with EU "
                    "data residency only answers at "
                    f"{urlsplit(REGION_HOSTS['eu']).netloc} (AMPLITUDE_REGION=eu), any other at "
                    f"{urlsplit(REGION_HOSTS['us']).netloc} (AMPLITUDE_REGION=us)."
                )
            if status == 404:
                if NO_DATA_TEXT in response.text.lower():
                    return None
                raise AmplitudeError(
                    f"{self.export_url} answered 404 without Amplitude's 'Raw data files were not found.': "
                    "check AMPLITUDE_BASE_URL / AMPLITUDE_REGION."
                )
            if status in (400, 504):
                raise _WindowTooLarge(f"HTTP {status}: {_snippet(response.text)}")
            if status == 429 or status >= 500:
                raise TransientError(
                    f"HTTP {status} for {window}: {_snippet(response.text)}",
                    retry_after=retry_after_seconds(response),
                )
            if status != 200:
                raise AmplitudeError(
                    f"Amplitude export {window} answered HTTP {status}: {_snippet(response.text)}"
                )
            size = 0
            with path.open("wb") as target:
                for chunk in response.iter_content(CHUNK_BYTES):
                    size += len(chunk)
                    if size > self.max_download_bytes:
                        raise _WindowTooLarge(f"the body passed max_download_bytes={self.max_download_bytes}")
                    target.write(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
        _verify_zip(path, window)
        return size


def _verify_zip(path: Path, window: ExportWindow) -> None:
    """A proxy's HTML page or a cut-off transfer is retryable: check the magic and the central directory."""
    with path.open("rb") as file:
        magic = file.read(len(ZIP_MAGIC))
    if magic not in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        raise TransientError(
            f"Amplitude export {window} answered 200 with a body that is not a ZIP ({magic!r}...)"
        )
    try:
        with zipfile.ZipFile(path):
            pass
    except zipfile.BadZipFile as error:
        raise TransientError(f"Amplitude export {window}: the ZIP is incomplete ({error})") from error


def _snippet(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


@dataclass(frozen=True)
class MemberStats:
    """What one member holds: its gzip bytes, and the newline-delimited JSON inside."""

    size: int
    lines: int
    uncompressed_bytes: int
    sha256: str
    """Of the gzip bytes as the vendor sent them."""


@dataclass
class DecompressionBudget:
    """What one day's archives may decompress to: in all `limit` bytes, and each member at most `ratio`
    times its compressed size. Hitting either fails the landing before anything is committed."""

    limit: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    spent: int = 0

    def check_declared(self, archive: str, infos: list[zipfile.ZipInfo]) -> None:
        """Refuse up front what the ZIP's own directory already shows to be over the bounds."""
        declared = sum(info.file_size for info in infos)
        if self.spent + declared > self.limit:
            raise ArchiveError(
                f"{archive} declares {declared} bytes of members, more than the day's "
                f"{DAY_BYTES_SETTING}={self.limit} allows; refusing it as a possible zip bomb "
                f"(raise {DAY_BYTES_SETTING} if the export is genuine)."
            )
        for info in infos:
            if info.file_size > self.ratio * max(info.compress_size, 1):
                raise ArchiveError(
                    f"ZIP member {info.filename!r} declares {info.file_size} bytes from {info.compress_size} "
                    f"compressed, more than {RATIO_SETTING}={self.ratio:g} times; refusing it as a zip bomb."
                )

    def meter(self, member: str, compressed_bytes: int) -> Callable[[int], None]:
        """A callback told of each decompressed chunk of `member`; raises once a bound is passed."""
        allowance = self.ratio * max(compressed_bytes, 1)
        used = 0

        def spend(count: int) -> None:
            nonlocal used
            used += count
            self.spent += count
            if used > allowance:
                raise ArchiveError(
                    f"Member {member} decompresses to more than {self.ratio:g} times its {compressed_bytes} "
                    f"compressed bytes ({RATIO_SETTING}={self.ratio:g}); refusing it as a possible zip bomb. "
                    f"Nothing of the day was committed; raise {RATIO_SETTING} if the export is genuine."
                )
            if self.spent > self.limit:
                raise ArchiveError(
                    f"The day decompresses to more than {DAY_BYTES_SETTING}={self.limit} bytes (at "
                    f"{member}); refusing it as a possible zip bomb. Nothing of the day was committed; raise "
                    f"{DAY_BYTES_SETTING} if the export is genuine."
                )

        return spend


@dataclass
class Member:
    """One `<project>/<project>_<YYYY-MM-DD>_<H>#<n>.json.gz` member, valid while `iter_members` runs."""

    name: str
    project_id: str
    day: dt.date
    hour: int
    part: int
    size: int
    """Its gzip bytes, as the ZIP's directory declares them."""
    _archive: zipfile.ZipFile = field(repr=False)
    _info: zipfile.ZipInfo = field(repr=False)
    _budget: DecompressionBudget = field(repr=False)

    def chunks(self, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The member's raw bytes (the gzip as received), in chunks; CRC checked at the end."""
        with self._archive.open(self._info) as stream:
            while chunk := stream.read(chunk_size):
                yield chunk

    def scan(self, sink: Callable[[bytes], None] | None = None) -> MemberStats:
        """Stream-gunzip the member to count its lines and bytes, within the archive's budget; `sink`
        is handed each decompressed chunk, in order."""
        counter = GzipLineCounter(self._budget.meter(self.name, self.size), sink)
        size = 0
        vendor = hashlib.sha256()
        try:
            for chunk in self.chunks():
                size += len(chunk)
                vendor.update(chunk)
                counter.feed(chunk)
            counter.finish()
        except (zlib.error, EOFError, zipfile.BadZipFile) as error:
            raise ArchiveError(f"Member {self.name} is corrupt: {error}") from error
        return MemberStats(size, counter.lines, counter.uncompressed_bytes, vendor.hexdigest())


class GzipLineCounter:
    """Counts newline-delimited lines in gzip fed chunk by chunk, never holding more than a chunk.

    Concatenated gzip members are one stream (as `gzip` reads them). `spend` is told of every decompressed
    chunk before it is counted, so it can stop a bomb after at most one chunk of output.
    """

    def __init__(
        self, spend: Callable[[int], None] = lambda count: None, sink: Callable[[bytes], None] | None = None
    ) -> None:
        self._spend = spend
        self._sink = sink
        self._inflater = zlib.decompressobj(wbits=31)
        self._last_byte = b"\n"
        self._started = False
        self.lines = 0
        self.uncompressed_bytes = 0

    def feed(self, data: bytes) -> None:
        while True:
            if self._inflater.eof:
                if not data.strip(b"\0"):
                    return  # gzip allows NUL padding after the last member
                self._inflater = zlib.decompressobj(wbits=31)
            self._started = self._started or bool(data)
            output = self._inflater.decompress(data, CHUNK_BYTES)
            self._count(output)
            data = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
            # A full chunk of output may leave more pending even with no input left: drain it.
            if not data and len(output) < CHUNK_BYTES:
                return

    def _count(self, output: bytes) -> None:
        if output:
            self._spend(len(output))
            if self._sink is not None:
                self._sink(output)
            self.uncompressed_bytes += len(output)
            self.lines += output.count(b"\n")
            self._last_byte = output[-1:]

    def finish(self) -> None:
        if self._started and not self._inflater.eof:
            raise EOFError("gzip stream ends before its end-of-stream marker (truncated)")
        if self._last_byte != b"\n":
            self.lines += 1


def iter_members(
    zip_path: Path,
    *,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    budget: DecompressionBudget | None = None,
    day: dt.date | None = None,
) -> Iterator[Member]:
    """Each `.json.gz` member of an export ZIP, in archive order; directory entries are skipped.

    Nothing is extracted to disk. Every name is checked before anything is read: an absolute path, `..`,
    a backslash, a name outside Amplitude's layout or (given `day`) a member of another day is an
    `ArchiveError`. What the members decompress to is bounded by `budget` (shared by a day's archives;
    by default one of `max_uncompressed_bytes` for this archive alone), up front from the ZIP's
    directory and again while they are read.
    """
    archive_name = Path(zip_path).name
    budget = budget or DecompressionBudget(max_uncompressed_bytes)
    with zipfile.ZipFile(zip_path) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        matches = [_parse_member_name(info.filename) for info in infos]
        if day is not None:
            for info, match in zip(infos, matches, strict=True):
                if match["day"] != day.isoformat():
                    raise ArchiveError(
                        f"ZIP member {info.filename!r} holds {match['day']}, not the requested {day}; "
                        "refusing the archive rather than filing another day's events under this one."
                    )
        budget.check_declared(archive_name, infos)
        for info, match in zip(infos, matches, strict=True):
            yield Member(
                name=info.filename,
                project_id=match["project"],
                day=dt.date.fromisoformat(match["day"]),
                hour=int(match["hour"]),
                part=int(match["part"]),
                size=info.file_size,
                _archive=archive,
                _info=info,
                _budget=budget,
            )


def _parse_member_name(name: str) -> re.Match[str]:
    try:
        checked_relative_name(name, "the export ZIP")
    except UnsafeNameError as error:
        raise ArchiveError(f"ZIP member {error}") from None
    match = MEMBER_NAME.fullmatch(name)
    if match is None:
        raise ArchiveError(
            f"ZIP member {name!r} is not in Amplitude's layout "
            "<project>/<project>_<YYYY-MM-DD>_<H>#<n>.json.gz (hour not zero-padded)."
        )
    return match
