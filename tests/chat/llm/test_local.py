"""The local backend with the packaged SmolLM2-135M model in a real engine process: streaming,
prompt-cache reuse across turns, cancellation, clear errors for a missing, corrupt or invalid
model file, and an engine that crashes (SIGKILL, SIGSEGV) or hangs (SIGSTOP) mid-reply."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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
from chat.llm.supervisor import EngineConfig, EngineSupervisor, engine_stop
from tests.chat.llm.conftest import smollm2_path

SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture(scope="module")
def smollm2() -> ModelFile:
    return ModelFile(path=smollm2_path(), sha256=SMOLLM2_SHA256, packaged_default=False)


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One engine for the module's tests (like one per machine), stopped at the end."""
    directory = tmp_path_factory.mktemp("engine")
    yield directory
    stop_engine(directory)


def stop_engine(directory: Path) -> None:
    engine_stop(directory)


@pytest.fixture
def backend(smollm2: ModelFile, engine_dir: Path) -> LocalBackend:
    return LocalBackend(smollm2, state_dir=engine_dir)


@pytest.fixture
def own_backend(smollm2: ModelFile, tmp_path: Path) -> Iterator[LocalBackend]:
    """A backend with an engine of the test's own, for tests that kill it."""
    yield LocalBackend(smollm2, state_dir=tmp_path / "engine")
    stop_engine(tmp_path / "engine")


def turns(*texts: str) -> list[ChatTurn]:
    messages = [ChatTurn(role="system", content="You are a helpful assistant.")]
    for index, text in enumerate(texts):
        messages.append(ChatTurn(role="user" if index % 2 == 0 else "assistant", content=text))
    return messages


async def collect(backend: LocalBackend, request: CompletionRequest) -> list[Chunk]:
    async def run() -> list[Chunk]:
        return [chunk async for chunk in backend.stream(request)]

    return await asyncio.wait_for(run(), timeout=60)


def long_story() -> CompletionRequest:
    return CompletionRequest(
        messages=turns("Write a very long story about a dragon."),
        sampling=Sampling(max_tokens=1000, seed=1),
    )


async def test_streams_a_reply_with_usage(backend: LocalBackend) -> None:
    request = CompletionRequest(
        messages=turns("What is the capital of France? Answer with one word."),
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


async def test_next_turn_reuses_the_prompt_cache(backend: LocalBackend) -> None:
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


async def test_cancelling_stops_generation_and_frees_the_model(backend: LocalBackend) -> None:
    stream = backend.stream(long_story())
    first = await asyncio.wait_for(anext(stream), timeout=30)
    assert first.text
    await stream.aclose()
    # The model thread stopped at its next token: a new reply starts at once.
    chunks = await collect(
        backend, CompletionRequest(messages=turns("Hi"), sampling=Sampling(max_tokens=3, seed=1))
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].backend_ttft_ms is not None and chunks[-1].backend_ttft_ms < 5000


async def test_prompt_longer_than_the_context_is_a_clear_error(backend: LocalBackend) -> None:
    huge = "word " * 5000
    with pytest.raises(LLMError) as caught:
        await collect(backend, CompletionRequest(messages=turns(huge)))
    assert caught.value.code == "context_overflow"
    assert "LLM_LOCAL_CONTEXT_TOKENS" in str(caught.value)


async def test_missing_model_file_names_the_setting(tmp_path: Path) -> None:
    missing = ModelFile(path=tmp_path / "nope.gguf", sha256="ab" * 32, packaged_default=False)
    backend = LocalBackend(missing, state_dir=tmp_path / "engine")
    with pytest.raises(LLMError) as caught:
        await collect(backend, CompletionRequest(messages=turns("Hi")))
    assert caught.value.code == "model_missing"
    assert "LLM_LOCAL_MODEL_PATH" in str(caught.value) and "ab" * 32 in str(caught.value)
    [status] = await backend.check()
    assert not status.ok and status.state == "down"


async def test_corrupt_model_file_names_the_expected_sha256(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0" * 1000)
    backend = LocalBackend(
        ModelFile(path=corrupt, sha256=SMOLLM2_SHA256, packaged_default=False),
        state_dir=tmp_path / "engine",
    )
    with pytest.raises(LLMError) as caught:
        await collect(backend, CompletionRequest(messages=turns("Hi")))
    assert caught.value.code == "model_corrupt"
    message = str(caught.value)
    assert SMOLLM2_SHA256 in message and "LLM_LOCAL_MODEL_PATH" in message


async def test_unpinned_file_that_is_not_gguf_is_invalid(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model")
    backend = LocalBackend(
        ModelFile(path=junk, sha256="", packaged_default=False), state_dir=tmp_path / "engine"
    )
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


async def test_token_counter_uses_the_models_tokenizer(backend: LocalBackend) -> None:
    await asyncio.to_thread(backend.start)
    count = backend.token_counter()
    assert count is not None
    assert count("hello world") == 2
    assert count("hello world " * 50) > 50


async def first_text(stream) -> str:  # type: ignore[no-untyped-def]
    """Read the stream until its first text arrives."""
    while True:
        chunk = await asyncio.wait_for(anext(stream), timeout=30)
        if chunk.text:
            return str(chunk.text)


async def drain_error(stream) -> LLMError:  # type: ignore[no-untyped-def]
    with pytest.raises(LLMError) as caught:

        async def rest() -> None:
            async for _ in stream:
                pass

        await asyncio.wait_for(rest(), timeout=10)
    return caught.value


async def test_engine_runs_in_a_process_of_its_own(backend: LocalBackend) -> None:
    info = await asyncio.to_thread(backend.start)
    assert info.pid != os.getpid()
    assert "chat.llm.engine_server" in Path(f"/proc/{info.pid}/cmdline").read_text()
    [status] = await backend.check()
    assert status.ok and f"engine pid {info.pid}" in status.detail


def test_web_processes_on_one_machine_share_one_engine(
    backend: LocalBackend, smollm2: ModelFile, engine_dir: Path
) -> None:
    mine = backend.start()
    script = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
        "'autoglm_site.settings'); django.setup()\n"
        "from pathlib import Path\n"
        "from chat.llm.local import LocalBackend, ModelFile\n"
        "model = ModelFile(path=Path(sys.argv[1]), sha256=sys.argv[2], packaged_default=False)\n"
        "print(LocalBackend(model, state_dir=Path(sys.argv[3])).start().pid)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(smollm2.path), smollm2.sha256, str(engine_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert int(other.stdout.split()[-1]) == mine.pid


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSEGV])
async def test_engine_crash_mid_reply_ends_the_reply_and_the_next_one_is_answered(
    own_backend: LocalBackend, signum: int
) -> None:
    stream = own_backend.stream(long_story())
    assert await first_text(stream)
    engine = own_backend.supervisor().running()
    assert engine is not None
    os.kill(engine.pid, signum)
    killed = time.monotonic()
    error = await drain_error(stream)
    assert time.monotonic() - killed < 2.0
    assert error.code == "stream_cut"
    # The engine is started again and answers; this process never noticed more than an error.
    chunks = await collect(
        own_backend, CompletionRequest(messages=turns("Hi"), sampling=Sampling(max_tokens=4))
    )
    assert "".join(c.text for c in chunks) and chunks[-1].usage is not None
    restarted = own_backend.supervisor().running()
    assert restarted is not None and restarted.pid != engine.pid


async def test_hung_engine_is_detected_within_two_seconds_and_replaced(
    own_backend: LocalBackend,
) -> None:
    stream = own_backend.stream(long_story())
    assert await first_text(stream)
    engine = own_backend.supervisor().running()
    assert engine is not None
    os.kill(engine.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        error = await drain_error(stream)
        assert time.monotonic() - stopped < 2.0
        assert error.code == "timeout_stalled"
        chunks = await collect(
            own_backend, CompletionRequest(messages=turns("Hi"), sampling=Sampling(max_tokens=4))
        )
        assert "".join(c.text for c in chunks)
        restarted = own_backend.supervisor().running()
        assert restarted is not None and restarted.pid != engine.pid
        deadline = time.monotonic() + 5
        while Path(f"/proc/{engine.pid}").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not Path(f"/proc/{engine.pid}").exists()  # the hung one was killed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(engine.pid, signal.SIGKILL)


def test_a_build_that_faults_on_this_cpu_is_reported_clearly(tmp_path: Path) -> None:
    # A real process that dies of SIGSEGV the way a faulting kernel does in the self-check.
    program = [
        sys.executable,
        "-c",
        "import os, signal, sys; print('engine INFO build: llama-cpp-python 0.3.36: AVX2 = 1 "
        "| AMX_INT8 = 1', flush=True); os.kill(os.getpid(), signal.SIGSEGV)",
    ]
    supervisor = EngineSupervisor(
        state_dir=tmp_path,
        config=EngineConfig(
            model_path=str(tmp_path / "m.gguf"), context_tokens=512, threads=1, cache_mb=0
        ),
        start_timeout=30,
        program=program,
    )
    with pytest.raises(LLMError) as caught:
        supervisor.ensure()
    message = str(caught.value)
    assert caught.value.code == "engine_crashed"
    assert "SIGSEGV" in message and "AMX_INT8 = 1" in message
    assert "CPU:" in message and "make engine-rebuild" in message
