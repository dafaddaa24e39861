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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
_BRACE = re.compile(r"(?<!\{)\{(\w*(?:[.\[][^{}]*)?(?:![rsa])?(?::[^{}]*)?)\}(?!\})")
_FORMAT_FLAGS = ("python-format", "javascript-format", "python-brace-format")
# What a browser reads as markup in a translation that Django renders unescaped ({% translate %},
# {% blocktranslate %}, admin help_text): tags (also unclosed ones), character references, and
# the characters and words that only matter inside a tag or an attribute. "<" before anything
# but a letter, "/", "!" or "?" is text to an HTML parser, like ">" and a lone "&".
_TAG = re.compile(r"<[/!?a-zA-Z][^>]*>?")
# A named reference without its ";" ("Q&A") counts as a lone "&".
_REFERENCE = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[a-zA-Z][a-zA-Z0-9]*;)")
_MARKUP_TEXT = re.compile(r'[<>&"]|(?:java|vb)\s*script\s*:|\bon[a-z]+\s*=', re.IGNORECASE)


@dataclass(frozen=True)
class TranslationProblem:
    """Why a translation may not be used: it adds or changes markup, or its placeholders differ
    from the original's. DETAIL is English, for the CI check; the translators' pages say it in
    the translator's language (autoglm_site.translators)."""

    kind: Literal["markup", "placeholders"]
    detail: str
    found: tuple[str, ...] = ()  # the markup or placeholders at fault
    form: int | None = None  # the plural form, for plural entries


def _placeholders(text: str, *, brace: bool = False) -> tuple[list[str], int]:
    """Named placeholders (sorted; "{name}" ones too when BRACE) and the number of positional
    ones, ignoring "%%" (and "{{", "}}")."""
    text = text.replace("%%", "")
    named = _NAMED.findall(text)
    if brace:
        named += [
            "{" + name + "}" for name in _BRACE.findall(text.replace("{{", "").replace("}}", ""))
        ]
    return sorted(named), len(_POSITIONAL.findall(text))


def _placeholder_texts(*texts: str, brace: bool) -> tuple[str, ...]:
    """The placeholders of TEXTS as written ("%(limit)d", "{name}"), for messages."""
    found: set[str] = set()
    for text in texts:
        text = text.replace("%%", "")
        found.update(match.group(0) for match in _NAMED.finditer(text))
        found.update(match.group(0) for match in _POSITIONAL.finditer(text))
        if brace:
            plain = text.replace("{{", "").replace("}}", "")
            found.update(match.group(0) for match in _BRACE.finditer(plain))
    return tuple(sorted(found))


def _markup(text: str) -> tuple[Counter[str], Counter[str]]:
    """The tags and character references of TEXT (normalised), and its other markup."""
    structure: Counter[str] = Counter()
    for pattern in (_TAG, _REFERENCE):
        for found in pattern.findall(text):
            structure[" ".join(found.lower().split())] += 1
        text = pattern.sub(" ", text)
    other = Counter(" ".join(found.lower().split()) for found in _MARKUP_TEXT.findall(text))
    return structure, other


def translation_markup_problems(*, original: str, translation: str) -> tuple[str, ...]:
    """The markup of TRANSLATION that ORIGINAL does not have, or that it lacks of ORIGINAL's.

    Tags and character references must be the original's, no more and no fewer; the other
    markup characters (a lone "&", ">", a double quote, "javascript:", "onclick=") may be left
    out but not added. Empty when the translation is safe to render unescaped.
    """
    if not translation:
        return ()
    structure, other = _markup(translation)
    expected_structure, expected_other = _markup(original)
    if structure == expected_structure and not other - expected_other:
        return ()
    changed = (structure - expected_structure) + (expected_structure - structure)
    return tuple(sorted(changed + (other - expected_other)))


def entry_is_format(entry: object) -> bool:
    """Whether ENTRY's strings are formatted with placeholders (and so must keep them)."""
    flags = getattr(entry, "flags", [])
    # JavaScript strings carry no format flag; a named placeholder marks them as formats.
    msgid = str(getattr(entry, "msgid", ""))
    msgid_plural = str(getattr(entry, "msgid_plural", "") or "")
    named = _NAMED.search(msgid) or _NAMED.search(msgid_plural)
    return bool(named) or any(flag in flags for flag in _FORMAT_FLAGS)


def translation_problems(
    entry: object,
    *,
    msgstr: str | None = None,
    msgstr_plural: Mapping[int, str] | None = None,
    plurals: int = 0,
) -> list[TranslationProblem]:
    """What is wrong with ENTRY's translation (or with MSGSTR / MSGSTR_PLURAL, the translation
    a translator proposes for it): markup the original lacks, placeholders that differ.

    An empty translation is no problem here (gettext shows the original).
    """
    msgid = str(getattr(entry, "msgid", ""))
    msgid_plural = str(getattr(entry, "msgid_plural", "") or "")
    if msgstr is None:
        msgstr = str(getattr(entry, "msgstr", "") or "")
    if msgstr_plural is None:
        msgstr_plural = getattr(entry, "msgstr_plural", {}) or {}
    problems: list[TranslationProblem] = []
    if not msgid_plural:
        found = translation_markup_problems(original=msgid, translation=msgstr)
        if found:
            problems.append(
                TranslationProblem("markup", f"markup {list(found)} not in the original", found)
            )
    else:
        for index, form in sorted(msgstr_plural.items()):
            # Each form renders one of the two originals: either one's markup will do.
            found = translation_markup_problems(original=msgid_plural, translation=form)
            if found and translation_markup_problems(original=msgid, translation=form):
                detail = f"form {index} has markup {list(found)} not in the original"
                problems.append(TranslationProblem("markup", detail, found, index))
    if entry_is_format(entry):
        brace = "python-brace-format" in getattr(entry, "flags", [])
        problems.extend(
            _placeholder_problems(msgid, msgid_plural, msgstr, msgstr_plural, plurals, brace)
        )
    return problems


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
        problems.extend(
            f"{where}: {problem.detail}" for problem in translation_problems(entry, plurals=plurals)
        )
    return problems


def _placeholder_problems(
    msgid: str,
    msgid_plural: str,
    msgstr: str,
    msgstr_plural: Mapping[int, str],
    plurals: int,
    brace: bool,
) -> list[TranslationProblem]:
    """msgfmt does not check every format (named JavaScript ones, plural forms): we do."""
    if not msgid_plural:
        if not msgstr:
            return []
        expected = _placeholders(msgid, brace=brace)
        got = _placeholders(msgstr, brace=brace)
        if got != expected:
            detail = f"placeholders {got} in the translation, {expected} in the original"
            found = _placeholder_texts(msgid, brace=brace)
            return [TranslationProblem("placeholders", detail, found)]
        return []
    singular_names = _placeholders(msgid, brace=brace)[0]
    plural_names = _placeholders(msgid_plural, brace=brace)[0]
    allowed = set(singular_names) | set(plural_names)
    written = _placeholder_texts(msgid, msgid_plural, brace=brace)
    problems = []
    forms = range(plurals) if plurals else sorted(msgstr_plural)
    for index in forms:
        names, _count = _placeholders(msgstr_plural.get(index, ""), brace=brace)
        if set(names) - allowed:
            detail = f"form {index} has unknown placeholders {sorted(names)}"
            problems.append(TranslationProblem("placeholders", detail, written, index))
    # The last form serves the general case ("%(count)d items"): it needs every placeholder.
    last = (plurals - 1) if plurals else max(msgstr_plural, default=0)
    last_names, _count = _placeholders(msgstr_plural.get(last, ""), brace=brace)
    if msgstr_plural.get(last) and set(plural_names) - set(last_names):
        detail = f"form {last} lacks placeholders of {msgid_plural!r}"
        problems.append(TranslationProblem("placeholders", detail, written, last))
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
    broken when `msgfmt --check` fails, a translation's placeholders differ from the
    original's or it has markup the original lacks (translations are rendered unescaped).
    Every language of settings.LANGUAGES but English needs a django.po.
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
