"""The Dagster UI in a real browser after the demo: `event-platform demo`, then `event-platform sandbox --
dagster dev` on the same instance, driven by headless Chromium.

The demo's own output holds no warning. In the UI: every group's asset graph shows every asset of the
Definitions; the catalog shows every daily asset filled over the demo's days; a check's page shows the
day its result belongs to; the runs list shows each source run's day; and one partition launched from
an asset's page succeeds. Screenshots, the demo's output and the server's log are kept under
test-artifacts/browser/ (gitignored) for a look after the run.
"""

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright

from event_platform.demo import last_complete_days
from event_platform.sandbox.world import World
from event_platform_tests.conftest import REPO
from event_platform_tests.debian import PackageUnavailable, apt_install
from event_platform_tests.deploy.postgres import free_port

pytestmark = [pytest.mark.browser, pytest.mark.integration]
# The UI renders from GraphQL answers that a loaded machine gives slowly; Playwright's default is 5 s.
expect.set_options(timeout=60_000)

ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
UI_ASSET = ["tracking", "events"]
"""Materialized from the UI: it reads what the sandbox's tracker landed, so a day takes seconds."""
DAYS = 2
"""The demo's days, and the sandbox's behind the UI: the partitions start at the first of them."""
DEMO_SECONDS = 1500
SERVER_START_SECONDS = 120
RUN_SECONDS = 120
CHECKED_ASSET, CHECK = "optimizely/conversions", "rows_reconcile"
WARNING_LINE = re.compile(r"Warning\b|\bWARNING\b|warnings\.warn")
"""Python's `FooWarning: …`, a logger's WARNING, or the source line `warnings.warn` prints."""


def ensure_chromium() -> Path:
    """Debian's chromium, installed when absent; skip where it can't be."""
    if not CHROMIUM.exists():
        try:
            apt_install("chromium")
        except PackageUnavailable as unavailable:
            pytest.skip(str(unavailable))
    return CHROMIUM


def graphql(url: str, query: str) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


LOCATIONS_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def wait_for_code_location(url: str, server: subprocess.Popen[bytes], log: Path) -> str:
    """Wait until the webserver answers and the code location has loaded; its name."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster dev exited with {server.returncode}; see {log}")
        try:
            entries = graphql(url, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
        except (requests.RequestException, KeyError, TypeError):
            entries = []
        loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
        if loaded:
            [entry] = loaded
            if entry["locationOrLoadError"]["__typename"] == "PythonError":
                pytest.fail(f"The code location failed to load: {entry['locationOrLoadError']['message']}")
            return entry["name"]
        time.sleep(1)
    pytest.fail(f"dagster dev did not serve a loaded code location in {SERVER_START_SECONDS}s; see {log}")


@dataclass(frozen=True)
class Demo:
    home: Path
    environment: dict[str, str]
    output: str
    days: list[str]


def days_arguments(days: list[str]) -> list[str]:
    """`--days N --last-day DAY`: exactly `days`, for the demo and for the sandbox behind the UI. Chosen
    once: each command choosing for itself would choose a day later once the clock passed Amplitude's
    export time for yesterday in between, and the UI's partitions would start a day after the demo's."""
    return ["--days", str(len(days)), "--last-day", days[-1]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """`event-platform demo` into a temp DAGSTER_HOME, lake and warehouse, as `make demo` runs it, over
    the last complete days as they are when it starts."""
    root = tmp_path_factory.mktemp("demo")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EVENT_PLATFORM_LAKE": str(root / "lake"),
        "EVENT_PLATFORM_WAREHOUSE": str(root / "warehouse.duckdb"),
    }
    days = [day.isoformat() for day in last_complete_days(DAYS)]
    command = [str(Path(sys.executable).parent / "event-platform"), "demo", *days_arguments(days)]
    finished = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=DEMO_SECONDS, check=False
    )
    output = finished.stdout + finished.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "demo-output.txt").write_text(output)
    assert finished.returncode == 0, output[-3000:]
    return Demo(home, environment, output, days)


def test_the_demo_prints_no_warning(demo: Demo) -> None:
    assert [line for line in demo.output.splitlines() if WARNING_LINE.search(line)] == []
    assert "COMPLETED_SUCCESS" in demo.output and "http://127.0.0.1:3000" in demo.output


@pytest.fixture(scope="module")
def dagster_dev(demo: Demo) -> Iterator[tuple[str, str]]:
    """`event-platform sandbox -- dagster dev` on a free port, on the demo's instance, lake and days, started
    inside DAGSTER_HOME as `make ui` starts it."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    sandbox = [str(bin_dir / "event-platform"), "sandbox", *days_arguments(demo.days), "--"]
    dev = [
        str(bin_dir / "dagster"),
        "dev",
        "--workspace",
        str(REPO / "workspace.yaml"),
        "--host",
        "127.0.0.1",
    ]
    command = [*sandbox, *dev, "--port", str(port)]
    log = ARTIFACTS / "dagster-dev.log"
    with log.open("wb") as output:
        # A session of its own, so the teardown stops the sandbox, dagster dev and their children together.
        server = subprocess.Popen(
            command,
            cwd=demo.home,
            env=demo.environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            yield url, wait_for_code_location(url, server, log)
        finally:
            stop(server)
    assert "will not be used" not in log.read_text(), "dagster dev found a second dagster.yaml"


def stop(server: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    except ProcessLookupError:
        pass


def assets_by_group() -> dict[str, set[str]]:
    """What the asset graph must show: each group's assets, by the name their node displays."""
    from event_platform.definitions import defs

    graph = defs().resolve_asset_graph()
    groups: dict[str, set[str]] = defaultdict(set)
    for key in graph.materializable_asset_keys:
        groups[graph.get(key).group_name].add(key.path[-1])
    return groups


def shows(label: str, name: str) -> bool:
    """Whether a node's label is `name`, or `name` cut in the middle (`experim…_exposures`), as the UI
    labels nodes when a big group is drawn zoomed out."""
    prefix, ellipsis, suffix = label.partition("…")
    if not ellipsis:
        return label == name
    return len(name) > len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix)


def test_the_ui_after_the_demo(dagster_dev: tuple[str, str], demo: Demo) -> None:
    chromium = ensure_chromium()
    url, location = dagster_dev
    expected = assets_by_group()
    partition = demo.days[-1]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        dismiss_community_prompt(page)
        try:
            # Tall enough for a whole group's graph: the UI renders only the nodes in view.
            page.set_viewport_size({"width": 1600, "height": 3200})
            for group, names in sorted(expected.items()):
                page.goto(f"{url}/locations/{location}/asset-groups/{group}")
                nodes = page.locator("[class*='AssetNode_assetName']")
                try:
                    expect(nodes).to_have_count(len(names))
                finally:
                    page.screenshot(path=ARTIFACTS / f"asset-graph-{group}.png")
                labels = nodes.all_inner_texts()
                assert sorted(name for name in names for label in labels if shows(label, name)) == sorted(
                    names
                ), (group, labels)

            page.set_viewport_size({"width": 1600, "height": 1000})
            catalog_shows_every_day_filled(page, url, demo.days)
            check_page_shows_its_day(page, url, partition)
            runs_list_shows_each_source_runs_day(page, url, demo.days)
            experiment_results_page_shows_names(page, url)
            run_id = materialize_from_the_ui(page, url, partition)
        finally:
            browser.close()

    status = graphql(
        url, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status tags {{ key value }} }} }} }}'
    )
    run = status["runOrError"]
    assert run["status"] == "SUCCESS", json.dumps(run)
    assert {"key": "dagster/partition", "value": partition} in run["tags"]


def catalog_shows_every_day_filled(page: Page, url: str, days: list[str]) -> None:
    """Each daily asset's status reads "All" of the demo's days: partitions start where the data does.
    Before Amplitude's export of yesterday is ready (03:00 UTC) the demo stops the day before, and
    yesterday's partition is truly missing: then the UI must count it, and not call the asset complete.
    The count holds when the clock passes 03:00 between the demo and now: the sandbox behind the UI was
    given the demo's days, so the partitions still start at the demo's first day."""
    from event_platform.definitions import defs

    graph = defs().resolve_asset_graph()
    daily = [key.to_user_string() for key in graph.materializable_asset_keys if graph.get(key).partitions_def]
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    not_yet_exported = (yesterday - dt.date.fromisoformat(days[-1])).days
    page.goto(f"{url}/assets")
    for name in daily:
        link = page.locator(f"a[href='/assets/{name}']")
        # The innermost element holding the asset's link and its partitions' status: its row.
        row = page.locator("div").filter(has=link).filter(has_text="partitions").last
        expect(row).to_contain_text(f"{DAYS + not_yet_exported} partitions")
        if not not_yet_exported:
            expect(row).to_contain_text("All")
    page.screenshot(path=ARTIFACTS / "catalog.png", full_page=True)


def check_page_shows_its_day(page: Page, url: str, day: str) -> None:
    """A check's latest result names the day it checked, not "Skipped" or "—"."""
    page.goto(f"{url}/assets/{CHECKED_ASSET}?view=checks")
    page.get_by_text(CHECK, exact=True).first.click()
    latest = (
        page.locator("section, div").filter(has_text="Latest execution").filter(has_text="Partition").last
    )
    expect(latest).to_contain_text(day)
    expect(latest).to_contain_text("Passed")
    page.screenshot(path=ARTIFACTS / "check.png", full_page=True)


def runs_list_shows_each_source_runs_day(page: Page, url: str, days: list[str]) -> None:
    page.goto(f"{url}/runs?show_runs_within_backfills=true")
    with contextlib.suppress(PlaywrightError):
        page.get_by_text("Show runs within backfills").click(timeout=5_000)
    for day in days:
        expect(page.get_by_text(f"partition: {day}").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "runs.png", full_page=True)


def experiment_results_page_shows_names(page: Page, url: str) -> None:
    """The results asset's page names every experiment (its summaries' headings)."""
    page.goto(f"{url}/assets/warehouse/experiment_results")
    for experiment in World().experiments:
        expect(page.get_by_text(experiment.name).first).to_be_visible()


def materialize_from_the_ui(page: Page, url: str, partition: str) -> str:
    """Launch one partition of UI_ASSET from its page; the run's id once it succeeded."""
    page.goto(f"{url}/assets/{'/'.join(UI_ASSET)}")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    partitions = dialog.locator("input[type=text]")
    partitions.fill(partition)
    partitions.press("Enter")
    dialog.get_by_role("button", name="Launch 1 run").click()
    page.get_by_role("link", name="View", exact=True).click()
    page.wait_for_url("**/runs/**")
    run_id = page.url.rstrip("/").split("/")[-1]
    try:
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_SECONDS * 1000)
    finally:
        page.screenshot(path=ARTIFACTS / "materialization-run.png", full_page=True)
    return run_id


def dismiss_community_prompt(page: Page) -> None:
    """The UI greets a new browser with a newsletter dialog that covers the page, whenever it loads."""
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda: page.get_by_role("button", name="Skip").click(),
    )
