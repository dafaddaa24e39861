"""The product on the real local engine (SmolLM2 in its own process) when that engine dies or hangs
mid-reply: the reply ends with the honest fallback in the visitor's language within 2 s, the
engine is started again, and the next message is answered. The web process never exits."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import translation
from django.utils.translation import gettext

from chat.llm import _backend_for
from chat.models import Message
from tests.chat.llm.conftest import smollm2_path
from tests.chat.llm.test_local import SMOLLM2_SHA256, stop_engine
from tests.chat.wsclient import connect, hello, receive, receive_until, send, text_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def local_engine(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    settings.LLM_BACKEND = "chat.llm.router.RouterBackend"
    settings.LLM_CHAIN = ["local"]
    settings.LLM_LOCAL_MODEL_PATH = str(smollm2_path())
    settings.LLM_LOCAL_MODEL_SHA256 = SMOLLM2_SHA256
    settings.LLM_LOCAL_ENGINE_DIR = tmp_path / "engine"
    _backend_for.cache_clear()
    yield tmp_path / "engine"
    _backend_for.cache_clear()
    stop_engine(tmp_path / "engine")


def engine_pid(directory: Path) -> int:
    return int(json.loads((directory / "engine.json").read_text())["pid"])


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP])
async def test_engine_dying_mid_reply_gives_an_honest_reply_and_a_working_next_turn(
    local_engine: Path, signum: int
) -> None:
    communicator = await connect(accept_language="fr")
    await hello(communicator, locale="fr")
    await send(
        communicator,
        {"type": "message", "client_id": "c1", "text": "Write a very long story about a dragon."},
    )
    frames = await receive_until(communicator, "delta", timeout=60)
    ack = next(f for f in frames if f["type"] == "ack")
    pid = engine_pid(local_engine)
    assert pid != os.getpid()
    os.kill(pid, signum)
    hit = time.monotonic()
    try:
        frames += await receive_until(communicator, "done", timeout=10)
        ended = time.monotonic() - hit
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    done = frames[-1]
    assert ended < 2.0, ended
    assert done["status"] == "failed"
    text = text_of(frames, ack["reply_id"])
    with translation.override("fr"):
        apology = gettext(
            "Sorry, the assistant is unavailable right now. Please try again in a few "
            "minutes, or contact our support team."
        )
    assert "Sorry" not in apology and text.endswith("\n\n" + apology), text[-300:]
    stored = await Message.objects.aget(pk=ack["reply_id"])
    assert stored.text == text and stored.status == Message.Status.FAILED
    expected = "stream_cut" if signum == signal.SIGKILL else "timeout_stalled"
    assert stored.error_code == expected
    error = await receive(communicator)
    assert error["type"] == "error" and error["code"] == "reply_failed"

    # The next message is answered by a new engine.
    await send(communicator, {"type": "message", "client_id": "c2", "text": "Say hello."})
    frames = await receive_until(communicator, "done", timeout=90)
    assert frames[-1]["status"] == "complete", frames[-1]
    assert engine_pid(local_engine) != pid
    await communicator.disconnect()


def test_llm_check_starts_the_engine_and_reports_its_self_check(local_engine: Path) -> None:
    out = io.StringIO()
    call_command("llm_check", stdout=out)
    text = out.getvalue()
    pid = engine_pid(local_engine)
    assert f"engine pid {pid}, self-check passed" in text
    assert "AVX2" in text or "CPU" in text  # the engine's build line, from its /v1/models check


def test_readyz_shows_the_engine_and_its_build(local_engine: Path, client) -> None:  # type: ignore[no-untyped-def]
    call_command("engine", "start", stdout=io.StringIO())
    response = client.get("/readyz")
    llm = response.json()["checks"]["llm"]
    [local] = [e for e in llm["endpoints"] if e["name"].startswith("local:")]
    assert local["ok"] and f"engine pid {engine_pid(local_engine)}" in local["detail"]
