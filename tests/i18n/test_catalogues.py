"""The CI check on the catalogues fails on stale, untranslated, fuzzy or broken entries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings

from autoglm_site.catalogues import (
    catalogue_path,
    catalogues_check,
    catalogues_extract,
    translation_markup_problems,
)

ROOT = Path(settings.BASE_DIR)
TOO_LONG = "Your message is too long: at most %(limit)d characters are allowed."


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's sources and catalogues to plant problems in."""
    copy = tmp_path / "project"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".*", "__pycache__", "*.mo", "node_modules", "test-artifacts", "tests", "bench"
        ),
    )
    return copy


@pytest.fixture
def extracted(project: Path) -> Path:
    """The copy with its catalogues extracted afresh: stale-check tests then see only what
    they plant, not strings being added to the source meanwhile (which
    test_committed_catalogues_pass_the_check covers)."""
    catalogues_extract(project)
    return project


def _edit(path: Path, msgid: str, **changes: object) -> None:
    catalogue = polib.pofile(str(path))
    entry = catalogue.find(msgid)
    assert entry is not None, msgid
    for name, value in changes.items():
        setattr(entry, name, value)
    catalogue.save()


def _french(project: Path, domain: str = "django") -> Path:
    return catalogue_path(project / "locale", "fr", domain)


def test_committed_catalogues_pass_the_check() -> None:
    assert catalogues_check(project_dir=ROOT) == []


def test_the_check_script_exits_non_zero_on_a_problem(project: Path) -> None:
    _edit(_french(project), TOO_LONG, msgstr="Votre message est trop long.")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "check_catalogues.py"),
            "--project",
            str(project),
            "--no-stale",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "limit" in result.stderr


def test_a_planted_stale_string_fails(extracted: Path) -> None:
    project = extracted
    (project / "chat" / "planted.py").write_text(
        "from django.utils.translation import gettext as _\n\n"
        "def planted() -> str:\n"
        '    return _("A planted string nobody extracted")\n',
        encoding="utf-8",
    )
    problems = catalogues_check(project_dir=project)
    stale = [problem for problem in problems if ": stale," in problem]
    assert stale and any("A planted string nobody extracted" in problem for problem in stale)
    # Every language's django.po is stale, and the real catalogues were not touched.
    assert len(stale) == len(settings.LANGUAGES) - 1
    real = polib.pofile(str(_french(ROOT)))
    assert real.find("A planted string nobody extracted") is None


def test_a_string_removed_from_the_source_is_stale_too(extracted: Path) -> None:
    project = extracted
    demo = project / "templates" / "demo.html"
    demo.write_text(
        demo.read_text(encoding="utf-8").replace("Invoices and refunds", "Billing"),
        encoding="utf-8",
    )
    problems = catalogues_check(project_dir=project)
    assert any(": stale," in problem and "Invoices and refunds" in problem for problem in problems)


def test_a_planted_missing_placeholder_fails(project: Path) -> None:
    _edit(_french(project), TOO_LONG, msgstr="Votre message est trop long.")
    problems = catalogues_check(project_dir=project, stale=False)
    french = [problem for problem in problems if "/fr/" in problem or "fr/LC_MESSAGES" in problem]
    assert any(problem.startswith("msgfmt --check") for problem in french), problems
    assert any("placeholders" in problem and "limit" in problem for problem in french)


def test_a_missing_named_placeholder_in_the_widget_catalogue_fails(project: Path) -> None:
    msgid = "%(assistant)s replied: %(text)s"
    _edit(_french(project, "djangojs"), msgid, msgstr="%(assistant)s a répondu.")
    problems = catalogues_check(project_dir=project, stale=False)
    assert any(msgid in problem and "placeholders" in problem for problem in problems), problems


def test_a_plural_form_without_its_count_fails(project: Path) -> None:
    path = _french(project, "djangojs")
    catalogue = polib.pofile(str(path))
    entry = next(entry for entry in catalogue if entry.msgid_plural)
    entry.msgstr_plural = {0: "%(count)s caractère", 1: "trop de caractères"}
    catalogue.save()
    problems = catalogues_check(project_dir=project, stale=False)
    assert any(entry.msgid in problem and "form 1" in problem for problem in problems), problems


def test_untranslated_and_fuzzy_entries_fail(project: Path) -> None:
    _edit(_french(project), "Resetting your password", msgstr="")
    catalogue = polib.pofile(str(_french(project)))
    entry = catalogue.find("Invoices and refunds")
    assert entry is not None
    entry.flags.append("fuzzy")
    catalogue.save()
    problems = catalogues_check(project_dir=project, stale=False)
    assert any("'Resetting your password' is untranslated" in problem for problem in problems)
    assert any("'Invoices and refunds' is fuzzy" in problem for problem in problems)


def test_a_language_without_a_catalogue_fails(project: Path) -> None:
    shutil.rmtree(project / "locale" / "ko")
    problems = catalogues_check(project_dir=project, stale=False)
    assert any("ko/LC_MESSAGES/django.po: missing" in problem for problem in problems)


TITLE = "Northwind Cloud — Help Center"


@pytest.mark.parametrize(
    "msgstr",
    [
        "Northwind Cloud – Hilfe<script>fetch('/admin/auth/user/add/')</script>",
        '<img src=x onerror="alert(1)">Northwind Cloud – Hilfe',
        "<svg/onload=alert(1)>Northwind Cloud",
        "Northwind Cloud &lt;script&gt;",
        'Northwind" onmouseover="alert(1)',
        "javascript:alert(1)",
    ],
)
def test_a_planted_translation_with_markup_fails(project: Path, msgstr: str) -> None:
    _edit(catalogue_path(project / "locale", "de", "django"), TITLE, msgstr=msgstr)
    problems = catalogues_check(project_dir=project, stale=False)
    assert any(
        "de/LC_MESSAGES/django.po" in problem and TITLE in problem and "markup" in problem
        for problem in problems
    ), problems


def test_a_plural_form_with_markup_fails(project: Path) -> None:
    path = _french(project, "djangojs")
    catalogue = polib.pofile(str(path))
    entry = next(entry for entry in catalogue if entry.msgid_plural)
    entry.msgstr_plural = {0: "%(count)s caractère", 1: "<b>%(count)s</b> caractères"}
    catalogue.save()
    problems = catalogues_check(project_dir=project, stale=False)
    assert any(entry.msgid in problem and "form 1 has markup" in problem for problem in problems)


def test_a_renamed_placeholder_fails(project: Path) -> None:
    _edit(_french(project), TOO_LONG, msgstr="Trop long : %(maximum)d caractères au plus.")
    problems = catalogues_check(project_dir=project, stale=False)
    assert any(TOO_LONG in problem and "placeholders" in problem for problem in problems)


@pytest.mark.parametrize(
    ("original", "translation"),
    [
        ("Open <b>%(name)s</b> &amp; more", "Öffne <b>%(name)s</b> &amp; mehr"),
        ("Terms & conditions", "Allgemeine Geschäftsbedingungen"),  # a lone "&" may go
        ("Q&A", "F&A"),
        ("Wait < 5 minutes", "Moins de 5 minutes"),
        ("He said: “hello”", "Er sagte: „hallo“"),
        ("Turn it on = now", "Turn it on = now"),
    ],
)
def test_translations_keeping_the_originals_markup_pass(original: str, translation: str) -> None:
    assert translation_markup_problems(original=original, translation=translation) == ()


@pytest.mark.parametrize(
    ("original", "translation", "found"),
    [
        ("Open <b>it</b>", "Öffne es", ("</b>", "<b>")),  # tags dropped
        ("Open <b>it</b>", "Öffne <i>es</i>", ("</b>", "</i>", "<b>", "<i>")),
        ("Help", "Hilfe & Rat", ("&",)),
        ("Help", "Hilfe &#60;", ("&#60;",)),
        ("Help", "<a href=x", ("<a href=x",)),
        ("Help", "Hilfe onclick =", ("onclick =",)),
        ("Help", "JavaScript :alert(1)", ("javascript :",)),
    ],
)
def test_markup_added_or_changed_is_found(
    original: str, translation: str, found: tuple[str, ...]
) -> None:
    assert translation_markup_problems(original=original, translation=translation) == found
