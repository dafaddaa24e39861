"""The conversations and visitors API under generated requests (schemathesis, from its own
OpenAPI schema): never a server error, and every status and body is one the schema documents."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings

from tests.api.keys import api_key
from tests.privacy.data import visitor_with_data


@pytest.fixture
def conversations_schema(db: None) -> Iterator[Any]:
    # As Django's test client does: the test's connection stays open across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/v1/openapi.json", get_wsgi_application()
        ).include(tag_regex="^(conversations|visitors)$")
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_no_server_error_and_only_documented_responses(conversations_schema: Any) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    visitor_with_data(external_id="crm-7")  # rows for the reads to find
    _key, token = api_key(
        "conversations:read",
        "conversations:write",
        "visitors:read",
        "visitors:write",
        rate_limit=1_000_000,
    )
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in conversations_schema.get_all_operations()]
    assert len(operations) == 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=int(os.environ.get("FUZZ_EXAMPLES", "15")),
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=checks)

        check()
