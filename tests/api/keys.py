"""Helpers of the API tests: keys with scopes, and a client that sends them."""

from __future__ import annotations

from typing import Any

from django.test import Client

from api.models import ApiKey


def api_key(*scopes: str, rate_limit: int = 600, name: str = "test") -> tuple[ApiKey, str]:
    return ApiKey.issue(name, list(scopes), rate_limit=rate_limit)


def api_client(token: str, **headers: Any) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}", **headers})
