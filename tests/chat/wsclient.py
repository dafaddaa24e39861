"""Helpers to talk to the chat consumer through Channels' WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.testing import WebsocketCommunicator

from autoglm_site.asgi import application


async def connect(accept_language: str = "en") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[
            (b"origin", b"http://testserver"),
            (b"host", b"testserver"),
            (b"accept-language", accept_language.encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def send(communicator: WebsocketCommunicator, frame: dict[str, Any]) -> None:
    await communicator.send_to(text_data=json.dumps(frame))


async def receive(communicator: WebsocketCommunicator, timeout: float = 5) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await communicator.receive_from(timeout=timeout))
    return frame


async def receive_until(
    communicator: WebsocketCommunicator, frame_type: str, timeout: float = 10
) -> list[dict[str, Any]]:
    """Frames up to and including the first of FRAME_TYPE."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive(communicator, timeout=timeout)
            frames.append(frame)
            if frame["type"] == frame_type:
                return frames


async def hello(communicator: WebsocketCommunicator, **fields: Any) -> dict[str, Any]:
    await send(communicator, {"type": "hello", **fields})
    frame = await receive(communicator)
    assert frame["type"] == "welcome", frame
    return frame


def text_of(frames: list[dict[str, Any]], message_id: int) -> str:
    """Join the deltas of one message, checking that offsets are contiguous (a delta from
    offset 0 after some text is a rewrite: it replaces the text, as in the widget)."""
    text = ""
    for frame in frames:
        if frame["type"] == "delta" and frame["message_id"] == message_id:
            if frame["offset"] == 0:
                text = ""
            assert frame["offset"] == len(text), (frame, len(text))
            text += frame["text"]
    return text
