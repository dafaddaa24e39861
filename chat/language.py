"""Choosing a supported interface language from what a visitor or their browser asks for."""

from __future__ import annotations

import regex
from django.conf import settings
from django.utils.translation.trans_real import parse_accept_lang_header

from autoglm_site.languages import dominant_script, language_supported, script_languages

__all__ = ["language_negotiate", "language_supported", "reply_language"]


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
# The script of a message narrows the languages it can be in (autoglm_site.languages): even a
# one-word message in a script only one interface language uses says which language it is.
_CHINESE = ("zh-hans", "zh-hant")
_WORD = regex.compile(r"[\p{L}\p{M}]+")
_IDEOGRAPH = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]")
# Below these sizes a statistical guess is a coin toss ("merci beaucoup", "thank you"): the
# conversation's language is the better answer when the script allows it.
_MIN_WORDS = 3
_MIN_IDEOGRAPHS = 4


def _script_candidates(text: str) -> tuple[str, ...]:
    """The languages whose script most of TEXT's letters are written in."""
    script = dominant_script(text)
    return script_languages(script) if script else ()


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


def message_is_short(text: str) -> bool:
    """Fewer than three words (or four ideographs): a greeting, a thanks, a yes."""
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
    if message_is_short(text):
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
