"""The identity map: rules, references, links across sources and days, and the pseudonymous key."""

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from event_platform.sources.amplitude.schema import EVENT_SCHEMA as AMPLITUDE_EVENTS
from event_platform.sources.profile_store.transform import EVENTS_SCHEMA as PROFILE_STORE_EVENTS
from event_platform.sources.tracking.landed import EVENTS_SCHEMA as TRACKING_EVENTS
from event_platform.warehouse import models
from event_platform.warehouse.engine import Engine
from event_platform.warehouse.identity import (
    IdentityMap,
    IdentityRule,
    IdentityRulesError,
    configured_rules,
    default_rules,
    parse_rules,
)


def at(hour: int, day: int = 1) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, tzinfo=dt.UTC)


def amplitude(
    uuid: str, user_id: str | None, device_id: str, when: dt.datetime, **extra: Any
) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "event_type": "page",
        "event_time": when,
        "user_id": user_id,
        "device_id": device_id,
        "session_id": -1,
        "event_properties": "{}",
        **extra,
    }


def profile(key: str, device_id: str, when: dt.datetime) -> dict[str, Any]:
    return {
        "event_key": key,
        "device_id": device_id,
        "event_type": "pageview",
        "event_time": when,
        "event_time_ticks": 0,
    }


def person_keys(
    identity: IdentityMap, sources: dict[str, pa.Table], earlier_links: pa.Table | None = None
) -> dict[str, str]:
    """event_id -> person_key after the day's links (plus `earlier_links`) are applied."""
    datasets: dict[str, Any] = dict(sources)
    with Engine() as engine:
        links = models.identity_links(engine, identity, datasets).rows.read_all()
    if earlier_links is not None:
        links = pa.concat_tables([earlier_links, links])
    with Engine() as engine:
        events = models.events(engine, identity, datasets, links).rows.read_all()
    return dict(zip(events["event_id"].to_pylist(), events["person_key"].to_pylist(), strict=True))


def test_a_device_seen_with_a_user_in_amplitude_belongs_to_that_user_everywhere() -> None:
    keys = person_keys(
        IdentityMap(),
        {
            "amplitude": pa.Table.from_pylist(
                [
                    amplitude("a-anonymous", None, "DEVICE-1", at(8)),
                    amplitude("a-signed-in", "learner-1", "DEVICE-1", at(9)),
                ],
                schema=AMPLITUDE_EVENTS,
            ),
            "profile_store": pa.Table.from_pylist(
                [profile("p-1", "DEVICE-1", at(7))], schema=PROFILE_STORE_EVENTS
            ),
            "tracking": pa.Table.from_pylist(
                [
                    {
                        "uuid": "t-1",
                        "event_type": "x",
                        "time": at(10),
                        "received_at": at(10),
                        "anon_username": "learner-1",
                        "event_data": "{}",
                    }
                ],
                schema=TRACKING_EVENTS,
            ),
        },
    )
    assert len(set(keys.values())) == 1
    assert set(keys) == {"a-anonymous", "a-signed-in", "p-1", "t-1"}


def test_an_unlinked_device_is_its_own_person_and_keys_hide_the_ids() -> None:
    keys = person_keys(
        IdentityMap(),
        {
            "profile_store": pa.Table.from_pylist(
                [profile("p-1", "DEVICE-9", at(7))], schema=PROFILE_STORE_EVENTS
            )
        },
    )
    [key] = keys.values()
    assert len(key) == 32 and "DEVICE" not in key
    again = person_keys(
        IdentityMap(),
        {
            "profile_store": pa.Table.from_pylist(
                [profile("p-2", "DEVICE-9", at(9))], schema=PROFILE_STORE_EVENTS
            )
        },
    )
    assert again["p-2"] == key


def test_the_earliest_link_wins_for_a_shared_device() -> None:
    keys = person_keys(
        IdentityMap(),
        {
            "amplitude": pa.Table.from_pylist(
                [
                    amplitude("a-late", "learner-2", "SHARED", at(12)),
                    amplitude("a-early", "learner-1", "SHARED", at(9)),
                ],
                schema=AMPLITUDE_EVENTS,
            ),
            "profile_store": pa.Table.from_pylist(
                [profile("p-1", "SHARED", at(13))], schema=PROFILE_STORE_EVENTS
            ),
        },
    )
    assert keys["p-1"] == keys["a-early"] != keys["a-late"]


def test_links_from_earlier_days_resolve_todays_events() -> None:
    with Engine() as engine:
        day_one = models.identity_links(
            engine,
            IdentityMap(),
            {
                "amplitude": pa.Table.from_pylist(
                    [amplitude("a-1", "learner-1", "DEVICE-1", at(9))], schema=AMPLITUDE_EVENTS
                )
            },
        ).rows.read_all()
    assert day_one.to_pylist() == [
        {"reference": "device:DEVICE-1", "person_reference": "user:learner-1", "first_seen_at": at(9)}
    ]
    today = {
        "profile_store": pa.Table.from_pylist(
            [profile("p-1", "DEVICE-1", at(9, day=2))], schema=PROFILE_STORE_EVENTS
        )
    }
    linked = person_keys(IdentityMap(), today, earlier_links=day_one)
    unlinked = person_keys(IdentityMap(), today)
    tracked = person_keys(
        IdentityMap(),
        {
            "tracking": pa.Table.from_pylist(
                [
                    {
                        "uuid": "t-1",
                        "event_type": "x",
                        "time": at(1),
                        "received_at": at(1),
                        "anon_username": "learner-1",
                        "event_data": "{}",
                    }
                ],
                schema=TRACKING_EVENTS,
            )
        },
    )
    assert linked["p-1"] == tracked["t-1"] != unlinked["p-1"]


def test_rules_are_configurable() -> None:
    # Keep Profile Store devices apart from Amplitude's: no link reaches them any more.
    rules = parse_rules(
        "amplitude.user_id=user, amplitude.device_id=device, profile_store.device_id=profile_device"
    )
    assert IdentityMap(rules).links_sources() == ("amplitude",)
    sources = {
        "amplitude": pa.Table.from_pylist(
            [amplitude("a-1", "learner-1", "DEVICE-1", at(9))], schema=AMPLITUDE_EVENTS
        ),
        "profile_store": pa.Table.from_pylist(
            [profile("p-1", "DEVICE-1", at(10))], schema=PROFILE_STORE_EVENTS
        ),
    }
    assert person_keys(IdentityMap(rules), sources)["p-1"] != person_keys(IdentityMap(), sources)["p-1"]


def test_default_rules_follow_the_shared_ids() -> None:
    assert IdentityRule("optimizely", "visitor_id", "user") in default_rules()
    assert IdentityMap().reference_sql("unknown") == "CAST(NULL AS VARCHAR)"
    assert [r.column for r in IdentityMap().source_rules("amplitude")] == ["user_id", "device_id"]


def test_rules_setting_overrides_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_PLATFORM_IDENTITY_RULES", raising=False)
    assert configured_rules() == default_rules()
    monkeypatch.setenv("EVENT_PLATFORM_IDENTITY_RULES", "tracking.anon_username=user")
    assert configured_rules() == (IdentityRule("tracking", "anon_username", "user"),)


@pytest.mark.parametrize("text", ["amplitude.user_id", "user_id=user", "amplitude.user id=user", " , "])
def test_unreadable_rules_name_the_setting(text: str) -> None:
    with pytest.raises(IdentityRulesError, match="EVENT_PLATFORM_IDENTITY_RULES"):
        parse_rules(text)


def test_blank_identifiers_are_no_identity() -> None:
    keys = person_keys(
        IdentityMap(),
        {
            "amplitude": pa.Table.from_pylist(
                [amplitude("a-1", " ", "DEVICE-1", at(9))], schema=AMPLITUDE_EVENTS
            )
        },
    )
    device_only = person_keys(
        IdentityMap(),
        {
            "profile_store": pa.Table.from_pylist(
                [profile("p-1", "DEVICE-1", at(7))], schema=PROFILE_STORE_EVENTS
            )
        },
    )
    assert keys["a-1"] == device_only["p-1"]
