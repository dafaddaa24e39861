"""The analytics dashboard (/admin/analytics/, docs/analytics.md): an edge that parses the
filters, checks who may look, reads the report and renders it or one table as CSV."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from analytics import selectors
from analytics.csv_export import table_csv
from analytics.dashboard import (
    OUTCOMES,
    VOLUME,
    dashboard_report,
    format_cell,
    language_name,
    table_cells,
)

# Who may open the page: superusers, and staff given this permission (the "Can view daily
# statistics per language" permission of the analytics app, in a group or on the user).
VIEW_PERMISSION = "analytics.view_dailylanguagestats"
DEFAULT_DAYS = 28
MAX_DAYS = 366


def can_view(user: Any) -> bool:
    return bool(
        user.is_active and user.is_staff and (user.is_superuser or user.has_perm(VIEW_PERMISSION))
    )


class DashboardFilters(forms.Form):
    start = forms.DateField(label=_("From"), required=False)
    end = forms.DateField(label=_("To"), required=False)
    language = forms.CharField(label=_("Language"), required=False, max_length=16)
    export = forms.CharField(required=False, max_length=32)

    def __init__(self, *args: Any, languages: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.languages = languages

    def clean_language(self) -> str | None:
        language = self.cleaned_data.get("language") or ""
        if not language:
            return None
        if language not in self.languages:
            raise forms.ValidationError(
                gettext("There is no language %(language)s in the statistics."),
                params={"language": language},
            )
        return language

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        today = timezone.localdate()
        end = cleaned.get("end") or today
        start = cleaned.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if "start" in self.errors or "end" in self.errors:
            return cleaned
        if start > end:
            raise forms.ValidationError(
                gettext("The start date is after the end date."), code="order"
            )
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(
                gettext("Choose a range of at most %(days)s days."),
                params={"days": MAX_DAYS},
                code="range",
            )
        cleaned["start"], cleaned["end"] = start, end
        return cleaned


def _defaults() -> tuple[date, date]:
    end = timezone.localdate()
    return end - timedelta(days=DEFAULT_DAYS - 1), end


def _presets(language: str | None) -> list[dict[str, Any]]:
    """Links to the last 7, 28 and 90 days up to today, in the chosen language."""
    end = timezone.localdate()
    presets = []
    for days, label in (
        (7, _("Last 7 days")),
        (28, _("Last 28 days")),
        (90, _("Last 90 days")),
    ):
        params = {"start": (end - timedelta(days=days - 1)).isoformat(), "end": end.isoformat()}
        if language:
            params["language"] = language
        presets.append({"label": label, "query": urlencode(params)})
    return presets


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    if not can_view(request.user):
        raise PermissionDenied
    seen = selectors.languages_seen()
    form = DashboardFilters(request.GET, languages=seen)
    errors: list[str] = []
    if form.is_valid():
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        language = form.cleaned_data["language"]
    else:
        errors = [str(error) for field_errors in form.errors.values() for error in field_errors]
        start, end = _defaults()
        language = None
    export = request.GET.get("export", "")
    report = dashboard_report(start=start, end=end, language=language)
    tables = report["tables"]
    if export:
        if errors:
            return HttpResponse(
                "\n".join(errors), status=400, content_type="text/plain; charset=utf-8"
            )
        table = tables.get(export)
        if table is None or not table.available:
            message = gettext("There is no table %(table)s to export.") % {"table": export[:32]}
            return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        response = HttpResponse(table_csv(table), content_type="text/csv; charset=utf-8")
        filename = f"analytics-{export}-{start.isoformat()}-{end.isoformat()}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    query = {"start": start.isoformat(), "end": end.isoformat()}
    if language:
        query["language"] = language
    totals = report["totals"]
    chart = {
        **report["chart"],
        "language": request.LANGUAGE_CODE,
        "strings": {
            "share": gettext("Share of finished conversations"),
            "people": gettext("Conversations and visitors"),
            "messages": gettext("Messages"),
            "conversations": gettext("Conversations"),
        },
    }
    context = {
        **admin.site.each_context(request),
        # The page's tables and charts want the whole width.
        "is_nav_sidebar_enabled": False,
        "title": _("Analytics"),
        "errors": errors,
        "start": start,
        "end": end,
        "language": language,
        "languages": [(code, language_name(code)) for code in seen],
        "presets": _presets(language),
        "query_string": urlencode(query),
        "language_label": language_name(language) if language else "",
        "totals": totals,
        "totals_display": {
            key: format_cell(totals.get(key) or 0, "int")
            for key in ("conversations", "messages", "visitors")
        },
        "containment": {
            "confirmed": format_cell(totals.get("containment_confirmed"), "percent"),
            "assumed": format_cell(totals.get("containment_assumed"), "percent"),
        },
        "outcome_labels": OUTCOMES,
        "volume_labels": VOLUME,
        "tables": {
            name: {"table": table, "cells": table_cells(table)} for name, table in tables.items()
        },
        "chart": chart,
        "flagged": [row for row in tables["languages"].rows if row.get("flagged")],
        "knowledge_admin": "knowledge" in settings.INSTALLED_APPS,
    }
    return TemplateResponse(
        request, "analytics/dashboard.html", context, status=400 if errors else 200
    )
