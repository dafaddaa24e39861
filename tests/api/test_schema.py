"""The OpenAPI schema is checked in (docs/openapi.json), so that a change to the API is seen
in review: regenerate it with `make openapi` after changing an endpoint."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_schema_is_the_codes_schema() -> None:
    from ninja.responses import NinjaJSONEncoder

    from api.main import api

    current = json.loads(json.dumps(api.get_openapi_schema(), cls=NinjaJSONEncoder))
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert current == committed, "the API changed: run `make openapi` and commit docs/openapi.json"


def test_the_schema_is_openapi_3_1_and_documents_errors() -> None:
    schema = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert schema["openapi"].startswith("3.1")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert any(code.startswith("2") for code in codes), (method, path)
            assert any(code.startswith("4") for code in codes), (method, path)
