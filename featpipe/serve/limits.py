"""The service's limits and the checks that enforce them before any work is done.

Every limit here bounds memory or time per request, so that the worst a
client can do is known in advance (see docs/serve.md, "Limits and memory"):

- ``max_image_bytes``: one encoded image; a raw body over it, or a
  multipart body over ``max_images_per_request`` times it, is refused (413)
  from its ``Content-Length`` before a byte is read, or as soon as the
  streamed body passes it.
- ``max_images_per_request``: more images than this in one request is 413.
- ``max_pixels``: width x height read from the image header, before the
  pixels are decoded (by featpipe's decoder, :func:`decode_upload`); over
  it is 422 (a decompression bomb never expands).
- ``queue_size``: requests admitted at once (reading, decoding, waiting or
  being predicted); one more is 503 with ``Retry-After``.
- ``request_timeout_ms``: the deadline of a request from its arrival; a body
  that has not arrived by then is 408, a request still waiting for its
  batch is 503.
"""

import asyncio
import io
import time
import warnings
from dataclasses import dataclass

from PIL import Image

from featpipe.datasets.images import ImageTooLargeError, decode_image
from featpipe.datasets.options import DEFAULT_MAX_PIXELS
from featpipe.errors import FeatpipeError
from featpipe.serve.problems import Problem

MULTIPART_OVERHEAD_BYTES = 4096
"""Allowance per image for multipart boundaries and part headers."""


class LimitError(FeatpipeError):
    """A limit given on the command line that cannot be used."""


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
    max_pixels: int = DEFAULT_MAX_PIXELS
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

    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
            async for chunk in request.stream():
                received.extend(chunk)
                if len(received) > limit:
                    raise Problem(413, f"request body is over the limit of {limit} bytes", reason="body_too_large")
    except TimeoutError:
        raise Problem(408, "the request body did not arrive before the request timeout",
                      reason="body_timeout") from None
    return bytes(received)


def image_pixels(data):
    """Width x height of an encoded image, read from its header only (to size the work, not to refuse it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    return width * height


def decode_upload(data, image_size, max_pixels):
    """Decode one uploaded image exactly as ``featpipe predict`` decodes a file.

    The decoder is :func:`featpipe.datasets.images.decode_image`, so its
    hardening applies: the pixel count is read from the header (after the
    JPEG draft scale) and checked against ``max_pixels`` before any pixel is
    decoded, and Pillow's decompression-bomb warning is an error.

    Parameters
    ----------
    data : bytes
        The encoded image.
    image_size : int
        Side of the decoded square image.
    max_pixels : int
        Largest width x height decoded.

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
        return decode_image(io.BytesIO(data), image_size, max_pixels)
    except ImageTooLargeError as error:
        raise ValueError(str(error)) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ValueError("image has more pixels than Pillow decodes safely; not decoded") from None
    except Image.UnidentifiedImageError:
        raise ValueError("not an image file (no format Pillow reads)") from None
    except Exception as error:  # Pillow's plugins raise many types on malformed or truncated files
        raise ValueError(f"cannot decode image ({_one_line(error)})") from None


def _one_line(error):
    message = " ".join(str(error).split()) or "no details"
    return f"{type(error).__name__}: {message}"
