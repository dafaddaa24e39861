"""The widget's configuration endpoint serves the product's language table."""

from __future__ import annotations

from django.conf import settings
from django.test import Client

from autoglm_site.languages import ALIASES, language_bidi


def test_config_serves_the_alias_table_and_each_languages_direction() -> None:
    response = Client().get("/chat/config")

    assert response.status_code == 200
    config = response.json()
    assert config["aliases"] == dict(ALIASES)
    assert config["aliases"]["zh-mo"] == "zh-hant"
    assert config["aliases"]["pt-pt"] == "pt-br"
    assert [language["code"] for language in config["languages"]] == [
        code for code, _name in settings.LANGUAGES
    ]
    bidi = {language["code"]: language["bidi"] for language in config["languages"]}
    assert bidi == {code: language_bidi(code) for code, _name in settings.LANGUAGES}
    assert bidi["ar"] is True and bidi["he"] is True and bidi["en"] is False
