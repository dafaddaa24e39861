"""The widget maps browser language tags with the server's table (/chat/config), in Chromium."""

from __future__ import annotations

from typing import Any

import pytest

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
