"""Land one UTC day of the Amplitude export in the lake, pseudonymised and otherwise as sent: no Dagster.

The day's window is T00..T23 by `server_upload_time`. Each ZIP the client downloads is read member by
member; every `.json.gz` member is stream-gunzipped (within the day's decompression budget), its
personal data pseudonymised (`ip_address` hashed, `location_lat`/`location_lng` nulled, e-mail and IPv4
addresses in any other text hashed: `Pseudonymiser.json_lines`) and gzipped again into the atomic
partition `raw/amplitude/date=D/`, named by its path in the ZIP. Every other byte of every line is the
vendor's: raw is byte-identical up to the personal fields, and the manifest entry says which were
replaced (`pseudonymised`, counts per field) beside the vendor's own `vendor_sha256` and
`vendor_bytes` of the member, `member`, `lines` and `uncompressed_bytes`. Clear personal data never
reaches the lake (raw is in the lake); a corrupt member fails the landing, and a failed landing leaves
the previous version of the day in place. Each ZIP is deleted once landed, so the temporary directory
never holds more than one.

An hour becomes exportable about two hours after Amplitude received it, so a day is landed only once
`READY_AFTER` has passed since its end: an earlier landing would commit a partial day that looks whole.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import raw_path
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sources.amplitude import SOURCE
from event_platform.sources.amplitude.client import (
    AmplitudeError,
    ExportClient,
    ExportStats,
    ExportWindow,
    Member,
    iter_members,
)

SOURCE_NAME = SOURCE.name
READY_AFTER = dt.timedelta(hours=3)
"""The vendor's ~2 hours before an hour is exportable, plus a margin."""
HASHED_IP_KEYS = ("ip_address",)
NULLED_KEYS = ("location_lat", "location_lng")
"""Coordinates Amplitude derives from the address: as personal as it, and not worth a pseudonym."""
GZIP_LEVEL = 1
"""The re-encoded members: level 1 compresses several times faster than 6 for a fifth more bytes."""


class DayNotReadyError(AmplitudeError):
    """The day's last hours are not exportable yet."""


@dataclass(frozen=True)
class LandingResult:
    """What one landed day holds and what it took to get it: the raw asset's metadata."""

    day: dt.date
    path: str
    """The partition, relative to the lake root."""
    uri: str
    window_start: str
    window_end: str
    files: int
    bytes: int
    """Gzip bytes landed (as received)."""
    lines: int
    uncompressed_bytes: int
    zip_members: int
    archives: int
    requests: int
    windows_split: int
    bytes_downloaded: int
    members: tuple[str, ...]


def export_ready_at(day: dt.date) -> dt.datetime:
    """When Amplitude's export of `day` is complete: `READY_AFTER` past the end of its last hour."""
    return ExportWindow.for_day(day).end + dt.timedelta(hours=1) + READY_AFTER


def land_export(
    client: ExportClient,
    day: dt.date,
    lake: Lake,
    *,
    pseudonymiser: Pseudonymiser,
    tmp_dir: Path,
    on_bytes: Callable[[int], None] | None = None,
    now: dt.datetime | None = None,
) -> LandingResult:
    """Download `day` (T00..T23) and commit it as `raw/amplitude/date=<day>/`, replacing any earlier landing.

    A day Amplitude has no data for (404) commits an empty partition. `on_bytes` hears of every downloaded
    chunk (progress bars). `now` (default: the clock) decides whether the day is complete in the export.
    """
    window = ExportWindow.for_day(day)
    ready_at = export_ready_at(day)
    if (now or dt.datetime.now(dt.UTC)) < ready_at:
        raise DayNotReadyError(
            f"Amplitude's export of {day} is complete only from {ready_at:%Y-%m-%d %H:%M} UTC "
            "(hours become exportable about 2 hours after Amplitude receives them); try again then."
        )
    partition = raw_path(SOURCE_NAME, day.isoformat())
    stats = ExportStats()
    members: list[str] = []
    landed_bytes = lines = uncompressed = 0
    budget = client.budget()
    with lake.write_partition(partition) as writer:
        for archive in client.export(window.start, window.end, Path(tmp_dir), stats=stats, on_bytes=on_bytes):
            try:
                for member in iter_members(archive.path, budget=budget, day=day):
                    with writer.open(member.name) as target:
                        entry = land_member(member, target, pseudonymiser)
                    writer.files[-1].extra.update(entry)  # known once written: the file's manifest entry
                    landed_bytes += writer.files[-1].bytes
                    members.append(member.name)
                    lines += entry["lines"]
                    uncompressed += entry["uncompressed_bytes"]
            finally:
                archive.path.unlink(missing_ok=True)
        writer.metadata.update(
            {
                "zip_members": len(members),
                "requests": stats.requests,
                "windows_split": stats.windows_split,
                "window": window.params,
                "lines": lines,
                "uncompressed_bytes": uncompressed,
            }
        )
    return LandingResult(
        day=day, path=partition, uri=lake.uri(partition),
        window_start=window.params["start"], window_end=window.params["end"],
        files=len(members), bytes=landed_bytes, lines=lines, uncompressed_bytes=uncompressed,
        zip_members=len(members), archives=stats.archives, requests=stats.requests,
        windows_split=stats.windows_split, bytes_downloaded=stats.bytes_downloaded, members=tuple(members),
    )  # fmt: skip


def land_member(member: Member, target: BinaryIO, pseudonymiser: Pseudonymiser) -> dict[str, object]:
    """Gunzip, pseudonymise whole lines and gzip `member` into `target`; its manifest entry's extras."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip stream, mtime 0
    replaced: Counter[str] = Counter()
    carried = b""

    def scrub(data: bytes) -> None:
        safe, counts = pseudonymiser.json_lines(data, hashed_ip_keys=HASHED_IP_KEYS, nulled_keys=NULLED_KEYS)
        replaced.update(counts)
        target.write(compressor.compress(safe))

    def whole_lines(output: bytes) -> None:
        # A value cut between two chunks must be seen whole: scrub up to the last newline only.
        nonlocal carried
        data = carried + output
        cut = data.rfind(b"\n") + 1
        carried = data[cut:]
        if cut:
            scrub(data[:cut])

    counted = member.scan(sink=whole_lines)
    if carried:
        scrub(carried)
    target.write(compressor.flush())
    return {
        "member": member.name,
        "lines": counted.lines,
        "uncompressed_bytes": counted.uncompressed_bytes,
        "vendor_bytes": counted.size,
        "vendor_sha256": counted.sha256,
        "pseudonymised": dict(sorted(replaced.items())),
    }
