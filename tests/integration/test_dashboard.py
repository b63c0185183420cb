"""The job dashboard in a real browser (the system Chromium) against the running local stack."""

from __future__ import annotations

import io
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from infra.local.processes import wait_until
from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from shared import naming
from tests.features import write_feature_csv

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where the README's screenshot is refreshed from (docs/dashboard.png is a copy).
SCREENSHOT_COPY = REPO / ".byom" / "screenshots" / "dashboard.png"
# A key with markup in it: the dashboard must show it as text.
KEY = "input/dashboard <i>demo</i>.csv"
ROWS = 2000
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        # What `make test` does first (make browser); here for a suite run on its own.
        subprocess.run(["make", "-s", "browser"], cwd=REPO, check=False)
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser` (apt-get, as root)"
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("dashboard-stack"),
        settings={
            # A job slow enough to watch: a few hundred small chunks, one at a time,
            # through one Batch child.
            "BYOM_INLINE_MAX_BYTES": "0",
            "BYOM_CHUNK_BYTES": str(4 * 1024),
            "BYOM_MAX_ARRAY_CHILDREN": "1",
            "BYOM_WORKER_CHUNKS_IN_FLIGHT": "1",
        },
    )
    with LocalStack(config) as stack:
        yield stack


def _progress(page: Page, selector: str) -> tuple[int, int]:
    text = page.locator(selector)
    return int(text.get_attribute("data-done") or 0), int(text.get_attribute("data-count") or 0)


def test_dashboard_shows_a_job_live_and_its_timeline(stack, chromium, tmp_path):
    buffer = io.StringIO()
    write_feature_csv(generate(ROWS, seed=31), buffer)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{stack.dashboard_url}/")
            page.wait_for_selector("#jobs")

            etag = stack.client("s3").put_object(
                Bucket=stack.config.bucket, Key=KEY, Body=buffer.getvalue().encode()
            )["ETag"]
            job_id = naming.job_id_for(stack.config.bucket, KEY, etag)
            row = f'#jobs tr[data-job-id="{job_id}"]'

            # The page refreshes itself: the job appears, part-way done, then further on.
            first = page.wait_for_function(
                """(row) => {
                    const text = document.querySelector(row + " .progress-text");
                    if (!text) return null;
                    const done = +text.dataset.done, count = +text.dataset.count;
                    return count > 0 && done > 0 && done < count ? done : null;
                }""",
                arg=row,
            ).json_value()
            later = page.wait_for_function(
                """([row, first]) => {
                    const text = document.querySelector(row + " .progress-text");
                    const done = text ? +text.dataset.done : 0;
                    return done > first ? done : null;
                }""",
                arg=[row, first],
            ).json_value()
            assert 0 < first < later
            page.wait_for_selector(f'{row} [data-state="SUCCEEDED"]')
            done, count = _progress(page, f"{row} .progress-text")
            assert done == count > 100
            assert "100 %" in page.locator(f"{row} .progress-text").inner_text()
            # The key is shown as text, never as markup.
            assert page.locator(f"{row} i").count() == 0
            assert page.locator(row).get_by_text(KEY, exact=True).count() == 1

            # The job's page: its timeline (ending with the done event), chunks, objects.
            page.locator(f"{row} a").first.click()
            page.wait_for_selector(f'section[data-job-id="{job_id}"]')
            page.wait_for_selector("#timeline svg.bar-done")
            page.wait_for_selector('[data-settled="true"]')
            assert page.locator("#timeline .span-row").count() > count
            assert page.locator("#chunks tr[data-chunk]").count() == count
            assert (
                page.locator("#chunks tr[data-chunk] td:nth-child(2)").all_inner_texts()
                == ["done"] * count
            )
            href = page.locator('a.object-link:text-is("output")').get_attribute("href")
            output = page.request.get(f"{stack.dashboard_url}{href}")
            assert output.ok and output.text().count("\n") == ROWS

            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=str(screenshot))
            SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(screenshot, SCREENSHOT_COPY)
            assert screenshot.stat().st_size > 10_000
        except Exception:
            print(stack.logs())
            raise
        finally:
            browser.close()


def test_dashboard_is_read_only_and_serves_only_a_jobs_own_objects(stack):
    def status(url: str, method: str = "GET", host: str | None = None) -> int:
        request = urllib.request.Request(url, method=method)
        if host is not None:
            request.add_header("Host", host)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    base = stack.dashboard_url
    assert status(f"{base}/") == 200
    assert status(f"{base}/", method="POST") == 405
    assert status(f"{base}/jobs/nope/objects/input") == 404
    assert status(f"{base}/jobs/nope/objects/..%2Fplan.json") == 404
    # A name that resolves here but is not this machine's (DNS rebinding) is refused.
    assert status(f"{base}/", host="attacker.example:80") == 403


def test_errors_and_rejected_rows_are_shown_as_text(stack):
    s3, bucket = stack.client("s3"), stack.config.bucket
    rows = io.StringIO()
    write_feature_csv(generate(40, seed=32), rows)
    lines = rows.getvalue().splitlines(keepends=True)
    # A cell of markup: the job fails with an error that quotes it.
    failing = "".join(lines[:3]) + "<b>x</b>" + lines[3][lines[3].index(",") :]
    # Two bad rows under the skip policy: the job succeeds with an errors report.
    skipping = "".join(lines[:10]) + "1,2\n" + "".join(lines[10:20]) + "oops\n"
    etags = {
        "input/markup.csv": s3.put_object(Bucket=bucket, Key="input/markup.csv", Body=failing)[
            "ETag"
        ],
        "input/skip.csv": s3.put_object(
            Bucket=bucket,
            Key="input/skip.csv",
            Body=skipping,
            Metadata={"byom-on-bad-rows": "skip"},
        )["ETag"],
    }
    ids = {key: naming.job_id_for(bucket, key, etag) for key, etag in etags.items()}

    def fragment(job_id: str) -> str:
        url = f"{stack.dashboard_url}/fragments/jobs/{job_id}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, exc  # not created by ingest yet
            return ""

    def ended() -> bool:
        return all('data-settled="true"' in fragment(job_id) for job_id in ids.values())

    wait_until(ended, timeout=120, what="both jobs' pages settled")

    failed = fragment(ids["input/markup.csv"])
    assert 'data-state="FAILED"' in failed
    assert "line 4, column 1" in failed and "&lt;b&gt;x&lt;/b&gt;" in failed
    assert "<b>" not in failed
    assert "/objects/output" not in failed  # no output link for a failed job

    skipped = fragment(ids["input/skip.csv"])
    assert 'data-state="SUCCEEDED"' in skipped and "2 rejected" in skipped
    assert 'id="errors-report"' in skipped and "line,column,reason" in skipped
    url = f"{stack.dashboard_url}/jobs/{ids['input/skip.csv']}/objects/errors"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]
        report = response.read().decode()
    assert report.startswith("line,column,reason") and report.count("\n") == 3
