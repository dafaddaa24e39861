"""The client frames of the WebSocket protocol (docs/protocol.md), parsed and validated."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chat import errors

ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Identity(_Frame):
    """`{token}` (a JWT from the host site) or the legacy `{id, signature}`. Lengths and
    contents are checked by chat.services.identity_verify: a bad identity is answered with
    `invalid_identity` and the hello goes on, not refused as a whole."""

    token: str = ""
    id: str = ""
    name: str = ""
    email: str = ""
    signature: str = ""


class Hello(_Frame):
    type: Literal["hello"]
    token: Annotated[str, Field(max_length=512)] | None = None
    locale: Annotated[str, Field(max_length=35)] | None = None
    conversation_id: Annotated[str, Field(max_length=64)] | None = None
    last_seen_id: Annotated[int, Field(ge=0)] | None = None
    identity: Identity | None = None


class SendMessage(_Frame):
    type: Literal["message"]
    client_id: ClientId
    text: str  # length and code points are checked by the service, with their own error codes


class Cancel(_Frame):
    type: Literal["cancel"]
    message_id: Annotated[int, Field(ge=1)] | None = None


class SendFeedback(_Frame):
    type: Literal["feedback"]
    message_id: Annotated[int, Field(ge=1)]
    rating: Literal["up", "down"]
    comment: Annotated[str, Field(max_length=2000)] = ""


class Ping(_Frame):
    type: Literal["ping"]


class RequestHandoff(_Frame):
    type: Literal["handoff"]


class Typing(_Frame):
    type: Literal["typing"]


class SendCsat(_Frame):
    type: Literal["csat"]
    rating: Annotated[int, Field(ge=1, le=5, strict=True)]
    comment: Annotated[str, Field(max_length=2000)] = ""


class LeaveEmail(_Frame):
    type: Literal["email"]
    address: Annotated[str, Field(max_length=254)]


class RequestTranscript(_Frame):
    type: Literal["transcript"]
    address: Annotated[str, Field(max_length=254)] = ""


AnyClientFrame = (
    Hello
    | SendMessage
    | Cancel
    | SendFeedback
    | Ping
    | RequestHandoff
    | Typing
    | SendCsat
    | LeaveEmail
    | RequestTranscript
)
ClientFrame = Annotated[AnyClientFrame, Field(discriminator="type")]
_adapter: TypeAdapter[AnyClientFrame] = TypeAdapter(ClientFrame)
FRAME_TYPES = frozenset(
    {
        "hello",
        "message",
        "cancel",
        "feedback",
        "ping",
        "handoff",
        "typing",
        "csat",
        "email",
        "transcript",
    }
)


def frame_parse(raw: str, *, max_bytes: int) -> AnyClientFrame:
    """Parse one text frame; raise a ChatError with a stable code when it is not acceptable."""
    return json_frame_parse(raw, max_bytes=max_bytes, frame_types=FRAME_TYPES, adapter=_adapter)


F = TypeVar("F")


def json_frame_parse(
    raw: str, *, max_bytes: int, frame_types: frozenset[str], adapter: TypeAdapter[F]
) -> F:
    """RAW as one of ADAPTER's frames (its `type` one of FRAME_TYPES), or a ChatError with the
    code of what is wrong: too large, not JSON, not an object, unknown type, bad fields.
    Shared by the chat and the inbox sockets."""
    if len(raw) > max_bytes or len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
        raise errors.FrameTooLarge()
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise errors.InvalidJSON() from exc
    if not isinstance(data, dict):
        raise errors.InvalidFrame()
    if data.get("type") not in frame_types:
        raise errors.UnknownFrameType()
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise errors.InvalidFrame() from exc
