"""Builders of hostile files for the trust-boundary tests: skops payloads that run code."""

import io
import json
import zipfile

PAYLOADS = ("exec", "eval", "getattr", "os.system", "subprocess")
"""Every payload kind :func:`payload_node` builds."""


def _json_node(value):
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}


def _call_node(module, name, *arguments):
    """A skops node that calls ``module.name(*arguments)`` when constructed."""
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                        "content": [argument if isinstance(argument, dict) else _json_node(argument)
                                    for argument in arguments]}}


def payload_node(kind, marker):
    """A node that, loaded by a skops loader that trusts it, creates the file ``marker``.

    ``getattr`` fetches ``os.system`` from an imported ``os`` (a building
    block of longer chains) and calls nothing itself.
    """
    if kind == "exec":
        return _call_node("builtins", "exec", f"open({str(marker)!r}, 'w').close()")
    if kind == "eval":
        return _call_node("builtins", "eval", f"open({str(marker)!r}, 'w').close()")
    if kind == "getattr":
        return _call_node("builtins", "getattr", _call_node("builtins", "__import__", "os"), "system")
    if kind == "os.system":
        return _call_node("os", "system", f"touch {marker}")
    if kind == "subprocess":
        return _call_node("subprocess", "call", {"__class__": "list", "__module__": "builtins",
                                                 "__loader__": "ListNode",
                                                 "content": [_json_node("touch"), _json_node(str(marker))]})
    raise ValueError(kind)


def rewrite_schema(data, change):
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = change(json.loads(source.read("schema.json")))
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        for name in source.namelist():
            payload = json.dumps(schema).encode() if name == "schema.json" else source.read(name)
            archive.writestr(name, payload)
    return output.getvalue()


def root_payload_file(path, kind, marker):
    """Write a skops file whose root object is the payload."""
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        archive.writestr("schema.json", json.dumps(dict(payload_node(kind, marker), protocol=2,
                                                        _skops_version="0.16.0")))
    path.write_bytes(output.getvalue())
    return path


def nested_payload_file(real_model_path, path, kind, marker):
    """Copy a real model file with the payload added as an extra attribute of its last object."""
    def add_payload(schema):
        objects = [node for node in _walk(schema) if node.get("__loader__") == "ObjectNode"]
        objects[-1]["content"]["content"]["extra_"] = payload_node(kind, marker)
        return schema

    path.write_bytes(rewrite_schema(real_model_path.read_bytes(), add_payload))
    return path


def _walk(item):
    if isinstance(item, dict):
        yield item
        for value in item.values():
            yield from _walk(value)
    elif isinstance(item, list):
        for value in item:
            yield from _walk(value)


class PicklePayload:
    """Pickles to a call of ``os.system("touch MARKER")``: what any pickle loader would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)
