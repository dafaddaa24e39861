"""Database work from async code, run in the thread pool.

Channels' `database_sync_to_async` runs every call of a process on one shared thread by
default; under load (hundreds of sockets, prompt assembly with a question embedding) that one
thread becomes the queue everything waits in. Each chat service call is self-contained (its
own transaction), so it can run on any pool thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def in_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """FUNC as an awaitable that runs in a pool thread, closing stale connections around it."""
    return database_sync_to_async(func, thread_sensitive=False)
