"""The one Definitions of the platform, built from the source registry: each registered source's
`defs` package, the warehouse over their events tables, the operations sensors, the automation, any
`EVENT_PLATFORM_EXTENSIONS`, and the resources and executor they share."""

import importlib
import warnings
from typing import Any

import dagster as dg

from event_platform import policies, settings
from event_platform.defs import automation, operations, warehouse
from event_platform.lake.io_manager import ParquetLakeIOManager, lake_resource
from event_platform.sources import registry
from event_platform.warehouse.models import event_sources

EXECUTOR = dg.in_process_executor
"""Each run executes its steps one after another in its own process; runs are what run in parallel (the
run queue in dagster.yaml: each source's schedule is its own run, a backfill a run per source day).
A process per step would load the code location again for every step, about 5 s of a 2-core machine
for steps that mostly take under one: measured in a backfill, 80% of a source day's run went to it."""


def shared_resources() -> dict[str, Any]:
    """The resources every part shares; each source and the warehouse register their own."""
    lake = lake_resource()
    return {"lake": lake, "io_manager": ParquetLakeIOManager(lake=lake)}


def _definitions_of(package: str) -> dg.Definitions:
    return importlib.import_module(package).definitions()


def build() -> dg.Definitions:
    """The code location's definitions for the sources registered now."""
    with warnings.catch_warnings():
        policies.ignore_backfill_policy_beta()
        return _build()


def _build() -> dg.Definitions:
    parts = [
        *(_definitions_of(source.defs_module) for source in registry.sources()),
        warehouse.definitions(event_sources()),
        operations.definitions(),
        automation.definitions(),
        *(_definitions_of(package) for package in settings.Platform.read().extensions),
        dg.Definitions(resources=shared_resources(), executor=EXECUTOR),
    ]
    return automation.apply_automation(dg.Definitions.merge(*parts))


@dg.definitions
def defs() -> dg.Definitions:
    return build()
