"""The webhooks API under generated requests (tests/api/fuzzing.py): valid requests and invalid
ones (negative generation)."""

from __future__ import annotations

from unittest import mock

import pytest

from tests.api.fuzzing import api_schema, operations_fuzz
from tests.api.keys import api_key
from webhooks import services


@pytest.mark.django_db
def test_no_server_error_and_only_documented_responses() -> None:
    # Rows for the generated ids to find now and then.
    services.subscription_create(
        name="CRM", target_url="http://127.0.0.1:9/hook", event_types=["csat.created"]
    )
    services.event_emit(event_type="csat.created", payload={"rating": 5})
    _key, token = api_key("webhooks:read", "webhooks:write", rate_limit=1_000_000)
    # Generated host names are never looked up (no outbound network in tests): none resolves.
    unresolvable = mock.patch("webhooks.transport._resolve", side_effect=OSError("no DNS"))
    with unresolvable, api_schema("^webhooks$") as schema:
        assert operations_fuzz(schema, token=token) == 8
