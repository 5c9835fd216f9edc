"""Every CLI error is one line naming the fix and a non-zero exit, never a traceback (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from event_platform import cli

PROFILE_STORE = "https://profiles.example.test"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and standard error of `event-platform argv`, argparse's exits included."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return code, error


@pytest.fixture
def profile_store_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[responses.RequestsMock]:
    monkeypatch.setenv("PROFILE_STORE_BASE_URL", PROFILE_STORE)
    monkeypatch.setenv("PROFILE_STORE_API_KEY", "key-never-printed")
    monkeypatch.setenv("EVENT_PLATFORM_PSEUDONYM_KEY", "k")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked


@pytest.mark.parametrize("command", ["read-day", "preview"])
def test_profile_store_vendor_errors_are_one_line(
    profile_store_env: responses.RequestsMock, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    profile_store_env.get(f"{PROFILE_STORE}/api/v2.0/TrackEvents", status=403, body="Forbidden")
    profile_store_env.post(f"{PROFILE_STORE}/api/v2.0/TrackEvents/preview", status=403, body="Forbidden")
    argv = ["--date", "2026-11-01"] if command == "read-day" else ["Events | take 1"]
    code, error = run(capsys, "profile-store", command, *argv)
    assert code == 2 and error.startswith("error: ") and len(error.strip().splitlines()) == 1
    assert "key-never-printed" not in error


def test_a_day_in_the_future_is_refused_by_name(
    profile_store_env: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error = run(capsys, "profile-store", "read-day", "--date", "9999-12-31")
    assert code == 2 and "--date 9999-12-31 is in the future" in error


@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_zero_days_is_refused(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, error = run(capsys, command, "--days", "0")
    assert code == 2 and "'0' is not a number of days: give 1 or more" in error


def test_an_unsupported_output_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMPLITUDE_API_KEY", "k")
    monkeypatch.setenv("AMPLITUDE_SECRET_KEY", "s")
    monkeypatch.setenv("EVENT_PLATFORM_PSEUDONYM_KEY", "p")
    code, error = run(
        capsys,
        "amplitude",
        "export",
        "--start",
        "2026-11-01",
        "--end",
        "2026-11-01",
        "--output",
        "ftp://host/x",
    )
    assert code == 2 and "--output: Unsupported lake location 'ftp://host/x'" in error


@responses.activate  # no URL registered: a request would fail the test
def test_a_ten_year_export_says_what_it_would_do_and_waits_for_a_yes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMPLITUDE_API_KEY", "k")
    monkeypatch.setenv("AMPLITUDE_SECRET_KEY", "s")
    monkeypatch.setenv("EVENT_PLATFORM_PSEUDONYM_KEY", "p")
    code, error = run(
        capsys,
        "amplitude",
        "export",
        "--start",
        "2016-01-01",
        "--end",
        "2025-12-31",
        "--output",
        str(tmp_path),
    )
    assert code == 2
    assert "Exporting 3653 day(s), 2016-01-01 to 2025-12-31, from amplitude.com into file://" in error
    assert "Add --yes to export 3653 days" in error
    assert list(tmp_path.iterdir()) == []


def test_track_data_must_be_a_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, error = run(
        capsys, "tracking", "track", "kinesinlms.core.user.login", "learner-1", "--data", "notjson"
    )
    assert code == 2 and "'notjson' is not a JSON object" in error


def test_an_invalid_start_date_is_named_when_the_code_loads() -> None:
    environment = {**os.environ, "EVENT_PLATFORM_START_DATE": "2025-13-45"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import event_platform.definitions"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert loaded.returncode != 0
    assert "EVENT_PLATFORM_START_DATE must be a past day as YYYY-MM-DD" in loaded.stderr
    assert "'2025-13-45'" in loaded.stderr
