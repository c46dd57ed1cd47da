"""Run schemathesis over every operation of an OpenAPI schema with plain Hypothesis.

The tests call this instead of schemathesis's pytest plugin (``from_fixture`` / ``parametrize``):
the plugin renames pytest's private ``Function._nodeid``, which pytest 9.2 no longer has, so
its tests fail on any fresh install. Driving ``operation.as_strategy()`` with ``@given`` needs
only schemathesis's public API and names the failing operation in the error.
"""

from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def check_every_operation(schema, max_examples):
    """Fuzz each operation of ``schema`` with ``max_examples`` cases; return how many operations ran.

    Raises
    ------
    AssertionError
        For the first operation with a 5xx or an answer the schema does not describe; the
        message names the operation and carries schemathesis's own failure report.
    """
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call_and_validate(case):
            case.call_and_validate(checks=CHECKS)

        try:
            call_and_validate()
        except Exception as failure:
            raise AssertionError(f"{operation.method.upper()} {operation.path}: {failure}") from failure
    return len(operations)
