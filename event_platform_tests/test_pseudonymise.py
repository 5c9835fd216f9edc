"""Personal data is replaced by stable keyed hashes, wherever in an event it hides."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from event_platform.pseudonymise import (
    PSEUDONYM_PREFIX,
    Pseudonymiser,
    find_personal_data,
)

KEY = "test-pseudonym-key"


def track_event() -> dict[str, object]:
    return {
        "TrackId": "t-1",
        "DeviceId": "DEV-1",
        "EventTime": "2026-11-01T10:00:00.1234567Z",
        "RemoteAddress": "203.0.113.9",
        "PageUri": "https://learn.example.org/unit?mail=Ada.Lovelace@Example.org",
        "User": {
            "Name": "Ada  Lovelace",
            "Email": " Ada.Lovelace@Example.org ",
            "Info": {"ip": "2001:db8::1"},
        },
        "Payload": {"form": {"email": "ADA.LOVELACE@EXAMPLE.ORG"}, "at": "10:00:00", "v": "1.2"},
    }


def test_same_person_hashes_the_same_across_runs_and_spellings() -> None:
    first, second = Pseudonymiser(KEY), Pseudonymiser(KEY.encode())
    assert first.email(" Ada.Lovelace@Example.org") == second.email("ada.lovelace@example.org")
    assert first.email("ada@example.org").startswith(PSEUDONYM_PREFIX)
    assert len(first.email("ada@example.org")) == len(PSEUDONYM_PREFIX) + 64
    assert first.email("ada@example.org") != Pseudonymiser("another-key").email("ada@example.org")
    assert first.ip_address("2001:DB8:0::1") == first.ip_address("2001:db8::1")


def test_event_keeps_no_clear_personal_data_anywhere() -> None:
    pseudonymiser = Pseudonymiser(KEY)
    safe = pseudonymiser.event(track_event())
    text = json.dumps(safe)
    assert list(find_personal_data(text)) == []
    assert "Lovelace" not in text
    email_key = pseudonymiser.email("ada.lovelace@example.org")
    assert safe["User"]["Email"] == email_key
    assert safe["Payload"]["form"]["email"] == email_key  # joins with the User.Email pseudonym
    assert safe["User"]["Name"] == pseudonymiser.name("Ada Lovelace")
    assert safe["RemoteAddress"] == pseudonymiser.ip_address("203.0.113.9")
    assert safe["Payload"]["at"] == "10:00:00" and safe["Payload"]["v"] == "1.2"  # not addresses
    assert safe["DeviceId"] == "DEV-1" and safe["EventTime"] == "2026-11-01T10:00:00.1234567Z"


def test_missing_personal_fields_stay_missing() -> None:
    incomplete = {"TrackId": "t", "User": {"Email": "", "Name": None}, "RemoteAddress": None}
    safe = Pseudonymiser(KEY).event(incomplete)
    assert safe["User"] == {"Email": None, "Name": None}
    assert safe["RemoteAddress"] is None


def test_finds_addresses_but_not_lookalikes() -> None:
    found = list(find_personal_data("mail a.b@c.io from 10.0.0.1 or fe80::1 at 12:30:00, v 1.2.3, 999.1.1.1"))
    assert found == ["a.b@c.io", "10.0.0.1", "fe80::1"]
    assert list(find_personal_data(Pseudonymiser(KEY).email("a.b@c.io"))) == []


def test_key_never_shows() -> None:
    assert KEY not in repr(Pseudonymiser(KEY))
    with pytest.raises(ValueError, match="empty"):
        Pseudonymiser("")


def test_export_lines_lose_their_addresses_and_coordinates_but_nothing_else() -> None:
    pseudonymiser = Pseudonymiser("key")
    line = (
        b'{"event_time":"2026-11-01 10:00:00.123456","ip_address":"2001:db8::7","location_lat":45.76,'
        b'"location_lng":"4.83","user_properties":{"note":"mail ada@example.org from 198.51.100.4"}}\n'
    )
    safe, counts = pseudonymiser.json_lines(
        line * 2, hashed_ip_keys=("ip_address",), nulled_keys=("location_lat", "location_lng")
    )
    [first, second] = safe.splitlines()
    assert first == second and b'"event_time":"2026-11-01 10:00:00.123456"' in first
    event = json.loads(first)
    assert event["ip_address"] == pseudonymiser.ip_address("2001:0db8::7")
    assert (event["location_lat"], event["location_lng"]) == (None, None)
    assert event["user_properties"]["note"] == (
        f"mail {pseudonymiser.email('ada@example.org')} from {pseudonymiser.ip_address('198.51.100.4')}"
    )
    assert counts == {"ip_address": 2, "location_lat": 2, "location_lng": 2, "email in text": 2,
                      "ip address in text": 2}  # fmt: skip


def test_an_address_column_is_hashed_once_per_distinct_address() -> None:
    pseudonymiser = Pseudonymiser("key")
    hashed = pseudonymiser.ip_column(pa.chunked_array([["10.0.0.1", None], ["10.0.0.1", "", "::1"]]))
    assert hashed.to_pylist() == [
        pseudonymiser.ip_address("10.0.0.1"), None, pseudonymiser.ip_address("10.0.0.1"), None,
        pseudonymiser.ip_address("::1"),
    ]  # fmt: skip
