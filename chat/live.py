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
    """Several processes: Redis APPEND with a time-to-live.

    The writes of one event loop are sent together: an append or clear made while an earlier
    batch is on its way goes in the next one, one pipeline (one socket write) for every reply
    streaming in the process. At 500 conversations each write had cost the event loop a
    socket send and the wait for the GIL after it, a fifth of its time (py-spy,
    docs/benchmarks.md). Each call still returns only once its own write is done, so the
    text is in Redis before the delta that follows it is broadcast."""

    def __init__(self, url: str) -> None:
        self._url = url
        # redis.asyncio clients belong to one event loop; so do the batches.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = (
            weakref.WeakKeyDictionary()
        )
        self._batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = (
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
        # The time-to-live is set again with each append: it runs from the last one.
        await self._write(("append", self._key(message_id), text.encode("utf-8")))

    async def get(self, message_id: int) -> str | None:
        value = await self._client().get(self._key(message_id))
        return value.decode("utf-8") if value is not None else None

    async def clear(self, message_id: int) -> None:
        await self._write(("delete", self._key(message_id), b""))

    async def _write(self, command: tuple[str, str, bytes]) -> None:
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = _Batch()
        future: asyncio.Future[None] = loop.create_future()
        batch.queued.append((command, future))
        if not batch.sending:
            batch.sending = True
            batch.task = loop.create_task(self._send(batch), name="live-text-writes")
        await future

    async def _send(self, batch: _Batch) -> None:
        try:
            while batch.queued:
                commands, batch.queued = batch.queued, []
                try:
                    async with self._client().pipeline(transaction=False) as pipe:
                        for (verb, key, data), _future in commands:
                            if verb == "append":
                                pipe.append(key, data)
                                pipe.expire(key, _TTL_SECONDS)
                            else:
                                pipe.delete(key)
                        await pipe.execute()
                except Exception as exc:  # each writer gets the failure, as one call would
                    for _command, future in commands:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _command, future in commands:
                    if not future.done():
                        future.set_result(None)
        finally:
            batch.sending = False


class _Batch:
    """One event loop's live-text writes not yet sent, and whether a send is under way."""

    __slots__ = ("queued", "sending", "task")

    def __init__(self) -> None:
        self.queued: list[tuple[tuple[str, str, bytes], asyncio.Future[None]]] = []
        self.sending = False
        self.task: asyncio.Task[None] | None = None  # held: a loop keeps only weak references


@cache
def _live_text_for(redis_url: str | None) -> LiveText:
    return RedisLiveText(redis_url) if redis_url else MemoryLiveText()


def get_live_text() -> LiveText:
    return _live_text_for(settings.REDIS_URL)
