"""`event-platform amplitude export` against the emulator: the lake layout, written without Dagster."""

from __future__ import annotations

import argparse
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.sandbox.amplitude import AmplitudeEmulator
from event_platform.sandbox.world import World
from event_platform.sources.amplitude.commands import add_commands


def run(*argv: str) -> tuple[int, str]:
    root = argparse.ArgumentParser(prog="event-platform")
    add_commands(root.add_subparsers(dest="command", required=True))
    arguments = root.parse_args(list(argv))
    out = io.StringIO()
    return arguments.run(arguments, out=out), out.getvalue()


@pytest.fixture(scope="module")
def emulator(world: World) -> Iterator[AmplitudeEmulator]:
    with AmplitudeEmulator(world, events_per_day=300) as running:
        yield running


@pytest.fixture
def amplitude_env(emulator: AmplitudeEmulator, monkeypatch: pytest.MonkeyPatch) -> AmplitudeEmulator:
    for name, value in emulator.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EVENT_PLATFORM_PSEUDONYM_KEY", "test-pseudonym-key")
    return emulator


def test_export_writes_raw_and_typed_partitions_for_each_day(
    amplitude_env: AmplitudeEmulator, tmp_path: Path
) -> None:
    amplitude_env.faults.missing_days = {dt.date(2026, 11, 2)}
    code, output = run("amplitude", "export", "--start", "2026-11-01", "--end", "2026-11-02",
                       "--output", str(tmp_path / "lake"))  # fmt: skip
    assert code == 0, output

    lake = Lake.from_uri(str(tmp_path / "lake"))
    first, second = (lake.read_manifest(f"raw/amplitude/date={day}") for day in ("2026-11-01", "2026-11-02"))
    assert (
        first is not None
        and sum(f.extra["lines"] for f in first.files)
        == amplitude_env.day_summary(dt.date(2026, 11, 1)).lines
    )
    assert second is not None and second.files == [], "a day without data is an empty, committed partition"
    assert delta.partition_keys(lake, "amplitude/events"), "the typed Delta table written by the transform"
    assert "2026-11-01:" in output and "days" in output


def test_missing_credentials_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AMPLITUDE_API_KEY", "AMPLITUDE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    code, output = run("amplitude", "export", "--start", "2026-11-01", "--end", "2026-11-01",
                       "--output", str(tmp_path))  # fmt: skip
    assert code == 2 and "AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY" in output


def test_a_refusal_is_reported_and_fails_the_command(
    amplitude_env: AmplitudeEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMPLITUDE_SECRET_KEY", "wrong-secret")
    code, output = run("amplitude", "export", "--start", "2026-11-01", "--end", "2026-11-01",
                       "--output", str(tmp_path))  # fmt: skip
    assert code == 1 and "check the API key" in output and "wrong-secret" not in output


def test_the_zip_bomb_bounds_are_the_assets_settings(
    amplitude_env: AmplitudeEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMPLITUDE_MAX_UNCOMPRESSED_BYTES", "1000")
    code, output = run("amplitude", "export", "--start", "2026-11-01", "--end", "2026-11-01",
                       "--output", str(tmp_path))  # fmt: skip
    assert code == 1 and "AMPLITUDE_MAX_UNCOMPRESSED_BYTES=1000" in output


def test_end_before_start_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        run("amplitude", "export", "--start", "2026-11-02", "--end", "2026-11-01", "--output", str(tmp_path))
    assert exited.value.code == 2
