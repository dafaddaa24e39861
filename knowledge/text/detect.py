"""Offline language detection: script rules first, then py3langid's bundled model."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings

from autoglm_site.languages import (
    language_supported,
    letter_count,
    script_counts,
    script_languages,
)

_lock = threading.Lock()
_identifier: Any = None

# Common characters written differently in Simplified and Traditional Chinese.
_SIMPLIFIED = set("们这个说时么会来为对没还过码设户账号务问题请费储云换让发与开关实点后网页终删邮")
_TRADITIONAL = set("們這個說時麼會來為對沒還過碼設戶帳號務問題請費儲雲換讓發與開關實點後網頁終刪郵")
_TRADITIONAL -= _SIMPLIFIED
_MIN_PROBABILITY = 0.5


def normalize_language(code: str | None) -> str | None:
    """A settings.LANGUAGES code for CODE ("zh-MO" -> "zh-hant", "pt-PT" -> "pt-br"), or None.

    autoglm_site.languages.language_supported under its knowledge name. An unsupported code
    gives None (it used to come back folded, e.g. "pt-pt", and then be indexed as the site
    default); callers detect the language or reject the record instead.
    """
    return language_supported(code)


# Scripts that decide the language on their own once they hold half of the letters, in the
# order they are tried; kana anywhere decides for Japanese before them.
_DECISIVE_SCRIPTS = ("hangul", "han", "arabic", "hebrew", "cyrillic")


def _get_identifier() -> Any:
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                from py3langid import langid

                families = sorted({code.split("-")[0] for code, _name in settings.LANGUAGES})
                _identifier = langid._load_identifier(norm_probs=True, langs=families)
    return _identifier


def _chinese_variant(text: str) -> str:
    simplified = sum(ch in _SIMPLIFIED for ch in text)
    traditional = sum(ch in _TRADITIONAL for ch in text)
    return "zh-hant" if traditional > simplified else "zh-hans"


def detect_language(text: str, *, default: str | None = None) -> str:
    """The language of TEXT as a Django language code; DEFAULT (else LANGUAGE_CODE) if unsure.

    Scripts decide where they are unambiguous (autoglm_site.languages: kana: Japanese; half
    the letters Hangul: Korean, Han: Chinese, Arabic, Hebrew, Cyrillic: Russian); otherwise
    py3langid's model, restricted to the site's languages, decides. Nothing is downloaded: the
    model ships inside the package.
    """
    fallback = default or settings.LANGUAGE_CODE
    letters = letter_count(text)
    if letters == 0:
        return fallback
    counts = script_counts(text)
    if counts["kana"]:
        return "ja"
    for script in _DECISIVE_SCRIPTS:
        if counts[script] * 2 < letters:
            continue
        if script == "han":
            return _chinese_variant(text)
        languages = script_languages(script)
        if len(languages) == 1:
            return languages[0]
    language, probability = _get_identifier().classify(text)
    if probability < _MIN_PROBABILITY:
        return fallback  # too short to tell ("refund"): the site's language is the best guess
    return normalize_language(str(language)) or fallback
