"""The one language table (autoglm_site.languages): aliases, supported codes, scripts, direction."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from autoglm_site.languages import (
    ALIASES,
    LANGUAGE_SCRIPTS,
    dominant_script,
    language_bidi,
    language_supported,
    script_languages,
)
from chat import language as chat_language
from knowledge.text import normalize_language

CODES = [code for code, _name in settings.LANGUAGES]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh", "zh-hans"),
        ("zh-CN", "zh-hans"),
        ("zh_SG", "zh-hans"),
        ("zh-my", "zh-hans"),
        ("zh-Hans", "zh-hans"),
        ("zh-Hans-CN", "zh-hans"),
        ("zh-Hans-HK", "zh-hans"),  # the script subtag wins over the region
        ("zh-TW", "zh-hant"),
        ("zh-HK", "zh-hant"),
        ("zh-MO", "zh-hant"),
        ("zh_mo", "zh-hant"),
        ("zh-Hant-TW", "zh-hant"),
        ("zh-Hant-MO", "zh-hant"),
        ("zh-yue-HK", "zh-hant"),  # a region after an extended language subtag still counts
        ("pt", "pt-br"),
        ("pt-PT", "pt-br"),
        ("pt_BR", "pt-br"),
        ("pt-AO", "pt-br"),
        ("iw", "he"),
        ("iw-IL", "he"),
        ("he-IL", "he"),
        ("es-MX", "es"),
        ("es-419", "es"),
        ("ar-EG", "ar"),
        ("ar_eg", "ar"),
        ("fr-CA", "fr"),
        ("de-CH-1996", "de"),
        ("EN-us", "en"),
        (" ja-JP ", "ja"),
        ("ko-KR", "ko"),
        ("ru-UA", "ru"),
    ],
)
def test_regional_and_legacy_tags_map_onto_a_supported_code(tag: str, expected: str) -> None:
    assert language_supported(tag) == expected


@pytest.mark.parametrize("tag", [None, "", "   ", "*", "xx", "fa-IR", "x-klingon", "e" * 40])
def test_unsupported_tags_give_none(tag: str | None) -> None:
    assert language_supported(tag) is None


def test_every_alias_points_at_a_supported_language() -> None:
    assert set(ALIASES.values()) <= set(CODES)
    for tag in ALIASES:
        assert tag == tag.lower() and "_" not in tag  # the table holds folded tags only


@pytest.mark.parametrize("tag", sorted(ALIASES))
def test_chat_and_knowledge_agree_on_every_alias(tag: str) -> None:
    expected = ALIASES[tag]
    spellings = {tag, tag.upper(), tag.replace("-", "_"), f"{tag}-x-private"}
    for spelling in spellings:
        assert chat_language.language_supported(spelling) == expected, spelling
        assert normalize_language(spelling) == expected, spelling
    for header in (tag, f"{tag.upper()};q=0.8, xx;q=0.9"):  # "_" is not valid in the header
        assert chat_language.language_negotiate(accept_language=header) == expected, header


@pytest.mark.parametrize("code", CODES)
def test_chat_and_knowledge_agree_on_every_supported_code(code: str) -> None:
    assert chat_language.language_supported(code) == code
    assert normalize_language(code.upper()) == code


def test_an_alias_to_a_language_the_site_lacks_falls_back_to_the_language() -> None:
    languages = [(code, name) for code, name in settings.LANGUAGES if code != "zh-hant"]
    with override_settings(LANGUAGES=languages):
        assert language_supported("zh-TW") == "zh-hans"
        assert language_supported("zh-hant") == "zh-hans"


def test_a_language_served_only_as_a_regional_variant_is_found_from_its_bare_tag() -> None:
    with override_settings(LANGUAGES=[("en", "English"), ("es-419", "Latin American Spanish")]):
        assert language_supported("es") == "es-419"
        assert language_supported("es-ES") == "es-419"


def test_right_to_left_languages_are_exactly_arabic_and_hebrew() -> None:
    assert [code for code in CODES if language_bidi(code)] == ["ar", "he"]


def test_every_interface_language_has_its_scripts() -> None:
    assert set(CODES) <= set(LANGUAGE_SCRIPTS)
    assert script_languages("han") == ("zh-hans", "zh-hant", "ja")
    assert script_languages("latin") == ("en", "es", "de", "fr", "pt-br")
    assert script_languages("cyrillic") == ("ru",)


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("Thank you", "latin"),
        ("спасибо", "cyrillic"),
        ("谢谢", "han"),
        ("ありがとう", "kana"),
        ("日本語で書きます", "kana"),  # kanji with kana is Japanese
        ("감사합니다", "hangul"),
        ("شكرا", "arabic"),
        ("תודה", "hebrew"),
        ("在 Northwind 云盘里怎么分享文件夹", "han"),
        ("Northwind 的存储", "latin"),  # more Latin letters than ideographs
        ("1234 !! 🙂", None),
    ],
)
def test_the_dominant_script_of_a_message(text: str, script: str | None) -> None:
    assert dominant_script(text) == script
