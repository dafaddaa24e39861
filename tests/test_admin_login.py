"""Sign-in to /admin/login/ (agents, translators, staff) is throttled per user name and address."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.utils import translation

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _throttle(settings):  # type: ignore[no-untyped-def]
    settings.ADMIN_LOGIN_MAX_FAILURES = 3
    settings.ADMIN_LOGIN_LOCKOUT_SECONDS = 60
    cache.clear()
    yield
    cache.clear()


def _sign_in(client: Client, password: str, address: str = "198.51.100.7", username: str = "anna"):  # type: ignore[no-untyped-def]
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def _throttled_message(language: str = "en") -> str:
    from autoglm_site.admin_site import ThrottledAuthenticationForm

    with translation.override(language):
        return str(ThrottledAuthenticationForm.error_messages["throttled"])


def test_repeated_failures_lock_out_even_the_right_password(client: Client) -> None:
    User.objects.create_user("anna", password="correct-horse-battery", is_staff=True)
    for _ in range(3):
        response = _sign_in(client, "wrong")
        assert response.status_code == 200 and _throttled_message() not in response.content.decode()
    refused = _sign_in(client, "correct-horse-battery")
    assert refused.status_code == 200  # the form again, not the redirect of a sign-in
    assert _throttled_message() in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address, or another user name, is not locked out by anna's failures here.
    assert _sign_in(Client(), "correct-horse-battery", address="198.51.100.8").status_code == 302


def test_success_before_the_limit_forgets_the_failures(client: Client) -> None:
    User.objects.create_user("anna", password="correct-horse-battery", is_staff=True)
    for _ in range(2):
        _sign_in(client, "wrong")
    assert _sign_in(client, "correct-horse-battery").status_code == 302
    client.logout()
    for _ in range(2):
        _sign_in(client, "wrong")
    assert _sign_in(client, "correct-horse-battery").status_code == 302


def test_lockout_message_is_in_the_interface_language(client: Client) -> None:
    for _ in range(3):
        _sign_in(client, "wrong", username="nobody")
    response = client.post(
        "/admin/login/",
        {"username": "nobody", "password": "x"},
        REMOTE_ADDR="198.51.100.7",
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    assert _throttled_message("fr") in response.content.decode()
