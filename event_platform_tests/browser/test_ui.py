"""The Dagster UI in a real browser: `event-platform sandbox -- dagster dev`, driven by headless Chromium.

Checks that every group's asset graph shows every asset of the Definitions, then launches one
partition of one asset from its page and waits for the run to succeed. Screenshots and the
server's log are kept under test-artifacts/browser/ (gitignored) for a look after the run.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright

from event_platform.demo import last_complete_days
from event_platform_tests.conftest import REPO
from event_platform_tests.debian import PackageUnavailable, apt_install
from event_platform_tests.deploy.postgres import free_port

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
UI_ASSET = ["tracking", "events"]
"""Materialized from the UI: it reads what the sandbox's tracker landed, so a day takes seconds."""
SANDBOX_DAYS = 1
"""Only the latest complete day (the sandbox's choice too): the partition launched from the UI."""
SERVER_START_SECONDS = 120
RUN_SECONDS = 120


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


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`event-platform sandbox -- dagster dev` on a free port, a temp DAGSTER_HOME and a temp lake."""
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EVENT_PLATFORM_LAKE": str(root / "lake"),
        "EVENT_PLATFORM_WAREHOUSE": str(root / "warehouse.duckdb"),
    }
    bin_dir = Path(sys.executable).parent
    sandbox = [str(bin_dir / "event-platform"), "sandbox", "--days", str(SANDBOX_DAYS), "--"]
    dev = [str(bin_dir / "dagster"), "dev", "--workspace", "workspace.yaml", "--host", "127.0.0.1"]
    command = [*sandbox, *dev, "--port", str(port)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "dagster-dev.log"
    with log.open("wb") as output:
        # A session of its own, so the teardown stops the sandbox, dagster dev and their children together.
        server = subprocess.Popen(
            command,
            cwd=REPO,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            yield url, wait_for_code_location(url, server, log)
        finally:
            stop(server)


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


def test_asset_graph_and_a_materialization_from_the_ui(dagster_dev: tuple[str, str]) -> None:
    chromium = ensure_chromium()
    url, location = dagster_dev
    expected = assets_by_group()
    partition = last_complete_days(SANDBOX_DAYS)[-1].isoformat()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            for group, names in sorted(expected.items()):
                page.goto(f"{url}/locations/{location}/asset-groups/{group}")
                dismiss_community_prompt(page)
                nodes = page.locator("[class*='AssetNode_assetName']")
                expect(nodes).to_have_count(len(names))
                page.screenshot(path=ARTIFACTS / f"asset-graph-{group}.png")
                assert set(nodes.all_inner_texts()) == names, group

            page.goto(f"{url}/assets/{'/'.join(UI_ASSET)}")
            dismiss_community_prompt(page)
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
                expect(page.get_by_text("Success", exact=True).first).to_be_visible(
                    timeout=RUN_SECONDS * 1000
                )
            finally:
                page.screenshot(path=ARTIFACTS / "materialization-run.png", full_page=True)
        finally:
            browser.close()

    status = graphql(
        url, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status tags {{ key value }} }} }} }}'
    )
    run = status["runOrError"]
    assert run["status"] == "SUCCESS", json.dumps(run)
    assert {"key": "dagster/partition", "value": partition} in run["tags"]


def dismiss_community_prompt(page: Page) -> None:
    """The UI greets a new browser with a newsletter dialog that covers the page; once per browser."""
    with contextlib.suppress(PlaywrightError):
        page.get_by_role("button", name="Skip").click(timeout=3_000)
