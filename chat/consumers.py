"""The chat WebSocket: parses each frame, calls one service, and relays the group's events."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation

from autoglm_site.catalogues import catalogues_reload_if_changed
from chat import errors, selectors, services
from chat.asyncdb import in_thread
from chat.language import language_negotiate
from chat.live import get_live_text
from chat.models import Conversation, Message, Visitor
from chat.replies import (
    conversation_broadcast,
    conversation_cancel,
    conversation_resume,
    get_runner,
    group_name,
)
from chat.schemas import Cancel, Hello, Ping, SendFeedback, SendMessage, frame_parse

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):
    visitor: Visitor | None
    conversation: Conversation | None

    async def connect(self) -> None:
        catalogues_reload_if_changed()  # translators' saves reach WebSocket-only processes too
        self.visitor = None
        self.conversation = None
        self.group: str | None = None
        headers = dict(self.scope.get("headers", []))
        self.accept_language = headers.get(b"accept-language", b"").decode("latin-1")
        self.language = language_negotiate(accept_language=self.accept_language)
        # What this socket has sent of each message: relayed deltas are trimmed to it, so the
        # visitor gets no text twice and none missing, whatever process generates the reply.
        self.sent_len: dict[int, int] = {}
        self.finished: set[int] = set()
        self.last_event = time.monotonic()
        # The watchdog relays too: one relay at a time keeps sent_len and finished consistent.
        self.relay_lock = asyncio.Lock()
        self.watchdog = asyncio.create_task(self.watch_replies())
        await self.accept()

    async def disconnect(self, code: int) -> None:
        self.watchdog.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def watch_replies(self) -> None:
        """While this socket waits on a reply that has gone quiet, find out why.

        The channel layer drops messages when it is full: a reply may be finished in the
        database while its `done` never arrived here, so it is sent from the database. And
        the process generating a reply may have died: after the lease, the reply is recovered
        (marked interrupted and regenerated) without waiting for another hello.
        """
        lease = settings.CHAT_REPLY_LEASE_SECONDS
        quiet = min(3.0, lease / 2)
        while True:
            await asyncio.sleep(quiet)
            waiting = [mid for mid in self.sent_len if mid not in self.finished]
            silent = time.monotonic() - self.last_event
            if self.conversation is None or not waiting or silent < quiet:
                continue
            try:
                for event in await in_thread(selectors.replies_finished)(ids=waiting):
                    async with self.relay_lock:
                        await self._chat_done(event)
                if silent > lease:
                    self.last_event = time.monotonic()
                    await conversation_resume(conversation=self.conversation)
            except Exception:
                logger.exception("watching conversation %s failed", self.conversation.pk)

    # --- client frames ----------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        ref: str | None = None
        try:
            if text_data is None:
                raise errors.InvalidFrame()
            frame = frame_parse(text_data, max_bytes=settings.CHAT_MAX_FRAME_BYTES)
            if isinstance(frame, SendMessage):
                ref = frame.client_id
                await self.on_message(frame)
            elif isinstance(frame, Hello):
                await self.on_hello(frame)
            elif isinstance(frame, Cancel):
                await self.on_cancel(frame)
            elif isinstance(frame, SendFeedback):
                await self.on_feedback(frame)
            elif isinstance(frame, Ping):
                await self.send_frame({"type": "pong"})
        except errors.ChatError as exc:
            await self.send_error(exc, client_id=ref)
        except Exception:
            logger.exception("chat frame failed")
            await self.send_error(errors.ChatError(), client_id=ref)

    async def on_hello(self, frame: Hello) -> None:
        visitor = await in_thread(services.visitor_from_token)(token=frame.token)
        if frame.identity is not None:
            try:
                visitor = await in_thread(services.visitor_identify)(
                    visitor=visitor,
                    external_id=frame.identity.id,
                    signature=frame.identity.signature,
                )
            except errors.InvalidIdentity as exc:
                await self.send_error(exc)  # and go on as the anonymous visitor
        self.visitor = visitor
        self.language = language_negotiate(
            requested=frame.locale, accept_language=self.accept_language
        )
        conversation = None
        messages: list[dict[str, Any]] = []
        if frame.conversation_id:
            conversation = await in_thread(selectors.conversation_for_visitor)(
                visitor=visitor, conversation_id=frame.conversation_id
            )
            if not frame.locale:
                self.language = conversation.language
            await self.join(conversation)
            await conversation_resume(conversation=conversation)
            stored = await in_thread(selectors.history_since)(
                conversation=conversation, last_seen_id=frame.last_seen_id
            )
            async with self.relay_lock:
                messages = [await self.snapshot(payload) for payload in stored]
        elif self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
        self.conversation = conversation
        token = services.visitor_token(visitor=visitor)
        await self.send_frame(
            {
                "type": "welcome",
                "conversation_id": str(conversation.pk) if conversation else None,
                "token": token,
                "language": self.language,
                "messages": messages,
                "limits": {
                    "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
                    "max_frame_bytes": settings.CHAT_MAX_FRAME_BYTES,
                },
            }
        )

    async def on_message(self, frame: SendMessage) -> None:
        if self.visitor is None:
            raise errors.HelloRequired()
        result = await in_thread(services.message_send)(
            visitor=self.visitor,
            conversation=self.conversation,
            language=self.language,
            client_id=frame.client_id,
            text=frame.text,
        )
        if self.conversation is None or self.conversation.pk != result.conversation.pk:
            self.conversation = result.conversation
            await self.join(result.conversation)
        self.sent_len.setdefault(result.message.pk, len(result.message.text))
        self.finished.add(result.message.pk)
        if result.reply is not None:
            self.sent_len.setdefault(result.reply.pk, 0)
        await self.send_frame(
            {
                "type": "ack",
                "client_id": frame.client_id,
                "message_id": result.message.pk,
                "reply_id": result.reply.pk if result.reply else None,
                "conversation_id": str(result.conversation.pk),
                "duplicate": not result.created,
            }
        )
        if result.created:
            replies = [result.reply] if result.reply else []
            await conversation_broadcast(
                conversation_id=result.conversation.pk, messages=[result.message, *replies]
            )
        get_runner().kick(result.conversation.pk)

    async def on_cancel(self, frame: Cancel) -> None:
        if self.visitor is None:
            raise errors.HelloRequired()
        if self.conversation is None:
            return
        await conversation_cancel(conversation=self.conversation, message_id=frame.message_id)

    async def on_feedback(self, frame: SendFeedback) -> None:
        if self.visitor is None:
            raise errors.HelloRequired()
        if self.conversation is None:
            raise errors.MessageNotFound()
        await in_thread(services.feedback_save)(
            conversation=self.conversation,
            message_id=frame.message_id,
            rating=frame.rating,
            comment=frame.comment,
        )
        await self.send_frame({"type": "feedback_saved", "message_id": frame.message_id})

    # --- group events -----------------------------------------------------------------------
    async def chat_message(self, event: dict[str, Any]) -> None:
        self.last_event = time.monotonic()
        async with self.relay_lock:
            await self._chat_message(event)

    async def _chat_message(self, event: dict[str, Any]) -> None:
        message = event["message"]
        if message["id"] in self.sent_len:
            return
        self.sent_len[message["id"]] = len(message["text"])
        if message["role"] == Message.Role.USER:
            self.finished.add(message["id"])
        await self.send_frame({"type": "message", "message": message})

    async def chat_delta(self, event: dict[str, Any]) -> None:
        self.last_event = time.monotonic()
        async with self.relay_lock:
            await self._chat_delta(event)

    async def _chat_delta(self, event: dict[str, Any]) -> None:
        message_id: int = event["message_id"]
        if message_id in self.finished:
            return
        offset: int = event["offset"]
        text: str = event["text"]
        have = self.sent_len.get(message_id, 0)
        if offset + len(text) <= have:
            return
        if offset > have:  # a delta we never got (channel full): fill the gap from the live text
            full = await get_live_text().get(message_id)
            if full is None or len(full) < offset:
                stored = await in_thread(selectors.message_text)(message_id=message_id)
                full = stored[0] if stored else ""
            if len(full) >= offset:
                text, offset = full[have:offset] + text, have
            else:
                logger.warning("cannot fill gap in reply %s at %s", message_id, have)
        else:
            text, offset = text[have - offset :], have
        await self.send_frame(
            {"type": "delta", "message_id": message_id, "offset": offset, "text": text}
        )
        self.sent_len[message_id] = offset + len(text)

    async def chat_done(self, event: dict[str, Any]) -> None:
        self.last_event = time.monotonic()
        async with self.relay_lock:
            await self._chat_done(event)

    async def _chat_done(self, event: dict[str, Any]) -> None:
        message_id: int = event["message_id"]
        if message_id in self.finished:
            return
        have = self.sent_len.get(message_id, 0)
        if have < event["length"]:
            stored = await in_thread(selectors.message_text)(message_id=message_id)
            if stored and len(stored[0]) > have:
                await self.send_frame(
                    {
                        "type": "delta",
                        "message_id": message_id,
                        "offset": have,
                        "text": stored[0][have:],
                    }
                )
                self.sent_len[message_id] = len(stored[0])
        self.finished.add(message_id)
        await self.send_frame(
            {
                "type": "done",
                "message_id": message_id,
                "status": event["status"],
                "usage": event["usage"],
                "timings": event["timings"],
                "citations": event.get("citations", []),
            }
        )
        if event["status"] == Message.Status.FAILED:
            await self.send_error(errors.ReplyFailed(), message_id=message_id)

    # --- helpers ----------------------------------------------------------------------------
    async def join(self, conversation: Conversation) -> None:
        name = group_name(conversation.pk)
        if self.group == name:
            return
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.channel_layer.group_add(name, self.channel_name)
        self.group = name

    async def snapshot(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A stored message for the welcome frame; a streaming reply with its live text."""
        message_id: int = payload["id"]
        if payload["status"] == Message.Status.STREAMING:
            live = await get_live_text().get(message_id)
            if live is not None and len(live) > len(payload["text"]):
                payload["text"] = live
        elif payload["status"] != Message.Status.PENDING:
            self.finished.add(message_id)
        self.sent_len[message_id] = len(payload["text"])
        return payload

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    async def send_error(self, error: errors.ChatError, **extra: Any) -> None:
        with translation.override(self.language):
            message = error.render()
        frame = {"type": "error", "code": error.code, "message": message}
        frame.update({key: value for key, value in extra.items() if value is not None})
        await self.send_frame(frame)
