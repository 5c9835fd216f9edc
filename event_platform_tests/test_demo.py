"""Which days the demo, the sandbox and the backfill test ask for: only days every source can deliver."""

import datetime as dt

import pytest

from event_platform import cli
from event_platform.defs.amplitude.landing import export_ready_at
from event_platform.demo import last_complete_days
from event_platform.sandbox.commands import chosen_days


def test_yesterday_counts_once_amplitude_has_exported_all_of_it() -> None:
    now = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
    assert export_ready_at(dt.date(2026, 11, 23)) == now
    assert last_complete_days(3, now) == [dt.date(2026, 11, 21), dt.date(2026, 11, 22), dt.date(2026, 11, 23)]


def test_just_after_midnight_the_latest_day_is_the_day_before_yesterday() -> None:
    now = dt.datetime(2026, 11, 24, 0, 59, tzinfo=dt.UTC)
    assert last_complete_days(2, now) == [dt.date(2026, 11, 21), dt.date(2026, 11, 22)]
    assert last_complete_days(1, now.replace(hour=3)) == [dt.date(2026, 11, 23)]


@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_the_last_day_is_chosen_so_a_later_sandbox_gets_the_demo_s_days(command: str) -> None:
    """Before Amplitude's export of yesterday the demo ends the day before; a sandbox started after it
    with the demo's --last-day still prepares exactly those days, not the ones the clock now allows."""
    before, after = (
        dt.datetime(2026, 11, 24, 2, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC),
    )
    demo_days = chosen_days(cli.parser().parse_args([command, "--days", "2"]), before)
    assert demo_days == [dt.date(2026, 11, 21), dt.date(2026, 11, 22)]
    assert chosen_days(cli.parser().parse_args([command, "--days", "2"]), after)[0] == dt.date(2026, 11, 22)
    again = cli.parser().parse_args([command, "--days", "2", "--last-day", demo_days[-1].isoformat()])
    assert chosen_days(again, after) == demo_days


@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_a_last_day_not_yet_complete_is_refused_by_name(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--last-day", "9999-12-31"])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in error
    assert "--last-day 9999-12-31 is not complete yet: give a day up to" in error
