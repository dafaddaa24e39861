"""HTTP language negotiation: choice cookie > URL prefix > Accept-Language > default; RTL pages."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import formats, translation

from tests.i18n.conftest import catalogue_translation

pytestmark = pytest.mark.django_db

_HTML_TAG = re.compile(r"<html\b[^>]*>")


def _html_tag(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.status_code
    match = _HTML_TAG.search(response.content.decode())
    assert match, "no <html> tag"
    return match.group(0)


def _page_language(client: Client, path: str = "/", **headers: str) -> str:
    response = client.get(path, headers=headers)
    tag = _html_tag(response)
    lang = re.search(r'lang="([^"]+)"', tag)
    assert lang, tag
    assert response["Content-Language"] == lang.group(1)
    return lang.group(1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr", "fr"),
        ("de-DE,de;q=0.9,en;q=0.5", "de"),
        ("fr;q=0.3, ja;q=0.8, ko;q=0.5", "ja"),  # quality values, not order
        ("zh-CN,zh;q=0.9", "zh-hans"),
        ("zh-SG", "zh-hans"),
        ("zh-TW", "zh-hant"),
        ("zh-HK", "zh-hant"),
        ("pt", "pt-br"),
        ("pt-PT", "pt-br"),
        ("pt-BR", "pt-br"),
        ("es-MX", "es"),
        ("ar-EG", "ar"),
        ("he-IL", "he"),
        ("xx-YY, tlh", "en"),  # unknown: the default
        ("", "en"),
        ("*", "en"),
    ],
)
def test_accept_language_with_quality_and_regional_fallbacks(header: str, expected: str) -> None:
    assert _page_language(Client(), "/", **{"Accept-Language": header}) == expected


def test_unknown_accept_language_falls_back_to_language_code(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LANGUAGE_CODE = "es"
    assert _page_language(Client(), "/", **{"Accept-Language": "xx"}) == "es"


@pytest.mark.parametrize("code", [code for code, _name in settings.LANGUAGES])
def test_url_prefix_beats_accept_language(code: str) -> None:
    other = "ko" if code != "ko" else "fr"
    assert _page_language(Client(), f"/{code}/", **{"Accept-Language": other}) == code


def test_choice_cookie_beats_accept_language() -> None:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ja"
    assert _page_language(client, "/", **{"Accept-Language": "fr"}) == "ja"


def test_choice_cookie_beats_url_prefix_by_redirecting_to_the_chosen_language() -> None:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    response = client.get("/de/", headers={"Accept-Language": "de"})
    assert response.status_code == 302
    assert response["Location"] == "/fr/"
    assert "Cookie" in response["Vary"]
    assert _page_language(client, response["Location"]) == "fr"


def test_choice_cookie_with_a_regional_tag_is_mapped() -> None:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-TW"
    assert _page_language(client, "/", **{"Accept-Language": "en"}) == "zh-hant"


def test_unsupported_choice_cookie_is_ignored() -> None:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "xx"
    assert _page_language(client, "/", **{"Accept-Language": "ru"}) == "ru"
    assert _page_language(client, "/ko/", **{"Accept-Language": "ru"}) == "ko"


def test_set_language_view_stores_the_choice_and_it_wins() -> None:
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "he", "next": "/fr/"}, follow=True)
    # Back to the page the visitor was on, now in the language they chose.
    assert response.redirect_chain[-1] == ("/he/", 302)
    assert 'lang="he"' in _html_tag(response)
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "he"
    assert _page_language(client, "/", **{"Accept-Language": "fr"}) == "he"
    assert _page_language(client, "/he/", **{"Accept-Language": "fr"}) == "he"


def test_negotiated_page_varies_on_accept_language_and_cookie() -> None:
    response = Client().get("/", headers={"Accept-Language": "fr"})
    vary = {part.strip() for part in response["Vary"].split(",")}
    assert {"Accept-Language", "Cookie"} <= vary


def test_admin_login_page_follows_the_choice_cookie() -> None:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ar"
    tag = _html_tag(client.get("/admin/login/", headers={"Accept-Language": "en"}))
    assert 'lang="ar"' in tag and 'dir="rtl"' in tag


@pytest.mark.parametrize("code", ["ar", "he"])
def test_right_to_left_pages_set_dir_and_lang(code: str) -> None:
    tag = _html_tag(Client().get(f"/{code}/"))
    assert f'lang="{code}"' in tag
    assert 'dir="rtl"' in tag


@pytest.mark.parametrize("code", ["en", "fr", "zh-hans", "ja", "ru"])
def test_left_to_right_pages_set_dir_ltr(code: str) -> None:
    tag = _html_tag(Client().get(f"/{code}/"))
    assert f'lang="{code}"' in tag
    assert 'dir="ltr"' in tag


def test_demo_page_is_translated(compiled_catalogues: None) -> None:
    expected = catalogue_translation("ar", "Resetting your password")
    response = Client().get("/ar/")
    assert expected in response.content.decode()


_PHYSICAL_CSS = re.compile(
    r"(?:margin|padding|border)-(?:left|right)\b|(?<![-\w])(?:left|right)\s*:|"
    r"text-align\s*:\s*(?:left|right)|float\s*:\s*(?:left|right)"
)


def test_templates_use_logical_css_properties() -> None:
    """Right-to-left pages mirror only if the CSS says start/end, not left/right."""
    offenders = []
    base = Path(settings.BASE_DIR)
    folders = [base / "templates", base / "static", base / "chat", base / "knowledge"]
    templates = sorted({path for folder in folders for path in folder.rglob("*.html")})
    assert templates
    for template in templates:
        for number, line in enumerate(template.read_text(encoding="utf-8").splitlines(), 1):
            if _PHYSICAL_CSS.search(line):
                offenders.append(f"{template.name}:{number}: {line.strip()}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("de", "2. März 2025"),
        ("fr", "2 mars 2025"),
        ("ru", "2 марта 2025 г."),
        ("ja", "2025年3月2日"),
    ],
)
def test_dates_are_formatted_for_the_locale(code: str, expected: str) -> None:
    with translation.override(code):
        assert formats.date_format(date(2025, 3, 2)) == expected


@pytest.mark.parametrize(("code", "expected"), [("de", "1.234,5"), ("fr", "1\xa0234,5")])
def test_numbers_are_formatted_for_the_locale(code: str, expected: str) -> None:
    with translation.override(code):
        assert formats.number_format(1234.5, decimal_pos=1, use_l10n=True, force_grouping=True) == (
            expected
        )


def test_language_switcher_posts_the_choice_to_set_language(rf) -> None:  # type: ignore[no-untyped-def]
    from django.template.loader import render_to_string

    request = rf.get("/fr/")
    with translation.override("fr"):
        html = render_to_string("i18n/language_switcher.html", request=request)
    assert 'action="/i18n/setlang/"' in html
    assert 'name="next" type="hidden" value="/fr/"' in html
    assert '<option value="fr" lang="fr" dir="ltr" selected>français</option>' in html
    assert '<option value="ar" lang="ar" dir="rtl">العربيّة</option>' in html
    assert html.count("<option ") == len(settings.LANGUAGES)
