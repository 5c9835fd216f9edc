"""UTC days, the unit every source lands and partitions by, and the CLI's way of reading one."""

from __future__ import annotations

import argparse
import datetime as dt


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC at the start of `day`."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """`day` as the half-open UTC interval [its midnight, the next midnight)."""
    start = day_start(day)
    return start, start + dt.timedelta(days=1)


def iso_date(text: str) -> dt.date:
    """An argparse `type` for YYYY-MM-DD, with a message that says what is expected."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None
