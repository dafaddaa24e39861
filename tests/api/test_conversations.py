"""/api/v1/conversations: filters, cursor pages, ETags, the export, idempotent posts that reach
the visitor live, close and reopen, feedback and CSAT, scopes, sessions, malformed ids."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connections
from django.test import AsyncClient, Client

from api.models import ApiKey
from chat.models import Conversation, Feedback, Message, Visitor
from inbox.models import Csat, Team
from privacy.models import AuditEvent
from tests.api.keys import api_client, api_key
from tests.chat.wsclient import connect, hello, receive, send
from tests.inbox.agents import agent_create
from tests.privacy.data import visitor_with_data

BASE = "/api/v1/conversations"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


def _conversation(
    *,
    language: str = "en",
    status: str = "open",
    mode: str = "bot",
    external_id: str = "",
    visitor: Visitor | None = None,
    created_at: datetime | None = None,
    text: str = "",
    **fields: Any,
) -> Conversation:
    visitor = visitor or Visitor.objects.create(external_id=external_id)
    conversation = Conversation.objects.create(
        visitor=visitor,
        language=language,
        status=status,
        mode=mode,
        opening_client_id=uuid.uuid4().hex,
        **fields,
    )
    if created_at is not None:
        Conversation.objects.filter(pk=conversation.pk).update(created_at=created_at)
    if text:
        Message.objects.create(
            conversation=conversation, role="user", text=text, status="complete", client_id="c1"
        )
    return conversation


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["items"]}


def _key_of(user: Any, *scopes: str) -> str:
    return ApiKey.issue("integration", list(scopes), created_by=user)[1]


# --- Reads ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_filters_select_the_conversations() -> None:
    anna = agent_create("anna")
    team = Team.objects.create(name="Billing")
    now = datetime.now(tz=UTC)
    old = _conversation(language="de", created_at=now - timedelta(days=10), text="Rechnung fehlt")
    waiting = _conversation(
        mode="waiting",
        team=team,
        handoff_reason="visitor_request",
        handoff_at=now,
        external_id="user-42",
        text="I need a refund please",
    )
    mine = _conversation(mode="agent", assignee=anna.user, handoff_reason="agent", handoff_at=now)
    closed = _conversation(status="closed", language="ar", text="شكرا")
    everything = {str(c.pk) for c in (old, waiting, mine, closed)}
    _key, token = api_key("conversations:read")
    client = api_client(token)

    def ids(**params: Any) -> set[str]:
        return _ids(client.get(BASE, params))

    assert ids() == everything
    assert ids(status="closed") == {str(closed.pk)}
    assert ids(status="open") == everything - {str(closed.pk)}
    assert ids(mode="waiting") == {str(waiting.pk)}
    assert ids(language="de") == {str(old.pk)}
    assert ids(created_before=(now - timedelta(days=1)).isoformat()) == {str(old.pk)}
    assert ids(created_after=(now - timedelta(days=1)).isoformat()) == everything - {str(old.pk)}
    # An offset PostgreSQL refuses (beyond 16 hours) is turned into UTC.
    assert ids(created_after="2000-01-01T00:00:00-23:59") == everything
    assert ids(created_after=(now + timedelta(hours=1)).isoformat()) == set()
    assert ids(visitor="user-42") == {str(waiting.pk)}
    assert ids(visitor=str(closed.visitor.uuid)) == {str(closed.pk)}
    assert ids(assignee=str(anna.user_id)) == {str(mine.pk)}
    assert ids(assignee="anna") == {str(mine.pk)}
    assert ids(assignee="none") == everything - {str(mine.pk)}
    assert ids(team=team.pk) == {str(waiting.pk)}
    assert ids(handoff_reason="visitor_request") == {str(waiting.pk)}
    assert ids(q="REFUND") == {str(waiting.pk)}
    assert ids(q="شكرا") == {str(closed.pk)}
    assert ids(q="nowhere to be found") == set()
    assert ids(status="open", language="en", mode="agent") == {str(mine.pk)}
    item = next(i for i in client.get(BASE, {"mode": "agent"}).json()["items"])
    assert item["assignee"] == {"id": anna.user_id, "username": "anna", "name": "Anna"}
    assert item["visitor"]["uuid"] == str(mine.visitor.uuid)


@pytest.mark.django_db
def test_pages_have_no_duplicates_or_gaps_even_with_equal_timestamps() -> None:
    same = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    rows = [_conversation(created_at=same) for _ in range(4)]  # ties broken by id
    rows += [_conversation(created_at=same - timedelta(minutes=n)) for n in range(1, 5)]
    _key, token = api_key("conversations:read")
    client = api_client(token)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get(BASE, params).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        if pages == 1:  # a conversation started meanwhile is newer: it shifts nothing
            _conversation()
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    assert set(seen) == {str(c.pk) for c in rows}
    created = {str(c.pk): c.created_at for c in Conversation.objects.all()}
    assert [created[i] for i in seen] == sorted((created[i] for i in seen), reverse=True)


@pytest.mark.django_db
def test_detail_has_messages_citations_and_an_etag_for_304() -> None:
    data = visitor_with_data()
    Message.objects.create(
        conversation=data.conversation, role="note", text="VIP customer", status="complete"
    )
    _key, token = api_key("conversations:read")
    client = api_client(token)
    url = f"{BASE}/{data.conversation.pk}"
    response = client.get(url)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(data.conversation.pk) and body["messages_complete"] is True
    question, reply, note = body["messages"]
    assert question["role"] == "user" and question["translations"][0]["text"] == "translated"
    assert reply["citations"] == [{"title": "Accounts", "url": ""}]
    assert reply["feedback"] == {"rating": "up", "comment": "good"}
    assert note["role"] == "note"
    tag = response["ETag"]
    again = client.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == tag
    Message.objects.create(
        conversation=data.conversation, role="user", text="Still there?", status="complete"
    )
    changed = client.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed["ETag"] != tag
    assert changed.json()["messages"][-1]["text"] == "Still there?"


@pytest.mark.django_db
def test_export_holds_everything_and_is_audited() -> None:
    data = visitor_with_data()
    key, token = api_key("conversations:read", name="crm")
    response = api_client(token).get(f"{BASE}/{data.conversation.pk}/export")
    assert response.status_code == 200
    export = response.json()
    assert export["conversation"]["visitor_email"] == "lina@example.com"
    question, reply = export["messages"]
    assert question["knowledge"] == [{"title": "Accounts", "url": "", "text": "Reset it."}]
    assert question["translations"] == [{"language": "en", "status": "done", "text": "translated"}]
    assert reply["feedback"]["rating"] == "up" and reply["citations"][0]["title"] == "Accounts"
    assert export["csat"]["rating"] == 5 and export["csat"]["comment"] == "great"
    event = AuditEvent.objects.get()
    assert (event.action, event.via, event.target_id) == (
        "view_conversation",
        "api",
        str(data.conversation.pk),
    )
    assert event.actor is None and event.actor_label == f"API key crm ({key.prefix})"


@pytest.mark.django_db
def test_messages_are_paged_oldest_first_without_gaps() -> None:
    conversation = _conversation()
    made = [
        Message.objects.create(
            conversation=conversation, role="user", text=f"m{n}", status="complete"
        ).pk
        for n in range(7)
    ]
    other = _conversation(text="not this one")
    _key, token = api_key("conversations:read")
    client = api_client(token)
    seen: list[int] = []
    cursor = ""
    while True:
        url = f"{BASE}/{conversation.pk}/messages?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).json()
        seen += [m["id"] for m in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == made
    assert client.get(f"{BASE}/{other.pk}/messages").json()["items"][0]["text"] == "not this one"


@pytest.mark.django_db
def test_scopes_are_enforced() -> None:
    conversation = _conversation()
    _key, visitors_token = api_key("visitors:read", "visitors:write")
    response = api_client(visitors_token).get(BASE)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_missing"
    assert "conversations:read" in response.json()["error"]["message"]
    _key, read_token = api_key("conversations:read")
    reader = api_client(read_token)
    for path in ("messages", "close", "reopen", "csat"):
        refused = reader.post(
            f"{BASE}/{conversation.pk}/{path}",
            data={"text": "hi", "rating": 5},
            content_type="application/json",
        )
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "scope_missing"
    assert not Message.objects.filter(conversation=conversation).exists()
    assert Client().get(BASE).json()["error"]["code"] == "unauthorized"


@pytest.mark.django_db
def test_a_staff_session_reads_but_does_not_write() -> None:
    conversation = _conversation(text="hello")
    staff = get_user_model().objects.create_user("sam", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert _ids(client.get(BASE)) == {str(conversation.pk)}
    assert client.get(f"{BASE}/{conversation.pk}").status_code == 200
    refused = client.post(f"{BASE}/{conversation.pk}/close")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "scope_missing"
    assert Conversation.objects.get(pk=conversation.pk).status == "open"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", f"{BASE}/not-a-uuid", 404),
        ("get", f"{BASE}/{uuid.uuid4()}", 404),
        ("get", f"{BASE}/{uuid.uuid4()}/export", 404),
        ("get", f"{BASE}/{uuid.uuid4()}/messages", 404),
        ("get", f"{BASE}/123/messages", 404),
        ("get", f"{BASE}/{'%27%3B--'}", 404),
        ("get", f"{BASE}?status=maybe", 422),
        ("get", f"{BASE}?created_after=yesterday", 422),
        ("get", f"{BASE}?limit=0", 422),
        ("get", f"{BASE}?limit=100000", 422),
        ("get", f"{BASE}?team=abc", 422),
        ("get", f"{BASE}?team=99999999999999999999", 422),
        ("get", f"{BASE}?handoff_reason=bored", 422),
        ("get", f"{BASE}?cursor=garbage", 422),
        ("get", f"{BASE}?cursor=WyJub3QgYSBkYXRlIiwgIngiXQ", 422),  # ["not a date", "x"]
        ("get", f"{BASE}?cursor=WzEsIDJd", 422),  # [1, 2]
        ("get", f"{BASE}?cursor=WyJhXHUwMDAwYiIsICJ4Il0", 422),  # ["a\u0000b", "x"]
        ("get", f"{BASE}?q=%00", 422),  # PostgreSQL text cannot hold NUL
        ("get", f"{BASE}?visitor=a%00b", 422),
    ],
)
def test_malformed_ids_and_parameters_are_json_errors_not_500(
    method: str, path: str, status: int
) -> None:
    _key, token = api_key("conversations:read", "conversations:write")
    response = getattr(api_client(token), method)(path)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == ("not_found" if status == 404 else "invalid_request")
    assert error["message"]


# --- Writes (async endpoints: their database work runs on other threads' connections) -------
@pytest.mark.django_db(transaction=True)
def test_a_retried_post_returns_the_same_message_and_stores_it_once() -> None:
    anna = agent_create("anna", language="en")
    conversation = _conversation(text="Where is my parcel?")
    token = _key_of(anna.user, "conversations:write")
    client = api_client(token)
    url = f"{BASE}/{conversation.pk}/messages"
    body = {"text": "It left our warehouse today."}
    first = client.post(
        url, body, content_type="application/json", headers={"Idempotency-Key": "k1"}
    )
    assert first.status_code == 201, first.content
    posted = first.json()
    # Stored (and committed: another connection sees it) before the 201 came back.
    connections["default"].close()
    stored = Message.objects.get(pk=posted["id"])
    assert stored.text == "It left our warehouse today." and stored.role == "agent"
    assert stored.author_id == anna.user_id and stored.client_id == "api:k1"
    assert posted["author"]["username"] == "anna" and posted["client_id"] == "api:k1"

    again = client.post(
        url, body, content_type="application/json", headers={"Idempotency-Key": "k1"}
    )
    assert again.status_code == 200 and again.json()["id"] == posted["id"]
    in_body = client.post(url, {**body, "client_id": "k1"}, content_type="application/json")
    assert in_body.status_code == 200 and in_body.json()["id"] == posted["id"]
    assert Message.objects.filter(conversation=conversation, role="agent").count() == 1

    # The agent took the conversation over, as when answering in the inbox.
    taken = Conversation.objects.get(pk=conversation.pk)
    assert taken.mode == "agent" and taken.assignee_id == anna.user_id
    without_key = client.post(url, body, content_type="application/json")
    assert without_key.status_code == 201 and without_key.json()["id"] != posted["id"]

    # The same key for another kind of message is a conflict, never a second row.
    conflict = client.post(
        url,
        {"text": "note", "kind": "note"},
        content_type="application/json",
        headers={"Idempotency-Key": "k1"},
    )
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    mismatch = client.post(
        url,
        {**body, "client_id": "k2"},
        content_type="application/json",
        headers={"Idempotency-Key": "k1"},
    )
    assert mismatch.status_code == 422


@pytest.mark.django_db(transaction=True)
def test_authors_notes_and_event_lines() -> None:
    anna = agent_create("anna", language="en")
    agent_create("bert", language="en")
    get_user_model().objects.create_user("outsider", password="pw")
    conversation = _conversation()
    token = _key_of(anna.user, "conversations:write", "conversations:read")
    client = api_client(token)
    url = f"{BASE}/{conversation.pk}/messages"

    def post(**body: Any) -> Any:
        return client.post(url, body, content_type="application/json")

    by_bert = post(text="Bert here.", author="bert")
    assert by_bert.status_code == 201 and by_bert.json()["author"]["username"] == "bert"
    note = post(text="VIP", kind="note", author=anna.user_id)
    assert note.status_code == 201 and note.json()["role"] == "note"
    line = post(text="Your order was shipped.", kind="system")
    assert line.status_code == 201
    assert line.json()["role"] == "system" and line.json()["author"] is None
    assert line.json()["language"] == "en"

    refused = post(text="hi", author="outsider")  # not an agent, not staff
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "author"
    assert post(text="hi", author="nobody").status_code == 422
    assert post(text="hi", author=10**30).status_code == 422
    assert post(text="x", kind="system", author="anna").status_code == 422
    assert post(text="   ").json()["error"]["details"][0]["code"] == "message_empty"
    assert post(text="hi", kind="shout").status_code == 422
    assert client.post(url, "{not json", content_type="application/json").status_code in (400, 422)
    assert post(text="x" * 100_001).status_code == 422

    _key, creatorless = api_key("conversations:write")
    orphan = api_client(creatorless).post(url, {"text": "hi"}, content_type="application/json")
    assert orphan.status_code == 422 and orphan.json()["error"]["details"][0]["field"] == "author"
    gone = client.post(
        f"{BASE}/{uuid.uuid4()}/messages", {"text": "hi"}, content_type="application/json"
    )
    assert gone.status_code == 404
    roles = list(Message.objects.filter(conversation=conversation).values_list("role", flat=True))
    assert roles.count("agent") == 1 and roles.count("note") == 1


@pytest.mark.django_db(transaction=True)
def test_close_and_reopen() -> None:
    conversation = _conversation(mode="agent", text="thanks, that's all")
    _key, token = api_key("conversations:write")
    client = api_client(token)
    closed = client.post(f"{BASE}/{conversation.pk}/close")
    assert closed.status_code == 200, closed.content
    assert closed.json()["status"] == "closed" and closed.json()["csat_requested"] is True
    assert client.post(f"{BASE}/{conversation.pk}/close").status_code == 200  # no change
    assert Message.objects.filter(conversation=conversation, role="system").count() == 1
    reopened = client.post(f"{BASE}/{conversation.pk}/reopen")
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"
    assert Conversation.objects.get(pk=conversation.pk).reopened_at is not None
    assert client.post(f"{BASE}/{uuid.uuid4()}/close").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_feedback_and_csat() -> None:
    data = visitor_with_data()
    Feedback.objects.all().delete()
    Csat.objects.all().delete()
    _key, token = api_key("conversations:write")
    client = api_client(token)
    base = f"{BASE}/{data.conversation.pk}"

    def post(path: str, **body: Any) -> Any:
        return client.post(f"{base}/{path}", body, content_type="application/json")

    saved = post(f"messages/{data.reply.pk}/feedback", rating="down", comment="wrong price")
    assert saved.status_code == 200, saved.content
    assert Feedback.objects.get(message=data.reply).comment == "wrong price"
    assert post(f"messages/{data.reply.pk}/feedback", rating="up").json()["rating"] == "up"
    assert Feedback.objects.get(message=data.reply).rating == "up"
    # A bot conversation marked helpful: the visitor is asked for a rating.
    assert Conversation.objects.get(pk=data.conversation.pk).csat_requested is True
    assert post(f"messages/{data.question.pk}/feedback", rating="up").status_code == 404
    assert post(f"messages/{10**20}/feedback", rating="up").status_code in (404, 422)
    assert post(f"messages/{data.reply.pk}/feedback", rating="meh").status_code == 422

    assert post("csat", rating=6).status_code == 422
    assert post("csat", rating=0).status_code == 422
    rated = post("csat", rating=4, comment="quick")
    assert rated.status_code == 200 and rated.json()["rating"] == 4
    assert post("csat", rating=5).status_code == 200  # rating again replaces it
    assert Csat.objects.get(conversation=data.conversation).rating == 5
    other = client.post(
        f"{BASE}/{uuid.uuid4()}/csat", {"rating": 3}, content_type="application/json"
    )
    assert other.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_superuser_session_may_write() -> None:
    boss = get_user_model().objects.create_superuser("boss", password="pw")
    conversation = _conversation()
    client = Client()
    client.force_login(boss)
    posted = client.post(
        f"{BASE}/{conversation.pk}/messages",
        {"text": "Hello, I am the boss."},
        content_type="application/json",
    )
    assert posted.status_code == 201, posted.content
    assert posted.json()["author"]["username"] == "boss"


# --- Live: an API-posted message reaches the visitor's open widget ---------------------------
async def _until(communicator: Any, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive(communicator, timeout=timeout)
            frames.append(frame)
            if predicate(frame):
                return frames


@pytest.mark.django_db(transaction=True)
async def test_an_api_message_reaches_the_connected_visitor_live_and_translated() -> None:
    anna = await database_sync_to_async(agent_create)("anna", language="de")
    token = await database_sync_to_async(_key_of)(anna.user, "conversations:write")
    visitor = await connect("en")
    await hello(visitor, locale="en")
    await send(visitor, {"type": "message", "client_id": "v1", "text": "Where is my parcel?"})
    ack = (await _until(visitor, lambda f: f["type"] == "ack"))[-1]
    await _until(visitor, lambda f: f["type"] == "done")
    conversation_id = ack["conversation_id"]

    client = AsyncClient()
    url = f"{BASE}/{conversation_id}/messages"
    auth = {"Authorization": f"Bearer {token}"}
    note = await client.post(
        url, {"text": "Stammkunde", "kind": "note"}, content_type="application/json", headers=auth
    )
    assert note.status_code == 201
    posted = await client.post(
        url,
        {"text": "Ihr Paket kommt morgen."},
        content_type="application/json",
        headers={**auth, "Idempotency-Key": "live-1"},
    )
    assert posted.status_code == 201, posted.content
    message_id = posted.json()["id"]
    frames = await _until(
        visitor, lambda f: f["type"] == "translation" and f["message_id"] == message_id
    )
    state = [f for f in frames if f["type"] == "state"][-1]  # (the bot handed off before)
    assert state["state"]["mode"] == "agent" and state["state"]["agent"] == "Anna"
    shown = [f["message"] for f in frames if f["type"] == "message"]
    joined, answer = shown[-2:]
    assert joined["role"] == "system" and "Anna" in joined["text"]
    assert answer["id"] == message_id and answer["text"] == "Ihr Paket kommt morgen."
    assert answer["author_name"] == "Anna" and answer["translation"]["status"] == "pending"
    assert frames[-1]["text"] == "[en] Ihr Paket kommt morgen."
    assert all("Stammkunde" not in json.dumps(frame) for frame in frames)  # notes stay private

    # A retry is answered from the database and not shown to the visitor twice.
    retried = await client.post(
        url,
        {"text": "Ihr Paket kommt morgen."},
        content_type="application/json",
        headers={**auth, "Idempotency-Key": "live-1"},
    )
    assert retried.status_code == 200 and retried.json()["id"] == message_id
    assert await Message.objects.filter(conversation_id=conversation_id, role="agent").acount() == 1
    assert await visitor.receive_nothing(timeout=1)

    # Resolved through the API: the visitor's widget is asked for a rating at once.
    closed = await client.post(f"{BASE}/{conversation_id}/close", headers=auth)
    assert closed.status_code == 200
    frames = await _until(visitor, lambda f: f["type"] == "state")
    assert frames[-1]["state"]["status"] == "closed" and frames[-1]["state"]["csat_requested"]
    await visitor.disconnect()
