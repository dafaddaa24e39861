"""Offline language detection: script rules first, then py3langid's bundled model."""

from __future__ import annotations

import threading
from typing import Any

import regex
from django.conf import settings

_lock = threading.Lock()
_identifier: Any = None

_KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_HANGUL = regex.compile(r"\p{Hangul}")
_HAN = regex.compile(r"\p{Han}")
_ARABIC = regex.compile(r"\p{Arabic}")
_HEBREW = regex.compile(r"\p{Hebrew}")
_LETTER = regex.compile(r"\p{L}")
# Common characters written differently in Simplified and Traditional Chinese.
_SIMPLIFIED = set("们这个说时么会来为对没还过码设户账号务问题请费储云换让发与开关实点后网页终删邮")
_TRADITIONAL = set("們這個說時麼會來為對沒還過碼設戶帳號務問題請費儲雲換讓發與開關實點後網頁終刪郵")
_TRADITIONAL -= _SIMPLIFIED
_MIN_PROBABILITY = 0.5


def normalize_language(code: str | None) -> str | None:
    """A Django language code for CODE ("zh-CN" -> "zh-hans", "pt" -> "pt-br"), or None."""
    if not code:
        return None
    code = code.strip().lower().replace("_", "-")
    aliases = {
        "zh": "zh-hans",
        "zh-cn": "zh-hans",
        "zh-sg": "zh-hans",
        "zh-tw": "zh-hant",
        "zh-hk": "zh-hant",
        "pt": "pt-br",
        "iw": "he",
    }
    code = aliases.get(code, code)
    known = {lang for lang, _name in settings.LANGUAGES}
    if code in known:
        return code
    base = code.split("-")[0]
    return base if base in known else code


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

    Scripts decide where they are unambiguous (kana: Japanese, Hangul: Korean, Han alone:
    Chinese, Arabic, Hebrew); otherwise py3langid's model, restricted to the site's languages,
    decides. Nothing is downloaded: the model ships inside the package.
    """
    fallback = default or settings.LANGUAGE_CODE
    letters = len(_LETTER.findall(text))
    if letters == 0:
        return fallback
    if _KANA.search(text):
        return "ja"
    if len(_HANGUL.findall(text)) * 2 >= letters:
        return "ko"
    if len(_HAN.findall(text)) * 2 >= letters:
        return _chinese_variant(text)
    if len(_ARABIC.findall(text)) * 2 >= letters:
        return "ar"
    if len(_HEBREW.findall(text)) * 2 >= letters:
        return "he"
    language, probability = _get_identifier().classify(text)
    if probability < _MIN_PROBABILITY:
        return fallback  # too short to tell ("refund"): the site's language is the best guess
    return normalize_language(str(language)) or fallback
