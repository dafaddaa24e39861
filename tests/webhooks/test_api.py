"""The webhooks API: subscriptions (secret once, scopes), the delivery log, replay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from django.test import Client

from api.webhooks import EventType
from autoglm_site.celery import app as celery_app
from tests.api.keys import api_client, api_key
from tests.webhooks.receiver import Receiver
from webhooks import services
from webhooks.models import EVENT_TYPES, Attempt, Delivery, Subscription

pytestmark = pytest.mark.django_db

BASE = "/api/v1/webhooks"


@pytest.fixture
def writer() -> Client:
    _key, token = api_key("webhooks:read", "webhooks:write")
    return api_client(token)


@pytest.fixture
def reader() -> Client:
    _key, token = api_key("webhooks:read")
    return api_client(token)


@pytest.fixture
def inline_tasks(settings: Any) -> Iterator[None]:
    """Tasks enqueued after commit run at once in this thread, as a worker would."""
    settings.BACKGROUND_IN_PROCESS = False
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


def send(client: Client, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body) if body is not None else ""
    return getattr(client, method)(BASE + path, data, content_type="application/json")


def test_the_api_knows_every_event_type() -> None:
    assert set(get_args(EventType)) == set(EVENT_TYPES)


def test_create_shows_the_secret_once_and_lists_never(
    writer: Client, reader: Client, receiver: Receiver
) -> None:
    body = {"name": "CRM", "target_url": receiver.url, "event_types": ["csat.created"]}
    created = send(writer, "post", "/subscriptions", body)
    assert created.status_code == 201, created.content
    payload = created.json()
    subscription = Subscription.objects.get()
    assert payload["secret"] == subscription.secret and payload["secret"].startswith("whsec_")
    listed = reader.get(BASE + "/subscriptions").json()
    assert [item["id"] for item in listed["items"]] == [subscription.pk]
    assert "secret" not in listed["items"][0] and listed["next_cursor"] is None
    one = reader.get(f"{BASE}/subscriptions/{subscription.pk}").json()
    assert "secret" not in one and one["event_types"] == ["csat.created"]


def test_writes_need_the_write_scope(reader: Client, receiver: Receiver) -> None:
    body = {"name": "CRM", "target_url": receiver.url, "event_types": ["csat.created"]}
    refused = send(reader, "post", "/subscriptions", body)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "scope_missing"
    _key, other = api_key("conversations:read")
    assert api_client(other).get(BASE + "/deliveries").status_code == 403
    assert Client().get(BASE + "/deliveries").status_code == 401


def test_invalid_subscriptions_are_refused_with_the_field(
    writer: Client, receiver: Receiver, settings: Any
) -> None:
    unknown = send(
        writer,
        "post",
        "/subscriptions",
        {"name": "x", "target_url": receiver.url, "event_types": ["nope"]},
    )
    assert unknown.status_code == 422
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    private = send(
        writer,
        "post",
        "/subscriptions",
        {"name": "x", "target_url": receiver.url, "event_types": ["csat.created"]},
    )
    assert private.status_code == 422
    assert private.json()["error"]["details"][0]["field"] == "target_url"
    assert not Subscription.objects.exists()


def test_patch_and_delete(writer: Client, receiver: Receiver) -> None:
    subscription = services.subscription_create(
        name="CRM", target_url=receiver.url, event_types=["csat.created"]
    )
    changed = send(
        writer,
        "patch",
        f"/subscriptions/{subscription.pk}",
        {"active": False, "event_types": ["message.created", "csat.created"]},
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["event_types"] == ["csat.created", "message.created"]
    subscription.refresh_from_db()
    assert not subscription.active and subscription.name == "CRM"
    assert send(writer, "delete", f"/subscriptions/{subscription.pk}").status_code == 204
    assert send(writer, "delete", f"/subscriptions/{subscription.pk}").status_code == 404
    assert writer.get(f"{BASE}/subscriptions/{2**70}").status_code in {404, 422}


def test_the_delivery_log_pages_and_filters(reader: Client, receiver: Receiver) -> None:
    services.subscription_create(
        name="CRM", target_url=receiver.url, event_types=["csat.created", "message.created"]
    )
    for n in range(3):
        services.event_emit(event_type="message.created", payload={"n": n})
    (csat,) = services.event_emit(event_type="csat.created", payload={"rating": 5})
    Delivery.objects.filter(pk=csat.pk).update(status=Delivery.Status.FAILED)
    first = reader.get(BASE + "/deliveries", {"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = reader.get(BASE + "/deliveries", {"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 4 and rest["next_cursor"] is None
    failed = reader.get(BASE + "/deliveries", {"status": "failed"}).json()["items"]
    assert [item["id"] for item in failed] == [str(csat.delivery_id)]
    messages = reader.get(BASE + "/deliveries", {"event_type": "message.created"}).json()
    assert sorted(item["payload"]["data"]["n"] for item in messages["items"]) == [0, 1, 2]
    one = reader.get(f"{BASE}/deliveries/{csat.delivery_id}").json()
    assert one["event_type"] == "csat.created" and one["payload"]["data"] == {"rating": 5}


def test_replay_sends_the_same_delivery_again(
    writer: Client,
    reader: Client,
    receiver: Receiver,
    inline_tasks: None,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    subscription = services.subscription_create(
        name="CRM", target_url=receiver.url, event_types=["csat.created"]
    )
    receiver.secret = subscription.secret
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = services.event_emit(event_type="csat.created", payload={"rating": 2})
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING and delivery.response_status == 500
    refused = reader.post(f"{BASE}/deliveries/{delivery.delivery_id}/replay")
    assert refused.status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        replayed = writer.post(f"{BASE}/deliveries/{delivery.delivery_id}/replay")
    assert replayed.status_code == 202, replayed.content
    assert replayed.json()["id"] == str(delivery.delivery_id)
    first, again = receiver.wait_for(2)
    assert again.verified and again.body == first.body
    assert again.headers["X-AutoGLM-Delivery"] == str(delivery.delivery_id)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.attempts == 2
    assert list(Attempt.objects.filter(delivery=delivery).values_list("replay", flat=True)) == [
        False,
        True,
    ]
    missing = writer.post(f"{BASE}/deliveries/00000000-0000-0000-0000-000000000000/replay")
    assert missing.status_code == 404


def test_text_with_nul_is_refused_not_a_server_error(writer: Client, receiver: Receiver) -> None:
    body = {"name": "C\x00RM", "target_url": receiver.url, "event_types": ["csat.created"]}
    assert send(writer, "post", "/subscriptions", body).status_code == 422
    assert not Subscription.objects.exists()
