"""Machine translation of chat messages through the inference layer (vLLM in production, the
packaged model in the embedded mode), keeping names, numbers, links and code exactly.

What must not change is taken out before the model sees the text: links, e-mail addresses,
code, numbers and the glossary's do-not-translate terms become placeholders ⟦1⟧, ⟦2⟧... and are
put back after. A translation that lost or invented a placeholder is refused (the message is
then shown untranslated, marked so): a wrong price or link in a translated message is worse
than an untranslated one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import regex
from django.conf import settings
from django.utils import translation as django_translation

from chat.glossary import glossary_prompt
from chat.llm import get_backend
from chat.llm.base import ChatTurn, CompletionRequest, Sampling

logger = logging.getLogger(__name__)

_PROTECTED = regex.compile(
    r"```.*?```"  # code blocks
    r"|`[^`\n]+`"  # inline code
    r"|\b(?:https?://|www\.)[^\s<>()\[\]]+[^\s<>()\[\].,;:!?'\"»」』）]"  # links
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|[#@][\w-]{2,}"  # order numbers, handles
    r"|\+?\d[\d \-()/.]{5,}\d"  # phone numbers, long ids: one span
    r"|[\p{Sc}]?\d[\d.,:/\-]*\d%?|[\p{Sc}]?\d%?",  # numbers, dates, prices
    regex.DOTALL,
)
_PLACEHOLDER = re.compile(r"⟦(\d+)⟧")


class TranslationError(Exception):
    pass


@dataclass(frozen=True)
class Protected:
    text: str  # with placeholders
    spans: list[str]  # span i is placeholder ⟦i+1⟧


def protect(text: str, *, keep: list[str] = ()) -> Protected:  # type: ignore[assignment]
    """TEXT with what must stay exact replaced by numbered placeholders."""
    spans: list[str] = []

    def hold(match: regex.Match[str]) -> str:
        spans.append(match.group(0))
        return f"⟦{len(spans)}⟧"

    terms = sorted({term for term in keep if term.strip()}, key=len, reverse=True)
    if terms:
        pattern = regex.compile("|".join(regex.escape(term) for term in terms), regex.IGNORECASE)
        text = pattern.sub(hold, text)
    # Placeholders already in the text stay as they are (the pattern does not match ⟦n⟧).
    parts = regex.split(r"(⟦\d+⟧)", text)
    text = "".join(
        part if _PLACEHOLDER.fullmatch(part) else _PROTECTED.sub(hold, part) for part in parts
    )
    return Protected(text=text, spans=spans)


def restore(translated: str, protected: Protected) -> str:
    """TRANSLATED with its placeholders put back; TranslationError when one is missing or
    unknown (or doubled)."""
    found = [int(n) for n in _PLACEHOLDER.findall(translated)]
    if sorted(found) != list(range(1, len(protected.spans) + 1)):
        raise TranslationError("placeholders changed")
    return _PLACEHOLDER.sub(lambda m: protected.spans[int(m.group(1)) - 1], translated)


def _language_name(code: str) -> str:
    try:
        return str(django_translation.get_language_info(code)["name"])
    except KeyError:
        return code


def translation_request(
    *, text: str, source: str, target: str, names: Sequence[str] = ()
) -> tuple[CompletionRequest, Protected]:
    """The request that translates TEXT, and what was protected in it: the glossary's terms
    that are not translated and NAMES (the agents' names) stay exactly as written."""
    keep = [*_do_not_translate(target), *(name for name in names if len(name) > 1)]
    protected = protect(text, keep=keep)
    glossary = glossary_prompt(language=target)
    system = (
        f"You translate customer-service chat messages from {_language_name(source)} "
        f"to {_language_name(target)}. Write only the translation of the user's message: no "
        "explanation, no quotes, no greeting of your own. Keep every placeholder such as ⟦1⟧ "
        "exactly as it is, where it belongs in the sentence. Keep the tone."
    )
    if glossary:
        system += "\n" + glossary
    request = CompletionRequest(
        messages=[
            ChatTurn(role="system", content=system),
            ChatTurn(role="user", content=protected.text),
        ],
        sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=min(2048, 64 + 3 * len(text))),
        affinity_key=f"translate:{target}",
        language=source,
        query=protected.text,
        reply_language=target,
        task="translate",
    )
    return request, protected


def _do_not_translate(language: str) -> list[str]:
    from chat.models import GlossaryTerm

    return list(
        GlossaryTerm.objects.filter(do_not_translate=True, language__in=["", language]).values_list(
            "term", flat=True
        )
    )


_slots: dict[int, asyncio.Semaphore] = {}


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(id(loop))
    if slot is None:
        slot = _slots[id(loop)] = asyncio.Semaphore(settings.INBOX_TRANSLATION_CONCURRENCY)
    return slot


async def text_translate(*, request: CompletionRequest, protected: Protected) -> tuple[str, str]:
    """(translation, backend name); TranslationError when it cannot be trusted or took longer
    than INBOX_TRANSLATION_TIMEOUT_SECONDS."""
    backend = get_backend()
    pieces: list[str] = []
    replica = ""
    async with _semaphore():
        try:
            async with asyncio.timeout(settings.INBOX_TRANSLATION_TIMEOUT_SECONDS):
                async for chunk in backend.stream(request):
                    if chunk.verbatim or chunk.finish_reason == "fallback":
                        raise TranslationError("no translation engine answered")
                    pieces.append(chunk.text)
                    replica = chunk.replica or replica
        except TimeoutError as exc:
            raise TranslationError("timed out") from exc
        except TranslationError:
            raise
        except Exception as exc:
            raise TranslationError(f"engine failed: {type(exc).__name__}") from exc
    translated = "".join(pieces).strip()
    if not translated:
        raise TranslationError("empty translation")
    return restore(translated, protected), replica or type(backend).__name__
