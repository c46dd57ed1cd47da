"""Saving and loading trained pipelines with skops, trusting exact type names only.

A skops file is a zip archive whose ``schema.json`` names, node by node, the
type to rebuild (``__module__`` + ``__class__``) and how (``__loader__``).
Some loaders call the named type with stored arguments, so trusting a module
prefix (``builtins.``) would trust ``builtins.exec``. We therefore read the
schema ourselves before skops sees it and accept a file only when every
node's loader and every node's type is on the exact lists below, which hold
what a featpipe pipeline is made of: featpipe's extractors and heads, the
scikit-learn Pipeline, FeatureUnion, StandardScaler and heads the registry
offers, and the plain containers and numpy arrays they hold. A test saves a
model of every feature and head and checks it loads, so the lists are
neither too short nor, by review, longer than needed.

Saved files are deterministic: skops names nodes and arrays by ``id()`` and
stamps zip entries with the current time; :func:`save_model` renumbers the
ids in the order they appear and writes every entry with a fixed date, so
the same model gives the same bytes in every process.
"""

import io
import json
import os
import zipfile
from pathlib import Path

from featpipe.errors import ModelFileError

ALLOWED_LOADERS = frozenset({
    "ObjectNode", "DictNode", "ListNode", "TupleNode", "JsonNode", "NdArrayNode", "TypeNode",
    "CachedNode",
})
"""skops node kinds that only rebuild data. Loaders that call a named
function or type with stored arguments (``ConstructorFromReduceNode``,
``ReduceNode``, ``FunctionNode``, ``MethodNode``, ``PartialNode``,
``OperatorFuncNode``, ...) are refused whatever type they name."""

ALLOWED_TYPES = frozenset({
    "featpipe.features.raw.RawPixels",
    "featpipe.features.color.ColorHistogram",
    "featpipe.features.hog.HOG",
    "featpipe.features.words.KMeansWords",
    "featpipe.heads.linear.LinearSVM",
    "featpipe.heads.linear.Softmax",
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.linear_model._logistic.LogisticRegression",
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int",
    "builtins.float", "builtins.bool", "builtins.NoneType",
    "numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32",
    "numpy.uint8", "numpy.bool_",
})
"""Exact ``module.Class`` names a featpipe model file may rebuild."""

MAX_UNPACKED_BYTES = 4 * 2**30
"""Refuse an archive whose members claim more than this (a zip bomb)."""

MAX_SCHEMA_BYTES = 64 * 2**20
"""Refuse a ``schema.json`` larger than this (a real one holds no arrays: a few KB)."""

_FIXED_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def save_model(model, path):
    """Write ``model`` to ``path`` in skops format, byte for byte reproducibly.

    Parameters
    ----------
    model : object
        A fitted pipeline, FeatureUnion or estimator made of the types in
        :data:`ALLOWED_TYPES`.
    path : path-like
        Destination file (replaced).
    """
    import skops.io as sio

    Path(path).write_bytes(_deterministic_archive(sio.dumps(model)))


def load_model(path):
    """Read a model saved by :func:`save_model`, running no code the file names.

    Parameters
    ----------
    path : path-like
        A ``.skops`` file, possibly from a stranger.

    Returns
    -------
    model : object
        The rebuilt pipeline or estimator.

    Raises
    ------
    ModelFileError
        When the file cannot be read, is not a skops archive, or names a
        loader or type outside :data:`ALLOWED_LOADERS` / :data:`ALLOWED_TYPES`
        (the message names the first such type).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ModelFileError(f"cannot read model file {path}: {error.strerror or error}") from None
    types = _check_archive(path, data)
    import skops.io as sio

    try:
        return sio.loads(data, trusted=sorted(types))
    except Exception as error:  # skops and numpy raise many types for damaged content
        raise ModelFileError(f"{path} is not a featpipe model file ({type(error).__name__}: {error})") from None


def _check_archive(path, data):
    """Return the set of type names ``data`` asks for, or raise ModelFileError."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if sum(member.file_size for member in members) > MAX_UNPACKED_BYTES:
                raise ModelFileError(f"{path} unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; refused")
            if archive.getinfo("schema.json").file_size > MAX_SCHEMA_BYTES:
                raise ModelFileError(f"{path} has a schema of more than {MAX_SCHEMA_BYTES >> 20} MiB; refused")
            schema = json.loads(archive.read("schema.json"))
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, EOFError) as error:
        raise ModelFileError(f"{path} is not a featpipe model file ({type(error).__name__}: {error})") from None
    types = set()
    for node in _nodes(schema):
        loader = node.get("__loader__")
        type_name = f"{node.get('__module__')}.{node.get('__class__')}"
        if loader not in ALLOWED_LOADERS:
            raise ModelFileError(f"{path} asks for {type_name} through skops' {loader}; "
                                 "featpipe loads no such node, refused")
        if type_name not in ALLOWED_TYPES:
            raise ModelFileError(f"{path} asks for type {type_name}, which is not part of "
                                 "a featpipe pipeline; refused")
        types.add(type_name)
    return types


def _nodes(schema):
    """Every dict in the schema that carries a ``__loader__`` key, depth first, iteratively."""
    pending = [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            pending.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            pending.extend(reversed(item))


def _deterministic_archive(data):
    """Rewrite a skops archive with ids numbered by first appearance and fixed zip dates."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        arrays = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    renumbered = {}

    def new_id(old_id):
        return renumbered.setdefault(old_id, len(renumbered) + 1)

    for node in _nodes(schema):
        if "__id__" in node:
            node["__id__"] = new_id(node["__id__"])
        if isinstance(node.get("file"), str):
            stem, extension = os.path.splitext(node["file"])
            node["file"] = f"{new_id(int(stem)) if stem.isdigit() else stem}{extension}"
    renamed = {}
    for name, payload in arrays.items():
        stem, extension = os.path.splitext(name)
        renamed[f"{new_id(int(stem)) if stem.isdigit() else stem}{extension}"] = payload
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_STORED) as archive:
        entries = [("schema.json", json.dumps(schema, indent=2).encode("utf-8"))] + sorted(renamed.items())
        for name, payload in entries:
            archive.writestr(zipfile.ZipInfo(name, date_time=_FIXED_ZIP_DATE), payload)
    return output.getvalue()
