"""featpipe serve's /v1 API in process: answers equal the run's model and `featpipe predict`, errors are JSON."""

import hashlib
import io
import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from featpipe.cli import cli
from featpipe.pipeline.registry import make_feature
from featpipe.serve.limits import Limits
from serve_support import (
    make_service,
    metric_value,
    model_outputs,
    multipart,
    run_async,
    running_client,
)


def _post_images(service, path, paths, raw=False, headers=None, **params):
    async def scenario():
        async with running_client(service) as client:
            if raw:
                return await client.post(path, content=paths[0].read_bytes(), params=params,
                                          headers={"Content-Type": "image/png", **(headers or {})})
            return await client.post(path, files=multipart(paths), params=params, headers=headers)

    return run_async(scenario)


@pytest.mark.parametrize("spec", ["hog+color+softmax", "raw+svm"])
def test_predict_equals_the_model_in_process_and_featpipe_predict(runs, image_files, spec):
    labels, values, classes = model_outputs(runs[spec], image_files)
    response = _post_images(make_service([runs[spec]]), f"/v1/models/{spec}/predict", image_files)
    assert response.status_code == 200
    answer = response.json()
    assert answer["model"] == spec and len(answer["version"]) == 16
    kind = "probabilities" if spec.endswith("softmax") else "scores"
    for prediction, path, label, row in zip(answer["predictions"], image_files, labels, values):
        assert prediction["name"] == path.name
        assert prediction["class_index"] == int(label)
        assert prediction["label"] == classes[int(label)]
        np.testing.assert_allclose([prediction[kind][name] for name in classes], row, atol=1e-6)
    printed = CliRunner().invoke(cli, ["predict", str(runs[spec]), *map(str, image_files)], catch_exceptions=False)
    for line, prediction in zip(printed.output.splitlines(), answer["predictions"]):
        fields = line.split("\t")
        assert fields[1] == prediction["label"]
        if kind == "probabilities":
            assert fields[2] == f"{max(prediction['probabilities'].values()):.4f}"


def test_a_raw_body_is_one_image(runs, image_files):
    labels, _, classes = model_outputs(runs["raw+svm"], image_files[:1])
    response = _post_images(make_service([runs["raw+svm"]]), "/v1/models/raw+svm/predict", image_files, raw=True)
    assert response.status_code == 200
    assert [p["label"] for p in response.json()["predictions"]] == [classes[int(labels[0])]]


def test_a_bad_image_among_several_gets_its_own_error_and_the_others_succeed(runs, image_files):
    labels, _, classes = model_outputs(runs["raw+svm"], image_files[:2])
    parts = [image_files[0], b"not an image", image_files[1]]
    response = _post_images(make_service([runs["raw+svm"]]), "/v1/models/raw+svm/predict", parts)
    assert response.status_code == 200
    first, bad, last = response.json()["predictions"]
    assert first["label"] == classes[int(labels[0])] and last["label"] == classes[int(labels[1])]
    assert set(bad) == {"name", "error"} and "not an image" in bad["error"]


def test_a_single_bad_raw_body_is_422_with_a_one_line_json_error(runs):
    async def scenario():
        async with running_client(make_service([runs["raw+svm"]])) as client:
            return await client.post("/v1/models/raw+svm/predict", content=b"\x89PNG\r\n\x1a\n broken",
                                     headers={"Content-Type": "image/png"})

    response = run_async(scenario)
    assert response.status_code == 422
    assert list(response.json()) == ["error"] and "\n" not in response.json()["error"]


def test_limits_answer_before_work(runs, image_files, tmp_path):
    limits = Limits(max_image_bytes=2000, max_images_per_request=2, max_pixels=64 * 64)
    big = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(big, "PNG")
    wide = io.BytesIO()
    Image.new("L", (100, 100)).save(wide, "PNG")
    bomb = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(bomb, "PNG")   # 900 million pixels in a few hundred kB

    async def scenario():
        service = make_service([runs["raw+svm"]], limits=limits)
        async with running_client(service) as client:
            path = "/v1/models/raw+svm/predict"
            declared = await client.post(path, content=big.getvalue(), headers={"Content-Type": "image/png"})
            many = await client.post(path, files=multipart(image_files[1:4]))
            large_part = await client.post(path, files=multipart([image_files[1], big.getvalue()]))
            too_wide = await client.post(path, content=wide.getvalue(), headers={"Content-Type": "image/png"})
            unknown = await client.post("/v1/models/nope/predict", content=b"x", headers={"Content-Type": "image/png"})
            wrong_type = await client.post(path, content=b"{}", headers={"Content-Type": "application/json"})
            metrics = (await client.get("/metrics")).text
        service_bomb = make_service([runs["raw+svm"]], limits=Limits(max_image_bytes=10**7))
        async with running_client(service_bomb) as client:
            bombed = await client.post(path, content=bomb.getvalue(), headers={"Content-Type": "image/png"})
        return declared, many, large_part, too_wide, unknown, wrong_type, metrics, bombed, service

    declared, many, large_part, too_wide, unknown, wrong_type, metrics, bombed, service = run_async(scenario)
    assert declared.status_code == 413 and "over the limit of 2000 bytes" in declared.json()["error"]
    assert many.status_code == 413 and "more than 2 images" in many.json()["error"]
    assert large_part.status_code == 413
    assert too_wide.status_code == 422 and "--max-pixels 4,096" in too_wide.json()["error"]
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert wrong_type.status_code == 415
    assert bombed.status_code == 422 and "pixels" in bombed.json()["error"]
    assert metric_value(metrics, "featpipe_rejections_total", reason="body_too_large") == 1
    assert metric_value(metrics, "featpipe_rejections_total", reason="too_many_images") == 1
    assert metric_value(metrics, "featpipe_images_processed_total", model="raw+svm") == 0


def test_every_error_is_json_and_carries_the_request_id(runs):
    async def scenario():
        async with running_client(make_service([runs["raw+svm"]])) as client:
            missing = await client.get("/no/such/route", headers={"X-Request-ID": "abc-123"})
            wrong_method = await client.delete("/v1/models")
            bad_query = await client.post("/v1/features/hog", params={"image_size": "big"},
                                          content=b"x", headers={"Content-Type": "image/png"})
            return missing, wrong_method, bad_query

    missing, wrong_method, bad_query = run_async(scenario)
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "abc-123"
    assert wrong_method.status_code == 405 and list(wrong_method.json()) == ["error"]
    assert bad_query.status_code == 422 and "image_size" in bad_query.json()["error"]
    generated = [wrong_method.headers["x-request-id"], bad_query.headers["x-request-id"]]
    assert generated[0] != generated[1] and all(len(value) > 16 for value in generated)


def test_an_unexpected_error_is_a_generic_500_and_a_logged_traceback(runs, image_files, caplog):
    service = make_service([runs["raw+svm"]])
    served = service.registry.get("raw+svm")

    def broken(images):
        raise RuntimeError("secret internal detail")

    served.predict_batch = broken
    with caplog.at_level(logging.INFO, logger="featpipe.serve"):
        response = _post_images(service, "/v1/models/raw+svm/predict", image_files[:1], raw=True,
                                headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert list(response.json()) == ["error"]
    assert "secret internal detail" in caplog.text
    access = [r.getMessage() for r in caplog.records if r.name == "featpipe.serve.access"]
    assert any("POST /v1/models/raw+svm/predict 500" in line and "id=req-500" in line and "images=1" in line
               for line in access)


def test_model_features_equal_the_pipelines_extractors_as_json_and_npy(runs, image_files):
    from featpipe.datasets import read_images
    from featpipe.model_io import load_model

    run = runs["hog+color+softmax"]
    model = load_model(run / "model.skops")
    images = read_images([str(p) for p in image_files], 32, strict=True).images
    expected = model.named_steps["features"].transform(images)

    async def scenario():
        async with running_client(make_service([run])) as client:
            path = "/v1/models/hog+color+softmax/features"
            as_json = await client.post(path, files=multipart(image_files))
            as_npy = await client.post(path, files=multipart(image_files), headers={"Accept": "application/x-npy"})
            return as_json, as_npy

    as_json, as_npy = run_async(scenario)
    answer = as_json.json()
    assert answer["features"] == "hog+color" and answer["width"] == expected.shape[1]
    np.testing.assert_allclose([row["features"] for row in answer["rows"]], expected, atol=1e-6)
    rows = np.load(io.BytesIO(as_npy.content), allow_pickle=False)
    assert rows.dtype == np.float32 and rows.shape == expected.shape
    np.testing.assert_array_equal(rows, expected.astype(np.float32))


def test_spec_features_need_no_run_and_resize_as_the_cli_does(runs, image_files):
    from featpipe.datasets import read_images

    images = read_images([str(p) for p in image_files], image_size=24, strict=True).images
    hog, color = make_feature("hog").fit(images), make_feature("color").fit(images)
    expected = np.hstack([hog.transform(images), color.transform(images)])

    async def scenario():
        async with running_client(make_service([runs["raw+svm"]])) as client:
            good = await client.post("/v1/features/hog+color", params={"image_size": 24}, files=multipart(image_files),
                                     headers={"Accept": "application/x-npy"})
            learned = await client.post("/v1/features/words", files=multipart(image_files[:1]))
            unknown = await client.post("/v1/features/sift", files=multipart(image_files[:1]))
            too_big = await client.post("/v1/features/hog", params={"image_size": 4096},
                                        files=multipart(image_files[:1]))
            return good, learned, unknown, too_big

    good, learned, unknown, too_big = run_async(scenario)
    np.testing.assert_array_equal(np.load(io.BytesIO(good.content)), expected)
    assert learned.status_code == 404 and "fitted" in learned.json()["error"]
    assert unknown.status_code == 404 and "sift" in unknown.json()["error"]
    assert too_big.status_code == 422


def test_models_list_describes_each_run(runs):
    async def scenario():
        async with running_client(make_service([runs["raw+svm"], f"softmax={runs['hog+color+softmax']}"])) as client:
            return (await client.get("/v1/models")).json(), await client.get("/v1/models/softmax")

    listing, one = run_async(scenario)
    metrics = json.loads((runs["hog+color+softmax"] / "metrics.json").read_text())
    assert [m["name"] for m in listing["models"]] == ["raw+svm", "softmax"]
    described = one.json()
    assert described["spec"] == "hog+color+softmax" and described["classes"] == metrics["dataset"]["classes"]
    assert described["accuracy"] == metrics["accuracy"] and described["feature_widths"] == metrics["feature_widths"]
    assert described["outputs"] == "probabilities" and listing["models"][0]["outputs"] == "scores"
    model_bytes = (runs["hog+color+softmax"] / "model.skops").read_bytes()
    assert described["version"] == hashlib.sha256(model_bytes).hexdigest()[:16]
