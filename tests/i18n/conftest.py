"""Fixtures for the interface-language tests: compiled catalogues, loaded fresh."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils.translation import to_locale

from autoglm_site.catalogues import catalogues_reload

_ARABIC = re.compile(r"[\u0600-\u06ff]")


@pytest.fixture(scope="session")
def compiled_catalogues() -> Iterator[None]:
    """The .mo files built from the committed .po files (as `make run` and `make test` do)."""
    call_command(
        "compilemessages", ignore_patterns=[".*", "node_modules", "tests", "bench"], verbosity=0
    )
    catalogues_reload()  # a language activated before compiling cached an empty catalogue
    yield
    catalogues_reload()


def catalogue_translation(language: str, msgid: str, domain: str = "django") -> str:
    """The committed translation of MSGID; fails the test when there is none.

    Tests compare what the product sends with this, so an untranslated string (which gettext
    would silently show in English) cannot pass.
    """
    locale_dir = Path(settings.LOCALE_PATHS[0])
    path = locale_dir / to_locale(language) / "LC_MESSAGES" / f"{domain}.po"
    catalogue = polib.pofile(str(path))
    entry = catalogue.find(msgid)
    assert entry is not None, f"{msgid!r} is not in {path}"
    assert entry.msgstr and not entry.fuzzy, f"{msgid!r} is not translated in {path}"
    assert entry.msgstr != msgid
    return str(entry.msgstr)


def assert_arabic(text: str) -> None:
    letters = [char for char in text if char.isalpha()]
    arabic = [char for char in letters if _ARABIC.match(char)]
    assert letters and len(arabic) * 2 > len(letters), f"not Arabic: {text!r}"
