"""Choosing a supported interface language from what a visitor or their browser asks for."""

from __future__ import annotations

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
