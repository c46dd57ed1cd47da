"""What a job request may say, and its checks at submission (so a bad job is a 400, not a failure later).

:class:`ExtractRequest` and :class:`RunRequest` are the JSON bodies of
``POST /v1/jobs``, told apart by ``kind``; unknown fields are refused. :func:`prepare` then checks what the body names against the
disk: feature and pipeline names, the data folder, the store and the run
folder, each confined to its root (:mod:`featpipe.serve.jobs.paths`), and
whether another process holds the store's lock. It returns the record the
job store queues.
"""

import re
import time
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from featpipe.errors import FeatpipeError, SpecError
from featpipe.pipeline.inputs import check_store_serves
from featpipe.pipeline.spec import parse_features, resolve
from featpipe.serve.jobs.paths import check_links_inside, confine
from featpipe.store import format as store_format
from featpipe.store.lock import StoreLock

_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,100}$")
"""What a pipeline spec or name and a served model's name may hold (they appear in URL paths)."""


class SubmissionError(FeatpipeError):
    """A job request that cannot run: its answer is a 400 with this line."""


class _JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_size: Annotated[int, Field(ge=8, le=1024)] | None = Field(
        None, description="Side images are resized to (default 32, or a pipeline file's).")
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = Field(0, description="Seed of the splits and of fitting.")
    n_jobs: Annotated[int, Field(ge=1, le=256)] | None = Field(
        None, description="Processes the job uses (default: every core, at low priority).")


class ExtractRequest(_JobRequest):
    """Extract features of the images under ``data`` into the store ``store`` (``featpipe extract``)."""

    kind: Literal["extract"]
    features: str = Field(description="Feature spec, e.g. 'hog+color'.", examples=["hog+color"])
    data: str = Field(description="Image folder or .npz file, relative to --data-root.",
                      examples=["cifar10-jpg/test"])
    store: str = Field(description="Store folder to write, relative to --store-root.",
                       examples=["cifar-test-hog-color"])
    chunk_size: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="Images per shard, the unit of resuming (default 500).")
    strict: bool = Field(False, description="Fail at the first unreadable image instead of skipping it.")


class RunRequest(_JobRequest):
    """Train ``pipeline`` on a store (or on images) and write a run folder (``featpipe run``)."""

    kind: Literal["run"]
    pipeline: str = Field(description="Spec or named pipeline, e.g. 'hog+color+svm'.", examples=["hog+color+svm"])
    store: str | None = Field(None, description="Finished store to train on, relative to --store-root.")
    data: str | None = Field(None, description="Or images to train on, relative to --data-root.")
    search: bool = Field(False, description="Search learning rate x regularization first.")
    run: str | None = Field(None, description="Run folder relative to --runs-root (default <time>-<spec>).")
    name: str | None = Field(None, description="Name the trained model is served under (default the spec).")


def _relative(path):
    """A request path in one spelling (``a//b/./c`` -> ``a/b/c``), so equal jobs compare equal."""
    return str(PurePosixPath(path))


def _check_data(roots, relative):
    data = confine(roots.data, relative, "data")
    if not data.exists():
        raise SubmissionError(f"data {relative!r} not found under the data root")
    if not (data.is_dir() or data.suffix.lower() == ".npz"):
        raise SubmissionError(f"data {relative!r} must be an image folder or an .npz file")
    check_links_inside(data, roots.data, "data")
    return data


def _check_store_is_free(store, relative):
    if not store.exists():
        return
    if not store.is_dir():
        raise SubmissionError(f"store {relative!r} exists and is not a folder")
    holder = StoreLock(store).holder()
    if holder is not None:
        raise SubmissionError(f"store {relative!r} is locked by another job (pid {holder.get('pid')} on "
                              f"{holder.get('host')}, started {holder.get('started')})")
    if store_format.read_manifest(store) is None and any(store.iterdir()):
        raise SubmissionError(f"store {relative!r} exists, is not a feature store and is not empty")


def _prepare_extract(request, roots):
    try:
        parse_features(request.features)
    except SpecError as error:
        raise SubmissionError(str(error)) from None
    data, store = _check_data(roots, request.data), confine(roots.stores, request.store, "store")
    _check_store_is_free(store, request.store)
    fields = request.model_dump(exclude_none=True)
    fields.update(features=request.features.strip(), data=_relative(request.data), store=_relative(request.store))
    identity = {"kind": "extract", "features": fields["features"], "data": str(data), "store": str(store)}
    return identity, str(store), fields


def _prepare_run(request, roots):
    if (request.store is None) == (request.data is None):
        raise SubmissionError("a run job trains on either 'store' or 'data', exactly one of them")
    if not _NAME.match(request.pipeline) or request.pipeline.endswith(".toml"):
        raise SubmissionError("pipeline must be a spec such as 'hog+color+svm' or a named pipeline, not a file")
    try:
        spec = resolve(request.pipeline)
    except SpecError as error:
        raise SubmissionError(str(error)) from None
    if request.name is not None and not _NAME.match(request.name):
        raise SubmissionError("name may hold only letters, digits, '.', '_', '+' and '-' (at most 100)")
    fields = request.model_dump(exclude_none=True)
    if request.store is not None:
        store = confine(roots.stores, request.store, "store")
        manifest = store_format.read_manifest(store) if store.is_dir() else None
        if manifest is None or not manifest.get("complete"):
            raise SubmissionError(f"store {request.store!r} is not a finished feature store")
        try:
            check_store_serves(request.store, spec, request.seed, manifest)
        except SpecError as error:
            raise SubmissionError(str(error)) from None
        source, fields["store"] = str(store), _relative(request.store)
    else:
        source, fields["data"] = str(_check_data(roots, request.data)), _relative(request.data)
    fields["run"] = _relative(request.run or f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.name.replace('/', '_')}")
    run_dir = confine(roots.runs, fields["run"], "run")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise SubmissionError(f"run folder {fields['run']!r} exists and is not empty: a run never replaces "
                              "another; give the job another 'run'")
    fields["name"] = request.name or spec.name
    identity = {"kind": "run", "pipeline": request.pipeline.strip(), "source": source,
                "search": request.search, "name": fields["name"], "run": str(run_dir)}
    return identity, str(run_dir), fields


def prepare(request, roots):
    """Check a validated request against the roots; return ``(identity, target, fields)`` to queue.

    Raises
    ------
    SubmissionError, PathRefused
        With the one line a 400 answer carries.
    """
    if isinstance(request, ExtractRequest):
        return _prepare_extract(request, roots)
    return _prepare_run(request, roots)
