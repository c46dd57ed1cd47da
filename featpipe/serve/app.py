"""The FastAPI application: routes, the request envelope, JSON errors.

:func:`create_app` assembles the service. Around every request,
:class:`RequestEnvelope` (plain ASGI, so it costs little):

- takes the client's ``X-Request-ID`` (printable, at most 128 characters)
  or makes one (a random prefix drawn at start and a counter: unique,
  and cheaper than a fresh UUID per request), and sends it back on every
  answer;
- checks the API key (health probes excepted), answering 401 before
  anything else runs;
- answers 503 to an inference request when the queue is full or the
  server is draining, before routing, so that rejecting stays cheap under
  overload;
- counts the request in flight (a draining server waits for these);
- turns any exception that escaped the handlers into a 500 with a generic
  JSON body, logging the traceback;
- writes one access-log line (method, path, status, milliseconds, images,
  request id) and observes ``featpipe_request_duration_seconds``.
"""

import itertools
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import cookie_parser

from featpipe import __version__
from featpipe.serve import kserve, page, routes
from featpipe.serve.auth import OPEN_PATHS
from featpipe.serve.extractors import ExtractorCache
from featpipe.serve.jobs.hosting import start_jobs, stop_jobs
from featpipe.serve.jobs.router import router as jobs_router
from featpipe.serve.problems import Problem

access_log = logging.getLogger("featpipe.serve.access")
logger = logging.getLogger("featpipe.serve")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_GENERIC_500 = b'{"error":"internal server error; the server log has the details"}'


def create_app(service, job_runner=None):
    """The ASGI app serving ``service`` (a :class:`featpipe.serve.service.Service`).

    ``job_runner`` (a :class:`featpipe.serve.jobs.runner.JobRunner`) enables
    the job endpoints; without it they answer 404.
    """

    @asynccontextmanager
    async def lifespan(app):
        await service.start()
        start_jobs(app, service)
        try:
            yield
        finally:
            await stop_jobs(app)
            await service.stop()

    app = FastAPI(
        title="featpipe serve", version=__version__, lifespan=lifespan,
        description="Trained featpipe pipelines and feature extraction over HTTP; "
                    "a KServe V2 subset under /v2. Errors are JSON {\"error\": \"...\"}.",
    )
    app.state.service = service
    app.state.jobs = job_runner
    app.state.extractors = ExtractorCache()
    app.include_router(routes.router)
    app.include_router(kserve.router)
    app.include_router(page.router)
    app.include_router(jobs_router)
    app.add_exception_handler(Problem, _problem_answer)
    app.add_exception_handler(RequestValidationError, _validation_answer)
    app.add_exception_handler(StarletteHTTPException, _http_answer)
    app.add_middleware(RequestEnvelope, service=service)
    return app


def error_response(status, message, headers=None):
    """A JSON error answer ``{"error": message}``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _problem_answer(request, problem):
    request.app.state.service.metrics.rejections.labels(problem.reason).inc()
    return error_response(problem.status, problem.message, problem.headers)


async def _validation_answer(request, error):
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    request.app.state.service.metrics.rejections.labels("invalid_parameter").inc()
    return error_response(422, f"{where}: {first.get('msg', 'invalid value')}")


async def _http_answer(request, error):
    request.app.state.service.metrics.rejections.labels(f"status_{error.status_code}").inc()
    message = error.detail if isinstance(error.detail, str) else "request refused"
    return error_response(error.status_code, message, getattr(error, "headers", None))


class RequestEnvelope:
    """ASGI middleware: request id, API key, in-flight count, 500s, access log, duration metric."""

    def __init__(self, app, service):
        self.app = app
        self.service = service
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_numbers = itertools.count(1)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state = scope.setdefault("state", {})
        state["arrived"] = started
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        offered = headers.get("x-request-id", "")
        request_id = offered if _REQUEST_ID.match(offered) else f"{self._id_prefix}-{next(self._id_numbers)}"
        outcome = {"status": 500, "started": False}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                outcome["started"] = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        self.service.in_flight += 1
        try:
            if scope["path"] not in OPEN_PATHS and not self.service.key_checker.allows(
                    headers, cookie_parser(headers.get("cookie", ""))):
                await self._refuse_key(scope, send_with_id)
            elif scope["method"] == "POST" and scope["path"] != "/login" and self.service.overloaded():
                await self._refuse_overload(send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unexpected error in %s %s (request %s)", scope["method"], scope["path"], request_id)
            if not outcome["started"]:
                await send_with_id({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json")]})
                await send_with_id({"type": "http.response.body", "body": _GENERIC_500})
        finally:
            self.service.in_flight -= 1
            self._record(scope, state, outcome["status"], started, request_id)

    async def _refuse_key(self, scope, send):
        self.service.metrics.rejections.labels("unauthorized").inc()
        if scope["path"] == "/" and scope["method"] == "GET":
            body, media_type = page.SIGN_IN_PAGE.encode(), b"text/html; charset=utf-8"
        else:
            body = json.dumps({"error": "missing or wrong API key (send Authorization: Bearer KEY)"}).encode()
            media_type = b"application/json"
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", media_type), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    async def _refuse_overload(self, send):
        """The 503 of a full queue or a draining server, answered before routing (the cheapest answer)."""
        problem = self.service.overload_problem()
        self.service.metrics.rejections.labels(problem.reason).inc()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"),
                                (b"retry-after", problem.headers["Retry-After"].encode())]})
        await send({"type": "http.response.body", "body": json.dumps({"error": problem.message}).encode()})

    def _record(self, scope, state, status, started, request_id):
        milliseconds = (time.monotonic() - started) * 1000
        route = scope.get("route")
        route_path = getattr(route, "path", None) or "unmatched"
        name = (scope.get("path_params") or {}).get("name")
        model = name if name is not None and self.service.registry.get(name) is not None else ""
        self.service.metrics.observe_request(route_path, model, str(status), milliseconds / 1000)
        access_log.info("%s %s %d %.1fms images=%d id=%s", scope["method"], scope["path"], status,
                        milliseconds, state.get("images", 0), request_id)
