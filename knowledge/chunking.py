"""Splits an article into chunks by headings and a token budget; the title goes with each."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from autoglm_site.languages import letter_count
from knowledge.embeddings import MODEL_NAME

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？؟])\s*")
# The most of an untitled article's first paragraph that stands in for its title.
LEAD_TOKENS = 64


@dataclass(frozen=True)
class PlannedChunk:
    position: int
    heading: str
    text: str
    embed_text: str
    content_hash: str
    # What the title vector embeds (knowledge.services.indexing): the title, or for an article
    # whose title says nothing in words (a number, a code), the start of its first paragraph.
    title: str = ""


def _sections(body: str) -> list[tuple[str, list[str]]]:
    """(heading path, paragraphs) per Markdown section; headings inside code fences ignored."""
    sections: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    current: list[str] = []
    in_fence = False

    def close_paragraph() -> None:
        if current:
            text = "\n".join(current).strip()
            if text:
                paragraphs.append(text)
            current.clear()

    def close_section() -> None:
        close_paragraph()
        if paragraphs:
            sections.append((" › ".join(title for _level, title in path), list(paragraphs)))
        paragraphs.clear()

    for line in body.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            current.append(line)
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            close_section()
            level = len(heading.group(1))
            path[:] = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, heading.group(2).strip()))
        elif not line.strip() and not in_fence:
            close_paragraph()
        else:
            current.append(line)
    close_section()
    return sections


def _split_long(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """Sentences (or, failing that, words) of TEXT packed into pieces within BUDGET tokens."""
    units = [piece for piece in _SENTENCE_END.split(text) if piece.strip()]
    if len(units) <= 1:
        units = (
            text.split(" ")
            if " " in text
            else [text[i : i + 200] for i in range(0, len(text), 200)]
        )
    pieces: list[str] = []
    current = ""
    for unit in units:
        candidate = f"{current} {unit}".strip() if current else unit
        if current and count(candidate) > budget:
            pieces.append(current)
            current = unit
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def content_hash(*, language: str, embed_text: str) -> str:
    digest = hashlib.sha256()
    for part in (MODEL_NAME, language, embed_text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def chunk_article(
    *, title: str, body: str, language: str, budget: int, count: Callable[[str], int]
) -> list[PlannedChunk]:
    """Chunks of one language version: sections by heading, paragraphs packed up to BUDGET.

    COUNT gives a text's token count (the embedding model's tokenizer); the title and the
    section's heading path are prepended to the embedded text of every chunk, so a chunk
    found on its own still says what it is about.
    """
    planned: list[tuple[str, str]] = []
    sections = _sections(body) or [("", [title])]
    # A title without a letter ("#4711", "12-3") tells a reader nothing: it is left out of the
    # embedded text, and the article's first words stand in for it as its title vector, as a
    # title says what the article is about.
    named = title if letter_count(title) else ""
    shown_as = named or _lead(sections, count) or title
    for heading, paragraphs in sections:
        prefix = "\n".join(part for part in (named, heading) if part)
        room = max(budget - count(prefix), 16)
        current = ""
        for paragraph in paragraphs:
            pieces = (
                [paragraph] if count(paragraph) <= room else _split_long(paragraph, room, count)
            )
            for piece in pieces:
                candidate = f"{current}\n\n{piece}" if current else piece
                if current and count(candidate) > room:
                    planned.append((heading, current))
                    current = piece
                else:
                    current = candidate
        if current:
            planned.append((heading, current))
    chunks: list[PlannedChunk] = []
    for position, (heading, text) in enumerate(planned):
        embed_text = "\n".join(part for part in (named, heading, text) if part)
        chunks.append(
            PlannedChunk(
                position=position,
                heading=heading[:300],
                text=text,
                embed_text=embed_text,
                content_hash=content_hash(language=language, embed_text=embed_text),
                title=shown_as,
            )
        )
    return chunks


def _lead(sections: list[tuple[str, list[str]]], count: Callable[[str], int]) -> str:
    """The start (up to LEAD_TOKENS) of the first paragraph with words in it, else ""."""
    for _heading, paragraphs in sections:
        for paragraph in paragraphs:
            if letter_count(paragraph) and not _FENCE.match(paragraph):
                return _split_long(paragraph, LEAD_TOKENS, count)[0]
    return ""
