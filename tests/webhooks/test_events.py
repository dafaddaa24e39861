"""Events from the real services reach a receiver on loopback, signed, after commit.

The deliveries run as in the embedded mode (a background thread after commit, no broker), so
each test goes from the service call to the verified POST the receiver got.
"""

from __future__ import annotations

import time

import pytest

from chat import errors
from chat import services as chat
from chat.models import Conversation, Message, TurnKnowledge, Visitor
from inbox import services as inbox
from knowledge.models import Article, Source
from knowledge.services import articles_publish, source_sync
from tests.inbox.agents import agent_create
from tests.webhooks.receiver import Received, Receiver
from webhooks import services
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _in_process(settings) -> None:  # type: ignore[no-untyped-def]
    settings.BACKGROUND_IN_PROCESS = True


def subscribe(receiver: Receiver, *types: str) -> None:
    subscription = services.subscription_create(
        name="CRM", target_url=receiver.url, event_types=list(types)
    )
    receiver.secret = subscription.secret


def events(receiver: Receiver, count: int) -> list[Received]:
    received = receiver.wait_for(count)
    assert all(r.verified for r in received), [r.problem for r in received]
    return sorted(received, key=lambda r: (r.json["created_at"], r.json["type"]))


def send(conversation: Conversation | None, text: str, client_id: str, *, language: str = "en"):  # type: ignore[no-untyped-def]
    visitor = conversation.visitor if conversation else Visitor.objects.create(external_id="u-7")
    return chat.message_send(
        visitor=visitor,
        conversation=conversation,
        language=language,
        client_id=client_id,
        text=text,
    )


def test_a_visitor_message_opens_a_conversation_and_is_announced(receiver: Receiver) -> None:
    subscribe(receiver, "conversation.created", "message.created")
    result = send(None, "Wie setze ich mein Passwort zurück?", "c1", language="de")
    created, message = events(receiver, 2)
    assert created.json["type"] == "conversation.created"
    conversation = created.json["data"]["conversation"]
    assert conversation["id"] == str(result.conversation.pk)
    assert conversation["language"] == "de"
    assert conversation["visitor"]["external_id"] == "u-7"
    assert message.json["type"] == "message.created"
    assert message.headers["X-AutoGLM-Event"] == "message.created"
    data = message.json["data"]
    assert data["conversation_id"] == str(result.conversation.pk)
    assert data["message"]["id"] == result.message.pk
    assert data["message"]["role"] == "user"
    assert data["message"]["text"] == "Wie setze ich mein Passwort zurück?"
    # The next message of the conversation: no second conversation.created, and a retry of the
    # same client id (stored once) is not announced twice.
    send(result.conversation, "Danke", "c2")
    send(result.conversation, "Danke", "c2")
    received = receiver.wait_for(3)
    assert [r.json["type"] for r in received].count("conversation.created") == 1
    assert Delivery.objects.filter(event_type="message.created").count() == 2


def test_a_message_that_rolls_back_is_not_announced(receiver: Receiver, settings) -> None:  # type: ignore[no-untyped-def]
    subscribe(receiver, "conversation.created", "message.created")
    settings.CHAT_RATE_LIMIT_MESSAGES = 0  # the service fails after opening the conversation
    with pytest.raises(errors.RateLimited):
        send(None, "Hello", "c1")
    assert not Conversation.objects.exists()
    assert not Delivery.objects.exists()
    settings.CHAT_RATE_LIMIT_MESSAGES = 20
    send(None, "Hello", "c2")
    assert {r.json["type"] for r in events(receiver, 2)} == {
        "conversation.created",
        "message.created",
    }


def test_handoff_claim_resolve_and_csat_are_announced(receiver: Receiver) -> None:
    subscribe(
        receiver,
        "handoff.requested",
        "conversation.assigned",
        "conversation.resolved",
        "csat.created",
        "message.created",
    )
    agent = agent_create()
    result = send(None, "I want to talk to a human", "c1")
    handoff = next(r for r in events(receiver, 2) if r.json["type"] == "handoff.requested")
    data = handoff.json["data"]
    assert data["reason"] == Conversation.HandoffReason.VISITOR_REQUEST
    assert data["conversation"]["mode"] == "waiting"
    conversation_id = result.conversation.pk
    inbox.conversation_claim(conversation_id=conversation_id, agent=agent)
    inbox.agent_message_send(
        conversation_id=conversation_id, agent=agent, client_id="a1", text="Hallo, ich bin Anna."
    )
    inbox.agent_message_send(
        conversation_id=conversation_id, agent=agent, client_id="n1", text="private", note=True
    )
    inbox.conversation_resolve(conversation_id=conversation_id, by=agent)
    inbox.csat_save(conversation=result.conversation, rating=4, comment="gut")
    received = events(receiver, 6)
    by_type = {r.json["type"]: r.json["data"] for r in received}
    assert by_type["conversation.assigned"]["agent"] == {"id": agent.user_id, "name": "Anna"}
    assert by_type["conversation.assigned"]["conversation"]["mode"] == "agent"
    assert by_type["conversation.resolved"]["conversation"]["status"] == "closed"
    assert by_type["csat.created"] == {
        "conversation_id": str(conversation_id),
        "rating": 4,
        "comment": "gut",
        "agent_id": agent.user_id,
        "created_at": by_type["csat.created"]["created_at"],
    }
    texts = [
        r.json["data"]["message"]["text"] for r in received if r.json["type"] == "message.created"
    ]
    assert texts == ["I want to talk to a human", "Hallo, ich bin Anna."]  # no private note
    assert Message.objects.filter(role="note", text="private").exists()  # stored, not sent


def test_feedback_on_a_reply_is_announced(receiver: Receiver) -> None:
    subscribe(receiver, "feedback.created")
    result = send(None, "How do I share a folder?", "c1")
    chat.feedback_save(
        conversation=result.conversation, message_id=result.reply.pk, rating="down", comment="no"
    )
    (feedback,) = events(receiver, 1)
    assert feedback.json["data"]["message_id"] == result.reply.pk
    assert (feedback.json["data"]["rating"], feedback.json["data"]["comment"]) == ("down", "no")


def test_publishing_and_syncing_the_knowledge_base_are_announced(
    receiver: Receiver,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.KNOWLEDGE_FETCH_ALLOW_PRIVATE = True
    subscribe(receiver, "article.published", "sync.finished", "sync.failed")
    draft = Article.objects.create(title_en="Sharing", body_en="Share it.", status="draft")
    assert articles_publish(article_ids=[draft.pk]) == 1
    assert articles_publish(article_ids=[draft.pk]) == 0  # published already: not again
    manual = Source.objects.create(name="Manual", kind=Source.Kind.MANUAL)
    finished = source_sync(source_id=manual.pk)
    gone = Source.objects.create(
        name="Gone", kind=Source.Kind.SITEMAP, url="http://127.0.0.1:9/s.xml"
    )
    failed = source_sync(source_id=gone.pk)
    assert finished is not None and failed is not None and failed.status == "failed"
    by_type = {r.json["type"]: r.json["data"] for r in events(receiver, 3)}
    assert by_type["article.published"]["article"]["id"] == draft.pk
    assert by_type["article.published"]["article"]["title"] == "Sharing"
    assert by_type["sync.finished"]["sync_run"]["id"] == finished.pk
    assert by_type["sync.finished"]["sync_run"]["source"] == {"id": manual.pk, "name": "Manual"}
    assert by_type["sync.failed"]["sync_run"]["status"] == "failed"
    assert by_type["sync.failed"]["sync_run"]["errors"]
    assert Delivery.objects.filter(event_type="article.published").count() == 1


def test_without_a_broker_a_failed_delivery_is_retried_by_the_process(receiver: Receiver) -> None:
    subscribe(receiver, "csat.created")
    receiver.statuses = [500]
    (delivery,) = services.event_emit(event_type="csat.created", payload={"rating": 3})
    first, second = receiver.wait_for(2)
    assert first.body == second.body and second.verified
    deadline = time.monotonic() + 10
    while Delivery.objects.get(pk=delivery.pk).status != Delivery.Status.SUCCEEDED:
        assert time.monotonic() < deadline, "the retry was not recorded"
        time.sleep(0.05)
    done = Delivery.objects.get(pk=delivery.pk)
    assert done.attempts == 2 and done.response_status == 200


def test_erasing_a_visitor_erases_the_deliveries_that_quote_them(receiver: Receiver) -> None:
    from privacy.services import visitor_erase

    subscribe(receiver, "message.created", "sync.finished")
    result = send(None, "My e-mail is ana@example.com", "c1")
    other = send(None, "Hello", "c2")
    source_sync(source_id=Source.objects.create(name="Manual", kind=Source.Kind.MANUAL).pk)
    events(receiver, 3)
    assert Delivery.objects.filter(conversation_id=result.conversation.pk).count() == 1
    visitor_erase(visitor=result.conversation.visitor)
    left = Delivery.objects.all()
    assert sorted(d.event_type for d in left) == ["message.created", "sync.finished"]
    assert {d.conversation_id for d in left} == {other.conversation.pk, None}


def test_an_article_published_in_the_admin_is_announced_once(receiver: Receiver) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    subscribe(receiver, "article.published")
    admin_user = User.objects.create_superuser("ada", password="admin-0123456789")
    client = Client()
    client.force_login(admin_user)
    form = {"title_en": "Invoices", "body_en": "Monthly.", "status": "draft", "language": "en"}
    response = client.post("/admin/knowledge/article/add/", form)
    assert response.status_code == 302, response.content[:2000]
    article = Article.objects.get(title_en="Invoices")
    change = f"/admin/knowledge/article/{article.pk}/change/"
    assert client.post(change, {**form, "status": "published"}).status_code == 302
    assert (
        client.post(change, {**form, "status": "published", "body_en": "Each month."}).status_code
        == 302
    )
    (published,) = events(receiver, 1)
    assert published.json["data"]["article"]["id"] == article.pk
    time.sleep(0.5)  # a later save of the published article is not announced again
    assert Delivery.objects.filter(event_type="article.published").count() == 1


def test_an_assistant_reply_is_announced_when_complete_with_its_citations(
    receiver: Receiver,
) -> None:
    subscribe(receiver, "message.created")
    result = send(None, "How do I reset my password?", "q1")
    TurnKnowledge.objects.create(
        message=result.message,
        snippets=[
            {
                "title": "Passwords",
                "url": "https://help.example/pw",
                "text": "Reset it.",
                "language": "en",
            }
        ],
    )
    claimed = chat.reply_claim(conversation_id=result.conversation.pk)
    assert claimed is not None
    chat.reply_finish(
        reply_id=claimed.pk, text="Use the reset link.", status=Message.Status.COMPLETE
    )
    received = receiver.wait_for(2)
    by_role = {r.json["data"]["message"]["role"]: r.json["data"]["message"] for r in received}
    reply = by_role["assistant"]
    assert reply["id"] == claimed.pk and reply["text"] == "Use the reset link."
    assert reply["reply_to"] == result.message.pk
    assert reply["citations"] == [{"title": "Passwords", "url": "https://help.example/pw"}]
    # A failed or cancelled reply is not announced.
    second = send(result.conversation, "And my e-mail?", "q2")
    claimed = chat.reply_claim(conversation_id=second.conversation.pk)
    assert claimed is not None
    chat.reply_finish(reply_id=claimed.pk, text="", status=Message.Status.FAILED)
    time.sleep(0.5)
    roles = [d.payload["data"]["message"]["role"] for d in Delivery.objects.all()]
    assert roles.count("assistant") == 1
