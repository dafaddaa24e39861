"""Import and incremental indexing against the real database and the real embedding model."""

from __future__ import annotations

import json

import pytest
from django.utils import translation

from knowledge.models import Article, Category, Chunk, Source, SyncRun
from knowledge.services import (
    article_index,
    article_index_later,
    articles_import,
    knowledge_reset,
)

pytestmark = pytest.mark.django_db


def jsonl(*records: dict[str, str]) -> list[str]:
    return [json.dumps(record, ensure_ascii=False) for record in records]


PASSWORD_EN = {
    "id": "pw",
    "lang": "en",
    "title": "Resetting your password",
    "body": "Click Forgot password on the sign-in page.\n\n## No email\nCheck your spam folder.",
    "url": "https://help.example/en/pw",
    "category": "accounts",
}
PASSWORD_ZH = {
    "id": "pw",
    "lang": "zh-hans",
    "title": "重置密码",
    "body": "在登录页面点击忘记密码。",
}


def test_lines_with_one_id_are_one_article_with_translations() -> None:
    result = articles_import(lines=jsonl(PASSWORD_EN, PASSWORD_ZH))
    assert (result.added, result.failed) == (1, 0)
    article = Article.objects.get(external_id="pw")
    assert article.title_en == "Resetting your password"
    assert article.title_zh_hans == "重置密码"
    assert article.category == Category.objects.get(slug="accounts")
    assert set(Chunk.objects.values_list("language", flat=True)) == {"en", "zh-hans"}
    assert result.index.chunks_embedded == Chunk.objects.count() == 3


def test_missing_translation_falls_back_instead_of_being_empty() -> None:
    articles_import(lines=jsonl(PASSWORD_EN), index=False)
    article = Article.objects.get(external_id="pw")
    with translation.override("de"):
        assert article.title == "Resetting your password"


def test_malformed_lines_are_reported_by_number_and_skipped() -> None:
    lines = [
        "{not json",
        json.dumps({"id": "x", "lang": "en", "title": "No body"}),
        json.dumps({"id": "y", "lang": "xx", "title": "T", "body": "B"}),
        *jsonl(PASSWORD_EN),
    ]
    result = articles_import(lines=lines, index=False)
    assert result.added == 1
    assert result.failed == 3
    assert [error["item"] for error in result.errors] == ["line 1", "line 2", "line 3"]
    assert "body" in result.errors[1]["error"]
    assert list(Article.objects.values_list("external_id", flat=True)) == ["pw"]


def test_reimport_is_idempotent_and_embeds_nothing() -> None:
    articles_import(lines=jsonl(PASSWORD_EN, PASSWORD_ZH))
    again = articles_import(lines=jsonl(PASSWORD_EN, PASSWORD_ZH))
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    assert again.index.chunks_embedded == 0


def test_editing_one_section_re_embeds_only_that_chunk(_cached_embeddings: list[str]) -> None:
    articles_import(lines=jsonl(PASSWORD_EN, PASSWORD_ZH))
    before = dict(Chunk.objects.values_list("content_hash", "id"))
    edited = dict(PASSWORD_EN, body=PASSWORD_EN["body"].replace("spam folder", "junk folder"))
    _cached_embeddings.clear()
    result = articles_import(lines=jsonl(edited, PASSWORD_ZH))
    assert result.updated == 1
    assert result.index.chunks_embedded == 1
    assert result.index.chunks_deleted == 1
    assert len(_cached_embeddings) == 1 and "junk folder" in _cached_embeddings[0]
    after = dict(Chunk.objects.values_list("content_hash", "id"))
    assert len(set(before) & set(after)) == 2  # the other two kept their rows and vectors


def test_removing_a_translation_leaves_no_stale_chunks() -> None:
    articles_import(lines=jsonl(PASSWORD_EN, PASSWORD_ZH))
    article = Article.objects.get(external_id="pw")
    article.title_zh_hans = None
    article.body_zh_hans = None
    article.save()
    article_index(article_id=article.pk)
    assert set(Chunk.objects.values_list("language", flat=True)) == {"en"}


def test_deleting_an_article_deletes_its_chunks() -> None:
    articles_import(lines=jsonl(PASSWORD_EN))
    Article.objects.get(external_id="pw").delete()
    assert Chunk.objects.count() == 0


def test_saving_an_article_enqueues_its_indexing_after_commit(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.BACKGROUND_IN_PROCESS = False
    from unittest import mock

    article = Article.objects.create(title_en="Sharing", body_en="Share a folder by email.")
    with mock.patch("knowledge.tasks.index_article.apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            article_index_later(article=article)
        apply_async.assert_not_called()  # nothing before commit
        for callback in callbacks:
            callback()
    apply_async.assert_called_once_with(kwargs={"article_id": article.pk})


def test_index_task_indexes_the_article() -> None:
    from knowledge.tasks import index_article

    article = Article.objects.create(title_en="Sharing", body_en="Share a folder by email.")
    assert index_article.apply(kwargs={"article_id": article.pk}).get() == 1
    assert Chunk.objects.filter(article=article).count() == 1


def test_reset_empties_the_knowledge_base_and_nothing_else(django_user_model) -> None:  # type: ignore[no-untyped-def]
    django_user_model.objects.create_user("keeper", password="x-long-password")
    articles_import(lines=jsonl(PASSWORD_EN))
    Source.objects.create(name="Help", kind=Source.Kind.MANUAL)
    SyncRun.objects.create(trigger=SyncRun.Trigger.IMPORT)
    counts = knowledge_reset()
    assert counts["articles"] == 1 and counts["sources"] == 1
    assert not Article.objects.exists() and not Chunk.objects.exists()
    assert not Source.objects.exists() and not SyncRun.objects.exists()
    assert not Category.objects.exists()
    assert django_user_model.objects.filter(username="keeper").exists()
