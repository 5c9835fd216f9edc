"""Which days the demo, the sandbox and the backfill test ask for: only days every source can deliver."""

import datetime as dt

from event_platform.sandbox.demo import last_complete_days
from event_platform.sources.amplitude.landing import export_ready_at


def test_yesterday_counts_once_amplitude_has_exported_all_of_it() -> None:
    now = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
    assert export_ready_at(dt.date(2026, 11, 23)) == now
    assert last_complete_days(3, now) == [dt.date(2026, 11, 21), dt.date(2026, 11, 22), dt.date(2026, 11, 23)]


def test_just_after_midnight_the_latest_day_is_the_day_before_yesterday() -> None:
    now = dt.datetime(2026, 11, 24, 0, 59, tzinfo=dt.UTC)
    assert last_complete_days(2, now) == [dt.date(2026, 11, 21), dt.date(2026, 11, 22)]
    assert last_complete_days(1, now.replace(hour=3)) == [dt.date(2026, 11, 23)]
