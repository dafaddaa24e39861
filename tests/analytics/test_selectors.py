"""The dashboard's reads: numbers from the roll-ups, the containment split and the flag rule."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from analytics import selectors
from analytics.models import DailyAgentStats, DailyLanguageStats
from inbox.models import AgentProfile, Team

pytestmark = pytest.mark.django_db

DAY = datetime.date(2026, 11, 2)


def _day(language: str, day: datetime.date = DAY, **counts: Any) -> DailyLanguageStats:
    outcomes = ("confirmed", "assumed", "handed_off", "agent_resolved", "unresolved", "open")
    counts.setdefault("conversations", sum(counts.get(name, 0) for name in outcomes))
    return DailyLanguageStats.objects.create(date=day, language=language, **counts)


def test_overview_lists_every_day_and_splits_containment_over_finished_conversations() -> None:
    _day("en", confirmed=2, assumed=4, handed_off=1, agent_resolved=1, unresolved=2, open=5,
         messages=40, visitors=14)  # fmt: skip
    _day("de", DAY + datetime.timedelta(days=2), assumed=1, messages=2, visitors=1)
    _day("en", DAY + datetime.timedelta(days=30), confirmed=9)  # outside the range
    result = selectors.overview(start=DAY, end=DAY + datetime.timedelta(days=2))
    assert [day["date"] for day in result["days"]] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert result["days"][1]["conversations"] == 0
    totals = result["totals"]
    assert (totals["conversations"], totals["messages"], totals["open"]) == (16, 42, 5)
    # Finished: 16 - 5 open = 11; confirmed 2/11, assumed 5/11.
    assert totals["containment_confirmed"] == pytest.approx(2 / 11)
    assert totals["containment_assumed"] == pytest.approx(5 / 11)
    german = selectors.overview(start=DAY, end=DAY + datetime.timedelta(days=2), language="de")
    assert german["totals"]["conversations"] == 1 and german["totals"]["containment_assumed"] == 1
    empty = selectors.overview(start=DAY, end=DAY, language="fr")
    assert empty["totals"]["containment_confirmed"] is None


def test_per_language_figures_and_a_language_with_many_handoffs_is_flagged() -> None:
    # Overall (en + ar + ja): (unresolved + handoffs) / finished = (2 + 4 + 8) / 60 = 0.23.
    _day("en", assumed=36, confirmed=2, unresolved=2, handoffs=0, thumbs_up=9, thumbs_down=1,
         csat_sum=18, csat_count=4, ttft_ms_sum=3000.0, ttft_count=10, language_correct=20,
         language_checked=20)  # fmt: skip
    _day("ar", assumed=6, unresolved=2, agent_resolved=2, handoffs=2, language_correct=10,
         language_checked=10)  # fmt: skip
    _day("ja", assumed=2, unresolved=6, handed_off=2, handoffs=2, language_correct=5,
         language_checked=10)  # fmt: skip
    items = {item["language"]: item for item in selectors.per_language(start=DAY, end=DAY)}
    en = items["en"]
    assert en["conversations"] == 40 and en["outcomes"]["assumed"] == 36
    assert en["csat"] == 4.5 and en["csat_count"] == 4 and en["thumbs_up_rate"] == 0.9
    assert en["ttft_ms"] == 300.0 and en["reply_language_correct"] == 1.0
    assert en["handoff_rate"] == 0 and not en["flagged"] and en["flag_reasons"] == []
    # ja: (6 + 2) / 10 = 0.8 against 0.23 overall; half its replies in another language.
    assert items["ja"]["flag_reasons"] == ["unresolved_or_handoff_rate", "reply_language"]
    assert items["ja"]["flagged"] and items["ja"]["handoff_rate"] == 0.2
    # ar: (2 + 2) / 10 = 0.4 >= 1.5 * 0.23, with 10 finished conversations (the minimum).
    assert items["ar"]["flag_reasons"] == ["unresolved_or_handoff_rate"]
    assert items["ar"]["thumbs_up_rate"] is None and items["ar"]["csat"] is None
    assert [item["language"] for item in selectors.per_language(start=DAY, end=DAY)][0] == "en"


def test_too_few_conversations_are_not_flagged_and_a_low_thumbs_up_rate_is() -> None:
    _day("en", assumed=50, thumbs_up=45, thumbs_down=5)
    _day("fr", unresolved=9)  # 9 finished: below the minimum of 10
    _day("ru", assumed=20, thumbs_up=5, thumbs_down=10)  # 0.33 against 50/65 = 0.77 overall
    items = {item["language"]: item for item in selectors.per_language(start=DAY, end=DAY)}
    assert not items["fr"]["flagged"]
    assert items["ru"]["flag_reasons"] == ["thumbs_up_rate"]
    assert not items["en"]["flagged"]


def test_agents_and_teams_average_over_their_conversations() -> None:
    user = get_user_model().objects.create_user(username="anna")
    AgentProfile.objects.create(user=user, display_name="Anna K.")
    other = get_user_model().objects.create_user(username="ben")
    team = Team.objects.create(name="Arabic desk")
    DailyAgentStats.objects.create(date=DAY, language="ar", agent=user, team=team, handled=3,
        first_response_s_sum=90.0, first_response_count=3, resolution_s_sum=600.0,
        resolution_count=2, csat_sum=9, csat_count=2)  # fmt: skip
    DailyAgentStats.objects.create(date=DAY, language="en", agent=user, team=None, handled=1,
        first_response_s_sum=30.0, first_response_count=1)  # fmt: skip
    DailyAgentStats.objects.create(date=DAY, language="ar", agent=other, team=team, handled=1)
    rows = selectors.agents(start=DAY, end=DAY)
    assert rows[0] == {
        "agent_id": user.pk,
        "agent": "Anna K.",
        "team": "Arabic desk",
        "handled": 4,
        "first_response_s": 30.0,
        "resolution_s": 300.0,
        "csat": 4.5,
        "csat_count": 2,
    }
    assert rows[1]["agent"] == "ben" and rows[1]["first_response_s"] is None
    assert [row["handled"] for row in selectors.agents(start=DAY, end=DAY, language="en")] == [1]
    by_team = {row["team"]: row for row in selectors.teams(start=DAY, end=DAY)}
    assert by_team["Arabic desk"]["handled"] == 4 and by_team["Arabic desk"]["csat"] == 4.5
    assert by_team[None]["handled"] == 1
    assert (
        selectors.agents(
            start=DAY + datetime.timedelta(days=1), end=DAY + datetime.timedelta(days=1)
        )
        == []
    )  # noqa: E501


def test_languages_seen_are_those_in_the_rollups() -> None:
    _day("ja", assumed=1)
    _day("ar", DAY + datetime.timedelta(days=1), assumed=1)
    _day("ja", DAY + datetime.timedelta(days=1), assumed=1)
    assert selectors.languages_seen() == ["ar", "ja"]
