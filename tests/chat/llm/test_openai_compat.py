"""The OpenAI-compatible backend against a real llama.cpp server on loopback, and against
scripted servers for the faults: every case ends in a clear LLMError code, never a hang."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from chat.llm.base import ChatTurn, Chunk, CompletionRequest, LLMError, Sampling
from chat.llm.openai_compat import OpenAICompatBackend, Timeouts
from tests.chat.llm.conftest import (
    API_KEY,
    MODEL_ALIAS,
    LlamaServer,
    delta,
    free_port,
    http_status,
    scripted_server,
    sse,
)

FAST = Timeouts(connect=1.0, first_token=1.5, between_tokens=1.0, total=5.0)
REAL = Timeouts(connect=2.0, first_token=20.0, between_tokens=10.0, total=40.0)


def ask(text: str = "Name three colours.", **sampling: object) -> CompletionRequest:
    return CompletionRequest(
        messages=[
            ChatTurn(role="system", content="You are a helpful assistant."),
            ChatTurn(role="user", content=text),
        ],
        sampling=Sampling(**{"temperature": 0.0, "seed": 7, "max_tokens": 24, **sampling}),  # type: ignore[arg-type]
    )


def real_backend(server: LlamaServer, *, api_key: str = API_KEY) -> OpenAICompatBackend:
    return OpenAICompatBackend(server.base_url, model=MODEL_ALIAS, api_key=api_key, timeouts=REAL)


async def collect(backend: OpenAICompatBackend, request: CompletionRequest) -> list[Chunk]:
    async def run() -> list[Chunk]:
        return [chunk async for chunk in backend.stream(request)]

    return await asyncio.wait_for(run(), timeout=60)


async def failure(backend: OpenAICompatBackend, request: CompletionRequest) -> LLMError:
    with pytest.raises(LLMError) as caught:
        await collect(backend, request)
    return caught.value


# --- the real llama.cpp server ------------------------------------------------------------------


async def test_real_server_streams_text_then_usage(llama_server: LlamaServer) -> None:
    chunks = await collect(real_backend(llama_server), ask(max_tokens=12))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 2, "the reply arrives in several deltas"
    last = chunks[-1]
    assert last.text == "" and last.usage is not None
    # llama.cpp's server reports no usage while streaming: completion tokens are the deltas.
    assert last.usage.completion_tokens == len(texts) <= 12
    assert last.backend_ttft_ms is not None and last.backend_ttft_ms > 0
    assert last.finish_reason in {"stop", "length"}


async def test_real_server_max_tokens_reports_length(llama_server: LlamaServer) -> None:
    chunks = await collect(real_backend(llama_server), ask("Write a long story.", max_tokens=4))
    assert chunks[-1].finish_reason == "length"
    assert 1 <= len([c for c in chunks if c.text]) <= 4


async def test_real_server_honours_stop_sequences(llama_server: LlamaServer) -> None:
    backend = real_backend(llama_server)
    request = ask("Count from one to twenty in words, separated by commas.", max_tokens=40)
    full = "".join(c.text for c in await collect(backend, request))
    assert "," in full, full
    stopped = "".join(
        c.text
        for c in await collect(
            backend, ask(request.messages[1].content, max_tokens=40, stop=(",",))
        )
    )
    assert "," not in stopped
    assert stopped == full.split(",")[0]


async def test_wrong_api_key_is_unauthorized(llama_server: LlamaServer) -> None:
    error = await failure(real_backend(llama_server, api_key="wrong"), ask())
    assert error.code == "unauthorized"
    assert "LLM_OPENAI_API_KEY" in str(error)


async def test_cancelling_mid_stream_closes_the_request(llama_server: LlamaServer) -> None:
    backend = real_backend(llama_server)
    received: list[str] = []
    first = asyncio.Event()

    async def consume() -> None:
        async for chunk in backend.stream(
            ask("Write a very long essay about the sea.", max_tokens=400)
        ):
            received.append(chunk.text)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=30)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert time.monotonic() - started < 2
    assert 1 <= len(received) < 400
    # The server is free again: a new request is answered.
    chunks = await collect(backend, ask(max_tokens=4))
    assert chunks[-1].usage is not None


async def test_server_killed_mid_stream_is_stream_cut(own_llama_server: LlamaServer) -> None:
    backend = real_backend(own_llama_server)
    received: list[str] = []
    with pytest.raises(LLMError) as caught:

        async def consume() -> None:
            async for chunk in backend.stream(
                ask("Write a very long essay about trees.", max_tokens=400)
            ):
                received.append(chunk.text)
                if len(received) == 2:
                    own_llama_server.kill()

        await asyncio.wait_for(consume(), timeout=30)
    assert caught.value.code in {"stream_cut", "timeout_between_tokens"}
    assert len(received) >= 2


async def test_real_server_check_reports_up_with_latency(llama_server: LlamaServer) -> None:
    [status] = await real_backend(llama_server).check()
    assert status.ok and status.state == "up" and status.latency_ms is not None


async def test_check_reports_unserved_model(llama_server: LlamaServer) -> None:
    backend = OpenAICompatBackend(
        llama_server.base_url, model="other", api_key=API_KEY, timeouts=REAL
    )
    [status] = await backend.check()
    assert not status.ok and "other" in status.detail


# --- faults from scripted servers ---------------------------------------------------------------


async def test_refused_connection_is_connect_failed() -> None:
    backend = OpenAICompatBackend(
        f"http://127.0.0.1:{free_port()}/v1", model="m", api_key="", timeouts=FAST
    )
    assert (await failure(backend, ask())).code == "connect_failed"
    [status] = await backend.check()
    assert not status.ok and status.state == "down"


async def test_server_that_never_answers_times_out_on_first_token() -> None:
    async def silent(reader, writer, body):  # type: ignore[no-untyped-def]
        await asyncio.sleep(3600)

    async with scripted_server(silent) as server:
        backend = OpenAICompatBackend(server.base_url, model="m", api_key="", timeouts=FAST)
        started = time.monotonic()
        error = await failure(backend, ask())
    assert error.code == "timeout_first_token"
    assert time.monotonic() - started < FAST.first_token + 1


async def test_stream_that_stalls_mid_reply_times_out() -> None:
    async with scripted_server(sse([delta("Hello")], hang_after=True)) as server:
        backend = OpenAICompatBackend(server.base_url, model="m", api_key="", timeouts=FAST)
        error = await failure(backend, ask())
    assert error.code == "timeout_between_tokens"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "unauthorized"),
        (404, "model_not_found"),
        (429, "rate_limited"),
        (500, "upstream_unavailable"),
        (503, "upstream_unavailable"),
    ],
)
async def test_http_errors_map_to_codes(status: int, code: str) -> None:
    body = {"error": {"message": f"status {status} from the test"}}
    async with scripted_server(http_status(status, body)) as server:
        backend = OpenAICompatBackend(server.base_url, model="m", api_key="k", timeouts=FAST)
        error = await failure(backend, ask())
    assert error.code == code
    assert f"status {status} from the test" in str(error)


async def test_non_json_stream_data_is_bad_stream() -> None:
    async with scripted_server(sse([delta("Hi"), "data: {not json"])) as server:
        backend = OpenAICompatBackend(server.base_url, model="m", api_key="", timeouts=FAST)
        error = await failure(backend, ask())
    assert error.code == "bad_stream"


async def test_stream_closed_without_done_is_stream_cut() -> None:
    async with scripted_server(sse([delta("Hello"), delta(" there")])) as server:
        backend = OpenAICompatBackend(server.base_url, model="m", api_key="", timeouts=FAST)
        error = await failure(backend, ask())
    assert error.code == "stream_cut"


async def test_empty_reply_is_an_error() -> None:
    role_only = "data: " + json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    async with scripted_server(sse([role_only, "data: [DONE]"])) as server:
        backend = OpenAICompatBackend(server.base_url, model="m", api_key="", timeouts=FAST)
        error = await failure(backend, ask())
    assert error.code == "empty_reply"


async def test_usage_with_cached_prompt_tokens_is_reported_and_request_is_complete() -> None:
    usage = "data: " + json.dumps(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 120,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 96},
            },
        }
    )
    finish = "data: " + json.dumps(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    lines = [": keep-alive", delta("Hello"), delta(" world"), finish, usage, "data: [DONE]"]
    async with scripted_server(sse(lines)) as server:
        backend = OpenAICompatBackend(server.base_url, model="served", api_key="k", timeouts=FAST)
        chunks = await collect(
            backend, ask(temperature=0.5, top_p=0.8, max_tokens=33, stop=("END",), seed=3)
        )
        sent = json.loads(server.requests[0])
    assert "".join(c.text for c in chunks) == "Hello world"
    last = chunks[-1]
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (120, 2)
    assert last.usage.cached_prompt_tokens == 96
    assert last.finish_reason == "stop"
    assert sent["model"] == "served" and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.5, 0.8, 33)
    assert sent["stop"] == ["END"] and sent["seed"] == 3
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


async def test_error_event_mid_stream_is_stream_cut() -> None:
    error_event = "data: " + json.dumps({"error": {"message": "engine died"}})
    async with scripted_server(sse([delta("Hi"), error_event])) as server:
        backend = OpenAICompatBackend(server.base_url, model="m", api_key="", timeouts=FAST)
        error = await failure(backend, ask())
    assert error.code == "stream_cut" and "engine died" in str(error)


async def test_one_pooled_client_per_event_loop() -> None:
    from chat.llm.openai_compat import http_client

    assert http_client() is http_client()
