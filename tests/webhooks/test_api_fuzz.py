"""The webhooks API under generated requests (schemathesis, from its own OpenAPI schema): never
a server error, and every status and body is one the schema documents; valid requests and
invalid ones (negative generation)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.api.keys import api_key
from webhooks import services


@pytest.fixture
def webhooks_schema(db: None) -> Iterator[Any]:
    # As Django's test client does: the test's connection (its transaction) stays open.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/v1/openapi.json", get_wsgi_application()
        ).include(tag_regex="^webhooks$")
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def token(db: None) -> str:
    # Rows for the generated ids to find now and then.
    services.subscription_create(
        name="CRM", target_url="http://127.0.0.1:9/hook", event_types=["csat.created"]
    )
    services.event_emit(event_type="csat.created", payload={"rating": 5})
    _key, plaintext = api_key("webhooks:read", "webhooks:write", rate_limit=1_000_000)
    return plaintext


@pytest.mark.django_db
def test_no_server_error_and_only_documented_responses(webhooks_schema: Any, token: str) -> None:
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
    operations = [result.ok() for result in webhooks_schema.get_all_operations()]
    assert len(operations) == 8
    # Generated host names are never looked up (no outbound network in tests): none resolves.
    unresolvable = mock.patch("webhooks.transport._resolve", side_effect=OSError("no DNS"))
    with unresolvable:
        for operation, mode in itertools.product(operations, GenerationMode):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=int(os.environ.get("FUZZ_EXAMPLES", "15")),
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                response = case.call(headers={"Authorization": f"Bearer {token}"})
                case.validate_response(response, checks=checks)

            check()
