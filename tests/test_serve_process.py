"""featpipe serve as a real uvicorn process: tritonclient as the V2 client, SIGTERM drains and exits 0."""

import signal
import socket
import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from featpipe.serve.limits import Limits
from featpipe.serve.server import ServeOptions
from serve_support import free_port, metric_value, model_outputs, server_process


def test_tritonclient_infers_with_binary_and_json_outputs(runs, image_files):
    port = free_port()
    labels, values, classes = model_outputs(runs["hog+color+softmax"], image_files)
    with server_process([runs["hog+color+softmax"], runs["raw+svm"]], port):
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("hog+color+softmax")
        metadata = client.get_model_metadata("hog+color+softmax")
        assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
        assert metadata["outputs"][1] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]}

        image_input = triton.InferInput("image", [len(image_files)], "BYTES")
        image_input.set_data_from_numpy(np.array([p.read_bytes() for p in image_files], dtype=object))
        binary = client.infer("hog+color+softmax", [image_input])
        assert [label.decode() for label in binary.as_numpy("label")] == [classes[int(i)] for i in labels]
        np.testing.assert_allclose(binary.as_numpy("probabilities"), values, atol=1e-6)

        as_json = client.infer("hog+color+softmax", [image_input], outputs=[
            triton.InferRequestedOutput("label", binary_data=False),
            triton.InferRequestedOutput("probabilities", binary_data=False)])
        assert as_json.get_response()["outputs"][0]["data"] == [classes[int(i)] for i in labels]
        np.testing.assert_allclose(as_json.as_numpy("probabilities"), values, atol=1e-6)

        scores_input = triton.InferInput("image", [1], "BYTES")
        scores_input.set_data_from_numpy(np.array([image_files[1].read_bytes()], dtype=object))
        scored = client.infer("raw+svm", [scores_input])
        _, svm_scores, _ = model_outputs(runs["raw+svm"], image_files[1:2])
        np.testing.assert_allclose(scored.as_numpy("scores"), svm_scores, atol=1e-5)

        bad_input = triton.InferInput("image", [1], "BYTES")
        bad_input.set_data_from_numpy(np.array([b"not an image"], dtype=object))
        with pytest.raises(triton.InferenceServerException, match="image 0"):
            client.infer("raw+svm", [bad_input])


def test_sigterm_drains_requests_in_flight_and_exits_0(runs, image_files):
    port = free_port()
    body = image_files[1].read_bytes()
    with server_process([runs["raw+svm"]], port) as process:
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(b"POST /v1/models/raw+svm/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
                         b"X-Request-ID: in-flight\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:200])
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            readiness = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            late = httpx.post(f"http://127.0.0.1:{port}/v1/models/raw+svm/predict", content=body,
                              headers={"Content-Type": "image/jpeg"}, timeout=5)
            assert process.poll() is None, "exited with a request in flight"
            slow.sendall(body[200:])
            slow.settimeout(10)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = slow.recv(65536)
                if not chunk:
                    break
                answer += chunk
        status = process.wait(timeout=30)
        log = process.stderr.read()
    assert readiness.status_code == 503 and "shutting down" in readiness.json()["error"]
    assert late.status_code == 503 and late.headers["retry-after"] == "1"
    assert answer.startswith(b"HTTP/1.1 200") and b'"label"' in answer
    assert status == 0, log
    assert "POST /v1/models/raw+svm/predict 200" in log and "id=in-flight" in log
    assert "Traceback" not in log


def test_connection_limit_answers_503_before_the_app_and_counts_it(runs, image_files):
    port = free_port()
    body = image_files[1].read_bytes()
    url = f"http://127.0.0.1:{port}/v1/models/raw+svm/predict"
    with server_process([runs["raw+svm"], "--max-connections", "3", "--log-level", "warning"], port) as process:
        alone = httpx.post(url, content=body, headers={"Content-Type": "image/jpeg"}, timeout=10)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.3)
        crowded = httpx.post(url, content=body, headers={"Content-Type": "image/jpeg"}, timeout=10)
        for connection in idle:
            connection.close()
        for _ in range(50):
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            if metrics.status_code == 200:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        log = process.stderr.read()
    assert alone.status_code == 200
    assert crowded.status_code == 503 and crowded.headers["connection"] == "close"
    assert metric_value(metrics.text, "featpipe_rejections_total", reason="connection_limit") == 1
    assert "Exceeded concurrency limit" not in log


def test_connection_limit_is_opt_in_and_backlog_follows_the_queue_unless_given():
    derived = ServeOptions(run_dirs=(), limits=Limits(queue_size=10))
    assert (derived.connection_limit, derived.listen_backlog) == (None, 40)
    given = ServeOptions(run_dirs=(), limits=Limits(queue_size=10), max_connections=7, backlog=9)
    assert (given.connection_limit, given.listen_backlog) == (7, 9)
    assert ServeOptions(run_dirs=(), max_connections=0).connection_limit is None
