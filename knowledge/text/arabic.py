"""Arabic normalisation: diacritics, tatweel, alef/yeh/teh marbuta forms, a light prefix strip."""

from __future__ import annotations

import regex

from knowledge.text.generic import words

_DIACRITICS = regex.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED]")
_TATWEEL = "\u0640"
_LETTERS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ة": "ه",
        "ؤ": "و",
        "ئ": "ي",
        "ک": "ك",
        "ی": "ي",
    }
)
# Definite article and the conjunctions/prepositions glued to it: "والحساب" -> "حساب".
_PREFIXES = ("وال", "بال", "كال", "فال", "لل", "ال")


def normalize(text: str) -> str:
    """Remove diacritics and tatweel and unify letter forms, so spelling variants match."""
    return _DIACRITICS.sub("", text).replace(_TATWEEL, "").translate(_LETTERS)


def _strip_prefix(word: str) -> str:
    for prefix in _PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 2:
            return word[len(prefix) :]
    return word


def tokenize(text: str) -> list[str]:
    return [_strip_prefix(word) for word in words(normalize(text))]
