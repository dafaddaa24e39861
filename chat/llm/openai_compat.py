"""Streamed chat completions from an OpenAI-compatible server: vLLM, SGLang, llama.cpp's."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

from chat.llm.base import BackendStatus, Chunk, CompletionRequest, LLMBackend, LLMError, Usage

logger = logging.getLogger(__name__)

_ERROR_BODY_BYTES = 2000
# Error codes a server may name in a mid-stream error event and that keep their meaning here
# (the embedded engine's); anything else becomes stream_cut or upstream_unavailable.
_SERVER_ERROR_CODES = {"context_overflow", "empty_reply", "bad_request", "local_failed"}

# One pooled HTTP client per event loop (a process has one serving loop; tests have many).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def http_client() -> httpx.AsyncClient:
    """The pooled client of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        connect = float(settings.LLM_CONNECT_TIMEOUT_SECONDS)
        # Reads are bounded by our own first-token / between-token deadlines, not httpx's.
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect, read=None, write=connect, pool=connect),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            trust_env=False,
        )
        _clients[loop] = client
    return client


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_token: float
    between_tokens: float
    total: float
    # Longest silence (no byte, heartbeat comments included) before the server counts as hung:
    # for servers that send SSE heartbeats while they compute (the embedded engine does).
    stall: float | None = None

    @classmethod
    def from_settings(cls) -> Timeouts:
        return cls(
            connect=float(settings.LLM_CONNECT_TIMEOUT_SECONDS),
            first_token=float(settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS),
            between_tokens=float(settings.LLM_TOKEN_TIMEOUT_SECONDS),
            total=float(settings.LLM_TOTAL_TIMEOUT_SECONDS),
        )


def endpoint_label(base_url: str) -> str:
    """The base URL without credentials: safe for logs, /readyz and error messages."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _status_error(status: int, body: str, *, endpoint: str, model: str) -> LLMError:
    detail = f"{endpoint} answered HTTP {status}: {body[:300]}"
    if status in (401, 403):
        return LLMError(f"{detail} (check LLM_OPENAI_API_KEY)", code="unauthorized")
    if status == 404:
        return LLMError(
            f"{detail} (is LLM_OPENAI_MODEL={model!r} served there, and does the base URL end "
            "in /v1?)",
            code="model_not_found",
        )
    if status == 429:
        return LLMError(detail, code="rate_limited")
    if status in (400, 413, 422):
        return LLMError(detail, code="bad_request")
    return LLMError(detail, code="upstream_unavailable")


class OpenAICompatBackend(LLMBackend):
    """One endpoint (a replica) of an OpenAI-compatible chat-completions API.

    With no arguments it uses the first of LLM_OPENAI_BASE_URLS; the router builds one per
    replica. Timeouts: connect, first token (from the request until the first text),
    between tokens, and total.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        if base_url is None:
            urls = list(settings.LLM_OPENAI_BASE_URLS)
            if not urls:
                raise LLMError(
                    "LLM_OPENAI_BASE_URLS is empty: set it to the server's base URL, "
                    "e.g. http://127.0.0.1:8001/v1",
                    code="not_configured",
                )
            base_url = urls[0]
        self.base_url = base_url.rstrip("/")
        self.name = endpoint_label(self.base_url)
        self.model = settings.LLM_OPENAI_MODEL if model is None else model
        self.api_key = settings.LLM_OPENAI_API_KEY if api_key is None else api_key
        self.timeouts = timeouts or Timeouts.from_settings()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def payload(self, request: CompletionRequest) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": t.role, "content": t.content} for t in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "presence_penalty": sampling.presence_penalty,
            "frequency_penalty": sampling.frequency_penalty,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        started = time.monotonic()
        timeouts = self.timeouts
        total_deadline = started + timeouts.total
        first_deadline = min(started + timeouts.first_token, total_deadline)
        client = http_client()
        http_request = client.build_request(
            "POST",
            f"{self.base_url}/chat/completions",
            json=self.payload(request),
            headers=self._headers(),
        )
        try:
            # asyncio.timeout, not wait_for: the read stays in this task, so cancelling the
            # reply cancels it directly (httpx's async generators must not change task).
            async with asyncio.timeout(_bounded(first_deadline - started, timeouts.stall)):
                response = await client.send(http_request, stream=True)
        except TimeoutError as exc:
            if timeouts.stall is not None and time.monotonic() - started < timeouts.first_token:
                raise _stalled(self.name, timeouts.stall) from exc
            raise LLMError(
                f"{self.name} sent no answer within {timeouts.first_token:g} s",
                code="timeout_first_token",
            ) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LLMError(f"cannot connect to {self.name}: {exc}", code="connect_failed") from exc
        except httpx.HTTPError as exc:
            raise LLMError(
                f"{self.name} failed before answering: {type(exc).__name__}: {exc}",
                code="upstream_unavailable",
            ) from exc

        try:
            if response.status_code != 200:
                body = await self._error_body(response)
                error = _status_error(
                    response.status_code, body, endpoint=self.name, model=self.model
                )
                logger.warning("llm %s: %s: %s", self.name, error.code, error)
                raise error
            async for chunk in self._chunks(
                response,
                started=started,
                first_deadline=first_deadline,
                total_deadline=total_deadline,
            ):
                yield chunk
        finally:
            # On cancellation too: closing the connection makes vLLM abort the generation.
            await response.aclose()

    async def _error_body(self, response: httpx.Response) -> str:
        try:
            raw = await asyncio.wait_for(response.aread(), timeout=self.timeouts.connect)
        except (TimeoutError, httpx.HTTPError):
            return ""
        text = raw[:_ERROR_BODY_BYTES].decode("utf-8", errors="replace")
        try:
            message = json.loads(text).get("error", text)
            if isinstance(message, dict):
                message = message.get("message", text)
            return str(message)
        except (ValueError, AttributeError):
            return text

    async def _chunks(
        self,
        response: httpx.Response,
        *,
        started: float,
        first_deadline: float,
        total_deadline: float,
    ) -> AsyncIterator[Chunk]:
        timeouts = self.timeouts
        lines = response.aiter_lines()
        streamed = 0
        usage: Usage | None = None
        finish_reason: str | None = None
        first_ms: float | None = None
        done = False
        refused = False  # the model declined (a refusal delta): reported as content_filter
        while not done:
            now = time.monotonic()
            if streamed:
                wait = min(timeouts.between_tokens, total_deadline - now)
            else:
                wait = first_deadline - now
            try:
                async with asyncio.timeout(max(0.0, _bounded(wait, timeouts.stall))):
                    line = await anext(lines)
            except StopAsyncIteration:
                break
            except TimeoutError as exc:
                if timeouts.stall is not None and wait > timeouts.stall:
                    raise _stalled(self.name, timeouts.stall) from exc
                if not streamed:
                    raise LLMError(
                        f"{self.name} sent no text within {timeouts.first_token:g} s",
                        code="timeout_first_token",
                    ) from exc
                if time.monotonic() >= total_deadline:
                    raise LLMError(
                        f"{self.name} exceeded the total time of {timeouts.total:g} s",
                        code="timeout_total",
                    ) from exc
                raise LLMError(
                    f"{self.name} stalled for {timeouts.between_tokens:g} s mid-reply",
                    code="timeout_between_tokens",
                ) from exc
            except httpx.HTTPError as exc:
                raise LLMError(
                    f"{self.name} cut the stream: {type(exc).__name__}: {exc}", code="stream_cut"
                ) from exc
            line = line.strip()
            if not line or line.startswith(":"):
                continue  # SSE keep-alive comment or event separator
            if not line.startswith("data:"):
                if line.startswith(("event:", "id:", "retry:")):
                    continue
                raise LLMError(
                    f"{self.name} sent a non-SSE line: {line[:200]!r}", code="bad_stream"
                )
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                event = json.loads(data)
            except ValueError as exc:
                raise LLMError(
                    f"{self.name} sent stream data that is not JSON: {data[:200]!r}",
                    code="bad_stream",
                ) from exc
            if not isinstance(event, dict):
                raise LLMError(
                    f"{self.name} sent unexpected data: {data[:200]!r}", code="bad_stream"
                )
            if "error" in event:
                error = event["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                code = error.get("code") if isinstance(error, dict) else None
                if code not in _SERVER_ERROR_CODES:
                    code = "stream_cut" if streamed else "upstream_unavailable"
                raise LLMError(
                    f"{self.name} reported an error mid-stream: {str(message)[:300]}", code=code
                )
            if event.get("usage"):
                usage = _usage_of(event["usage"])
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content") or ""
                if choice.get("finish_reason"):
                    finish_reason = str(choice["finish_reason"])
                refused = refused or bool(delta.get("refusal"))
                if text:
                    if first_ms is None:
                        first_ms = (time.monotonic() - started) * 1000
                    streamed += 1
                    yield Chunk(text=text)
        if not done:
            raise LLMError(
                f"{self.name} closed the stream before it finished ({streamed} pieces received)",
                code="stream_cut",
            )
        if refused:
            finish_reason = "content_filter"
        if not streamed and finish_reason != "content_filter":
            raise LLMError(f"{self.name} returned an empty reply", code="empty_reply")
        if usage is None:
            # Servers that do not report usage while streaming (llama.cpp's): count the deltas.
            usage = Usage(prompt_tokens=0, completion_tokens=streamed)
        if finish_reason == "length":
            logger.info("llm %s: reply stopped at max_tokens", self.name)
        yield Chunk(usage=usage, backend_ttft_ms=first_ms, finish_reason=finish_reason)

    async def check(self) -> list[BackendStatus]:
        """GET /models: is the endpoint up and is our model served there."""
        started = time.monotonic()
        try:
            response = await asyncio.wait_for(
                http_client().get(f"{self.base_url}/models", headers=self._headers()),
                timeout=self.timeouts.connect + 1,
            )
        except (TimeoutError, httpx.HTTPError) as exc:
            return [
                BackendStatus(
                    name=self.name,
                    ok=False,
                    state="down",
                    detail=f"{type(exc).__name__}: {exc}"[:300] or "timeout",
                )
            ]
        latency = (time.monotonic() - started) * 1000
        if response.status_code != 200:
            error = _status_error(
                response.status_code, response.text[:300], endpoint=self.name, model=self.model
            )
            return [
                BackendStatus(
                    name=self.name, ok=False, state="down", detail=str(error), latency_ms=latency
                )
            ]
        try:
            served = [str(item.get("id")) for item in response.json().get("data", [])]
        except (ValueError, AttributeError):
            served = []
        if self.model and served and self.model not in served:
            return [
                BackendStatus(
                    name=self.name,
                    ok=False,
                    state="down",
                    detail=f"model {self.model!r} is not served; served: {', '.join(served)}",
                    latency_ms=latency,
                )
            ]
        return [
            BackendStatus(
                name=self.name, ok=True, state="up", detail=self.model, latency_ms=latency
            )
        ]


def _bounded(wait: float, stall: float | None) -> float:
    return wait if stall is None else min(wait, stall)


def _stalled(name: str, stall: float) -> LLMError:
    return LLMError(
        f"{name} sent nothing, not even a heartbeat, for {stall:g} s: it hangs",
        code="timeout_stalled",
    )


def _usage_of(raw: Any) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_prompt_tokens=None if cached is None else int(cached),
    )
