"""Deterministic backend for tests and benchmarks, like Django's locmem mail backend."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import ClassVar

from django.conf import settings

from chat.llm.base import BackendStatus, Chunk, CompletionRequest, LLMBackend, LLMError, Usage

_TOKEN = re.compile(r"\S+\s*|\s+")


def tokens_of(text: str) -> list[str]:
    return _TOKEN.findall(text)


def reply_for(request: CompletionRequest) -> str:
    """The reply the fake gives: it echoes the newest question and recalls the first one.

    A translation request gets "[TARGET] TEXT" (placeholders kept), like a translator that
    only labels its output: tests can tell a translation from its original."""
    if request.task == "translate":
        return f"[{request.reply_language}] {request.query}"
    # A user turn is the visitor's words, then bracketed knowledge and instructions.
    user_turns = [
        turn.content.split("\n\n[")[0] for turn in request.messages if turn.role == "user"
    ]
    if not user_turns:
        return "Hello! How can I help you today?"
    newest = request.query or user_turns[-1]
    text = f"You asked: «{newest}». This is question {len(user_turns)} of our conversation."
    if len(user_turns) > 1:
        text += f" Earlier you asked: «{user_turns[0]}»."
    return text


class FakeBackend(LLMBackend):
    """Streams reply_for(request) token by token at the configured rate.

    `requests` records every request (like mail.outbox); `script` holds replies (str) or
    failures (LLMError) used, in order, before the deterministic echo.
    """

    requests: ClassVar[list[CompletionRequest]] = []
    script: ClassVar[list[str | LLMError]] = []

    @classmethod
    def reset(cls) -> None:
        cls.requests.clear()
        cls.script.clear()

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        type(self).requests.append(request)
        started = time.monotonic()
        planned = type(self).script.pop(0) if type(self).script else reply_for(request)
        await asyncio.sleep(settings.LLM_FAKE_FIRST_TOKEN_MS / 1000)
        if isinstance(planned, LLMError):
            raise planned
        pieces = tokens_of(planned)[: request.sampling.max_tokens]
        first_ms: float | None = None
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(settings.LLM_FAKE_TOKEN_MS / 1000)
            if first_ms is None:
                first_ms = (time.monotonic() - started) * 1000
            yield Chunk(text=piece)
        prompt_tokens = sum(len(tokens_of(turn.content)) for turn in request.messages)
        yield Chunk(
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(pieces)),
            backend_ttft_ms=first_ms,
        )

    async def check(self) -> list[BackendStatus]:
        return [
            BackendStatus(name="fake", ok=True, detail="deterministic test backend", latency_ms=0.0)
        ]
