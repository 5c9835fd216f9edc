"""The one Definitions of the platform: every `defs/` folder, plus the resources and rules they share."""

from pathlib import Path

import dagster as dg

from event_platform import settings
from event_platform.defs import automation

EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["event_platform.definitions"]}}}
)
"""Steps in parallel, each forked from a server that imported the code location once: a spawned step
process would import Dagster, pyarrow, DuckDB and every source again, which costs more than most steps."""


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=settings.resources(), executor=EXECUTOR),
    )
    return automation.apply_automation(loaded)
