"""The KServe V2 subset in process: base64 JSON inputs, the binary codec, and 400/404/413 answers."""

import base64
import json
import struct

import numpy as np
import pytest

from featpipe.serve.limits import Limits
from featpipe.serve.v2_codec import parse_infer_request
from featpipe.serve.problems import Problem
from serve_support import (
    make_service,
    model_outputs,
    run_async,
    running_client,
    write_image_files,
)


def _json_request(paths, **extra):
    data = [base64.b64encode(path.read_bytes()).decode() for path in paths]
    return {"id": "r1", "inputs": [{"name": "image", "shape": [len(data)], "datatype": "BYTES", "data": data}], **extra}


def test_json_infer_with_base64_images_equals_the_model(runs, tmp_path):
    images = write_image_files(tmp_path, n=4)
    labels, values, classes = model_outputs(runs["hog+color+softmax"], images)

    async def scenario():
        service = make_service([runs["hog+color+softmax"]], limits=Limits(max_images_per_request=4))
        async with running_client(service) as client:
            path = "/v2/models/hog+color+softmax/infer"
            good = await client.post(path, json=_json_request(images))
            version = service.registry.get("hog+color+softmax").version
            versioned = await client.post(f"/v2/models/hog+color+softmax/versions/{version}/infer",
                                          json=_json_request(images[:1], outputs=[{"name": "label"}]))
            wrong_version = await client.post("/v2/models/hog+color+softmax/versions/0/infer",
                                              json=_json_request(images))
            too_many = await client.post(path, json={"inputs": [{"name": "image", "shape": [5], "datatype": "BYTES",
                                                                 "data": ["AA=="] * 5}]})
            bad_image = await client.post(path, json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                                                  "data": [base64.b64encode(b"nope").decode()]}]})
            no_input = await client.post(path, json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",
                                                                  "data": [1]}]})
            not_json = await client.post(path, content=b"{", headers={"Content-Type": "application/json"})
            metadata = (await client.get("/v2/models/hog+color+softmax")).json()
            server = (await client.get("/v2")).json()
        return good, versioned, wrong_version, too_many, bad_image, no_input, not_json, metadata, server

    good, versioned, wrong_version, too_many, bad_image, no_input, not_json, metadata, server = run_async(scenario)
    answer = good.json()
    assert answer["model_name"] == "hog+color+softmax" and answer["id"] == "r1"
    label, probabilities = answer["outputs"]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [4], "data": [classes[int(i)] for i in labels]}
    assert probabilities["shape"] == [4, len(classes)] and probabilities["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(probabilities["data"], (4, -1)), values, atol=1e-6)
    assert [o["name"] for o in versioned.json()["outputs"]] == ["label"]
    assert wrong_version.status_code == 404
    assert too_many.status_code == 413
    assert bad_image.status_code == 400 and bad_image.json()["error"].startswith("image 0:")
    assert no_input.status_code == 400 and "'image' input" in no_input.json()["error"]
    assert not_json.status_code == 400
    assert metadata["versions"] == [answer["model_version"]] and metadata["platform"] == "featpipe_sklearn"
    assert "binary_tensor_data" in server["extensions"]


def test_binary_codec_reads_length_prefixed_elements_and_refuses_bad_framing():
    elements = [b"first image", b"", b"third"]
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    header = json.dumps({"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    _, parsed = parse_infer_request(header + raw, str(len(header)), max_images=8)
    assert parsed == elements
    for body, length in [(header + raw[:-1], str(len(header))), (header + raw + b"x", str(len(header))),
                         (header + raw, str(len(header) + len(raw) + 1)), (header + raw, "-3")]:
        with pytest.raises(Problem) as refused:
            parse_infer_request(body, length, max_images=8)
        assert refused.value.status == 400
    with pytest.raises(Problem) as too_many:
        parse_infer_request(header + raw, str(len(header)), max_images=2)
    assert too_many.value.status == 413
