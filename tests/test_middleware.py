"""The Content-Security-Policy of the site's own pages: no inline script runs on them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def _policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/de/",
        "/admin/",
        "/admin/knowledge/source/add/",
        "/admin/auth/user/add/",
        "/rosetta/files/project/",
        "/rosetta/files/project/de/0/",
    ],
)
def test_our_pages_allow_no_inline_script(admin_client: Client, path: str) -> None:
    response = admin_client.get(path)
    assert response.status_code == 200, path
    _assert_strict(response["Content-Security-Policy"])


def test_the_admin_login_page_allows_no_inline_script(client: Client) -> None:
    _assert_strict(client.get("/admin/login/")["Content-Security-Policy"])


def _assert_strict(header: str) -> None:
    policy = _policy(header)
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    # The inbox and the widget talk to their own server over a WebSocket.
    assert {"'self'", "ws://testserver", "wss://testserver"} <= set(policy["connect-src"])


def test_our_pages_have_no_inline_script(admin_client: Client) -> None:
    for path in ("/", "/admin/", "/admin/knowledge/source/add/", "/rosetta/files/project/de/0/"):
        page = admin_client.get(path).content.decode()
        for tag in page.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            # Only script files and data blocks (json_script), which never run inline.
            assert "src=" in opening or 'type="application/json"' in opening, (path, opening)


def test_static_files_and_json_get_no_policy(client: Client) -> None:
    # The embed demo stands for a partner's page: the widget lives under the partner's policy.
    assert "Content-Security-Policy" not in client.get("/static/embed-demo/index.html")
    assert "Content-Security-Policy" not in client.get("/chat/config")


def test_no_policy_when_the_setting_is_empty(settings, admin_client: Client) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_CSP = {}
    assert "Content-Security-Policy" not in admin_client.get("/")
