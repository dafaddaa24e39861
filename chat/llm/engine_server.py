"""The embedded engine process: llama.cpp behind an OpenAI-compatible streaming API on loopback.

It runs in a process of its own (started and supervised by `chat.llm.supervisor`), so a crash,
hang or out-of-memory kill in native code costs the replies in flight, never a web process.
The web processes reach it through the same client as vLLM (`chat.llm.openai_compat`).

    python -m chat.llm.engine_server --model FILE.gguf --ready-file PATH [--port 0]

It loads the model, runs the self-check (a short prompt computed in one batch and token by
token: a build that faults or miscomputes on this CPU stops here), then writes the ready file
(port, pid, build) and serves:
- POST /v1/chat/completions (stream only): SSE deltas, a usage event with cached prompt tokens,
  `[DONE]`; an SSE comment every `--ping-seconds` while a request waits or computes, so a
  client tells a hung (stopped) engine from a slow prompt within a second or two;
- POST /tokenize {"texts": [...]} -> {"counts": [...]} (the model's own tokenizer);
- POST /tokens {"messages": [...]} -> {"prompt": [ids], "context": [ids]}: the prompt's tokens
  with the chat template applied and the tokens the context holds now (for bench/prefix_reuse);
- GET /v1/models, GET /health.
Replies take turns on one generation thread (a llama.cpp context is not thread-safe); a client
that disconnects stops its generation at the next token, and llama.cpp's prompt-state cache keeps
each conversation's prompt and reply for its next turn. The API key comes from the environment
(AUTOGLM_ENGINE_API_KEY), never from the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hmac
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

logger = logging.getLogger("autoglm.engine")

MAX_BODY_BYTES = 4_000_000
API_KEY_ENV = "AUTOGLM_ENGINE_API_KEY"
# Exit statuses the supervisor explains: the model cannot be loaded; the self-check found that
# this build computes wrong results on this CPU.
EXIT_MODEL_INVALID = 3
EXIT_MISCOMPUTES = 4
# The self-check's prompt: long enough that llama.cpp takes its batched (matrix) kernels.
SELF_CHECK_TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps. " * 2


class EngineFailure(Exception):
    """A request the engine cannot serve; code is one of the client's stable LLMError codes."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Job:
    """One chat-completions request waiting for, or running on, the generation thread."""

    body: dict[str, Any]
    events: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued: bool = True  # counted in Engine.waiting until it starts or its client leaves


class Engine:
    """The loaded model and the one thread that runs it."""

    def __init__(
        self,
        *,
        model_path: Path,
        context_tokens: int,
        threads: int,
        cache_mb: int,
    ) -> None:
        self.model_path = model_path
        self.context_tokens = context_tokens
        self.threads = threads or (os.cpu_count() or 1)
        self.cache_mb = cache_mb
        self.llama: Any = None
        self.vocab: Any = None
        self.formatter: Any = None
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.waiting = 0
        self.lock = threading.Lock()
        self.vocab_lock = threading.Lock()

    def load(self) -> None:
        from llama_cpp import Llama, LlamaRAMCache
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = Llama(
            model_path=str(self.model_path),
            n_ctx=self.context_tokens,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            n_batch=512,
            verbose=False,
        )
        if self.cache_mb:
            # Saved states keyed by token prefix: a conversation that comes back after another
            # one used the context resumes from its own prompt + reply instead of from zero.
            self.llama.set_cache(LlamaRAMCache(capacity_bytes=self.cache_mb * 1024 * 1024))
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self.model_path} has no chat template in its metadata")
        eos = self.llama.token_eos()
        bos = self.llama.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self.llama._model.token_get_text(eos) if eos >= 0 else "",
            bos_token=self.llama._model.token_get_text(bos) if bos >= 0 else "",
            stop_token_ids=[eos],
        )
        # Token counting has its own vocabulary-only instance: it never touches the context.
        self.vocab = Llama(model_path=str(self.model_path), vocab_only=True, verbose=False)

    def self_check(self) -> str:
        """Run the model on this CPU before serving: a build whose kernels fault dies here; one
        whose batched (matrix) kernels compute wrong results is caught by comparing the
        next-token scores of one prompt computed in one batch, and with its last token computed
        alone. They differ
        a little in rounding (enough to swap two near-equal top tokens), never in shape.
        Returns the problem, or "" when they agree."""
        import numpy as np

        llama = self.llama
        vocabulary = int(llama.n_vocab())

        def last_scores() -> Any:
            # The context's output row of the last token evaluated (llama-cpp-python keeps no
            # copy unless logits_all is on).
            scores = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(vocabulary,))
            return np.array(scores, dtype=np.float64)

        tokens = llama.tokenize(SELF_CHECK_TEXT.encode(), add_bos=True, special=True)
        llama.reset()
        llama.eval(tokens)
        batched = last_scores()
        # The same last token again, alone (the one-token kernels), after the others in a batch.
        llama.reset()
        llama.eval(tokens[:-1])
        llama.eval(tokens[-1:])
        single = last_scores()
        llama.reset()
        a, b = batched - batched.mean(), single - single.mean()
        similarity = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))
        if not similarity >= 0.98:  # also NaN
            return (
                f"the scores of a {len(tokens)}-token prompt computed in one batch and with its "
                f"last token alone disagree (correlation {similarity:.3f}, should be about 1)"
            )
        return ""

    def count(self, texts: list[str]) -> list[int]:
        with self.vocab_lock:
            return [
                len(self.vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))
                for text in texts
            ]

    def tokens(self, messages: object) -> dict[str, list[int] | None]:
        prompt = None
        if isinstance(messages, list):
            prompt, _stop = self._prompt(
                [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in messages]
            )
        context = self.llama._input_ids[: self.llama.n_tokens].tolist()
        return {"prompt": prompt, "context": context}

    def leave_queue(self, job: Job) -> None:
        with self.lock:
            if job.queued:
                job.queued = False
                self.waiting -= 1

    def run_forever(self) -> None:
        while True:
            job = self.jobs.get()
            self.leave_queue(job)
            if job.cancelled.is_set():
                job.events.put(None)
                continue
            try:
                self.generate(job)
            except EngineFailure as exc:
                job.events.put({"error": {"message": str(exc), "code": exc.code}})
            except Exception as exc:  # one clear error for the client; the engine goes on
                logger.exception("generation failed")
                job.events.put(
                    {"error": {"message": f"{type(exc).__name__}: {exc}", "code": "local_failed"}}
                )
            job.events.put(None)

    def _prompt(self, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
        result = self.formatter(messages=messages)
        tokens = self.llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = result.stop if isinstance(result.stop, list) else [result.stop]
        return tokens, [s for s in stop if s]

    def _cached_prefix(self, tokens: list[int]) -> int:
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

    def generate(self, job: Job) -> None:
        from llama_cpp import StoppingCriteriaList

        body = job.body
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
        ):
            raise EngineFailure("messages must be a list of {role, content}", code="bad_request")
        tokens, template_stop = self._prompt(
            [{"role": str(m.get("role")), "content": m["content"]} for m in messages]
        )
        n_ctx = int(self.llama.n_ctx())
        max_tokens = min(int(body.get("max_tokens") or 512), n_ctx - len(tokens))
        if max_tokens < 1:
            raise EngineFailure(
                f"the prompt has {len(tokens)} tokens, more than the local model's context "
                f"of {n_ctx} (LLM_LOCAL_CONTEXT_TOKENS)",
                code="context_overflow",
            )
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [str(s) for s in stop]
        cached = self._cached_prefix(tokens)
        started = time.monotonic()
        first_ms: float | None = None
        pieces = 0
        finish_reason: str | None = None
        seed = body.get("seed")
        stream = self.llama.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=float(body.get("temperature", 0.3)),
            top_p=float(body.get("top_p", 0.9)),
            stop=[*template_stop, *stop],
            presence_penalty=float(body.get("presence_penalty", 0.0)),
            frequency_penalty=float(body.get("frequency_penalty", 0.0)),
            seed=None if seed is None else int(seed),
            stream=True,
            # Stopping (not abandoning) the generator lets llama.cpp save the state.
            stopping_criteria=StoppingCriteriaList([lambda _ids, _logits: job.cancelled.is_set()]),
        )
        for event in stream:
            choice = event["choices"][0]
            text = choice.get("text") or ""
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
            if text and not job.cancelled.is_set():
                if first_ms is None:
                    first_ms = (time.monotonic() - started) * 1000
                pieces += 1
                job.events.put(
                    {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
                )
        if job.cancelled.is_set():
            return
        if not pieces:
            raise EngineFailure("the local model returned an empty reply", code="empty_reply")
        completion = max(0, int(self.llama.n_tokens) - len(tokens)) or pieces
        job.events.put(
            {"choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason or "stop"}]}
        )
        job.events.put(
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": len(tokens),
                    "completion_tokens": completion,
                    "total_tokens": len(tokens) + completion,
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
                "timings": {"first_token_ms": first_ms},
            }
        )


class Handler(BaseHTTPRequestHandler):
    server: EngineHTTPServer
    protocol_version = "HTTP/1.0"  # one request a connection; a stream ends when it closes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        logger.debug("%s %s", self.address_string(), format % args)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str) -> None:
        self._json(status, {"error": {"message": message, "code": code}})

    def _authorised(self) -> bool:
        key = self.server.api_key
        if not key:
            return True
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), key.encode()):
            return True
        self._error(HTTPStatus.UNAUTHORIZED, "missing or wrong API key", "unauthorized")
        return False

    def _body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large", "bad_request")
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object", "bad_request")
            return None
        return body

    def do_GET(self) -> None:  # noqa: N802 (the base's name)
        if self.path == "/health":
            self._json(HTTPStatus.OK, {"ok": True, "pid": os.getpid()})
        elif self.path == "/v1/models":
            if self._authorised():
                self._json(
                    HTTPStatus.OK,
                    {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]},
                )
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such path: {self.path}", "not_found")

    def do_POST(self) -> None:  # noqa: N802 (the base's name)
        if self.path not in ("/v1/chat/completions", "/tokenize", "/tokens"):
            self._error(HTTPStatus.NOT_FOUND, f"no such path: {self.path}", "not_found")
            return
        if not self._authorised():
            return
        body = self._body()
        if body is None:
            return
        if self.path == "/tokenize":
            texts = body.get("texts")
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                self._error(
                    HTTPStatus.BAD_REQUEST, "texts must be a list of strings", "bad_request"
                )
                return
            self._json(HTTPStatus.OK, {"counts": self.server.engine.count(texts)})
            return
        if self.path == "/tokens":
            self._json(HTTPStatus.OK, self.server.engine.tokens(body.get("messages")))
            return
        if body.get("stream") is not True:
            self._error(HTTPStatus.BAD_REQUEST, "only stream=true is served", "bad_request")
            return
        self._stream(body)

    def _stream(self, body: dict[str, Any]) -> None:
        engine = self.server.engine
        with engine.lock:
            if engine.waiting >= self.server.max_queue:
                self._error(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"the engine has {engine.waiting} replies waiting already",
                    "busy",
                )
                return
            engine.waiting += 1
        job = Job(body=body)
        engine.jobs.put(job)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(b": queued\n\n")
            self.wfile.flush()
            while True:
                try:
                    event = job.events.get(timeout=self.server.ping_seconds)
                except queue.Empty:
                    self.wfile.write(b": ping\n\n")  # alive: waiting or computing the prompt
                    self.wfile.flush()
                    continue
                if event is None:
                    break
                event.setdefault("id", completion_id)
                event.setdefault("object", "chat.completion.chunk")
                event.setdefault("created", created)
                event.setdefault("model", self.server.model_name)
                self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass  # the client went away (cancelled): generation stops at its next token
        finally:
            job.cancelled.set()
            engine.leave_queue(job)  # a client that left while queued frees its place at once


class EngineHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        engine: Engine,
        api_key: str,
        model_name: str,
        ping_seconds: float,
        max_queue: int,
    ) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.api_key = api_key
        self.model_name = model_name
        self.ping_seconds = ping_seconds
        self.max_queue = max_queue


def build_info() -> str:
    """llama.cpp's own account of the CPU features it was compiled for and uses."""
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info()
        text = info.decode() if isinstance(info, bytes) else str(info)
        return f"llama-cpp-python {llama_cpp.__version__}: {text.strip()}"
    except Exception as exc:
        return f"unknown build ({type(exc).__name__}: {exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--model-name", default="local")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--context-tokens", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cache-mb", type=int, default=512)
    parser.add_argument("--ping-seconds", type=float, default=0.2)
    parser.add_argument("--max-queue", type=int, default=64)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s engine %(levelname)s %(message)s"
    )
    faulthandler.enable()  # a fault in native code leaves a traceback in the engine's log
    # Stopped by the supervisor with SIGTERM: exit at once (no model state worth saving).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    info = build_info()
    logger.info("build: %s", info)
    engine = Engine(
        model_path=args.model,
        context_tokens=args.context_tokens,
        threads=args.threads,
        cache_mb=args.cache_mb,
    )
    started = time.monotonic()
    try:
        engine.load()
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"MODEL_INVALID: {exc}", file=sys.stderr, flush=True)
        return EXIT_MODEL_INVALID
    load_ms = (time.monotonic() - started) * 1000
    logger.info("model %s loaded in %.0f ms; self-check", args.model.name, load_ms)
    problem = engine.self_check()
    if problem:
        print(f"MISCOMPUTES: {problem}", file=sys.stderr, flush=True)
        return EXIT_MISCOMPUTES
    logger.info("self-check passed in %.0f ms", (time.monotonic() - started) * 1000 - load_ms)

    server = EngineHTTPServer(
        (args.host, args.port),
        engine=engine,
        api_key=os.environ.get(API_KEY_ENV, ""),
        model_name=args.model_name,
        ping_seconds=args.ping_seconds,
        max_queue=args.max_queue,
    )
    threading.Thread(target=engine.run_forever, name="generation", daemon=True).start()
    ready = {
        "pid": os.getpid(),
        "port": server.server_address[1],
        "load_ms": round(load_ms, 1),
        "build": info,
    }
    partial = args.ready_file.with_name(args.ready_file.name + ".partial")
    partial.write_text(json.dumps(ready))
    partial.replace(args.ready_file)
    logger.info("serving on %s:%s", args.host, ready["port"])
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
