"""The product's one language table: tag aliases, supported codes, scripts and direction."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import regex
from django.conf import settings
from django.utils import translation

# Tags (folded: lower case, "-" not "_") that stand for one of the product's codes but that the
# general rule below (drop subtags until a supported code is left) would map wrongly or not at
# all. Chat negotiation, knowledge indexing and the widget (served by /chat/config) all use it.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "zh": "zh-hans",
        "zh-cn": "zh-hans",
        "zh-sg": "zh-hans",
        "zh-my": "zh-hans",
        "zh-tw": "zh-hant",
        "zh-hk": "zh-hant",
        "zh-mo": "zh-hant",
        "pt": "pt-br",
        "pt-pt": "pt-br",
        "iw": "he",  # the code Hebrew had before 1989; old Java and Android still send it
    }
)
_MAX_TAG = 35  # longer than any real tag; caps the work a hostile header can ask for


def _fold(code: str) -> str:
    return code.strip().replace("_", "-").lower()


def _candidates(tag: str) -> list[str]:
    """The tags to look up for TAG, most specific first.

    Its prefixes (zh-hant-tw, zh-hant), then the language with each later subtag on its own, so
    a script or region that is not next to the language still counts (zh-yue-hk -> zh-hk),
    then the language alone. The widget's supported() walks the same order.
    """
    parts = tag.split("-")
    tries = ["-".join(parts[:n]) for n in range(len(parts), 1, -1)]
    tries += [f"{parts[0]}-{part}" for part in parts[1:]]
    tries.append(parts[0])
    return list(dict.fromkeys(tries))


def language_supported(code: str | None) -> str | None:
    """The settings.LANGUAGES code for a tag like zh-MO, pt-PT, es-MX or ar_EG; None if none.

    Aliases first, then the tag with fewer subtags, then (as Django's own lookup does) the
    first supported regional variant of the tag's language.
    """
    if not code:
        return None
    tag = _fold(code)
    if not tag or len(tag) > _MAX_TAG:
        return None
    supported = [language for language, _name in settings.LANGUAGES]
    for candidate in _candidates(tag):
        for language in (ALIASES.get(candidate), candidate):
            if language in supported:
                return language
    primary = tag.split("-")[0]
    return next((language for language in supported if language.startswith(f"{primary}-")), None)


def language_bidi(code: str) -> bool:
    """Whether CODE (a settings.LANGUAGES code) is written right to left."""
    return bool(translation.get_language_info(code)["bidi"])


# --- Scripts ---------------------------------------------------------------------------------
# The scripts the interface languages are written in, in the order ties are broken (the rarer
# script first: a message with as many kana as Latin letters is Japanese, not English).
SCRIPTS: Mapping[str, regex.Pattern[str]] = MappingProxyType(
    {
        "kana": regex.compile(r"[\p{Hiragana}\p{Katakana}]"),
        "hangul": regex.compile(r"\p{Hangul}"),
        "arabic": regex.compile(r"\p{Arabic}"),
        "hebrew": regex.compile(r"\p{Hebrew}"),
        "cyrillic": regex.compile(r"\p{Cyrillic}"),
        "han": regex.compile(r"\p{Han}"),
        "latin": regex.compile(r"\p{Latin}"),
    }
)
# The scripts each language is written in (Japanese mixes kanji and kana).
LANGUAGE_SCRIPTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "en": ("latin",),
        "es": ("latin",),
        "de": ("latin",),
        "fr": ("latin",),
        "pt-br": ("latin",),
        "zh-hans": ("han",),
        "zh-hant": ("han",),
        "ja": ("han", "kana"),
        "ko": ("hangul",),
        "ar": ("arabic",),
        "he": ("hebrew",),
        "ru": ("cyrillic",),
    }
)
_LETTER = regex.compile(r"\p{L}")


def script_languages(script: str) -> tuple[str, ...]:
    """The settings.LANGUAGES codes written in SCRIPT, in settings order."""
    return tuple(
        code for code, _name in settings.LANGUAGES if script in LANGUAGE_SCRIPTS.get(code, ())
    )


def script_counts(text: str) -> dict[str, int]:
    """How many of TEXT's characters are in each of SCRIPTS."""
    return {script: len(pattern.findall(text)) for script, pattern in SCRIPTS.items()}


def letter_count(text: str) -> int:
    return len(_LETTER.findall(text))


def dominant_script(text: str) -> str | None:
    """The script most of TEXT's letters are written in; kanji with any kana is "kana" (Japanese).

    None when TEXT has no letter of SCRIPTS (digits, emoji, a URL's punctuation).
    """
    counts = script_counts(text)
    best = max(counts, key=lambda script: counts[script])  # the first of SCRIPTS on a tie
    if counts[best] == 0:
        return None
    if best == "han" and counts["kana"]:
        return "kana"
    return best
