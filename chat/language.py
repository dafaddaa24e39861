"""Choosing a supported interface language from what a visitor or their browser asks for."""

from __future__ import annotations

import regex
from django.conf import settings
from django.utils.translation import get_supported_language_variant
from django.utils.translation.trans_real import parse_accept_lang_header

# Regional tags Django's own variant lookup would not map onto our codes.
_ALIASES = {
    "zh": "zh-hans",
    "zh-cn": "zh-hans",
    "zh-sg": "zh-hans",
    "zh-my": "zh-hans",
    "zh-hans-cn": "zh-hans",
    "zh-tw": "zh-hant",
    "zh-hk": "zh-hant",
    "zh-mo": "zh-hant",
    "zh-hant-tw": "zh-hant",
    "pt": "pt-br",
    "pt-pt": "pt-br",
}


def language_supported(code: str | None) -> str | None:
    """The LANGUAGES code for a tag like zh-CN, pt, es-MX or ar_EG; None if unsupported."""
    if not code:
        return None
    tag = code.strip().replace("_", "-").lower()
    if not tag or len(tag) > 35:
        return None
    tag = _ALIASES.get(tag, tag)
    try:
        return get_supported_language_variant(tag)
    except LookupError:
        return None


def language_negotiate(*, requested: str | None = None, accept_language: str = "") -> str:
    """Explicit request first, then Accept-Language by quality, then the site default."""
    chosen = language_supported(requested)
    if chosen:
        return chosen
    for tag, _quality in parse_accept_lang_header(accept_language[:1000]):
        if tag == "*":
            continue
        chosen = language_supported(tag)
        if chosen:
            return chosen
    return str(settings.LANGUAGE_CODE)


# --- Reply language ---------------------------------------------------------------------------
# Scripts that only one of the interface languages is written in: even a one-word message in
# them says which language the visitor writes.
_SCRIPT_LANGUAGES = (
    (regex.compile(r"[\p{Hiragana}\p{Katakana}]"), ("ja",)),
    (regex.compile(r"\p{Hangul}"), ("ko",)),
    (regex.compile(r"\p{Arabic}"), ("ar",)),
    (regex.compile(r"\p{Hebrew}"), ("he",)),
    (regex.compile(r"\p{Cyrillic}"), ("ru",)),
    (regex.compile(r"\p{Han}"), ("zh-hans", "zh-hant", "ja")),
    (regex.compile(r"\p{Latin}"), ("en", "es", "de", "fr", "pt-br")),
)
_CHINESE = ("zh-hans", "zh-hant")
_WORD = regex.compile(r"[\p{L}\p{M}]+")
_IDEOGRAPH = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]")
# Below these sizes a statistical guess is a coin toss ("merci beaucoup", "thank you"): the
# conversation's language is the better answer when the script allows it.
_MIN_WORDS = 3
_MIN_IDEOGRAPHS = 4


def _script_candidates(text: str) -> tuple[str, ...]:
    """The languages whose script most of TEXT's letters are written in."""
    best: tuple[str, ...] = ()
    best_count = 0
    for pattern, languages in _SCRIPT_LANGUAGES:
        count = len(pattern.findall(text))
        if count > best_count:
            best, best_count = languages, count
    if best == _SCRIPT_LANGUAGES[-2][1] and _SCRIPT_LANGUAGES[0][0].search(text):
        return ("ja",)  # kanji with kana is Japanese
    return best


def _chinese_script(text: str) -> str | None:
    """zh-hans or zh-hant when TEXT has characters of only one of the two; None if it does not.

    GB2312 holds Simplified characters only and Big5 Traditional ones only, so the characters
    one can encode and the other cannot tell the two apart without a word list.
    """
    simplified = traditional = 0
    for char in set(_IDEOGRAPH.findall(text)):
        in_gb = _encodes(char, "gb2312")
        in_big5 = _encodes(char, "big5")
        simplified += in_gb and not in_big5
        traditional += in_big5 and not in_gb
    if simplified == traditional:
        return None
    return "zh-hans" if simplified > traditional else "zh-hant"


def _encodes(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _is_short(text: str) -> bool:
    ideographs = len(_IDEOGRAPH.findall(text))
    if ideographs:
        return ideographs < _MIN_IDEOGRAPHS
    return len(_WORD.findall(text)) < _MIN_WORDS


def reply_language(*, text: str, conversation_language: str) -> str:
    """The language to answer TEXT in: the one the visitor wrote it in, detected per message.

    Detection (knowledge.text.detect: script rules, then py3langid's bundled model) decides for
    messages long enough to tell; a short message ("merci beaucoup", "ok") keeps the
    conversation's language unless its script rules that language out ("спасибо" in an English
    conversation is Russian). The answer is always one of settings.LANGUAGES.
    """
    from knowledge.text.detect import detect_language

    current = language_supported(conversation_language) or str(settings.LANGUAGE_CODE)
    candidates = _script_candidates(text)
    if not candidates:
        return current  # digits, emoji, a URL: nothing to go on
    if _is_short(text):
        if current in candidates:
            if current in _CHINESE:
                return _chinese_script(text) or current
            return current
        if len(candidates) == 1:
            return candidates[0]
    detected = language_supported(detect_language(text, default=current)) or current
    if detected in _CHINESE:
        # Most Chinese characters are shared by both scripts: keep a Chinese conversation's
        # script unless the message shows the other one.
        script = _chinese_script(text)
        if script:
            return script
        return current if current in _CHINESE else detected
    return detected
