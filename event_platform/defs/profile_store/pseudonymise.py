"""Keyed hashing of personal data before a Profile Store event goes anywhere (VENDORS.md §3).

`User.Email`, `User.Name` and `RemoteAddress` become `pii1:<hex>` (HMAC-SHA256 under a secret key), and
any e-mail or IP address found inside other strings (Payload, User.Info, PageUri, …) is replaced the same
way, so free-form fields cannot carry personal data past the edge either. The key is stable, so the same
person hashes the same in every run and joins keep working; the prefix makes a pseudonym recognisable
and versions the scheme. The same patterns serve the asset check that scans the lake for leaks.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterator
from typing import Any

PSEUDONYM_PREFIX = "pii1:"
PERSONAL_EVENT_FIELDS = ("User", "RemoteAddress")
PERSONAL_USER_FIELDS = ("Email", "Name")

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
IPV4_PATTERN = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
# A loose candidate; `ipaddress` decides, so clock times such as 10:00:00 are left alone.
IPV6_CANDIDATE_PATTERN = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Cheap test for "might hold an address": most strings (titles, ids, URLs) skip the three patterns.
SUSPECT_PATTERN = re.compile(r"@|\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]*:|::")


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
        self._key = key.encode() if isinstance(key, str) else key

    def __repr__(self) -> str:
        return "Pseudonymiser(key=<hidden>)"

    def hash(self, normalised_value: str) -> str:
        digest = hmac.new(self._key, normalised_value.encode(), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest

    def email(self, email: str) -> str:
        return self.hash(normalise_email(email))

    def name(self, name: str) -> str:
        return self.hash(" ".join(name.split()))

    def ip_address(self, address: str) -> str:
        text = address.strip()
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
