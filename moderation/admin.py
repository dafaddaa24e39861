"""Admin: the moderation rules (a pattern must compile and run fast) and the hit log (read
only, with a "mark reviewed" action)."""

from __future__ import annotations

from typing import Any

import regex
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from moderation import matching, services
from moderation.models import ModerationHit, ModerationRule

# Texts a pattern is tried on before it is saved: those that make a backtracking pattern
# such as (a+)+$ take exponential time.
_PROBES = ("a" * 40 + "!", "aaaa " * 200 + "!", "x" * 4000)
_PROBE_SECONDS = 0.2


class ModerationRuleForm(forms.ModelForm):  # type: ignore[type-arg,unused-ignore]
    class Meta:
        model = ModerationRule
        fields = ("language", "kind", "applies_to", "action", "pattern", "active", "note")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        pattern = str(data.get("pattern") or "")
        if data.get("kind") == ModerationRule.Kind.REGEX:
            self._check_regex(pattern)
        elif (
            data.get("kind") == ModerationRule.Kind.WORDS
            and matching.words_pattern(pattern.splitlines()) is None
        ):
            self.add_error("pattern", _("List at least one word."))
        return data

    def _check_regex(self, pattern: str) -> None:
        if len(pattern) > matching.MAX_PATTERN_CHARS:
            self.add_error(
                "pattern",
                _("The pattern is too long: at most %(limit)d characters.")
                % {"limit": matching.MAX_PATTERN_CHARS},
            )
            return
        try:
            compiled = matching.regex_compile(pattern)
        except regex.error as exc:
            self.add_error(
                "pattern",
                _("This is not a valid regular expression: %(error)s") % {"error": str(exc)},
            )
            return
        if compiled.search(""):
            self.add_error("pattern", _("The pattern matches empty text: it would match anything."))
            return
        try:
            for probe in _PROBES:
                compiled.search(probe, timeout=_PROBE_SECONDS)
        except TimeoutError:
            self.add_error(
                "pattern",
                _("The pattern takes too long to run on some texts. Please simplify it."),
            )


@admin.register(ModerationRule)
class ModerationRuleAdmin(admin.ModelAdmin[ModerationRule]):
    form = ModerationRuleForm
    list_display = ("__str__", "language", "kind", "applies_to", "action", "active", "updated_at")
    list_filter = ("active", "language", "kind", "applies_to", "action")
    search_fields = ("pattern", "note")


@admin.action(description=gettext_lazy("Mark as reviewed"), permissions=["view"])
def hits_mark_reviewed(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[ModerationHit]
) -> None:
    count = services.hits_mark_reviewed(hits=queryset)
    modeladmin.message_user(
        request,
        ngettext("%(count)d hit marked as reviewed.", "%(count)d hits marked as reviewed.", count)
        % {"count": count},
        messages.SUCCESS,
    )


@admin.register(ModerationHit)
class ModerationHitAdmin(admin.ModelAdmin[ModerationHit]):
    list_display = (
        "created_at",
        "direction",
        "language",
        "action",
        "source",
        "rule",
        "excerpt",
        "reviewed",
    )
    list_filter = ("reviewed", "direction", "action", "source", "language", "created_at")
    search_fields = ("excerpt",)
    date_hierarchy = "created_at"
    actions = [hits_mark_reviewed]
    list_select_related = ("rule",)
    raw_id_fields = ("rule", "conversation", "message")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
