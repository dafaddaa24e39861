"""Chooses the tokenizer for a language; the same one serves documents and queries."""

from __future__ import annotations

from knowledge.text import arabic, chinese
from knowledge.text.generic import words
from knowledge.text.stem import stem, stems


def with_stems(terms: list[str], *, language: str) -> list[str]:
    """TERMS, each followed by its Snowball stem in LANGUAGE where that differs (knowledge.text.stem
    says why both are kept)."""
    if not stems(language):
        return terms
    out: list[str] = []
    for term in terms:
        out.append(term)
        root = stem(term, language)
        if root != term:
            out.append(root)
    return out


def tokenize(text: str, *, language: str, stemmed: bool = True) -> list[str]:
    """Index terms of TEXT written in LANGUAGE (a Django language code such as "zh-hans").

    Chinese is segmented with jieba; Japanese and Korean become CJK bigrams (no segmenter
    model is packaged small enough to be worth it); Arabic is normalised; every other language
    is split at Unicode word boundaries and folded for case and accents. With STEMMED, each
    word of a language Snowball knows is followed by its stem (with_stems); a question's terms
    are stemmed after its function words are dropped (search).
    """
    family = language.split("-")[0].lower()
    if family == "zh":
        return chinese.tokenize(text)
    if family == "ar":
        return arabic.tokenize(text)
    terms = words(text)
    return with_stems(terms, language=language) if stemmed else terms
