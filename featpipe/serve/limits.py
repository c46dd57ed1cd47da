"""The service's limits and the checks that enforce them before any work is done.

Every limit here bounds memory or time per request, so that the worst a
client can do is known in advance (see docs/serve.md, "Limits and memory"):

- ``max_image_bytes``: one encoded image; a raw body over it, or a
  multipart body over ``max_images_per_request`` times it, is refused (413)
  from its ``Content-Length`` before a byte is read, or as soon as the
  streamed body passes it.
- ``max_images_per_request``: more images than this in one request is 413.
- ``max_pixels``: width x height read from the image header, before the
  pixels are decoded; over it is 422 (a decompression bomb never expands).
- ``queue_size``: requests admitted at once (reading, decoding, waiting or
  being predicted); one more is 503 with ``Retry-After``.
- ``request_timeout_ms``: the deadline of a request from its arrival; a body
  that has not arrived by then is 408, a request still waiting for its
  batch is 503.
"""

import asyncio
import io
import re
import time
import warnings
from dataclasses import dataclass

from PIL import Image

from featpipe.datasets.images import decode_image
from featpipe.errors import FeatpipeError
from featpipe.serve.problems import Problem

_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*$")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

MULTIPART_OVERHEAD_BYTES = 4096
"""Allowance per image for multipart boundaries and part headers."""


class LimitError(FeatpipeError):
    """A limit given on the command line that cannot be used."""


def parse_size(text):
    """Read a byte count such as ``10M``, ``512k``, ``1G`` or ``2048`` (binary units).

    Raises
    ------
    LimitError
        For anything else, or a size below one byte.
    """
    match = _SIZE_PATTERN.match(str(text))
    if not match:
        raise LimitError(f"not a size: {text!r} (use a number of bytes, or e.g. 512k, 10M, 1G)")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size < 1:
        raise LimitError(f"a size must be at least one byte; got {text!r}")
    return size


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the service.

    Attributes
    ----------
    max_image_bytes : int
        Largest encoded image accepted.
    max_pixels : int
        Largest width x height accepted, read from the image header.
    max_images_per_request : int
        Most images in one request.
    queue_size : int
        Most requests admitted at once; the next one is answered 503.
    request_timeout_ms : int
        Deadline of a request, from its arrival.
    max_batch : int
        Most images in one model call.
    max_wait_ms : float
        Longest time the first image of a batch waits for company.
    """

    max_image_bytes: int = 10 * 1024**2
    max_pixels: int = 40_000_000
    max_images_per_request: int = 64
    queue_size: int = 256
    request_timeout_ms: int = 30_000
    max_batch: int = 64
    max_wait_ms: float = 5.0

    def __post_init__(self):
        for name in ("max_image_bytes", "max_pixels", "max_images_per_request", "queue_size",
                     "request_timeout_ms", "max_batch"):
            if getattr(self, name) < 1:
                raise LimitError(f"{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise LimitError(f"max-wait-ms must be 0 or more; got {self.max_wait_ms}")

    @property
    def max_body_bytes(self):
        """Largest body of a multipart or V2 request: every image at its limit, plus framing."""
        return self.max_images_per_request * (self.max_image_bytes + MULTIPART_OVERHEAD_BYTES)

    def memory_bound_bytes(self, image_size=32):
        """Bytes that admitted requests can hold at once: queue x images x (encoded + decoded)."""
        decoded = image_size * image_size * 3
        return self.queue_size * self.max_images_per_request * (self.max_image_bytes + decoded)


def check_content_length(headers, limit):
    """Refuse (413) a body whose declared length is over ``limit``, before reading it."""
    declared = headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise Problem(400, "Content-Length is not a number")
    if int(declared) > limit:
        raise Problem(413, f"request body of {int(declared)} bytes is over the limit of {limit} bytes",
                      reason="body_too_large")


async def read_body(request, limit, deadline):
    """The request body, refused (413) as soon as it passes ``limit``, (408) if it arrives too late.

    Parameters
    ----------
    request : starlette.requests.Request
    limit : int
        Most bytes accepted.
    deadline : float
        ``time.monotonic()`` by which the whole body must have arrived.
    """
    check_content_length(request.headers, limit)
    received = bytearray()

    async def receive_all():
        async for chunk in request.stream():
            received.extend(chunk)
            if len(received) > limit:
                raise Problem(413, f"request body is over the limit of {limit} bytes", reason="body_too_large")

    try:
        await asyncio.wait_for(receive_all(), timeout=max(deadline - time.monotonic(), 0.001))
    except TimeoutError:
        raise Problem(408, "the request body did not arrive before the request timeout",
                      reason="body_timeout") from None
    return bytes(received)


def image_pixels(data):
    """Width x height of an encoded image, read from its header only."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    return width * height


def decode_upload(data, image_size, max_pixels):
    """Decode one uploaded image as ``featpipe predict`` decodes a file, after a header-first pixel check.

    Parameters
    ----------
    data : bytes
        The encoded image.
    image_size : int
        Side of the decoded square image.
    max_pixels : int
        Largest width x height accepted.

    Returns
    -------
    image : ndarray of uint8, shape (image_size, image_size, 3)

    Raises
    ------
    ValueError
        One line saying why the image cannot be used (not an image, too many
        pixels, truncated or corrupt).
    """
    if not data:
        raise ValueError("empty image")
    try:
        pixels = image_pixels(data)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ValueError(f"image has more pixels than the limit of {max_pixels}") from None
    except Image.UnidentifiedImageError:
        raise ValueError("not an image file (no format Pillow reads)") from None
    except Exception as error:  # Pillow's plugins raise many types on malformed headers
        raise ValueError(f"not a readable image ({_one_line(error)})") from None
    if pixels > max_pixels:
        raise ValueError(f"image of {pixels} pixels is over the limit of {max_pixels} pixels")
    try:
        return decode_image(io.BytesIO(data), image_size)
    except Exception as error:  # truncated or corrupt pixel data
        raise ValueError(f"cannot decode image ({_one_line(error)})") from None


def _one_line(error):
    message = " ".join(str(error).split()) or "no details"
    return f"{type(error).__name__}: {message}"
