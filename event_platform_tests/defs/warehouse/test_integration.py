"""End to end on the sandbox: the Optimizely emulator on 127.0.0.1 (E3 on S3 and the REST API), the real
Optimizely assets landing its export and reading its experiment metadata, then every warehouse asset and
check with the sandbox's metrics file, all through Dagster; and the analysts' CLI on the result."""

import datetime as dt
import uuid
from typing import Any

import dagster as dg
import duckdb
import pytest

from event_platform.cli import main
from event_platform.defs.warehouse.resources import WarehouseResource
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.partitions import daily_partitions
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sandbox.runner import SANDBOX_METRICS_FILE
from event_platform.sandbox.world import World
from event_platform.sources.optimizely.defs.assets import conversions, decisions
from event_platform.sources.optimizely.defs.experiment_assets import experiment_metadata
from event_platform.sources.optimizely.defs.resources import OptimizelyResource
from event_platform_tests.defs.warehouse.conftest import (
    CHECKS,
    DAILY_WAREHOUSE,
    MARTS,
    SOURCE_KEYS,
    check_results,
    materialized_metadata,
)

DAYS = ["2026-11-01", "2026-11-02"]
RESULTS = dg.AssetKey(["warehouse", "experiment_results"])


@pytest.fixture(scope="module")
def world() -> World:
    """Big enough that the planted 56/44 split is flagged with near certainty (planted.srm_detectable)."""
    return World(people_count=4_000)


@pytest.fixture(scope="module")
def sandbox_platform(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("sandbox-platform")
    lake = LakeResource(root=str(directory / "lake"))
    warehouse_file = directory / "warehouse.duckdb"
    with OptimizelySandbox(world, bucket=f"e3-{uuid.uuid4().hex[:12]}") as sandbox:
        for day in DAYS:
            sandbox.publish_day(dt.date.fromisoformat(day))
        resources: dict[str, Any] = {
            "lake": lake,
            "io_manager": ParquetLakeIOManager(lake=lake),
            "optimizely": OptimizelyResource(
                api_token=sandbox.token,
                auth_url=sandbox.auth_url,
                s3_endpoint_url=sandbox.s3_endpoint_url,
                pseudonym_key="test-pseudonym-key",
                rest_url=sandbox.rest_url,
                rest_requests_per_second=50.0,
            ),
            "warehouse": WarehouseResource(
                path=str(warehouse_file), memory_limit="1GB", metrics_file=str(SANDBOX_METRICS_FILE)
            ),
        }
        others = [
            dg.AssetSpec(list(key), partitions_def=daily_partitions)
            for key in SOURCE_KEYS
            if key[0] != "optimizely"
        ]
        assets = [decisions, conversions, experiment_metadata, *others, *DAILY_WAREHOUSE, *MARTS, *CHECKS]
        daily = [decisions.key, conversions.key, *experiment_metadata.keys, *(a.key for a in DAILY_WAREHOUSE)]
        runs = [
            dg.materialize(assets, resources=resources, partition_key=day, selection=daily) for day in DAYS
        ]
        assert all(run.success for run in runs)
        rest_requests = list(sandbox.rest.requests)
    marts = dg.AssetSelection.assets(*MARTS) | dg.AssetSelection.checks(*CHECKS)
    final = dg.materialize(assets, resources=resources, selection=marts)
    assert final.success
    with duckdb.connect(str(warehouse_file), read_only=True) as connection:
        rows = connection.sql("FROM experiment_results").to_arrow_table().to_pylist()
    return {"runs": runs, "final": final, "rows": rows, "warehouse": warehouse_file, "rest": rest_requests}


def find(rows: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [row for row in rows if all(row[key] == value for key, value in where.items())]


@pytest.mark.integration
def test_metadata_comes_from_the_rest_api_and_a_forbidden_project_is_skipped(
    world: World, sandbox_platform: dict[str, Any]
) -> None:
    metadata = materialized_metadata(sandbox_platform["runs"][0], dg.AssetKey(["optimizely", "experiments"]))
    assert metadata["experiments"] == len(world.experiments)
    assert [skipped["id"] for skipped in metadata["skipped_projects"]] == ["21000000003"]
    assert any(path.startswith("/flags/v1/projects/21000000002/rules") for path in sandbox_platform["rest"])


@pytest.mark.integration
def test_results_carry_names_roles_weights_and_only_the_defined_metrics(
    world: World, sandbox_platform: dict[str, Any]
) -> None:
    rows = sandbox_platform["rows"]
    assert {row["experiment_name"] for row in rows} == {e.name for e in world.experiments}
    assert {row["metadata"] for row in rows} == {"ok"}
    checkout = find(rows, experiment_name="checkout_button_colour")
    assert {row["variation_name"] for row in checkout} == {"control", "green_button"}
    assert {(row["metric_name"], row["metric_role"]) for row in checkout} == {
        ("Purchase (unique per visitor)", "primary"),
        ("Revenue per visitor", "secondary"),
        ("Add to cart (unique per visitor)", "secondary"),
        ("Detail page view (count per session)", "secondary"),
        ("course_views", "guardrail"),
        ("cart_adds_per_product_view", "secondary"),
    }
    assert {row["planned_weight"] for row in checkout} == {0.5}
    [control] = find(checkout, metric_name="Purchase (unique per visitor)", is_control=True)
    assert (control["variation_name"], control["decision"]) == ("control", "baseline")
    [per_session] = find(checkout, metric_name="Detail page view (count per session)", is_control=False)
    assert per_session["decision"] == "not analysed" and "per session" in per_session["note"]
    [ratio] = find(checkout, metric_name="cart_adds_per_product_view", is_control=False)
    assert ratio["method"] == "sequential" and ratio["p_value"] is not None
    # The Feature Experimentation rule's baseline and the metrics file's metrics for it.
    layout = find(rows, experiment_name="course_page_layout", metric_role="primary", is_control=True)
    assert [row["variation_name"] for row in layout] == ["control"]
    assert (
        find(rows, experiment_name="course_page_layout", metric_name="quiz_attempts")[0]["metric_kind"]
        == "sum"
    )


@pytest.mark.integration
def test_the_planted_sample_ratio_mismatch_is_invalid_and_labelled_planted(
    sandbox_platform: dict[str, Any],
) -> None:
    pricing = find(sandbox_platform["rows"], experiment_name="pricing_banner")
    assert {row["decision"] for row in pricing} == {"invalid: sample-ratio mismatch"}
    assert all("Planted fault" in row["experiment_description"] for row in pricing)
    checks = check_results(sandbox_platform["final"])
    mismatch = checks["no_sample_ratio_mismatch"]
    assert not mismatch.passed
    assert "pricing_banner" in (mismatch.description or "") and "Planted fault" in (
        mismatch.description or ""
    )
    assert checks["experiment_metadata_present"].passed
    # Only Optimizely is loaded here: the metrics over Amplitude and tracking events are named.
    unseen = checks["metric_events_seen"]
    assert not unseen.passed
    assert "course_views (checkout_button_colour): amplitude course_view" in (unseen.description or "")
    assert "tracking kinesinlms.course.content.page_view" in (unseen.description or "")
    assert checks["sandbox_planted_truth"].passed, checks["sandbox_planted_truth"].metadata["problems"].value


@pytest.mark.integration
def test_dagit_and_the_cli_show_the_same_summary_by_name(
    world: World, sandbox_platform: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    metadata = materialized_metadata(sandbox_platform["final"], RESULTS)
    dagit = metadata["experiment: checkout_button_colour"]
    assert (
        main(
            [
                "experiments",
                "results",
                "checkout_button_colour",
                "--warehouse",
                str(sandbox_platform["warehouse"]),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.strip()
    assert printed == dagit.strip()
    assert "### checkout_button_colour (9300000001)" in printed
    assert "Primary metric **Purchase (unique per visitor)**" in printed
    assert (
        main(["experiments", "results", "9300000003", "--warehouse", str(sandbox_platform["warehouse"])]) == 0
    )
    assert "Planted fault" in capsys.readouterr().out
    assert main(["experiments", "results", "nope", "--warehouse", str(sandbox_platform["warehouse"])]) == 2
    names = ", ".join(sorted(experiment.name for experiment in world.experiments))
    assert f"there are: {names}" in capsys.readouterr().err


@pytest.mark.integration
def test_units_match_the_exposed_people(world: World, sandbox_platform: dict[str, Any]) -> None:
    with duckdb.connect(str(sandbox_platform["warehouse"]), read_only=True) as connection:
        exposed = connection.execute(
            "SELECT experiment_id, count(DISTINCT person_key) FROM experiment_exposures "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
        views = {row[0] for row in connection.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    units = {}
    for row in find(sandbox_platform["rows"], metric_role="primary"):
        units[row["experiment_id"]] = units.get(row["experiment_id"], 0) + row["units"]
    # Everyone who met an experiment on either day is one of its units (no holdbacks in the sandbox).
    met = {
        experiment.id: {
            person.user_id
            for day in map(dt.date.fromisoformat, DAYS)
            for person in world.active_people(day)
            if world.meets(experiment, person, day)
        }
        for experiment in world.experiments
    }
    assert sorted(units.items()) == exposed
    assert dict(exposed) == {experiment_id: len(people) for experiment_id, people in met.items()}
    assert {"experiment_exploration", "optimizely_experiments", "optimizely_experiment_metrics"} <= views


@pytest.mark.integration
def test_cuped_finds_the_planted_habit_and_the_aa_test_has_its_eight_metrics(
    sandbox_platform: dict[str, Any],
) -> None:
    """lesson_reminders plants a persistent habit (lessons per day, each learner at their own rate):
    units first exposed on the second day have the first day as history, and CUPED takes variance out
    of the lift. The A/A test is analysed on all eight of its metrics, each corrected with the others."""
    [lessons] = find(
        sandbox_platform["rows"], experiment_name="lesson_reminders", metric_role="primary", is_control=False
    )
    assert lessons["metric_kind"] == "count" and lessons["variance_reduction"] > 0
    aa = [
        row
        for row in find(sandbox_platform["rows"], experiment_name="footer_copy_aa")
        if not row["is_control"]
    ]
    assert len({row["metric_name"] for row in aa}) == 8
    assert all(row["corrected_p_value"] >= row["p_value"] for row in aa if row["p_value"] is not None)
