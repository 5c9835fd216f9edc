"""`event-platform optimizely auth | paths | ls | load`: oevents' flags and outputs, minus its defects."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path

import pytest

from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sources.optimizely.commands import add_commands

DAY = dt.date(2026, 11, 1)


def run(*argv: str) -> int:
    """Parse and run like the `event-platform` CLI does, flags' defaults read from the environment now."""
    root = argparse.ArgumentParser(prog="event-platform")
    add_commands(root.add_subparsers(dest="command", required=True))
    arguments = root.parse_args(["optimizely", *argv])
    return int(arguments.run(arguments))


@pytest.fixture
def sandbox_env(e3_sandbox: OptimizelySandbox, monkeypatch: pytest.MonkeyPatch) -> OptimizelySandbox:
    for name, value in e3_sandbox.environment().items():
        monkeypatch.setenv(name, value)
    return e3_sandbox


def test_auth_prints_the_export_lines_of_oevents(
    sandbox_env: OptimizelySandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("auth") == 0

    lines = capsys.readouterr().out.splitlines()
    names = [line.split("=", 1)[0] for line in lines]
    assert names == [
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_SESSION_TOKEN",
        "export AWS_SESSION_EXPIRATION",
        "export S3_BASE_PATH",
    ]
    values = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    assert values["AWS_ACCESS_KEY_ID"] == sandbox_env.issued_access_keys[-1]
    assert re.fullmatch(r"\d{13}", values["AWS_SESSION_EXPIRATION"]), "epoch milliseconds, as the API gives"
    assert (
        values["S3_BASE_PATH"] == f"s3://{sandbox_env.bucket}/v1/account_id={sandbox_env.world.account_id}/"
    )


def test_auth_takes_the_token_flag_over_the_environment_and_explains_a_refusal(
    sandbox_env: OptimizelySandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("auth", "--token", "not-the-token") == 2

    error = capsys.readouterr().err
    assert "403" in error and "not-the-token" not in error


def test_auth_without_any_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPTIMIZELY_API_TOKEN", raising=False)

    assert run("auth") == 2
    assert "--token or set OPTIMIZELY_API_TOKEN" in capsys.readouterr().err


def test_paths_from_a_token_and_from_an_account_id(
    sandbox_env: OptimizelySandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = f"s3://{sandbox_env.bucket}/v1/account_id={sandbox_env.world.account_id}"
    assert run("paths") == 0
    assert capsys.readouterr().out.splitlines() == [f"{base}/type=decisions/", f"{base}/type=events/"]

    monkeypatch.delenv("OPTIMIZELY_API_TOKEN")
    assert run("paths", "--account-id", "123", "--bucket", "my-export") == 0
    assert capsys.readouterr().out.splitlines() == [
        "s3://my-export/v1/account_id=123/type=decisions/",
        "s3://my-export/v1/account_id=123/type=events/",
    ]


def test_ls_lists_the_folders_of_a_date_or_the_dates(
    sandbox_env: OptimizelySandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox_env.publish_day(DAY)

    assert run("ls", "--type", "decisions", "--date", DAY.isoformat()) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"experiment={experiment.id}/" for experiment in sandbox_env.world.experiments
    ]
    assert run("ls", "--type", "events") == 0
    assert capsys.readouterr().out.splitlines() == [f"date={DAY}/"]


def test_load_mirrors_the_tree_of_an_inclusive_range_for_one_event(
    sandbox_env: OptimizelySandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    for day in days:
        sandbox_env.publish_day(day)

    code = run(
        "load",
        "--type",
        "events",
        "--start",
        days[0].isoformat(),
        "--end",
        days[1].isoformat(),
        "--event",
        "purchase",
        "--output",
        str(tmp_path),
    )

    assert code == 0
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files and all(
        re.fullmatch(
            r"type=events/date=2026-11-0[12]/event=purchase/part-\d{5}-[0-9a-f-]{36}"
            r"\.c000\.snappy\.parquet",
            name,
        )
        for name in files
    )
    assert {name.split("/")[1] for name in files} == {"date=2026-11-01", "date=2026-11-02"}
    for name in files:
        assert (tmp_path / name).read_bytes() == sandbox_env.read_object(name)
    captured = capsys.readouterr()
    assert f"{len(files)} files" in captured.out
    assert "E3 events" in captured.err, "the progress bar goes to stderr"


def test_load_of_a_whole_date_keeps_the_success_marker_and_reads_the_output_from_the_environment(
    sandbox_env: OptimizelySandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox_env.publish_day(DAY)
    monkeypatch.setenv("OPTIMIZELY_DATA_DIR", str(tmp_path))

    assert run("load", "--type", "decisions", "--date", DAY.isoformat()) == 0

    assert (tmp_path / f"type=decisions/date={DAY}/_SUCCESS").exists()
    folders = sorted(p.name for p in (tmp_path / f"type=decisions/date={DAY}").iterdir() if p.is_dir())
    assert folders == [f"experiment={experiment.id}" for experiment in sandbox_env.world.experiments]
    assert not list(tmp_path.rglob("*.partial"))


def test_dates_are_compared_as_dates_not_as_epoch_strings(
    sandbox_env: OptimizelySandbox, tmp_path: Path
) -> None:
    """oevents compared '999907200' > '1000080000' as strings and refused this valid range."""
    assert (
        run(
            "load",
            "--type",
            "events",
            "--start",
            "2001-09-08",
            "--end",
            "2001-09-10",
            "--output",
            str(tmp_path),
        )
        == 0
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--type", "decisions", "--date", "2026-11-01", "--event", "purchase"],
            "--event selects conversions",
        ),
        (["--type", "events", "--date", "2026-11-01", "--experiment", "1"], "--experiment selects decisions"),
        (["--type", "events", "--start", "2026-11-02", "--end", "2026-11-01"], "is after --end"),
        (["--type", "events", "--start", "2026-11-02"], "both --start and --end"),
        (["--type", "events", "--date", "2026-11-31"], "is not a date"),
        (["--type", "clicks", "--date", "2026-11-01"], "invalid choice"),
        (
            ["--type", "events", "--date", "2026-11-01", "--event", "a", "--experiment", "1"],
            "not allowed with",
        ),
    ],
)
def test_load_refuses_what_oevents_wrongly_accepted(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        run("load", *argv, "--output", str(tmp_path))

    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_optimizely_load_refuses_a_key_that_climbs_out(
    sandbox_env: OptimizelySandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = DAY
    sandbox_env.publish_day(day)
    sandbox_env.put_object(
        sandbox_env.relative_key("decisions", day, "experiment=1/../../../../escaped.parquet"), b"x"
    )
    output = tmp_path / "out"

    code = run("load", "--type", "decisions", "--date", day.isoformat(), "--output", str(output))
    error = capsys.readouterr().err

    assert code == 2 and "experiment=1/../../../../escaped.parquet" in error and "'..'" in error
    assert not list(tmp_path.rglob("escaped.parquet"))
    assert not output.exists() or not list(output.rglob("*.parquet"))
