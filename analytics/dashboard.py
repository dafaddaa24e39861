"""The analytics dashboard's report: the roll-up selectors' answers as tables and chart series.

Read only (analytics.selectors and, where it exists, analytics.gaps); every table here is shown
on the page and can be exported as CSV (analytics.csv_export). Numbers are kept raw in the
rows; the page and the CSV format them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from analytics import selectors
from analytics.models import Outcome

# The outcome classes of a conversation, in the order they are stacked (contract of
# analytics.selectors.overview).
OUTCOMES: list[tuple[str, Promise]] = [
    (outcome.value, outcome.label)
    for outcome in (
        Outcome.CONFIRMED,
        Outcome.ASSUMED,
        Outcome.AGENT_RESOLVED,
        Outcome.HANDED_OFF,
        Outcome.UNRESOLVED,
        Outcome.OPEN,
    )
]
VOLUME: list[tuple[str, Promise]] = [
    ("conversations", _("Conversations")),
    ("messages", _("Messages")),
    ("visitors", _("Visitors")),
]
# Why a language is flagged (analytics.selectors.per_language's flag_reasons); an unknown code
# is shown as it is.
FLAG_REASONS: dict[str, Promise] = {
    "unresolved_or_handoff_rate": _(
        "many more conversations unresolved or handed off than in all languages"
    ),
    "reply_language": _("too few replies in the visitor's language"),
    "thumbs_up_rate": _("far fewer thumbs up than in all languages"),
}
ARTICLE_LISTS: list[tuple[str, Promise]] = [
    ("most_cited", _("Most cited")),
    ("negative", _("Most often cited in replies rated down")),
    ("never_cited", _("Never cited")),
    ("stale", _("Not updated for a long time")),
]


@dataclass
class Column:
    key: str
    label: Promise
    # int, float, percent, ms, seconds, text, user_text, bool, date, list
    kind: str = "int"


@dataclass
class Table:
    """One table of the page: its columns and raw rows (dicts keyed by column key)."""

    name: str
    title: Promise
    columns: list[Column]
    rows: list[dict[str, Any]]
    available: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def language_name(code: str) -> str:
    names = {code: str(name) for code, name in settings.LANGUAGES}
    return names.get(code, code)


def flag_reason_text(code: str) -> str:
    reason = FLAG_REASONS.get(code)
    return str(reason) if reason is not None else code


def _gaps_module() -> Any:
    """analytics.gaps if it exists (the knowledge-gap selectors come in their own step)."""
    try:
        return importlib.import_module("analytics.gaps")
    except ImportError:
        return None


def article_add_url(*, title: str, language: str, examples: list[str]) -> str:
    """The knowledge admin's add form for an article, prefilled: title and a draft body (the
    visitors' questions) in the cluster's language, status draft."""
    try:
        base = reverse("admin:knowledge_article_add")
    except NoReverseMatch:
        return ""
    from modeltranslation.utils import build_localized_fieldname

    codes = {code for code, _name in settings.LANGUAGES}
    if language not in codes:
        language = settings.LANGUAGE_CODE
    params = {
        build_localized_fieldname("title", language): title,
        "status": "draft",
    }
    if examples:
        params[build_localized_fieldname("body", language)] = "\n".join(
            f"- {text}" for text in examples
        )
    return f"{base}?{urlencode(params)}"


def _volume_table(days: list[dict[str, Any]]) -> Table:
    return Table(
        name="days",
        title=_("Conversations, messages and outcomes per day"),
        columns=[
            Column("date", _("Date"), "date"),
            *(Column(key, label) for key, label in VOLUME),
            *(Column(key, label) for key, label in OUTCOMES),
        ],
        rows=days,
    )


def _languages_table(rows: list[dict[str, Any]]) -> Table:
    flat = []
    for row in rows:
        outcomes = row.get("outcomes") or {}
        flat.append(
            {
                **row,
                "language_name": language_name(row["language"]),
                **{f"outcome_{key}": outcomes.get(key, 0) for key, _label in OUTCOMES},
                "flag_reasons": [flag_reason_text(code) for code in row.get("flag_reasons", [])],
            }
        )
    return Table(
        name="languages",
        title=_("Per language"),
        columns=[
            Column("language", _("Code"), "text"),
            Column("language_name", _("Language"), "text"),
            Column("conversations", _("Conversations")),
            *(Column(f"outcome_{key}", label) for key, label in OUTCOMES),
            Column("csat", _("Satisfaction (1–5)"), "float"),
            Column("csat_count", _("Ratings")),
            Column("thumbs_up_rate", _("Thumbs up"), "percent"),
            Column("reply_language_correct", _("Replies in the visitor's language"), "percent"),
            Column("ttft_ms", _("Time to first token"), "ms"),
            Column("handoff_rate", _("Handoff rate"), "percent"),
            Column("flagged", _("Flagged"), "bool"),
            Column("flag_reasons", _("Why"), "list"),
        ],
        rows=flat,
    )


def _people_table(name: str, rows: list[dict[str, Any]]) -> Table:
    no_team = str(_("No team"))
    rows = [{**row, "team": row.get("team") or no_team} for row in rows]
    first = (
        [Column("agent", _("Agent"), "user_text"), Column("team", _("Team"), "user_text")]
        if name == "agents"
        else [Column("team", _("Team"), "user_text")]
    )
    return Table(
        name=name,
        title=_("Agents") if name == "agents" else _("Teams"),
        columns=[
            *first,
            Column("handled", _("Conversations handled")),
            Column("first_response_s", _("First response"), "seconds"),
            Column("resolution_s", _("Time to resolution"), "seconds"),
            Column("csat", _("Satisfaction (1–5)"), "float"),
            Column("csat_count", _("Ratings")),
        ],
        rows=rows,
    )


def _gaps_table(module: Any, start: date, end: date, language: str | None) -> Table:
    columns = [
        Column("label", _("Questions about"), "user_text"),
        Column("count", _("Questions")),
        Column("trend", _("Questions per week"), "list"),
        Column("languages", _("Languages"), "list"),
        Column("example", _("Example"), "user_text"),
    ]
    function: Callable[..., list[dict[str, Any]]] | None = getattr(module, "knowledge_gaps", None)
    if function is None:
        return Table("gaps", _("Knowledge gaps"), columns, [], available=False)
    rows = []
    for gap in function(start=start, end=end, language=language):
        examples = gap.get("examples") or []
        languages = gap.get("languages") or []
        gap_language = language or (languages[0] if languages else settings.LANGUAGE_CODE)
        rows.append(
            {
                **gap,
                "example": examples[0]["text"] if examples else "",
                "example_language": examples[0].get("language", "") if examples else "",
                "add_url": gap.get("write_article_url")
                or article_add_url(
                    title=str(gap.get("label", "")),
                    language=gap_language,
                    examples=[
                        e["text"]
                        for e in examples
                        if e.get("language", gap_language) == gap_language
                    ][:5],
                ),
            }
        )
    return Table("gaps", _("Knowledge gaps"), columns, rows)


def _articles_table(module: Any, start: date, end: date) -> Table:
    columns = [
        Column("list", _("List"), "text"),
        Column("title", _("Article"), "user_text"),
        Column("count", _("Citations")),
        Column("updated_at", _("Updated"), "date"),
    ]
    function: Callable[..., dict[str, list[dict[str, Any]]]] | None = getattr(
        module, "article_stats", None
    )
    if function is None:
        return Table("articles", _("Articles"), columns, [], available=False)
    stats = function(start=start, end=end)
    rows = []
    lists = {}
    for key, label in ARTICLE_LISTS:
        items = [{**item, "list": str(label), "list_key": key} for item in stats.get(key, [])]
        lists[key] = {"title": label, "items": items}
        rows.extend(items)
    return Table("articles", _("Articles"), columns, rows, extra={"lists": lists})


def _rate(part: int | None, whole: int | None) -> float | None:
    return part / whole if part is not None and whole else None


def dashboard_report(*, start: date, end: date, language: str | None) -> dict[str, Any]:
    """Everything the page shows for the range and language (None: all languages)."""
    overview = selectors.overview(start=start, end=end, language=language)
    days = overview["days"]
    totals = overview["totals"]
    gaps = _gaps_module()
    tables = {
        "days": _volume_table(days),
        "languages": _languages_table(selectors.per_language(start=start, end=end)),
        "agents": _people_table(
            "agents", selectors.agents(start=start, end=end, language=language)
        ),
        "teams": _people_table("teams", selectors.teams(start=start, end=end, language=language)),
    }
    if gaps is not None:
        tables["gaps"] = _gaps_table(gaps, start, end, language)
        tables["articles"] = _articles_table(gaps, start, end)
    else:
        tables["gaps"] = _gaps_table(None, start, end, language)
        tables["articles"] = _articles_table(None, start, end)
    # Containment per day, confirmed and assumed apart, as the selector's totals: over the
    # day's finished conversations (those not still open).
    containment = []
    for day in days:
        finished = day.get("conversations", 0) - day.get("open", 0)
        containment.append(
            {
                "date": day["date"],
                "confirmed": _rate(day.get("confirmed"), finished),
                "assumed": _rate(day.get("assumed"), finished),
            }
        )
    chart = {
        "labels": [day["date"] for day in days],
        "volume": [
            {"key": key, "label": str(label), "data": [day.get(key, 0) for day in days]}
            for key, label in VOLUME
        ],
        "outcomes": [
            {"key": key, "label": str(label), "data": [day.get(key, 0) for day in days]}
            for key, label in OUTCOMES
        ],
        "containment": [
            {
                "key": "confirmed",
                "label": str(_("Contained, confirmed by the visitor")),
                "data": [row["confirmed"] for row in containment],
            },
            {
                "key": "assumed",
                "label": str(_("Contained, assumed (no reply)")),
                "data": [row["assumed"] for row in containment],
            },
        ],
    }
    return {
        "totals": totals,
        "containment_days": containment,
        "tables": tables,
        "chart": chart,
    }


NUMERIC = {"int", "float", "percent", "ms", "seconds"}


def format_cell(value: Any, kind: str) -> str:
    """VALUE as the page shows it, in the active language's number format."""
    from django.utils import formats

    def number(value: float, places: int) -> str:
        # number_format cuts decimals off; round first.
        return formats.number_format(
            round(value, places), places, use_l10n=True, force_grouping=True
        )

    if value is None or value == "":
        return "—"
    if kind == "int":
        return number(value, 0)
    if kind == "float":
        return number(value, 2)
    if kind == "percent":
        return _("%(value)s%%") % {"value": number(value * 100, 1)}
    if kind == "ms":
        return _("%(value)s ms") % {"value": number(value, 0)}
    if kind == "seconds":
        if value >= 3600:
            return _("%(value)s h") % {"value": number(value / 3600, 1)}
        if value >= 60:
            return _("%(value)s min") % {"value": number(value / 60, 1)}
        return _("%(value)s s") % {"value": number(value, 0)}
    if kind == "bool":
        return str(_("yes") if value else _("no"))
    if kind == "date":
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value[:10])
            except ValueError:
                return value
        return formats.date_format(value, "SHORT_DATE_FORMAT", use_l10n=True)
    if kind == "list":
        return ", ".join(str(item) for item in value)
    return str(value)


def table_cells(table: Table) -> list[dict[str, Any]]:
    """The rows of TABLE as the page shows them: {"row": raw row, "cells": [{text, numeric,
    user}]}."""
    return [
        {
            "row": row,
            "cells": [
                {
                    "text": format_cell(row.get(column.key), column.kind),
                    "numeric": column.kind in NUMERIC,
                    "user": column.kind == "user_text",
                    "key": column.key,
                }
                for column in table.columns
            ],
        }
        for row in table.rows
    ]
