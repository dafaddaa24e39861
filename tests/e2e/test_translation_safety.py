"""A translator cannot put a script on our pages: Rosetta refuses it, and should one get into a
compiled catalogue anyway, the Content-Security-Policy keeps it from running (in Chromium)."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polib
import pytest

from tests.e2e.conftest import (
    ROOT,
    ChatServer,
    PartnerSite,
    agent_session,
    free_port,
    server_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TITLE = "Northwind Cloud — Help Center"  # the demo page's <title> and <h1>
HELP_TEXT = "Leave empty to sync only on demand."  # a Source field's help_text in the admin
# What the translator of the finding saved: a script, and an inline handler for good measure.
PAYLOAD = (
    "Northwind Cloud – Hilfe<script>window.pwned = 'script'; alert('pwned')</script>"
    "<img src=\"/static/none.png\" onerror=\"window.pwned = 'handler'; alert('pwned')\">"
)
PWNED_IN_DOM = (
    "[...document.scripts].some(s => s.textContent.includes('pwned'))"
    " && !!document.querySelector('img[onerror]')"
)


@pytest.fixture
def locale_copy(tmp_path: Path) -> Path:
    """The committed catalogues, copied and compiled: what the test server translates with."""
    copy = tmp_path / "locale"
    shutil.copytree(ROOT / "locale", copy, ignore=shutil.ignore_patterns("*.mo"))
    for po in copy.glob("*/LC_MESSAGES/*.po"):
        polib.pofile(str(po)).save_as_mofile(str(po.with_suffix(".mo")))
    return copy


@pytest.fixture
def server(
    transactional_db: None, partner_site: PartnerSite, locale_copy: Path
) -> Iterator[ChatServer]:
    env = {
        **server_env(partner_site),
        "DJANGO_SETTINGS_MODULE": "tests.e2e.locale_copy_settings",
        "AUTOGLM_TEST_LOCALE_DIR": str(locale_copy),
        "LOCALE_RELOAD_SECONDS": "0.2",
    }
    chat_server = ChatServer(env, free_port())
    yield chat_server
    chat_server.kill()


def _signed_in(new_page: Any, server: ChatServer, user: Any, **options: Any) -> Any:
    page = new_page(**options)
    page.context.add_cookies(
        [
            {"name": "sessionid", "value": agent_session(user), "url": server.url},
            {"name": "django_language", "value": "de", "url": server.url},
        ]
    )
    return page


def test_rosetta_refuses_a_script_in_a_translation(
    server: ChatServer, locale_copy: Path, new_page: Any
) -> None:
    from django.contrib.auth.models import Group, User
    from django.utils import translation

    from autoglm_site.catalogues import translation_problems
    from autoglm_site.translators import TRANSLATORS_GROUP, translation_refusal

    # The group comes from a migration, which a transactional test's flush removes.
    group, _created = Group.objects.get_or_create(name=TRANSLATORS_GROUP)
    translator = User.objects.create_user("tina", password="translator-0123", is_staff=True)
    translator.groups.add(group)
    po_path = locale_copy / "de" / "LC_MESSAGES" / "django.po"
    before = po_path.read_bytes(), po_path.with_suffix(".mo").read_bytes()
    entry = polib.pofile(str(po_path)).find(TITLE)
    digest = hashlib.md5(  # noqa: S324 - Rosetta's own field naming
        (entry.msgid + entry.msgstr + (entry.msgctxt or "")).encode()
    ).hexdigest()
    index = sorted(p.name for p in po_path.parent.glob("*.po")).index("django.po")
    url = f"{server.url}/rosetta/files/project/de/{index}/?query=Northwind"

    page = _signed_in(new_page, server, translator)
    page.goto(url)
    page.locator(f'textarea[name="m_{digest}"]').fill(PAYLOAD)
    page.locator('input[name="_next"]').click()

    refusal = page.locator(".messages", has_text="Northwind")
    refusal.wait_for()
    # The translator reads the refusal in their interface language (the cookie says German).
    problems = translation_problems(entry, msgstr=PAYLOAD)
    with translation.override("de"):
        expected = translation_refusal(entry.msgid, problems[0])
    assert expected != translation_refusal(entry.msgid, problems[0])  # it is translated
    assert " ".join(refusal.inner_text().split()) == " ".join(expected.split())
    assert "<script" in refusal.inner_text()
    assert page.url == url  # back on the same page: the entry is still to be fixed
    assert page.locator(f'textarea[name="m_{digest}"]').input_value() == entry.msgstr
    time.sleep(0.5)  # the catalogue is not written late either
    assert (po_path.read_bytes(), po_path.with_suffix(".mo").read_bytes()) == before


def test_a_script_forced_into_a_catalogue_does_not_run(
    server: ChatServer, locale_copy: Path, new_page: Any
) -> None:
    from django.contrib.auth.models import User

    # Bypassing Rosetta: written into the .po and compiled, as a careless merge could.
    po_path = locale_copy / "de" / "LC_MESSAGES" / "django.po"
    catalogue = polib.pofile(str(po_path))
    for msgid in (TITLE, HELP_TEXT):
        catalogue.find(msgid).msgstr = PAYLOAD
    catalogue.save()
    catalogue.save_as_mofile(str(po_path.with_suffix(".mo")))
    admin = User.objects.create_superuser("root", "root@example.com", "admin-password-0123")

    for path in ("/admin/knowledge/source/add/", "/de/"):
        page = _signed_in(new_page, server, admin)
        dialogs: list[str] = []
        console: list[str] = []
        page.on(
            "dialog", lambda dialog, seen=dialogs: (seen.append(dialog.message), dialog.dismiss())
        )
        page.on("console", lambda message, seen=console: seen.append(message.text))
        deadline = time.monotonic() + 15
        while True:  # the server reloads the recompiled catalogue within LOCALE_RELOAD_SECONDS
            page.goto(server.url + path)
            if page.evaluate(PWNED_IN_DOM) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert page.evaluate(PWNED_IN_DOM), f"the payload is not on {path}"
        page.wait_for_load_state("networkidle")  # the image failed to load: onerror was due
        assert page.evaluate("window.pwned") is None, path
        assert dialogs == [], path
        refused = [text for text in console if "Content Security Policy" in text]
        assert any("inline script" in text for text in refused), console
        assert any("inline event handler" in text for text in refused), console

    # The same page without the policy: the payload does run, so the policy is what stopped it.
    exposed = _signed_in(new_page, server, admin, bypass_csp=True)
    exposed.on("dialog", lambda dialog: dialog.dismiss())
    exposed.goto(server.url + "/admin/knowledge/source/add/")
    exposed.wait_for_function("window.pwned !== undefined")
