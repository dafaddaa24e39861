"""The webhooks admin: the secret shown once on creation and to superusers only, the delivery
log with its filters, and the replay action."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from tests.webhooks.receiver import Receiver
from webhooks import services
from webhooks.models import Attempt, Delivery, Subscription

pytestmark = pytest.mark.django_db


def signed_in(*, superuser: bool) -> Client:
    users = get_user_model().objects
    if superuser:
        user = users.create_superuser("root", "root@example.com", "pw-root-long")
    else:
        user = users.create_user("staff", password="pw-staff-long", is_staff=True)
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="webhooks", codename__startswith="view"
            )
        )
    client = Client()
    client.force_login(user)
    return client


def test_creating_a_subscription_shows_its_secret_once(receiver: Receiver) -> None:
    client = signed_in(superuser=True)
    response = client.post(
        reverse("admin:webhooks_subscription_add"),
        {
            "name": "CRM",
            "target_url": receiver.url,
            "event_types": ["message.created", "csat.created"],
            "active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    subscription = Subscription.objects.get()
    assert subscription.event_types == ["csat.created", "message.created"]
    page = response.content.decode()
    assert subscription.secret in page  # the message on the page after creation
    # Superusers see it on the subscription's page; other staff never do.
    change = reverse("admin:webhooks_subscription_change", args=[subscription.pk])
    assert subscription.secret in client.get(change).content.decode()
    other = signed_in(superuser=False).get(change)
    assert other.status_code == 200 and subscription.secret not in other.content.decode()


def test_a_private_target_is_refused_in_the_form(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    client = signed_in(superuser=True)
    response = client.post(
        reverse("admin:webhooks_subscription_add"),
        {"name": "x", "target_url": "http://10.1.2.3/hook", "event_types": ["csat.created"]},
    )
    assert response.status_code == 200 and "10.1.2.3" in response.content.decode()
    assert not Subscription.objects.exists()


def test_the_log_filters_and_replays(
    receiver: Receiver,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
    settings: Any,
) -> None:
    settings.BACKGROUND_IN_PROCESS = False
    subscription = services.subscription_create(
        name="CRM", target_url=receiver.url, event_types=["csat.created", "message.created"]
    )
    receiver.secret = subscription.secret
    (failed,) = services.event_emit(event_type="csat.created", payload={"rating": 1})
    (ok,) = services.event_emit(event_type="message.created", payload={"text": "hi"})
    Delivery.objects.filter(pk=failed.pk).update(status=Delivery.Status.FAILED, attempts=8)
    client = signed_in(superuser=True)
    log = reverse("admin:webhooks_delivery_changelist")
    page = client.get(log, {"status__exact": "failed"}).content.decode()
    assert f"/{failed.pk}/change/" in page and f"/{ok.pk}/change/" not in page
    by_event = client.get(log, {"event_type": "message.created"}).content.decode()
    assert f"/{ok.pk}/change/" in by_event and f"/{failed.pk}/change/" not in by_event
    detail = client.get(reverse("admin:webhooks_delivery_change", args=[failed.pk]))
    assert "rating" in detail.content.decode()  # the payload as sent
    from autoglm_site.celery import app as celery_app

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                log, {"action": "replay", "_selected_action": [failed.pk]}, follow=True
            )
    finally:
        celery_app.conf.task_always_eager = eager
    assert response.status_code == 200
    (request,) = receiver.wait_for(1)
    assert request.verified and request.headers["X-AutoGLM-Delivery"] == str(failed.delivery_id)
    failed.refresh_from_db()
    assert failed.status == Delivery.Status.SUCCEEDED and failed.attempts == 9
    assert Attempt.objects.get(delivery=failed).replay


def test_staff_who_may_only_view_cannot_replay(receiver: Receiver) -> None:
    services.subscription_create(name="CRM", target_url=receiver.url, event_types=["csat.created"])
    (delivery,) = services.event_emit(event_type="csat.created", payload={})
    client = signed_in(superuser=False)
    log = reverse("admin:webhooks_delivery_changelist")
    page = client.get(log)
    assert page.status_code == 200 and "replay" not in page.content.decode()
    client.post(log, {"action": "replay", "_selected_action": [delivery.pk]})
    assert not Attempt.objects.exists()
