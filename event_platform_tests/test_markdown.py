import datetime as dt

from event_platform.markdown import NO_ROWS, markdown_table


def test_rows_become_a_table_of_the_first_rows_keys() -> None:
    rows = [{"uuid": "a", "time": dt.datetime(2026, 11, 1, tzinfo=dt.UTC)}, {"uuid": "b", "time": None}]
    assert markdown_table(rows).splitlines() == [
        "| uuid | time |",
        "|---|---|",
        "| a | 2026-11-01 00:00:00+00:00 |",
        "| b |  |",
    ]


def test_chosen_columns_pipes_newlines_and_long_values_cannot_break_the_table() -> None:
    table = markdown_table([{"a": "x|y\nz", "b": "w" * 100, "unshown": 1}], columns=["b", "a"])
    header, _, row = table.splitlines()
    assert header == "| b | a |"
    assert row == "| " + "w" * 57 + "... | x\\|y z |"


def test_no_rows_says_so() -> None:
    assert markdown_table([]) == markdown_table([], columns=["a"]) == NO_ROWS
