"""optimizely/experiments and optimizely/experiment_metrics through Dagster against the sandbox's REST
API, and `event-platform optimizely experiments`."""

from __future__ import annotations

import argparse
from typing import Any

import dagster as dg
import pytest

from event_platform.lake import delta
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sandbox.world import optimizely_event_id
from event_platform.sources.optimizely.commands import add_commands
from event_platform.sources.optimizely.defs.experiment_assets import (
    EXPERIMENT_METRICS,
    EXPERIMENTS,
    experiment_metadata,
)
from event_platform.sources.optimizely.defs.resources import OptimizelyResource

DAY = "2026-11-01"


def materialize(
    sandbox: OptimizelySandbox | None, lake: LakeResource, **resource: Any
) -> dg.ExecuteInProcessResult:
    optimizely = (
        OptimizelyResource(
            api_token=sandbox.token, rest_url=sandbox.rest_url, rest_requests_per_second=100.0, **resource
        )
        if sandbox is not None
        else OptimizelyResource()
    )
    return dg.materialize(
        [experiment_metadata],
        resources={"optimizely": optimizely, "io_manager": ParquetLakeIOManager(lake=lake)},
        partition_key=DAY,
        raise_on_error=False,
    )


def stored(lake: LakeResource, key: dg.AssetKey) -> list[dict[str, Any]]:
    return delta.read_partition(lake.lake(), "/".join(key.path), DAY).to_table().to_pylist()


def test_the_snapshot_holds_variations_weights_baselines_and_metrics(
    running_e3_sandbox: OptimizelySandbox, lake_resource: LakeResource
) -> None:
    result = materialize(running_e3_sandbox, lake_resource)

    assert result.success
    experiments = stored(lake_resource, EXPERIMENTS)
    by_variation = {row["variation_id"]: row for row in experiments}
    assert len(experiments) == 11  # 2 + 3 + 2 + 2 + 2 variations; the targeted delivery is not one
    pricing = by_variation["9300003001"]
    assert (pricing["experiment_name"], pricing["planned_weight_bp"], pricing["planned_weight"]) == (
        "pricing_banner",
        5000,
        0.5,
    )
    assert pricing["is_baseline"] and not by_variation["9300003002"]["is_baseline"]
    layout = by_variation["9300002003"]
    assert (layout["platform"], layout["campaign_id"], layout["flag_key"], layout["variation_name"]) == (
        "feature",
        "9300000102",
        "course_page",
        "video_first",
    )
    metrics = stored(lake_resource, EXPERIMENT_METRICS)
    primary = next(m for m in metrics if m["experiment_id"] == "9300000001" and m["metric_index"] == 0)
    assert (primary["role"], primary["event_key"], primary["event_id"]) == (
        "primary",
        "purchase",
        optimizely_event_id("purchase"),  # 16 digits, exact
    )
    metadata = result.asset_materializations_for_node("optimizely_experiment_metadata")[0].metadata
    assert [p["id"] for p in metadata["skipped_projects"].value] == ["21000000003"]
    columns = {c.name: c.description for c in metadata["dagster/column_schema"].value.columns}
    assert "basis points" in columns["planned_weight_bp"]
    logs = " ".join(str(event.message) for event in result.all_events)
    assert running_e3_sandbox.token not in logs + str(metadata)


def test_throttling_and_server_errors_are_retried(
    running_e3_sandbox: OptimizelySandbox, lake_resource: LakeResource
) -> None:
    running_e3_sandbox.rest.faults.throttle, running_e3_sandbox.rest.faults.server_errors = 1, 1
    result = materialize(running_e3_sandbox, lake_resource)
    assert result.success
    assert len(stored(lake_resource, EXPERIMENTS)) == 11


def test_without_a_token_the_run_fails_naming_the_setting(lake_resource: LakeResource) -> None:
    result = materialize(None, lake_resource)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "OPTIMIZELY_API_TOKEN" in failure.step_failure_data.user_failure_data.description


def run(*argv: str) -> int:
    root = argparse.ArgumentParser(prog="event-platform")
    add_commands(root.add_subparsers(dest="command", required=True))
    arguments = root.parse_args(["optimizely", *argv])
    return int(arguments.run(arguments))


def test_the_cli_lists_experiments_with_weights_and_metric_roles(
    running_e3_sandbox: OptimizelySandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in running_e3_sandbox.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPTIMIZELY_REST_REQUESTS_PER_SECOND", "100")

    assert run("experiments") == 0
    out = capsys.readouterr().out
    assert "pricing_banner  [9300000003]  running  (Learning platform (web))" in out
    assert "    variation control [9300003001]  50.0%  baseline" in out
    assert "    primary    Purchase (unique per visitor)  (increasing)" in out
    assert "skipped project 21000000003" in out

    assert run("experiments", "--project", "21000000002") == 0
    assert "course_page_layout" in (only := capsys.readouterr().out) and "checkout_button_colour" not in only

    monkeypatch.setenv("OPTIMIZELY_API_TOKEN", "wrong-token")
    assert run("experiments") == 2
    assert "403" in (err := capsys.readouterr().err) and "wrong-token" not in err


def test_the_cli_needs_a_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPTIMIZELY_API_TOKEN", raising=False)
    assert run("experiments") == 2
    assert "OPTIMIZELY_API_TOKEN" in capsys.readouterr().err
