"""Chinese word segmentation with jieba; its dictionary is loaded once per process."""

from __future__ import annotations

import logging
import threading

import jieba

from knowledge.text.generic import fold, words

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None


def get_tokenizer() -> jieba.Tokenizer:
    """The process-wide jieba tokenizer, initialised on first use (about a second)."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                _tokenizer = tokenizer
    return _tokenizer


def tokenize(text: str) -> list[str]:
    """Search-mode segmentation (words and their sub-words); non-Chinese runs use `words`."""
    tokens: list[str] = []
    for piece in get_tokenizer().cut_for_search(text):
        piece = piece.strip()
        if not piece:
            continue
        if all("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in piece):
            tokens.append(fold(piece))
        else:
            tokens.extend(words(piece))
    return tokens
