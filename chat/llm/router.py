"""The product's backend: a fallback chain with retries, circuit breakers and replica affinity.

LLM_CHAIN lists steps in order (e.g. `openai,local`). A step with several replicas (the
vLLM endpoints of LLM_OPENAI_BASE_URLS) keeps each conversation on one replica, chosen by
consistent hashing on `request.affinity_key`, so its KV cache is there; when that replica
fails, its conversations go to the next one on the ring and come back once it recovers.
Failures before the first token are retried with backoff; once text was streamed nothing is
ever re-sent. The chain always ends with an honest answer built from the knowledge base.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from chat.llm.base import BackendStatus, Chunk, CompletionRequest, LLMBackend, LLMError, Usage

logger = logging.getLogger(__name__)

# Failures that say nothing about the endpoint's health: they do not open its circuit.
_NOT_ENDPOINT_FAULTS = {"rate_limited", "bad_request", "empty_reply", "context_overflow"}
# Failures worth retrying on the same endpoint (transient).
_RETRYABLE = {
    "connect_failed",
    "upstream_unavailable",
    "rate_limited",
    "timeout_first_token",
    "stream_cut",
    "bad_stream",
    "timeout_stalled",  # a hung engine process: the local backend has it replaced
}

_SHORT_NAMES = {
    "local": "chat.llm.local.LocalBackend",
    "fake": "chat.llm.fake.FakeBackend",
}


class CircuitBreaker:
    """Closed → open after `failures` consecutive endpoint faults; after `reset_seconds` one
    trial request is let through (half-open): success closes it, failure opens it again."""

    def __init__(
        self,
        *,
        failures: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset_seconds:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self.trial_running = False

    def failure(self) -> None:
        self.consecutive += 1
        self.trial_running = False
        if self.opened_at is not None or self.consecutive >= self.failures:
            self.opened_at = self.clock()

    def release(self) -> None:
        """A trial that ended without a verdict (cancelled): let another one through."""
        self.trial_running = False


@dataclass
class Endpoint:
    name: str
    backend: LLMBackend
    breaker: CircuitBreaker
    last_latency_ms: float | None = None
    last_error: str = ""


@dataclass
class Step:
    """One link of the chain: one endpoint, or several replicas of the same model."""

    name: str
    endpoints: list[Endpoint]
    _ring: list[tuple[int, int]] = field(default_factory=list)

    VNODES = 64

    def __post_init__(self) -> None:
        self._ring = sorted(
            (_hash(f"{endpoint.name}#{vnode}"), index)
            for index, endpoint in enumerate(self.endpoints)
            for vnode in range(self.VNODES)
        )

    def order_for(self, key: str) -> list[Endpoint]:
        """Endpoints in ring order from the key's point: the first is the conversation's home,
        the next ones are where it goes while that one is down."""
        if len(self.endpoints) <= 1 or not key:
            return list(self.endpoints)
        start = bisect.bisect(self._ring, (_hash(key), -1))
        seen: list[int] = []
        for offset in range(len(self._ring)):
            index = self._ring[(start + offset) % len(self._ring)][1]
            if index not in seen:
                seen.append(index)
                if len(seen) == len(self.endpoints):
                    break
        return [self.endpoints[index] for index in seen]


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class KnowledgeFallbackBackend(LLMBackend):
    """The end of every chain: says plainly that the assistant is unavailable, in the
    conversation's language, and quotes the best knowledge-base matches with their links."""

    name = "knowledge_fallback"

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        query = request.query or _newest_user_text(request)
        hits = await _knowledge_hits(query=query, language=request.language or None)
        with translation.override(request.language or settings.LANGUAGE_CODE):
            if hits:
                lines = [
                    gettext(
                        "Sorry, the assistant is unavailable right now. These articles from "
                        "our help centre may answer your question:"
                    )
                ]
                for hit in hits:
                    title = str(getattr(hit, "title", "")).strip()
                    url = str(getattr(hit, "url", "")).strip()
                    snippet = " ".join(str(getattr(hit, "snippet", "")).split())
                    entry = f"- {title}" + (f" ({url})" if url else "")
                    if snippet:
                        entry += f"\n  {snippet[:300]}"
                    lines.append(entry)
                lines.append(
                    gettext("Please try again in a few minutes, or contact our support team.")
                )
                text = "\n".join(lines)
            else:
                text = gettext(
                    "Sorry, the assistant is unavailable right now. Please try again in a few "
                    "minutes, or contact our support team."
                )
        yield Chunk(text=text, verbatim=True)
        yield Chunk(usage=Usage(), finish_reason="fallback", replica=self.name)

    async def check(self) -> list[BackendStatus]:
        search = _chunk_search()
        detail = "knowledge search" if search is not None else "no knowledge search: apology only"
        return [BackendStatus(name=self.name, ok=True, state="fallback", detail=detail)]


def _newest_user_text(request: CompletionRequest) -> str:
    for turn in reversed(request.messages):
        if turn.role == "user":
            return turn.content
    return ""


def _chunk_search() -> Callable[..., Any] | None:
    try:
        from knowledge.search import chunk_search  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return chunk_search  # type: ignore[no-any-return,unused-ignore]


async def _knowledge_hits(*, query: str, language: str | None) -> list[Any]:
    limit = int(settings.LLM_FALLBACK_KNOWLEDGE_LIMIT)
    search = _chunk_search()
    if search is None or not query.strip() or limit < 1:
        return []
    try:
        hits = await database_sync_to_async(search)(query=query, language=language, limit=limit)
    except Exception:  # the fallback must answer even when search is broken too
        logger.exception("knowledge search failed in the LLM fallback")
        return []
    return [hit for hit in hits if getattr(hit, "relevant", True)][:limit]


def _build_steps() -> list[Step]:
    failures = int(settings.LLM_CIRCUIT_FAILURES)
    reset = float(settings.LLM_CIRCUIT_RESET_SECONDS)
    steps: list[Step] = []
    for step_name in settings.LLM_CHAIN:
        backends: list[tuple[str, LLMBackend]] = []
        if step_name == "openai":
            from chat.llm.openai_compat import OpenAICompatBackend

            for url in settings.LLM_OPENAI_BASE_URLS:
                backend = OpenAICompatBackend(url)
                backends.append((backend.name, backend))
        else:
            path = _SHORT_NAMES.get(step_name, step_name)
            instance = import_string(path)()
            backends.append((str(getattr(instance, "name", step_name)), instance))
        endpoints = [
            Endpoint(
                name=name,
                backend=backend,
                breaker=CircuitBreaker(failures=failures, reset_seconds=reset),
            )
            for name, backend in backends
        ]
        steps.append(Step(name=step_name, endpoints=endpoints))
    return steps


class RouterBackend(LLMBackend):
    """Tries each step of the chain; see the module docstring."""

    def __init__(
        self,
        steps: Sequence[Step] | None = None,
        *,
        fallback: LLMBackend | None = None,
        retries: int | None = None,
        backoff_seconds: float | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.steps = list(_build_steps() if steps is None else steps)
        self.fallback = fallback or KnowledgeFallbackBackend()
        self.retries = int(settings.LLM_RETRIES if retries is None else retries)
        self.backoff = float(
            settings.LLM_RETRY_BACKOFF_SECONDS if backoff_seconds is None else backoff_seconds
        )
        self._sleep = sleep

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        for step in self.steps:
            for endpoint in step.order_for(request.affinity_key):
                if not endpoint.breaker.allow():
                    continue
                for attempt in range(self.retries + 1):
                    if attempt:
                        await self._sleep(self.backoff * (2 ** (attempt - 1)))
                        if not endpoint.breaker.allow():
                            break
                    outcome = _Attempt()
                    try:
                        async for chunk in self._attempt(endpoint, request, outcome):
                            yield chunk
                        return
                    except LLMError as error:
                        if outcome.streamed:
                            # The visitor saw part of this reply: never re-send it elsewhere;
                            # end it honestly with the fallback, and still report the failure.
                            logger.warning(
                                "llm %s failed mid-reply: %s: %s", endpoint.name, error.code, error
                            )
                            separator = "\n\n"
                            async for chunk in self.fallback.stream(request):
                                if chunk.text:
                                    yield Chunk(text=separator + chunk.text, verbatim=True)
                                    separator = ""
                            raise
                        logger.warning(
                            "llm %s attempt %d failed before the first token: %s: %s",
                            endpoint.name,
                            attempt + 1,
                            error.code,
                            error,
                        )
                        if error.code not in _RETRYABLE:
                            break
        async for chunk in self.fallback.stream(request):
            yield chunk

    async def _attempt(
        self, endpoint: Endpoint, request: CompletionRequest, outcome: _Attempt
    ) -> AsyncIterator[Chunk]:
        started = time.monotonic()
        verdict = False
        try:
            async for chunk in endpoint.backend.stream(request):
                if chunk.text and not outcome.streamed:
                    outcome.streamed = True
                    endpoint.last_latency_ms = (time.monotonic() - started) * 1000
                if chunk.usage is not None and chunk.replica is None:
                    chunk = dataclasses.replace(chunk, replica=endpoint.name)
                yield chunk
            endpoint.breaker.success()
            endpoint.last_error = ""
            verdict = True
        except LLMError as error:
            endpoint.last_error = f"{error.code}: {error}"[:300]
            if error.code in _NOT_ENDPOINT_FAULTS:
                endpoint.breaker.release()
            else:
                endpoint.breaker.failure()
            verdict = True
            raise
        except Exception as error:
            endpoint.last_error = f"{type(error).__name__}: {error}"[:300]
            endpoint.breaker.failure()
            verdict = True
            raise LLMError(
                f"{endpoint.name} failed: {type(error).__name__}: {error}", code="llm_error"
            ) from error
        finally:
            if not verdict:
                endpoint.breaker.release()  # cancelled: no verdict on the endpoint

    async def check(self) -> list[BackendStatus]:
        statuses: list[BackendStatus] = []
        endpoints = [endpoint for step in self.steps for endpoint in step.endpoints]
        results = await asyncio.gather(
            *(endpoint.backend.check() for endpoint in endpoints), return_exceptions=True
        )
        for endpoint, result in zip(endpoints, results, strict=True):
            if isinstance(result, BaseException):
                statuses.append(
                    BackendStatus(
                        name=endpoint.name,
                        ok=False,
                        state="down",
                        detail=f"{type(result).__name__}: {result}"[:300],
                    )
                )
                continue
            for status in result:
                breaker = endpoint.breaker.state
                if breaker == "open":
                    detail = "circuit open"
                    if endpoint.last_error:
                        detail = f"circuit open after {endpoint.last_error}"
                    statuses.append(
                        BackendStatus(
                            name=status.name,
                            ok=False,
                            state="circuit_open",
                            detail=detail,
                            latency_ms=status.latency_ms,
                        )
                    )
                else:
                    statuses.append(status)
        statuses.extend(await self.fallback.check())
        return statuses

    def token_counter(self) -> Callable[[str], int] | None:
        """The first step's tokenizer: prompts are budgeted for the model that usually answers."""
        if not self.steps or not self.steps[0].endpoints:
            return None
        return self.steps[0].endpoints[0].backend.token_counter()


@dataclass
class _Attempt:
    streamed: bool = False
