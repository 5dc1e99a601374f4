"""End to end in headless Chromium: ``fedsynth serve``, then log in, upload the MDS cohort, fix a
column kind, run a generator, watch it finish, read the report, download the synthetic CSV.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``), driven by Playwright
with ``executable_path``: no browser is downloaded. A screenshot of each page is saved in the
test's output folder (``tmp_path/screenshots``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import DataWarning
from fedsynth.release import load_public_key, verify_bundle

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("FEDSYNTH_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.is_file():
        pytest.skip(
            f"the browser test needs Chromium at {CHROMIUM}, which is missing (install Debian's "
            "'chromium' package: apt-get install chromium)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs Playwright (pip install playwright)"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, str]]:
    """``fedsynth serve`` in a process of its own: ``(address, first account's password)``."""
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "import sys; from fedsynth.cli import main; sys.exit(main())",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        printed = []
        password = None
        deadline = time.monotonic() + 60
        while password is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            printed.append(line)
            found = re.search(r"first account: admin, password: (\S+)", line)
            password = found.group(1) if found else None
        assert password, f"fedsynth serve printed no first account: {''.join(printed)}"
        assert f"http://127.0.0.1:{port}/" in "".join(printed)
        address = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{address}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield address, password
    finally:
        process.send_signal(signal.SIGINT)  # a graceful stop: workers end, runs are kept
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_whole_pipeline_in_a_browser(chromium, server, tmp_path):
    address, password = server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        cohort = fedsynth.datasets.mds_cohort(n=500, sites=3, seed=0)
    csv = tmp_path / "mds_cohort.csv"
    cohort.to_csv(csv, index=False)

    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Log in.
    page.goto(f"{address}/")
    assert "/login" in page.url
    page.screenshot(path=shots / "01-login.png")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    page.wait_for_selector("h1:has-text('Datasets')")
    page.screenshot(path=shots / "02-datasets.png")

    # Upload the MDS cohort: the inferred metadata is shown as an editable table.
    page.set_input_files("input[name=file]", str(csv))
    page.click("button:has-text('Upload')")
    page.wait_for_selector("table.metadata")
    assert page.locator("table.metadata tbody tr").count() == cohort.shape[1]
    assert "os_months (duration) / os_status (event)" in page.inner_text(".roles")
    assert "MDS-00001" not in page.content()  # identifiers (and so rows) are never shown
    page.screenshot(path=shots / "03-dataset.png", full_page=True)

    # Fix one column kind: the karyotype flag is a category here, not a 0/1 measurement.
    row = page.locator('tr[data-column="complex_karyotype"]')
    assert row.locator("select").input_value() == "binary"
    row.locator("select").select_option("categorical")
    page.click("#save-metadata")
    page.wait_for_selector("#saved")
    row = page.locator('tr[data-column="complex_karyotype"]')
    assert row.locator("select").input_value() == "categorical"
    page.screenshot(path=shots / "04-metadata-fixed.png", full_page=True)

    # Run a generator.
    page.click("text=New run on this dataset")
    page.wait_for_selector("#run-form")
    page.select_option("#generator", "gaussian_copula")
    page.fill("#rows", "300")
    page.uncheck("input[name=families][value=utility]")  # the slowest family, not needed here
    page.screenshot(path=shots / "05-new-run.png", full_page=True)
    page.click("#start-run")
    page.wait_for_selector("#run[data-run]")
    page.screenshot(path=shots / "06-run-progress.png", full_page=True)

    # Watch the progress: the page follows the run and reloads when it ends.
    page.wait_for_selector("#report-link", timeout=180_000)
    assert page.inner_text("#status") == "done"
    assert page.locator("#progress").get_attribute("value") in ("1", "1.0")
    assert "SAFE report:" in page.inner_text("#log")
    page.screenshot(path=shots / "07-run-done.png", full_page=True)

    # The report, with its plots.
    page.click("#report-link")
    page.wait_for_selector("#scores")
    report = page.frame_locator("#report")
    figures = report.locator("figure img")
    figures.first.wait_for()
    assert figures.count() >= 3
    for index in range(figures.count()):
        image = figures.nth(index)
        image.scroll_into_view_if_needed()
        assert image.is_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    if page.locator("#override-form").count():  # privacy failed: record why it is released
        page.fill("#override-form textarea", "released for the end-to-end test only")
        page.check("#override-form input[name=confirm]")
        page.click("#override-form button")
        page.wait_for_selector("#override-note")
    # A tall viewport instead of a full-page shot, which leaves the sandboxed report blank.
    page.set_viewport_size({"width": 1280, "height": 1700})
    report.locator("h1").scroll_into_view_if_needed()  # back to the top of the report
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "08-report.png")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Download the synthetic CSV and read it back.
    with page.expect_download() as download:
        page.click('a[data-file="synthetic.csv"]')
    saved = tmp_path / "synthetic.csv"
    download.value.save_as(saved)
    synthetic = pd.read_csv(saved)
    assert len(synthetic) == 300
    assert list(synthetic.columns) == [c for c in cohort.columns if c != "patient_id"]
    assert set(synthetic["complex_karyotype"].unique()) <= {0, 1}

    # The steward approves the release: the signed bundle verifies with the server's key.
    page.fill("#approve-form textarea", "approved for the end-to-end test")
    page.check("#approve-form input[name=confirm]")
    page.click("#approve-form button")
    page.wait_for_selector("#approval-note")
    assert "approved for the end-to-end test" in page.inner_text("#approval-note")
    page.locator("#release").scroll_into_view_if_needed()
    page.screenshot(path=shots / "09-release-approved.png")
    with page.expect_download() as download:
        page.click("#download-release")
    bundle = tmp_path / "release.zip"
    download.value.save_as(bundle)
    key = tmp_path / "server.pub"
    key.write_text(page.request.get(f"{address}/api/release-key").text())
    verified = verify_bundle(bundle, load_public_key(key))
    assert verified.approval["name"] == "admin" and "synthetic.csv" in verified.files

    page.goto(f"{address}/runs")
    page.screenshot(path=shots / "10-runs.png", full_page=True)
    page.goto(f"{address}/audit")
    audit = page.inner_text("#audit")
    for action in ("upload", "metadata edited", "run created", "download", "release approved"):
        assert action in audit
    assert verified.manifest_sha256 in audit
    page.screenshot(path=shots / "11-audit.png", full_page=True)
    context.close()
    assert not errors, errors  # no script error, no resource refused by the page's policy
    assert len(list(shots.glob("*.png"))) == 11
