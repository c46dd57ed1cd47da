"""schemathesis against /openapi.json through the ASGI app: no 5xx, every answer as the schema says."""

import pytest
import schemathesis

from featpipe.serve.app import create_app
from featpipe.serve.limits import Limits
from schema_fuzz import check_every_operation
from serve_support import make_service, train_runs

EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    runs = train_runs(tmp_path_factory.getbasetemp() / "serve-runs")
    service = make_service([runs["raw+svm"]], limits=Limits(request_timeout_ms=10_000))
    return create_app(service)   # schemathesis runs the app's lifespan itself


def test_no_operation_answers_5xx_or_off_schema(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    assert check_every_operation(schema, EXAMPLES_PER_OPERATION) >= 10
