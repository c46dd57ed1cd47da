"""Reading and writing KServe V2 / Open Inference Protocol bodies, JSON or binary.

The binary tensor data extension (what ``tritonclient.http`` sends by
default): the body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the raw tensors, in the order of the inputs whose
``parameters`` carry ``binary_data_size``. A BYTES tensor is its elements one
after another, each prefixed by its length as a 4-byte little-endian
unsigned integer. In plain JSON, featpipe reads each BYTES element of the
``image`` input as the base64 of an image file (the protocol leaves the
encoding of binary BYTES in JSON open).
"""

import base64
import binascii
import json
import math
import struct

import numpy as np

from featpipe.serve.problems import Problem

HEADER_LENGTH = "inference-header-content-length"
"""Request header giving the JSON part's length (lower case, as ASGI gives headers)."""

IMAGE_INPUT = "image"
"""The one input every featpipe model takes: encoded image files, BYTES [N]."""

_LENGTH_PREFIX = struct.Struct("<I")


def parse_infer_request(body, header_length, max_images):
    """The request's JSON header and its images, as a list of bytes.

    Parameters
    ----------
    body : bytes
    header_length : str or None
        The ``Inference-Header-Content-Length`` header, when sent.
    max_images : int
        More images than this is a 413, found from the declared shape before
        any element is read.

    Raises
    ------
    Problem
        400 for anything malformed, 413 for too many images.
    """
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise Problem(400, "Inference-Header-Content-Length is not a length within the body")
        split = int(header_length)
        header, binary = body[:split], body[split:]
    else:
        header, binary = body, b""
    try:
        request = json.loads(header)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "the inference request is not valid JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise Problem(400, "the inference request needs an 'inputs' list")
    images = None
    offset = 0
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict):
            raise Problem(400, "every input must be an object")
        parameters = tensor.get("parameters") if isinstance(tensor.get("parameters"), dict) else {}
        size = parameters.get("binary_data_size")
        if size is not None and (not isinstance(size, int) or size < 0 or offset + size > len(binary)):
            raise Problem(400, f"input {tensor.get('name')!r}: binary_data_size runs past the body")
        raw = binary[offset:offset + size] if size is not None else None
        offset += size or 0
        if tensor.get("name") == IMAGE_INPUT:
            images = _image_tensor(tensor, raw, max_images)
    if images is None:
        raise Problem(400, f"the inference request has no '{IMAGE_INPUT}' input (BYTES, shape [N])")
    if offset != len(binary):
        raise Problem(400, "the binary part is longer than the inputs' binary_data_size")
    return request, images


def _image_tensor(tensor, raw, max_images):
    shape = tensor.get("shape")
    if tensor.get("datatype") != "BYTES":
        raise Problem(400, f"input '{IMAGE_INPUT}' must have datatype BYTES; got {tensor.get('datatype')!r}")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                             for d in shape):
        raise Problem(400, f"input '{IMAGE_INPUT}' needs a shape of non-negative integers, e.g. [N]")
    count = math.prod(shape)
    if count > max_images:
        raise Problem(413, f"more than {max_images} images in one request", reason="too_many_images")
    if count == 0:
        raise Problem(400, f"input '{IMAGE_INPUT}' holds no image")
    elements = _split_bytes(raw) if raw is not None else _json_elements(tensor.get("data"))
    if len(elements) != count:
        raise Problem(400, f"input '{IMAGE_INPUT}' has shape {shape} but {len(elements)} elements")
    return elements


def _split_bytes(raw):
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise Problem(400, "a BYTES element's length prefix is cut short")
        (length,) = _LENGTH_PREFIX.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise Problem(400, "a BYTES element runs past its tensor")
        elements.append(raw[offset:offset + length])
        offset += length
    return elements


def _json_elements(data):
    if not isinstance(data, list):
        raise Problem(400, f"input '{IMAGE_INPUT}' has neither 'data' nor binary_data_size")
    flat = list(_flatten(data))
    try:
        return [base64.b64decode(element, validate=True) for element in flat]
    except (binascii.Error, ValueError, TypeError):
        raise Problem(400, f"each JSON element of '{IMAGE_INPUT}' must be the base64 of an image file") from None


def _flatten(data):
    for element in data:
        if isinstance(element, list):
            yield from _flatten(element)
        else:
            yield element


def requested_outputs(request, available):
    """[(output name, binary?)] the request asks for, in order; every output when it names none."""
    parameters = request.get("parameters") if isinstance(request.get("parameters"), dict) else {}
    all_binary = bool(parameters.get("binary_data_output", False))
    asked = request.get("outputs")
    if asked is None:
        return [(name, all_binary) for name in available]
    if not isinstance(asked, list) or not all(isinstance(output, dict) for output in asked):
        raise Problem(400, "'outputs' must be a list of objects")
    chosen = []
    for output in asked:
        if output.get("name") not in available:
            raise Problem(400, f"unknown output {output.get('name')!r}; this model has {', '.join(available)}")
        output_parameters = output.get("parameters") if isinstance(output.get("parameters"), dict) else {}
        chosen.append((output["name"], bool(output_parameters.get("binary_data", all_binary))))
    return chosen


def encode_infer_response(header, tensors, outputs):
    """The response body and its extra headers.

    Parameters
    ----------
    header : dict
        ``model_name``, ``model_version``, ``id``...; ``outputs`` is added.
    tensors : dict
        Output name -> (datatype, numpy array); BYTES arrays hold ``bytes``.
    outputs : list of (str, bool)
        From :func:`requested_outputs`.

    Returns
    -------
    body : bytes
    headers : dict
        ``Inference-Header-Content-Length`` when any output is binary.
    """
    described, chunks = [], []
    for name, binary in outputs:
        datatype, values = tensors[name]
        entry = {"name": name, "datatype": datatype, "shape": list(values.shape)}
        if binary:
            raw = _bytes_tensor(values) if datatype == "BYTES" else np.ascontiguousarray(values, "<f4").tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif datatype == "BYTES":
            entry["data"] = [value.decode("utf-8") for value in values.ravel()]
        else:
            entry["data"] = values.ravel().tolist()
        described.append(entry)
    json_part = json.dumps({**header, "outputs": described}).encode("utf-8")
    if not chunks:
        return json_part, {}
    return json_part + b"".join(chunks), {"Inference-Header-Content-Length": str(len(json_part))}


def _bytes_tensor(values):
    return b"".join(_LENGTH_PREFIX.pack(len(value)) + value for value in values.ravel())
