"""The one Definitions of the platform: every `defs/` folder, plus the resources they share."""

from pathlib import Path

import dagster as dg

from event_platform import settings


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=settings.resources()),
    )
