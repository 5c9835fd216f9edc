"""optimizely/decisions and optimizely/conversions materialized through Dagster against the sandbox."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from event_platform.defs.empty_days import NOT_EMPTY
from event_platform.lake import delta
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.settings import MissingSettingsError
from event_platform.sources.optimizely.defs.assets import conversions, decisions
from event_platform.sources.optimizely.defs.checks import (
    FILES_LANDED,
    ROWS_RECONCILE,
    SCHEMA_MATCHES_E3,
    SUCCESS_MARKER,
)
from event_platform.sources.optimizely.defs.resources import OptimizelyResource, optimizely_resource
from event_platform.sources.optimizely.load import raw_dir
from event_platform.sources.optimizely.schema import CONVERSIONS, DECISIONS, E3_TYPES
from event_platform_tests.conftest import table_counts, table_records

DAYS = (dt.date(2026, 11, 1), dt.date(2026, 11, 2))


def resources(sandbox: OptimizelySandbox, lake: LakeResource, token: str | None = None) -> dict[str, Any]:
    return {
        "lake": lake,
        "io_manager": ParquetLakeIOManager(lake=lake),
        "optimizely": OptimizelyResource(
            api_token=token or sandbox.token,
            auth_url=sandbox.auth_url,
            s3_endpoint_url=sandbox.s3_endpoint_url,
            pseudonym_key="test-pseudonym-key",
        ),
    }


def materialize(
    sandbox: OptimizelySandbox,
    lake: LakeResource,
    day: dt.date,
    assets: tuple[dg.AssetsDefinition, ...] = (decisions, conversions),
    **kwargs: Any,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        partition_key=day.isoformat(),
        resources=resources(sandbox, lake, **kwargs),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def metadata_value(result: dg.ExecuteInProcessResult, asset: str, name: str) -> Any:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset]
    return event.materialization.metadata[name].value


@pytest.mark.integration
def test_two_days_of_both_assets_and_their_checks(
    e3_sandbox: OptimizelySandbox, lake_resource: LakeResource
) -> None:
    published = {day: e3_sandbox.publish_day(day) for day in DAYS}
    lake = lake_resource.lake()

    for day in DAYS:
        result = materialize(e3_sandbox, lake_resource, day)

        assert result.success
        checks = {
            (c.asset_key.path[-1], c.check_name): c.passed for c in result.get_asset_check_evaluations()
        }
        assert checks == {
            (asset, check): True
            for asset in ("decisions", "conversions")
            for check in (FILES_LANDED, ROWS_RECONCILE, SCHEMA_MATCHES_E3, SUCCESS_MARKER, NOT_EMPTY)
        }
        # Every result belongs to the day it checked.
        assert {c.partition for c in result.get_asset_check_evaluations()} == {day.isoformat()}
        for asset, e3, schema in (
            ("decisions", "decisions", DECISIONS),
            ("conversions", "events", CONVERSIONS),
        ):
            rows = delta.read(lake, f"optimizely/{asset}", [day.isoformat()]).to_table()
            assert rows.schema.names[: len(schema)] == schema.names
            assert rows.num_rows == metadata_value(result, asset, "dagster/row_count")
            assert rows.num_rows == published[day][e3] - metadata_value(result, asset, "duplicates")
            assert pc.count_distinct(pc.utf8_lower(rows["uuid"])).as_py() == rows.num_rows
            addresses = set(rows["user_ip"].drop_null().to_pylist())
            assert addresses and all(address.startswith("pii1:") for address in addresses)
            assert lake.read_manifest(raw_dir(E3_TYPES[e3], day)) is not None
        per_experiment = table_counts(metadata_value(result, "decisions", "rows_per_experiment"))
        assert set(per_experiment) == {experiment.id for experiment in e3_sandbox.world.experiments}
        assert sum(per_experiment.values()) == metadata_value(result, "decisions", "dagster/row_count")
        assert "purchase" in table_counts(metadata_value(result, "conversions", "rows_per_event"))
        assert metadata_value(result, "conversions", "processing_lag_max").endswith((" s", " ms", " min"))
        assert metadata_value(result, "decisions", "raw_size").endswith(("kB", "MB"))
        preview = table_records(metadata_value(result, "decisions", "preview"))
        assert len(preview) == 5 and "uuid" in preview[0]


@pytest.mark.integration
def test_a_corrupt_part_fails_the_run_by_name_and_the_previous_version_stays(
    e3_sandbox: OptimizelySandbox, lake_resource: LakeResource
) -> None:
    day = DAYS[0]
    e3_sandbox.publish_day(day)
    assert materialize(e3_sandbox, lake_resource, day, (decisions,)).success
    lake = lake_resource.lake()
    typed = delta.open_table(lake, "optimizely/decisions")
    before = (typed and typed.version(), lake.read_manifest(raw_dir(E3_TYPES["decisions"], day)))
    name = "experiment=9300000001/part-00007-deadbeef.c000.snappy.parquet"
    e3_sandbox.put_object(f"type=decisions/date={day}/{name}", b"PAR1 this is not parquet PAR1")

    result = materialize(e3_sandbox, lake_resource, day, (decisions,))

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert name in str(failure.step_failure_data.error)
    typed = delta.open_table(lake, "optimizely/decisions")
    after = (typed and typed.version(), lake.read_manifest(raw_dir(E3_TYPES["decisions"], day)))
    assert after[0] == before[0] is not None, "the typed table stays at its version"
    assert after[1] is not None and before[1] is not None and after[1].version == before[1].version


@pytest.mark.integration
def test_a_missing_column_fails_with_an_error_check(
    e3_sandbox: OptimizelySandbox, lake_resource: LakeResource
) -> None:
    day = DAYS[0]
    narrowed = pa.schema([field for field in DECISIONS if field.name != "variation_id"])
    buffer = io.BytesIO()
    pq.write_table(narrowed.empty_table(), buffer)
    e3_sandbox.put_object(
        f"type=decisions/date={day}/experiment=1/part-00000-a.c000.snappy.parquet", buffer.getvalue()
    )
    e3_sandbox.put_object(f"type=decisions/date={day}/_SUCCESS", b"")

    result = materialize(e3_sandbox, lake_resource, day, (decisions,))

    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.severity) == (
        SCHEMA_MATCHES_E3,
        False,
        dg.AssetCheckSeverity.ERROR,
    )
    assert "variation_id" in str(check.description)


def test_without_settings_the_resource_names_the_missing_variables() -> None:
    with pytest.raises(MissingSettingsError, match="OPTIMIZELY_API_TOKEN or OPTIMIZELY_ACCOUNT_ID"):
        OptimizelyResource().client()


@pytest.mark.integration
def test_the_token_never_reaches_logs_metadata_or_errors(
    e3_sandbox: OptimizelySandbox, lake_resource: LakeResource
) -> None:
    e3_sandbox.token = "pat-the-real-secret-4711"
    e3_sandbox.publish_day(DAYS[0])

    succeeded = materialize(e3_sandbox, lake_resource, DAYS[0], (decisions,))
    refused = materialize(e3_sandbox, lake_resource, DAYS[0], (decisions,), token="pat-a-wrong-secret-0815")

    assert succeeded.success and not refused.success
    for result in (succeeded, refused):
        for event in result.all_events:
            shown = repr(event)
            assert "pat-the-real-secret-4711" not in shown
            assert "pat-a-wrong-secret-0815" not in shown
    failures = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures and all("403" in str(e.step_failure_data.error) for e in failures)


def test_the_resource_comes_from_the_environment_with_the_token_as_an_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPTIMIZELY_API_TOKEN", "pat-from-the-environment")
    monkeypatch.setenv("OPTIMIZELY_AUTH_URL", "http://127.0.0.1:9/v2/export/credentials")
    monkeypatch.setenv("OPTIMIZELY_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OPTIMIZELY_ACCOUNT_ID", "123")
    monkeypatch.setenv("OPTIMIZELY_BUCKET", "my-export")

    resource = optimizely_resource()

    assert isinstance(resource, OptimizelyResource)
    assert resource.api_token == dg.EnvVar("OPTIMIZELY_API_TOKEN")
    assert (resource.auth_url, resource.s3_endpoint_url, resource.account_id, resource.bucket) == (
        "http://127.0.0.1:9/v2/export/credentials",
        "http://127.0.0.1:9",
        "123",
        "my-export",
    )
    assert "pat-from-the-environment" not in repr(resource)
