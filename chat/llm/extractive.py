"""Answers built from the knowledge-base excerpts alone, for languages the engine cannot write
well (the packaged 1.5B model and Hebrew): the relevant articles with their links, an excerpt
where one exists in the visitor's language, and where to get a person's help. Nothing is
generated, so nothing is invented, and every word of it is in the visitor's language except
the article titles."""

from __future__ import annotations

from collections.abc import AsyncIterator

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from chat.llm.base import BackendStatus, Chunk, CompletionRequest, LLMBackend, Usage

EXCERPT_CHARS = 400


def extractive_answer(*, language: str, knowledge: list[dict[str, str]]) -> str:
    """The reply text for KNOWLEDGE (relevant snippets: title, url, text, language)."""
    with translation.override(language or settings.LANGUAGE_CODE):
        if not knowledge:
            return gettext(
                "I could not find an answer to this in our help centre. Please contact our "
                "support team, and a person will help you."
            )
        lines = [gettext("These articles from our help centre answer your question:")]
        for snippet in knowledge:
            title = snippet.get("title", "").strip()
            url = snippet.get("url", "").strip()
            lines.append(f"- {title}" + (f" ({url})" if url else ""))
            text = " ".join(snippet.get("text", "").split())
            if text and snippet.get("language") == language:
                cut = text[:EXCERPT_CHARS]
                lines.append(f"  {cut}…" if len(text) > EXCERPT_CHARS else f"  {text}")
        lines.append(
            gettext("If this does not answer your question, please contact our support team.")
        )
        return "\n".join(lines)


def request_answer(request: CompletionRequest) -> str:
    """The extractive reply to REQUEST: in its reply language, from the knowledge it carries."""
    return extractive_answer(
        language=request.reply_language or request.language,
        knowledge=[dict(item) for item in request.knowledge],
    )


class ExtractiveBackend(LLMBackend):
    name = "extractive"

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        yield Chunk(text=request_answer(request))
        yield Chunk(usage=Usage(), finish_reason="stop")

    async def check(self) -> list[BackendStatus]:
        return [BackendStatus(name=self.name, ok=True, state="up", detail="no model")]
