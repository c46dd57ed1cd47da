"""The jobs panel in headless Chromium: a running job's progress bar moves, then shows the job done.

The browser's requests go to the job router through Playwright's request routing (the app
runs in this process under a TestClient), so the test needs no port.
"""

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from featpipe.serve.jobs.page_panel import JOBS_PANEL
from featpipe.serve.jobs.runner import JobRunner
from jobs_helpers import jobs_app, make_roots, slow_shards, wait_for

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed")
BASE = "http://jobs.test"


def _serve_through(client, page_html):
    def handle(route):
        path = route.request.url.removeprefix(BASE)
        if path == "/":
            route.fulfill(status=200, content_type="text/html", body=page_html)
            return
        answer = client.get(path)
        route.fulfill(status=answer.status_code, content_type="application/json", body=answer.content)

    return handle


def _bar(page, job_id):
    return page.evaluate("(id) => { const bar = document.querySelector(`tr[data-id='${id}'] progress`);"
                         " return bar ? [bar.value, bar.max] : null; }", job_id)


def test_the_panel_shows_progress_bars_that_move(tmp_path, small_npz, monkeypatch):
    from playwright.sync_api import sync_playwright

    roots = make_roots(tmp_path)
    shutil.copyfile(small_npz, roots.data / "small.npz")
    slow_shards(monkeypatch, tmp_path, delay=0.5)
    runner = JobRunner(roots)
    runner.start()
    client = TestClient(jobs_app(runner))
    page_html = f"<!doctype html><html><head><title>jobs</title></head><body>{JOBS_PANEL}</body></html>"
    try:
        job_id = client.post("/v1/jobs", json={"kind": "extract", "features": "hog", "data": "small.npz",
                                               "store": "s", "chunk_size": 20, "n_jobs": 1}).json()["id"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.route(f"{BASE}/**", _serve_through(client, page_html))
                page.goto(f"{BASE}/")
                first = wait_for(lambda: (bar := _bar(page, job_id)) and bar[0] > 0 and bar, timeout=60)
                assert first[1] == 240 and first[0] < 240
                page.wait_for_selector(f"tr[data-id='{job_id}'][data-state='done']", timeout=60_000)
                assert _bar(page, job_id) == [240, 240]
                row = page.inner_text(f"tr[data-id='{job_id}']").split("\t")
                assert row[:4] == [job_id, "extract", "done", "s"] and row[4].strip() == "240/240"
                assert float(row[5]) > 0 and row[6] == "0"
            finally:
                browser.close()
    finally:
        runner.stop()


def test_the_panel_stays_hidden_without_job_roots(tmp_path):
    from playwright.sync_api import sync_playwright

    client = TestClient(jobs_app(None))
    page_html = f"<!doctype html><html><body><p id='other'>models</p>{JOBS_PANEL}</body></html>"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route(f"{BASE}/**", _serve_through(client, page_html))
            with page.expect_response(lambda response: "/v1/jobs" in response.url) as answer:
                page.goto(f"{BASE}/")
            assert answer.value.status == 404
            page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 100))")
            assert page.is_hidden("#jobs") and page.is_visible("#other")
        finally:
            browser.close()
