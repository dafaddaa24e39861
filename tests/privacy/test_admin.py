"""The privacy actions on the Visitor admin and the audit of staff reading conversations."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Visitor
from privacy.models import AuditEvent
from tests.privacy.data import visitor_with_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    user = get_user_model().objects.create_superuser(username="root", password="pw")
    client = Client()
    client.force_login(user)
    return client


def test_export_action_downloads_json(admin_client_: Client) -> None:
    data = visitor_with_data()
    response = admin_client_.post(
        "/admin/chat/visitor/",
        {"action": "visitors_export", "_selected_action": [data.visitor.pk]},
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    exported = json.loads(response.content)
    assert exported["visitor"]["uuid"] == str(data.visitor.uuid)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_label, event.via) == ("export", "root", "admin")


def test_erase_action_asks_first_then_erases(admin_client_: Client) -> None:
    data = visitor_with_data()
    selected = {"action": "visitors_erase", "_selected_action": [data.visitor.pk]}
    asked = admin_client_.post("/admin/chat/visitor/", selected)
    assert asked.status_code == 200 and b'name="confirm"' in asked.content
    assert Visitor.objects.filter(pk=data.visitor.pk).exists()
    done = admin_client_.post("/admin/chat/visitor/", {**selected, "confirm": "yes"})
    assert done.status_code == 302
    assert not Visitor.objects.filter(pk=data.visitor.pk).exists()
    event = AuditEvent.objects.get(action="erase")
    assert event.actor_label == "root" and event.counts["messages"] == 2


def test_opening_a_conversation_in_the_admin_is_audited(admin_client_: Client) -> None:
    data = visitor_with_data()
    response = admin_client_.get(f"/admin/chat/conversation/{data.conversation.pk}/change/")
    assert response.status_code == 200
    event = AuditEvent.objects.get()
    assert (event.action, event.target_id, event.via) == (
        "view_conversation",
        str(data.conversation.pk),
        "admin",
    )


def test_downloading_a_transcript_in_the_inbox_is_audited() -> None:
    from tests.inbox.agents import agent_create

    agent = agent_create()
    data = visitor_with_data()
    client = Client()
    client.force_login(agent.user)
    response = client.get(f"/inbox/conversations/{data.conversation.pk}/transcript.pdf")
    assert response.status_code == 200
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.via) == ("view_conversation", agent.user, "inbox")
