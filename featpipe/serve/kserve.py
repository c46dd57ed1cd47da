"""The KServe V2 / Open Inference Protocol subset, so existing inference clients work unchanged.

Health (``/v2/health/live``, ``/v2/health/ready``), server and model
metadata, model readiness and ``POST /v2/models/{name}[/versions/{v}]/infer``
with one input ``image`` (BYTES [N], the encoded files) and the outputs
``label`` (BYTES [N]) and ``probabilities`` or ``scores`` (FP32 [N, C]).
Bodies are JSON or use the binary tensor data extension
(:mod:`featpipe.serve.v2_codec`). The protocol has no per-item errors, so one
bad image fails the request with a 400.
"""

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from featpipe import __version__
from featpipe.serve.limits import read_body
from featpipe.serve.problems import Problem
from featpipe.serve.schemas import ERROR_RESPONSES
from featpipe.serve.service import request_deadline
from featpipe.serve.uploads import Upload
from featpipe.serve.v2_codec import (
    HEADER_LENGTH, IMAGE_INPUT, encode_infer_response, parse_infer_request, requested_outputs,
)

PLATFORM = "featpipe_sklearn"
"""What ``GET /v2/models/{name}`` gives as the platform."""

EXTENSIONS = ["binary_tensor_data"]

router = APIRouter(prefix="/v2", tags=["kserve-v2"])

INFER_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {
                "type": "object", "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "inputs": {"type": "array", "items": {
                        "type": "object", "required": ["name", "shape", "datatype"],
                        "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                                       "datatype": {"type": "string"}, "data": {"type": "array"},
                                       "parameters": {"type": "object"}}}},
                    "outputs": {"type": "array", "items": {"type": "object"}},
                    "parameters": {"type": "object"},
                },
            }},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}


@router.get("/health/live", responses={200: {"description": "Alive."}})
async def live():
    """Alive: the process answers."""
    return {"live": True}


@router.get("/health/ready", responses={200: {"description": "Ready."}, 503: ERROR_RESPONSES[503]})
async def ready(request: Request):
    """Ready: every model loaded and warmed, and not shutting down (else 503)."""
    if not request.app.state.service.registry.ready:
        raise Problem(503, "not ready", reason="not_ready")
    return {"ready": True}


@router.get("", responses={200: {"description": "Server metadata."}})
async def server_metadata():
    """Server name, version and protocol extensions."""
    return {"name": "featpipe", "version": __version__, "extensions": EXTENSIONS}


def _model(request, name, version):
    served = request.app.state.service.model(name)
    if version is not None and version != served.version:
        raise Problem(404, f"model {name} has version {served.version}, not {version}", reason="unknown_model")
    return served


def _outputs(served):
    return {"label": "BYTES", ("probabilities" if served.has_probabilities else "scores"): "FP32"}


def _metadata(served):
    n_classes = len(served.classes)
    shapes = {"BYTES": [-1], "FP32": [-1, n_classes]}
    return {
        "name": served.name, "versions": [served.version], "platform": PLATFORM,
        "inputs": [{"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": name, "datatype": datatype, "shape": shapes[datatype]}
                    for name, datatype in _outputs(served).items()],
        "parameters": {"classes": served.classes, "image_size": served.image_size},
    }


def _readiness(served):
    if not served.warm.is_set():
        raise Problem(503, f"model {served.name} is loading", reason="not_ready")
    return {"name": served.name, "ready": True}


@router.get("/models/{name}", responses={404: ERROR_RESPONSES[404]})
async def model_metadata(name: str, request: Request):
    """Model name, versions, platform, inputs and outputs (name, datatype, shape)."""
    return _metadata(_model(request, name, None))


@router.get("/models/{name}/versions/{version}", responses={404: ERROR_RESPONSES[404]})
async def model_version_metadata(name: str, version: str, request: Request):
    """Model metadata for one version (the only one: the model file's hash)."""
    return _metadata(_model(request, name, version))


@router.get("/models/{name}/ready", responses={404: ERROR_RESPONSES[404], 503: ERROR_RESPONSES[503]})
async def model_ready(name: str, request: Request):
    """200 when the model is warm, 503 while it loads."""
    return _readiness(_model(request, name, None))


@router.get("/models/{name}/versions/{version}/ready",
            responses={404: ERROR_RESPONSES[404], 503: ERROR_RESPONSES[503]})
async def model_version_ready(name: str, version: str, request: Request):
    """Readiness of one version of a model."""
    return _readiness(_model(request, name, version))


@router.post("/models/{name}/infer", openapi_extra=INFER_REQUEST_BODY, responses=ERROR_RESPONSES)
async def infer(name: str, request: Request):
    """Classify the images of input ``image``; outputs ``label`` and ``probabilities`` or ``scores``."""
    return await _infer(request, _model(request, name, None))


@router.post("/models/{name}/versions/{version}/infer", openapi_extra=INFER_REQUEST_BODY, responses=ERROR_RESPONSES)
async def infer_version(name: str, version: str, request: Request):
    """Inference on one version of a model."""
    return await _infer(request, _model(request, name, version))


async def _infer(request, served):
    service = request.app.state.service
    limits = service.limits
    if request.headers.get("content-encoding", "identity") != "identity":
        raise Problem(415, "compressed request bodies are not accepted; send them uncompressed")
    async with service.admit():
        body = await read_body(request, limits.max_body_bytes, request_deadline(request, limits))
        header, encoded = parse_infer_request(body, request.headers.get(HEADER_LENGTH), limits.max_images_per_request)
        outputs = requested_outputs(header, list(_outputs(served)))
        request.state.images = len(encoded)
        for data in encoded:
            if len(data) > limits.max_image_bytes:
                raise Problem(413, f"an image of {len(data)} bytes is over the limit of {limits.max_image_bytes} bytes",
                              reason="image_too_large")
        uploads = [Upload(f"image {index}", data) for index, data in enumerate(encoded)]
        images, failures = await service.decode(uploads, served.image_size)
        if failures:
            index, message = failures[0]
            raise Problem(400, f"image {index}: {message}", reason="bad_image")
        labels, values = await service.predict(served, images, request_deadline(request, limits))
    classes = np.array([name.encode("utf-8") for name in served.classes], dtype=object)
    value_name = "probabilities" if served.has_probabilities else "scores"
    tensors = {"label": ("BYTES", classes[labels]), value_name: ("FP32", values)}
    response_header = {"model_name": served.name, "model_version": served.version}
    if isinstance(header.get("id"), str):
        response_header["id"] = header["id"]
    body, headers = encode_infer_response(response_header, tensors, outputs)
    if headers:
        return Response(body, media_type="application/octet-stream", headers=headers)
    return Response(body, media_type="application/json")
