"""deploy/dagster.postgres.yaml on a real PostgreSQL server, with compute logs on S3 (moto).

A run is executed against the instance the file describes, then read back through a second instance
opened from the same file: runs, event logs and compute logs all live outside the process.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from event_platform_tests.conftest import REPO
from event_platform_tests.debian import PackageUnavailable
from event_platform_tests.deploy.postgres import PostgresServer, running_server

PRODUCTION_INSTANCE = REPO / "deploy" / "dagster.postgres.yaml"
LOGS_BUCKET = "dagster-compute-logs"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    try:
        with running_server() as server:
            yield server
    except PackageUnavailable as unavailable:
        pytest.skip(f"No PostgreSQL server for the production-instance test: {unavailable}")


@pytest.fixture
def production_home(
    tmp_path: Path, postgres: PostgresServer, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.postgres.yaml, its variables set to the test servers."""
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=LOGS_BUCKET)
    for name, value in {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": postgres.database,
        "DAGSTER_PG_USERNAME": postgres.username,
        "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        "DAGSTER_COMPUTE_LOGS_BUCKET": LOGS_BUCKET,
        "DAGSTER_COMPUTE_LOGS_PREFIX": "event-platform",
        "AWS_ENDPOINT_URL_S3": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_INSTANCE, home / "dagster.yaml")
    return home


@dg.asset
def hello() -> dg.MaterializeResult:
    print("hello from a step")  # lands in the compute log on S3
    return dg.MaterializeResult(metadata={"greeting": "hello"})


hello_job = dg.define_asset_job("hello_job", selection=[hello])


def hello_job_def() -> dg.JobDefinition:
    return dg.Definitions(assets=[hello], jobs=[hello_job]).resolve_job_def("hello_job")


@pytest.mark.integration
def test_a_run_is_stored_in_postgres_and_logged_to_s3(production_home: Path, moto_server: str) -> None:
    with dg.DagsterInstance.from_config(str(production_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
        # In process: the run's storage and logs are under test here, not the multiprocess executor.
        in_process = {"execution": {"config": {"in_process": {}}}}
        with dg.execute_job(dg.reconstructable(hello_job_def), instance, run_config=in_process) as result:
            assert result.success
            run_id = result.run_id

    # A second instance, as the webserver on another machine would open it.
    with dg.DagsterInstance.from_config(str(production_home)) as reader:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        materialization = reader.get_latest_materialization_event(dg.AssetKey("hello"))
        assert materialization is not None and materialization.run_id == run_id

    logs = boto3.client("s3", endpoint_url=moto_server).list_objects_v2(
        Bucket=LOGS_BUCKET, Prefix="event-platform/"
    )
    assert logs.get("KeyCount", 0) > 0
