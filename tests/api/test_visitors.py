"""/api/v1/visitors: lookup by external id, the GDPR export and erasure, audited via "api"."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from api.models import ApiKey
from chat.models import Conversation, Message, Visitor
from privacy import services as privacy_services
from privacy.models import AuditEvent
from tests.api.keys import api_client, api_key
from tests.privacy.data import visitor_with_data

pytestmark = pytest.mark.django_db

BASE = "/api/v1/visitors"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


def test_lookup_by_external_id_finds_every_device_of_the_user() -> None:
    phone = visitor_with_data(external_id="crm-7")
    laptop = Visitor.objects.create(external_id="crm-7")
    visitor_with_data(external_id="crm-8")
    _key, token = api_key("visitors:read")
    client = api_client(token)
    found = client.get(BASE, {"external_id": "crm-7"})
    assert found.status_code == 200
    items = found.json()["items"]
    assert [i["uuid"] for i in items] == [str(phone.visitor.uuid), str(laptop.uuid)]
    assert [i["conversations"] for i in items] == [1, 0]
    assert found.json()["next_cursor"] is None
    by_uuid = client.get(BASE, {"uuid": str(laptop.uuid)}).json()["items"]
    assert [i["external_id"] for i in by_uuid] == ["crm-7"]
    assert client.get(BASE, {"external_id": "nobody"}).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 422),
        ({"uuid": "not-a-uuid"}, 422),
        ({"external_id": ""}, 422),
        ({"external_id": "a\x00b"}, 422),
    ],
)
def test_a_lookup_without_a_valid_id_is_a_422(params: dict[str, str], status: int) -> None:
    _key, token = api_key("visitors:read")
    response = api_client(token).get(BASE, params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == "invalid_request"


def test_export_is_the_privacy_export_and_is_audited_via_api() -> None:
    data = visitor_with_data(external_id="crm-7")
    dpo = get_user_model().objects.create_user("dpo", password="pw")
    _key, token = ApiKey.issue("gdpr", ["visitors:read"], created_by=dpo)
    response = api_client(token).get(f"{BASE}/{data.visitor.uuid}/export")
    assert response.status_code == 200
    exported = response.json()
    assert exported["visitor"]["uuid"] == str(data.visitor.uuid)
    [conversation] = exported["conversations"]
    assert conversation["id"] == str(data.conversation.pk) and conversation["csat"]["rating"] == 5
    assert [m["text"] for m in conversation["messages"]] == [data.question.text, "Thanks."]
    event = AuditEvent.objects.get()
    assert (event.action, event.via, event.target_id) == ("export", "api", str(data.visitor.uuid))
    assert event.actor == dpo and event.actor_label == "dpo"
    assert event.counts["messages"] == 2
    # The same data the admin's export gives.
    assert exported == privacy_services.visitor_export(visitor=data.visitor, via="admin")


def test_erasure_deletes_everything_and_is_audited_via_api() -> None:
    data = visitor_with_data()
    kept = visitor_with_data()
    key, token = api_key("visitors:write", name="gdpr")
    client = api_client(token)
    response = client.delete(f"{BASE}/{data.visitor.uuid}")
    assert response.status_code == 200, response.content
    assert response.json()["erased"]["messages"] == 2
    assert response.json()["erased"]["visitors"] == 1
    assert not Visitor.objects.filter(pk=data.visitor.pk).exists()
    assert not Conversation.objects.filter(pk=data.conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=data.conversation.pk).exists()
    assert Message.objects.filter(conversation=kept.conversation).count() == 2
    event = AuditEvent.objects.get()
    assert (event.action, event.via, event.target_id) == ("erase", "api", str(data.visitor.uuid))
    assert event.actor is None and event.actor_label == f"API key gdpr ({key.prefix})"
    again = client.delete(f"{BASE}/{data.visitor.uuid}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


def test_scopes_are_enforced() -> None:
    data = visitor_with_data(external_id="crm-7")
    _key, reader = api_key("visitors:read", "conversations:write")
    refused = api_client(reader).delete(f"{BASE}/{data.visitor.uuid}")
    assert refused.status_code == 403 and "visitors:write" in refused.json()["error"]["message"]
    assert Visitor.objects.filter(pk=data.visitor.pk).exists()
    _key, conversations = api_key("conversations:read")
    client = api_client(conversations)
    assert client.get(BASE, {"external_id": "crm-7"}).status_code == 403
    assert client.get(f"{BASE}/{data.visitor.uuid}/export").status_code == 403
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"{BASE}/not-a-uuid/export"),
        ("get", f"{BASE}/{uuid.uuid4()}/export"),
        ("delete", f"{BASE}/not-a-uuid"),
        ("delete", f"{BASE}/{uuid.uuid4()}"),
        ("delete", f"{BASE}/..%2F..%2Fetc"),
    ],
)
def test_unknown_or_malformed_ids_are_a_json_404(method: str, path: str) -> None:
    _key, token = api_key("visitors:read", "visitors:write")
    response = getattr(api_client(token), method)(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not AuditEvent.objects.exists()
