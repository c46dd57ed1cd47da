"""report.html in a real browser: headless Chromium driven over the DevTools protocol.

The report is the one test_report.py builds with the real ``featpipe run``
and ``featpipe compare`` on the built-in data set (once per session). The
DevTools client below is a minimal WebSocket client (RFC 6455) on the
standard library and numpy. The test checks every image decoded, the
results table lists every pipeline, the page needs no network, and on a
phone-sized screen the page does not scroll sideways while the table does;
screenshots go to tests/artifacts/.

Run as a script to screenshot any report:
``python tests/test_report_browser.py REPORT.html OUT.png [WIDTH HEIGHT]``.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from helpers import builtin_report

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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


class _WebSocket:
    """Just enough of a WebSocket client for the DevTools protocol (text frames, unfragmented sends)."""

    def __init__(self, url, timeout=60):
        address = urlparse(url)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {address.path} HTTP/1.1\r\nHost: {address.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._read_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        if b" 101 " not in head.split(b"\r\n")[0] or accept.encode() not in head:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _read_some(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("browser closed the DevTools connection")
        return chunk

    def _read(self, count):
        while len(self.buffer) < count:
            self.buffer += self._read_some()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, text):
        payload = text.encode()
        if len(payload) < 126:
            header = struct.pack("!BB", 0x81, 0x80 | len(payload))
        elif len(payload) < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, len(payload))
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, len(payload))
        mask = os.urandom(4)
        masked = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), len(payload))
        self.sock.sendall(header + mask + masked.tobytes())

    def receive(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("browser closed the DevTools connection")
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self):
        self.sock.close()


class Browser:
    """A headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, executable):
        self.profile = tempfile.mkdtemp(prefix="featpipe-chromium-")
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            port = self._wait_for_port(Path(self.profile) / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
                targets = json.load(response)
            page = next(target for target in targets if target["type"] == "page")
            self.socket = _WebSocket(page["webSocketDebuggerUrl"])
        except BaseException:
            self.close()
            raise
        self.next_id, self.events = 0, []

    def _wait_for_port(self, path, timeout=45):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.is_file() and path.read_text().strip():
                return int(path.read_text().split()[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.process.returncode}")
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method, **params):
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for_event(self, method):
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            self.events.append(json.loads(self.socket.receive()))

    def open(self, path, width, height, mobile=False):
        """Load ``path`` at a ``width`` x ``height`` CSS-pixel screen and wait for its load event."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)
        self.call("Page.enable")
        self.call("Network.enable")
        self.events.clear()
        self.call("Page.navigate", url=Path(path).resolve().as_uri())
        self.wait_for_event("Page.loadEventFired")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def screenshot(self, out, height=None):
        """Save a PNG of the page's top ``height`` pixels (the whole page when None)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], height or size["height"]),
                "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(base64.b64decode(data))

    def requested_urls(self):
        return [event["params"]["request"]["url"] for event in self.events
                if event.get("method") == "Network.requestWillBeSent"]

    def close(self):
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def find_chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        raise RuntimeError("this test needs Chromium: apt-get install chromium (.ci/run installs it)")
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = builtin_report(tmp_path_factory)
    return json.loads((out / "results.json").read_text()), out / "report.html"


@pytest.fixture(scope="module")
def browser():
    browser = Browser(find_chromium())
    yield browser
    browser.close()


def _expected_rows(results):
    return [f"{entry['name']} ★" if entry["best"] else entry["name"] for entry in results["pipelines"]]


def test_report_renders_in_chromium_on_a_laptop(report, browser):
    results, html_path = report
    browser.open(html_path, 1280, 900)
    page = browser.evaluate(PAGE_PROBE)
    assert [image["id"] for image in page["images"]] == [figure["id"] for figure in results["figures"]]
    assert all(image["complete"] and image["naturalWidth"] > 0 for image in page["images"]), page["images"]
    assert page["pipelines"] == _expected_rows(results)
    assert page["best"] == [f"{results['best']} ★"]
    assert page["pageWidth"] <= page["viewportWidth"]
    assert all(urlparse(url).scheme in ("file", "data") for url in browser.requested_urls())
    browser.screenshot(ARTIFACTS / "report-laptop.png")
    shot = np.asarray(Image.open(ARTIFACTS / "report-laptop.png").convert("L"))
    assert shot.shape[1] == 1280 and shot.shape[0] > 900 and shot.std() > 10


def test_report_fits_a_phone_and_its_table_scrolls(report, browser):
    results, html_path = report
    browser.open(html_path, 390, 844, mobile=True)
    page = browser.evaluate(PAGE_PROBE)
    assert all(image["complete"] and image["naturalWidth"] > 0 for image in page["images"])
    assert page["pipelines"] == _expected_rows(results)
    assert page["pageWidth"] <= page["viewportWidth"] == 390
    assert page["tableOverflow"] == "auto" and page["tableScrolls"]
    assert max(image["right"] for image in page["images"]) <= 390
    browser.screenshot(ARTIFACTS / "report-phone.png", height=2400)
    assert Image.open(ARTIFACTS / "report-phone.png").size[0] == 390


def main(argv):
    """Screenshot a report: REPORT.html OUT.png [WIDTH HEIGHT]."""
    html_path, out = argv[0], argv[1]
    width, height = (int(argv[2]), int(argv[3])) if len(argv) >= 4 else (1280, 1600)
    browser = Browser(find_chromium())
    try:
        browser.open(html_path, width, min(height, 1000))
        browser.evaluate(PAGE_PROBE)
        browser.screenshot(out, height=height)
    finally:
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
