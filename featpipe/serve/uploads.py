"""What a request carries: the encoded images of a raw body or of a multipart form.

Two forms are accepted, as ``POST .../predict`` and ``.../features`` document:

- the raw body is one image file (``Content-Type: image/*`` or
  ``application/octet-stream``);
- ``multipart/form-data`` with one or more parts named ``images`` (other
  fields are ignored).

The counting limits apply while the form is parsed: the part after the
allowed number of images, or an image part over the byte limit, stops the
parse with a 413.
"""

from dataclasses import dataclass

from python_multipart.multipart import MultipartParser, parse_options_header

from featpipe.serve.problems import Problem

IMAGE_FIELD = "images"
"""Name of the multipart parts that hold images."""


@dataclass(frozen=True)
class Upload:
    """One encoded image and the name the client gave it (its file name, or its position)."""

    name: str
    data: bytes


def is_multipart(content_type):
    """Whether a Content-Type is ``multipart/form-data``."""
    return parse_options_header(content_type or "")[0] == b"multipart/form-data"


def is_raw_image(content_type):
    """Whether a Content-Type announces one image file as the body."""
    media_type = parse_options_header(content_type or "")[0]
    return media_type.startswith(b"image/") or media_type == b"application/octet-stream"


def check_content_type(content_type):
    """Refuse (415) a body that is neither one image nor a multipart form, before reading it."""
    if not (is_raw_image(content_type) or is_multipart(content_type)):
        raise Problem(415, "send one image as the body (Content-Type: image/*) "
                           f"or multipart/form-data with '{IMAGE_FIELD}' parts")


def read_uploads(content_type, body, limits):
    """The images of a request body, checked against the count and byte limits.

    Parameters
    ----------
    content_type : str
        The request's ``Content-Type``.
    body : bytes
        The whole body (already bounded by the caller).
    limits : featpipe.serve.limits.Limits

    Returns
    -------
    uploads : list of Upload
        At least one.

    Raises
    ------
    Problem
        415 for another content type, 413 for too many or too large images,
        400 for a malformed form or one without images.
    """
    if is_raw_image(content_type):
        _check_image_bytes(len(body), limits)
        return [Upload("image", body)]
    check_content_type(content_type)
    return _parse_form(content_type, body, limits)


def _check_image_bytes(n_bytes, limits):
    if n_bytes > limits.max_image_bytes:
        raise Problem(413, f"an image of {n_bytes} bytes is over the limit of {limits.max_image_bytes} bytes",
                      reason="image_too_large")


def _parse_form(content_type, body, limits):
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise Problem(400, "multipart/form-data without a boundary")
    uploads = []
    part = {}

    def on_part_begin():
        part.clear()
        part.update(headers={}, field=b"", value=b"", data=bytearray(), is_image=False)

    def on_header_field(data, start, end):
        part["field"] += data[start:end]

    def on_header_value(data, start, end):
        part["value"] += data[start:end]

    def on_header_end():
        part["headers"][part["field"].lower()] = part["value"]
        part["field"], part["value"] = b"", b""

    def on_headers_finished():
        part["is_image"] = _field_name(part["headers"]) == IMAGE_FIELD

    def on_part_data(data, start, end):
        if part["is_image"]:
            part["data"] += data[start:end]
            _check_image_bytes(len(part["data"]), limits)

    def on_part_end():
        if not part["is_image"]:
            return
        if len(uploads) >= limits.max_images_per_request:
            raise Problem(413, f"more than {limits.max_images_per_request} images in one request",
                          reason="too_many_images")
        disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))[1]
        filename = disposition.get(b"filename", b"").decode("utf-8", "replace") or f"image {len(uploads)}"
        uploads.append(Upload(filename, bytes(part["data"])))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    try:
        parser.write(body)
        parser.finalize()
    except Problem:
        raise
    except Exception as error:  # python-multipart raises several types on malformed input
        raise Problem(400, f"malformed multipart body ({type(error).__name__})") from None
    if not uploads:
        raise Problem(400, f"the form has no '{IMAGE_FIELD}' part")
    return uploads


def _field_name(headers):
    disposition = parse_options_header(headers.get(b"content-disposition", b""))[1]
    return disposition.get(b"name", b"").decode("utf-8", "replace")
