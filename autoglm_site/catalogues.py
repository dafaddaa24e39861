"""Interface catalogues: reloading them when a translator saves, and the CI check on them."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import polib  # type: ignore[import-untyped]
from django.conf import settings
from django.utils.translation import to_locale, trans_real

# --- Reload ----------------------------------------------------------------------------------
_reload_lock = threading.Lock()
_checked_at = float("-inf")
_stamp: tuple[tuple[str, int], ...] | None = None


def _catalogue_stamp() -> tuple[tuple[str, int], ...]:
    found = []
    for base in settings.LOCALE_PATHS:
        for path in sorted(Path(base).glob("*/LC_MESSAGES/*.mo")):
            try:
                found.append((str(path), path.stat().st_mtime_ns))
            except FileNotFoundError:  # replaced while we looked
                continue
    return tuple(found)


def catalogues_reload() -> None:
    """Forget the loaded catalogues: each language is read from its .mo files again when next
    activated. The translation active in a request already running keeps its catalogue."""
    gettext._translations = {}  # type: ignore[attr-defined]
    # What Django's own autoreloader clears when a .mo changes (translation_file_changed),
    # except the active translations, which belong to requests running now.
    trans_real._translations = {}  # type: ignore[attr-defined]
    trans_real._default = None  # type: ignore[attr-defined]


def catalogues_reload_if_changed() -> bool:
    """Reload the catalogues if a compiled file changed (checked every LOCALE_RELOAD_SECONDS).

    Rosetta writes the .mo when a translator saves; every process serving pages notices here,
    without a restart. True when it reloaded.
    """
    global _checked_at, _stamp
    interval = float(getattr(settings, "LOCALE_RELOAD_SECONDS", 0))
    now = time.monotonic()
    if interval <= 0 or now - _checked_at < interval:
        return False
    with _reload_lock:
        if now - _checked_at < interval:
            return False
        _checked_at = now
        stamp = _catalogue_stamp()
        if stamp == _stamp:
            return False
        _stamp = stamp
    catalogues_reload()
    return True


# --- Check -----------------------------------------------------------------------------------
# What extraction reads: the same flags as `make messages` (names starting with a dot, such
# as .venv and .data, are skipped by makemessages itself).
EXTRACT_IGNORE = ("tests", "bench", "node_modules")
DOMAINS = ("django", "djangojs")
SOURCE_LANGUAGE = "en"  # msgids are English; it has no catalogue of its own
_COPY_IGNORE = shutil.ignore_patterns(
    ".*", "__pycache__", "*.pyc", "*.mo", "tests", "bench", "node_modules", "test-artifacts"
)
_NAMED = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
_POSITIONAL = re.compile(r"%(?!\()[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
_FORMAT_FLAGS = ("python-format", "javascript-format", "python-brace-format")


def _placeholders(text: str) -> tuple[list[str], int]:
    """Named placeholders (sorted) and the number of positional ones, ignoring "%%"."""
    text = text.replace("%%", "")
    return sorted(_NAMED.findall(text)), len(_POSITIONAL.findall(text))


def _entry_key(entry: object) -> tuple[str, str, str]:
    return (
        getattr(entry, "msgctxt", None) or "",
        getattr(entry, "msgid", ""),
        getattr(entry, "msgid_plural", "") or "",
    )


def catalogue_path(locale_dir: Path, language: str, domain: str) -> Path:
    return locale_dir / to_locale(language) / "LC_MESSAGES" / f"{domain}.po"


def _catalogue_languages(languages: Iterable[str]) -> list[str]:
    return [code for code in languages if code != SOURCE_LANGUAGE]


def catalogues_extract(project_dir: Path) -> None:
    """Run makemessages (as `make messages` does) on the project in PROJECT_DIR, in place.

    It runs in a child process with that directory's own settings (PYTHONPATH), so
    LOCALE_PATHS is PROJECT_DIR/locale whatever project the caller runs in.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(project_dir),
        "DJANGO_SETTINGS_MODULE": "autoglm_site.settings",
    }
    ignore = [f"--ignore={pattern}" for pattern in EXTRACT_IGNORE]
    for domain in DOMAINS:
        command = [sys.executable, "-m", "django", "makemessages", "--all", "--no-location"]
        result = subprocess.run(
            [*command, "-d", domain, *ignore],
            cwd=project_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"makemessages -d {domain} failed:\n{result.stderr}")


def _extract(project_dir: Path, work_dir: Path) -> Path:
    """The catalogues as extraction would leave them: makemessages run on a copy."""
    copy = work_dir / "project"
    shutil.copytree(project_dir, copy, ignore=_COPY_IGNORE)
    catalogues_extract(copy)
    return copy / "locale"


def _check_stale(locale_dir: Path, extracted_dir: Path, languages: Sequence[str]) -> list[str]:
    problems = []
    for language in languages:
        for domain in DOMAINS:
            current_path = catalogue_path(locale_dir, language, domain)
            fresh_path = catalogue_path(extracted_dir, language, domain)
            if not fresh_path.exists():
                continue  # nothing of this domain to translate
            if not current_path.exists():
                problems.append(f"{current_path}: missing; run `make messages`")
                continue
            current = {_entry_key(e) for e in polib.pofile(str(current_path)) if not e.obsolete}
            fresh = {_entry_key(e) for e in polib.pofile(str(fresh_path)) if not e.obsolete}
            added, removed = sorted(fresh - current), sorted(current - fresh)
            if added or removed:
                sample = "; ".join(repr(key[1]) for key in (added + removed)[:3])
                problems.append(
                    f"{current_path}: stale, extraction adds {len(added)} and removes "
                    f"{len(removed)} strings ({sample}); run `make messages`"
                )
    return problems


def _check_complete(path: Path) -> list[str]:
    catalogue = polib.pofile(str(path))
    problems = []
    if catalogue.metadata_is_fuzzy:
        problems.append(f"{path}: the header is marked fuzzy")
    match = re.search(r"nplurals\s*=\s*(\d+)", catalogue.metadata.get("Plural-Forms", ""))
    plurals = int(match.group(1)) if match else 0
    for entry in catalogue:
        if entry.obsolete:
            continue
        where = f"{path}: {entry.msgid!r}"
        if entry.fuzzy:
            problems.append(f"{where} is fuzzy")
            continue
        if entry.msgid_plural:
            forms = [entry.msgstr_plural.get(index, "") for index in range(plurals)]
            if not plurals or not all(forms):
                problems.append(f"{where} lacks plural forms ({plurals} needed)")
                continue
        elif not entry.msgstr:
            problems.append(f"{where} is untranslated")
            continue
        # JavaScript strings carry no format flag; a named placeholder marks them as formats.
        named = _NAMED.search(entry.msgid) or _NAMED.search(entry.msgid_plural or "")
        if named or any(flag in entry.flags for flag in _FORMAT_FLAGS):
            problems.extend(_check_placeholders(where, entry, plurals))
    return problems


def _check_placeholders(where: str, entry: object, plurals: int) -> list[str]:
    """msgfmt does not check every format (named JavaScript ones, plural forms): we do."""
    msgid = str(getattr(entry, "msgid", ""))
    msgid_plural = str(getattr(entry, "msgid_plural", "") or "")
    if not msgid_plural:
        expected = _placeholders(msgid)
        got = _placeholders(str(getattr(entry, "msgstr", "")))
        if got != expected:
            return [f"{where}: placeholders {got} in the translation, {expected} in the original"]
        return []
    allowed = set(_placeholders(msgid)[0]) | set(_placeholders(msgid_plural)[0])
    forms: dict[int, str] = getattr(entry, "msgstr_plural", {})
    problems = []
    for index in range(plurals):
        names, _count = _placeholders(forms.get(index, ""))
        if set(names) - allowed:
            problems.append(f"{where}: form {index} has unknown placeholders {sorted(names)}")
    # The last form serves the general case ("%(count)d items"): it needs every placeholder.
    last_names, _count = _placeholders(forms.get(plurals - 1, ""))
    if set(_placeholders(msgid_plural)[0]) - set(last_names):
        problems.append(f"{where}: form {plurals - 1} lacks placeholders of {msgid_plural!r}")
    return problems


def _check_msgfmt(path: Path) -> list[str]:
    result = subprocess.run(
        ["msgfmt", "--check", "--output-file=/dev/null", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode == 0:
        return []
    errors = [line for line in result.stderr.splitlines() if "warning:" not in line]
    return [f"msgfmt --check: {line}" for line in errors] or [f"{path}: msgfmt --check failed"]


def catalogues_check(
    *, project_dir: Path, languages: Sequence[str] | None = None, stale: bool = True
) -> list[str]:
    """Problems with PROJECT_DIR's catalogues; an empty list when they are ready to ship.

    A catalogue is stale when extraction (makemessages, as `make messages` runs it) would add
    or remove a string; incomplete when an entry is untranslated or fuzzy (or the header is);
    broken when `msgfmt --check` fails or a translation's placeholders differ from the
    original's. Every language of settings.LANGUAGES but English needs a django.po.
    """
    codes = _catalogue_languages(languages or [code for code, _name in settings.LANGUAGES])
    locale_dir = project_dir / "locale"
    problems: list[str] = []
    for language in codes:
        if not catalogue_path(locale_dir, language, "django").exists():
            problems.append(f"{catalogue_path(locale_dir, language, 'django')}: missing")
    if stale:
        with tempfile.TemporaryDirectory(prefix="catalogues-") as work:
            extracted = _extract(project_dir, Path(work))
            problems.extend(_check_stale(locale_dir, extracted, codes))
    for language in codes:
        for domain in DOMAINS:
            path = catalogue_path(locale_dir, language, domain)
            if path.exists():
                problems.extend(_check_complete(path))
                problems.extend(_check_msgfmt(path))
    return problems
