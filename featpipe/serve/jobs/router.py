"""The job endpoints, ``/v1/jobs``: an APIRouter any FastAPI app can include.

The app holds a :class:`featpipe.serve.jobs.runner.JobRunner` as
``app.state.jobs`` (``None`` or absent: the endpoints answer 404, as for a
server started without roots). Every error is JSON ``{"error": "one
line"}``; a body that does not validate is a 400 here, like every other
refusal at submission. The handlers are plain functions, so FastAPI runs
them in its thread pool: the SQLite calls and the checks of the disk never
block the event loop.
"""

import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from featpipe.errors import FeatpipeError
from featpipe.serve.jobs.job_store import PROGRESS_FIELDS, STATES
from featpipe.serve.jobs.paths import confine
from featpipe.serve.jobs.submission import ExtractRequest, RunRequest, prepare
from featpipe.store import format as store_format

NOT_ENABLED = ("jobs are not enabled on this server: start featpipe serve with --data-root, --store-root, "
               "--runs-root and --state-dir")


def error_answer(status, message, headers=None):
    """``{"error": message}`` with ``status``; the message on one line."""
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


class _JobRoute(APIRoute):
    """A route whose request validation errors are 400 with one line (the app may answer 422 elsewhere)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def answer(request):
            try:
                return await handler(request)
            except RequestValidationError as error:
                first = error.errors()[0] if error.errors() else {}
                where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
                return error_answer(400, f"{where or 'body'}: {first.get('msg', 'invalid value')}")

        return answer


class Progress(BaseModel):
    """How far a job is (extract jobs; empty fields until the first chunk is counted)."""

    images_done: int | None = None
    images_total: int | None = None
    chunks_done: int | None = None
    chunks_total: int | None = None
    images_per_second: float | None = Field(None, description="Since this attempt started.")
    skipped: int | None = Field(None, description="Unreadable images skipped so far.")


class Job(BaseModel):
    """A job as the API shows it."""

    id: str
    kind: Literal["extract", "run"]
    state: Literal[STATES]
    request: dict = Field(description="The request as queued (paths relative to their roots).")
    output: str = Field(description="The store (extract) or run folder (run) it writes, relative to its root.")
    progress: Progress
    error: str | None = Field(None, description="Why it failed, one line.")
    cancel_requested: bool
    attempts: int = Field(description="Times a worker started it (more than 1 after a restart).")
    created: str
    started: str | None = None
    finished: str | None = None


class JobList(BaseModel):
    """Jobs, newest first."""

    jobs: list[Job]


class Error(BaseModel):
    """An error answer."""

    error: str


def _time(seconds):
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def _view(job):
    request = job["request"]
    return {
        "id": job["id"], "kind": job["kind"], "state": job["state"], "request": request,
        "output": request["store"] if job["kind"] == "extract" else request["run"],
        "progress": {name: job[name] for name in PROGRESS_FIELDS}, "error": job["error"],
        "cancel_requested": job["cancel_requested"], "attempts": job["attempts"],
        "created": _time(job["created"]), "started": _time(job["started"]), "finished": _time(job["finished"]),
    }


def _runner(request):
    return getattr(request.app.state, "jobs", None)


_ERRORS = {status: {"model": Error} for status in (400, 404, 409)}
router = APIRouter(route_class=_JobRoute, tags=["jobs"], responses={404: {"model": Error}})


@router.post("/v1/jobs", status_code=202, response_model=Job, responses={
    **_ERRORS, 200: {"model": Job, "description": "An equal job is queued or running already: that job."}})
def submit_job(request: Request,
               body: Annotated[ExtractRequest | RunRequest, Body(discriminator="kind")]):
    """Queue an extract or run job (202 and its ``Location``); an equal active job is returned (200)."""
    runner = _runner(request)
    if runner is None:
        return error_answer(404, NOT_ENABLED)
    try:
        identity, target, fields = prepare(body, runner.roots)
        if body.kind == "run":
            runner.check_model_name(fields["name"], identity)
        job, created = runner.store.submit(body.kind, identity, target, fields)
    except FeatpipeError as error:
        return error_answer(400, error)
    except OSError as error:  # the disk refused a check (a name too long, no permission)
        return error_answer(400, f"cannot check the request's paths: {error.strerror or error}")
    runner.wake()
    return JSONResponse(Job.model_validate(_view(job)).model_dump(), status_code=202 if created else 200,
                        headers={"Location": f"/v1/jobs/{job['id']}"})


@router.get("/v1/jobs", response_model=JobList, responses=_ERRORS)
def list_jobs(request: Request, state: Literal[STATES] | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Jobs newest first, only those in ``state`` when given."""
    runner = _runner(request)
    if runner is None:
        return error_answer(404, NOT_ENABLED)
    return {"jobs": [_view(job) for job in runner.store.list(state, limit)]}


def _find(request, job_id):
    """(runner, job) or an error answer."""
    runner = _runner(request)
    if runner is None:
        return None, error_answer(404, NOT_ENABLED)
    job = runner.store.get(job_id)
    if job is None:
        return runner, error_answer(404, f"no job {job_id}")
    return runner, job


@router.get("/v1/jobs/{job_id}", response_model=Job, responses=_ERRORS)
def get_job(request: Request, job_id: str):
    """One job: state, progress, error line, output folder, times."""
    _, job = _find(request, job_id)
    return job if isinstance(job, JSONResponse) else _view(job)


@router.delete("/v1/jobs/{job_id}", status_code=202, response_model=Job, responses=_ERRORS)
def cancel_job(request: Request, job_id: str):
    """Cancel a job: a queued one at once, a running one at its next chunk boundary (finished shards kept)."""
    runner, job = _find(request, job_id)
    if isinstance(job, JSONResponse):
        return job
    if job["state"] in ("done", "failed"):
        return error_answer(409, f"job {job_id} is already {job['state']}")
    job = runner.store.request_cancel(job_id)
    runner.wake()
    return _view(job)


@router.get("/v1/jobs/{job_id}/result", responses={
    **_ERRORS, 200: {"content": {"application/json": {}},
                     "description": "The store's manifest.json (extract) or the run's metrics.json (run)."}})
def job_result(request: Request, job_id: str):
    """What a done job made: the store's manifest (extract) or the run's metrics.json (run)."""
    runner, job = _find(request, job_id)
    if isinstance(job, JSONResponse):
        return job
    if job["state"] != "done":
        return error_answer(409, f"job {job_id} is {job['state']}; its result exists once it is done")
    try:
        if job["kind"] == "extract":
            path = confine(runner.roots.stores, job["request"]["store"], "store") / store_format.MANIFEST_NAME
        else:
            path = confine(runner.roots.runs, job["request"]["run"], "run") / "metrics.json"
    except FeatpipeError as error:
        return error_answer(404, f"the output of job {job_id} cannot be read: {error}")
    if not path.is_file():
        return error_answer(404, f"the output of job {job_id} is gone")
    return FileResponse(path, media_type="application/json")
