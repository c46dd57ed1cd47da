"""schemathesis against the job endpoints of a server with job folders: no 5xx, every answer as the schema says."""

import shutil

import pytest
import schemathesis

from featpipe.serve.app import create_app
from featpipe.serve.jobs.runner import JobRunner
from jobs_helpers import make_roots
from schema_fuzz import check_every_operation
from serve_support import make_service

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def app(tmp_path_factory, small_npz):
    roots = make_roots(tmp_path_factory.mktemp("jobs"))
    shutil.copyfile(small_npz, roots.data / "small.npz")
    return create_app(make_service([]), JobRunner(roots))   # schemathesis runs the app's lifespan itself


def test_no_job_operation_answers_5xx_or_off_schema(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/v1/jobs")
    assert check_every_operation(schema, EXAMPLES_PER_OPERATION) >= 4
