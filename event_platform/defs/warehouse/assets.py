"""The warehouse's assets: thin wiring of `models.py` / `results.py` / `catalog.py` to Dagster.

Inputs arrive from the lake's Parquet IO manager as lazy datasets; outputs go back through it.

Ranges: the daily models declare `BackfillPolicy.single_run()`, so a backfill of any number of days is
one run. Each asset then computes its days one after another, each in its own DuckDB over its own
slice of the inputs (`_each_day`), and hands the IO manager one stream per day: the same partitions as
one run per day, without a run's start-up per day, and one day in memory at a time.

Optional sources: the ins of `identity_links` and `events` on the four source tables carry the IO
manager's `allow_missing_partitions` flag, so a source never materialized for a day (or not
configured at all) reads as absent: the day's events are built from the sources present, and the
metadata lists the absent ones. The same flag lets the lookback windows (identity links, exposures)
start before the first materialized day.

Cross-day correctness and cost:
- `experiment_exposures` holds, per day, each person's first decision of that day (compact: one row
  per person and experiment); `experiment_results` takes the earliest over all days, so a visitor
  exposed on two days is one unit, and anyone shown two variations on any days is excluded.
- `experiment_conversions` for day D joins D's events with the exposures of D-window-1 .. D: its cost
  grows with one day of events plus a window of compact exposures, never with all history.
  `experiment_results` re-checks each conversion against the first exposure of all time. Two limits
  follow from partitioning by arrival day: a decision that E3 processes on a later day than the
  conversion it precedes is attributed only when that conversion's day is re-materialized, and an
  event arriving more than a day late can miss an exposure older than the lookback.
- `events` for day D resolves people through the identity links of D-lookback .. D.

Experiments: `experiment_exposures` adds, to Optimizely's decisions, the assignment events of experiments
the metrics file defines (EVENT_PLATFORM_METRICS_FILE); `experiment_results` analyses the defined
metrics with the names, weights and baselines of the latest `optimizely/experiments` snapshot (optional:
without it, experiments keep their ids); `experiment_exploration` is every event type, exploratory.
"""

import datetime as dt
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    BetaWarning,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from event_platform import metadata, settings
from event_platform.defs.warehouse import results_checks
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.lake import delta
from event_platform.lake.io_manager import (
    ALLOW_MISSING_PARTITIONS,
    LakeResource,
    PartitionStreams,
    partitions_of,
)
from event_platform.partitions import daily_partitions
from event_platform.policies import RANGE_BACKFILL_POLICY, failing_plainly
from event_platform.warehouse import catalog, exploration, models, results, results_daily, schemas
from event_platform.warehouse.engine import Engine
from event_platform.warehouse.experiment_catalog import Catalog, build_catalog, latest_snapshot
from event_platform.warehouse.identity import IdentityMap, configured_rules
from event_platform.warehouse.metrics import assignments_table
from event_platform.warehouse.summary import experiment_summary

GROUP = "warehouse"
OPTIONAL_INPUT = {ALLOW_MISSING_PARTITIONS: True}
# The attribution window and the identity lookback shape the partition mappings: read as the code loads.
WINDOW_DAYS = settings.Warehouse.read().attribution_window_days
LINKS_LOOKBACK_DAYS = settings.Warehouse.read().identity_lookback_days
"""`events` and `experiment_exposures` for day D resolve people through the links of D-this .. D."""
EXPOSURES_LOOKBACK_DAYS = WINDOW_DAYS + 1
"""`experiment_conversions` for day D joins the exposures of D-this .. D."""


def _identity() -> IdentityMap:
    """The identity rules of EVENT_PLATFORM_IDENTITY_RULES, else every registered source's, as the run
    starts."""
    return IdentityMap(configured_rules())


def _source_ins(feeds: Sequence[models.EventSource]) -> dict[str, AssetIn]:
    """An optional input per source events table, named `<source>_<table>`."""
    return {
        source.relation: AssetIn(key=AssetKey(list(source.asset_path)), metadata=OPTIONAL_INPUT)
        for source in feeds
    }


def _lookback(days: int) -> TimeWindowPartitionMapping:
    """Day D reads D-days .. D; days before the first partition simply do not exist."""
    with warnings.catch_warnings():
        # allow_nonexistent_upstream_partitions is "beta" in Dagster 1.13; it is what a lookback needs.
        warnings.simplefilter("ignore", BetaWarning)
        return TimeWindowPartitionMapping(
            start_offset=-days, end_offset=0, allow_nonexistent_upstream_partitions=True
        )


def _metadata(values: Mapping[str, Any], schema: pa.Schema | None = None) -> dict[str, Any]:
    """A model's summary as Dagster metadata: the preview as a table of `schema`'s columns, moments as
    timestamps, `<count>_per_<label>` breakdowns as small tables, other lists and mappings as JSON."""
    converted: dict[str, Any] = {}
    for name, value in values.items():
        if name == "preview" and schema is not None and not isinstance(value, str):
            converted[name] = metadata.table(value, schema)
        elif name == "preview":
            converted[name] = MetadataValue.md(value)
        elif isinstance(value, dt.datetime):
            converted[name] = MetadataValue.timestamp(value)
        elif isinstance(value, dict) and "_per_" in name:
            count, label = name.split("_per_", 1)
            converted[name] = metadata.counts(value, label=label, count=count)
        elif isinstance(value, list | dict):
            converted[name] = MetadataValue.json(value)
        elif value is None:
            converted[name] = MetadataValue.text("")
        else:
            converted[name] = value
    return converted


def _by_source(
    feeds: Sequence[models.EventSource], inputs: Mapping[str, ds.Dataset]
) -> dict[str, ds.Dataset]:
    """The source tables' inputs keyed by source name (the models' key)."""
    return {source.name: inputs[source.relation] for source in feeds}


def _days(dataset: ds.Dataset, day: str, days_before: int = 0) -> ds.Dataset:
    """The input's partitions from `days_before` days before `day` through `day`."""
    last = dt.date.fromisoformat(day)
    return partitions_of(
        dataset, [(last - dt.timedelta(days=back)).isoformat() for back in range(days_before + 1)]
    )


def _sources_of_day(sources: Mapping[str, ds.Dataset], day: str) -> dict[str, ds.Dataset]:
    return {name: _days(dataset, day) for name, dataset in sources.items()}


def _each_day(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    schema: pa.Schema,
    model: Callable[[Engine, str], models.ModelOutput],
    preview: Sequence[str],
) -> PartitionStreams:
    """`model` for every day of the run, one day after another in its own DuckDB, each written before
    the next is computed: a run over a 90-day range (a single-run backfill) holds one day at a time.

    The inputs hold the whole range (and its look-back); each model sees only its day's slice of them.
    `preview` names the columns the day's preview shows: few enough for whole rows to fit the UI.
    """
    preview_schema = pa.schema([schema.field(name) for name in preview])

    def add_metadata(day: str, metadata: Mapping[str, Any]) -> None:
        context.add_asset_metadata(dict(metadata), partition_key=day)

    def per_day() -> Iterator[tuple[str, pa.RecordBatchReader]]:
        for day in context.partition_keys:
            with warehouse.engine() as engine:
                output = model(engine, day)
                add_metadata(day, _metadata(output.metadata, preview_schema))
                yield day, output.rows

    return PartitionStreams(schema, per_day(), on_written=add_metadata)


LINKS_INPUT = AssetIn(
    key=AssetKey([GROUP, "identity_links"]),
    partition_mapping=_lookback(LINKS_LOOKBACK_DAYS),
    metadata=OPTIONAL_INPUT,
)
"""The identity links of D-LINKS_LOOKBACK_DAYS .. D, for the models that resolve people on day D."""

DAILY = {
    "partitions_def": daily_partitions,
    "backfill_policy": RANGE_BACKFILL_POLICY,
    "key_prefix": [GROUP],
    "group_name": GROUP,
    "kinds": {"duckdb"},
}


def identity_links_asset(feeds: Sequence[models.EventSource]) -> AssetsDefinition:
    """`warehouse/identity_links` over the events tables of `feeds` (every registered source's)."""

    @asset(**DAILY, name="identity_links", ins=_source_ins(feeds))
    def identity_links(
        context: AssetExecutionContext, warehouse: WarehouseResource, **tables: ds.Dataset
    ) -> PartitionStreams:
        """Identity references seen together on one row of a day (a device with a user id): the links
        `events` and `experiment_exposures` resolve people through."""
        sources, identity = _by_source(feeds, tables), _identity()
        return _each_day(
            context,
            warehouse,
            schemas.IDENTITY_LINKS,
            lambda engine, day: models.identity_links(engine, identity, _sources_of_day(sources, day)),
            preview=schemas.IDENTITY_LINKS.names,
        )

    return identity_links


def events_asset(feeds: Sequence[models.EventSource]) -> AssetsDefinition:
    """`warehouse/events` over the events tables of `feeds` (every registered source's)."""

    @asset(**DAILY, name="events", ins={**_source_ins(feeds), "links": LINKS_INPUT})
    def events(
        context: AssetExecutionContext, warehouse: WarehouseResource, links: ds.Dataset, **tables: ds.Dataset
    ) -> PartitionStreams:
        """Every source's events of a day in one schema, with a pseudonymous `person_key` from the
        identity map."""
        sources, identity = _by_source(feeds, tables), _identity()
        return _each_day(
            context,
            warehouse,
            schemas.EVENTS,
            lambda engine, day: models.events(
                engine, identity, _sources_of_day(sources, day), _days(links, day, LINKS_LOOKBACK_DAYS)
            ),
            preview=("source", "event_type", "occurred_at", "person_key"),
        )

    return events


@asset(
    **DAILY,
    ins={
        "decisions": AssetIn(key=AssetKey(["optimizely", "decisions"])),
        "links": LINKS_INPUT,
        "events": AssetIn(key=AssetKey([GROUP, "events"]), metadata=OPTIONAL_INPUT),
    },
)
def experiment_exposures(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    decisions: ds.Dataset,
    links: ds.Dataset,
    events: ds.Dataset,
) -> PartitionStreams:
    """Per experiment and person, the first Optimizely decision of the day (or the first assignment event,
    for experiments the metrics file assigns by events); holdbacks flagged, every variation shown kept
    (people in two variations are excluded from the results and counted)."""
    assignments, identity = assignments_table(warehouse.metrics_config(WINDOW_DAYS)), _identity()
    return _each_day(
        context,
        warehouse,
        schemas.EXPERIMENT_EXPOSURES,
        lambda engine, day: models.experiment_exposures(
            engine,
            identity,
            _days(decisions, day),
            _days(links, day, LINKS_LOOKBACK_DAYS),
            _days(events, day),
            assignments,
        ),
        preview=("experiment_id", "variation_id", "is_holdback", "first_exposed_at", "decisions"),
    )


@asset(
    **DAILY,
    ins={
        "events": AssetIn(key=AssetKey([GROUP, "events"])),
        "exposures": AssetIn(
            key=AssetKey([GROUP, "experiment_exposures"]),
            partition_mapping=_lookback(EXPOSURES_LOOKBACK_DAYS),
            metadata=OPTIONAL_INPUT,
        ),
    },
)
def experiment_conversions(
    context: AssetExecutionContext, warehouse: WarehouseResource, events: ds.Dataset, exposures: ds.Dataset
) -> PartitionStreams:
    """Events of the day by exposed people, at or after their first exposure and within the
    attribution window (EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS, default 7)."""
    return _each_day(
        context,
        warehouse,
        schemas.EXPERIMENT_CONVERSIONS,
        lambda engine, day: models.experiment_conversions(
            engine, _days(events, day), _days(exposures, day, EXPOSURES_LOOKBACK_DAYS), WINDOW_DAYS
        ),
        preview=("experiment_id", "source", "event_name", "occurred_at", "revenue"),
    )


@asset(**DAILY, ins={"events": AssetIn(key=AssetKey([GROUP, "events"]))})
def daily_active_users(
    context: AssetExecutionContext, warehouse: WarehouseResource, events: ds.Dataset
) -> PartitionStreams:
    """Distinct people active per source and across all sources (`all`), each counted once."""
    return _each_day(
        context,
        warehouse,
        schemas.DAILY_ACTIVE_USERS,
        lambda engine, day: models.daily_active_users(engine, _days(events, day)),
        preview=schemas.DAILY_ACTIVE_USERS.names,
    )


METADATA_LOOKBACK_DAYS = 30
"""A day's results use the latest REST metadata snapshot of the 30 days up to it."""
METADATA_KEYS = {
    "experiment_metadata": AssetKey(["optimizely", "experiments"]),
    "metric_metadata": AssetKey(["optimizely", "experiment_metrics"]),
}
METADATA_INS = {
    name: AssetIn(key=key, partition_mapping=_lookback(METADATA_LOOKBACK_DAYS), metadata=OPTIONAL_INPUT)
    for name, key in METADATA_KEYS.items()
}
"""For a daily asset: the metadata snapshots of the days up to its own."""
ALL_METADATA_INS = {name: AssetIn(key=key, metadata=OPTIONAL_INPUT) for name, key in METADATA_KEYS.items()}
"""For an unpartitioned asset: every snapshot (the latest is used)."""
EXPERIMENTS_INS = {
    "exposures": AssetIn(key=AssetKey([GROUP, "experiment_exposures"]), metadata=OPTIONAL_INPUT),
    "conversions": AssetIn(key=AssetKey([GROUP, "experiment_conversions"]), metadata=OPTIONAL_INPUT),
    **ALL_METADATA_INS,
}
"""Every day of exposures and conversions, and the metadata snapshots: the exploration's inputs."""
UNITS = AssetKey([GROUP, "experiment_units"])
UNIT_STATE = AssetKey([GROUP, "experiment_unit_state"])
RESULTS_DAILY = AssetKey([GROUP, "experiment_results_daily"])


def _day_before() -> TimeWindowPartitionMapping:
    """Day D's own day D-1: what a self-dependent daily asset continues from."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return TimeWindowPartitionMapping(
            start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
        )


def _earlier_days(day: str) -> list[str]:
    return [(dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()]


def _own_days(lake: LakeResource, key: AssetKey, days: Sequence[str]) -> ds.Dataset:
    """Days of this asset's own table as stored now: a self-dependent asset reads the day before it from
    the lake, not from its input, because in a range run that day was written by this run itself."""
    return delta.read(lake.lake(), "/".join(key.path), days, allow_missing=True)


def _catalog(
    warehouse: WarehouseResource,
    experiment_metadata: ds.Dataset,
    metric_metadata: ds.Dataset,
    day: str | None,
) -> Catalog:
    """The experiments as the metrics file and the latest metadata snapshot (on or before `day`) say."""
    return build_catalog(
        warehouse.metrics_config(WINDOW_DAYS),
        latest_snapshot(experiment_metadata, day),
        latest_snapshot(metric_metadata, day),
        WINDOW_DAYS,
    )


@asset(
    **DAILY,
    deps=[AssetDep(UNITS, partition_mapping=_day_before())],
    ins={"exposures": AssetIn(key=AssetKey([GROUP, "experiment_exposures"]))},
)
def experiment_units(
    context: AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource, exposures: ds.Dataset
) -> PartitionStreams:
    """Per experiment, the people first exposed on the day (in no earlier day's partition), with the
    variation of that first decision: every unit once, under the day it entered the experiment."""

    def new_units(engine: Engine, day: str) -> models.ModelOutput:
        earlier = [key for key in delta.partition_keys(lake.lake(), "/".join(UNITS.path)) if key < day]
        return results_daily.new_units(engine, _days(exposures, day), _own_days(lake, UNITS, earlier))

    return _each_day(
        context, warehouse, schemas.EXPERIMENT_UNITS, new_units, preview=schemas.EXPERIMENT_UNITS.names
    )


@asset(
    **DAILY,
    deps=[AssetDep(UNIT_STATE, partition_mapping=_day_before())],
    ins={
        "units": AssetIn(key=UNITS),
        "exposures": AssetIn(key=AssetKey([GROUP, "experiment_exposures"])),
        "conversions": AssetIn(key=AssetKey([GROUP, "experiment_conversions"])),
        "events": AssetIn(
            key=AssetKey([GROUP, "events"]),
            partition_mapping=_lookback(results_daily.PRE_PERIOD_DAYS),
            metadata=OPTIONAL_INPUT,
        ),
        **METADATA_INS,
    },
)
def experiment_unit_state(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    lake: LakeResource,
    units: ds.Dataset,
    exposures: ds.Dataset,
    conversions: ds.Dataset,
    events: ds.Dataset,
    experiment_metadata: ds.Dataset,
    metric_metadata: ds.Dataset,
) -> PartitionStreams:
    """What each day's results start from: the units still inside their attribution window with what
    each has accumulated per metric (and its pre-exposure value, for CUPED), and the sums of the units
    whose window has closed. Day D = day D-1's state + day D's units, exposures and conversions."""

    def state(engine: Engine, day: str) -> models.ModelOutput:
        with failing_plainly(results_daily.MetricsChangedError):
            return results_daily.unit_state(
                engine,
                day,
                _own_days(lake, UNIT_STATE, _earlier_days(day)),
                _days(units, day),
                _days(exposures, day),
                _days(conversions, day),
                _days(events, day, results_daily.PRE_PERIOD_DAYS),
                _catalog(warehouse, experiment_metadata, metric_metadata, day),
                WINDOW_DAYS,
            )

    return _each_day(
        context,
        warehouse,
        schemas.EXPERIMENT_UNIT_STATE,
        state,
        preview=("row_kind", "experiment_id", "variation_id", "metric_name", "cohort_day", "units"),
    )


@asset(
    **DAILY,
    deps=[AssetDep(RESULTS_DAILY, partition_mapping=_day_before())],
    ins={"state": AssetIn(key=UNIT_STATE), **METADATA_INS},
)
def experiment_results_daily(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    lake: LakeResource,
    state: ds.Dataset,
    experiment_metadata: ds.Dataset,
    metric_metadata: ds.Dataset,
) -> PartitionStreams:
    """Each experiment's results as of the day, as an analyst would have seen them that morning: the
    sequential tests continue from the day before's, so every daily look is valid. Each day's metadata
    holds the primary metric's lift and interval as numbers, which the asset's Plots tab draws day by
    day."""
    analysis = warehouse.results_settings(WINDOW_DAYS)

    def results_of(day: str) -> Iterator[tuple[str, pa.RecordBatchReader]]:
        with warehouse.engine() as engine:
            output = results_daily.results_as_of(
                engine,
                _days(state, day),
                _own_days(lake, RESULTS_DAILY, _earlier_days(day)),
                _catalog(warehouse, experiment_metadata, metric_metadata, day),
                analysis,
            )
        context.add_asset_metadata(
            {**_metadata(_counts(output.metadata)), **results_daily.chart_metadata(output.table.to_pylist())},
            partition_key=day,
        )
        yield day, output.table.to_reader()

    def per_day() -> Iterator[tuple[str, pa.RecordBatchReader]]:
        for day in context.partition_keys:
            yield from results_of(day)

    def add_metadata(day: str, written: Mapping[str, Any]) -> None:
        context.add_asset_metadata(dict(written), partition_key=day)

    return PartitionStreams(schemas.EXPERIMENT_RESULTS, per_day(), on_written=add_metadata)


def _counts(values: Mapping[str, Any]) -> dict[str, Any]:
    """The results' headline numbers for a day's metadata (the lists stay on experiment_results)."""
    return {name: values[name] for name in ("experiments", "units", "first_exposure", "last_exposure")}


@asset(
    key_prefix=[GROUP],
    group_name=GROUP,
    kinds={"duckdb"},
    ins={
        "results_by_day": AssetIn(key=RESULTS_DAILY, metadata=OPTIONAL_INPUT),
        "state": AssetIn(key=UNIT_STATE, metadata=OPTIONAL_INPUT),
        **ALL_METADATA_INS,
    },
    check_specs=results_checks.results_check_specs(),
)
def experiment_results(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    results_by_day: ds.Dataset,
    state: ds.Dataset,
    experiment_metadata: ds.Dataset,
    metric_metadata: ds.Dataset,
) -> Iterator[Any]:
    """What to decide each experiment on: the latest day of `experiment_results_daily`, per experiment x
    variation x defined metric (Optimizely's configured metrics and the metrics file's), with the
    experiment's and variation's names, the metric's role, the planned weight, the lift against the
    baseline with its interval, the p-value before and after the correction across the experiment's
    tests, and a `decision` (winner, loser, inconclusive, guardrail harmed, invalid: sample-ratio
    mismatch). Sequential by default: valid however often it is read. Each experiment's summary is in
    the metadata; every event type, uncorrected, is in `experiment_exploration`."""
    latest = results.latest_day(results_by_day)
    rows = results.rows_of_day(results_by_day, latest)
    catalog_of_day = _catalog(warehouse, experiment_metadata, metric_metadata, latest)
    seen = results.rows_of_day(state, latest, results_daily.SEEN)
    summary = results.summarise(rows, seen, catalog_of_day)
    summaries = {
        f"experiment: {label}": MetadataValue.md(experiment_summary(experiment_rows))
        for label, experiment_rows in results.by_experiment(rows).items()
    }
    table = pa.Table.from_pylist(rows, schema=schemas.EXPERIMENT_RESULTS)
    yield Output(table, metadata={"as_of": latest or "", **_metadata(summary), **summaries})
    yield results_checks.metadata_present(summary["metadata_missing"])
    yield results_checks.metric_events_seen(summary["unseen_events"])


@asset(key_prefix=[GROUP], group_name=GROUP, kinds={"duckdb"}, ins=EXPERIMENTS_INS)
def experiment_exploration(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    exposures: ds.Dataset,
    conversions: ds.Dataset,
    experiment_metadata: ds.Dataset,
    metric_metadata: ds.Dataset,
) -> pa.Table:
    """Exploratory, not for decisions: every source's every event type as a metric of every experiment
    (conversion rate, events and revenue per visitor), with uncorrected fixed-horizon tests. With dozens
    of comparisons per variation, about one in twenty null ones looks "significant" by chance: use it to
    find metrics worth defining in the metrics file, and decide from `experiment_results`."""
    with warehouse.engine() as engine:
        output = exploration.experiment_exploration(
            engine,
            exposures,
            conversions,
            _catalog(warehouse, experiment_metadata, metric_metadata, None),
            warehouse.results_settings(WINDOW_DAYS),
        )
    context.add_output_metadata(_metadata(output.metadata))
    return output.table


def catalog_asset(tables: Sequence[catalog.CatalogTable]) -> AssetsDefinition:
    """`warehouse/catalog`, downstream of every table it publishes."""

    @asset(
        name="catalog",
        key_prefix=[GROUP],
        group_name=GROUP,
        kinds={"duckdb"},
        pool="warehouse",
        deps=[AssetKey(table.lake_path.split("/")) for table in tables],
    )
    def publish_catalog(
        context: AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource
    ) -> None:
        """Views over every lake table and the marts in the analysts' warehouse.duckdb
        (EVENT_PLATFORM_WAREHOUSE). The only writer of that file, hence the `warehouse` pool (limit 1)."""
        path = warehouse.warehouse_path()
        report = catalog.publish(lake.lake(), path, tuple(tables))
        context.add_output_metadata(
            _metadata(
                {
                    "path": str(path.resolve()),
                    "files_per_view": report.views,
                    "rows_per_table": report.tables,
                    "delta_versions": report.versions,
                    "empty": report.empty,
                    "not_published": report.not_published,
                }
            )
        )

    return publish_catalog
