"""Database work from async code, in two thread pools: one for what a socket waits on, one for
reply generation, with the sockets' work first.

Channels' `database_sync_to_async` runs every call of a process on one shared thread by
default; under load (hundreds of sockets, prompt assembly with a question embedding) that one
thread becomes the queue everything waits in. Each chat service call is self-contained (its
own transaction), so it can run on any pool thread. Acks, hellos and feedback (`in_thread`)
never queue behind reply preparation, checkpoints and finishes (`in_reply_thread`).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

from autoglm_site import metrics

P = ParamSpec("P")
R = TypeVar("R")


_created: list[tuple[ThreadPoolExecutor, int]] = []


@cache
def _pool(name: str, workers: int) -> ThreadPoolExecutor:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    _created.append((pool, workers))
    return pool


def pools_drain(timeout: float = 30.0) -> None:
    """Wait until every call given to the pools so far has finished: each thread of each
    pool takes one barrier task, which the queue hands out only after the earlier work. (Tests
    call it after a test's event loop is closed, before the database is emptied: a cancelled
    coroutine's call goes on in its thread, and its statement could deadlock the TRUNCATE.)"""
    for pool, workers in list(_created):
        barrier = threading.Barrier(workers)
        futures = [pool.submit(barrier.wait, timeout) for _ in range(workers)]
        wait(futures, timeout=timeout)


def _on(name: str, workers: int, func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    pool = _pool(name, workers)
    # What waits for a thread of this pool now (the metric shows a pool that is too small).
    metrics.QUEUE_DEPTH.labels(queue=name).set(pool._work_queue.qsize())
    return database_sync_to_async(func, thread_sensitive=False, executor=pool)


def in_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """FUNC as an awaitable on the sockets' pool (what a visitor is waiting on)."""
    return _on("socket_threads", settings.CHAT_SOCKET_THREADS, func)


def in_reply_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """FUNC as an awaitable on the reply generators' pool.

    Not held back while socket calls run: a gate tried here (2026-12-02) starved the
    heartbeats when hundreds of sockets reconnected at once, and live replies were taken over
    as dead (bench/chaos.py lost 321 messages; 0 without it: docs/benchmarks.md)."""
    return _on("reply_threads", settings.CHAT_REPLY_THREADS, func)
