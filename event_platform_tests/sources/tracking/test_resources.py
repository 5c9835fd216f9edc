import argparse
from pathlib import Path

import pytest

from event_platform.lake.filesystem import Lake
from event_platform.sandbox.loopback import serve
from event_platform.settings import MissingSettingsError
from event_platform.sources.tracking import commands
from event_platform.sources.tracking.collector import Collector
from event_platform.sources.tracking.defs.resources import TrackingResource, tracking_resource
from event_platform.sources.tracking.settings import TrackingSettings
from event_platform_tests.sources.tracking.conftest import FAST_COLLECTOR, landed_events


def test_a_missing_setting_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(MissingSettingsError, match="TRACKING_COLLECTOR_URL"):
        TrackingResource(spool_dir=str(tmp_path)).tracker()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    types_file = tmp_path / "types.json"
    types_file.write_text('{"acme.thing": {"fields": {}}}')
    monkeypatch.setenv("TRACKING_COLLECTOR_URL", "http://collector.internal:8400")
    monkeypatch.setenv("TRACKING_EVENT_TYPES_FILE", str(types_file))
    monkeypatch.setenv("TRACKING_FLUSH_AGE_SECONDS", "0.25")
    monkeypatch.setenv("TRACKING_SEEN_UUIDS", "1000")
    resource = tracking_resource()
    assert resource.collector_url == "http://collector.internal:8400"
    assert resource.spool_dir == "./data/tracking-spool"
    assert "acme.thing" in resource.registry()
    settings = commands.collector_settings(TrackingSettings.read())
    assert (settings.flush_age_seconds, settings.seen_uuids, settings.max_event_bytes) == (0.25, 1000, 65536)


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_a_bad_number_names_its_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TRACKING_FLUSH_BYTES", value)
    with pytest.raises(ValueError, match="TRACKING_FLUSH_BYTES"):
        commands.collector_settings(TrackingSettings.read())


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_serve_takes_host_and_port() -> None:
    arguments = parse(["tracking", "serve", "--host", "0.0.0.0", "--port", "9000"])
    assert (arguments.host, arguments.port, arguments.run) == ("0.0.0.0", 9000, commands._serve)
    assert not arguments.access_log  # a line per request costs a tenth of the CPU; --access-log asks for it
    assert parse(["tracking", "serve", "--access-log"]).access_log


def test_track_sends_one_event_through_a_tracker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(Collector(lake, settings=FAST_COLLECTOR).app) as server:
        monkeypatch.setenv("TRACKING_COLLECTOR_URL", server.url)
        monkeypatch.setenv("TRACKING_SPOOL_DIR", str(tmp_path / "spool"))
        arguments = parse(
            [
                "tracking",
                "track",
                "kinesinlms.course.home.page_view",
                "learner-000001",
                "--data",
                '{"page": "overview"}',
                "--course-slug",
                "intro-data",
            ]
        )
        assert arguments.run(arguments) == 0
        refused = parse(["tracking", "track", "kinesinlms.course.home.page_view", "ada@example.org"])
        assert refused.run(refused) == 2
    output = capsys.readouterr().out
    assert "delivered" in output and "refused: " in output and "ada@example.org" not in output
    [event] = landed_events(lake, Collector(lake).clock().date())
    assert (event["event_data"], event["course_slug"]) == ({"page": "overview"}, "intro-data")
