"""Chooses the tokenizer for a language; the same one serves documents and queries."""

from __future__ import annotations

from knowledge.text import arabic, chinese
from knowledge.text.generic import words


def tokenize(text: str, *, language: str) -> list[str]:
    """Index terms of TEXT written in LANGUAGE (a Django language code such as "zh-hans").

    Chinese is segmented with jieba; Japanese and Korean become CJK bigrams (no segmenter
    model is packaged small enough to be worth it); Arabic is normalised; every other language
    is split at Unicode word boundaries and folded for case and accents.
    """
    family = language.split("-")[0].lower()
    if family == "zh":
        return chinese.tokenize(text)
    if family == "ar":
        return arabic.tokenize(text)
    return words(text)
