"""The knowledge API against the real database, embeddings and search: articles with their
translations, categories, sources and sync runs, search as kb_search, glossary and presets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.test import Client

from autoglm_site.celery import app as celery_app
from chat.glossary import glossary_prompt
from chat.models import DecodingPreset, GlossaryTerm
from chat.selectors import preset_sampling
from knowledge.models import Article, Chunk, Source, SyncRun
from tests.api.keys import api_client, api_key
from tests.knowledge.conftest import (  # noqa: F401 - fixtures used here
    LoopbackSite,
    Page,
    _cached_embeddings,
    site,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1"


@pytest.fixture
def writer() -> Client:
    _key, token = api_key("knowledge:read", "knowledge:write")
    return api_client(token)


@pytest.fixture
def reader() -> Client:
    _key, token = api_key("knowledge:read")
    return api_client(token)


@pytest.fixture
def inline_tasks(settings: Any) -> Iterator[None]:
    """Celery tasks enqueued after commit run at once, in this thread (eager): what a worker
    would do, inside the test's transaction."""
    settings.BACKGROUND_IN_PROCESS = False
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


def post(client: Client, path: str, body: Any, **extra: Any) -> Any:
    return client.post(BASE + path, json.dumps(body), content_type="application/json", **extra)


def patch(client: Client, path: str, body: Any, **extra: Any) -> Any:
    return client.patch(BASE + path, json.dumps(body), content_type="application/json", **extra)


def search_ids(client: Client, q: str, language: str = "en") -> list[str]:
    response = client.get(f"{BASE}/search", {"q": q, "language": language, "limit": 5})
    assert response.status_code == 200, response.content
    return [hit["id"] for hit in response.json()["results"]]


PASSWORD = {
    "external_id": "pw",
    "status": "published",
    "tags": "accounts",
    "translations": {
        "en": {
            "title": "Resetting your password",
            "body": "Click Forgot password on the sign-in page and follow the email.",
            "url": "https://help.example/en/pw",
        },
        "de": {"title": "Passwort zurücksetzen", "body": "Klicken Sie auf Passwort vergessen."},
    },
}
REFUND = {
    "external_id": "refund",
    "translations": {
        "en": {"title": "Refunds", "body": "You get a full refund within 30 days of purchase."}
    },
}


def test_article_round_trip_with_translations_per_language(
    writer: Client, django_capture_on_commit_callbacks: Any, inline_tasks: None
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        created = post(writer, "/articles", PASSWORD)
    assert created.status_code == 201, created.content
    article = created.json()
    assert set(article["translations"]) == {"en", "de"}
    assert article["translations"]["de"] == {
        "title": "Passwort zurücksetzen",
        "body": "Klicken Sie auf Passwort vergessen.",
        "url": "",
    }
    stored = Article.objects.get(pk=article["id"])
    assert (stored.title_en, stored.title_de, stored.title_fr) == (
        "Resetting your password",
        "Passwort zurücksetzen",
        None,
    )
    # Indexed as the admin indexes a saved article: one chunk set per language version.
    assert set(Chunk.objects.filter(article=stored).values_list("language", flat=True)) == {
        "en",
        "de",
    }

    fetched = writer.get(f"{BASE}/articles/{article['id']}")
    assert fetched.status_code == 200 and fetched.json() == article

    # Only what is given changes: French added, German removed, English title changed.
    with django_capture_on_commit_callbacks(execute=True):
        changed = patch(
            writer,
            f"/articles/{article['id']}",
            {
                "translations": {
                    "fr": {"title": "Réinitialiser le mot de passe", "body": "Cliquez ici."},
                    "de": None,
                    "en": {"title": "Reset your password"},
                }
            },
        )
    assert changed.status_code == 200, changed.content
    versions = changed.json()["translations"]
    assert set(versions) == {"en", "fr"}
    assert versions["en"]["title"] == "Reset your password"
    assert versions["en"]["body"] == PASSWORD["translations"]["en"]["body"]  # type: ignore[index]
    assert set(Chunk.objects.filter(article=stored).values_list("language", flat=True)) == {
        "en",
        "fr",
    }

    listed = writer.get(f"{BASE}/articles", {"language": "fr"}).json()
    assert [item["id"] for item in listed["items"]] == [article["id"]]
    assert writer.get(f"{BASE}/articles", {"language": "de"}).json()["items"] == []

    assert writer.delete(f"{BASE}/articles/{article['id']}").status_code == 204
    assert not Article.objects.filter(pk=article["id"]).exists()
    assert not Chunk.objects.exists()
    assert writer.get(f"{BASE}/articles/{article['id']}").status_code == 404
    assert writer.delete(f"{BASE}/articles/{article['id']}").status_code == 404


def test_article_list_filters_and_cursor_pagination(writer: Client) -> None:
    category = post(writer, "/categories", {"slug": "billing", "names": {"en": "Billing"}}).json()
    ids = []
    for number in range(5):
        body = {
            "external_id": f"a{number}",
            "status": "published" if number % 2 else "draft",
            "category_id": category["id"] if number < 2 else None,
            "translations": {"en": {"title": f"Article {number}", "body": f"Text {number}"}},
        }
        response = post(writer, "/articles", body)
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    first = writer.get(f"{BASE}/articles", {"limit": 2}).json()
    second = writer.get(f"{BASE}/articles", {"limit": 2, "cursor": first["next_cursor"]}).json()
    third = writer.get(f"{BASE}/articles", {"limit": 2, "cursor": second["next_cursor"]}).json()
    pages = [[item["id"] for item in page["items"]] for page in (first, second, third)]
    assert sum(pages, []) == list(reversed(ids)) and third["next_cursor"] is None

    def listed(**query: Any) -> set[int]:
        response = writer.get(f"{BASE}/articles", query)
        assert response.status_code == 200, response.content
        return {item["id"] for item in response.json()["items"]}

    assert listed(category="billing") == listed(category=str(category["id"])) == set(ids[:2])
    assert listed(published="true") == {ids[1], ids[3]}
    assert listed(published="false") == {ids[0], ids[2], ids[4]}
    assert listed(q="article 3") == {ids[3]}
    assert listed(q="a4") == {ids[4]}


def test_publish_and_unpublish_change_what_search_returns(
    writer: Client, django_capture_on_commit_callbacks: Any, inline_tasks: None
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        draft = post(writer, "/articles", {**PASSWORD, "status": "draft"}).json()
        post(writer, "/articles", REFUND)
    question = "I forgot my password"
    assert "pw" not in search_ids(writer, question)  # drafts are never found
    with django_capture_on_commit_callbacks(execute=True):
        published = writer.post(f"{BASE}/articles/{draft['id']}/publish")
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert search_ids(writer, question)[0] == "pw"
    with django_capture_on_commit_callbacks(execute=True):
        unpublished = writer.post(f"{BASE}/articles/{draft['id']}/unpublish")
    assert unpublished.json()["status"] == "draft"
    assert "pw" not in search_ids(writer, question)
    assert writer.post(f"{BASE}/articles/999999/publish").status_code == 404


def test_search_returns_what_kb_search_returns(
    writer: Client, django_capture_on_commit_callbacks: Any, inline_tasks: None, tmp_path: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        post(writer, "/articles", PASSWORD)
        post(writer, "/articles", REFUND)
    queries = [
        {"query": "I forgot my password", "lang": "en"},
        {"query": "Wie bekomme ich mein Geld zurück?", "lang": "de"},
        {"query": "忘记密码怎么办", "lang": "zh-hans"},
    ]
    batch = tmp_path / "q.jsonl"
    batch.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in queries) + "\n")
    out = StringIO()
    call_command("kb_search", "--batch", str(batch), "--limit", "3", "--json", stdout=out)
    expected = [json.loads(line) for line in out.getvalue().splitlines()]
    assert expected[0] and expected[0][0]["id"] == "pw"
    for question, records in zip(queries, expected, strict=True):
        got = writer.get(
            f"{BASE}/search", {"q": question["query"], "language": question["lang"], "limit": 3}
        )
        assert got.status_code == 200, got.content
        results = got.json()["results"]
        assert results == records  # relevance marks included
        assert all(isinstance(r["relevant"], bool) for r in results)
        by_body = post(
            writer,
            "/search",
            {"q": question["query"], "language": question["lang"], "limit": 3},
        )
        assert by_body.json()["results"] == results
    # The chat uses only the relevant ones: an off-topic question has none marked relevant.
    off_topic = writer.get(
        f"{BASE}/search", {"q": "What is the capital of Peru?", "language": "en"}
    )
    assert not any(hit["relevant"] for hit in off_topic.json()["results"])


def test_etag_gives_304_and_a_stale_if_match_is_refused(writer: Client) -> None:
    article = post(writer, "/articles", REFUND).json()
    path = f"{BASE}/articles/{article['id']}"
    first = writer.get(path)
    etag = first["ETag"]
    assert etag and writer.get(path, headers={"If-None-Match": etag}).status_code == 304

    changed = patch(
        writer, f"/articles/{article['id']}", {"tags": "money"}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200, changed.content
    assert changed["ETag"] != etag
    assert writer.get(path, headers={"If-None-Match": etag}).status_code == 200

    stale = patch(
        writer, f"/articles/{article['id']}", {"tags": "late"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"
    assert Article.objects.get(pk=article["id"]).tags == "money"  # the stale write changed nothing


def test_scopes_are_needed(reader: Client) -> None:
    article = Article.objects.create(title_en="Sharing", body_en="Share a folder.")
    assert reader.get(f"{BASE}/articles/{article.pk}").status_code == 200
    assert reader.get(f"{BASE}/search", {"q": "share"}).status_code == 200
    refused = [
        post(reader, "/articles", REFUND),
        patch(reader, f"/articles/{article.pk}", {"tags": "x"}),
        reader.delete(f"{BASE}/articles/{article.pk}"),
        reader.post(f"{BASE}/articles/{article.pk}/unpublish"),
        post(reader, "/categories", {"slug": "x", "names": {"en": "X"}}),
        post(reader, "/sources", {"name": "x"}),
        post(reader, "/glossary", {"term": "AutoGLM", "do_not_translate": True}),
        post(reader, "/decoding-presets", {"task": "summary"}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert {r.json()["error"]["code"] for r in refused} == {"scope_missing"}
    assert Article.objects.get(pk=article.pk).status == Article.Status.PUBLISHED
    _key, other = api_key("conversations:read")
    assert api_client(other).get(f"{BASE}/articles").status_code == 403
    assert Client().get(f"{BASE}/articles").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/articles", "{not json"),
        ("post", "/articles", "[]"),
        ("post", "/articles", {"translations": {}}),
        ("post", "/articles", {"translations": {"xx": {"title": "A"}}}),
        ("post", "/articles", {"translations": {"en": {"body": "no title anywhere"}}}),
        ("post", "/articles", {"translations": {"en": {"title": "A" * 301}}}),
        ("post", "/articles", {"translations": {"en": {"title": "A", "url": "not a url"}}}),
        ("post", "/articles", {"translations": {"en": {"title": "A\x00"}}}),
        ("post", "/articles", {"status": "gone", "translations": {"en": {"title": "A"}}}),
        ("post", "/articles", {"category_id": 2**40, "translations": {"en": {"title": "A"}}}),
        ("post", "/articles", {"category_id": 12345, "translations": {"en": {"title": "A"}}}),
        ("post", "/articles", {"surprise": 1, "translations": {"en": {"title": "A"}}}),
        ("post", "/categories", {"slug": "not a slug!", "names": {"en": "X"}}),
        ("post", "/sources", {"name": "Web", "kind": "url"}),
        ("post", "/sources", {"name": "Web", "kind": "url", "url": "ftp://x"}),
        ("post", "/sources", {"name": "Up", "kind": "file"}),
        ("post", "/sources", {"name": "M", "allowed_domains": "not a host!"}),
        ("post", "/sources", {"name": "M", "sync_interval_minutes": 2**40}),
        ("post", "/glossary", {"term": "AutoGLM"}),
        ("post", "/glossary", {"term": "AutoGLM", "translation": "x", "do_not_translate": True}),
        ("post", "/glossary", {"term": "AutoGLM", "language": "xx", "do_not_translate": True}),
        ("post", "/decoding-presets", {"task": "summary", "temperature": 9}),
        ("post", "/decoding-presets", {"task": "summary", "stop": "a\nb\nc\nd\ne"}),
        ("post", "/decoding-presets", {"task": "poetry"}),
        ("get", "/articles?cursor=%%%", None),
        ("get", "/articles?cursor=WzEsMl0", None),
        ("get", "/articles?limit=0", None),
        ("get", "/articles?published=maybe", None),
        ("get", "/articles?language=klingon", None),
        ("get", "/articles?q=%00", None),
        ("get", "/search", None),
        ("get", "/search?q=", None),
        ("get", "/search?q=x&limit=51", None),
        ("get", "/search?q=x&language=klingon", None),
        ("get", "/search?q=%00", None),
        ("get", "/articles/abc", None),
    ],
)
def test_malformed_input_is_a_422_never_a_500(
    writer: Client, method: str, path: str, body: Any
) -> None:
    if method == "get":
        response = writer.get(BASE + path)
    else:
        raw = body if isinstance(body, str) else json.dumps(body)
        response = writer.post(BASE + path, raw, content_type="application/json")
    not_json = body == "{not json"
    assert response.status_code == (400 if not_json else 422), response.content
    error = response.json()["error"]
    assert error["code"] == ("bad_request" if not_json else "invalid_request") and error["message"]


def test_unknown_ids_are_404_and_unique_conflicts_are_409(writer: Client) -> None:
    for path in (
        "/articles/999999",
        "/articles/99999999999999999999",
        "/articles/-1",
        "/categories/999999",
        "/sources/999999",
        "/sources/999999/sync-runs",
        "/glossary/999999",
        "/decoding-presets/999999",
    ):
        response = writer.get(BASE + path)
        assert response.status_code == 404, (path, response.content)
        assert response.json()["error"]["code"] == "not_found"
    assert patch(writer, "/articles/999999", {"tags": "x"}).status_code == 404
    assert patch(writer, "/sources/99999999999", {"name": "x"}).status_code == 404
    assert writer.post(f"{BASE}/sources/999999/sync").status_code == 404

    assert post(writer, "/articles", REFUND).status_code == 201
    again = post(writer, "/articles", REFUND)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert again.json()["error"]["details"][0]["field"] == "external_id"
    assert post(writer, "/categories", {"slug": "a", "names": {"en": "A"}}).status_code == 201
    assert post(writer, "/categories", {"slug": "a", "names": {"en": "B"}}).status_code == 409
    term = {"term": "AutoGLM", "do_not_translate": True}
    assert post(writer, "/glossary", term).status_code == 201
    assert post(writer, "/glossary", term).status_code == 409
    assert post(writer, "/decoding-presets", {"task": "summary"}).status_code == 201
    assert post(writer, "/decoding-presets", {"task": "summary"}).status_code == 409


def test_categories_crud_with_names_per_language(writer: Client) -> None:
    created = post(
        writer, "/categories", {"slug": "billing", "names": {"en": "Billing", "de": "Abrechnung"}}
    )
    assert created.status_code == 201, created.content
    category = created.json()
    assert category["names"] == {"en": "Billing", "de": "Abrechnung"}
    changed = patch(
        writer, f"/categories/{category['id']}", {"names": {"fr": "Facturation", "de": None}}
    )
    assert changed.json()["names"] == {"en": "Billing", "fr": "Facturation"}
    assert writer.get(f"{BASE}/categories").json()["items"] == [changed.json()]
    article = post(writer, "/articles", {**REFUND, "category_id": category["id"]}).json()
    assert writer.delete(f"{BASE}/categories/{category['id']}").status_code == 204
    assert Article.objects.get(pk=article["id"]).category_id is None  # the article stays


def test_source_crud_and_sync_enqueues_after_commit(
    writer: Client, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.BACKGROUND_IN_PROCESS = False  # the broker path: apply_async after commit
    with mock.patch("knowledge.tasks.sync_source.apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            created = post(writer, "/sources", {"name": "Manual", "kind": "manual"})
        assert created.status_code == 201, created.content
        source = created.json()
        apply_async.assert_not_called()  # nothing before commit
        for callback in callbacks:
            callback()
        apply_async.assert_called_once_with(kwargs={"source_id": source["id"], "trigger": "save"})

        apply_async.reset_mock()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            queued = writer.post(f"{BASE}/sources/{source['id']}/sync")
        assert queued.status_code == 202
        assert queued.json() == {
            "source_id": source["id"],
            "status": "queued",
            "sync_runs": f"{BASE}/sources/{source['id']}/sync-runs",
        }
        apply_async.assert_not_called()
        for callback in callbacks:
            callback()
        apply_async.assert_called_once_with(kwargs={"source_id": source["id"], "trigger": "manual"})

        changed = patch(writer, f"/sources/{source['id']}", {"name": "Renamed", "language": "de"})
    assert changed.status_code == 200 and changed.json()["name"] == "Renamed"
    assert writer.get(f"{BASE}/sources/{source['id']}").json()["language"] == "de"
    assert [s["id"] for s in writer.get(f"{BASE}/sources").json()["items"]] == [source["id"]]
    assert writer.delete(f"{BASE}/sources/{source['id']}").status_code == 204
    assert not Source.objects.exists()


def test_a_triggered_sync_runs_and_its_errors_are_listed(
    writer: Client,
    site: LoopbackSite,  # noqa: F811 - the fixture
    django_capture_on_commit_callbacks: Any,
    inline_tasks: None,
) -> None:
    site.pages["/ok"] = Page(b"<html><h1>Storage</h1><p>Each plan has a storage quota.</p></html>")
    urls = "".join(f"<url><loc>{site.url(p)}</loc></url>" for p in ("/ok", "/missing"))
    site.pages["/sitemap.xml"] = Page(
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode(),
        content_type="application/xml",
    )
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml"), language="en"
    )
    with django_capture_on_commit_callbacks(execute=True):
        queued = writer.post(f"{BASE}/sources/{source.pk}/sync")
    assert queued.status_code == 202
    runs = writer.get(queued.json()["sync_runs"])
    assert runs.status_code == 200, runs.content
    [run] = runs.json()["items"]
    assert run["status"] == "partial" and run["trigger"] == "manual"
    assert (run["total"], run["added"], run["failed"]) == (2, 1, 1)
    assert run["errors"][0]["item"] == site.url("/missing") and run["errors"][0]["error"]
    assert SyncRun.objects.get().pk == run["id"]
    # The synced page waits as a draft (the source does not publish new pages).
    assert (
        writer.get(f"{BASE}/articles", {"published": "false"}).json()["items"][0]["translations"][
            "en"
        ]["title"]
        == "Storage"
    )


@pytest.mark.django_db(transaction=True)
def test_sync_in_the_embedded_background_thread_is_recorded(
    writer: Client,
    site: LoopbackSite,  # noqa: F811 - the fixture
    settings: Any,
) -> None:
    """The embedded default (no broker): the task runs in a thread of this process after the
    request's transaction committed; the run appears in the list."""
    settings.BACKGROUND_IN_PROCESS = True
    site.pages["/page"] = Page(b"<html><h1>Shipping</h1><p>We ship within two days.</p></html>")
    source = Source.objects.create(name="Page", kind=Source.Kind.URL, url=site.url("/page"))
    assert writer.post(f"{BASE}/sources/{source.pk}/sync").status_code == 202
    deadline = time.monotonic() + 60
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = writer.get(f"{BASE}/sources/{source.pk}/sync-runs").json()["items"]
        if items and items[0]["status"] != "running":
            break
        time.sleep(0.2)
    assert items and items[0]["status"] == "succeeded", items
    assert items[0]["added"] == 1 and items[0]["errors"] == []


def test_glossary_crud_reaches_the_prompt(writer: Client) -> None:
    created = post(writer, "/glossary", {"term": "AutoGLM", "do_not_translate": True})
    assert created.status_code == 201, created.content
    term = created.json()
    assert "AutoGLM" in glossary_prompt(language="de")
    german = post(
        writer, "/glossary", {"language": "de", "term": "ticket", "translation": "Ticket"}
    )
    assert german.status_code == 201
    listed = writer.get(f"{BASE}/glossary", {"language": "de"}).json()["items"]
    assert [item["term"] for item in listed] == ["ticket"]
    changed = patch(
        writer, f"/glossary/{term['id']}", {"do_not_translate": False, "translation": "Auto GLM"}
    )
    assert changed.status_code == 200 and changed.json()["translation"] == "Auto GLM"
    assert '"Auto GLM"' in glossary_prompt(language="fr")  # the memo heard of the change
    assert writer.get(f"{BASE}/glossary/{term['id']}").json() == changed.json()
    assert writer.delete(f"{BASE}/glossary/{term['id']}").status_code == 204
    assert not GlossaryTerm.objects.filter(pk=term["id"]).exists()
    assert "AutoGLM" not in glossary_prompt(language="fr")


def test_decoding_presets_crud_reaches_the_sampling(writer: Client) -> None:
    created = post(
        writer,
        "/decoding-presets",
        {"task": "support_answer", "temperature": 0.1, "stop": "END", "seed": 7},
    )
    assert created.status_code == 201, created.content
    preset = created.json()
    assert (preset["top_p"], preset["max_tokens"]) == (0.9, 512)  # the model's defaults
    assert preset_sampling(task="support_answer").temperature == 0.1
    changed = patch(writer, f"/decoding-presets/{preset['id']}", {"max_tokens": 256, "seed": None})
    assert changed.status_code == 200, changed.content
    assert (changed.json()["max_tokens"], changed.json()["seed"]) == (256, None)
    assert preset_sampling(task="support_answer").max_tokens == 256
    assert writer.get(f"{BASE}/decoding-presets").json()["items"] == [changed.json()]
    bad = patch(writer, f"/decoding-presets/{preset['id']}", {"top_p": 0})
    assert bad.status_code == 422
    assert writer.delete(f"{BASE}/decoding-presets/{preset['id']}").status_code == 204
    assert not DecodingPreset.objects.exists()


def test_the_schema_documents_every_knowledge_operation() -> None:
    schema = Client().get(f"{BASE}/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/articles",
        "/api/v1/articles/{article_id}",
        "/api/v1/articles/{article_id}/publish",
        "/api/v1/sources/{source_id}/sync",
        "/api/v1/sources/{source_id}/sync-runs",
        "/api/v1/search",
        "/api/v1/glossary/{term_id}",
        "/api/v1/decoding-presets/{preset_id}",
    ):
        assert path in paths, path
    get_article = paths["/api/v1/articles/{article_id}"]["get"]["responses"]
    assert {"200", "304", "404"} <= set(get_article)
    assert "412" in paths["/api/v1/articles/{article_id}"]["patch"]["responses"]
    assert "409" in paths["/api/v1/articles"]["post"]["responses"]


def test_a_question_with_a_lone_combining_mark_is_searched(reader: Client) -> None:
    # Found by tests/api/test_knowledge_fuzz.py: "\u0308" alone folded to an empty index term,
    # which PostgreSQL refused in the keyword query (a 500, and no knowledge for the chat).
    from knowledge.services import article_index

    article = Article.objects.create(title_en="Refunds", body_en="A full refund in 30 days.")
    article_index(article_id=article.pk)
    response = reader.get(f"{BASE}/search", {"q": "refund \u0308 fo", "language": "en"})
    assert response.status_code == 200, response.content
    assert [hit["id"] for hit in response.json()["results"]] == [str(article.pk)]
