"""A real Daphne under hostile frames (bench/fuzz_ws.py), and its own message-size limit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator

import pytest
import websockets
from django.conf import settings as django_settings
from django.db import connection

from bench import fuzz_ws
from tests.chat.test_multiprocess import Server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def server(redis_url: str, transactional_db: None) -> Iterator[Server]:
    database = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@/{database}?host={django_settings.EMBEDDED_PG_DIR}",
        "REDIS_URL": redis_url,
        "SECRET_KEY": "hostile-test-secret-key-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LLM_BACKEND": "chat.llm.fake.FakeBackend",
        "CHAT_NO_KNOWLEDGE_REPLY": "model",
        "LLM_FAKE_FIRST_TOKEN_MS": "5",
        "LLM_FAKE_TOKEN_MS": "1",
        "LOG_LEVEL": "WARNING",
    }
    running = Server(env)
    yield running
    running.stop(signal.SIGKILL)


def test_hostile_frames_get_known_answers_and_the_server_stays_up(server: Server) -> None:
    code = fuzz_ws.main(
        ["--url", server.url, "--origin", f"http://127.0.0.1:{server.port}", "--frames", "1500"]
    )
    assert code == 0
    assert server.process.poll() is None


async def _first_answer(url: str, origin: str, payload: str) -> tuple[object, int | None]:
    async with websockets.connect(url, origin=origin, max_size=2**22) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "hello", "locale": "en"}))
        json.loads(await ws.recv())  # welcome
        await ws.send(payload)
        try:
            return json.loads(await asyncio.wait_for(ws.recv(), 10)), None
        except websockets.ConnectionClosed as closed:
            return None, closed.rcvd.code if closed.rcvd else None


def test_a_frame_over_daphnes_limit_is_closed_with_1009(server: Server) -> None:
    origin = f"http://127.0.0.1:{server.port}"
    over_ours = json.dumps({"type": "message", "client_id": "a", "text": "w" * 30_000})
    answer, _code = asyncio.run(_first_answer(server.url, origin, over_ours))
    assert isinstance(answer, dict) and answer["code"] == "frame_too_large"
    huge = json.dumps({"type": "message", "client_id": "b", "text": "w" * 200_000})
    answer, code = asyncio.run(_first_answer(server.url, origin, huge))
    assert answer is None and code == 1009
