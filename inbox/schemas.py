"""The client frames of the inbox WebSocket (docs/inbox.md), parsed and validated."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from chat.schemas import ClientId, json_frame_parse

MAX_FRAME_BYTES = 65_536
Ref = Annotated[str, Field(max_length=64)] | None


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    ref: Ref = None


class _OnConversation(_Frame):
    conversation_id: uuid.UUID


class Ping(_Frame):
    type: Literal["ping"]


class Open(_OnConversation):
    type: Literal["open"]
    last_seen_id: Annotated[int, Field(ge=0)] | None = None


class Leave(_OnConversation):
    type: Literal["leave"]


class Send(_OnConversation):
    type: Literal["send"]
    client_id: ClientId
    text: str
    note: bool = False


class Action(_OnConversation):
    type: Literal["claim", "resolve", "reopen", "hand_back"]


class Assign(_OnConversation):
    type: Literal["assign"]
    agent_id: Annotated[int, Field(ge=1)]


class Transfer(_OnConversation):
    type: Literal["transfer"]
    team_id: Annotated[int, Field(ge=1)] | None = None
    agent_id: Annotated[int, Field(ge=1)] | None = None


class TranslationToggle(_OnConversation):
    type: Literal["translation"]
    enabled: bool


class Retranslate(_OnConversation):
    type: Literal["retranslate"]
    message_id: Annotated[int, Field(ge=1)]


class TypingFrame(_OnConversation):
    type: Literal["typing"]


InboxFrame = (
    Ping
    | Open
    | Leave
    | Send
    | Action
    | Assign
    | Transfer
    | TranslationToggle
    | Retranslate
    | TypingFrame
)
InboxFrameField = Annotated[InboxFrame, Field(discriminator="type")]
_adapter: TypeAdapter[InboxFrame] = TypeAdapter(InboxFrameField)
FRAME_TYPES = frozenset(
    {
        "ping",
        "open",
        "leave",
        "send",
        "claim",
        "resolve",
        "reopen",
        "hand_back",
        "assign",
        "transfer",
        "translation",
        "retranslate",
        "typing",
    }
)


def frame_parse(raw: str) -> InboxFrame:
    return json_frame_parse(
        raw, max_bytes=MAX_FRAME_BYTES, frame_types=FRAME_TYPES, adapter=_adapter
    )
