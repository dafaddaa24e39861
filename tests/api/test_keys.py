"""API keys: scopes, revocation, rate limits, the call log, error bodies, the schema."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from api.models import ApiCall, ApiKey
from tests.api.keys import api_client, api_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


def test_a_key_is_stored_hashed_and_shown_once() -> None:
    key, plaintext = api_key("assistant")
    assert plaintext.startswith(f"agk_{key.prefix}_")
    secret = plaintext.split("_", 2)[2]
    stored = ApiKey.objects.get(pk=key.pk)
    assert secret not in (stored.digest, stored.prefix) and len(stored.digest) == 64


def test_the_key_in_use() -> None:
    _key, token = api_key("assistant")
    response = api_client(token).get("/api/v1/key")
    assert response.status_code == 200
    assert response.json()["scopes"] == ["assistant"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthorized"),
        ("Bearer agk_nothing_here", "invalid_key"),
        ("Basic dXNlcjpwYXNz", "invalid_key"),
        ("Bearer agk_", "invalid_key"),
        ("Bearer agk_ü_ü", "invalid_key"),
    ],
)
def test_without_a_valid_key(header: str | None, code: str) -> None:
    client = Client(headers={"Authorization": header} if header else {})
    response = client.get("/api/v1/key")
    assert response.status_code == 401
    body = response.json()["error"]
    assert body["code"] == code and body["message"]


def test_a_revoked_key_is_refused() -> None:
    key, token = api_key("assistant")
    key.revoke()
    response = api_client(token).get("/api/v1/key")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_key"


def test_a_key_without_the_scope_is_refused_in_the_callers_language() -> None:
    _key, token = api_key("knowledge:read")
    response = api_client(token, **{"Accept-Language": "de"}).get("/api/v1/key")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "scope_missing"
    assert "assistant" in error["message"] and "does not have" not in error["message"]


def test_each_key_has_its_own_rate_limit() -> None:
    _key, token = api_key("assistant", rate_limit=3)
    _other, other_token = api_key("assistant", rate_limit=3)
    client = api_client(token)
    statuses = [client.get("/api/v1/key").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/key")
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert api_client(other_token).get("/api/v1/key").status_code == 200


def test_every_call_is_logged_with_its_key() -> None:
    key, token = api_key("assistant")
    api_client(token).get("/api/v1/key")
    Client().get("/api/v1/key")
    calls = list(ApiCall.objects.order_by("id"))
    assert [(c.key_id, c.path, c.status) for c in calls] == [
        (key.pk, "/api/v1/key", 200),
        (None, "/api/v1/key", 401),
    ]


def test_an_unknown_address_is_a_json_404() -> None:
    response = Client().get("/api/v1/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_openapi_schema_is_served() -> None:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/key" in schema["paths"]


def test_the_docs_page_runs_under_our_content_security_policy() -> None:
    page = Client().get("/api/v1/docs")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.content
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert b"<script>" not in page.content  # no inline script: the policy would block it
