"""The warehouse models as plain functions over Arrow datasets (no Dagster): each registers its
inputs in an `Engine`, computes the model into a temporary table, summarises it for metadata, and
returns a stream of its rows in the table's stored schema. `assets.py` wires them to the lake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from event_platform.sources import registry
from event_platform.sources.optimizely.schema import DECISIONS
from event_platform.warehouse import schemas
from event_platform.warehouse.engine import Engine, has_rows_source, load_sql
from event_platform.warehouse.identity import IdentityMap

OUTPUT_TABLE = "model_output"
PREVIEW_ROWS = 5
ALL_SOURCES = "all"
"""`daily_active_users`' row for people active in any source."""


@dataclass(frozen=True)
class EventSource:
    """A source table that feeds `warehouse/events`, with the SQL that maps it to the unified shape."""

    name: str
    asset_path: tuple[str, str]
    time_column: str
    """When an event happened, in the source's own table (orders identity links)."""
    sql: Path
    """The source's `warehouse_events.sql`."""

    @property
    def relation(self) -> str:
        return "_".join(self.asset_path)

    def select_sql(self, identity: IdentityMap) -> str:
        return load_sql(self.sql, identity_reference=identity.reference_sql(self.name))


def event_sources() -> tuple[EventSource, ...]:
    """The events table of every registered source that has one, in registry order."""
    return tuple(
        EventSource(source.name, (source.name, table.name), table.event_time, source.warehouse_events_sql())
        for source in registry.sources()
        if (table := source.events_table) and table.event_time
    )


@dataclass
class ModelOutput:
    """A model's rows (a stream for the IO manager) and what it reports about them."""

    rows: pa.RecordBatchReader
    metadata: dict[str, Any] = field(default_factory=dict)


def finish(
    engine: Engine, schema: pa.Schema, time_column: str | None, metadata: dict[str, Any]
) -> ModelOutput:
    """Summarise the computed output table and hand its rows over as a stream.

    The row count is left to the IO manager (`dagster/row_count`), which counts what it wrote."""
    columns = ", ".join(f'"{name}"' for name in schema.names)
    summary: dict[str, Any] = {}
    if time_column:
        bounds = engine.rows(
            f'SELECT min("{time_column}") AS first, max("{time_column}") AS last FROM {OUTPUT_TABLE}'
        )[0]
        if bounds["first"] is not None:
            summary["first_" + time_column] = bounds["first"]
            summary["last_" + time_column] = bounds["last"]
    summary["preview"] = engine.rows(f"SELECT {columns} FROM {OUTPUT_TABLE} LIMIT {PREVIEW_ROWS}")
    return ModelOutput(
        engine.stream(f"SELECT {columns} FROM {OUTPUT_TABLE}", schema), {**summary, **metadata}
    )


def _register_sources(
    engine: Engine, sources: Mapping[str, ds.Dataset | None], wanted: Sequence[EventSource]
) -> list[EventSource]:
    present = [source for source in wanted if has_rows_source(sources.get(source.name))]
    for source in present:
        engine.register(source.relation, sources[source.name])  # type: ignore[arg-type]
    return present


def _union(selects: Sequence[str]) -> str:
    return "\nUNION ALL BY NAME\n".join(f"({select})" for select in selects)


def identity_links(
    engine: Engine, identity: IdentityMap, sources: Mapping[str, ds.Dataset | None]
) -> ModelOutput:
    """Links seen in one day of the sources whose rows carry identifiers of two namespaces."""
    linking = [source for source in event_sources() if source.name in identity.links_sources()]
    present = _register_sources(engine, sources, linking)
    pairs = [
        select
        for source in present
        for select in identity.link_pairs_sql(source.name, source.relation, source.time_column)
    ]
    if pairs:
        engine.create_table(OUTPUT_TABLE, load_sql("identity_links", pairs=_union(pairs)))
    else:
        engine.register(OUTPUT_TABLE, schemas.IDENTITY_LINKS.empty_table())
    return finish(
        engine, schemas.IDENTITY_LINKS, "first_seen_at", {"sources": [source.name for source in present]}
    )


def events(
    engine: Engine,
    identity: IdentityMap,
    sources: Mapping[str, ds.Dataset | None],
    links: ds.Dataset | None,
) -> ModelOutput:
    """Every present source's events of one day in one shape; absent sources are listed, not fatal."""
    feeds = event_sources()
    present = _register_sources(engine, sources, feeds)
    engine.register_or_empty("identity_links", links, schemas.IDENTITY_LINKS)
    if present:
        selects = [source.select_sql(identity) for source in present]
        engine.create_table(OUTPUT_TABLE, load_sql("events", sources=_union(selects)))
    else:
        engine.register(OUTPUT_TABLE, schemas.EVENTS.empty_table())
    per_source = engine.rows(
        f"SELECT source, count(*) AS n FROM {OUTPUT_TABLE} GROUP BY source ORDER BY source"
    )
    without_person = engine.rows(f"SELECT count(*) AS n FROM {OUTPUT_TABLE} WHERE person_key IS NULL")[0]["n"]
    return finish(
        engine,
        schemas.EVENTS,
        "occurred_at",
        {
            "sources_present": [source.name for source in present],
            "sources_absent": [source.name for source in feeds if source not in present],
            "rows_per_source": {row["source"]: row["n"] for row in per_source},
            "rows_without_person": without_person,
        },
    )


def experiment_exposures(
    engine: Engine,
    identity: IdentityMap,
    decisions: ds.Dataset | None,
    links: ds.Dataset | None,
    events_of_day: ds.Dataset | None = None,
    assignments: pa.Table | None = None,
) -> ModelOutput:
    """The first decision per person per experiment of one day's decisions, and the first assignment
    event of experiments assigned by events (`assignments`, from the metrics file)."""
    engine.register_or_empty("decisions", decisions, DECISIONS)
    engine.register_or_empty("identity_links", links, schemas.IDENTITY_LINKS)
    engine.create_table(
        OUTPUT_TABLE, load_sql("exposures", identity_reference=identity.reference_sql("optimizely"))
    )
    counts = engine.rows(
        f"""SELECT count(*) FILTER (WHERE len(variation_ids) > 1) AS in_several,
                   count(*) FILTER (WHERE is_holdback) AS holdbacks,
                   count(DISTINCT experiment_id) AS experiments,
                   coalesce(sum(decisions), 0)::BIGINT AS used
            FROM {OUTPUT_TABLE}"""
    )[0]
    skipped = engine.rows("SELECT count(*) AS n FROM decisions")[0]["n"] - counts["used"]
    assigned: dict[str, int] = {}
    if assignments is not None and assignments.num_rows and has_rows_source(events_of_day):
        engine.register("events", events_of_day)  # type: ignore[arg-type]
        engine.register("assignments", assignments)
        engine.connection.execute(f"INSERT INTO {OUTPUT_TABLE} BY NAME {load_sql('exposures_assigned')}")
        assigned = {
            row["experiment_id"]: row["n"]
            for row in engine.rows(
                f"SELECT experiment_id, count(*) AS n FROM {OUTPUT_TABLE} "
                "WHERE experiment_id IN (SELECT experiment_id FROM assignments) GROUP BY experiment_id"
            )
        }
    return finish(
        engine,
        schemas.EXPERIMENT_EXPOSURES,
        "first_exposed_at",
        {
            "experiments": counts["experiments"] + len(assigned),
            "visitors_in_several_variations": counts["in_several"],
            "holdback_visitors": counts["holdbacks"],
            "skipped_decisions": skipped,
            "people_assigned_by_events": assigned,
        },
    )


def experiment_conversions(
    engine: Engine, events_of_day: ds.Dataset | None, exposures: ds.Dataset | None, window_days: int
) -> ModelOutput:
    """One day's events by people exposed within the attribution window before them."""
    engine.register_or_empty("events", events_of_day, schemas.EVENTS)
    engine.register_or_empty("exposures", exposures, schemas.EXPERIMENT_EXPOSURES)
    engine.create_table(OUTPUT_TABLE, load_sql("experiment_conversions"), {"window_days": window_days})
    per_source = engine.rows(
        f"SELECT source, count(*) AS n FROM {OUTPUT_TABLE} GROUP BY source ORDER BY source"
    )
    return finish(
        engine,
        schemas.EXPERIMENT_CONVERSIONS,
        "occurred_at",
        {
            "attribution_window_days": window_days,
            "rows_per_source": {r["source"]: r["n"] for r in per_source},
        },
    )


def daily_active_users(engine: Engine, events_of_day: ds.Dataset | None) -> ModelOutput:
    engine.register_or_empty("events", events_of_day, schemas.EVENTS)
    engine.create_table(OUTPUT_TABLE, load_sql("daily_active_users"))
    counts = {
        row["source"]: row["active_users"]
        for row in engine.rows(f"SELECT source, active_users FROM {OUTPUT_TABLE} ORDER BY source")
    }
    return finish(
        engine,
        schemas.DAILY_ACTIVE_USERS,
        None,
        # People active in any source, counted once: the number to see as a curve.
        {"active_users": counts.pop(ALL_SOURCES, 0), "active_users_per_source": counts},
    )
