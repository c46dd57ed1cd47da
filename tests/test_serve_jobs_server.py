"""``featpipe serve`` with job folders and no run folder: ready at once, jobs behind the API keys, a trained model served."""

import io
import shutil
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image

from featpipe.model_io import load_model
from jobs_helpers import wait_for
from serve_support import free_port

KEY = "jobs-test-key"


def test_a_server_with_job_folders_trains_and_serves_without_restart(tmp_path, small_npz):
    folders = {name: tmp_path / name for name in ("data", "stores", "runs", "state")}
    folders["data"].mkdir()
    shutil.copyfile(small_npz, folders["data"] / "small.npz")
    (tmp_path / "keys").write_text(KEY + "\n")
    port = free_port()
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {KEY}"}
    command = [sys.executable, "-m", "featpipe.cli", "serve", "--port", str(port), "--api-key-file",
               str(tmp_path / "keys"), "--data-root", str(folders["data"]), "--store-root", str(folders["stores"]),
               "--runs-root", str(folders["runs"]), "--state-dir", str(folders["state"])]
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        def ready():
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"{base}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60)
        second = subprocess.run([*command[:5], str(free_port()), *command[6:]], capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 2 and second.stderr == (
            f"featpipe: error: another featpipe serve uses the state folder {folders['state']}; "
            "give each server its own --state-dir\n")
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/x"),
                             ("DELETE", "/v1/jobs/x"), ("GET", "/v1/jobs/x/result")):
            assert httpx.request(method, f"{base}{path}", json={}).status_code == 401, (method, path)
        assert httpx.get(f"{base}/v1/jobs", headers=auth).json() == {"jobs": []}
        assert 'id="jobs"' in httpx.get(f"{base}/", headers=auth).text

        extract = httpx.post(f"{base}/v1/jobs", headers=auth, json={
            "kind": "extract", "features": "color", "data": "small.npz", "store": "colours", "n_jobs": 1})
        assert extract.status_code == 202
        assert wait_for(lambda: (state := httpx.get(f"{base}{extract.headers['location']}", headers=auth)
                                 .json()["state"]) in ("done", "failed") and state) == "done"
        train = httpx.post(f"{base}/v1/jobs", headers=auth, json={
            "kind": "run", "pipeline": "color+logreg", "store": "colours", "name": "colours", "run": "colours"})
        assert train.status_code == 202
        readiness = []

        def served():
            readiness.append(httpx.get(f"{base}/readyz").status_code)
            names = [model["name"] for model in httpx.get(f"{base}/v1/models", headers=auth).json()["models"]]
            return "colours" in names

        wait_for(served, timeout=120, step=0.05)
        assert set(readiness) == {200} and len(readiness) > 3
        assert httpx.get(f"{base}{train.headers['location']}", headers=auth).json()["state"] == "done"

        image = np.zeros((32, 32, 3), dtype=np.uint8)
        image[..., 2] = 230
        encoded = io.BytesIO()
        Image.fromarray(image).save(encoded, format="PNG")
        answer = httpx.post(f"{base}/v1/models/colours/predict", headers={**auth, "Content-Type": "image/png"},
                            content=encoded.getvalue()).json()
        model = load_model(folders["runs"] / "colours" / "model.skops")
        assert answer["predictions"][0]["class_index"] == int(model.predict(image[None])[0])
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0 and time.monotonic() - started < 60
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
