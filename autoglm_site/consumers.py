"""The base of the product's WebSocket consumers."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer


class PooledWebsocketConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer whose database work all runs in chat.asyncdb's thread pools.

    Channels closes stale database connections before every handler it dispatches, with a
    hop to its single sync thread and back (`aclose_old_connections`): for every frame a
    socket sends and every group event it receives, each delta of a streaming reply included.
    Measured at 100 conversations, those hops were a third of the event loop's time. These
    consumers touch the database only through `database_sync_to_async` calls, which close
    their own thread's stale connections before and after each call, so the hop is skipped.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
