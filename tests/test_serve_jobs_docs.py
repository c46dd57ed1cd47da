"""The ``curl`` lines of docs/jobs.md, run as written against a real ``featpipe serve`` with job folders.

Each ``$ curl ...`` command of the page is taken from the Markdown (continuation lines and
quotes as a shell reads them), pointed at the test server and at the ids of the jobs it
submitted, and run with the real curl. The answers must be what the page shows: the status
line and ``Location`` of a submission, the exact error line, the fields of a job.
"""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from helpers import make_colour_images
from jobs_helpers import job_folders, job_server, wait_for
from serve_support import free_port

DOC = Path(__file__).resolve().parents[1] / "docs" / "jobs.md"
CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="the curl program is not installed")
EXTRACT_ID, RUN_ID = "3f9c0a1d2b4e5f60", "7a1e..."
"""The job ids the page's examples show."""


def documented_commands(markdown):
    """[(argv, shown output lines)] of every ``$ curl`` command in ``markdown``."""
    lines = markdown.splitlines()
    commands, position = [], 0
    while position < len(lines):
        if not lines[position].startswith("$ curl"):
            position += 1
            continue
        text = lines[position][2:]
        while True:
            if text.endswith("\\"):
                position += 1
                text = text[:-1] + " " + lines[position].strip()
                continue
            try:
                argv = shlex.split(text, comments=True)
                break
            except ValueError:  # a quote still open: the command goes on
                position += 1
                text += "\n" + lines[position]
        position += 1
        shown = []
        while position < len(lines) and not lines[position].startswith(("$", "```")):
            shown.append(lines[position])
            position += 1
        commands.append((argv, shown))
    return commands


def _image_folder(root):
    """ROOT/<class>/NNN.png: a small three-class image folder."""
    images, labels = make_colour_images(12, size=32, seed=3)
    for number, (image, label) in enumerate(zip(images, labels)):
        folder = root / ["red", "green", "blue"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{number:03d}.png")


def _run(argv, base, ids):
    """Run a documented curl command against ``base``, the page's job ids replaced by ``ids``."""
    argv = [argument.replace("localhost:8000", base.removeprefix("http://")) for argument in argv]
    for shown_id, real_id in ids.items():
        argv = [argument.replace(shown_id, real_id) for argument in argv]
    answer = subprocess.run([CURL, *argv[1:]], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    return answer.stdout


def _fields(shown):
    """Names of the JSON fields the page shows in an answer."""
    return set(re.findall(r'"(\w+)":', "\n".join(shown)))


def _finished(base, job_id):
    return wait_for(lambda: (job := httpx.get(f"{base}/v1/jobs/{job_id}").json())["state"] not in (
        "queued", "running") and job, timeout=120)


def test_the_documented_curl_commands_answer_what_the_page_shows(tmp_path):
    commands = documented_commands(DOC.read_text())
    by_kind = {}
    for argv, shown in commands:
        text = " ".join(argv)
        kind = ("submit-extract" if '"extract"' in text and "hog+sift" not in text else
                "submit-run" if '"run"' in text else "refused" if "hog+sift" in text else
                "cancel" if "DELETE" in argv else "list" if "state=" in text else
                "result" if text.endswith("/result") else "get")
        by_kind.setdefault(kind, []).append((argv, shown))
    assert set(by_kind) == {"submit-extract", "submit-run", "refused", "get", "list", "result", "cancel"}

    folders = job_folders(tmp_path)
    _image_folder(folders["data"] / "cifar10-jpg" / "test")
    with job_server(folders, free_port()) as (_, base):
        (argv, shown), = by_kind["submit-extract"]
        head, _, body = _run(argv, base, {}).replace("\r\n", "\n").partition("\n\n")
        submitted = json.loads(body)
        assert head.splitlines()[0] == shown[0] == "HTTP/1.1 202 Accepted"
        assert f"location: /v1/jobs/{submitted['id']}" in head.lower().splitlines()
        assert submitted["state"] == "queued" and submitted["output"] == "cifar-test-hog-color"
        assert _fields(shown[4:]) <= set(submitted) | set(submitted["progress"])
        assert _finished(base, submitted["id"])["state"] == "done"
        ids = {EXTRACT_ID: submitted["id"]}

        (argv, _), = by_kind["submit-run"]
        trained = json.loads(_run(argv, base, ids))
        assert trained["kind"] == "run" and trained["request"]["store"] == "cifar-test-hog-color"
        ids[RUN_ID] = trained["id"]

        (argv, shown), = by_kind["refused"]
        assert _run(argv, base, ids) == shown[0]

        (argv, shown), = by_kind["get"]
        job = json.loads(_run(argv, base, ids))
        assert job["id"] == submitted["id"] and _fields(shown) <= set(job) | set(job["progress"])
        (argv, _), = by_kind["list"]
        assert set(json.loads(_run(argv, base, ids))) == {"jobs"}

        assert _finished(base, trained["id"])["state"] == "done"
        wait_for(lambda: "hog+color+svm2" in [model["name"] for model in
                                             httpx.get(f"{base}/v1/models").json()["models"]], timeout=60)
        manifest, metrics = (json.loads(_run(argv, base, ids)) for argv, _ in by_kind["result"])
        assert manifest["complete"] and manifest["n_rows"] == 36
        assert metrics == json.loads((folders["runs"] / trained["request"]["run"] / "metrics.json").read_text())
        (argv, _), = by_kind["cancel"]
        assert json.loads(_run(argv, base, ids)) == {"error": f"job {submitted['id']} is already done"}
