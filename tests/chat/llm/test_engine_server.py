"""The engine process's HTTP API as a network peer sees it: the key, bad bodies, a full queue.
A real engine (SmolLM2) started by the supervisor; every refusal is a clear JSON error."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from chat.llm.supervisor import EngineConfig, EngineInfo, EngineSupervisor
from tests.chat.llm.conftest import smollm2_path


@pytest.fixture(scope="module")
def supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSupervisor]:
    supervisor = EngineSupervisor(
        state_dir=tmp_path_factory.mktemp("engine"),
        config=EngineConfig(
            model_path=str(smollm2_path()), context_tokens=2048, threads=0, cache_mb=0, max_queue=1
        ),
        start_timeout=120,
    )
    supervisor.ensure()
    yield supervisor
    supervisor.stop()


@pytest.fixture
def engine(supervisor: EngineSupervisor) -> EngineInfo:
    return supervisor.ensure()


def url(info: EngineInfo, path: str) -> str:
    return f"http://127.0.0.1:{info.port}{path}"


def auth(info: EngineInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {info.api_key}"}


def story(max_tokens: int = 400) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "stream": True,
        "max_tokens": max_tokens,
    }


def test_health_is_open_and_everything_else_needs_the_key(engine: EngineInfo) -> None:
    assert httpx.get(url(engine, "/health")).json()["pid"] == engine.pid
    for path in ("/v1/models", "/v1/chat/completions", "/tokenize"):
        method = httpx.get if path == "/v1/models" else httpx.post
        response = method(url(engine, path), headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
    models = httpx.get(url(engine, "/v1/models"), headers=auth(engine)).json()
    assert [m["id"] for m in models["data"]] == ["local"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/chat/completions", b"{not json", 400, "bad_request"),
        ("/v1/chat/completions", b"[1, 2]", 400, "bad_request"),
        ("/v1/chat/completions", json.dumps({"messages": []}).encode(), 400, "bad_request"),
        ("/tokenize", json.dumps({"texts": "hello"}).encode(), 400, "bad_request"),
        ("/nowhere", b"{}", 404, "not_found"),
    ],
)
def test_bad_requests_get_clear_errors(
    engine: EngineInfo, path: str, body: bytes, status: int, code: str
) -> None:
    response = httpx.post(url(engine, path), content=body, headers=auth(engine))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_body_over_the_limit_is_refused_unread(engine: EngineInfo) -> None:
    with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as sock:
        sock.sendall(
            b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
            + f"Authorization: Bearer {engine.api_key}\r\n\r\n".encode()
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.0 413")


def test_malformed_messages_end_the_stream_with_an_error_event(engine: EngineInfo) -> None:
    body = {"messages": [{"role": "user", "content": 42}], "stream": True}
    with httpx.stream(
        "POST", url(engine, "/v1/chat/completions"), json=body, headers=auth(engine)
    ) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    assert json.loads(lines[0][5:])["error"]["code"] == "bad_request"
    assert lines[-1] == "data: [DONE]"


async def test_a_full_queue_is_refused_at_once_and_the_engine_goes_on(engine: EngineInfo) -> None:
    async with httpx.AsyncClient(headers=auth(engine), timeout=60) as client:
        endpoint = url(engine, "/v1/chat/completions")
        async with client.stream("POST", endpoint, json=story()) as running:
            lines = running.aiter_lines()
            while not (await anext(lines)).startswith("data:"):
                pass  # the first reply is generating: it left the queue
            async with client.stream("POST", endpoint, json=story()) as waiting:
                assert (await anext(waiting.aiter_lines())) == ": queued"
                await asyncio.sleep(0.3)  # its handler counted it as waiting
                refused = await client.post(endpoint, json=story())
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "busy"
        # Both clients left (seen at the engine's next write, within a heartbeat): their
        # places are free, the running generation stops, and a new reply is served.
        await asyncio.sleep(0.5)
        async with client.stream("POST", endpoint, json=story(max_tokens=4)) as after:
            assert after.status_code == 200
            data = [line async for line in after.aiter_lines() if line.startswith("data:")]
        assert data[-1] == "data: [DONE]"
        assert any("usage" in json.loads(line[5:]) for line in data[:-1])


def test_token_counts_use_the_models_tokenizer(engine: EngineInfo) -> None:
    response = httpx.post(
        url(engine, "/tokenize"), json={"texts": ["hello world", ""]}, headers=auth(engine)
    )
    assert response.json() == {"counts": [2, 0]}


def test_the_state_file_with_the_key_is_private(supervisor: EngineSupervisor) -> None:
    assert supervisor.state_file.stat().st_mode & 0o077 == 0
