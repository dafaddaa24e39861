"""README's screenshots: the widget and the agent inbox with real answers of the packaged model.

Starts Daphne on the embedded defaults (the packaged PostgreSQL with the demo knowledge base,
the local engine with the packaged Qwen2.5 model: `make screenshots` prepares both), opens the
demo page in headless Chromium and asks one question in English, Chinese and Arabic on a
desktop and one on a 360 px phone, waits for each streamed answer and its citations, and writes
docs/screenshots/answer-*.png. Each reply is generated for real: several minutes on 2 cores.

The inbox step (docs/inbox.md) works on a database of its own (--inbox-db, made anew each run,
so the demo database gets no agents): Arabic, Spanish and Japanese visitors ask for a person in
the widget, Anna (German) sees the queue, claims the Arabic conversation and answers it, Karim
(Arabic) reads the Spanish one; every translation is made by the packaged model. It writes
docs/screenshots/inbox-queue.png, inbox-conversation.png, inbox-rtl.png and
widget-agent-reply.png (one to a few minutes on 2 cores).

The analytics step works on a database of its own too (--analytics-db, made anew each run):
four weeks of roll-ups in eleven languages (Japanese and Hebrew served worse than the others,
so they are flagged), agents and teams, seeded directly into the roll-up tables; it writes the
dashboard (/admin/analytics/) in English and in Arabic (right to left) to
docs/screenshots/analytics-en.png and analytics-ar.png (seconds; no model needed).

    .venv/bin/python scripts/screenshots.py [--only answers|inbox|analytics] [--port 8124]
        [--out docs/screenshots] [--inbox-db autoglm_screenshots]
        [--analytics-db autoglm_screenshots_analytics]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("AUTOGLM_CHROMIUM", "/usr/bin/chromium")
ROOT_JS = "document.querySelector('autoglm-chat').shadowRoot"
DONE_JS = f"""(count) => {{
    const r = [...{ROOT_JS}.querySelectorAll('.m.assistant')].slice(1);
    return r.length === count && r.every(m => !!m.querySelector('.rate'));
}}"""
REPLY_JS = f"""() => {{
    const r = [...{ROOT_JS}.querySelectorAll('.m.assistant')].slice(1);
    const last = r[r.length - 1];
    return {{text: last.querySelector('.b').textContent,
             sources: last.querySelectorAll('.src li, .sources li, li').length}};
}}"""

SHOTS = [
    # (file, browser locale, viewport, question)
    ("answer-english.png", "en-US", (1100, 760), "How do I reset my password?"),
    ("answer-chinese.png", "zh-CN", (1100, 760), "年度套餐可以退款吗？"),
    ("answer-arabic.png", "ar", (1100, 760), "ما هي حدود التخزين في الخطة المجانية؟"),
    ("answer-phone.png", "en-US", (360, 740), "How do I delete my account?"),
]


# --- the agent inbox ------------------------------------------------------------------------
INBOX_VIEWPORT = (1280, 800)
# (browser locale, what the visitor writes: the first asks for a person, in their language)
VISITORS = [
    ("ar", ["أريد التحدث مع موظف من فضلك، طلبي رقم 4521 لم يصل", "أنتظر منذ أسبوعين."]),
    (
        "es-ES",
        [
            "Quiero hablar con una persona sobre mi factura, por favor.",
            "Necesito una factura para mi empresa.",
        ],
    ),
    ("ja-JP", ["担当者と話したいです。今月の請求が二重になっています。"]),
]
ANNA_REPLY = "Das tut mir leid. Ich prüfe jetzt den Versand Ihrer Bestellung 4521."
KARIM_REPLY = "مرحبا! سأرسل لك الفاتورة اليوم."
TRANSLATION_WAIT_S = 180  # per message, on a busy 2-core machine
# The translation state of the open conversation's messages of ROLE in the inbox.
TRANSLATIONS_JS = """(role) => {
    const ms = [...document.querySelectorAll('#messages .msg.' + role)];
    return {count: ms.length,
            pending: ms.filter(m => m.querySelector('.tr-note.pending')).length,
            failed: ms.filter(m => m.querySelector('.tr-note.failed')).length,
            done: ms.filter(m => m.querySelector('.toggle')).length};
}"""


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"daphne did not answer at {url} within {timeout:g} s")


def shoot(browser: Any, url: str, out: Path, shot: tuple[str, str, tuple[int, int], str]) -> None:
    name, locale, (width, height), question = shot
    phone = width < 500
    context = browser.new_context(
        locale=locale,
        viewport={"width": width, "height": height},
        is_mobile=phone,
        has_touch=phone,
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(url + "/")
    page.locator("autoglm-chat >> .launch").click()
    textarea = page.locator("autoglm-chat >> textarea")
    textarea.wait_for()
    textarea.fill(question)
    textarea.press("Enter")
    started = time.monotonic()
    page.wait_for_function(DONE_JS, arg=1, timeout=300_000)
    reply = page.evaluate(REPLY_JS)
    # Show the question with the start of its answer (the log scrolls to the end of a long one).
    page.evaluate(
        f"() => {{ const u = [...{ROOT_JS}.querySelectorAll('.m.user')].pop(); "
        "u.scrollIntoView({block: 'start'}); }"
    )
    page.wait_for_timeout(300)  # let the last frame paint
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / name))
    took = time.monotonic() - started
    print(f"{name}: {question!r} answered in {took:.1f} s: {reply['text'][:160]!r}")
    context.close()


def database_fresh(database: str, option: str) -> None:
    """DATABASE of the packaged PostgreSQL dropped and made anew, Django set up on it and
    migrated (the ORM work of a step is done before Playwright starts)."""
    if database == "autoglm":
        raise SystemExit(f"{option} must not be the demo database (it is dropped and made anew)")
    os.environ["AUTOGLM_EMBEDDED_DB_NAME"] = database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
    # Playwright's sync API later runs an event loop in this thread; the ORM work is done first.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    sys.path.insert(0, str(ROOT))
    import psycopg
    from psycopg import sql

    from autoglm_site.embedded import ensure_database

    pg_dir = ensure_database()
    if pg_dir is not None:  # the packaged server: drop what an earlier run left
        with psycopg.connect(
            host=str(pg_dir), user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def session_key(user: Any) -> str:
    """The key of a signed-in session of USER (signed with this environment's SECRET_KEY)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    assert session.session_key is not None
    return session.session_key


def inbox_prepare(database: str) -> dict[str, str]:
    """DATABASE made anew and migrated, with the agents Anna (German) and Karim (Arabic):
    {username: key of a signed-in session} (signed with the server's SECRET_KEY, the same
    environment's)."""
    database_fresh(database, "--inbox-db")
    from django.contrib.auth.models import Group, User

    from inbox.models import AGENTS_GROUP, AgentProfile

    group, _created = Group.objects.get_or_create(name=AGENTS_GROUP)
    sessions = {}
    for username, name, language in (("anna", "Anna", "de"), ("karim", "Karim", "ar")):
        user = User.objects.create_user(username=username, password=None)
        user.groups.add(group)
        AgentProfile.objects.create(
            user=user, display_name=name, preferred_language=language, languages=[language]
        )
        sessions[username] = session_key(user)
    from django.db import connections

    connections.close_all()
    return sessions


def agent_open(browser: Any, url: str, session: str, locale: str) -> Any:
    width, height = INBOX_VIEWPORT
    context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
    context.set_default_timeout(30_000)
    context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
    page = context.new_page()
    page.goto(url + "/inbox/")
    page.locator("#list").wait_for(state="attached")
    page.wait_for_function("() => window.AutoGLMInbox && AutoGLMInbox.state().connected")
    return page


def visitor_open(browser: Any, url: str, locale: str) -> Any:
    context = browser.new_context(locale=locale, viewport={"width": 1100, "height": 760})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(url + "/")
    page.locator("autoglm-chat >> .launch").click()
    page.locator("autoglm-chat >> textarea").wait_for()
    return page


def visitor_says(page: Any, text: str) -> None:
    count = page.locator("autoglm-chat >> .m.user").count()
    textarea = page.locator("autoglm-chat >> textarea")
    textarea.fill(text)
    textarea.press("Enter")
    # Stored (the widget no longer shows it as queued) before the next one is written.
    page.wait_for_function(
        f"(n) => [...{ROOT_JS}.querySelectorAll('.m.user')].length > n", arg=count
    )


def wait_translations(page: Any, role: str, count: int) -> float:
    """Wait until the COUNT messages of ROLE in the open conversation are translated (asking
    again for a failed visitor's message, up to twice); the seconds it took."""
    started = time.monotonic()
    retries = 0
    deadline = started + TRANSLATION_WAIT_S * count
    while True:
        state = page.evaluate(TRANSLATIONS_JS, role)
        if state["count"] >= count and state["done"] == state["count"]:
            return time.monotonic() - started
        if state["failed"]:
            retry = page.locator(f"#messages .msg.{role} .retry")
            if role != "user" or retries >= 2 or not retry.count():
                raise SystemExit(f"the {role} messages' translation failed: {state}")
            retries += 1
            print(f"  a translation failed, trying again ({retries})")
            retry.first.click()
        if time.monotonic() > deadline:
            raise SystemExit(f"the {role} messages were not translated in time: {state}")
        page.wait_for_timeout(500)


def no_toast(page: Any, name: str) -> None:
    toast = page.locator("#toast")
    if toast.count() and toast.is_visible():
        raise SystemExit(f"{name}: the inbox shows an error: {toast.inner_text()!r}")


def save(page: Any, out: Path, name: str) -> None:
    page.wait_for_timeout(400)  # let the last frame paint
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / name))


def open_row(page: Any, language: str) -> None:
    page.locator("#list .row", has=page.locator(".lang", has_text=language.upper())).click()
    page.locator("#conv-body").wait_for()
    page.locator("#messages .msg.user").first.wait_for()


def shoot_inbox(browser: Any, url: str, out: Path, sessions: dict[str, str]) -> None:
    started = time.monotonic()
    anna = agent_open(browser, url, sessions["anna"], "de-DE")  # online: visitors are told the wait
    visitors = {}
    for locale, texts in VISITORS:
        page = visitors[locale] = visitor_open(browser, url, locale)
        for text in texts:
            visitor_says(page, text)
    anna.wait_for_function(
        "(n) => document.querySelectorAll('#list .row').length === n", arg=len(VISITORS)
    )
    no_toast(anna, "inbox-queue.png")
    save(anna, out, "inbox-queue.png")
    print(f"inbox-queue.png: {len(VISITORS)} waiting ({time.monotonic() - started:.1f} s)")

    # Anna opens the Arabic conversation: the visitor's messages in German.
    arabic = VISITORS[0][1]
    open_row(anna, "ar")
    took = wait_translations(anna, "user", len(arabic))
    texts = anna.locator("#messages .msg.user .text").all_inner_texts()
    print(f"  ar -> de in {took:.1f} s: {texts}")
    anna.locator('[data-action="claim"]').click()
    anna.locator('[data-action="claim"]').wait_for(state="hidden")
    anna.locator("#reply").fill(ANNA_REPLY)
    anna.locator("#reply").press("Control+Enter")
    anna.locator("#messages .msg.agent").first.wait_for()
    took = wait_translations(anna, "agent", 1)
    # The visitor's first message as written (Arabic), the next one in German.
    anna.locator("#messages .msg.user").first.locator(".toggle").click()
    anna.locator("#messages .msg.user").first.locator('.toggle[aria-pressed="true"]').wait_for()
    anna.locator("#conversation").focus()
    no_toast(anna, "inbox-conversation.png")
    save(anna, out, "inbox-conversation.png")
    print(f"inbox-conversation.png: Anna's reply into Arabic in {took:.1f} s")

    # The Arabic visitor reads Anna's reply in Arabic, marked as translated.
    visitor = visitors[VISITORS[0][0]]
    visitor.locator("autoglm-chat >> .m.agent .tr").first.wait_for(timeout=60_000)
    reply = visitor.locator("autoglm-chat >> .m.agent .b").last.inner_text()
    save(visitor, out, "widget-agent-reply.png")
    print(f"widget-agent-reply.png: {reply!r}")

    # Karim (Arabic interface, right to left) opens the Spanish conversation and answers it.
    spanish = VISITORS[1][1]
    karim = agent_open(browser, url, sessions["karim"], "ar")
    open_row(karim, "es")
    took = wait_translations(karim, "user", len(spanish))
    texts = karim.locator("#messages .msg.user .text").all_inner_texts()
    print(f"  es -> ar in {took:.1f} s: {texts}")
    karim.locator("#reply").fill(KARIM_REPLY)
    karim.locator("#reply").press("Control+Enter")
    karim.locator("#messages .msg.agent").first.wait_for()
    took = wait_translations(karim, "agent", 1)
    karim.locator("#conversation").focus()
    if karim.locator("html").get_attribute("dir") != "rtl":
        raise SystemExit("inbox-rtl.png: the Arabic inbox is not right to left")
    no_toast(karim, "inbox-rtl.png")
    save(karim, out, "inbox-rtl.png")
    print(f"inbox-rtl.png: Karim's reply into Spanish in {took:.1f} s")
    print(f"inbox screenshots in {time.monotonic() - started:.1f} s")
    for page in [anna, karim, *visitors.values()]:
        page.context.close()


# --- the analytics dashboard ----------------------------------------------------------------
ANALYTICS_VIEWPORT = (1280, 900)
ANALYTICS_DAYS = 28
# (language, conversations on a weekday, how badly it is served: 1 = like the others)
ANALYTICS_LANGUAGES = [
    ("en", 140, 1.0),
    ("es", 52, 1.0),
    ("zh-hans", 46, 1.1),
    ("de", 38, 0.9),
    ("fr", 30, 1.0),
    ("ar", 26, 1.2),
    ("ja", 21, 2.6),  # flagged: many more unresolved and handed off
    ("pt-br", 17, 1.0),
    ("ru", 14, 1.1),
    ("ko", 11, 1.0),
    ("he", 9, 1.3),  # flagged: replies in the wrong language
]
# (username, name shown, team, languages)
ANALYTICS_AGENTS = [
    ("anna", "Anna", "Europe", ["de", "en"]),
    ("sofia", "Sofía", "Europe", ["es", "pt-br", "fr"]),
    ("karim", "كريم", "Middle East", ["ar", "he"]),
    ("yuki", "Yuki", "Asia Pacific", ["ja", "ko"]),
    ("li", "李明", "Asia Pacific", ["zh-hans"]),
    ("oliver", "Oliver", "Europe", ["en", "ru"]),
]
ANALYTICS_SHOTS = [
    ("analytics-en.png", "en-US", "en"),
    ("analytics-ar.png", "ar", "ar"),
]


def analytics_seed() -> None:
    """Realistic roll-ups (analytics.models' daily tables) for the last ANALYTICS_DAYS days:
    quieter weekends, a growing trend, outcomes that add up to each day's conversations."""
    import random
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.utils import timezone

    from analytics.models import DailyAgentStats, DailyLanguageStats
    from inbox.models import AgentProfile, Team

    rng = random.Random(15)  # the same pictures every run
    today = timezone.localdate()
    teams = {name: Team.objects.create(name=name) for name in {a[2] for a in ANALYTICS_AGENTS}}
    agents = []
    for username, name, team, languages in ANALYTICS_AGENTS:
        user = User.objects.create_user(username=username, password=None)
        profile = AgentProfile.objects.create(
            user=user, display_name=name, preferred_language=languages[0], languages=languages
        )
        profile.teams.add(teams[team])
        agents.append((user, teams[team], languages))
    for n in range(ANALYTICS_DAYS):
        day = today - timedelta(days=ANALYTICS_DAYS - 1 - n)
        weekend = day.weekday() >= 5
        growth = 0.85 + 0.3 * n / ANALYTICS_DAYS
        for language, weekday_volume, badness in ANALYTICS_LANGUAGES:
            total = max(
                1,
                round(
                    weekday_volume * growth * (0.55 if weekend else 1.0) * rng.uniform(0.85, 1.15)
                ),
            )
            # Today's conversations are partly still open.
            still_open = round(total * (0.35 if n == ANALYTICS_DAYS - 1 else 0.01))
            finished = total - still_open
            unresolved = round(finished * min(0.5, 0.07 * badness * rng.uniform(0.8, 1.2)))
            handed = round(finished * min(0.4, 0.11 * badness * rng.uniform(0.8, 1.2)))
            agent_resolved = round(handed * 0.8)
            handed_off = handed - agent_resolved
            rest = finished - unresolved - handed
            confirmed = round(rest * rng.uniform(0.52, 0.62))
            assumed = rest - confirmed
            checked = round(total * 2.6)
            wrong = 0.18 if language == "he" else 0.02
            thumbs = round(total * 0.45)
            thumbs_up = round(thumbs * (0.83 - 0.08 * (badness - 1)))
            ratings = round(finished * 0.2)
            DailyLanguageStats.objects.create(
                date=day,
                language=language,
                conversations=total,
                messages=round(total * rng.uniform(5.2, 6.8)),
                visitors=round(total * rng.uniform(0.86, 0.95)),
                confirmed=confirmed,
                assumed=assumed,
                handed_off=handed_off,
                agent_resolved=agent_resolved,
                unresolved=unresolved,
                open=still_open,
                unresolved_no_knowledge=round(unresolved * 0.6),
                unresolved_thumbs_down=round(unresolved * 0.2),
                unresolved_abandoned=unresolved - round(unresolved * 0.6) - round(unresolved * 0.2),
                handoffs=handed,
                thumbs_up=thumbs_up,
                thumbs_down=thumbs - thumbs_up,
                csat_sum=round(ratings * (4.4 - 0.5 * (badness - 1))),
                csat_count=ratings,
                ttft_ms_sum=total
                * rng.uniform(380, 520)
                * (1.4 if language in ("ja", "zh-hans", "ko") else 1.0),
                ttft_count=total,
                language_correct=round(checked * (1 - wrong)),
                language_checked=checked,
            )
            for user, agent_team, languages in agents:
                if language not in languages or not handed:
                    continue
                share = max(1, round(handed / sum(language in a[2] for a in agents)))
                DailyAgentStats.objects.create(
                    date=day,
                    language=language,
                    agent=user,
                    team=agent_team,
                    handled=share,
                    first_response_s_sum=share * rng.uniform(35, 140),
                    first_response_count=share,
                    resolution_s_sum=share * rng.uniform(600, 2400),
                    resolution_count=share,
                    csat_sum=round(max(1, round(share * 0.4)) * rng.uniform(4.0, 4.8)),
                    csat_count=max(1, round(share * 0.4)),
                )


def analytics_prepare(database: str) -> str:
    """DATABASE made anew, migrated and seeded (analytics_seed), with a superuser: the key of
    their signed-in session. Run in a process of its own (--analytics-prepare): this one may
    have set Django up on the inbox's database already."""
    database_fresh(database, "--analytics-db")
    from django.contrib.auth.models import User
    from django.db import connections

    analytics_seed()
    admin = User.objects.create_superuser("admin", email="admin@example.com", password=None)
    key = session_key(admin)
    connections.close_all()
    return key


def shoot_analytics(browser: Any, url: str, out: Path, session: str) -> None:
    width, height = ANALYTICS_VIEWPORT
    for name, locale, language in ANALYTICS_SHOTS:
        context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)
        context.add_cookies(
            [
                {"name": "sessionid", "value": session, "url": url},
                {"name": "django_language", "value": language, "url": url},
            ]
        )
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m, p=problems: m.type == "error" and p.append(m.text))
        page.on("pageerror", lambda exc, p=problems: p.append(str(exc)))
        page.goto(url + "/admin/analytics/")
        page.wait_for_function("() => window.AutoGLMAnalytics")
        direction = page.locator("html").get_attribute("dir")
        if direction != ("rtl" if language == "ar" else "ltr"):
            raise SystemExit(f"{name}: the page's direction is {direction!r}")
        if problems:
            raise SystemExit(f"{name}: the page logged errors: {problems}")
        flagged = page.locator("#table-languages tr.an-flag").count()
        page.wait_for_timeout(400)  # let the last frame paint
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / name), full_page=True)
        print(f"{name}: {language}, {direction}, {flagged} flagged languages")
        context.close()


def serve(port: int, env: dict[str, str], quiet: bool = False) -> subprocess.Popen[bytes]:
    access_log = ["--access-log", os.devnull] if quiet else []
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoglm_site.daphne_server",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            *access_log,
        ]
        + ["autoglm_site.asgi:application"],
        cwd=ROOT,
        env=env,
    )


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--only",
        choices=["answers", "inbox", "analytics"],
        help="one step: the widget's answers, the inbox, or the analytics dashboard",
    )
    parser.add_argument(
        "--analytics-db",
        default="autoglm_screenshots_analytics",
        help="the analytics step's database in the packaged PostgreSQL (dropped and made anew)",
    )
    # Internal: the analytics step's seeding, in a process of its own; prints the session key.
    parser.add_argument("--analytics-prepare", metavar="DATABASE", help=argparse.SUPPRESS)
    parser.add_argument(
        "--inbox-db",
        default="autoglm_screenshots",
        help="the inbox step's database in the packaged PostgreSQL (dropped and made anew)",
    )
    args = parser.parse_args()
    if args.analytics_prepare:
        print(analytics_prepare(args.analytics_prepare))
        return 0
    url = f"http://127.0.0.1:{args.port}"
    from playwright.sync_api import sync_playwright

    if args.only in (None, "answers"):
        server = serve(args.port, {**os.environ, "LOG_LEVEL": "WARNING"})
        try:
            wait_healthy(url, server)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                for shot in SHOTS:
                    shoot(browser, url, args.out, shot)
                browser.close()
        finally:
            stop(server)
    if args.only in (None, "inbox"):
        sessions = inbox_prepare(args.inbox_db)
        env = {
            **os.environ,
            "AUTOGLM_EMBEDDED_DB_NAME": args.inbox_db,
            "CHAT_HANDOFF": "on",
            # The packaged model on 2 cores: a translation may wait behind another one.
            "INBOX_TRANSLATION_TIMEOUT_SECONDS": "120",
            "LOG_LEVEL": "WARNING",
        }
        server = serve(args.port, env, quiet=True)
        try:
            wait_healthy(url, server)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                shoot_inbox(browser, url, args.out, sessions)
                browser.close()
        finally:
            stop(server)
    if args.only in (None, "analytics"):
        prepared = subprocess.run(
            [sys.executable, __file__, "--analytics-prepare", args.analytics_db],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        session = prepared.stdout.strip().splitlines()[-1]
        env = {
            **os.environ,
            "AUTOGLM_EMBEDDED_DB_NAME": args.analytics_db,
            "LLM_BACKEND": "chat.llm.fake.FakeBackend",  # no reply is asked for
            "LOG_LEVEL": "WARNING",
        }
        server = serve(args.port, env, quiet=True)
        try:
            wait_healthy(url, server)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                shoot_analytics(browser, url, args.out, session)
                browser.close()
        finally:
            stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
