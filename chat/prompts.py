"""Prompt assembly that keeps the engine's prefix cache hot: turn N+1 starts with turn N's tokens.

- the system prompt is byte-stable per (assistant, language);
- history is appended verbatim in its stored form, and a user turn is always rendered with the
  knowledge it was given (stored with it), so it reads the same in every later prompt;
- retrieved knowledge goes with the newest user turn, after the history, never at the top;
- over the token budget (counted with the model's own tokenizer when the backend has one), old
  turns go in large fixed steps counted from the start, so the kept prefix stays the same for
  many turns instead of shifting every turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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

# Chat-template markup around each turn (role tags, separators), in tokens.
TURN_OVERHEAD_TOKENS = 5

DROP_STEP_TURNS = 8


@dataclass(frozen=True)
class KnowledgeSnippet:
    """A knowledge-base excerpt given to the model with a question."""

    title: str
    url: str
    text: str
    # The language the excerpt is written in ("" in snippets stored before it was recorded).
    language: str = ""
    # The article's knowledge category (slug), for the admins' handoff rules; not in prompts.
    category: str = ""

    def as_dict(self) -> dict[str, str]:
        data = {"title": self.title, "url": self.url, "text": self.text, "language": self.language}
        if self.category:
            data["category"] = self.category
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> KnowledgeSnippet:
        return cls(
            title=str(data.get("title", "")),
            url=str(data.get("url", "")),
            text=str(data.get("text", "")),
            language=str(data.get("language", "")),
            category=str(data.get("category", "")),
        )


def system_prompt(*, language: str, glossary: str = "") -> str:
    """Byte-stable per (assistant, language, glossary): no timestamps, nothing per turn."""
    info = translation.get_language_info(language)
    text = _SYSTEM_PROMPT.format(name=settings.CHAT_ASSISTANT_NAME, language=info["name"])
    return f"{text}\n\n{glossary}" if glossary else text


_NO_KNOWLEDGE = (
    "[No knowledge-base excerpt matched this message. If it asks about this company's "
    "products, accounts or policies, say plainly that you do not have that information and "
    "offer to connect the visitor with human support; never invent facts.]"
)


_ANSWER_NOTE = (
    "[Answer from the excerpts above: give the steps or facts they state, in {language}, in "
    "your own words. Do not repeat the question.]"
)


def turn_note(*, text: str, conversation_language: str, knowledge_found: bool) -> str:
    """The per-question instructions after the knowledge: the reply language (detected from
    the visitor's own words), that language's glossary when it is not the conversation's,
    and what to do when nothing in the knowledge base matched.

    Deterministic for a stored question, so the turn renders the same in every later prompt.
    """
    from chat.glossary import glossary_prompt
    from chat.language import reply_language

    language = reply_language(text=text, conversation_language=conversation_language)
    name = translation.get_language_info(language)["name"]
    lines = [f"[Reply in {name}.]"]
    if knowledge_found:
        # The packaged 1.5B model answers a one-line question by repeating it about one time
        # in five ("Benötige ich Anti-Virus-Software?" → "Ja, benötige ich ..."): told so here,
        # after the excerpts, where it reads last (bench/answers.py, docs/benchmarks.md).
        lines.append(_ANSWER_NOTE.format(language=name))
    if language != conversation_language:
        glossary = glossary_prompt(language=language)
        if glossary:
            lines.append(glossary)
    if not knowledge_found:
        lines.append(_NO_KNOWLEDGE)
    return "\n".join(lines)


def token_estimate(text: str) -> int:
    """A conservative token count (about 4 characters a token, CJK a token a character)."""
    wide = sum(1 for char in text if ord(char) >= 0x2E80)
    return wide + (len(text) - wide) // 4 + 1


# The bracketed markers the prompt puts around knowledge and instructions: a reply that starts
# writing one is echoing the prompt, so generation stops there (chat.replies).
PROMPT_MARKERS = ("[Knowledge base excerpts", "[Reply in ", "[No knowledge-base excerpt")
MAX_STOPS = 4  # OpenAI's API takes at most four stop sequences; the admin's come first


def user_turn_text(
    question: str, knowledge: Sequence[KnowledgeSnippet] = (), note: str = ""
) -> str:
    """A visitor's question with the knowledge retrieved for it, after the question.

    Deterministic: the same question and snippets always give the same bytes, so the turn
    reads identically when it is history in later prompts.
    """
    parts = [question]
    if knowledge:
        parts += ["", "[Knowledge base excerpts for this question; cite the links you use]"]
    for number, snippet in enumerate(knowledge, start=1):
        link = f" <{snippet.url}>" if snippet.url else ""
        parts.append(f"({number}) {snippet.title.strip()}{link}\n{snippet.text.strip()}")
    if note:
        parts += ["", note]
    return "\n".join(parts)


def prompt_build(
    *,
    language: str,
    history: Sequence[Message],
    knowledge: Sequence[KnowledgeSnippet] = (),
    past_knowledge: Mapping[int, Sequence[KnowledgeSnippet]] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    turn_notes: Mapping[int, str] | None = None,
    glossary: str = "",
) -> list[ChatTurn]:
    """System prompt + stored turns, verbatim, within the context budget.

    `knowledge` goes with the newest user turn (the last of `history`); `past_knowledge` maps
    earlier user messages' ids to the knowledge they were given (stored), rendered the same way.
    Over budget, the oldest turns go in steps of DROP_STEP_TURNS counted from the start of
    the conversation, so the kept prefix stays identical for many turns (prefix cache reuse)
    instead of shifting by one turn every time.
    """
    past = past_knowledge or {}
    notes = turn_notes or {}
    count = count_tokens or token_estimate
    turns: list[ChatTurn] = []
    last = len(history) - 1
    for index, message in enumerate(history):
        if message.role == Message.Role.USER:
            given = knowledge if index == last else past.get(message.pk, ())
            note = notes.get(message.pk, "")
            turns.append(ChatTurn(role="user", content=user_turn_text(message.text, given, note)))
        else:
            turns.append(ChatTurn(role="assistant", content=message.text))
    system = ChatTurn(role="system", content=system_prompt(language=language, glossary=glossary))
    budget = settings.CHAT_CONTEXT_BUDGET_TOKENS - count(system.content) - TURN_OVERHEAD_TOKENS
    sizes = [count(turn.content) + TURN_OVERHEAD_TOKENS for turn in turns]
    start = 0
    while start < len(turns) - 1 and sum(sizes[start:]) > budget:
        start = min(start + DROP_STEP_TURNS, len(turns) - 1)
    while start < len(turns) - 1 and turns[start].role != "user":
        start += 1
    return [system, *turns[start:]]


def naive_prompt_build(
    *,
    language: str,
    history: Sequence[Message],
    knowledge: Sequence[KnowledgeSnippet] = (),
    turn_number: int = 0,
) -> list[ChatTurn]:
    """The layout the product avoids, for bench/prefix_reuse.py only: knowledge and a turn
    counter in the system prompt at the top, history re-rendered with labels."""
    lines = [system_prompt(language=language), f"Turn {turn_number}."]
    if knowledge:
        lines.append("Knowledge:")
        lines.extend(f"- {s.title} <{s.url}>: {s.text}" for s in knowledge)
    turns = [ChatTurn(role="system", content="\n".join(lines))]
    for message in history:
        if message.role == Message.Role.USER:
            turns.append(ChatTurn(role="user", content=f"Visitor: {message.text}"))
        else:
            turns.append(ChatTurn(role="assistant", content=message.text))
    return turns
