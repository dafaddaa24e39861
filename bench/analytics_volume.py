"""Analytics at volume: N messages across the 12 languages, the roll-up's time, then the
dashboard's reads (selectors and, where it exists, the page) with p50/p95 over repeated runs.

    .venv/bin/python bench/analytics_volume.py --messages 1000000
    .venv/bin/python bench/analytics_volume.py --reuse   # the rows already there, no generation

Runs in a database of its own (AUTOGLM_EMBEDDED_DB_NAME, default autoglm_analytics_bench, in
the embedded PostgreSQL); it empties that database's chat and analytics tables first. Rows are
written with COPY: conversations over the last 30 days, each a few turns (visitor message,
assistant reply with its stored knowledge), with thumbs, ratings, handoffs to agents, replies
without knowledge, failed replies and some replies in the wrong language, in proportions close
to a support desk's; Hebrew gets more wrong-language replies and Korean more replies without
knowledge, so the flag rule has two languages to find. Prints one line per figure and a JSON
summary last.
"""

# ruff: noqa: E501 - the sample texts are wide (CJK counts double)
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
os.environ.setdefault("AUTOGLM_EMBEDDED_DB_NAME", "autoglm_analytics_bench")

TEXTS = {
    "en": ("How do I reset the password of my account?", "Open the account settings, choose "
           "Password and follow the steps; a link arrives by e-mail within a minute."),
    "zh-hans": ("我怎么重置我的账户密码？", "请打开账户设置，选择密码，然后按照步骤操作；一分钟内您会收到一封邮件。"),
    "zh-hant": ("我怎麼重設我的帳戶密碼？", "請打開帳戶設定，選擇密碼，然後按照步驟操作；一分鐘內您會收到一封郵件。"),
    "ja": ("アカウントのパスワードをリセットするにはどうすればいいですか？",
           "アカウント設定を開き、パスワードを選んで手順に従ってください。数分以内にメールが届きます。"),
    "ko": ("계정 비밀번호를 어떻게 재설정하나요?", "계정 설정을 열고 비밀번호를 선택한 다음 안내에 따라 "
           "진행하세요. 몇 분 안에 이메일이 도착합니다."),
    "ar": ("كيف يمكنني إعادة تعيين كلمة المرور لحسابي؟", "افتح إعدادات الحساب واختر كلمة المرور ثم اتبع "
           "الخطوات، وستصلك رسالة بريد إلكتروني خلال دقيقة."),
    "he": ("איך אני מאפס את הסיסמה של החשבון שלי?", "פתחו את הגדרות החשבון, בחרו סיסמה ופעלו לפי "
           "השלבים; קישור יגיע בדואר האלקטרוני תוך דקה."),
    "es": ("¿Cómo restablezco la contraseña de mi cuenta?", "Abra la configuración de la cuenta, "
           "elija Contraseña y siga los pasos; recibirá un enlace por correo en un minuto."),
    "de": ("Wie setze ich das Passwort meines Kontos zurück?", "Öffnen Sie die Kontoeinstellungen, "
           "wählen Sie Passwort und folgen Sie den Schritten; ein Link kommt per E-Mail."),
    "fr": ("Comment réinitialiser le mot de passe de mon compte ?", "Ouvrez les paramètres du "
           "compte, choisissez Mot de passe et suivez les étapes ; un lien arrive par e-mail."),
    "pt-br": ("Como redefino a senha da minha conta?", "Abra as configurações da conta, escolha "
              "Senha e siga as etapas; um link chega por e-mail em um minuto."),
    "ru": ("Как сбросить пароль моей учётной записи?", "Откройте настройки учётной записи, "
           "выберите «Пароль» и следуйте шагам; ссылка придёт по почте в течение минуты."),
}  # fmt: skip
# Traffic per language, roughly a global desk's.
WEIGHTS = {"en": 30, "es": 12, "zh-hans": 10, "de": 8, "fr": 8, "pt-br": 7, "ja": 6, "ru": 6,
           "ar": 5, "ko": 4, "zh-hant": 2, "he": 2}  # fmt: skip
SCENARIOS = [  # (name, weight)
    ("silent", 38), ("thumbs_up", 12), ("csat_good", 5), ("thumbs_down", 6),
    ("no_knowledge", 7), ("abandoned", 5), ("handoff_resolved", 11), ("handoff_open", 4),
    ("recent", 8), ("wrong_language", 4),
]  # fmt: skip
SNIPPET = json.dumps([{"title": "Passwords", "url": "https://example.com/p", "text": "…"}])


class Copier:
    """Rows for one table, written with COPY in one go."""

    def __init__(self, table: str, columns: list[str]) -> None:
        self.table, self.columns = table, columns
        self.rows: list[tuple[Any, ...]] = []

    def add(self, *values: Any) -> None:
        self.rows.append(values)

    def flush(self, cursor: Any) -> None:
        statement = f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN"
        with cursor.copy(statement) as copy:
            for row in self.rows:
                copy.write_row(row)
        self.rows = []


def generate(*, messages: int, seed: int) -> dict[str, int]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from inbox.models import AgentProfile, Team

    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE chat_visitor, chat_conversation, chat_message, chat_feedback, "
            "chat_turnknowledge, inbox_csat, analytics_conversationoutcome, "
            "analytics_dailylanguagestats, analytics_dailyagentstats, analytics_rollupstate "
            "RESTART IDENTITY CASCADE"
        )
    user_model = get_user_model()
    user_model.objects.filter(username__startswith="bench-agent-").delete()
    Team.objects.filter(name__startswith="Bench ").delete()
    teams = [Team.objects.create(name=f"Bench {n}") for n in range(4)]
    agents = []
    for n in range(20):
        user = user_model.objects.create_user(username=f"bench-agent-{n}")
        profile = AgentProfile.objects.create(user=user, display_name=f"Agent {n}")
        profile.teams.add(teams[n % 4])
        agents.append((user.pk, teams[n % 4].pk))

    languages = list(WEIGHTS)
    weights = [WEIGHTS[code] for code in languages]
    names = [name for name, _w in SCENARIOS]
    scenario_weights = [w for _n, w in SCENARIOS]
    now = timezone.now()
    visitors = Copier("chat_visitor", ["id", "uuid", "external_id", "created_at", "last_seen_at"])
    conversations = Copier(
        "chat_conversation",
        ["id", "visitor_id", "language", "status", "opening_client_id", "mode", "handoff_reason",
         "handoff_detail", "handoff_at", "assignee_id", "assigned_at", "team_id",
         "translation_enabled", "visitor_email", "is_ticket", "csat_requested", "resolved_at",
         "reopened_at", "created_at", "updated_at"],
    )  # fmt: skip
    message_rows = Copier(
        "chat_message",
        ["id", "conversation_id", "role", "text", "language", "author_id", "status", "client_id",
         "reply_to_id", "ttft_ms", "backend", "replica", "finish_reason", "error_code",
         "cancel_requested", "created_at", "updated_at"],
    )  # fmt: skip
    feedback = Copier(
        "chat_feedback", ["message_id", "rating", "comment", "created_at", "updated_at"]
    )
    knowledge = Copier("chat_turnknowledge", ["message_id", "snippets", "created_at"])
    csat = Copier(
        "inbox_csat",
        ["conversation_id", "agent_id", "rating", "comment", "created_at", "updated_at"],
    )
    tables = (visitors, conversations, message_rows, knowledge, feedback, csat)

    def flush() -> None:
        with connection.cursor() as wrapper:
            for table in tables:  # parents first
                table.flush(wrapper.cursor)

    counts = dict.fromkeys(names, 0)
    message_id = visitor_id = 0
    n_conversations = 0
    while message_id < messages:
        visitor_id += 1
        visitors.add(visitor_id, uuid.uuid4(), "", now, now)
        for _c in range(rng.choice((1, 1, 1, 2))):
            if message_id >= messages:
                break
            scenario = rng.choices(names, scenario_weights)[0]
            counts[scenario] += 1
            n_conversations += 1
            language = rng.choices(languages, weights)[0]
            # Two languages served worse, so that the flag rule has something to find.
            if scenario == "wrong_language" and rng.random() < 0.5:
                language = "he"  # the assistant answers Hebrew questions in English
            elif scenario == "no_knowledge" and rng.random() < 0.4:
                language = "ko"  # the knowledge base has little in Korean
            question, answer = TEXTS[language]
            age = (
                timedelta(hours=rng.uniform(1, 6))  # its turns stay in the past
                if scenario == "recent"
                else timedelta(days=rng.uniform(1, 30))
            )
            at = now - age
            started = at
            conversation_id = uuid.uuid4()
            turns = rng.choice((1, 1, 2, 2, 3, 4))
            last_reply = 0
            for turn in range(turns):
                message_id += 1
                user_id = message_id
                message_rows.add(user_id, conversation_id, "user", question, "", None, "complete",
                                 f"m{turn}", None, None, "", "", "", "", False, at, at)  # fmt: skip
                no_knowledge = scenario == "no_knowledge" and turn == turns - 1
                knowledge.add(user_id, "[]" if no_knowledge else SNIPPET, at)
                at += timedelta(seconds=rng.uniform(1, 4))
                message_id += 1
                last_reply = message_id
                failed = scenario == "abandoned" and turn == turns - 1
                text = TEXTS["en"][1] if scenario == "wrong_language" else answer
                message_rows.add(last_reply, conversation_id, "assistant",
                                 "" if failed else text, "", None,
                                 "failed" if failed else "complete", None, user_id,
                                 None if failed else rng.uniform(150, 900), "bench", "local",
                                 "failed" if failed else "stop", "", False, at, at)  # fmt: skip
                at += timedelta(seconds=rng.uniform(20, 300))
            if scenario in ("thumbs_up", "thumbs_down"):
                rating = "up" if scenario == "thumbs_up" else "down"
                feedback.add(last_reply, rating, "", at, at)
            elif scenario == "silent" and rng.random() < 0.1:
                feedback.add(last_reply, "up", "", at, at)  # an earlier answer liked
            status, mode, reason, handoff_at = "open", "bot", "", None
            assignee = team = assigned_at = resolved_at = None
            if scenario.startswith("handoff"):
                assignee, team = rng.choice(agents)
                handoff_at = at
                reason = rng.choice(("visitor_request", "no_knowledge", "thumbs_down", "rule"))
                mode = (
                    "agent" if scenario == "handoff_resolved" or rng.random() < 0.5 else "waiting"
                )
                if mode == "waiting":
                    assignee = None
                else:
                    at += timedelta(seconds=rng.uniform(30, 900))
                    assigned_at = at
                    for _r in range(rng.choice((1, 2, 3))):
                        message_id += 1
                        message_rows.add(message_id, conversation_id, "agent", answer, language,
                                         assignee, "complete", f"a{message_id}", None, None, "",
                                         "", "", "", False, at, at)  # fmt: skip
                        at += timedelta(seconds=rng.uniform(30, 600))
                if scenario == "handoff_resolved":
                    status, resolved_at = "closed", at
                    if rng.random() < 0.4:
                        csat.add(conversation_id, assignee, rng.choice((2, 3, 4, 5, 5)), "", at, at)
            if scenario == "csat_good":
                csat.add(conversation_id, None, rng.choice((4, 5)), "", at, at)
            conversations.add(conversation_id, visitor_id, language, status, f"o{n_conversations}", mode, reason,
                              "", handoff_at, assignee, assigned_at, team, True, "", False,
                              False, resolved_at, None, started, at)  # fmt: skip
        if len(message_rows.rows) >= 100_000:
            flush()
    flush()
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        for table, column in (("chat_visitor", "id"), ("chat_message", "id")):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT MAX({column}) FROM {table}))"
            )
        cursor.execute("ANALYZE")
    return {"conversations": n_conversations, "messages": message_id, "visitors": visitor_id,
            **{f"scenario_{k}": v for k, v in counts.items()}}  # fmt: skip


def timed(function: Any, runs: int) -> dict[str, float]:
    durations = []
    for _n in range(runs):
        started = time.perf_counter()
        function()
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return {
        "p50_ms": round(statistics.median(durations), 2),
        "p95_ms": round(durations[max(0, int(len(durations) * 0.95) - 1)], 2),
        "max_ms": round(durations[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50, help="runs per selector")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the rows a previous run generated (no generation, no full refresh); the "
        "article citation roll-up of the 30 days is rebuilt instead",
    )
    args = parser.parse_args()

    from autoglm_site.embedded import ensure_database

    ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    name = settings.DATABASES["default"]["NAME"]
    if "bench" not in str(name):
        sys.exit(f"refusing to empty database {name!r}: run with a bench database")
    call_command("migrate", "--noinput", verbosity=0)
    summary: dict[str, Any] = {"database": name, "date": datetime.now().astimezone().isoformat()}

    from analytics import selectors, services
    from analytics.models import ConversationOutcome, DailyArticleCitations, DailyLanguageStats
    from chat.models import Message
    from knowledge.models import Article

    # The article the generated replies cite (SNIPPET), so that citations map to one.
    Article.objects.get_or_create(
        url="https://example.com/p",
        defaults={"title": "Passwords", "body": "…", "status": Article.Status.PUBLISHED},
    )
    if args.reuse:
        summary["generated"] = {"messages": Message.objects.count(), "reused": True}
        if not summary["generated"]["messages"]:
            sys.exit("--reuse: the bench database has no messages; run without it first")
        print(f"reusing {summary['generated']['messages']} messages", flush=True)
        from django.utils import timezone as tz

        today = tz.localdate()
        started = time.perf_counter()
        rows = services.article_citations_rebuild(start=today - timedelta(days=30), end=today)
        summary["citations_rebuild_31_days_s"] = round(time.perf_counter() - started, 2)
        print(f"citation roll-up of 31 days: {rows} rows, "
              f"{summary['citations_rebuild_31_days_s']} s", flush=True)  # fmt: skip
    else:
        started = time.perf_counter()
        summary["generated"] = generate(messages=args.messages, seed=args.seed)
        summary["generate_s"] = round(time.perf_counter() - started, 1)
        print(f"generated {summary['generated']} in {summary['generate_s']} s", flush=True)

        started = time.perf_counter()
        result = services.outcomes_refresh()
        summary["refresh_full_s"] = round(time.perf_counter() - started, 1)
        print(f"full refresh: {result.conversations} conversations, {len(result.days)} days, "
              f"{summary['refresh_full_s']} s", flush=True)  # fmt: skip

    # Incremental: 100 new visitor messages in existing conversations, since the watermark.
    from django.db import connection
    from django.utils import timezone

    ids = list(
        ConversationOutcome.objects.order_by("?").values_list("conversation_id", flat=True)[:100]
    )
    run = uuid.uuid4().hex[:8]  # client ids unique across --reuse runs
    Message.objects.bulk_create(
        [
            Message(
                conversation_id=pk,
                role="user",
                text="One more question, please?",
                status="complete",
                client_id=f"inc{run}-{n}",
            )
            for n, pk in enumerate(ids)
        ]  # fmt: skip
    )
    started = time.perf_counter()
    result = services.outcomes_refresh()
    summary["refresh_incremental_s"] = round(time.perf_counter() - started, 2)
    summary["refresh_incremental_conversations"] = result.conversations
    print(f"incremental refresh: {result.conversations} conversations, "
          f"{summary['refresh_incremental_s']} s", flush=True)  # fmt: skip

    end = timezone.localdate()
    start = end - timedelta(days=29)
    started = time.perf_counter()
    services.rollups_rebuild(start=end - timedelta(days=6), end=end)
    summary["rebuild_7_days_s"] = round(time.perf_counter() - started, 1)
    print(f"rebuild of 7 days: {summary['rebuild_7_days_s']} s", flush=True)

    totals = selectors.overview(start=start, end=end)["totals"]
    summary["totals"] = totals
    summary["rollup_rows"] = DailyLanguageStats.objects.count()
    summary["citation_rollup_rows"] = DailyArticleCitations.objects.count()
    reads = {
        "overview": lambda: selectors.overview(start=start, end=end),
        "overview_ja": lambda: selectors.overview(start=start, end=end, language="ja"),
        "per_language": lambda: selectors.per_language(start=start, end=end),
        "agents": lambda: selectors.agents(start=start, end=end),
        "teams": lambda: selectors.teams(start=start, end=end),
        "languages_seen": selectors.languages_seen,
    }
    try:
        from analytics import gaps

        reads["article_stats"] = lambda: gaps.article_stats(start=start, end=end)
        reads["knowledge_gaps"] = lambda: gaps.knowledge_gaps(start=start, end=end)
    except ImportError:
        pass
    summary["selectors"] = {}
    for label, read in reads.items():
        summary["selectors"][label] = timed(read, args.runs)
        print(f"selector {label}: {summary['selectors'][label]}", flush=True)
    summary["flagged"] = [
        (item["language"], item["flag_reasons"])
        for item in selectors.per_language(start=start, end=end)
        if item["flagged"]
    ]

    from django.urls import NoReverseMatch, Resolver404, resolve

    try:
        resolve("/admin/analytics/")
        page = True
    except (Resolver404, NoReverseMatch):
        page = False
    if page:
        from django.contrib.auth import get_user_model
        from django.test import Client

        user_model = get_user_model()
        admin = user_model.objects.filter(username="bench-admin").first() or (
            user_model.objects.create_superuser(username="bench-admin", password="x")
        )
        client = Client()
        client.force_login(admin)
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        status = client.get("/admin/analytics/").status_code
        summary["page_status"] = status
        summary["page"] = timed(lambda: client.get("/admin/analytics/"), max(5, args.runs // 5))
        print(f"page /admin/analytics/ ({status}): {summary['page']}", flush=True)
        # One page view's queries, slowest first: what is left to make faster.
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            client.get("/admin/analytics/")
        slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:5]
        summary["page_queries"] = len(queries.captured_queries)
        summary["page_slowest_queries"] = [
            {"s": float(q["time"]), "sql": q["sql"][:300]} for q in slowest
        ]
        print(f"page queries: {len(queries.captured_queries)}; slowest:", flush=True)
        for q in summary["page_slowest_queries"]:
            print(f"  {q['s']:.3f} s  {q['sql'][:160]}", flush=True)
    connection.close()
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
