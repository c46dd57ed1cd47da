"""The service's own API: health, metrics, models, predictions and features (``/healthz``, ``/v1/...``).

Every inference route follows the same order (see :mod:`featpipe.serve.service`):
the model is looked up, the request admitted, the body read within its
limits, the images decoded, and only then does any model work start.
"""

import io
import time

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from featpipe.serve.limits import read_body
from featpipe.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from featpipe.serve.problems import Problem
from featpipe.serve.schemas import (
    ERROR_RESPONSES, IMAGES_REQUEST_BODY, FeaturesAnswer, ModelInfo, ModelList, PredictAnswer, Status,
)
from featpipe.serve.service import request_deadline
from featpipe.serve.uploads import check_content_type, is_raw_image, read_uploads

NPY_MEDIA_TYPE = "application/x-npy"
"""``Accept`` value that asks for feature rows as ``numpy.save`` bytes."""

router = APIRouter()


@router.get("/healthz", response_model=Status, tags=["health"])
async def healthz():
    """Alive: the process answers."""
    return {"status": "alive"}


@router.get("/readyz", response_model=Status, tags=["health"], responses={503: ERROR_RESPONSES[503]})
async def readyz(request: Request):
    """Ready: every model loaded and warmed, and not shutting down (else 503)."""
    registry = request.app.state.service.registry
    if registry.draining:
        raise Problem(503, "not ready: shutting down", reason="not_ready")
    if not registry.ready:
        raise Problem(503, "not ready: models are loading", reason="not_ready")
    return {"status": "ready"}


@router.get("/metrics", tags=["health"], response_class=Response,
            responses={200: {"content": {METRICS_CONTENT_TYPE: {}}, "description": "Prometheus text."}})
async def metrics(request: Request):
    """Prometheus metrics (text exposition format)."""
    service = request.app.state.service
    service.metrics.ready.set(1 if service.registry.ready else 0)
    return Response(service.metrics.render(), media_type=METRICS_CONTENT_TYPE)


@router.get("/v1/models", response_model=ModelList, tags=["models"])
async def list_models(request: Request):
    """Every served model: spec, classes, feature widths, accuracies, image size, version."""
    return {"models": [served.describe() for served in request.app.state.service.registry]}


@router.get("/v1/models/{name}", response_model=ModelInfo, tags=["models"], responses={404: ERROR_RESPONSES[404]})
async def describe_model(name: str, request: Request):
    """One model's spec, classes, feature widths, accuracies, image size and version."""
    return request.app.state.service.model(name).describe()


@router.post("/v1/models/{name}/predict", tags=["models"], openapi_extra=IMAGES_REQUEST_BODY,
             responses={200: {"model": PredictAnswer}, **ERROR_RESPONSES})
async def predict(name: str, request: Request):
    """Classify one image (raw body, ``Content-Type: image/*``) or several (``multipart/form-data``, ``images`` parts).

    A bad image among several gets its own ``error`` entry and the others
    are answered; a single bad raw body is a 422.
    """
    service = request.app.state.service
    served = service.model(name)
    async with service.admit():
        uploads, images, failures = await _receive_images(request, served.image_size)
        labels, values = await service.predict(served, images, request_deadline(request, service.limits))
    classes = served.classes
    kind = "probabilities" if served.has_probabilities else "scores"
    answers = _with_failures(uploads, failures, [
        {"label": classes[int(label)], "class_index": int(label), kind: dict(zip(classes, row.tolist()))}
        for label, row in zip(labels, values)
    ])
    return JSONResponse({"model": served.name, "version": served.version, "predictions": answers})


@router.post("/v1/models/{name}/features", tags=["features"], openapi_extra=IMAGES_REQUEST_BODY,
             responses={200: {"model": FeaturesAnswer, "content": {NPY_MEDIA_TYPE: {}}}, **ERROR_RESPONSES})
async def model_features(name: str, request: Request):
    """The model's feature rows (before normalization, as ``featpipe extract`` stores them).

    JSON by default; ``Accept: application/x-npy`` answers an (N, D) float32
    ``.npy`` file (every image must then be readable).
    """
    service = request.app.state.service
    served = service.model(name)
    async with service.admit():
        uploads, images, failures = await _receive_images(request, served.image_size,
                                                          all_or_nothing=_wants_npy(request))
        rows = await service.features(served, images, request_deadline(request, service.limits))
    spec = "+".join(name for name, _ in served.model.named_steps["features"].transformer_list)
    return _features_answer(request, spec, served.image_size, uploads, failures, rows)


@router.post("/v1/features/{spec}", tags=["features"], openapi_extra=IMAGES_REQUEST_BODY,
             responses={200: {"model": FeaturesAnswer, "content": {NPY_MEDIA_TYPE: {}}}, **ERROR_RESPONSES})
async def spec_features(spec: str, request: Request,
                        image_size: int = Query(32, description="Side images are resized to.")):
    """Features of extractors that learn nothing from data (e.g. ``hog+color``), images resized to ``image_size``.

    Each request is one vectorized call (these have no batcher).
    """
    service = request.app.state.service
    union = request.app.state.extractors.get(spec, image_size)
    async with service.admit():
        uploads, images, failures = await _receive_images(request, image_size, all_or_nothing=_wants_npy(request))
        rows = await service.transform(union, images) if len(images) else np.empty((0, 0), np.float32)
    return _features_answer(request, spec, image_size, uploads, failures, np.asarray(rows, dtype=np.float32))


async def _receive_images(request, image_size, all_or_nothing=False):
    """Read, split and decode a request's images; a single raw image that fails is a 422."""
    service = request.app.state.service
    limits = service.limits
    content_type = request.headers.get("content-type", "")
    check_content_type(content_type)
    limit = limits.max_image_bytes if is_raw_image(content_type) else limits.max_body_bytes
    body = await read_body(request, limit, request_deadline(request, limits))
    uploads = read_uploads(content_type, body, limits)
    request.state.images = len(uploads)
    images, failures = await service.decode(uploads, image_size)
    if failures and (is_raw_image(content_type) or all_or_nothing):
        index, message = failures[0]
        name = "the image" if is_raw_image(content_type) else f"image {uploads[index].name!r}"
        raise Problem(422, f"{name}: {message}", reason="bad_image")
    if time.monotonic() > request_deadline(request, limits):
        raise Problem(503, "the request waited past its deadline", reason="deadline")
    return uploads, images, failures


def _with_failures(uploads, failures, good_answers):
    """Per-upload answers in upload order: the good ones in turn, an error entry for each failure."""
    failed = dict(failures)
    good = iter(good_answers)
    return [
        {"name": upload.name, "error": failed[index]} if index in failed else {"name": upload.name, **next(good)}
        for index, upload in enumerate(uploads)
    ]


def _wants_npy(request):
    return NPY_MEDIA_TYPE in request.headers.get("accept", "")


def _features_answer(request, spec, image_size, uploads, failures, rows):
    if _wants_npy(request):
        buffer = io.BytesIO()
        np.save(buffer, rows, allow_pickle=False)
        return Response(buffer.getvalue(), media_type=NPY_MEDIA_TYPE)
    width = int(rows.shape[1]) if rows.ndim == 2 and len(rows) else 0
    answers = _with_failures(uploads, failures, [{"features": row.tolist()} for row in rows])
    return JSONResponse({"features": spec, "width": width, "image_size": image_size, "rows": answers})
