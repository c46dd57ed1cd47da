"""report.html in a real browser: headless Chromium driven by Playwright (tests/browser.py).

The report is the one test_report.py builds with the real ``featpipe run``
and ``featpipe compare`` on the built-in data set (once per session). The
test checks every image decoded, the results table lists every pipeline,
the page needs no network, and on a phone-sized screen the page does not
scroll sideways while the table does; screenshots go to tests/artifacts/.

Run as a script to screenshot any report:
``python tests/test_report_browser.py REPORT.html OUT.png [WIDTH HEIGHT]``.
"""

import json
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from browser import chromium, open_page, screenshot
from helpers import builtin_report

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

PAGE_PROBE = """
Promise.all([...document.images].map(image => image.decode().catch(() => null))).then(() => {
  const wrapper = document.querySelector('#results').parentElement;
  return {
    images: [...document.images].map(image => ({
      complete: image.complete, naturalWidth: image.naturalWidth,
      right: image.getBoundingClientRect().right, id: image.parentElement.id})),
    pipelines: [...document.querySelectorAll('#results tbody tr')].map(row => row.cells[0].textContent.trim()),
    best: [...document.querySelectorAll('#results tbody tr.best')].map(row => row.cells[0].textContent.trim()),
    pageWidth: document.documentElement.scrollWidth,
    viewportWidth: window.innerWidth,
    tableScrolls: wrapper.scrollWidth > wrapper.clientWidth,
    tableOverflow: getComputedStyle(wrapper).overflowX,
  };
})
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = builtin_report(tmp_path_factory)
    return json.loads((out / "results.json").read_text()), out / "report.html"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def _expected_rows(results):
    return [f"{entry['name']} ★" if entry["best"] else entry["name"] for entry in results["pipelines"]]


def test_report_renders_in_chromium_on_a_laptop(report, browser):
    results, html_path = report
    with open_page(browser, html_path, 1280, 900) as (page, requested):
        probe = page.evaluate(PAGE_PROBE)
        assert [image["id"] for image in probe["images"]] == [figure["id"] for figure in results["figures"]]
        assert all(image["complete"] and image["naturalWidth"] > 0 for image in probe["images"]), probe["images"]
        assert probe["pipelines"] == _expected_rows(results)
        assert probe["best"] == [f"{results['best']} ★"]
        assert probe["pageWidth"] <= probe["viewportWidth"]
        assert requested[0] == html_path.resolve().as_uri()
        assert all(urlparse(url).scheme in ("file", "data") for url in requested), requested
        screenshot(page, ARTIFACTS / "report-laptop.png")
    shot = np.asarray(Image.open(ARTIFACTS / "report-laptop.png").convert("L"))
    assert shot.shape[1] == 1280 and shot.shape[0] > 900 and shot.std() > 10


def test_report_fits_a_phone_and_its_table_scrolls(report, browser):
    results, html_path = report
    with open_page(browser, html_path, 390, 844, mobile=True) as (page, _):
        probe = page.evaluate(PAGE_PROBE)
        assert all(image["complete"] and image["naturalWidth"] > 0 for image in probe["images"])
        assert probe["pipelines"] == _expected_rows(results)
        assert probe["pageWidth"] <= probe["viewportWidth"] == 390
        assert probe["tableOverflow"] == "auto" and probe["tableScrolls"]
        assert max(image["right"] for image in probe["images"]) <= 390
        screenshot(page, ARTIFACTS / "report-phone.png", height=2400)
    assert Image.open(ARTIFACTS / "report-phone.png").size[0] == 390


def main(argv):
    """Screenshot a report: REPORT.html OUT.png [WIDTH HEIGHT]."""
    html_path, out = argv[0], argv[1]
    width, height = (int(argv[2]), int(argv[3])) if len(argv) >= 4 else (1280, 1600)
    with chromium() as browser, open_page(browser, html_path, width, min(height, 1000)) as (page, _):
        page.evaluate(PAGE_PROBE)
        screenshot(page, out, height=height)


if __name__ == "__main__":
    main(sys.argv[1:])
