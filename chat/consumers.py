"""The chat WebSocket: parses each frame, calls one service, and relays the group's events."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from django.conf import settings

from autoglm_site import metrics
from autoglm_site.catalogues import catalogues_reload_if_changed
from autoglm_site.consumers import PooledWebsocketConsumer
from chat import abuse, errors, events, selectors, services
from chat.asyncdb import in_thread
from chat.delivery import ReplyDelivery, Watched, coalesced
from chat.language import language_negotiate
from chat.live import get_live_text
from chat.models import Conversation, Visitor
from chat.replies import (
    conversation_broadcast,
    conversation_cancel,
    conversation_resume,
    get_runner,
    group_name,
)
from chat.schemas import (
    Cancel,
    Hello,
    LeaveEmail,
    Ping,
    RequestHandoff,
    RequestTranscript,
    SendCsat,
    SendFeedback,
    SendMessage,
    Typing,
    frame_parse,
)
from inbox import live as inbox_live
from inbox import services as inbox_services

logger = logging.getLogger(__name__)

# Closing with this code means "reconnect and say hello again" (the widget reconnects on any
# close). Daphne accepts only 1000 or 3000-4999 from the application.
RESYNC_CLOSE_CODE = 4000


# Frames that are refused or malformed without being abuse on their own.
_BAD_FRAMES = (
    errors.InvalidJSON,
    errors.InvalidFrame,
    errors.UnknownFrameType,
    errors.FrameTooLarge,
)


class ChatConsumer(PooledWebsocketConsumer):
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
        self.address = abuse.scope_address(self.scope)
        self.frames = abuse.frame_bucket()
        self.refused = 0  # frames refused (too many, malformed) since the last good one
        self.last_active = time.monotonic()
        if not abuse.SOCKETS.open(self.address):
            await self.accept()
            await self.send_error(errors.TooManySockets())
            await self.close(code=abuse.ABUSE_CLOSE_CODE)
            return
        self.socket_counted = True
        self.guard = asyncio.create_task(self._guard())
        self.delivery = ReplyDelivery(
            self.send_frame,
            live_text=get_live_text().get,
            stored_text=_stored_text,
            watched=self.watched,
            resume=self.resume,
            failed=self.reply_failed,
        )
        lease = settings.CHAT_REPLY_LEASE_SECONDS
        self.watchdog = asyncio.create_task(
            self.delivery.watch(quiet=min(3.0, lease / 2), lease=lease)
        )
        await self.accept()
        self.counted = True  # in the open-sockets gauge (disconnect may come without connect)
        metrics.SOCKETS_ACTIVE.inc()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "socket_counted", False):
            self.socket_counted = False
            abuse.SOCKETS.close(self.address)
        if getattr(self, "guard", None) is not None:
            self.guard.cancel()
        if getattr(self, "counted", False):
            self.counted = False
            metrics.SOCKETS_ACTIVE.dec()
        if getattr(self, "watchdog", None) is not None:
            self.watchdog.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self._presence(joined=False)

    async def watched(self, ids: list[int]) -> Watched:
        """The watchdog's look at the replies this socket waits on (one query for all the
        process's sockets that look at the same time). Orphaned: one is streaming with an
        expired lease (its process died), or one is pending and this process is not generating
        the conversation (the process that stored it may have died before it started). The
        socket joins its conversation's group again first."""
        if self.group:
            # Idempotent; a Redis restart forgets the groups, and this socket would then hear
            # nothing more of its conversation until the visitor's client said hello again.
            await self.channel_layer.group_add(self.group, self.channel_name)
        states = await coalesced(_reply_states).get(ids)
        done = [state for state in states.values() if not isinstance(state, str)]
        kinds = {state for state in states.values() if isinstance(state, str)}
        here = self.conversation is not None and get_runner().running(self.conversation.pk)
        orphaned = "stale" in kinds or ("pending" in kinds and not here)
        return Watched(done=done, orphaned=orphaned)

    async def resume(self) -> None:
        """Recover the conversation's replies whose process died (the watchdog's last resort).

        If that fails half-way (Redis or the database down), a reply may have been queued that
        this socket was never told of, and nobody would generate it: the socket is closed, so
        the client reconnects and its `hello` takes the stored state and resumes."""
        if self.conversation is None:
            return
        try:
            await conversation_resume(conversation=self.conversation)
        except Exception:
            logger.warning(
                "resuming conversation %s failed: closing the socket to resynchronise",
                self.conversation.pk,
                exc_info=True,
            )
            await self.close(code=RESYNC_CLOSE_CODE)

    async def _guard(self) -> None:
        """Close a socket that never says hello in time, or that has been idle for long.

        Idle: no frame but pings from the visitor, and nothing sent to them, for
        CHAT_IDLE_TIMEOUT_SECONDS, in a conversation no person is about to answer (one that
        waits for an agent or has one stays open, however quiet)."""
        await asyncio.sleep(settings.CHAT_HELLO_TIMEOUT_SECONDS)
        if self.visitor is None:
            await self.send_error(errors.HelloTimeout())
            await self.close(code=abuse.ABUSE_CLOSE_CODE)
            return
        idle = settings.CHAT_IDLE_TIMEOUT_SECONDS
        while True:
            await asyncio.sleep(max(0.05, idle - (time.monotonic() - self.last_active)))
            if time.monotonic() - self.last_active < idle:
                continue
            if self.conversation is not None:
                mode = await in_thread(selectors.conversation_mode)(
                    conversation_id=self.conversation.pk
                )
                if mode != Conversation.Mode.BOT:
                    self.last_active = time.monotonic()
                    continue
            await self.close(code=abuse.IDLE_CLOSE_CODE)
            return

    async def _refuse(self, error: errors.ChatError, **extra: Any) -> None:
        """A frame that is refused: said once in a row, and the socket closed past a bound."""
        self.refused += 1
        if self.refused > settings.CHAT_MAX_REFUSED_FRAMES:
            await self.close(code=abuse.ABUSE_CLOSE_CODE)
        elif self.refused == 1 or not isinstance(error, errors.TooManyFrames):
            await self.send_error(error, **extra)

    async def reply_failed(self, message_id: int) -> None:
        await self.send_error(errors.ReplyFailed(), message_id=message_id)

    # --- client frames ----------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        ref: str | None = None
        hello = False
        if not self.frames.take():
            await self._refuse(errors.TooManyFrames())
            return
        try:
            if text_data is None:
                raise errors.InvalidFrame()
            frame = frame_parse(text_data, max_bytes=settings.CHAT_MAX_FRAME_BYTES)
            if isinstance(frame, SendMessage):
                ref = frame.client_id
                await self.on_message(frame)
            elif isinstance(frame, Hello):
                hello = True
                await self.on_hello(frame)
            elif isinstance(frame, Cancel):
                await self.on_cancel(frame)
            elif isinstance(frame, SendFeedback):
                await self.on_feedback(frame)
            elif isinstance(frame, Ping):
                await self.send_frame({"type": "pong"})
            elif isinstance(frame, Typing):
                await self.on_typing()
            elif isinstance(frame, RequestHandoff | SendCsat | LeaveEmail | RequestTranscript):
                await self.on_human_side(frame)
            if not isinstance(frame, Ping):
                self.last_active = time.monotonic()
            self.refused = 0
        except _BAD_FRAMES as exc:
            await self._refuse(exc, client_id=ref)
        except errors.ChatError as exc:
            await self.send_error(exc, client_id=ref)
            if isinstance(exc, errors.TooManyVisitors):
                await self.close(code=abuse.ABUSE_CLOSE_CODE)
        except Exception:
            logger.exception("chat frame failed")
            await self.send_error(errors.ChatError(), client_id=ref)
            if hello:
                # No welcome came: the widget waits on this socket for good. Closed, it
                # reconnects with backoff and says hello again.
                await self.close(code=RESYNC_CLOSE_CODE)

    async def on_hello(self, frame: Hello) -> None:
        if not frame.token:
            await in_thread(abuse.new_visitor_allow)(address=self.address)
        visitor = await in_thread(services.visitor_from_token)(token=frame.token)
        identified = False
        if frame.identity is not None:
            try:
                visitor = await in_thread(services.visitor_identify)(
                    visitor=visitor,
                    token=frame.identity.token,
                    external_id=frame.identity.id,
                    signature=frame.identity.signature,
                )
                identified = True
            except errors.InvalidIdentity as exc:
                await self.send_error(exc)  # and go on as the anonymous visitor
        if visitor.external_id and not identified:
            # A signed-in user's token on a shared computer, after they left: not theirs to
            # resume without the host site vouching for them again.
            raise errors.IdentityRequired()
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
            messages = await self.delivery.snapshot(stored)
        elif self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self._presence(joined=False)
            self.group = None
        self.conversation = conversation
        state = await in_thread(inbox_live.conversation_state)(
            conversation_id=conversation.pk if conversation else None
        )
        token = services.visitor_token(visitor=visitor)
        await self.send_frame(
            {
                "type": "welcome",
                "conversation_id": str(conversation.pk) if conversation else None,
                "token": token,
                "language": self.language,
                "messages": messages,
                "state": state,
                "limits": {
                    "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
                    "max_frame_bytes": settings.CHAT_MAX_FRAME_BYTES,
                },
            }
        )

    async def on_message(self, frame: SendMessage) -> None:
        if self.visitor is None:
            raise errors.HelloRequired()
        received = time.monotonic()
        abuse.replies_allow(active=get_runner().active())
        result = await in_thread(_message_received)(
            address=self.address,
            visitor=self.visitor,
            conversation=self.conversation,
            language=self.language,
            client_id=frame.client_id,
            text=frame.text,
        )
        self.delivery.sent_whole(result.message.pk, len(result.message.text))
        if result.reply is not None:
            self.delivery.expect(result.reply.pk)
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
        metrics.observe_since(metrics.MESSAGE_ACK_SECONDS, received)
        # Joined after the ack (a first message opens the conversation): the ack waits on
        # nothing but the store, and the reply starts (kick, below) only once joined.
        self.conversation = result.conversation
        try:
            await self._after_ack(result)
        except Exception:
            # Stored and acknowledged: no error for the message now. Closed, the client
            # reconnects and its hello joins the conversation and resumes its pending reply.
            logger.warning(
                "message %s acknowledged, then joining or starting its reply failed:"
                " closing the socket to resynchronise",
                result.message.pk,
                exc_info=True,
            )
            await self.close(code=RESYNC_CLOSE_CODE)

    async def _after_ack(self, result: services.SendResult) -> None:
        await self.join(result.conversation)
        if result.blocked:  # stored (acknowledged above), but the assistant will not answer it
            await self.send_error(errors.MessageBlocked(), message_id=result.message.pk)
        if result.created:
            replies = [result.reply] if result.reply else []
            await conversation_broadcast(
                conversation_id=result.conversation.pk, messages=[result.message, *replies]
            )
            if result.change is not None:
                await inbox_live.change_broadcast(result.change)
            elif result.reply is None:  # a person answers: the agents' lists change
                await inbox_live.visitor_message_broadcast(result.conversation, result.message)
        if result.reply is not None:
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
        if frame.rating == "up":
            change = await in_thread(inbox_services.csat_offer_after_helpful)(
                conversation=self.conversation
            )
            if change is not None:
                await inbox_live.state_broadcast(change.conversation, queue_event="")

    async def on_typing(self) -> None:
        if self.visitor is None:
            raise errors.HelloRequired()
        if self.conversation is not None:
            await inbox_live.typing_broadcast(conversation_id=self.conversation.pk, who="visitor")

    async def on_human_side(
        self, frame: RequestHandoff | SendCsat | LeaveEmail | RequestTranscript
    ) -> None:
        """The widget's handoff control, CSAT, e-mail for a ticket, transcript by e-mail."""
        if self.visitor is None:
            raise errors.HelloRequired()
        if self.conversation is None:
            raise errors.ConversationNotFound()
        conversation = self.conversation
        if isinstance(frame, RequestHandoff):
            change = await in_thread(inbox_services.visitor_handoff_request)(
                conversation=conversation
            )
            await inbox_live.change_broadcast(change)
        elif isinstance(frame, SendCsat):
            await in_thread(inbox_services.csat_save)(
                conversation=conversation, rating=frame.rating, comment=frame.comment
            )
            await self.send_frame({"type": "csat_saved"})
            await inbox_live.state_broadcast(conversation)
        elif isinstance(frame, LeaveEmail):
            change = await in_thread(inbox_services.visitor_email_leave)(
                conversation=conversation, email=frame.address
            )
            await self.send_frame({"type": "email_saved"})
            await inbox_live.change_broadcast(change)
        else:
            address = await in_thread(inbox_services.transcript_request)(
                conversation=conversation, email=frame.address
            )
            await self.send_frame({"type": "transcript_sent", "address": address})

    # --- group events: relayed by the delivery bookkeeping -------------------------------
    async def chat_message(self, event: events.MessageEvent) -> None:
        await self.delivery.on_message(event)

    async def chat_delta(self, event: events.DeltaEvent) -> None:
        await self.delivery.on_delta(event)

    async def chat_done(self, event: events.DoneEvent) -> None:
        await self.delivery.on_done(event)

    async def chat_state(self, event: dict[str, Any]) -> None:
        await self.send_frame({"type": "state", "state": event["state"]})

    async def chat_translation(self, event: dict[str, Any]) -> None:
        conversation = self.conversation
        if conversation is None or event["language"] != conversation.language:
            return
        await self.send_frame(
            {
                "type": "translation",
                "message_id": event["message_id"],
                "language": event["language"],
                "status": event["status"],
                "text": event["text"],
            }
        )

    async def chat_typing(self, event: dict[str, Any]) -> None:
        if event["who"] == "agent":
            await self.send_frame({"type": "typing", "who": "agent", "name": event["name"]})

    # --- helpers ----------------------------------------------------------------------------
    async def join(self, conversation: Conversation) -> None:
        name = group_name(conversation.pk)
        if self.group == name:
            return
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self._presence(joined=False)
        await self.channel_layer.group_add(name, self.channel_name)
        self.group = name
        self.presence_of = conversation.pk
        self._presence(joined=True)

    def _presence(self, *, joined: bool) -> None:
        """Agents see whether the visitor is here (inbox.live.visitor_online); best effort, and
        in the background: a first message's ack and its reply do not wait on it (at 500
        conversations opening at once, the cache's round trips queued for seconds). Each
        change waits for this socket's previous one, so a leave never overtakes its join."""
        conversation_id = getattr(self, "presence_of", None)
        if conversation_id is None:
            return
        previous = getattr(self, "presence_task", None)
        self.presence_task = asyncio.create_task(
            _presence_change(previous, conversation_id=conversation_id, joined=joined)
        )

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "pong":
            self.last_active = time.monotonic()
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    async def send_error(self, error: errors.ChatError, **extra: Any) -> None:
        metrics.ERRORS.labels(code=error.code).inc()
        await self.send_frame(errors.error_frame(error, language=self.language, **extra))


def _message_received(*, address: str, **message: Any) -> services.SendResult:
    """The address's rate limit, then the message stored (chat.services.message_send): one
    trip to a socket thread before the ack, not two."""
    abuse.message_allow(address=address)
    return services.message_send(**message)


async def _stored_text(message_id: int) -> str | None:
    stored = await in_thread(selectors.message_text)(message_id=message_id)
    return stored[0] if stored else None


async def _reply_states(ids: list[int]) -> dict[int, events.DoneEvent | str]:
    return await in_thread(selectors.replies_watched)(
        ids=ids, lease_seconds=settings.CHAT_REPLY_LEASE_SECONDS
    )


async def _presence_change(
    previous: asyncio.Task[None] | None, *, conversation_id: Any, joined: bool
) -> None:
    if previous is not None:
        await asyncio.wait([previous])  # it logs its own failure
    try:
        await inbox_live.presence_change(conversation_id=conversation_id, joined=joined)
    except Exception:
        logger.warning("presence of conversation %s not updated", conversation_id, exc_info=True)
