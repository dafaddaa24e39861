"""The analytics dashboard in headless Chromium against a real Daphne: the charts draw, nothing
is refused by the Content-Security-Policy, no script error, and the Arabic page is mirrored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from analytics.models import DailyAgentStats, DailyLanguageStats
from inbox.models import AgentProfile, Team
from tests.e2e.conftest import ChatServer, agent_session, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DAYS = 14

# Whether each canvas has anything drawn on it (not one transparent pixel everywhere).
CANVASES_DRAWN_JS = """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let painted = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) painted++;
    return {chart: c.dataset.chart, width: c.width, height: c.height, painted};
})"""
# Content-Security-Policy refusals, as the page sees them.
RECORD_VIOLATIONS = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def seed() -> User:
    today = timezone.localdate()
    for n in range(DAYS):
        day = today - timedelta(days=n)
        for language, size, bad in (("en", 40, 2), ("ar", 20, 3), ("ja", 12, 8)):
            conversations = size + n % 5
            DailyLanguageStats.objects.create(
                date=day,
                language=language,
                conversations=conversations,
                messages=conversations * 5,
                visitors=conversations - 2,
                confirmed=conversations // 3,
                assumed=conversations // 4,
                agent_resolved=2,
                handed_off=1,
                unresolved=bad,
                open=max(0, conversations - conversations // 3 - conversations // 4 - 3 - bad),
            )
    team = Team.objects.create(name="Support")
    agent = User.objects.create_user(username="layla")
    AgentProfile.objects.create(user=agent, display_name="ليلى", preferred_language="ar")
    DailyAgentStats.objects.create(
        date=today, language="ar", agent=agent, team=team, handled=5, csat_sum=20, csat_count=5
    )
    return User.objects.create_superuser("boss", password="boss-password-0123")  # noqa: S106


def open_dashboard(new_page: Any, server: ChatServer, user: User, language: str) -> Any:
    page = new_page(viewport={"width": 1280, "height": 900})
    page.context.add_cookies(
        [
            {"name": "sessionid", "value": agent_session(user), "url": server.url},
            {"name": "django_language", "value": language, "url": server.url},
        ]
    )
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"{message.text} ({message.location.get('url')})")

    def response(answer: Any) -> None:
        if answer.status >= 400:
            problems.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", response)
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(server.url + "/admin/analytics/")
    page.wait_for_function("() => window.AutoGLMAnalytics")
    page.problems = problems
    return page


def assert_drawn(page: Any) -> None:
    canvases = page.evaluate(CANVASES_DRAWN_JS)
    assert [c["chart"] for c in canvases] == ["volume", "outcomes", "containment"]
    for canvas in canvases:
        assert canvas["width"] > 300 and canvas["height"] > 100, canvas
        # Axes, bars and lines: well over a few stray pixels.
        assert canvas["painted"] > 2000, canvas
    assert page.evaluate("window.__csp") == []
    assert page.problems == []


def test_charts_draw_without_script_errors_or_policy_refusals(
    chat_server: ChatServer, new_page: Any
) -> None:
    user = seed()
    page = open_dashboard(new_page, chat_server, user, "en")
    assert page.locator("html").get_attribute("dir") == "ltr"
    assert_drawn(page)
    charts = page.evaluate(
        "() => Object.fromEntries(Object.entries(AutoGLMAnalytics.charts).map(([k, c]) =>"
        " [k, {datasets: c.data.datasets.length, points: c.data.labels.length,"
        " reverse: !!c.options.scales.x.reverse}]))"
    )
    assert charts == {
        "volume": {"datasets": 3, "points": 28, "reverse": False},
        "outcomes": {"datasets": 6, "points": 28, "reverse": False},
        "containment": {"datasets": 2, "points": 28, "reverse": False},
    }
    # Japanese stands out in the table, with words, not colour alone.
    flagged = page.locator("#table-languages tr.an-flag")
    assert flagged.count() == 1
    assert "ja" in flagged.inner_text() and "Flagged" in flagged.inner_text()
    # The numbers behind the charts are one click away.
    page.locator(".an-data summary").click()
    assert page.locator("#table-days tbody tr").count() == 28
    # A filter is a plain GET form.
    page.select_option("#an-language", "ar")
    page.locator(".an-filters input[type=submit]").click()
    page.wait_for_url("**language=ar**")
    page.wait_for_function("() => window.AutoGLMAnalytics")
    assert_drawn(page)
    screenshot(page, "analytics-en.png")


def test_the_arabic_dashboard_is_mirrored(chat_server: ChatServer, new_page: Any) -> None:
    user = seed()
    page = open_dashboard(new_page, chat_server, user, "ar")
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert page.locator("html").get_attribute("lang") == "ar"
    assert_drawn(page)
    # Time runs from the right: the first day is drawn right of the last one, the values'
    # axis is on the right, legends and tooltips read right to left.
    layout = page.evaluate(
        "() => { const c = AutoGLMAnalytics.charts.volume, x = c.scales.x;"
        " return {first: x.getPixelForValue(0), last: x.getPixelForValue(x.max),"
        " y: c.scales.y.position, legend: c.options.plugins.legend.rtl,"
        " tooltip: c.options.plugins.tooltip.rtl}; }"
    )
    assert layout["first"] > layout["last"]
    assert layout == {**layout, "y": "right", "legend": True, "tooltip": True}
    # The page itself: the filters start at the right edge.
    width = page.viewport_size["width"]
    start = page.locator("label[for=an-start]").bounding_box()
    end = page.locator("label[for=an-end]").bounding_box()
    assert start["x"] > width / 2 and start["x"] > end["x"]
    screenshot(page, "analytics-ar.png")
