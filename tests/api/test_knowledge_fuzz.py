"""The knowledge API under generated requests (tests/api/fuzzing.py): valid requests and invalid
ones (negative generation)."""

from __future__ import annotations

import pytest

from knowledge.models import Article, Category, Source
from tests.api.fuzzing import api_schema, operations_fuzz
from tests.api.keys import api_key


@pytest.mark.django_db
def test_no_server_error_and_only_documented_responses() -> None:
    # Rows for the generated ids to find now and then (ids 1..3 are likely guesses).
    category = Category.objects.create(slug="billing", name_en="Billing")
    source = Source.objects.create(name="Manual", kind=Source.Kind.MANUAL)
    Article.objects.create(
        title_en="Refunds", body_en="Full refund in 30 days.", category=category, source=source
    )
    _key, token = api_key("knowledge:read", "knowledge:write", rate_limit=1_000_000)
    with api_schema("^(knowledge|glossary|decoding presets)$") as schema:
        assert operations_fuzz(schema, token=token) >= 30
