"""The one Definitions of the platform: every `defs/` folder, plus the resources and rules they share."""

from pathlib import Path

import dagster as dg

from event_platform import settings
from event_platform.defs import automation

EXECUTOR = dg.in_process_executor
"""Each run executes its steps one after another in its own process; runs are what run in parallel (the
run queue in dagster.yaml: each source's schedule is its own run, a backfill a run per source day).
A process per step would load the code location again for every step, about 5 s of a 2-core machine
for steps that mostly take under one: measured in a backfill, 80% of a source day's run went to it."""


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=settings.resources(), executor=EXECUTOR),
    )
    return automation.apply_automation(loaded)
