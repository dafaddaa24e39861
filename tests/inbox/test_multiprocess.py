"""An agent on one Daphne process, the visitor on another: the Redis channel layer carries
messages, translations and typing between them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async

from chat.models import Message
from tests.chat.test_multiprocess import servers  # noqa: F401 - the fixture
from tests.inbox.agents import agent_create, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


async def _until(ws: Any, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if predicate(frame):
                return frame


async def test_agent_and_visitor_on_different_processes(servers, settings) -> None:  # noqa: F811
    visitor_server, agent_server = servers
    # The session's auth hash is keyed by SECRET_KEY: sign it in with the servers' key.
    settings.SECRET_KEY = "multi-process-test-secret-key-0123456789abcdef"
    profile = await database_sync_to_async(agent_create)("anna", language="de")
    cookie = await database_sync_to_async(session_cookie)(profile)
    origin = f"http://127.0.0.1:{agent_server.port}"
    async with (
        websockets.connect(
            visitor_server.url, origin=f"http://127.0.0.1:{visitor_server.port}"
        ) as visitor,
        websockets.connect(
            f"ws://127.0.0.1:{agent_server.port}/ws/inbox/",
            origin=origin,
            additional_headers={"Cookie": cookie},
        ) as inbox,
    ):
        await visitor.send(json.dumps({"type": "hello", "locale": "ar"}))
        await _until(visitor, lambda f: f["type"] == "welcome")
        await visitor.send(
            json.dumps({"type": "message", "client_id": "v1", "text": "أريد التحدث مع موظف"})
        )
        ack = await _until(visitor, lambda f: f["type"] == "ack")
        conversation_id = ack["conversation_id"]
        queued = await _until(inbox, lambda f: f["type"] == "queue")
        assert queued["conversation_id"] == conversation_id

        await inbox.send(json.dumps({"type": "open", "conversation_id": conversation_id}))
        await _until(inbox, lambda f: f["type"] == "conversation")
        await inbox.send(
            json.dumps(
                {
                    "type": "send",
                    "conversation_id": conversation_id,
                    "client_id": "a1",
                    "text": "Hallo, ich helfe Ihnen.",
                }
            )
        )
        sent = await _until(inbox, lambda f: f["type"] == "ack")
        shown = await _until(
            visitor, lambda f: f["type"] == "message" and f["message"]["role"] == "agent"
        )
        assert shown["message"]["id"] == sent["message_id"]
        translated = await _until(visitor, lambda f: f["type"] == "translation")
        assert translated["text"] == "[ar] Hallo, ich helfe Ihnen."

        await visitor.send(json.dumps({"type": "typing"}))
        assert (await _until(inbox, lambda f: f["type"] == "typing"))["who"] == "visitor"
        await visitor.send(json.dumps({"type": "message", "client_id": "v2", "text": "شكرا جزيلا"}))
        second = await _until(visitor, lambda f: f["type"] == "ack")
        got = await _until(
            inbox, lambda f: f["type"] == "message" and f["message"]["id"] == second["message_id"]
        )
        assert got["message"]["text"] == "شكرا جزيلا"
        arrived = await _until(
            inbox, lambda f: f["type"] == "translation" and f["message_id"] == second["message_id"]
        )
        assert arrived["text"] == "[de] شكرا جزيلا"
    assert await Message.objects.filter(conversation_id=conversation_id).acount() >= 4
