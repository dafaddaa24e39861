"""The local llama.cpp backend with the packaged SmolLM2-135M model: streaming, prompt-cache reuse
across turns, cancellation, and clear errors for a missing, corrupt or invalid model file."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from chat.llm.base import ChatTurn, Chunk, CompletionRequest, LLMError, Sampling
from chat.llm.local import (
    DEFAULT_MODEL_SHA256,
    LocalBackend,
    ModelFile,
    model_file,
    model_join,
    model_prepare,
)
from tests.chat.llm.conftest import smollm2_path

SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture(scope="module")
def smollm2() -> ModelFile:
    return ModelFile(path=smollm2_path(), sha256=SMOLLM2_SHA256, packaged_default=False)


def turns(*texts: str) -> list[ChatTurn]:
    messages = [ChatTurn(role="system", content="You are a helpful assistant.")]
    for index, text in enumerate(texts):
        messages.append(ChatTurn(role="user" if index % 2 == 0 else "assistant", content=text))
    return messages


async def collect(backend: LocalBackend, request: CompletionRequest) -> list[Chunk]:
    async def run() -> list[Chunk]:
        return [chunk async for chunk in backend.stream(request)]

    return await asyncio.wait_for(run(), timeout=60)


async def test_streams_a_reply_with_usage(smollm2: ModelFile) -> None:
    backend = LocalBackend(smollm2)
    request = CompletionRequest(
        messages=turns("What is the capital of France?"),
        sampling=Sampling(temperature=0.0, max_tokens=16, seed=1),
    )
    chunks = await collect(backend, request)
    text = "".join(c.text for c in chunks)
    assert len([c for c in chunks if c.text]) >= 2 and "Paris" in text
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 10 and 1 <= usage.completion_tokens <= 16
    assert chunks[-1].backend_ttft_ms is not None
    [status] = await backend.check()
    assert status.ok and status.state == "up"


async def test_next_turn_reuses_the_prompt_cache(smollm2: ModelFile) -> None:
    backend = LocalBackend(smollm2)
    first = CompletionRequest(
        messages=turns("Name a fruit."), sampling=Sampling(temperature=0.0, max_tokens=12, seed=1)
    )
    chunks = await collect(backend, first)
    reply = "".join(c.text for c in chunks)
    # Another conversation uses the context in between: the saved state still serves turn 2.
    await collect(
        backend,
        CompletionRequest(messages=turns("Say hi."), sampling=Sampling(max_tokens=4, seed=1)),
    )
    second = CompletionRequest(
        messages=turns("Name a fruit.", reply, "Name another one."),
        sampling=Sampling(temperature=0.0, max_tokens=12, seed=1),
    )
    usage = (await collect(backend, second))[-1].usage
    assert usage is not None and usage.cached_prompt_tokens is not None
    previous = chunks[-1].usage
    assert previous is not None
    assert usage.cached_prompt_tokens >= previous.prompt_tokens, usage


async def test_cancelling_stops_generation_and_frees_the_model(smollm2: ModelFile) -> None:
    backend = LocalBackend(smollm2)
    stream = backend.stream(
        CompletionRequest(
            messages=turns("Write a very long story about a dragon."),
            sampling=Sampling(max_tokens=1000, seed=1),
        )
    )
    first = await asyncio.wait_for(anext(stream), timeout=30)
    assert first.text
    await stream.aclose()
    # The model thread stopped at its next token: a new reply starts at once.
    chunks = await collect(
        backend, CompletionRequest(messages=turns("Hi"), sampling=Sampling(max_tokens=3, seed=1))
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].backend_ttft_ms is not None and chunks[-1].backend_ttft_ms < 5000


async def test_prompt_longer_than_the_context_is_a_clear_error(
    smollm2: ModelFile, settings
) -> None:  # type: ignore[no-untyped-def]
    backend = LocalBackend(smollm2)
    huge = "word " * 5000
    with pytest.raises(LLMError) as caught:
        await collect(backend, CompletionRequest(messages=turns(huge)))
    assert caught.value.code == "context_overflow"
    assert "LLM_LOCAL_CONTEXT_TOKENS" in str(caught.value)


async def test_missing_model_file_names_the_setting(tmp_path: Path) -> None:
    missing = ModelFile(path=tmp_path / "nope.gguf", sha256="ab" * 32, packaged_default=False)
    backend = LocalBackend(missing)
    with pytest.raises(LLMError) as caught:
        await collect(backend, CompletionRequest(messages=turns("Hi")))
    assert caught.value.code == "model_missing"
    assert "LLM_LOCAL_MODEL_PATH" in str(caught.value) and "ab" * 32 in str(caught.value)
    [status] = await backend.check()
    assert not status.ok and status.state == "down"


async def test_corrupt_model_file_names_the_expected_sha256(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0" * 1000)
    backend = LocalBackend(ModelFile(path=corrupt, sha256=SMOLLM2_SHA256, packaged_default=False))
    with pytest.raises(LLMError) as caught:
        await collect(backend, CompletionRequest(messages=turns("Hi")))
    assert caught.value.code == "model_corrupt"
    message = str(caught.value)
    assert SMOLLM2_SHA256 in message and "LLM_LOCAL_MODEL_PATH" in message


async def test_unpinned_file_that_is_not_gguf_is_invalid(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model")
    backend = LocalBackend(ModelFile(path=junk, sha256="", packaged_default=False))
    with pytest.raises(LLMError) as caught:
        await collect(backend, CompletionRequest(messages=turns("Hi")))
    assert caught.value.code == "model_invalid"
    assert "LLM_LOCAL_MODEL_PATH" in str(caught.value)


def test_parts_are_joined_in_order_and_checked(tmp_path: Path) -> None:
    parts = []
    for number, content in enumerate([b"GGUF-first-", b"second-", b"third"], start=1):
        part = tmp_path / f"part{number:02d}.bin"
        part.write_bytes(content)
        parts.append(part)
    expected = hashlib.sha256(b"GGUF-first-second-third").hexdigest()
    target = tmp_path / "models" / "joined.gguf"
    model_join(parts=parts, target=target, sha256=expected)
    assert target.read_bytes() == b"GGUF-first-second-third"
    # Verified once: the stamp beside it spares the next start the hashing.
    assert model_prepare(ModelFile(path=target, sha256=expected, packaged_default=False)) == target

    wrong = tmp_path / "models" / "wrong.gguf"
    with pytest.raises(LLMError) as caught:
        model_join(parts=list(reversed(parts)), target=wrong, sha256=expected)
    assert caught.value.code == "model_corrupt" and expected in str(caught.value)
    assert not wrong.exists() and not list(wrong.parent.glob("*.partial"))


def test_a_changed_file_is_verified_again(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF-one")
    sha = hashlib.sha256(b"GGUF-one").hexdigest()
    model_prepare(ModelFile(path=model, sha256=sha, packaged_default=False))
    model.write_bytes(b"GGUF-two")
    with pytest.raises(LLMError) as caught:
        model_prepare(ModelFile(path=model, sha256=sha, packaged_default=False))
    assert caught.value.code == "model_corrupt"


def test_default_model_is_the_packaged_one_with_its_pinned_sha256(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_LOCAL_MODEL_PATH = ""
    settings.LLM_LOCAL_MODEL_SHA256 = ""
    settings.LLM_LOCAL_MODELS_DIR = tmp_path
    default = model_file()
    assert default.packaged_default and default.sha256 == DEFAULT_MODEL_SHA256
    assert default.path.parent == tmp_path
    settings.LLM_LOCAL_MODEL_PATH = "/models/own.gguf"
    own = model_file()
    assert not own.packaged_default and own.sha256 == "" and str(own.path) == "/models/own.gguf"


def test_token_counter_uses_the_models_tokenizer(smollm2: ModelFile) -> None:
    count = LocalBackend(smollm2).token_counter()
    assert count is not None
    assert count("hello world") == 2
    assert count("hello world " * 50) > 50
