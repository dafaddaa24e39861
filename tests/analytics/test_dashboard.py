"""The analytics dashboard (/admin/analytics/): who may open it, its filters, bad parameters,
every table as CSV, each interface language (right to left for Arabic and Hebrew) and the
charts' JSON block, over roll-up rows in the test database."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client

from analytics.models import DailyAgentStats, DailyLanguageStats
from inbox.models import AgentProfile, Team

pytestmark = pytest.mark.django_db
URL = "/admin/analytics/"
END = date(2026, 11, 30)


def day(n: int) -> date:
    """N days before END."""
    return END - timedelta(days=n)


def stats(when: date, language: str, conversations: int, **counts: int) -> DailyLanguageStats:
    defaults = {
        "messages": conversations * 4,
        "visitors": conversations,
        "confirmed": 0,
        "assumed": 0,
        "handed_off": 0,
        "agent_resolved": 0,
        "unresolved": 0,
        "open": 0,
    }
    defaults.update(counts)
    return DailyLanguageStats.objects.create(
        date=when, language=language, conversations=conversations, **defaults
    )


@pytest.fixture
def rollups() -> dict[str, Any]:
    """Three days of English, Arabic and Japanese; Japanese is served badly (unresolved)."""
    for n in range(3):
        stats(day(n), "en", 20, confirmed=8, assumed=6, agent_resolved=3, unresolved=2, open=1)
        stats(day(n), "ar", 10, confirmed=4, assumed=4, handed_off=1, unresolved=1)
        stats(day(n), "ja", 10, confirmed=1, assumed=1, unresolved=8)
    # Outside the default range's first days: only a wide range sees it.
    stats(day(60), "en", 100, confirmed=100)
    team = Team.objects.create(name="Billing")
    anna = User.objects.create_user(username="anna")
    AgentProfile.objects.create(user=anna, display_name="Anna", preferred_language="de")
    # A name a spreadsheet would run as a formula, were it not escaped in the CSV.
    mallory = User.objects.create_user(username="mallory")
    AgentProfile.objects.create(user=mallory, display_name="=HYPERLINK(1)")
    for n in range(3):
        DailyAgentStats.objects.create(
            date=day(n),
            language="ar",
            agent=anna,
            team=team,
            handled=3,
            first_response_s_sum=90,
            first_response_count=3,
            resolution_s_sum=1800,
            resolution_count=3,
            csat_sum=14,
            csat_count=3,
        )
    DailyAgentStats.objects.create(date=day(0), language="en", agent=mallory, handled=1)
    return {"team": team, "anna": anna}


@pytest.fixture
def superuser_client(client: Client) -> Client:
    user = User.objects.create_superuser("boss", password="x")  # noqa: S106
    client.force_login(user)
    return client


def params(**extra: str) -> dict[str, str]:
    return {"start": day(6).isoformat(), "end": END.isoformat(), **extra}


def chart_data(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script id="analytics-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, "the page has no JSON data block"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def read_csv(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf"), "no byte-order mark for Excel"
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


# --- who may look ---------------------------------------------------------------------------
def test_anonymous_visitors_are_sent_to_the_admin_sign_in(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/analytics/")


def test_staff_without_the_view_permission_are_refused(client: Client) -> None:
    client.force_login(User.objects.create_user("clerk", is_staff=True))
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"export": "days"}).status_code == 403


def test_a_signed_in_non_staff_user_gets_the_admin_sign_in(client: Client) -> None:
    client.force_login(User.objects.create_user("visitor"))
    assert client.get(URL).status_code == 302


def test_staff_with_the_view_permission_and_superusers_see_the_page(
    client: Client, superuser_client: Client, rollups: dict[str, Any]
) -> None:
    analyst = User.objects.create_user("analyst", is_staff=True)
    analyst.user_permissions.add(Permission.objects.get(codename="view_dailylanguagestats"))
    client.force_login(analyst)
    for each in (client, superuser_client):
        response = each.get(URL, params())
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")


def test_the_admin_index_links_to_the_dashboard_for_those_who_may_open_it(
    client: Client, superuser_client: Client
) -> None:
    assert 'href="/admin/analytics/"' in superuser_client.get("/admin/").content.decode()
    client.force_login(User.objects.create_user("clerk", is_staff=True))
    index = client.get("/admin/")
    assert index.status_code == 200
    assert 'href="/admin/analytics/"' not in index.content.decode()


# --- filters --------------------------------------------------------------------------------
def test_the_date_range_and_language_filters_choose_the_rows(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    data = chart_data(superuser_client.get(URL, params()).content.decode())
    assert len(data["labels"]) == 7
    assert data["labels"][-1] == END.isoformat()
    volume = {series["key"]: series["data"] for series in data["volume"]}
    assert volume["conversations"][-3:] == [40, 40, 40]
    assert sum(volume["conversations"]) == 120

    arabic = chart_data(superuser_client.get(URL, params(language="ar")).content.decode())
    volume = {series["key"]: series["data"] for series in arabic["volume"]}
    assert sum(volume["conversations"]) == 30
    outcomes = {series["key"]: series["data"] for series in arabic["outcomes"]}
    assert sum(outcomes["handed_off"]) == 3

    wide = superuser_client.get(URL, {"start": day(90).isoformat(), "end": END.isoformat()})
    volume = {
        series["key"]: series["data"] for series in chart_data(wide.content.decode())["volume"]
    }
    assert sum(volume["conversations"]) == 220


def test_without_parameters_the_last_28_days_in_all_languages_are_shown(
    superuser_client: Client,
) -> None:
    response = superuser_client.get(URL)
    assert response.status_code == 200
    assert len(chart_data(response.content.decode())["labels"]) == 28


def test_containment_is_shown_confirmed_and_assumed_apart(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    response = superuser_client.get(URL, params(language="en"))
    data = chart_data(response.content.decode())
    containment = {series["key"]: series["data"] for series in data["containment"]}
    # English: 20 a day, one still open, 8 confirmed and 6 assumed of the 19 finished.
    assert containment["confirmed"][-1] == pytest.approx(8 / 19)
    assert containment["assumed"][-1] == pytest.approx(6 / 19)
    assert containment["confirmed"][0] is None  # a day without conversations has no rate
    html = response.content.decode()
    assert "Containment, confirmed" in html and "Containment, assumed" in html
    cards = html.split("an-cards", 1)[1].split("</dl>", 1)[0]
    assert "42.1%" in cards and "31.6%" in cards, cards


# --- bad parameters: a message, never a 500 -------------------------------------------------
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "yesterday"}, "Enter a valid date."),
        ({"end": "2026-02-30"}, "Enter a valid date."),
        ({"start": "2026-11-30", "end": "2026-11-01"}, "The start date is after the end date."),
        ({"start": "2020-01-01", "end": "2026-11-30"}, "Choose a range of at most 366 days."),
        ({"language": "xx"}, "There is no language xx in the statistics."),
        ({"language": "<script>"}, "There is no language &lt;script&gt; in the statistics."),
        ({"language": "a" * 500}, "Ensure this value has at most 16 characters"),
        ({"start": "\x00"}, "Enter a valid date."),
    ],
)
def test_bad_filters_get_a_clear_message_and_the_default_range(
    superuser_client: Client, rollups: dict[str, Any], query: dict[str, str], message: str
) -> None:
    response = superuser_client.get(URL, query)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert "Showing the last 28 days in all languages instead." in html, html[
        html.find("an-errors") - 100 :
    ][:600]
    assert len(chart_data(html)["labels"]) == 28
    exported = superuser_client.get(URL, {**query, "export": "days"})
    assert exported.status_code == 400
    assert exported["Content-Type"].startswith("text/plain")


def test_an_unknown_table_to_export_is_a_400_with_a_message(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    response = superuser_client.get(URL, params(export="secrets"))
    assert response.status_code == 400
    assert response.content.decode() == "There is no table secrets to export."


# --- CSV ------------------------------------------------------------------------------------
def test_every_table_exports_as_csv_with_a_header_row(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    expected = {
        "days": (["Date", "Conversations", "Messages", "Visitors"], 7),
        "languages": (["Code", "Language", "Conversations"], 3),
        "agents": (["Agent", "Team", "Conversations handled"], 2),
        "teams": (["Team", "Conversations handled"], 2),
    }
    for table, (header_start, count) in expected.items():
        response = superuser_client.get(URL, params(export=table))
        assert response.status_code == 200, table
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == (
            f'attachment; filename="analytics-{table}-{day(6).isoformat()}-{END.isoformat()}.csv"'
        )
        rows = read_csv(response.content)
        assert rows[0][: len(header_start)] == header_start, table
        assert len(rows) == 1 + count, table
        assert all(len(row) == len(rows[0]) for row in rows), table
    days = read_csv(superuser_client.get(URL, params(export="days")).content)
    assert days[-1][:4] == [END.isoformat(), "40", "160", "40"]
    languages = read_csv(superuser_client.get(URL, params(export="languages")).content)
    by_code = {row[0]: dict(zip(languages[0], row, strict=True)) for row in languages[1:]}
    assert by_code["ja"]["Flagged"] == "1" and by_code["en"]["Flagged"] == "0"
    assert by_code["ar"]["Language"] == "Arabic"
    agents = read_csv(superuser_client.get(URL, params(export="agents")).content)
    anna = dict(zip(agents[0], agents[1], strict=True))
    assert anna["Agent"] == "Anna" and anna["Team"] == "Billing"
    assert anna["Conversations handled"] == "9" and anna["First response"] == "30.0"
    # A spreadsheet formula in a name is exported as text.
    assert agents[2][0] == "'=HYPERLINK(1)"
    assert agents[2][1] == "No team"


def test_the_knowledge_sections_say_when_they_are_not_available(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    html = superuser_client.get(URL, params()).content.decode()
    try:
        import analytics.gaps  # noqa: F401
    except ImportError:
        assert "Knowledge gaps are not available yet" in html
        assert superuser_client.get(URL, params(export="gaps")).status_code == 400
    else:
        assert 'id="an-gaps-h"' in html


# --- the page -------------------------------------------------------------------------------
def test_flagged_languages_stand_out_with_an_icon_and_words(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    html = superuser_client.get(URL, params()).content.decode()
    assert "Languages that need attention" in html
    attention = html.split("Languages that need attention", 1)[1].split("</div>", 1)[0]
    assert "Japanese (ja)" in attention
    assert "many more conversations unresolved or handed off than in all languages" in attention
    assert "Arabic" not in attention and "English" not in attention
    rows = re.findall(r'<tr class="an-flag">(.*?)</tr>', html, re.S)
    assert len(rows) == 1 and ">ja<" in rows[0] and "⚠" in rows[0] and "Flagged" in rows[0]


def test_the_chart_data_is_a_json_block_and_the_page_has_no_inline_script(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    response = superuser_client.get(URL, params())
    html = response.content.decode()
    data = chart_data(html)
    assert {s["key"] for s in data["volume"]} == {"conversations", "messages", "visitors"}
    assert [s["key"] for s in data["outcomes"]] == [
        "confirmed",
        "assumed",
        "agent_resolved",
        "handed_off",
        "unresolved",
        "open",
    ]
    assert [s["key"] for s in data["containment"]] == ["confirmed", "assumed"]
    assert all(len(s["data"]) == 7 for s in data["volume"] + data["outcomes"])
    assert data["language"] == "en"
    # Every <script> is either a file of our own or the JSON block.
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="/static/' in tag or 'type="application/json"' in tag, tag
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "/static/analytics/vendor/chart.umd.min.js" in html
    assert "/static/analytics/dashboard.js" in html
    # Each chart has its numbers in a table on the page.
    assert html.count('data-chart="') == 3
    assert 'id="table-days"' in html


@pytest.mark.parametrize("language", [code for code, _name in settings.LANGUAGES])
def test_the_page_renders_in_each_interface_language(
    superuser_client: Client, rollups: dict[str, Any], language: str
) -> None:
    superuser_client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = superuser_client.get(URL, params())
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<html lang="{language}" dir="{"rtl" if language in ("ar", "he") else "ltr"}"' in html
    assert chart_data(html)["language"] == language
    assert superuser_client.get(URL, params(export="languages")).status_code == 200


# --- knowledge gaps and articles (analytics.gaps) -------------------------------------------
def gap(label: str, language: str, questions: list[tuple[str, str]]) -> Any:
    """A knowledge gap with QUESTIONS ((language, text)) asked today, stored through the chat's
    real service; the vectors are placeholders (clustering is tested in test_gaps.py)."""
    from django.utils import timezone

    from analytics.models import GapCluster, GapQuestion, GapReason
    from chat import services
    from chat.models import Visitor

    now = timezone.now()
    cluster = GapCluster.objects.create(
        label=label, language=language, count=len(questions), first_seen_at=now, last_seen_at=now
    )
    for n, (code, text) in enumerate(questions):
        sent = services.message_send(
            visitor=Visitor.objects.create(),
            conversation=None,
            language=code,
            client_id=f"{label[:8]}-{n}",
            text=text,
        )
        GapQuestion.objects.create(
            message=sent.message,
            cluster=cluster,
            language=code,
            text=text,
            reason=GapReason.NO_KNOWLEDGE,
            embedder=GapQuestion.Embedder.USEM3,
            embedding=[0.1] * 512,
            embedding_secondary=[0.1] * 384,
            asked_at=now,
        )
    return cluster


def test_knowledge_gaps_are_listed_with_a_link_that_opens_a_prefilled_article(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    from django.utils import timezone

    pytest.importorskip("analytics.gaps")
    gap(
        "Wie exportiere ich meine Daten nach Excel?",
        "de",
        [
            ("de", "Wie exportiere ich meine Daten nach Excel?"),
            ("ar", "كيف يمكنني تصدير بياناتي إلى Excel؟"),
            ("de", "=HYPERLINK(Excel)"),
        ],
    )
    today = {"start": timezone.localdate().isoformat(), "end": timezone.localdate().isoformat()}
    html = superuser_client.get(URL, today).content.decode()
    section = html.split('id="an-gaps-h"', 1)[1].split("</section>", 1)[0]
    assert "Wie exportiere ich meine Daten nach Excel?" in section
    assert 'dir="auto" lang="ar">كيف يمكنني تصدير بياناتي إلى Excel؟<' in section
    link = re.search(r'<a class="button" href="([^"]+)">Write an article</a>', section)
    assert link, section
    href = link.group(1).replace("&amp;", "&")
    assert href.startswith("/admin/knowledge/article/add/?")
    # The knowledge admin's add form opens with the title in the gap's language, as a draft.
    form = superuser_client.get(href).content.decode()
    assert re.search(
        r'<input type="text" name="title_de" value="Wie exportiere ich meine Daten nach Excel\?"',
        form,
    ), "the add form's German title is not prefilled"
    assert re.search(r'<option value="draft" selected>', form)

    rows = read_csv(superuser_client.get(URL, {**today, "export": "gaps"}).content)
    assert rows[0] == ["Questions about", "Questions", "Questions per week", "Languages", "Example"]
    assert rows[1][:2] == ["Wie exportiere ich meine Daten nach Excel?", "3"]
    assert rows[1][3] == "ar; de"


def test_article_lists_show_never_cited_and_stale_articles(
    superuser_client: Client, rollups: dict[str, Any]
) -> None:
    from django.utils import timezone

    from knowledge.models import Article

    pytest.importorskip("analytics.gaps")
    fresh = Article.objects.create(title_en="Reset your password", status="published")
    old = Article.objects.create(title_en="Fax support", status="published")
    Article.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=400))
    html = superuser_client.get(URL, params()).content.decode()
    section = html.split('id="an-articles-h"', 1)[1].split("</section>", 1)[0]
    assert f'href="/admin/knowledge/article/{fresh.pk}/change/"' in section
    stale = section.split("Not updated for a long time", 1)[1]
    assert "Fax support" in stale and "Reset your password" not in stale
    rows = read_csv(superuser_client.get(URL, params(export="articles")).content)
    assert rows[0] == ["List", "Article", "Citations", "Updated"]
    listed = {(row[0], row[1]) for row in rows[1:]}
    assert ("Never cited", "Fax support") in listed
    assert ("Never cited", "Reset your password") in listed
    assert ("Not updated for a long time", "Fax support") in listed
