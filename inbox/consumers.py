"""The inbox WebSocket of a signed-in agent (docs/inbox.md): parses each frame, calls one
service, relays the events of the conversations the agent opened and of the queues."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from autoglm_site.consumers import PooledWebsocketConsumer
from chat import errors
from chat.asyncdb import in_thread
from chat.replies import group_name
from inbox import live, selectors, services
from inbox.models import AgentProfile
from inbox.schemas import (
    Action,
    Assign,
    Leave,
    Open,
    Ping,
    Retranslate,
    Send,
    Transfer,
    TranslationToggle,
    TypingFrame,
    frame_parse,
)

logger = logging.getLogger(__name__)

FORBIDDEN_CLOSE_CODE = 4003


class InboxConsumer(PooledWebsocketConsumer):
    profile: AgentProfile

    async def connect(self) -> None:
        self.opened: set[uuid.UUID] = set()
        self.language = "en"
        try:
            self.profile = await in_thread(services.agent_profile)(user=self.scope.get("user"))
        except errors.AgentRequired:
            await self.close(code=FORBIDDEN_CLOSE_CODE)
            return
        self.language = self.profile.preferred_language
        await self.channel_layer.group_add(live.INBOX_GROUP, self.channel_name)
        await in_thread(services.agent_seen)(profile=self.profile)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "profile"):
            return
        await self.channel_layer.group_discard(live.INBOX_GROUP, self.channel_name)
        for conversation_id in list(self.opened):
            await self._leave(conversation_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        ref: str | None = None
        try:
            if text_data is None:
                raise errors.InvalidFrame()
            frame = frame_parse(text_data)
            ref = frame.ref
            await self.dispatch_frame(frame)
        except errors.ChatError as exc:
            await self.send_error(exc, ref=ref)
        except Exception:
            logger.exception("inbox frame failed")
            await self.send_error(errors.ChatError(), ref=ref)

    async def dispatch_frame(self, frame: Any) -> None:
        profile = self.profile
        if isinstance(frame, Ping):
            await in_thread(services.agent_seen)(profile=profile)
            await self.send_frame({"type": "pong", "ref": frame.ref})
        elif isinstance(frame, Open):
            await self.on_open(frame)
        elif isinstance(frame, Leave):
            await self._leave(frame.conversation_id)
        elif isinstance(frame, Send):
            change = await in_thread(services.agent_message_send)(
                conversation_id=frame.conversation_id,
                agent=profile,
                client_id=frame.client_id,
                text=frame.text,
                note=frame.note,
            )
            assert change.message is not None
            await self.send_frame(
                {
                    "type": "ack",
                    "ref": frame.ref,
                    "client_id": frame.client_id,
                    "message_id": change.message.pk,
                    "conversation_id": str(frame.conversation_id),
                    "duplicate": not change.created,
                }
            )
            if change.created:
                await live.change_broadcast(change)
        elif isinstance(frame, TypingFrame):
            await live.typing_broadcast(
                conversation_id=frame.conversation_id, who="agent", name=profile.name
            )
        elif isinstance(frame, Retranslate):
            row = await in_thread(selectors.failed_translation)(
                conversation_id=frame.conversation_id,
                message_id=frame.message_id,
                language=profile.preferred_language,
            )
            if row is not None and await in_thread(services.translation_retry)(
                translation_id=row.pk
            ):
                live.translation_kick(row.pk)
            await self.send_frame({"type": "ok", "ref": frame.ref, "action": frame.type})
        else:
            change = await in_thread(self._action)(frame)
            await self.send_frame({"type": "ok", "ref": frame.ref, "action": frame.type})
            await live.change_broadcast(change)

    def _action(self, frame: Any) -> services.Change:
        profile, conversation_id = self.profile, frame.conversation_id
        if isinstance(frame, Assign):
            agent = selectors.agent_by_user_id(user_id=frame.agent_id)
            return services.conversation_assign(
                conversation_id=conversation_id, agent=agent, by=profile
            )
        if isinstance(frame, Transfer):
            to_agent = (
                selectors.agent_by_user_id(user_id=frame.agent_id)
                if frame.agent_id is not None
                else None
            )
            team = selectors.team_by_id(team_id=frame.team_id) if frame.team_id else None
            return services.conversation_transfer(
                conversation_id=conversation_id, team=team, agent=to_agent, by=profile
            )
        if isinstance(frame, TranslationToggle):
            return services.conversation_translation_set(
                conversation_id=conversation_id, enabled=frame.enabled
            )
        assert isinstance(frame, Action)
        actions = {
            "claim": lambda: services.conversation_claim(
                conversation_id=conversation_id, agent=profile
            ),
            "resolve": lambda: services.conversation_resolve(
                conversation_id=conversation_id, by=profile
            ),
            "reopen": lambda: services.conversation_reopen(
                conversation_id=conversation_id, by=profile
            ),
            "hand_back": lambda: services.conversation_hand_back(
                conversation_id=conversation_id, by=profile
            ),
        }
        return actions[frame.type]()

    async def on_open(self, frame: Open) -> None:
        opened = await in_thread(selectors.conversation_for_agent)(
            conversation_id=frame.conversation_id,
            agent=self.profile,
            last_seen_id=frame.last_seen_id,
        )
        conversation_id = frame.conversation_id
        if conversation_id not in self.opened:
            await self.channel_layer.group_add(group_name(conversation_id), self.channel_name)
            await self.channel_layer.group_add(
                live.agents_group(conversation_id), self.channel_name
            )
            self.opened.add(conversation_id)
        await self.send_frame(
            {
                "type": "conversation",
                "ref": frame.ref,
                "conversation": opened.summary,
                "messages": opened.messages,
            }
        )
        for pending in opened.translations:
            live.translation_kick(pending)

    async def _leave(self, conversation_id: uuid.UUID) -> None:
        if conversation_id in self.opened:
            self.opened.discard(conversation_id)
            await self.channel_layer.group_discard(group_name(conversation_id), self.channel_name)
            await self.channel_layer.group_discard(
                live.agents_group(conversation_id), self.channel_name
            )

    # --- group events -----------------------------------------------------------------------
    async def chat_message(self, event: dict[str, Any]) -> None:
        found = await in_thread(selectors.message_for_agent)(
            message_id=event["message"]["id"], agent=self.profile
        )
        if found is None:
            return
        payload, pending = found
        await self.send_frame(
            {"type": "message", "conversation_id": payload["conversation_id"], "message": payload}
        )
        for translation_id in pending:
            live.translation_kick(translation_id)

    async def chat_delta(self, event: dict[str, Any]) -> None:
        """The inbox shows bot replies once finished (chat_done)."""

    async def chat_done(self, event: dict[str, Any]) -> None:
        await self.chat_message({"message": {"id": event["message_id"]}})

    async def chat_state(self, event: dict[str, Any]) -> None:
        summary = await in_thread(selectors.summary_by_id)(
            conversation_id=event["state"].get("conversation_id"), agent=self.profile
        )
        if summary is not None:
            await self.send_frame({"type": "conversation", "conversation": summary})

    async def chat_translation(self, event: dict[str, Any]) -> None:
        if event["role"] != "agent" and event["language"] != self.profile.preferred_language:
            return
        await self.send_frame(
            {
                "type": "translation",
                "conversation_id": event["conversation_id"],
                "message_id": event["message_id"],
                "language": event["language"],
                "status": event["status"],
                "text": event["text"],
            }
        )

    async def chat_typing(self, event: dict[str, Any]) -> None:
        if event["who"] == "visitor":
            await self.send_frame(
                {"type": "typing", "conversation_id": event["conversation_id"], "who": "visitor"}
            )

    async def chat_presence(self, event: dict[str, Any]) -> None:
        await self.send_frame(
            {
                "type": "presence",
                "conversation_id": event["conversation_id"],
                "online": event["online"],
            }
        )

    async def inbox_queue(self, event: dict[str, Any]) -> None:
        await self.send_frame(
            {"type": "queue", "conversation_id": event["conversation_id"], "event": event["event"]}
        )

    # --- helpers ----------------------------------------------------------------------------
    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False, default=str))

    async def send_error(self, error: errors.ChatError, **extra: Any) -> None:
        await self.send_frame(errors.error_frame(error, language=self.language, **extra))
