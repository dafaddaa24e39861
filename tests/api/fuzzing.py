"""The API under generated requests (schemathesis, from its own OpenAPI schema, in process):
never a server error, and every status, content type and body one the schema documents."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode


@contextmanager
def api_schema(tag_regex: str) -> Iterator[Any]:
    """The operations of the tags matching TAG_REGEX, called through the WSGI app. As Django's
    test client does, the test's connection (its transaction) stays open across requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/v1/openapi.json", get_wsgi_application()
        ).include(tag_regex=tag_regex)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def operations_fuzz(schema: Any, *, token: str, negative: bool = True) -> int:
    """Draw FUZZ_EXAMPLES (15) cases per operation, valid ones and, with NEGATIVE, invalid ones
    too, and check each response; the number of operations. (schemathesis' pytest loaders do not
    run under pytest 9: each operation's strategy is drawn here.)"""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = list(GenerationMode) if negative else [None]
    for operation, mode in itertools.product(operations, modes):
        strategy = operation.as_strategy(generation_mode=mode) if mode else operation.as_strategy()

        @given(case=strategy)
        @settings(
            max_examples=int(os.environ.get("FUZZ_EXAMPLES", "15")),
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=checks)

        check()
    return len(operations)
