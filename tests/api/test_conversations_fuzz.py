"""The conversations and visitors API under generated requests (tests/api/fuzzing.py)."""

from __future__ import annotations

import pytest

from tests.api.fuzzing import api_schema, operations_fuzz
from tests.api.keys import api_key
from tests.privacy.data import visitor_with_data


@pytest.mark.django_db
def test_no_server_error_and_only_documented_responses() -> None:
    visitor_with_data(external_id="crm-7")  # rows for the reads to find
    _key, token = api_key(
        "conversations:read",
        "conversations:write",
        "visitors:read",
        "visitors:write",
        rate_limit=1_000_000,
    )
    with api_schema("^(conversations|visitors)$") as schema:
        assert operations_fuzz(schema, token=token, negative=False) == 12
