"""The `event-platform profile-store` commands, against the sandbox."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator

import pytest

from event_platform.pseudonymise import Pseudonymiser, find_personal_data
from event_platform.sandbox.profile_store import ProfileStoreSandbox
from event_platform.sandbox.world import World
from event_platform.sources.profile_store.commands import add_commands


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    arguments = parser.parse_args(argv)
    return int(arguments.run(arguments))


@pytest.fixture
def sandbox(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProfileStoreSandbox]:
    with ProfileStoreSandbox(world, events_per_day=250) as running:
        for name, value in running.environment().items():
            monkeypatch.setenv(name, value)
        yield running


def test_read_day_prints_counts_and_no_event(
    sandbox: ProfileStoreSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("profile-store", "read-day", "--date", "2026-11-01") == 0
    printed = capsys.readouterr().out
    assert "250 events read, the API reported 250; 1 request(s)" in printed
    assert "@" not in printed


def test_email_key_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_PSEUDONYM_KEY", "cli-key")
    monkeypatch.setattr("sys.stdin", io.StringIO(" Ada@Example.org\n\n"))
    assert run("profile-store", "email-key") == 0
    assert capsys.readouterr().out.split() == [Pseudonymiser("cli-key").email("ada@example.org")]


def test_preview_prints_pseudonymised_events(
    sandbox: ProfileStoreSandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_PSEUDONYM_KEY", "cli-key")
    query = (
        "Events | where EventTime between (datetime(2026-11-01T00:00:00Z) .. datetime(2026-11-01T23:59:59Z))"
        " and EventType == 'newsletter_signup' | take 2"
    )
    assert run("profile-store", "preview", query) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 2 and all(event["EventType"] == "newsletter_signup" for event in printed)
    assert all(event["User"]["Email"].startswith("pii1:") for event in printed)
    assert not list(find_personal_data(json.dumps(printed)))
