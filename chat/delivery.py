"""What one socket has delivered of each message of its conversation, and what it still owes.

Relayed deltas are trimmed to what this socket has sent, so the visitor gets no text twice and
none missing, whatever process generates the reply: a gap (the channel layer dropped a delta)
is filled from the live text or the database, a `done` whose tail never arrived sends the
tail from the database, and a watchdog looks into replies that went quiet (their `done` may
have been dropped, or their process may have died).

The class knows nothing of sockets: it is given the coroutine that sends a frame and the
readers it needs, so it is unit-tested without one (tests/chat/test_delivery.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chat import events
from chat.models import Message

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
TextReader = Callable[[int], Awaitable[str | None]]
T = TypeVar("T")


@dataclass(frozen=True)
class Watched:
    """What the watchdog learnt of the replies a socket waits on."""

    done: list[events.DoneEvent]  # finished in the database (their `done` may have been dropped)
    orphaned: bool  # one of them no live generator holds: the conversation must be resumed


class Coalesced(Generic[T]):
    """Lookups by id from many sockets of one process, merged: the first runs at once, and
    those that arrive while it runs go together in the next one. A busy process then makes
    fewer, larger queries instead of one per waiting socket (500 sockets waiting on a backlog
    each asked every few seconds, which made the backlog longer)."""

    def __init__(self, fetch: Callable[[list[int]], Awaitable[dict[int, T]]]) -> None:
        self._fetch = fetch
        self._queue: list[tuple[list[int], asyncio.Future[dict[int, T]]]] = []
        self._running = False

    async def get(self, ids: list[int]) -> dict[int, T]:
        future: asyncio.Future[dict[int, T]] = asyncio.get_running_loop().create_future()
        self._queue.append((ids, future))
        if not self._running:
            self._running = True
            asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    found = await self._fetch(sorted({i for ids, _ in batch for i in ids}))
                except Exception as exc:
                    for _ids, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for ids, future in batch:
                    if not future.done():
                        future.set_result({i: found[i] for i in ids if i in found})
        finally:
            self._running = False


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Any]] = (
    weakref.WeakKeyDictionary()
)


def coalesced(fetch: Callable[[list[int]], Awaitable[dict[int, T]]]) -> Coalesced[T]:
    """The running event loop's merger of FETCH's lookups (one per loop: a future belongs to
    its loop)."""
    mergers = _per_loop.setdefault(asyncio.get_running_loop(), {})
    merger = mergers.get(id(fetch))
    if merger is None:
        merger = mergers[id(fetch)] = Coalesced(fetch)
    return merger


class ReplyDelivery:
    def __init__(
        self,
        send: Send,
        *,
        live_text: TextReader,
        stored_text: TextReader,
        watched: Callable[[list[int]], Awaitable[Watched]],
        resume: Callable[[], Awaitable[None]],
        failed: Callable[[int], Awaitable[None]],
    ) -> None:
        self._send = send
        self._live_text = live_text
        self._stored_text = stored_text
        self._watched = watched
        self._resume = resume
        self._failed = failed  # tells the visitor a reply could not be generated
        # Characters of each message this socket has sent, and the messages it sent whole.
        self.sent_len: dict[int, int] = {}
        self.finished: set[int] = set()
        self.last_event = time.monotonic()
        # The watchdog relays too: one relay at a time keeps sent_len and finished consistent.
        self._lock = asyncio.Lock()

    # --- what the socket itself sent ----------------------------------------------------
    def sent_whole(self, message_id: int, length: int) -> None:
        """A message this socket delivered complete (the visitor's own, acknowledged)."""
        self.sent_len.setdefault(message_id, length)
        self.finished.add(message_id)

    def expect(self, message_id: int) -> None:
        """A reply this socket will stream from its start."""
        self.sent_len.setdefault(message_id, 0)

    def waiting(self) -> list[int]:
        return [mid for mid in self.sent_len if mid not in self.finished]

    async def snapshot(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stored messages for a welcome frame; a streaming reply with its live text. What
        they hold counts as sent, so later deltas continue from there."""
        async with self._lock:
            for payload in payloads:
                message_id: int = payload["id"]
                if payload["status"] == Message.Status.STREAMING:
                    live = await self._live_text(message_id)
                    if live is not None and len(live) > len(payload["text"]):
                        payload["text"] = live
                elif payload["status"] != Message.Status.PENDING:
                    self.finished.add(message_id)
                self.sent_len[message_id] = len(payload["text"])
        return payloads

    # --- group events -------------------------------------------------------------------
    async def on_message(self, event: events.MessageEvent) -> None:
        self.last_event = time.monotonic()
        async with self._lock:
            message = event["message"]
            if message["id"] in self.sent_len:
                return
            self.sent_len[message["id"]] = len(message["text"])
            if message["role"] != Message.Role.ASSISTANT:  # sent whole: nothing streams
                self.finished.add(message["id"])
            await self._send(events.message_frame(event))

    async def on_delta(self, event: events.DeltaEvent) -> None:
        self.last_event = time.monotonic()
        async with self._lock:
            await self._delta(event)

    async def _delta(self, event: events.DeltaEvent) -> None:
        message_id, offset, text = event["message_id"], event["offset"], event["text"]
        if message_id in self.finished:
            return
        if event.get("rewrite"):  # the whole text, replacing what was sent
            await self._send(events.delta_frame(message_id=message_id, offset=0, text=text))
            self.sent_len[message_id] = len(text)
            return
        have = self.sent_len.get(message_id, 0)
        if offset + len(text) <= have:
            return
        if offset > have:  # a delta we never got (channel full): fill the gap
            full = await self._live_text(message_id)
            if full is None or len(full) < offset:
                full = await self._stored_text(message_id) or ""
            if len(full) >= offset:
                text, offset = full[have:offset] + text, have
            else:
                logger.warning("cannot fill gap in reply %s at %s", message_id, have)
        else:
            text, offset = text[have - offset :], have
        await self._send(events.delta_frame(message_id=message_id, offset=offset, text=text))
        self.sent_len[message_id] = offset + len(text)

    async def on_done(self, event: events.DoneEvent) -> bool:
        """Relay a reply's end (its missing tail first, an error frame after a failed one);
        True when it was relayed now."""
        self.last_event = time.monotonic()
        async with self._lock:
            return await self._done(event)

    async def _done(self, event: events.DoneEvent) -> bool:
        message_id = event["message_id"]
        if message_id in self.finished:
            return False
        have = self.sent_len.get(message_id, 0)
        if have < event["length"]:
            stored = await self._stored_text(message_id)
            if stored is not None and len(stored) > have:
                await self._send(
                    events.delta_frame(message_id=message_id, offset=have, text=stored[have:])
                )
                self.sent_len[message_id] = len(stored)
        self.finished.add(message_id)
        await self._send(events.done_frame(event))
        if event["status"] == Message.Status.FAILED:
            await self._failed(message_id)
        return True

    # --- the watchdog -------------------------------------------------------------------
    async def watch(self, *, quiet: float, lease: float) -> None:
        """Forever: look into the replies this socket waits on once they have been quiet for
        QUIET seconds, then at doubling intervals while they stay quiet (a busy server makes
        replies slow, and a query per waiting socket every few seconds would make it
        slower); see check()."""
        wait = quiet
        while True:
            await asyncio.sleep(wait)
            if not self.waiting() or time.monotonic() - self.last_event < quiet:
                wait = quiet  # nothing owed, or it is streaming: start over
                continue
            await self.check(quiet=quiet, lease=lease)
            wait = min(wait * 2, lease)

    async def check(self, *, quiet: float, lease: float) -> None:
        """Send the end of each reply this socket waits on that finished in the database
        although its `done` never came (the channel layer dropped it); after LEASE seconds
        of silence, have the conversation resumed if one of them is orphaned (its process
        died). A reply that is only slow (a busy server) is left to its generator."""
        waiting = self.waiting()
        silent = time.monotonic() - self.last_event
        if not waiting or silent < quiet:
            return
        try:
            watched = await self._watched(waiting)
            for event in watched.done:
                await self.on_done(event)
            if silent > lease and watched.orphaned:
                self.last_event = time.monotonic()
                await self._resume()
        except Exception:
            logger.exception("watching replies %s failed", waiting)
