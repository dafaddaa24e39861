"""Starts, finds, checks and restarts the embedded engine process (`chat.llm.engine_server`).

One engine per machine and data folder, shared by every web process: its state lives in
`AUTOGLM_DATA_DIR/engine/` (engine.json: pid, port, API key, settings), and a file lock there
makes sure only one process starts it. The engine runs in a session of its own, so it outlives
the web process that happened to start it; `manage.py engine stop` (and `make stop`) stop it.
A crashed engine is started again on the next request; a hung one (stopped, or silent past its
heartbeat) is killed first. A start that fails says why in terms an operator can act on: which
signal, which CPU features, which build, what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from chat.llm.base import LLMError
from chat.llm.engine_server import API_KEY_ENV, EXIT_MISCOMPUTES, EXIT_MODEL_INVALID

logger = logging.getLogger(__name__)

_MODULE = "chat.llm.engine_server"
_LOG_TAIL_BYTES = 4000


@dataclass(frozen=True)
class EngineConfig:
    model_path: str
    context_tokens: int
    threads: int
    cache_mb: int
    ping_seconds: float = 0.2
    max_queue: int = 64


@dataclass(frozen=True)
class EngineInfo:
    pid: int
    port: int
    api_key: str
    config: EngineConfig
    build: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _process_state(pid: int) -> str:
    """The kernel's one-letter state of an engine process ('R', 'S', 'T', 'Z'...), '' if gone
    or if the pid now belongs to another program."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    if _MODULE.encode() not in cmdline:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


_NOT_SERVING = ("", "Z", "X", "T", "t")  # gone, dead, or stopped (hung): needs replacing
_GONE = ("", "Z")


def cpu_summary() -> str:
    """The CPU model and the vector features that matter for llama.cpp's kernels."""
    model, flags = "unknown CPU", set[str]()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    wanted = ["avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16"]
    wanted += ["amx_tile", "amx_int8", "amx_bf16"]
    present = [flag for flag in wanted if flag in flags]
    return f"{model} ({' '.join(present) or 'no AVX'})"


class EngineSupervisor:
    """The engine of one data folder. Methods are synchronous and thread-safe; async callers run
    them in a thread."""

    def __init__(
        self,
        *,
        state_dir: Path,
        config: EngineConfig,
        start_timeout: float,
        program: list[str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        # The engine's command line before its arguments (tests put a crashing program here).
        self.program = program or [sys.executable, "-m", _MODULE]
        self.config = config
        self.start_timeout = start_timeout
        self._local = threading.Lock()
        # Engines this process started, by pid: reaped when they exit (no zombies).
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._known: EngineInfo | None = None
        # Engines that failed a reply: never handed out again, even while they are still dying
        # (a killed process keeps its port for a moment and would reset the next connection).
        self._condemned: set[int] = set()

    @property
    def state_file(self) -> Path:
        return self.state_dir / "engine.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "engine.log"

    @contextlib.contextmanager
    def _machine_lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._local, (self.state_dir / "lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> EngineInfo | None:
        try:
            raw = json.loads(self.state_file.read_text())
            return EngineInfo(
                pid=int(raw["pid"]),
                port=int(raw["port"]),
                api_key=str(raw["api_key"]),
                config=EngineConfig(**raw["config"]),
                build=str(raw.get("build", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    def running(self) -> EngineInfo | None:
        """The engine if it is alive and not stopped, without starting one (cheap: /proc)."""
        self._reap()
        info = self._known or self._read_state()
        if info is None or info.pid in self._condemned or _process_state(info.pid) in _NOT_SERVING:
            return None
        self._known = info
        return info

    def ensure(self) -> EngineInfo:
        """The running engine with this configuration, started (or restarted) if needed."""
        info = self.running()
        if info is not None and info.config == self.config:
            return info
        with self._machine_lock():
            self._reap()
            info = self._read_state()
            if info is not None:
                state = _process_state(info.pid)
                serving = state not in _NOT_SERVING and info.pid not in self._condemned
                if serving and info.config == self.config:
                    self._known = info
                    return info
                if state:  # stopped (hung), or another configuration: replace it
                    logger.warning(
                        "replacing engine pid %s (state %s, same settings: %s)",
                        info.pid,
                        state,
                        info.config == self.config,
                    )
                    self._kill(info.pid)
            self._known = None
            started = self._start()
            self._known = started
            return started

    def condemn(self, pid: int) -> None:
        """Engine `pid` failed a reply: from now on this process starts a fresh one instead."""
        self._condemned.add(pid)
        known = self._known
        if known is not None and known.pid == pid:
            self._known = None

    def recover(self, *, pid: int, reason: str) -> None:
        """After a reply failed on engine `pid`: kill it if it is still there (stopped, hung or
        half-dead), so that the next request starts a fresh one. A newer engine is left alone."""
        self.condemn(pid)
        state = _process_state(pid)
        if state:
            logger.warning("killing engine pid %s (state %s) after %s", pid, state, reason)
            self._kill(pid)
        self._reap()

    def stop(self) -> bool:
        """Stop the engine of this data folder; False when none was running."""
        with self._machine_lock():
            info = self._read_state()
            self._known = None
            if info is None or not _process_state(info.pid):
                self.state_file.unlink(missing_ok=True)
                return False
            self._kill(info.pid, graceful=True)
            self.state_file.unlink(missing_ok=True)
            self._reap()
            return True

    def _kill(self, pid: int, *, graceful: bool = False) -> None:
        with contextlib.suppress(ProcessLookupError):
            if graceful:
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)  # a stopped process only handles SIGTERM awake
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _process_state(pid) not in _GONE:
                    time.sleep(0.05)
            if _process_state(pid) not in _GONE:
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _process_state(pid) not in _GONE:
            time.sleep(0.02)
        child = self._children.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    def _start(self) -> EngineInfo:
        config = self.config
        ready_file = self.state_dir / "ready.json"
        ready_file.unlink(missing_ok=True)
        api_key = secrets.token_urlsafe(24)
        command = [
            *self.program,
            "--model",
            config.model_path,
            "--ready-file",
            str(ready_file),
            "--context-tokens",
            str(config.context_tokens),
            "--threads",
            str(config.threads),
            "--cache-mb",
            str(config.cache_mb),
            "--ping-seconds",
            str(config.ping_seconds),
            "--max-queue",
            str(config.max_queue),
        ]
        environment = {**os.environ, API_KEY_ENV: api_key}
        logger.info("starting the engine: %s", Path(config.model_path).name)
        with self.log_file.open("ab") as log:
            log.write(f"--- start {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
            log.flush()
            start = self.log_file.stat().st_size
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=str(settings.BASE_DIR),
                start_new_session=True,  # it serves every web process: not tied to this one
            )
        self._children[child.pid] = child
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = child.poll()
            if code is not None:
                self._children.pop(child.pid, None)
                raise self._start_error(code, self._log_since(start))
            if ready_file.is_file():
                try:
                    ready = json.loads(ready_file.read_text())
                except ValueError:
                    ready = None
                if ready is not None:
                    info = EngineInfo(
                        pid=child.pid,
                        port=int(ready["port"]),
                        api_key=api_key,
                        config=config,
                        build=str(ready.get("build", "")),
                    )
                    partial = self.state_file.with_name("engine.json.partial")
                    partial.touch(mode=0o600)
                    partial.write_text(json.dumps({**asdict(info), "config": asdict(config)}))
                    partial.replace(self.state_file)
                    logger.info("engine pid %s ready on port %s", info.pid, info.port)
                    return info
            time.sleep(0.05)
        self._kill(child.pid)
        raise LLMError(
            f"the local engine did not start within {self.start_timeout:g} s "
            f"(LLM_LOCAL_START_TIMEOUT_SECONDS); its log {self.log_file} ends with: "
            f"{self._log_since(start)[-500:]}",
            code="engine_start_timeout",
        )

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(max(offset, self.log_file.stat().st_size - _LOG_TAIL_BYTES))
                return handle.read().decode("utf-8", errors="replace").strip()
        except OSError:
            return ""

    def _start_error(self, code: int, log: str) -> LLMError:
        lines = [line for line in log.splitlines() if line.strip()]
        if code == EXIT_MODEL_INVALID:
            detail = next((ln for ln in lines if ln.startswith("MODEL_INVALID:")), "")
            return LLMError(
                f"llama.cpp cannot load LLM_LOCAL_MODEL_PATH={self.config.model_path!r} (is it "
                f"a GGUF chat model?): {detail.removeprefix('MODEL_INVALID:').strip()}",
                code="model_invalid",
            )
        build = next((ln.split("build: ", 1)[1] for ln in lines if "build: " in ln), "unknown")
        if code == EXIT_MISCOMPUTES:
            detail = next((ln for ln in lines if ln.startswith("MISCOMPUTES:")), "")
            return LLMError(
                "the local engine computes wrong results on this CPU: "
                f"{detail.removeprefix('MISCOMPUTES:').strip()}. CPU: {cpu_summary()}. "
                f"Build: {build}. Rebuild the portable engine with "
                "`make engine-rebuild` (LLAMA_BUILD=portable, the default); see README, "
                f"'The embedded engine'. Log: {self.log_file}",
                code="engine_miscomputes",
            )
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            advice = {
                "SIGILL": "the engine was compiled for CPU features this CPU lacks",
                "SIGSEGV": "a llama.cpp kernel faults on this CPU",
                "SIGBUS": "the model file changed or its disk failed while it was read",
                "SIGKILL": "it was killed, probably for lack of memory",
            }.get(name, "it crashed")
            return LLMError(
                f"the local engine died with {name} during its self-check: {advice}. "
                f"CPU: {cpu_summary()}. Build: {build}. Rebuild the portable engine with "
                "`make engine-rebuild` (LLAMA_BUILD=portable, the default); see README, "
                f"'The embedded engine'. Log: {self.log_file}",
                code="engine_crashed",
            )
        return LLMError(
            f"the local engine exited with status {code} before it was ready: "
            f"{(lines or [''])[-1][:300]} (log: {self.log_file})",
            code="engine_failed",
        )


def engine_stop(state_dir: Path) -> bool:
    """Stop the engine of a state folder, whatever its settings; False when none ran."""
    stopper = EngineSupervisor(
        state_dir=state_dir,
        config=EngineConfig(model_path="", context_tokens=0, threads=0, cache_mb=0),
        start_timeout=0,
    )
    return stopper.stop()


_supervisors: dict[tuple[Path, EngineConfig], EngineSupervisor] = {}
_supervisors_lock = threading.Lock()


def supervisor_for(config: EngineConfig, *, state_dir: Path | None = None) -> EngineSupervisor:
    """The process's supervisor of the engine for this configuration."""
    directory = state_dir or Path(settings.LLM_LOCAL_ENGINE_DIR)
    with _supervisors_lock:
        key = (directory, config)
        supervisor = _supervisors.get(key)
        if supervisor is None:
            supervisor = _supervisors[key] = EngineSupervisor(
                state_dir=directory,
                config=config,
                start_timeout=float(settings.LLM_LOCAL_START_TIMEOUT_SECONDS),
            )
        return supervisor
