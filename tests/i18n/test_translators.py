"""Translators edit the catalogues in the browser (Rosetta) and can do nothing else."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from autoglm_site.translators import TRANSLATORS_GROUP

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
