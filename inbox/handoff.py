"""When a conversation goes to a person, to which team, and what the visitor is told to expect.

Reads only: the writes are inbox.services. The human side is on when settings.CHAT_HANDOFF is
"on", or "auto" (the default) and at least one user is in the Agents group: a company that
has no agents keeps a bot that answers everything, as before.
"""

from __future__ import annotations

import datetime
import statistics
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import regex
from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models import Q
from django.utils import timezone

from autoglm_site.memo import admin_tables_memo
from chat.models import Conversation
from inbox.models import AGENTS_GROUP, AgentProfile, HandoffRule, Team

ONLINE_SECONDS = 60  # an inbox socket pings every 20 s

# "Talk to a person" in the interface languages (and English everywhere), matched ignoring
# case. Phrases ask for a person in any message up to _ASK_MAX_CHARS; the bare nouns (an agent
# may be software, an operator a telecom) only in a message of a few words ("agent please").
_ASK = {
    "en": r"\b(?:human|real person|live (?:agent|chat|person)|someone from (?:support|your team)"
    r"|(?:talk|speak|chat) (?:to|with) (?:a |an |some)?(?:person|one|agent|representative"
    r"|operator|someone|human|people))\b",
    "zh": r"人工|真人|转人工|客服人员|人工客服|接線生|真人客服",
    "ja": r"オペレーター|担当者|人間|有人|スタッフと話",
    "ko": r"상담원|상담사|사람(?:과|이랑|하고)|직원(?:과|이랑)|사람\s*연결",
    "ar": r"موظف|شخص حقيقي|إنسان|انسان|وكيل خدمة|التحدث مع شخص|ممثل خدمة",
    "he": r"נציג|אדם אמיתי|בן אדם|לדבר עם מישהו",
    "es": r"\b(?:humano|una persona|persona real|hablar con (?:un|una|alguien))\b",
    "fr": r"\b(?:humain|une personne|vraie personne|conseill(?:er|ère)|parler à quelqu'un)\b",
    "de": r"\b(?:mensch(?:en)?|mitarbeiter(?:in)?|echte(?:n)? person|einer person)\b",
    "pt": r"\b(?:atendente|humano|uma pessoa|pessoa real)\b",
    "it": r"\b(?:umano|una persona|persona reale)\b",
    "ru": r"оператор|живой человек|человеком|с человеком|сотрудник",
    "tr": r"\b(?:temsilci|insanla|gerçek kişi)\b",
    "hi": r"इंसान|एजेंट|व्यक्ति से बात",
}
_ASK_WORD = {
    "en": r"\b(?:agent|operator|representative|support person)\b",
    "es": r"\b(?:agente|operador|representante)\b",
    "fr": r"\b(?:agent|opérateur)\b",
    "de": r"\b(?:berater(?:in)?|agent)\b",
    "pt": r"\b(?:operador|agente)\b",
    "it": r"\b(?:operatore|agente)\b",
    "tr": r"\b(?:operatör)\b",
}
_ASK_PATTERNS = {code: regex.compile(pattern, regex.IGNORECASE) for code, pattern in _ASK.items()}
_WORD_PATTERNS = {
    code: regex.compile(pattern, regex.IGNORECASE) for code, pattern in _ASK_WORD.items()
}
_ASK_MAX_CHARS = 80  # a long question that mentions a person is a question
_WORD_MAX_WORDS = 3


def handoff_enabled() -> bool:
    mode = settings.CHAT_HANDOFF
    if mode == "auto":
        return _has_agents()
    return mode == "on"


@admin_tables_memo(Group)
def _has_agents() -> bool:
    return Group.objects.filter(name=AGENTS_GROUP, user__is_active=True).exists()


def asks_for_person(*, text: str, language: str) -> bool:
    """Whether a visitor's message asks for a person, in LANGUAGE or English."""
    if len(text) > _ASK_MAX_CHARS:
        return False
    codes = {language.split("-")[0], "en"}
    if any(_ASK_PATTERNS[code].search(text) for code in codes if code in _ASK_PATTERNS):
        return True
    if len(text.split()) > _WORD_MAX_WORDS:
        return False
    return any(_WORD_PATTERNS[code].search(text) for code in codes if code in _WORD_PATTERNS)


def rule_for_text(*, text: str, language: str) -> tuple[HandoffRule, str] | None:
    """The first active keyword rule for LANGUAGE (or every language) that TEXT says, with the
    keyword it said."""
    folded = text.casefold()
    for rule in _keyword_rules(language=language):
        for keyword in rule.keyword_list():
            if keyword.casefold() in folded:
                return rule, keyword
    return None


def rule_for_categories(*, categories: set[str], language: str) -> HandoffRule | None:
    """The first active category rule whose knowledge category (slug) the answer drew on."""
    if not categories:
        return None
    rules = HandoffRule.objects.filter(
        Q(language=language) | Q(language=""), active=True, category__slug__in=categories
    ).select_related("category", "team")
    return rules.order_by("id").first()


@admin_tables_memo(HandoffRule)
def category_rules_exist() -> bool:
    return HandoffRule.objects.filter(active=True, category__isnull=False).exists()


@admin_tables_memo(HandoffRule)
def _keyword_rules(*, language: str) -> list[HandoffRule]:
    rules = HandoffRule.objects.filter(Q(language=language) | Q(language=""), active=True).exclude(
        keywords=""
    )
    return list(rules.select_related("team").order_by("id"))


def team_for(*, language: str) -> Team | None:
    """The team that serves LANGUAGE (a team listing it, else one listing no language)."""
    teams = list(Team.objects.order_by("id"))
    for team in teams:
        if language in (team.languages or []):
            return team
    base = language.split("-")[0]
    for team in teams:
        if any(code.split("-")[0] == base for code in team.languages or []):
            return team
    return next((team for team in teams if not team.languages), teams[0] if teams else None)


def team_is_open(*, team: Team | None, at: datetime.datetime | None = None) -> bool:
    """Whether TEAM works at AT (now): inside an opening interval of that weekday, in the
    team's time zone, and not a holiday. A team with no hours is always open."""
    if team is None:
        return True
    local = (at or timezone.now()).astimezone(ZoneInfo(team.time_zone or "UTC"))
    if local.date().isoformat() in {str(day) for day in team.holidays or []}:
        return False
    hours = team.opening_hours or {}
    if not hours:
        return True
    clock = local.strftime("%H:%M")
    return any(start <= clock < end for start, end in hours.get(str(local.weekday()), []))


def agents_online(*, team: Team | None) -> int:
    """Agents with a live inbox socket (in TEAM, when given and it has members)."""
    cutoff = timezone.now() - datetime.timedelta(seconds=ONLINE_SECONDS)
    online = AgentProfile.objects.filter(last_seen_at__gte=cutoff, user__is_active=True)
    if team is not None and team.agents.exists():
        online = online.filter(teams=team)
    return online.count()


@dataclass(frozen=True)
class Availability:
    team: Team | None
    open: bool  # the team works now and an agent is online
    wait_minutes: int | None  # expected wait, when open


def availability(*, team: Team | None) -> Availability:
    """Whether someone can join now and, if so, the expected wait: the median time agents took
    to claim the team's last 20 handed-off conversations, times the queue ahead per agent
    online (at least one minute)."""
    online = agents_online(team=team)
    if not team_is_open(team=team) or online == 0:
        return Availability(team=team, open=False, wait_minutes=None)
    recent = Conversation.objects.filter(handoff_at__isnull=False, assigned_at__isnull=False)
    waiting = Conversation.objects.filter(
        mode=Conversation.Mode.WAITING, status=Conversation.Status.OPEN
    )
    if team is not None:
        recent, waiting = recent.filter(team=team), waiting.filter(team=team)
    pairs = recent.order_by("-assigned_at").values_list("handoff_at", "assigned_at")[:20]
    waits = [
        max(0.0, (assigned - handed).total_seconds())
        for handed, assigned in pairs
        if handed is not None and assigned is not None
    ]
    median = statistics.median(waits) if waits else 120.0
    queue = waiting.count()
    minutes = median / 60 * (1 + queue / online)
    return Availability(team=team, open=True, wait_minutes=max(1, round(minutes)))
