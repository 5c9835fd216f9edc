"""One experiment's results as a short Markdown summary: the same text in Dagit's metadata, in
`event-platform experiments results` and at the end of `make demo`.

Built from `warehouse/experiment_results` rows only, so the CLI formats what the analysts' DuckDB file
holds and Dagit what the run computed, identically. What it says, in order: the experiment's name and
description (a planted sandbox fault says so there), its units, the days its exposures cover, the
sample-ratio test, the primary metric's verdict per variation, then every metric's lift with its
interval, p-value and decision, and the metrics not analysed with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from event_platform.markdown import markdown_table

Row = Mapping[str, Any]


def percent(value: float | None, *, signed: bool = False) -> str:
    """A share as a percentage with the digits that matter: 29.4%, 2.9%, 0.42%."""
    if value is None:
        return ""
    share = value * 100
    decimals = 1 if abs(share) >= 1 else 2
    return f"{share:+.{decimals}f}%" if signed else f"{share:.{decimals}f}%"


def number(value: float | None) -> str:
    """Three significant digits, trailing zeros kept so values line up: 1.27, 6.40, 0.0123, 1,234."""
    if value is None:
        return ""
    if abs(value) >= 999.5:  # would round to 1.00e+03
        return f"{value:,.0f}"
    return f"{value:#.3g}"


def p_value(value: float | None) -> str:
    if value is None:
        return ""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def p_phrase(value: float) -> str:
    """`p < 0.001` or `p = 0.412`, for sentences."""
    text = p_value(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"{percent(low, signed=True)} to {percent(high, signed=True)}"


def estimate(row: Row) -> str:
    return percent(row.get("value")) if row.get("metric_kind") == "conversion" else number(row.get("value"))


def _day(moment: dt.datetime | None) -> str:
    return moment.date().isoformat() if moment is not None else "?"


def _variation(row: Row) -> str:
    return row.get("variation_name") or row["variation_id"]


METHODS = {
    "sequential": "Tests: sequential (always valid: the intervals and p-values hold however often the "
    "results are read); p corrected across metrics x variations, the primary metric on its own.",
    "fixed_z": "Tests: fixed-horizon z (valid read once, at the planned end); p corrected across metrics x "
    "variations, the primary metric on its own.",
    "fixed_welch": "Tests: fixed-horizon Welch t (valid read once, at the planned end); p corrected across "
    "metrics x variations, the primary metric on its own.",
}
"""The sentence under an experiment's table saying how to read its intervals and p-values."""


def experiment_summary(rows: Sequence[Row]) -> str:
    """The summary of one experiment's rows (all of them share its experiment_id)."""
    first = rows[0]
    name = first.get("experiment_name")
    title = f"{name} ({first['experiment_id']})" if name else f"experiment {first['experiment_id']}"
    lines = [f"### {title}"]
    if first.get("experiment_description"):
        lines.append(f"> {first['experiment_description']}")
    arms = _arms(rows)
    units = sum(row["units"] for row in arms)
    confidence = first.get("confidence") or 0.95
    lines.append("")
    covered = f"{_day(first.get('first_exposure'))} to {_day(first.get('last_exposure'))}"
    lines.append(
        f"{units:,} units in {len(arms)} variations, first exposed {covered}; assigned by "
        f"{first['assignment']}, metadata {first['metadata']}."
    )
    lines.append(_allocation(first, arms))
    lines.append(_primary_verdict(rows, confidence))
    measured = [row for row in rows if row.get("metric_kind") and not row["is_control"]]
    if measured:
        lines += ["", _metrics_table(rows, measured, confidence), "", METHODS.get(measured[0]["method"], "")]
    skipped = _unique(
        (row["metric_name"], row.get("note")) for row in rows if row.get("decision") == "not analysed"
    )
    if skipped:
        lines += [
            "",
            "Not analysed: "
            + "; ".join(f"{name} ({note.removeprefix('not analysed: ')})" for name, note in skipped),
        ]
    not_analysed = {id(row) for row in rows if row.get("metric_name") and not row.get("metric_kind")}
    notes = _unique(row["note"] for row in rows if row.get("note") and id(row) not in not_analysed)
    lines += [f"Note: {note}" for note in notes]
    return "\n".join(lines)


def results_summary(rows: Iterable[Row]) -> str:
    """Every experiment's summary, by name."""
    by_experiment: dict[str, list[Row]] = {}
    for row in rows:
        by_experiment.setdefault(row["experiment_id"], []).append(row)
    ordered = sorted(
        by_experiment.values(), key=lambda rs: (rs[0].get("experiment_name") or "", rs[0]["experiment_id"])
    )
    return "\n\n".join(experiment_summary(experiment_rows) for experiment_rows in ordered)


def _arms(rows: Sequence[Row]) -> list[Row]:
    seen: dict[str, Row] = {}
    for row in rows:
        seen.setdefault(row["variation_id"], row)
    return list(seen.values())


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(value for value in values if value))


def _allocation(first: Row, arms: Sequence[Row]) -> str:
    split = " / ".join(f"{_variation(row)} {row['units']:,}" for row in arms)
    planned = " / ".join(percent(row.get("planned_weight")) for row in arms)
    if first.get("srm_p_value") is None:
        return f"Allocation: {split} (planned {planned})."
    test = p_phrase(first["srm_p_value"])
    if first.get("srm_flagged"):
        return (
            f"**Sample-ratio mismatch** ({test}): {split} against planned {planned}. Assignment or logging "
            "is broken; no lift of this experiment can be trusted."
        )
    return f"Allocation: {split} against planned {planned}, no sample-ratio mismatch ({test})."


def _primary_verdict(rows: Sequence[Row], confidence: float) -> str:
    primary = [row for row in rows if row.get("metric_role") == "primary" and row.get("metric_kind")]
    if not primary:
        return (
            "No primary metric: give the experiment one (Optimizely's first metric, or `role: primary` in "
            "the metrics file)."
        )
    verdicts = []
    for row in primary:
        if row["is_control"]:
            continue
        verdict = f"{_variation(row)} **{row['decision']}**"
        if row.get("relative_lift") is not None:
            verdict += f", {percent(row['relative_lift'], signed=True)}"
        if row.get("relative_ci_low") is not None:
            verdict += f" ({confidence:.0%} CI {interval(row['relative_ci_low'], row['relative_ci_high'])})"
        if row.get("corrected_p_value") is not None:
            verdict += f", {p_phrase(row['corrected_p_value'])}"
        verdicts.append(verdict)
    control = next(row for row in primary if row["is_control"])
    return (
        f"Primary metric **{control['metric_name']}** ({control['winning_direction']} is better; "
        f"{_variation(control)} {estimate(control)}): " + "; ".join(verdicts) + "."
    )


def _metrics_table(rows: Sequence[Row], measured: Sequence[Row], confidence: float) -> str:
    controls = {row["metric_name"]: row for row in rows if row["is_control"] and row.get("metric_kind")}
    table = [
        {
            "metric": row["metric_name"],
            "role": row["metric_role"],
            "variation": _variation(row),
            "value": estimate(row),
            "control": estimate(controls[row["metric_name"]]) if row["metric_name"] in controls else "",
            "lift": percent(row.get("relative_lift"), signed=True),
            f"{confidence:.0%} CI": interval(row.get("relative_ci_low"), row.get("relative_ci_high")),
            "p": p_value(row.get("corrected_p_value")),
            "decision": row.get("decision") or "",
        }
        for row in measured
    ]
    return markdown_table(table)
