"""The widget maps browser language tags with the server's table (/chat/config), in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polib
import pytest
from django.conf import settings

from autoglm_site.languages import ALIASES, language_bidi, language_supported
from tests.e2e.conftest import ChatServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT_JS = "document.querySelector('autoglm-chat').shadowRoot"
TAGS = sorted(
    {
        *ALIASES,
        *(tag.upper() for tag in ALIASES),
        "zh-Hant-MO",
        "zh-Hans-HK",
        "zh-yue-HK",
        "zh_MO",
        "pt-AO",
        "iw-IL",
        "es-MX",
        "ar-EG",
        "he-IL",
        "fr-CA",
        "fa-IR",
        "xx",
    }
)


def test_browser_zh_mo_opens_in_traditional_chinese(chat_server: ChatServer, new_page: Any) -> None:
    page = new_page(locale="zh-MO")
    page.goto(chat_server.url + "/")
    page.locator("autoglm-chat >> .launch").wait_for()
    assert page.evaluate(f"{ROOT_JS}.querySelector('.w').lang") == "zh-hant"


def test_widget_and_server_map_every_tag_alike(chat_server: ChatServer, new_page: Any) -> None:
    page = new_page(locale="en-US")
    page.goto(chat_server.url + "/")
    page.locator("autoglm-chat >> .launch").wait_for()
    # setLocale answers the language it chose, or the current one for a tag it cannot map.
    chosen = page.evaluate(
        """async (tags) => {
            const out = {};
            for (const tag of tags) {
                await window.AutoGLM.setLocale("en");
                const code = await window.AutoGLM.setLocale(tag);
                const root = document.querySelector('autoglm-chat').shadowRoot.querySelector('.w');
                out[tag] = [code, root.dir];
            }
            return out;
        }""",
        TAGS,
    )
    expected = {}
    for tag in TAGS:
        code = language_supported(tag) or "en"
        expected[tag] = [code, "rtl" if language_bidi(code) else "ltr"]
    assert chosen == expected


def test_plural_forms_follow_the_language_under_our_pages_policy(
    chat_server: ChatServer, new_page: Any
) -> None:
    """The demo page's Content-Security-Policy refuses eval: the widget reads the Plural-Forms
    rule without it, so Russian counts still take their own forms (1, 2-4, 5-20, 21)."""
    path = Path(settings.LOCALE_PATHS[0]) / "ru" / "LC_MESSAGES" / "djangojs.po"
    forms = polib.pofile(str(path)).find("%(count)s character left").msgstr_plural
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    page = new_page(locale="ru-RU")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(chat_server.url + "/")
    page.locator("autoglm-chat >> .launch").click()
    textarea = page.locator("autoglm-chat >> textarea")
    for left, form in ((21, 0), (4, 1), (5, 2)):
        textarea.fill("x" * (limit - left))
        expected = forms[form].replace("%(count)s", str(left))
        page.locator("autoglm-chat >> #cnt", has_text=expected).wait_for()
    assert not [text for text in console if "Content Security Policy" in text]
