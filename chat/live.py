"""The text of replies while they stream, shared by every process that may resume them.

Written before each delta is broadcast, so a socket that joins a conversation's group and
then reads here misses nothing: older text is here, newer text arrives as deltas.
"""

from __future__ import annotations

import asyncio
import weakref
from abc import ABC, abstractmethod
from functools import cache

from django.conf import settings

_TTL_SECONDS = 3600


class LiveText(ABC):
    @abstractmethod
    async def append(self, message_id: int, text: str) -> None:
        """Append TEXT (one writer per message: the process generating it)."""

    @abstractmethod
    async def get(self, message_id: int) -> str | None: ...

    @abstractmethod
    async def clear(self, message_id: int) -> None: ...


class MemoryLiveText(LiveText):
    """One process (the embedded mode): a dict."""

    def __init__(self) -> None:
        self._texts: dict[int, str] = {}

    async def append(self, message_id: int, text: str) -> None:
        self._texts[message_id] = self._texts.get(message_id, "") + text

    async def get(self, message_id: int) -> str | None:
        return self._texts.get(message_id)

    async def clear(self, message_id: int) -> None:
        self._texts.pop(message_id, None)


class RedisLiveText(LiveText):
    """Several processes: Redis APPEND with a time-to-live."""

    def __init__(self, url: str) -> None:
        self._url = url
        # redis.asyncio clients belong to one event loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self):  # type: ignore[no-untyped-def]
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = redis.Redis.from_url(self._url, max_connections=4000, socket_timeout=30)
            self._clients[loop] = client
        return client

    @staticmethod
    def _key(message_id: int) -> str:
        return f"autoglm:live:{message_id}"

    async def append(self, message_id: int, text: str) -> None:
        key, data = self._key(message_id), text.encode("utf-8")
        length = await self._client().append(key, data)
        if length == len(data):  # the key is new: it gets its time-to-live (APPEND keeps it)
            await self._client().expire(key, _TTL_SECONDS)

    async def get(self, message_id: int) -> str | None:
        value = await self._client().get(self._key(message_id))
        return value.decode("utf-8") if value is not None else None

    async def clear(self, message_id: int) -> None:
        await self._client().delete(self._key(message_id))


@cache
def _live_text_for(redis_url: str | None) -> LiveText:
    return RedisLiveText(redis_url) if redis_url else MemoryLiveText()


def get_live_text() -> LiveText:
    return _live_text_for(settings.REDIS_URL)
