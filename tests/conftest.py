"""Test set-up: the packaged PostgreSQL (pgvector) is started for the run; fast fake backend."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    from autoglm_site.embedded import ensure_database

    ensure_database()  # no-op when DATABASE_URL points at a PostgreSQL of your own


def pytest_unconfigure(config: pytest.Config) -> None:
    """Kill engine processes a failed test left behind (they run in sessions of their own, so
    they would outlive the run); only those whose state is under this run's temporary folder."""
    import contextlib
    import signal
    from pathlib import Path

    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = str(factory.getbasetemp())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"chat.llm.engine_server" in cmdline and any(base.encode() in a for a in cmdline):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


@pytest.fixture(autouse=True)
def _shared_sync_thread_closed() -> Iterator[None]:
    """After each test, close the database connection of asgiref's shared sync thread.

    A test's own async ORM calls (`await Message.objects.aget(...)`) run on that thread and
    leave its connection open: the product's consumers do not close it for them
    (autoglm_site.consumers: their database work runs in chat.asyncdb's pools). Left open,
    it outlived its test: a later test without database access failed on it, and a
    transactional test's teardown could wait on it."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture(autouse=True)
def _pool_threads_done(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test, before its database is emptied: the calls its (now cancelled) coroutines
    left running in the chat's thread pools have finished. A reply's claim still running in
    a reply thread deadlocked the teardown's TRUNCATE (then the next test found its rows)."""
    if request.node.get_closest_marker("django_db"):
        request.getfixturevalue("_django_db_helper")  # set up first: torn down after this
    yield
    from chat.asyncdb import pools_drain

    pools_drain()


@pytest.fixture(autouse=True)
def _fast_chat(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    from chat.llm.fake import FakeBackend

    settings.LLM_BACKEND = "chat.llm.fake.FakeBackend"
    settings.LLM_FAKE_FIRST_TOKEN_MS = 5
    settings.LLM_FAKE_TOKEN_MS = 2
    settings.CHAT_COALESCE_MS = 30
    settings.CHAT_CHECKPOINT_MS = 100
    # The fake backend stands for the model: replies built from the knowledge alone are tested
    # where they are meant (tests/chat/test_grounding.py).
    settings.CHAT_NO_KNOWLEDGE_REPLY = "model"
    settings.CHAT_EXTRACTIVE_LANGUAGES = ()
    # Prompts on the reply threads, where tests' mocks and settings reach them (the prompt
    # processes are tested in tests/chat/test_prompt_process.py).
    settings.CHAT_PROMPT_PROCESSES = 0
    FakeBackend.reset()
    from django.core.cache import cache

    cache.clear()  # knowledge search caches term statistics per knowledge base
    from autoglm_site.memo import memo_forget_all

    memo_forget_all()  # the glossary and presets a test's process read (tables are flushed)
    from chat.abuse import SOCKETS

    # Sockets a failed test left open would count against the next test's address.
    SOCKETS.total = 0
    SOCKETS.per_address.clear()
    yield
    FakeBackend.reset()


@pytest.fixture
def redis_url() -> str:
    """The real Redis the suite runs against (make test starts it); database 15 is ours."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is needed at {url} (make test starts it): {exc}")
    client.flushdb()
    return url
