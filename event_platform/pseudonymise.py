"""Keyed hashing of personal data before any source's event is written (DESIGN.md principle 9).

One key (`EVENT_PLATFORM_PSEUDONYM_KEY`) and one scheme for every source, so an address hashes the
same whichever vendor saw it and joins keep working: a value becomes `pii1:<hex>` (HMAC-SHA256 under
the key); the prefix makes a pseudonym recognisable and versions the scheme.

- Profile Store (`event`): `User.Email`, `User.Name` and `RemoteAddress` are hashed, and any e-mail or IP
  address inside other strings (Payload, User.Info, PageUri, …) is replaced the same way.
- Amplitude (`json_lines`, on the export's NDJSON bytes): `ip_address` is hashed, the coordinates Amplitude
  derives from it are dropped (`location_lat`/`location_lng` become null), and any e-mail or IPv4 address
  in other strings (user_properties, event_properties, …) is hashed.
- Optimizely E3 (`ip_column`, vectorised over an Arrow column): `user_ip` is hashed.
The same patterns serve the asset checks that scan the lake for leaks.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

PSEUDONYM_PREFIX = "pii1:"
PERSONAL_EVENT_FIELDS = ("User", "RemoteAddress")
PERSONAL_USER_FIELDS = ("Email", "Name")

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
IPV4_PATTERN = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
# A loose candidate; `ipaddress` decides, so clock times such as 10:00:00 are left alone.
IPV6_CANDIDATE_PATTERN = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
"""A dotted quad with no leading zeros: `str(ipaddress.ip_address(text)) == text` for exactly these."""
# Cheap test for "might hold an address": most strings (titles, ids, URLs) skip the three patterns.
SUSPECT_PATTERN = re.compile(r"@|\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]*:|::")


EMAIL_BYTES = re.compile(rb"(?<![A-Za-z0-9._%+-])" + EMAIL_PATTERN.pattern.encode())
IPV4_BYTES = re.compile(IPV4_PATTERN.pattern.encode())
# Python's `re` tries a pattern that opens with a character class at every position of the text, which
# over NDJSON costs more than the rest of the landing; the literal or near-literal anchors below are
# found far faster, and the full pattern is tried only around them.
_EMAIL_ANCHOR = re.compile(rb"@")
_IPV4_ANCHOR = re.compile(rb"\.\d{1,3}\.\d{1,3}\.")
_EMAIL_REACH, _IPV4_REACH = 256, 16
"""How far around an anchor a match can start or end: a mailbox and domain, a dotted quad."""
_STRING = rb'"((?:[^"\\]|\\.)*)"'
_NUMBER_OR_STRING = rb'(?:-?[0-9][0-9.eE+-]*|"(?:[^"\\]|\\.)*")'


def _sub_near(
    data: bytes, anchor: re.Pattern[bytes], pattern: re.Pattern[bytes], reach: int, replace: Any
) -> bytes:
    """`pattern.sub(replace, data)`, trying `pattern` only within `reach` bytes of `anchor`'s matches."""
    pieces: list[bytes] = []
    done = 0
    for hit in anchor.finditer(data):
        if hit.start() < done:
            continue
        end = min(len(data), hit.end() + reach)
        match = pattern.search(data, max(done, hit.start() - reach), end)
        # A match cut by the window's end might go on past it: only a match inside it counts.
        if match is None or (match.end() == end < len(data)) or match.start() > hit.start():
            continue
        pieces += [data[done : match.start()], replace(match)]
        done = match.end()
    return b"".join([*pieces, data[done:]]) if pieces else data


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def find_personal_data(text: str) -> Iterator[str]:
    """Every clear-text e-mail address or IP address in `text`."""
    if not SUSPECT_PATTERN.search(text):
        return
    yield from EMAIL_PATTERN.findall(text)
    for pattern in (IPV4_PATTERN, IPV6_CANDIDATE_PATTERN):
        yield from (match for match in pattern.findall(text) if _is_ip(match))


def normalise_email(email: str) -> str:
    """The same mailbox written differently must hash the same."""
    return email.strip().lower()


class Pseudonymiser:
    """Replaces personal data by keyed hashes; holds the key, never shows it."""

    def __init__(self, key: str | bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key is empty")
        # Keyed once: each hash copies this state instead of deriving the key's pads again (3x faster).
        self._keyed = hmac.new(key.encode() if isinstance(key, str) else key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "Pseudonymiser(key=<hidden>)"

    def hash(self, normalised_value: str) -> str:
        keyed = self._keyed.copy()
        keyed.update(normalised_value.encode())
        return PSEUDONYM_PREFIX + keyed.hexdigest()

    def email(self, email: str) -> str:
        return self.hash(normalise_email(email))

    def name(self, name: str) -> str:
        return self.hash(" ".join(name.split()))

    def ip_address(self, address: str) -> str:
        text = address.strip()
        if CANONICAL_IPV4.fullmatch(text):
            return self.hash(text)  # already as `ipaddress` would write it, at a tenth of the cost
        # Not an address after all: still personal, still hashed, just not canonicalised.
        with contextlib.suppress(ValueError):
            text = str(ipaddress.ip_address(text))
        return self.hash(text)

    def scrub_text(self, text: str) -> str:
        """`text` with every embedded e-mail or IP address replaced by its pseudonym."""
        if not SUSPECT_PATTERN.search(text):
            return text
        text = EMAIL_PATTERN.sub(lambda match: self.email(match.group()), text)
        for pattern in (IPV4_PATTERN, IPV6_CANDIDATE_PATTERN):
            text = pattern.sub(
                lambda match: self.ip_address(match.group()) if _is_ip(match.group()) else match.group(),
                text,
            )
        return text

    def scrub(self, value: Any) -> Any:
        """A JSON value with every string (keys included) scrubbed, recursively."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self.scrub_text(key): self.scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        return value

    def json_lines(
        self, data: bytes, *, hashed_ip_keys: tuple[str, ...] = (), nulled_keys: tuple[str, ...] = ()
    ) -> tuple[bytes, Counter[str]]:
        """NDJSON bytes (whole lines) with the string values of `hashed_ip_keys` hashed as addresses,
        the values of `nulled_keys` replaced by null, and every other e-mail or IPv4 address in the text
        hashed; how many values each rule replaced. Works on the bytes, a regular expression per rule
        over many lines at once, never parsing a line; the line count and the rest of each line stay.
        An IPv6 address inside free text is not looked for here (`scrub_text` finds it in a string):
        without a cheap anchor its pattern would cost more than the rest of the landing."""
        counts: Counter[str] = Counter()
        for key in hashed_ip_keys:
            pattern = re.compile(rb'("' + re.escape(key.encode()) + rb'"\s*:\s*)' + _STRING)

            def hashed(match: re.Match[bytes], key: str = key) -> bytes:
                counts[key] += 1
                try:
                    address = json.loads(b'"' + match.group(2) + b'"')
                except ValueError:  # a broken escape: still personal, hashed as it stands
                    address = match.group(2).decode("utf-8", "replace")
                return match.group(1) + b'"' + self.ip_address(address).encode() + b'"'

            data = pattern.sub(hashed, data)
        for key in nulled_keys:
            pattern = re.compile(rb'("' + re.escape(key.encode()) + rb'"\s*:\s*)' + _NUMBER_OR_STRING)

            def nulled(match: re.Match[bytes], key: str = key) -> bytes:
                counts[key] += 1
                return match.group(1) + b"null"

            data = pattern.sub(nulled, data)

        def email(match: re.Match[bytes]) -> bytes:
            counts["email in text"] += 1
            return self.email(match.group().decode()).encode()

        def address(match: re.Match[bytes]) -> bytes:
            text = match.group().decode()
            if not _is_ip(text):
                return match.group()
            counts["ip address in text"] += 1
            return self.ip_address(text).encode()

        data = _sub_near(data, _EMAIL_ANCHOR, EMAIL_BYTES, _EMAIL_REACH, email)
        return _sub_near(data, _IPV4_ANCHOR, IPV4_BYTES, _IPV4_REACH, address), counts

    def ip_column(self, column: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A string column of IP addresses, each hashed; nulls and empty strings stay null. One HMAC per
        distinct address, mapped back in Arrow."""
        column = pa.chunked_array([column]) if isinstance(column, pa.Array) else column
        distinct = pc.unique(column).drop_null()
        hashed = pa.array(
            [self.ip_address(value) if value else None for value in distinct.to_pylist()], pa.string()
        )
        return pc.take(hashed, pc.index_in(column, value_set=distinct)).combine_chunks()

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A copy of a track event safe to store: the personal fields hashed, free text scrubbed."""
        safe = {key: self.scrub(value) for key, value in event.items() if key not in PERSONAL_EVENT_FIELDS}
        if "RemoteAddress" in event:
            address = event["RemoteAddress"]
            safe["RemoteAddress"] = self.ip_address(address) if isinstance(address, str) and address else None
        user = event.get("User")
        if isinstance(user, dict):
            safe_user = {
                key: self.scrub(value) for key, value in user.items() if key not in PERSONAL_USER_FIELDS
            }
            email, name = user.get("Email"), user.get("Name")
            safe_user["Email"] = self.email(email) if isinstance(email, str) and email.strip() else None
            safe_user["Name"] = self.name(name) if isinstance(name, str) and name.strip() else None
            safe["User"] = safe_user
        else:
            safe["User"] = self.scrub(user)
        return safe
