"""schemathesis against /openapi.json through the ASGI app: no 5xx, every answer as the schema says."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)

from featpipe.serve.app import create_app
from featpipe.serve.limits import Limits
from serve_support import make_service, train_runs

EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    runs = train_runs(tmp_path_factory.getbasetemp() / "serve-runs")
    service = make_service([runs["raw+svm"]], limits=Limits(request_timeout_ms=10_000))
    return create_app(service)   # schemathesis runs the app's lifespan itself


schema = schemathesis.pytest.from_fixture("openapi_schema")


@pytest.fixture(scope="module")
def openapi_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_or_off_schema(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_headers_conformance, response_schema_conformance])
