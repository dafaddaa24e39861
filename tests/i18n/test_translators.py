"""Translators edit the catalogues in the browser (Rosetta), can do nothing else, and cannot save
markup or changed placeholders."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import resolve
from django.utils import translation
from django.utils.translation import to_locale

from autoglm_site.catalogues import translation_problems
from autoglm_site.translators import (
    TRANSLATORS_GROUP,
    CheckedTranslationFormView,
    translation_refusal,
)

pytestmark = pytest.mark.django_db

MSGID = "Resetting your password"


@pytest.fixture
def translator() -> User:
    user = User.objects.create_user("translator", "t@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=TRANSLATORS_GROUP))  # made by the data migration
    return user


@pytest.fixture
def translator_client(translator: User) -> Client:
    client = Client()
    client.force_login(translator)
    return client


@pytest.fixture
def locale_copy(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    """The catalogues copied to a temporary folder, which Rosetta and gettext then use."""
    real = Path(settings.LOCALE_PATHS[0])
    copy = tmp_path / "locale"
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("*.mo"))
    for po in copy.glob("*/LC_MESSAGES/*.po"):
        polib.pofile(str(po)).save_as_mofile(str(po.with_suffix(".mo")))
    settings.LOCALE_PATHS = [copy]
    settings.ROSETTA_EXCLUDED_PATHS = [str(real)]
    settings.LOCALE_RELOAD_SECONDS = 1e-9
    return copy


def test_translators_group_has_no_model_permissions() -> None:
    group = Group.objects.get(name=TRANSLATORS_GROUP)
    assert not group.permissions.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/chat/conversation/",
        "/admin/chat/message/",
        "/admin/chat/visitor/",
        "/admin/chat/glossaryterm/",
        "/admin/knowledge/article/",
        "/admin/knowledge/article/add/",
        "/admin/auth/user/",
        "/admin/auth/group/",
    ],
)
def test_translator_cannot_open_anything_in_the_admin(translator_client: Client, path: str) -> None:
    assert translator_client.get(path).status_code == 403


def test_translator_admin_index_offers_only_the_translations(translator_client: Client) -> None:
    page = translator_client.get("/admin/").content.decode()
    assert "/rosetta/files/project/" in page
    assert "/admin/chat/" not in page and "/admin/knowledge/" not in page


def test_translator_can_open_the_translation_pages(
    translator_client: Client, locale_copy: Path
) -> None:
    listing = translator_client.get("/rosetta/files/project/")
    assert listing.status_code == 200
    page = listing.content.decode()
    for code, _name in settings.LANGUAGES:
        if code != "en":
            assert f"/rosetta/files/project/{code}/" in page, code
    assert translator_client.get("/rosetta/files/project/fr/0/").status_code == 200


def test_only_interface_languages_are_offered(translator_client: Client, locale_copy: Path) -> None:
    italian = locale_copy / "it" / "LC_MESSAGES"
    italian.mkdir(parents=True)
    shutil.copy(locale_copy / "fr" / "LC_MESSAGES" / "django.po", italian / "django.po")
    assert (
        "/rosetta/files/project/it/"
        not in translator_client.get("/rosetta/files/project/").content.decode()
    )
    assert translator_client.get("/rosetta/files/project/it/0/").status_code == 404


def test_translator_cannot_edit_django_or_third_party_catalogues(
    translator_client: Client,
) -> None:
    for po_filter in ("all", "django", "third-party"):
        assert translator_client.get(f"/rosetta/files/{po_filter}/").status_code == 404
        assert translator_client.get(f"/rosetta/files/{po_filter}/fr/0/").status_code == 404


@pytest.mark.parametrize(
    "path", ["/rosetta/", "/rosetta/files/project/", "/rosetta/files/project/fr/0/"]
)
def test_visitor_cannot_reach_the_translation_pages(path: str) -> None:
    response = Client().get(path, follow=True)
    assert response.redirect_chain, "no redirect to the login page"
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert "rosetta" not in response.templates[0].name


def test_staff_outside_the_group_cannot_reach_the_translation_pages() -> None:
    agent = User.objects.create_user("agent", "a@example.com", "pw", is_staff=True)
    agent.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    client = Client()
    client.force_login(agent)
    response = client.get("/rosetta/files/project/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_inactive_translator_is_refused(translator: User) -> None:
    client = Client()
    client.force_login(translator)
    translator.is_active = False
    translator.save()
    assert client.get("/rosetta/files/project/").status_code == 302


def test_saved_translation_takes_effect_without_a_restart(
    translator_client: Client, locale_copy: Path
) -> None:
    po_path = locale_copy / "fr" / "LC_MESSAGES" / "django.po"
    entry = polib.pofile(str(po_path)).find(MSGID)
    assert entry is not None
    before = Client().get("/fr/").content.decode()
    edited = "Mot de passe oublié : la marche à suivre"
    assert edited not in before

    files = sorted(
        str(path) for path in (locale_copy / "fr" / "LC_MESSAGES").glob("*.po")
    )  # Rosetta numbers a language's catalogues in this order
    index = files.index(str(po_path))
    digest = hashlib.md5(  # noqa: S324 - Rosetta's own field naming
        (entry.msgid + entry.msgstr + (entry.msgctxt or "")).encode()
    ).hexdigest()
    response = translator_client.post(
        f"/rosetta/files/project/fr/{index}/", {f"m_{digest}": edited}
    )
    assert response.status_code == 302

    assert polib.pofile(str(po_path)).find(MSGID).msgstr == edited
    assert po_path.with_suffix(".mo").stat().st_mtime >= po_path.stat().st_mtime - 1
    assert edited in Client().get("/fr/").content.decode()


def _rosetta_field(locale_dir: Path, language: str, domain: str, msgid: str) -> tuple[str, str]:
    """The URL of the Rosetta page with MSGID and its form field's name (without a form index).

    Rosetta numbers a language's catalogues in file name order and names a field after the
    md5 of the entry's msgid, msgstr and context."""
    po_path = locale_dir / to_locale(language) / "LC_MESSAGES" / f"{domain}.po"
    files = sorted(str(path) for path in po_path.parent.glob("*.po"))
    entry = polib.pofile(str(po_path)).find(msgid)
    assert entry is not None, msgid
    digest = hashlib.md5(  # noqa: S324 - Rosetta's own field naming
        (entry.msgid + entry.msgstr + (entry.msgctxt or "")).encode()
    ).hexdigest()
    return f"/rosetta/files/project/{language}/{files.index(str(po_path))}/", f"m_{digest}"


TITLE = "Northwind Cloud — Help Center"
SCRIPT = "Northwind Cloud – Hilfe<script>fetch('/admin/auth/user/add/')</script>"


def test_the_translation_page_is_the_checked_one() -> None:
    match = resolve("/rosetta/files/project/de/0/")
    assert match.func.view_class is CheckedTranslationFormView  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "msgstr",
    [
        SCRIPT,
        '<img src=x onerror="alert(1)">Northwind Cloud',
        "Northwind Cloud &lt;script&gt;",
        'Northwind" onfocus="alert(1)" autofocus="',
    ],
)
def test_a_translation_adding_markup_is_refused(
    translator_client: Client, locale_copy: Path, msgstr: str
) -> None:
    po_path = locale_copy / "de" / "LC_MESSAGES" / "django.po"
    before = po_path.read_bytes(), po_path.with_suffix(".mo").read_bytes()
    url, field = _rosetta_field(locale_copy, "de", "django", TITLE)
    translator_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"

    response = translator_client.post(url + "?query=Northwind", {field: msgstr})

    assert response.status_code == 302
    assert response["Location"] == url + "?query=Northwind"  # the same page, not the next
    assert (po_path.read_bytes(), po_path.with_suffix(".mo").read_bytes()) == before
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    with translation.override("de"):
        refusal = translation_refusal(
            TITLE, translation_problems(polib.POEntry(msgid=TITLE), msgstr=msgstr)[0]
        )
    assert shown == [refusal]
    assert "HTML" in refusal and TITLE in refusal
    assert "<script>" not in Client().get("/de/").content.decode()


def test_a_translation_changing_placeholders_is_refused(
    translator_client: Client, locale_copy: Path
) -> None:
    msgid = "Your message is too long: at most %(limit)d characters are allowed."
    po_path = locale_copy / "fr" / "LC_MESSAGES" / "django.po"
    before = polib.pofile(str(po_path)).find(msgid).msgstr
    url, field = _rosetta_field(locale_copy, "fr", "django", msgid)
    for msgstr in ("Message trop long.", "Au plus %(maximum)d caractères.", "%(limit)d %(x)s"):
        response = translator_client.post(url, {field: msgstr}, follow=True)
        assert polib.pofile(str(po_path)).find(msgid).msgstr == before
        page = response.content.decode()
        assert "was not saved" in page and "placeholders" in page and "limit" in page


def test_a_plural_form_with_markup_is_refused(translator_client: Client, locale_copy: Path) -> None:
    msgid = "%(count)s character left"
    po_path = locale_copy / "de" / "LC_MESSAGES" / "djangojs.po"
    before = polib.pofile(str(po_path)).find(msgid).msgstr_plural
    url, field = _rosetta_field(locale_copy, "de", "djangojs", msgid)
    response = translator_client.post(
        url, {f"{field}_0": "%(count)s Zeichen", f"{field}_1": "<b>%(count)s</b> Zeichen"}
    )
    assert response.status_code == 302
    assert polib.pofile(str(po_path)).find(msgid).msgstr_plural == before


def test_the_safe_translations_of_a_page_are_saved_with_a_refused_one(
    translator_client: Client, locale_copy: Path
) -> None:
    po_path = locale_copy / "de" / "LC_MESSAGES" / "django.po"
    url, title_field = _rosetta_field(locale_copy, "de", "django", TITLE)
    _url, field = _rosetta_field(locale_copy, "de", "django", MSGID)
    edited = "Passwort vergessen: so geht's"
    response = translator_client.post(url, {title_field: SCRIPT, field: edited})
    assert response.status_code == 302 and response["Location"] == url
    catalogue = polib.pofile(str(po_path))
    assert catalogue.find(MSGID).msgstr == edited
    assert "<script>" not in catalogue.find(TITLE).msgstr
    assert edited in Client().get("/de/").content.decode()
