"""Markdown for Dagster metadata: the small tables (previews, counts) every materialization shows."""

from collections.abc import Mapping, Sequence
from typing import Any

CELL_CHARACTERS = 60
NO_ROWS = "_no rows_"


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """`rows` as a table of `columns` (default: the first row's keys); long values are shortened."""
    if not rows:
        return NO_ROWS
    names = list(rows[0]) if columns is None else list(columns)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(row.get(name)) for name in names) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= CELL_CHARACTERS else text[: CELL_CHARACTERS - 3] + "..."
