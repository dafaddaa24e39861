"""Two real Daphne processes sharing PostgreSQL and the Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.conf import settings as django_settings
from django.db import connection

from chat.llm.base import ChatTurn, CompletionRequest
from chat.llm.fake import reply_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Please explain in detail how storage quotas work across all of the plans you offer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        # A file, not a pipe: a full pipe would block the server. Closed with the process.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoglm_site.daphne_server",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "autoglm_site.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise RuntimeError(self.log.read().decode()[-3000:]) from None
                time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)


@pytest.fixture
def servers(redis_url: str, transactional_db: None) -> Iterator[tuple[Server, Server]]:
    database = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@/{database}?host={django_settings.EMBEDDED_PG_DIR}",
        "REDIS_URL": redis_url,
        "SECRET_KEY": "multi-process-test-secret-key-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LLM_BACKEND": "chat.llm.fake.FakeBackend",
        "CHAT_NO_KNOWLEDGE_REPLY": "model",
        "LLM_FAKE_FIRST_TOKEN_MS": "20",
        "LLM_FAKE_TOKEN_MS": "60",
        "CHAT_CHECKPOINT_MS": "200",
        "CHAT_REPLY_LEASE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    first, second = Server(env), Server(env)
    yield first, second
    first.stop(signal.SIGKILL)
    second.stop(signal.SIGKILL)


async def _frame(ws: Any, timeout: float = 10) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def _until(ws: Any, frame_type: str) -> list[dict[str, Any]]:
    frames = []
    async with asyncio.timeout(20):
        while True:
            frames.append(await _frame(ws))
            if frames[-1]["type"] == frame_type:
                return frames


def _connect(server: Server) -> Any:
    return websockets.connect(server.url, origin=f"http://127.0.0.1:{server.port}")


async def _ask_and_leave(server: Server) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Send a question on SERVER, read part of the reply, drop the socket."""
    async with _connect(server) as ws:
        await ws.send(json.dumps({"type": "hello", "locale": "en"}))
        welcome = await _frame(ws)
        await ws.send(json.dumps({"type": "message", "client_id": "mp-1", "text": QUESTION}))
        ack = await _frame(ws)
        assert ack["type"] == "ack"
        seen = ""
        while len(seen) < 15:
            frame = await _frame(ws)
            if frame["type"] == "delta":
                assert frame["offset"] == len(seen)
                seen += frame["text"]
    return welcome, ack, seen


def _expected() -> str:
    return reply_for(CompletionRequest(messages=[ChatTurn(role="user", content=QUESTION)]))


async def _resume(ws: Any, welcome: dict[str, Any], ack: dict[str, Any]) -> dict[str, Any]:
    """Send the hello that resumes the conversation after its first message; the welcome."""
    hello = {
        "type": "hello",
        "token": welcome["token"],
        "conversation_id": ack["conversation_id"],
        "last_seen_id": ack["message_id"],
    }
    await ws.send(json.dumps(hello))
    return await _frame(ws)


def _assemble(snapshot: str, frames: list[dict[str, Any]], message_id: int) -> str:
    text = snapshot
    for frame in frames:
        if frame["type"] == "delta" and frame["message_id"] == message_id:
            assert frame["offset"] == len(text), (frame, len(text))
            text += frame["text"]
    return text


async def test_reconnect_to_second_process_resumes_the_reply(
    servers: tuple[Server, Server],
) -> None:
    first, second = servers
    welcome, ack, seen = await _ask_and_leave(first)
    async with _connect(second) as ws:
        resumed = await _resume(ws, welcome, ack)
        [reply] = [m for m in resumed["messages"] if m["id"] == ack["reply_id"]]
        assert reply["status"] == "streaming", reply  # still being generated by the first process
        assert reply["text"].startswith(seen)
        rest = await _until(ws, "done")
    assert _assemble(reply["text"], rest, ack["reply_id"]) == _expected()
    assert rest[-1]["status"] == "complete"


async def test_reply_of_a_killed_process_is_regenerated_on_next_hello(
    servers: tuple[Server, Server],
) -> None:
    first, second = servers
    welcome, ack, _seen = await _ask_and_leave(first)
    first.stop(signal.SIGKILL)  # the process generating the reply dies
    await asyncio.sleep(2.5)  # longer than CHAT_REPLY_LEASE_SECONDS
    async with _connect(second) as ws:
        resumed = await _resume(ws, welcome, ack)
        by_id = {m["id"]: m for m in resumed["messages"]}
        assert by_id[ack["reply_id"]]["status"] == "interrupted"
        [fresh] = [m for m in resumed["messages"] if m["id"] > ack["reply_id"]]
        assert fresh["reply_to"] == ack["message_id"]
        rest = await _until(ws, "done")
    assert rest[-1]["message_id"] == fresh["id"] and rest[-1]["status"] == "complete"
    assert _assemble(fresh["text"], rest, fresh["id"]) == _expected()


async def test_socket_waiting_on_a_dead_process_gets_the_reply_regenerated(
    servers: tuple[Server, Server],
) -> None:
    first, second = servers
    welcome, ack, _seen = await _ask_and_leave(first)
    async with _connect(second) as ws:
        resumed = await _resume(ws, welcome, ack)
        [reply] = [m for m in resumed["messages"] if m["id"] == ack["reply_id"]]
        assert reply["status"] == "streaming"
        first.stop(signal.SIGKILL)  # dies while this socket waits; no new hello is sent
        frames = await _until(ws, "done")  # the interrupted attempt
        assert frames[-1]["message_id"] == ack["reply_id"]
        assert frames[-1]["status"] == "interrupted"
        frames = await _until(ws, "done")  # the regenerated reply
    [fresh] = [f["message"] for f in frames if f["type"] == "message"]
    assert fresh["reply_to"] == ack["message_id"] and frames[-1]["message_id"] == fresh["id"]
    assert _assemble("", frames, fresh["id"]) == _expected()
