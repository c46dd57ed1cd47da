"""Shapes of the service's JSON answers and request bodies, as OpenAPI documents them.

The handlers build plain dicts for speed; these models exist so that
``/openapi.json`` (and so ``/docs`` and any generated client) describes
exactly what they send.
"""

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error answer: one line, never a traceback."""

    error: str


class Prediction(BaseModel):
    """The answer for one image: a class, or the reason the image could not be used."""

    name: str = Field(description="The part's file name, or 'image' for a raw body.")
    label: str | None = Field(None, description="Class name.")
    class_index: int | None = Field(None, description="Index of the class in the model's classes.")
    probabilities: dict[str, float] | None = Field(None, description="Class -> probability (heads with predict_proba).")
    scores: dict[str, float] | None = Field(None, description="Class -> decision score (other heads).")
    error: str | None = Field(None, description="Why this image could not be classified.")


class PredictAnswer(BaseModel):
    """``POST /v1/models/{name}/predict``."""

    model: str
    version: str
    predictions: list[Prediction]


class FeatureRow(BaseModel):
    """Features of one image, or the reason it could not be used."""

    name: str
    features: list[float] | None = None
    error: str | None = None


class FeaturesAnswer(BaseModel):
    """``POST /v1/models/{name}/features`` and ``POST /v1/features/{spec}``."""

    features: str = Field(description="The feature spec, e.g. hog+color.")
    width: int
    image_size: int
    rows: list[FeatureRow]


class ModelInfo(BaseModel):
    """``GET /v1/models/{name}``."""

    name: str
    spec: str | None
    version: str
    classes: list[str]
    image_size: int
    feature_width: int
    feature_widths: dict[str, int]
    accuracy: dict[str, float | None]
    outputs: str = Field(description="'probabilities' or 'scores'.")
    ready: bool


class ModelList(BaseModel):
    """``GET /v1/models``."""

    models: list[ModelInfo]


class Status(BaseModel):
    """Health answers."""

    status: str


ERROR_RESPONSES = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request.",
        401: "Missing or wrong API key.",
        404: "Unknown model or feature.",
        408: "The body did not arrive in time.",
        413: "Body, image or image count over a limit.",
        415: "Unsupported Content-Type.",
        422: "Undecodable image, image over the pixel limit, or invalid parameter.",
        503: "Queue full, deadline passed, or shutting down (with Retry-After).",
        500: "Unexpected error (generic body; details in the server log).",
    }.items()
}
"""Error statuses every inference route may answer."""

IMAGES_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["images"],
                },
            },
        },
    },
}
"""OpenAPI request body of the routes that take images: one raw image, or a form of ``images`` parts."""
