"""Reads for the analytics dashboard: roll-up tables only, so each is a few milliseconds
whatever the number of messages (docs/analytics.md: the contract and the flag rule)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.db.models import Q, QuerySet, Sum

from analytics.models import DailyAgentStats, DailyLanguageStats

OUTCOMES = ("confirmed", "assumed", "handed_off", "agent_resolved", "unresolved", "open")
_DAY_COUNTS = ("conversations", "messages", "visitors", *OUTCOMES)
_LANGUAGE_SUMS = (
    *_DAY_COUNTS,
    "handoffs",
    "thumbs_up",
    "thumbs_down",
    "csat_sum",
    "csat_count",
    "ttft_ms_sum",
    "ttft_count",
    "language_correct",
    "language_checked",
)
# The flag rule: a language is served badly when, with enough evidence, ...
FLAG_MIN_CONVERSATIONS = 10  # finished conversations (not open) in the period
FLAG_RATE_FACTOR = 1.5  # its unresolved + handoff rate is this many times the overall rate
FLAG_LANGUAGE_CORRECT_MIN = 0.9  # or fewer replies than this are in the right language
FLAG_MIN_CHECKED = 10  # (replies checked for language)
FLAG_THUMBS_UP_GAP = 0.2  # or its thumbs-up rate is this far below the overall rate
FLAG_MIN_RATINGS = 10  # (thumbs given)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _language_rows(*, start: date, end: date, language: str | None) -> QuerySet[Any]:
    rows = DailyLanguageStats.objects.filter(date__gte=start, date__lte=end)
    if language:
        rows = rows.filter(language=language)
    return rows


def _sums(fields: tuple[str, ...]) -> dict[str, Sum]:
    return {field: Sum(field) for field in fields}


def _finished(counts: dict[str, Any]) -> int:
    return int(counts["conversations"] or 0) - int(counts["open"] or 0)


def overview(*, start: date, end: date, language: str | None = None) -> dict[str, Any]:
    """Counts per day (every day from START to END, zeros included) and their totals, with
    the containment rates: conversations that never needed a person over finished ones."""
    rows = _language_rows(start=start, end=end, language=language)
    by_day = {
        row["date"]: row for row in rows.values("date").annotate(**_sums(_DAY_COUNTS)).order_by()
    }
    days = []
    totals = dict.fromkeys(_DAY_COUNTS, 0)
    for n in range((end - start).days + 1):
        day = start + timedelta(days=n)
        row = by_day.get(day, {})
        counts = {field: int(row.get(field) or 0) for field in _DAY_COUNTS}
        for field, value in counts.items():
            totals[field] += value
        days.append({"date": day.isoformat(), **counts})
    finished = _finished(totals)
    return {
        "days": days,
        "totals": {
            **totals,
            "containment_confirmed": _ratio(totals["confirmed"], finished),
            "containment_assumed": _ratio(totals["assumed"], finished),
        },
    }


def _language_summary(row: dict[str, Any]) -> dict[str, Any]:
    counts = {field: row[field] or 0 for field in _LANGUAGE_SUMS}
    finished = _finished(counts)
    ratings = counts["thumbs_up"] + counts["thumbs_down"]
    return {
        "language": row.get("language"),
        "conversations": counts["conversations"],
        "finished": finished,
        "outcomes": {name: counts[name] for name in OUTCOMES},
        "csat": _ratio(counts["csat_sum"], counts["csat_count"]),
        "csat_count": counts["csat_count"],
        "thumbs_up_rate": _ratio(counts["thumbs_up"], ratings),
        "ratings": ratings,
        "reply_language_correct": _ratio(counts["language_correct"], counts["language_checked"]),
        "reply_language_checked": counts["language_checked"],
        "ttft_ms": _ratio(counts["ttft_ms_sum"], counts["ttft_count"]),
        "handoff_rate": _ratio(counts["handoffs"], finished),
        "bad_rate": _ratio(counts["unresolved"] + counts["handoffs"], finished),
    }


def flag_reasons(*, item: dict[str, Any], overall: dict[str, Any]) -> list[str]:
    """The flag rule (docs/analytics.md), as short codes."""
    reasons = []
    if (
        item["finished"] >= FLAG_MIN_CONVERSATIONS
        and overall["bad_rate"]
        and item["bad_rate"] >= FLAG_RATE_FACTOR * overall["bad_rate"]
    ):
        reasons.append("unresolved_or_handoff_rate")
    if (
        item["reply_language_checked"] >= FLAG_MIN_CHECKED
        and item["reply_language_correct"] is not None
        and item["reply_language_correct"] < FLAG_LANGUAGE_CORRECT_MIN
    ):
        reasons.append("reply_language")
    if (
        item["ratings"] >= FLAG_MIN_RATINGS
        and overall["thumbs_up_rate"] is not None
        and item["thumbs_up_rate"] is not None
        and item["thumbs_up_rate"] <= overall["thumbs_up_rate"] - FLAG_THUMBS_UP_GAP
    ):
        reasons.append("thumbs_up_rate")
    return reasons


def per_language(*, start: date, end: date) -> list[dict[str, Any]]:
    """One summary per language seen in the period, most conversations first, flagged when the
    language is served badly compared with all languages together."""
    rows = _language_rows(start=start, end=end, language=None)
    overall = _language_summary(rows.aggregate(**_sums(_LANGUAGE_SUMS)))
    items = []
    for row in rows.values("language").annotate(**_sums(_LANGUAGE_SUMS)).order_by():
        item = _language_summary(row)
        item["flag_reasons"] = flag_reasons(item=item, overall=overall)
        item["flagged"] = bool(item["flag_reasons"])
        for internal in ("finished", "ratings", "reply_language_checked", "bad_rate"):
            item.pop(internal)
        items.append(item)
    items.sort(key=lambda item: (-item["conversations"], item["language"]))
    return items


_AGENT_SUMS = (
    "handled",
    "first_response_s_sum",
    "first_response_count",
    "resolution_s_sum",
    "resolution_count",
    "csat_sum",
    "csat_count",
)


def _agent_rows(*, start: date, end: date, language: str | None) -> QuerySet[Any]:
    rows = DailyAgentStats.objects.filter(date__gte=start, date__lte=end)
    if language:
        rows = rows.filter(language=language)
    return rows


def _people_figures(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "handled": row["handled"] or 0,
        "first_response_s": _ratio(row["first_response_s_sum"] or 0, row["first_response_count"]),
        "resolution_s": _ratio(row["resolution_s_sum"] or 0, row["resolution_count"]),
        "csat": _ratio(row["csat_sum"] or 0, row["csat_count"]),
        "csat_count": row["csat_count"] or 0,
    }


def agents(*, start: date, end: date, language: str | None = None) -> list[dict[str, Any]]:
    """Per agent: conversations handled, average first response and resolution (seconds) and
    satisfaction; "team" is the team of most of their conversations (None: no team)."""
    rows = _agent_rows(start=start, end=end, language=language)
    teams: dict[int, tuple[int, str | None]] = {}
    for row in rows.values("agent_id", "team__name").annotate(n=Sum("handled")).order_by():
        best = teams.get(row["agent_id"])
        if best is None or row["n"] > best[0]:
            teams[row["agent_id"]] = (row["n"], row["team__name"])
    items = []
    summed = rows.values(
        "agent_id", "agent__username", "agent__agent_profile__display_name"
    ).annotate(**_sums(_AGENT_SUMS))
    for row in summed.order_by():
        items.append(
            {
                "agent_id": row["agent_id"],
                "agent": row["agent__agent_profile__display_name"] or row["agent__username"],
                "team": teams.get(row["agent_id"], (0, None))[1],
                **_people_figures(row),
            }
        )
    items.sort(key=lambda item: (-item["handled"], item["agent"]))
    return items


def teams(*, start: date, end: date, language: str | None = None) -> list[dict[str, Any]]:
    """Per team (team_id None: conversations of no team), the same figures as agents()."""
    rows = _agent_rows(start=start, end=end, language=language)
    items = [
        {"team_id": row["team_id"], "team": row["team__name"], **_people_figures(row)}
        for row in rows.values("team_id", "team__name").annotate(**_sums(_AGENT_SUMS)).order_by()
    ]
    items.sort(key=lambda item: (-item["handled"], item["team"] or ""))
    return items


def languages_seen() -> list[str]:
    return list(
        DailyLanguageStats.objects.filter(~Q(language=""))
        .order_by("language")
        .values_list("language", flat=True)
        .distinct()
    )
