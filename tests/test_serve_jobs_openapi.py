"""schemathesis against the job endpoints of a server with job folders: no 5xx, every answer as the schema says."""

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)

from featpipe.serve.app import create_app
from featpipe.serve.jobs.runner import JobRunner
from jobs_helpers import make_roots
from serve_support import make_service

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def app(tmp_path_factory, small_npz):
    roots = make_roots(tmp_path_factory.mktemp("jobs"))
    shutil.copyfile(small_npz, roots.data / "small.npz")
    return create_app(make_service([]), JobRunner(roots))   # schemathesis runs the app's lifespan itself


schema = schemathesis.pytest.from_fixture("openapi_schema")


@pytest.fixture(scope="module")
def openapi_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/v1/jobs")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_job_operation_answers_5xx_or_off_schema(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_headers_conformance, response_schema_conformance])
