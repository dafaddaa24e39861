"""Per-language text processing for the keyword index: tokenizers and language detection."""

from __future__ import annotations

from knowledge.text.detect import detect_language, normalize_language
from knowledge.text.tokenize import tokenize

__all__ = ["detect_language", "normalize_language", "tokenize"]
