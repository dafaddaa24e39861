"""Each channel-layer event of a conversation's group, and each frame the server sends for one,
defined once (docs/protocol.md describes the frames).

Events go to the group `conversation_<id>` (chat.replies.group_name); every socket joined
there, on any process, relays them through its chat.delivery.ReplyDelivery.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from chat.models import Message


class UsagePayload(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int | None


class TimingsPayload(TypedDict):
    ttft_ms: float | None
    backend_ttft_ms: float | None
    duration_ms: float | None


class MessageEvent(TypedDict):
    """A newly stored message (a visitor's, or a reply about to stream)."""

    type: Literal["chat.message"]
    message: dict[str, Any]  # chat.selectors.message_payload


class DeltaEvent(TypedDict):
    """TEXT of reply MESSAGE_ID starting at character OFFSET."""

    type: Literal["chat.delta"]
    message_id: int
    offset: int
    text: str
    # TEXT is the whole reply, replacing what was streamed of it (moderation replaced it).
    rewrite: NotRequired[bool]


class DoneEvent(TypedDict):
    """Reply MESSAGE_ID ended with STATUS; LENGTH is its stored length (-1: nothing to fetch)."""

    type: Literal["chat.done"]
    message_id: int
    status: str
    length: int
    error_code: str
    finish_reason: str
    usage: UsagePayload
    timings: TimingsPayload
    citations: list[dict[str, str]]


def message_event(payload: dict[str, Any]) -> MessageEvent:
    return {"type": "chat.message", "message": payload}


def delta_event(*, message_id: int, offset: int, text: str) -> DeltaEvent:
    return {"type": "chat.delta", "message_id": message_id, "offset": offset, "text": text}


def rewrite_event(*, message_id: int, text: str) -> DeltaEvent:
    """Reply MESSAGE_ID is now TEXT, whatever was streamed of it: sockets send it from offset
    0, which replaces the text in the widget (a reply moderation blocked)."""
    return {
        "type": "chat.delta",
        "message_id": message_id,
        "offset": 0,
        "text": text,
        "rewrite": True,
    }


def done_event(reply: Message, *, citations: list[dict[str, str]]) -> DoneEvent:
    """The event for a finished REPLY, from what is stored: the same whoever builds it (the
    generator at the end of the stream, or a socket that missed it and reads the database)."""
    return {
        "type": "chat.done",
        "message_id": reply.pk,
        "status": reply.status,
        "length": len(reply.text),
        "error_code": reply.error_code,
        "finish_reason": reply.finish_reason,
        "usage": {
            "prompt_tokens": reply.prompt_tokens or 0,
            "completion_tokens": reply.completion_tokens or 0,
            "cached_prompt_tokens": reply.cached_prompt_tokens,
        },
        "timings": {
            "ttft_ms": reply.ttft_ms,
            "backend_ttft_ms": reply.backend_ttft_ms,
            "duration_ms": reply.duration_ms,
        },
        "citations": citations,
    }


def ended_event(*, reply_id: int, status: str) -> DoneEvent:
    """The event for a reply that ended without streaming to its end here (cancelled before
    it started, or interrupted): what was streamed is all there is."""
    return {
        "type": "chat.done",
        "message_id": reply_id,
        "status": status,
        "length": -1,
        "error_code": "",
        "finish_reason": status,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_prompt_tokens": None},
        "timings": {"ttft_ms": None, "backend_ttft_ms": None, "duration_ms": None},
        "citations": [],
    }


# --- Server frames --------------------------------------------------------------------------
def delta_frame(*, message_id: int, offset: int, text: str) -> dict[str, Any]:
    return {"type": "delta", "message_id": message_id, "offset": offset, "text": text}


def done_frame(event: DoneEvent) -> dict[str, Any]:
    return {
        "type": "done",
        "message_id": event["message_id"],
        "status": event["status"],
        "finish_reason": event["finish_reason"],
        "usage": event["usage"],
        "timings": event["timings"],
        "citations": event["citations"],
    }


def message_frame(event: MessageEvent) -> dict[str, Any]:
    return {"type": "message", "message": event["message"]}
