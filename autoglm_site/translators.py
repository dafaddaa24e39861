"""Who may edit the interface catalogues in the browser (django-rosetta): the Translators group."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from rosetta.views import TranslationFormView

from autoglm_site.catalogues import TranslationProblem, translation_problems

# Created by the data migration chat/0003; it holds no model permissions, so its members see
# nothing in the admin but the translation pages.
TRANSLATORS_GROUP = "Translators"


def can_translate(user: Any) -> bool:
    """ROSETTA_ACCESS_CONTROL_FUNCTION: active superusers and active members of Translators."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return bool(user.groups.filter(name=TRANSLATORS_GROUP).exists())


def catalogues_outside_project(request: HttpRequest, po_filter: str) -> HttpResponse:
    """Rosetta also lists Django's and third-party catalogues (files inside the virtualenv):
    translators edit the project's catalogues only."""
    raise Http404("Only the project's catalogues can be translated here.")


_PLURALS = re.compile(r"nplurals\s*=\s*(\d+)")
_FIELD = re.compile(r"^m_([0-9a-f]+)(?:_([0-9]+))?$")


def translation_refusal(msgid: str, problem: TranslationProblem) -> str:
    """What the translator is told (in the interface language) about a refused translation."""
    original = Truncator(msgid).chars(80)
    found = " ".join(Truncator(text).chars(40) for text in problem.found)
    if problem.kind == "markup":
        return _(
            "The translation of “%(original)s” was not saved: it adds or changes HTML markup "
            "(%(markup)s). Write it as plain text, with exactly the markup of the original."
        ) % {"original": original, "markup": found}
    return _(
        "The translation of “%(original)s” was not saved: it must have the placeholders of "
        "the original, unchanged, and no others (%(placeholders)s)."
    ) % {"original": original, "placeholders": found or "—"}


class CheckedTranslationFormView(TranslationFormView):
    """Rosetta's page of a catalogue, refusing translations that would be unsafe to show.

    Django renders the translations of template literals and of help_text unescaped, and a
    saved catalogue is live within seconds: a translation that adds markup (a <script>, an
    attribute, a character reference) or changes placeholders is not saved. The rest of the
    page is; the translator stays on the page with a message for each refused entry. Rosetta
    has no hook that can refuse (its entry_changed signal comes after the change), so this
    view checks the form before Rosetta reads it.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = request.POST.copy()
        refused = self._refuse(form)
        if not refused:
            return super().post(request, *args, **kwargs)
        for refusal in refused:
            messages.error(request, refusal)
        request.POST = form  # type: ignore[assignment] # what Rosetta saves: the safe entries
        super().post(request, *args, **kwargs)
        # Back to this page, not on to the next: the refused entries are still to be fixed.
        return HttpResponseRedirect(request.get_full_path())

    def _refuse(self, form: QueryDict) -> list[str]:
        """Messages for the entries FORM may not change; their fields are removed from it."""
        proposed: dict[str, dict[int | None, str]] = {}
        for field in list(form):
            match = _FIELD.match(field)
            if match:
                form_index = int(match.group(2)) if match.group(2) is not None else None
                proposed.setdefault(match.group(1), {})[form_index] = form.get(field, "")
        match = _PLURALS.search(self.po_file.metadata.get("Plural-Forms", ""))
        plurals = int(match.group(1)) if match else 0
        refused = []
        for digest, values in proposed.items():
            entry = self.po_file.find(digest, "md5hash")
            if entry is None:
                continue  # Rosetta reports entries that changed on disk meanwhile
            if entry.msgid_plural:
                msgstr_plural = dict(entry.msgstr_plural)
                for index, value in values.items():
                    if index is not None:
                        msgstr_plural[index] = self.fix_nls(entry.msgid_plural, value)
                problems = translation_problems(entry, msgstr_plural=msgstr_plural, plurals=plurals)
            else:
                msgstr = self.fix_nls(entry.msgid, values.get(None, entry.msgstr))
                problems = translation_problems(entry, msgstr=msgstr)
            if problems:
                for field in [f for f in form if f.startswith(f"m_{digest}")]:
                    del form[field]
                form.pop(f"f_{digest}", None)
                refused.append(translation_refusal(entry.msgid, problems[0]))
        return refused
