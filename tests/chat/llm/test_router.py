"""The router: retries only before the first token, circuit breakers, replica affinity with
failover and return, and the honest knowledge-base fallback at the end of every chain."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from django.utils import translation
from django.utils.translation import gettext

from chat.llm.base import (
    BackendStatus,
    ChatTurn,
    Chunk,
    CompletionRequest,
    LLMBackend,
    LLMError,
    Usage,
)
from chat.llm.openai_compat import OpenAICompatBackend, Timeouts
from chat.llm.router import CircuitBreaker, Endpoint, KnowledgeFallbackBackend, RouterBackend, Step
from knowledge.search import SearchHit
from tests.chat.llm.conftest import free_port


class Scripted(LLMBackend):
    """Plays a script per call: "ok" streams a reply, an LLMError fails before any text,
    ("partial", error) streams one piece then fails."""

    def __init__(self, name: str, script: list[object] | None = None) -> None:
        self.name = name
        self.script = list(script or [])
        self.calls = 0

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, LLMError):
            raise step
        if isinstance(step, tuple):
            yield Chunk(text=f"partial from {self.name}")
            raise step[1]
        yield Chunk(text=f"reply from {self.name}")
        yield Chunk(usage=Usage(completion_tokens=3))

    async def check(self) -> list[BackendStatus]:
        return [BackendStatus(name=self.name, ok=True, state="up", latency_ms=1.0)]


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def endpoint(backend: Scripted, clock: Clock | None = None, failures: int = 3) -> Endpoint:
    return Endpoint(
        name=backend.name,
        backend=backend,
        breaker=CircuitBreaker(failures=failures, reset_seconds=30, clock=clock or time.monotonic),
    )


def request(key: str = "conversation-1", language: str = "en") -> CompletionRequest:
    return CompletionRequest(
        messages=[ChatTurn(role="user", content="How do I reset my password?")],
        affinity_key=key,
        language=language,
        query="How do I reset my password?",
    )


async def text_of(router: RouterBackend, req: CompletionRequest | None = None) -> str:
    async def run() -> str:
        return "".join([c.text async for c in router.stream(req or request())])

    return await asyncio.wait_for(run(), timeout=10)


def router_of(*steps: Step, retries: int = 2, sleeps: list[float] | None = None) -> RouterBackend:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return RouterBackend(list(steps), retries=retries, backoff_seconds=0.1, sleep=sleep)


async def test_failure_before_first_token_is_retried_with_backoff() -> None:
    flaky = Scripted(
        "a", [LLMError("down", code="connect_failed"), LLMError("x", code="upstream_unavailable")]
    )
    sleeps: list[float] = []
    router = router_of(Step("openai", [endpoint(flaky)]), sleeps=sleeps)
    assert await text_of(router) == "reply from a"
    assert flaky.calls == 3
    assert sleeps == [0.1, 0.2]


async def test_failure_after_first_token_is_never_resent_and_ends_with_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "knowledge.search", None)  # search not available
    cut = Scripted("a", [("partial", LLMError("cut", code="stream_cut"))])
    other = Scripted("b")
    router = router_of(Step("openai", [endpoint(cut)]), Step("local", [endpoint(other)]))
    seen: list[str] = []
    with pytest.raises(LLMError) as caught:
        async for chunk in router.stream(request(language="de")):
            seen.append(chunk.text)
    assert caught.value.code == "stream_cut"  # still reported: the reply is marked failed
    assert seen[0] == "partial from a"
    with translation.override("de"):
        apology = gettext(
            "Sorry, the assistant is unavailable right now. Please try again in a few "
            "minutes, or contact our support team."
        )
    assert "".join(seen[1:]) == "\n\n" + apology and "Sorry" not in apology
    assert cut.calls == 1 and other.calls == 0


async def test_non_retryable_error_moves_on_without_retrying() -> None:
    wrong_key = Scripted("a", [LLMError("401", code="unauthorized")])
    local = Scripted("local")
    router = router_of(Step("openai", [endpoint(wrong_key)]), Step("local", [endpoint(local)]))
    assert await text_of(router) == "reply from local"
    assert wrong_key.calls == 1


async def test_circuit_opens_after_failures_and_closes_after_a_good_trial() -> None:
    clock = Clock()
    down = Scripted("a", [LLMError("refused", code="connect_failed")] * 3)
    local = Scripted("local")
    a = endpoint(down, clock)
    router = router_of(Step("openai", [a]), Step("local", [endpoint(local)]), retries=0)
    for _ in range(3):
        assert await text_of(router) == "reply from local"
    assert a.breaker.state == "open" and down.calls == 3
    # Open: the endpoint is skipped without being called.
    assert await text_of(router) == "reply from local"
    assert down.calls == 3
    statuses = {s.name: s for s in await router.check()}
    assert statuses["a"].state == "circuit_open" and not statuses["a"].ok
    # After the reset time one trial goes through; it succeeds, so the circuit closes.
    clock.now += 31
    assert a.breaker.state == "half_open"
    assert await text_of(router) == "reply from a"
    assert a.breaker.state == "closed" and down.calls == 4


async def test_failed_trial_reopens_the_circuit() -> None:
    clock = Clock()
    down = Scripted("a", [LLMError("refused", code="connect_failed")] * 5)
    a = endpoint(down, clock, failures=1)
    router = router_of(Step("openai", [a]), Step("local", [endpoint(Scripted("local"))]), retries=0)
    await text_of(router)
    assert a.breaker.state == "open"
    clock.now += 31
    await text_of(router)
    assert a.breaker.state == "open" and down.calls == 2


async def test_conversation_sticks_to_one_replica_fails_over_and_returns() -> None:
    clock = Clock()
    replicas = [Scripted(f"vllm-{i}") for i in range(3)]
    endpoints = [endpoint(r, clock, failures=1) for r in replicas]
    step = Step("openai", endpoints)
    router = router_of(step, Step("local", [endpoint(Scripted("local"))]), retries=0)

    homes = {key: step.order_for(key)[0].name for key in (f"c{i}" for i in range(60))}
    assert set(homes.values()) == {"vllm-0", "vllm-1", "vllm-2"}, "keys spread over replicas"
    key = "c7"
    home = homes[key]
    for _ in range(3):
        assert await text_of(router, request(key)) == f"reply from {home}"

    # The home replica fails: the conversation moves to the next replica on the ring.
    home_backend = next(r for r in replicas if r.name == home)
    home_backend.script = [LLMError("refused", code="connect_failed")]
    second = step.order_for(key)[1].name
    assert await text_of(router, request(key)) == f"reply from {second}"
    assert await text_of(router, request(key)) == f"reply from {second}"
    # Other conversations whose home is up are not moved.
    others = [k for k, h in homes.items() if h != home][:5]
    for other in others:
        assert await text_of(router, request(other)) == f"reply from {homes[other]}"

    # It recovers: after the reset time the next request tries it again and stays there.
    clock.now += 31
    assert await text_of(router, request(key)) == f"reply from {home}"
    assert await text_of(router, request(key)) == f"reply from {home}"


async def test_adding_a_replica_moves_only_some_conversations() -> None:
    three = Step("openai", [endpoint(Scripted(f"vllm-{i}")) for i in range(3)])
    four = Step("openai", [endpoint(Scripted(f"vllm-{i}")) for i in range(4)])
    keys = [f"c{i}" for i in range(200)]
    moved = sum(three.order_for(k)[0].name != four.order_for(k)[0].name for k in keys)
    assert 0 < moved < 100, "consistent hashing: about a quarter move, not most"


async def test_everything_down_gives_an_honest_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "knowledge.search", None)  # search not available
    router = router_of(
        Step("openai", [endpoint(Scripted("a", [LLMError("x", code="connect_failed")] * 3))]),
        retries=0,
    )
    text = await text_of(router)
    assert "assistant is unavailable" in text
    assert "http" not in text


async def test_fallback_quotes_the_best_knowledge_matches(
    monkeypatch: pytest.MonkeyPatch, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_FALLBACK_KNOWLEDGE_LIMIT = 2
    calls: list[dict[str, object]] = []

    def chunk_search(*, query: str, language: str | None, limit: int) -> list[SearchHit]:
        calls.append({"query": query, "language": language, "limit": limit})
        return [
            SearchHit(
                "1",
                "Reset your password",
                "https://help.example/reset",
                "Open Settings, then Security.",
                "en",
                0.9,
            ),
            SearchHit(
                "2", "Account locked", "https://help.example/locked", "Wait 15 minutes.", "en", 0.5
            ),
        ]

    import knowledge.search

    monkeypatch.setattr(knowledge.search, "chunk_search", chunk_search)
    chunks = [c async for c in KnowledgeFallbackBackend().stream(request(language="en"))]
    text = "".join(c.text for c in chunks)
    assert "assistant is unavailable" in text
    assert "Reset your password (https://help.example/reset)" in text
    assert "Open Settings, then Security." in text
    assert "https://help.example/locked" in text
    assert calls == [{"query": "How do I reset my password?", "language": "en", "limit": 2}]
    assert chunks[-1].finish_reason == "fallback"


async def test_broken_search_still_gives_the_apology(monkeypatch: pytest.MonkeyPatch) -> None:
    def chunk_search(**kwargs: object) -> list[SearchHit]:
        raise RuntimeError("index gone")

    import knowledge.search

    monkeypatch.setattr(knowledge.search, "chunk_search", chunk_search)
    text = "".join([c.text async for c in KnowledgeFallbackBackend().stream(request())])
    assert "assistant is unavailable" in text


async def test_real_refused_endpoint_falls_back_within_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "knowledge.search", None)
    dead = OpenAICompatBackend(
        f"http://127.0.0.1:{free_port()}/v1",
        model="m",
        api_key="",
        timeouts=Timeouts(connect=1, first_token=2, between_tokens=1, total=5),
    )
    ep = Endpoint(
        name=dead.name, backend=dead, breaker=CircuitBreaker(failures=3, reset_seconds=30)
    )
    router = RouterBackend([Step("openai", [ep])], retries=1, backoff_seconds=0.05)
    started = time.monotonic()
    text = await text_of(router)
    assert "assistant is unavailable" in text
    assert time.monotonic() - started < 3
    assert "connect_failed" in ep.last_error


async def test_check_lists_every_endpoint_and_the_fallback() -> None:
    router = router_of(Step("openai", [endpoint(Scripted("a")), endpoint(Scripted("b"))]))
    statuses = await router.check()
    assert [(s.name, s.state) for s in statuses] == [
        ("a", "up"),
        ("b", "up"),
        ("knowledge_fallback", "fallback"),
    ]


def test_router_builds_the_chain_from_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_CHAIN = ["openai", "fake"]
    settings.LLM_OPENAI_BASE_URLS = ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]
    settings.LLM_OPENAI_MODEL = "qwen"
    router = RouterBackend()
    assert [s.name for s in router.steps] == ["openai", "fake"]
    assert [e.name for e in router.steps[0].endpoints] == [
        "http://10.0.0.1:8000/v1",
        "http://10.0.0.2:8000/v1",
    ]
