"""The inbox's HTTP side: who may use it, the JSON reads, the transcript; agents' admin rights."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat import services
from chat.models import Visitor
from inbox.models import CannedReply
from tests.inbox.agents import agent_create

pytestmark = pytest.mark.django_db(transaction=True)


def _signed_in(profile) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(profile.user)
    return client


def test_the_inbox_is_for_agents_only() -> None:
    anonymous = Client()
    assert anonymous.get("/inbox/").status_code == 302
    assert anonymous.get("/inbox/api/me").status_code == 403
    someone = get_user_model().objects.create_user(username="bob", password="pw")
    client = Client()
    client.force_login(someone)
    response = client.get("/inbox/api/conversations")
    assert response.status_code == 403 and response.json()["code"] == "agent_required"


def test_the_page_and_its_reads_are_in_the_agents_language() -> None:
    agent = agent_create(language="ar")
    client = _signed_in(agent)
    page = client.get("/inbox/")
    assert page.status_code == 200 and page.headers["Content-Language"] == "ar"
    assert 'dir="rtl"' in page.content.decode()
    me = client.get("/inbox/api/me").json()
    assert me["preferred_language"] == "ar" and me["agents"][0]["online"] is True


def test_queues_filters_search_and_canned_replies() -> None:
    agent = agent_create()
    for n, (language, text) in enumerate(
        [("ar", "أريد التحدث مع موظف"), ("es", "quiero hablar con una persona")]
    ):
        services.message_send(
            visitor=Visitor.objects.create(),
            conversation=None,
            language=language,
            client_id=f"c{n}",
            text=text,
        )
    client = _signed_in(agent)
    waiting = client.get("/inbox/api/conversations?queue=waiting").json()
    assert waiting["counts"]["waiting"] == 2 and len(waiting["conversations"]) == 2
    arabic = client.get("/inbox/api/conversations?queue=waiting&language=ar").json()
    assert [c["language"] for c in arabic["conversations"]] == ["ar"]
    found = client.get("/inbox/api/conversations?queue=open&q=persona").json()
    assert [c["language"] for c in found["conversations"]] == ["es"]
    by_reason = client.get("/inbox/api/conversations?queue=open&reason=rule").json()
    assert by_reason["conversations"] == []
    CannedReply.objects.create(shortcut="hi", language="", title="Hi", text="Hello!")
    CannedReply.objects.create(shortcut="hi", language="es", title="Hola", text="¡Hola!")
    canned = client.get("/inbox/api/canned?language=es").json()
    assert canned == [{"shortcut": "hi", "title": "Hola", "text": "¡Hola!", "language": "es"}]


def test_the_transcript_downloads_as_a_pdf() -> None:
    agent = agent_create()
    result = services.message_send(
        visitor=Visitor.objects.create(),
        conversation=None,
        language="ar",
        client_id="c1",
        text="أريد التحدث مع موظف",
    )
    response = _signed_in(agent).get(
        f"/inbox/conversations/{result.conversation.pk}/transcript.pdf"
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_agents_read_conversations_and_articles_in_the_admin_but_change_no_settings() -> None:
    agent = agent_create()
    from django.contrib.auth.models import Group, Permission

    # The migration's group (flushed by transactional tests): the same view permissions.
    group = Group.objects.get(name="Agents")
    group.permissions.set(
        Permission.objects.filter(
            codename__in=["view_conversation", "view_message", "view_article"]
        )
    )
    user = agent.user
    user.is_staff = True
    user.save()
    client = _signed_in(agent)
    assert client.get("/admin/chat/conversation/").status_code == 200
    assert client.get("/admin/knowledge/article/").status_code == 200
    assert client.get("/admin/chat/glossaryterm/").status_code == 403
    assert client.get("/admin/chat/decodingpreset/add/").status_code == 403
    assert client.get("/admin/inbox/team/").status_code == 403
