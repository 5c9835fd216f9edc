"""The sandbox's Dagster objects. The sandbox's environment names this package in
`EVENT_PLATFORM_EXTENSIONS`, so they join the code location only where the sandbox runs."""

import dagster as dg

from event_platform.sandbox.defs import checks


def definitions() -> dg.Definitions:
    return dg.Definitions(asset_checks=[checks.sandbox_planted_truth])
