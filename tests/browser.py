"""A headless Chromium for the tests that look at a page: Playwright driving Debian's chromium.

Playwright is a test dependency (the ``test`` extra); its own browser
download is never used: it launches the system's ``chromium`` (``apt-get
install chromium``; ``.ci/run`` installs it when missing), so the tests run
offline. :func:`chromium` starts one browser; :func:`open_page` opens a
local file in a fresh context of a given screen size and records every
URL the page requested, so a test can check it needed no network.
"""

import shutil
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# No sandbox (tests may run as root in a container), no GPU, and nothing that phones home.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


def find_chromium():
    """Path of the system's Chromium; a clear error when there is none."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise RuntimeError("this test needs Chromium: apt-get install chromium (.ci/run installs it)")


@contextmanager
def chromium():
    """Launch the system's headless Chromium through Playwright; closed on exit.

    Yields
    ------
    playwright.sync_api.Browser
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(browser, path, width, height, *, mobile=False):
    """Open the local file ``path`` at a ``width`` x ``height`` CSS-pixel screen, until its load event.

    Parameters
    ----------
    browser : playwright.sync_api.Browser
        From :func:`chromium`.
    path : str or Path
        An HTML file on disk.
    width, height : int
        Viewport in CSS pixels, at one device pixel per CSS pixel.
    mobile : bool, default=False
        Emulate a phone: the page's ``<meta name="viewport">`` applies, touch is on.

    Yields
    ------
    page : playwright.sync_api.Page
    requested : list of str
        Every URL the page asked for so far (filled while the page lives).
    """
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                                  is_mobile=mobile, has_touch=mobile)
    try:
        page = context.new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(Path(path).resolve().as_uri(), wait_until="load")
        yield page, requested
    finally:
        context.close()


def screenshot(page, out, height=None):
    """Save a PNG of the page's top ``height`` CSS pixels (the whole page when None) to ``out``."""
    size = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    clip = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], height or size[1])}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True, clip=clip)
