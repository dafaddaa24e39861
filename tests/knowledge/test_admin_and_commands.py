"""Admin pages (translations, sync now, sync runs, search preview) and the kb_* commands."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from knowledge.models import Article, Chunk, Source, SyncRun

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "knowledge" / "fixtures" / "demo_articles.jsonl"

LINES = [
    {
        "id": "pw",
        "lang": "en",
        "title": "Resetting your password",
        "body": "Click Forgot password.",
    },
    {
        "id": "pw",
        "lang": "ar",
        "title": "إعادة تعيين كلمة المرور",
        "body": "انقر على نسيت كلمة المرور.",
    },
    {"id": "refund", "lang": "en", "title": "Refunds", "body": "Full refund within 30 days."},
]


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "articles.jsonl"
    lines = [json.dumps(line, ensure_ascii=False) for line in LINES]
    path.write_text("\n".join([lines[0], "{broken", *lines[1:]]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def admin_client(django_user_model) -> Client:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_superuser("kbadmin", "kb@example.com", "pw-long-enough")
    client = Client()
    client.force_login(user)
    return client


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_kb_import_prints_counts_and_the_bad_line_number(jsonl: Path) -> None:
    out, err = run("kb_import", str(jsonl))
    assert "4 lines: 2 added, 0 updated, 0 unchanged, 1 failed" in out
    assert "line 2:" in err
    assert SyncRun.objects.get(trigger=SyncRun.Trigger.IMPORT).failed == 1


def test_kb_search_json_lists_results_best_first(jsonl: Path) -> None:
    run("kb_import", str(jsonl))
    out, _err = run("kb_search", "I forgot my password", "--lang", "en", "--limit", "2", "--json")
    results = json.loads(out)
    assert results[0]["id"] == "pw"
    assert set(results[0]) >= {"id", "lang", "score", "title", "snippet"}
    assert len(results) == 2


def test_kb_search_batch_prints_one_list_per_input_line(jsonl: Path, tmp_path: Path) -> None:
    run("kb_import", str(jsonl))
    batch = tmp_path / "q.jsonl"
    batch.write_text(
        '{"query": "refund", "lang": "en"}\nnot json\n{"query": "كلمة المرور", "lang": "ar"}\n',
        encoding="utf-8",
    )
    out, err = run("kb_search", "--batch", str(batch), "--limit", "1", "--json")
    lists = [json.loads(line) for line in out.splitlines()]
    assert [[hit["id"] for hit in hits] for hits in lists] == [["refund"], [], ["pw"]]
    assert lists[2][0]["lang"] == "ar"
    assert "line 2" in err


def test_kb_reset_needs_yes() -> None:
    with pytest.raises(CommandError):
        run("kb_reset")
    Article.objects.create(title_en="x")
    out, _err = run("kb_reset", "--yes")
    assert "1 articles deleted" in out
    assert not Article.objects.exists()


def test_kb_sync_requires_a_choice_and_syncs_all() -> None:
    with pytest.raises(CommandError):
        run("kb_sync")
    source = Source.objects.create(name="Manual", kind=Source.Kind.MANUAL)
    Article.objects.create(title_en="Sharing", body_en="Share folders.", source=source)
    Article.objects.create(title_en="Loose", body_en="An article with no source.")
    out, _err = run("kb_sync", "--all")
    assert f"source {source.pk}: succeeded: 0 added, 1 updated" in out
    assert "articles without a source: 1 re-indexed" in out
    assert Chunk.objects.count() == 2


def test_demo_fixture_imports_cleanly_and_twice_idempotently() -> None:
    first, _ = run("kb_import", str(DEMO))
    assert " 0 failed" in first
    second, _ = run("kb_import", str(DEMO))
    assert " 0 added, 0 updated" in second and "0 chunks embedded" in second


def test_article_form_shows_each_language_side_by_side(admin_client: Client) -> None:
    article = Article.objects.create(title_en="Sharing", title_es="Compartir")
    response = admin_client.get(reverse("admin:knowledge_article_change", args=[article.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="title_es"' in html and 'name="body_zh_hans"' in html
    assert "kb-language" in html and "knowledge/admin.css" in html


def test_saving_an_article_in_the_admin_enqueues_indexing(admin_client: Client) -> None:
    with mock.patch("knowledge.admin.article_index_later") as later:
        response = admin_client.post(
            reverse("admin:knowledge_article_add"),
            {"status": "published", "title_en": "Sharing", "body_en": "Share folders."},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    later.assert_called_once()


def test_sync_now_action_enqueues_the_selected_sources(admin_client: Client) -> None:
    source = Source.objects.create(name="Manual", kind=Source.Kind.MANUAL)
    with mock.patch("knowledge.admin.source_sync_later") as later:
        admin_client.post(
            reverse("admin:knowledge_source_changelist"),
            {"action": "sync_now", "_selected_action": [source.pk]},
        )
    later.assert_called_once_with(source=source, trigger=SyncRun.Trigger.MANUAL)


class _ChangeListRows(HTMLParser):
    """The cells of an admin change list's result rows: {object id: {column: text}}.

    Only rows of the results table count, so the filter sidebar (which names every status
    on every page) can never satisfy an assertion about a run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self._in_results = False
        self._row: dict[str, str] | None = None
        self._row_id = ""
        self._column = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == "result_list":
            self._in_results = True
        elif self._in_results and tag == "tr":
            self._row, self._row_id = {}, ""
        elif self._row is not None and tag in {"td", "th"}:
            classes = (attributes.get("class") or "").split()
            self._column = next((c[6:] for c in classes if c.startswith("field-")), "")
            if self._column:
                self._row[self._column] = ""
        elif (
            self._row is not None
            and tag == "input"
            and attributes.get("name") == "_selected_action"
        ):
            self._row_id = attributes.get("value") or ""
        elif self._row is not None and tag == "a" and not self._row_id:
            # the row's link to its object: .../<id>/change/
            match = re.search(r"/(\d+)/change/", attributes.get("href") or "")
            self._row_id = match.group(1) if match else ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_results = False
        elif tag in {"td", "th"}:
            self._column = ""
        elif tag == "tr" and self._row is not None:
            if self._row_id:
                self.rows[self._row_id] = {k: v.strip() for k, v in self._row.items()}
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._column:
            self._row[self._column] += data


def changelist_rows(html: str) -> dict[str, dict[str, str]]:
    parser = _ChangeListRows()
    parser.feed(html)
    return parser.rows


def test_sync_runs_list_counts_and_show_errors(admin_client: Client) -> None:
    running = SyncRun.objects.create(
        trigger="manual",
        total=4,
        done=2,
        failed=1,
        added=3,
        errors=[{"item": "https://x/a", "error": "HTTP 404"}],
    )
    partial = SyncRun.objects.create(
        trigger="schedule",
        status=SyncRun.Status.PARTIAL,
        total=9,
        done=9,
        added=1,
        updated=5,
        unchanged=2,
        deleted=1,
        failed=2,
        chunks_embedded=7,
    )
    listing = admin_client.get(reverse("admin:knowledge_syncrun_changelist")).content.decode()
    rows = changelist_rows(listing)
    columns = (
        "status",
        "progress",
        "added",
        "updated",
        "unchanged",
        "deleted",
        "failed",
        "chunks_embedded",
    )
    shown = {pk: tuple(row.get(column) for column in columns) for pk, row in rows.items()}
    assert shown == {
        str(running.pk): ("Running", "2/4", "3", "0", "0", "0", "1", "0"),
        str(partial.pk): ("Finished with errors", "9/9", "1", "5", "2", "1", "2", "7"),
    }
    detail = admin_client.get(reverse("admin:knowledge_syncrun_change", args=[running.pk]))
    assert "<li><code>https://x/a</code>: HTTP 404</li>" in detail.content.decode()


def test_search_preview_shows_hits_with_scores(admin_client: Client, jsonl: Path) -> None:
    run("kb_import", str(jsonl))
    response = admin_client.get(
        reverse("admin:knowledge_search_preview"),
        {"query": "نسيت كلمة المرور", "language": "ar", "limit": 3},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<code>pw</code>" in html and "إعادة تعيين كلمة المرور" in html
