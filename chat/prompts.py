"""Prompt assembly: a byte-stable system prompt, then history verbatim, within a token budget."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.utils import translation

from chat.llm.base import ChatTurn
from chat.models import Message

_SYSTEM_PROMPT = (
    "You are {name}, the customer-service assistant of this company. Answer briefly and "
    "truthfully, using the knowledge provided with the question. If you do not know, say so "
    "and suggest contacting human support. Reply in the language of the visitor's latest "
    "message (the conversation language is {language})."
)


def system_prompt(*, language: str) -> str:
    """Byte-stable per (assistant, language): no timestamps, nothing per turn."""
    info = translation.get_language_info(language)
    return _SYSTEM_PROMPT.format(name=settings.CHAT_ASSISTANT_NAME, language=info["name"])


def token_estimate(text: str) -> int:
    """A conservative token count (about 4 characters a token, CJK a token a character)."""
    wide = sum(1 for char in text if ord(char) >= 0x2E80)
    return wide + (len(text) - wide) // 4 + 1


DROP_STEP_TURNS = 8


def prompt_build(*, language: str, history: Sequence[Message]) -> list[ChatTurn]:
    """System prompt + stored turns, verbatim, within the context budget.

    Over budget, the oldest turns go in steps of DROP_STEP_TURNS counted from the start of
    the conversation, so the kept prefix stays identical for many turns (prefix cache reuse)
    instead of shifting by one turn every time.
    """
    turns = [
        ChatTurn(role="user" if m.role == Message.Role.USER else "assistant", content=m.text)
        for m in history
    ]
    system = ChatTurn(role="system", content=system_prompt(language=language))
    budget = settings.CHAT_CONTEXT_BUDGET_TOKENS - token_estimate(system.content)
    sizes = [token_estimate(turn.content) for turn in turns]
    start = 0
    while start < len(turns) - 1 and sum(sizes[start:]) > budget:
        start = min(start + DROP_STEP_TURNS, len(turns) - 1)
    while start < len(turns) - 1 and turns[start].role != "user":
        start += 1
    return [system, *turns[start:]]
