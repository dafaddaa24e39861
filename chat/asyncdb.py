"""Database work from async code, in two thread pools: one for what a socket waits on, one for
reply generation, with the sockets' work first.

Channels' `database_sync_to_async` runs every call of a process on one shared thread by
default; under load (hundreds of sockets, prompt assembly with a question embedding) that one
thread becomes the queue everything waits in. Each chat service call is self-contained (its
own transaction), so it can run on any pool thread. Acks, hellos and feedback (`in_thread`)
never queue behind reply preparation, checkpoints and finishes (`in_reply_thread`), and while
any of them is running no new reply work starts: the threads share one GIL, and a visitor
waiting to see "Sent" matters more than a reply's next step (measured: acks took 30 ms of a
thread's time at 100 conversations with reply work running beside them, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

from autoglm_site import metrics

P = ParamSpec("P")
R = TypeVar("R")


@cache
def _pool(name: str, workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


class _Gate:
    """Per event loop: how many socket calls are running, and an event set when none is."""

    def __init__(self) -> None:
        self.busy = 0
        self.idle = asyncio.Event()
        self.idle.set()


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = weakref.WeakKeyDictionary()


def _gate() -> _Gate:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = _Gate()
    return gate


def _on(name: str, workers: int, func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    pool = _pool(name, workers)
    # What waits for a thread of this pool now (the metric shows a pool that is too small).
    metrics.QUEUE_DEPTH.labels(queue=name).set(pool._work_queue.qsize())
    return database_sync_to_async(func, thread_sensitive=False, executor=pool)


def in_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """FUNC as an awaitable on the sockets' pool (what a visitor is waiting on)."""
    call = _on("socket_threads", settings.CHAT_SOCKET_THREADS, func)

    @functools.wraps(func)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        gate = _gate()
        gate.busy += 1
        gate.idle.clear()
        try:
            return await call(*args, **kwargs)
        finally:
            gate.busy -= 1
            if not gate.busy:
                gate.idle.set()

    return run


def in_reply_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """FUNC as an awaitable on the reply generators' pool, started once no socket call runs."""
    call = _on("reply_threads", settings.CHAT_REPLY_THREADS, func)

    @functools.wraps(func)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        gate = _gate()
        while gate.busy:
            await gate.idle.wait()
        return await call(*args, **kwargs)

    return run
