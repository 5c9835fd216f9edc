"""Sensors that watch runs rather than data: failure and freshness alerts, the `days` tag of range runs."""

import dagster as dg

from event_platform.defs.operations import run_days, sensors


def definitions() -> dg.Definitions:
    return dg.Definitions(
        sensors=[sensors.run_failure_alerts, sensors.freshness_alerts, run_days.run_days_tags]
    )
