"""Reply prompts prepared in a process of their own, beside the Daphne process's event loop.

A reply's preparation (its history, the knowledge search with the question's embedding, the
prompt, moderation) is most of the Python a reply costs. On reply threads it held the GIL that
the event loop needs after every socket read and write, so every socket of the process (acks,
deltas) waited on it (py-spy at 500 conversations: reply threads 50% of the GIL, the loop's
share 37%). In a process of its own it runs on another core, and the Daphne process keeps
its GIL for the sockets.

CHAT_PROMPT_PROCESSES sets how many such processes each Daphne process starts (0: prepared on
the reply threads, as before). They are started with `spawn` (never forked from a process with
threads), load Django with the parent's database settings, and work on their own database
connections. A process that dies (killed, out of memory) breaks the pool: the reply it was
preparing is prepared on a reply thread instead, and the next reply starts a new pool.
A worker whose Daphne process dies exits within a second.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections

if TYPE_CHECKING:
    from chat.llm.base import CompletionRequest
    from chat.models import Message
    from moderation.streaming import ReplyModerator

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def _worker_start(parent_pid: int, parent: dict[str, Any]) -> None:
    """In the new process: Django, with the parent's settings as they are now (a test's
    overrides and test database included), before any connection is opened."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
    import django
    from django.conf import settings as worker_settings

    for name, value in parent.items():  # before the apps load (they may read DATABASES)
        setattr(worker_settings, name, value)
    django.setup()
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    """A worker's pipes stay open when its Daphne process is killed (kill -9): it would wait
    for work for good. It exits once PARENT_PID is no longer its parent (given by the parent:
    one that died while this process started is noticed too)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)


def _parent_settings() -> dict[str, Any]:
    """The parent's plain settings (what pickles), to start a worker with."""
    values: dict[str, Any] = {}
    for name in dir(settings):
        if not name.isupper():
            continue
        value = getattr(settings, name)
        try:
            pickle.dumps(value)
        except Exception:  # noqa: S112 (a setting that cannot travel keeps the worker's own)
            continue
        values[name] = value
    # The databases as connected now (a test run's test database is set on the connections).
    values["DATABASES"] = {alias: dict(connections[alias].settings_dict) for alias in connections}
    return values


def _worker_prepare(reply: Message) -> tuple[CompletionRequest, ReplyModerator]:
    from django.db import close_old_connections

    from chat.replies import _prepared

    close_old_connections()
    try:
        return _prepared(reply)
    finally:
        close_old_connections()


def _worker_warm() -> None:
    from knowledge import embeddings

    embeddings.warm_up()  # the first visitor's search would wait for the models to load


def warm_up() -> None:
    """Start the prompt processes now and load their query embedder (a Daphne process's
    start): the first reply does not wait for Django and the model to load."""
    _get_pool().submit(_worker_warm).result()


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=settings.CHAT_PROMPT_PROCESSES,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start,
                initargs=(os.getpid(), _parent_settings()),
            )
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def enabled() -> bool:
    return int(settings.CHAT_PROMPT_PROCESSES) > 0


async def prepared_in_process(reply: Message) -> tuple[CompletionRequest, ReplyModerator] | None:
    """REPLY's request and moderator from a prompt process; None when the process died
    meanwhile (the caller prepares it itself)."""
    pool = _get_pool()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, _worker_prepare, reply)
    except BrokenProcessPool:
        logger.warning("a prompt process died: reply %s is prepared in a thread", reply.pk)
        _discard(pool)
        return None


def shutdown() -> None:
    """Stop the prompt processes (tests; a Daphne process's own end stops them too)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
