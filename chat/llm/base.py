"""The one interface every inference backend implements: an async stream of text deltas."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    content: str


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.3
    top_p: float = 0.9
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class CompletionRequest:
    messages: Sequence[ChatTurn]
    sampling: Sampling = field(default_factory=Sampling)
    # Stable per conversation: lets a backend keep a conversation on one replica (KV cache).
    affinity_key: str = ""
    # The conversation language (a LANGUAGES code), for replies a backend writes itself.
    language: str = ""
    # The visitor's newest message as typed (no knowledge attached): for knowledge fallbacks.
    query: str = ""
    # The language to answer the newest message in (chat.language.reply_language), and the
    # relevant knowledge given with it ({title, url, text, language}), for backends that build
    # a reply from the knowledge themselves.
    reply_language: str = ""
    knowledge: Sequence[Mapping[str, str]] = ()
    # "answer" (a support reply) or "translate" (inbox.translate: LANGUAGE is the source,
    # REPLY_LANGUAGE the target, QUERY the text with its protected spans as placeholders).
    task: str = "answer"
    # What each PII placeholder in MESSAGES and QUERY stands for (privacy.masking): for the
    # reply runner to put the originals back in the reply; never sent to the model.
    pii_originals: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of the stream: text, or (last) the usage and the backend's own timings."""

    text: str = ""
    usage: Usage | None = None
    backend_ttft_ms: float | None = None
    # On the last chunk: "stop", "length" (max_tokens reached), "cancelled", or None.
    finish_reason: str | None = None
    # On the last chunk: the endpoint that answered (set by the router).
    replica: str | None = None
    # Text quoted as it is (a knowledge fallback's article titles and excerpts): shown without
    # the reply-language filter.
    verbatim: bool = False


@dataclass(frozen=True)
class BackendStatus:
    name: str
    ok: bool
    detail: str = ""
    latency_ms: float | None = None
    # "up", "down", "circuit_open" (the router stopped sending to it for a while), "fallback".
    state: str = ""


class LLMError(Exception):
    """A backend failed; code is stable and safe to show to operators."""

    code = "llm_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class LLMBackend(ABC):
    """Stream a reply for a chat; raise LLMError on failure. Cancellation closes the stream."""

    @abstractmethod
    def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        """Yield text chunks as they are produced, then one chunk carrying usage."""

    @abstractmethod
    async def check(self) -> list[BackendStatus]:
        """Report each endpoint's state for /readyz and `manage.py llm_check`."""

    def token_counter(self) -> Callable[[str], int] | None:
        """A function counting tokens with the model's own tokenizer, when the backend has one.

        Called from synchronous code (prompt assembly runs in a worker thread).
        """
        return None
