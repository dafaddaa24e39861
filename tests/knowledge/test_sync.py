"""Source sync against a loopback HTTP server: incremental, deletions, per-item errors, lock."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.db import connections

from knowledge.models import Article, Chunk, Source, SyncRun
from knowledge.services import source_sync, sources_sync_due
from tests.knowledge.conftest import LoopbackSite, Page

pytestmark = pytest.mark.django_db(transaction=True)


def page(title: str, text: str) -> Page:
    html = (
        f"<html><head><title>{title}</title><script>alert('x')</script></head>"
        f"<body><nav>Menu Home</nav><h1>{title}</h1><p>{text}</p></body></html>"
    )
    return Page(html.encode())


def sitemap(site: LoopbackSite, entries: list[tuple[str, str]]) -> Page:
    urls = "".join(
        f"<url><loc>{site.url(path)}</loc><lastmod>{lastmod}</lastmod></url>"
        for path, lastmod in entries
    )
    xml = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    return Page(xml.encode(), content_type="application/xml")


def test_sitemap_sync_is_incremental_and_deletes_removed_pages(site: LoopbackSite) -> None:
    site.pages["/a"] = page("Billing", "Invoices are emailed monthly.")
    site.pages["/b"] = page("Sharing", "Share folders with your team.")
    site.pages["/sitemap.xml"] = sitemap(site, [("/a", "2026-01-01"), ("/b", "2026-01-01")])
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml"), language="en"
    )

    first = source_sync(source_id=source.pk)
    assert first is not None and first.status == SyncRun.Status.SUCCEEDED
    assert (first.added, first.failed, first.total, first.done) == (2, 0, 2, 2)
    article = Article.objects.get(external_id=site.url("/a"))
    assert article.title_en == "Billing"
    assert "alert" not in article.body_en and "Menu" not in article.body_en

    site.requests.clear()
    second = source_sync(source_id=source.pk)
    assert second is not None
    assert (second.unchanged, second.chunks_embedded) == (2, 0)
    assert [path for path, _headers in site.requests] == ["/sitemap.xml"]  # lastmod unchanged

    site.pages["/a"] = page("Billing", "Invoices are emailed every week now.")
    site.pages["/sitemap.xml"] = sitemap(site, [("/a", "2026-02-01")])
    third = source_sync(source_id=source.pk)
    assert third is not None
    assert (third.updated, third.deleted, third.chunks_embedded) == (1, 1, 1)
    assert not Article.objects.filter(external_id=site.url("/b")).exists()
    assert set(Chunk.objects.values_list("article__external_id", flat=True)) == {site.url("/a")}


def test_one_failing_page_is_recorded_and_does_not_abort_the_run(site: LoopbackSite) -> None:
    site.pages["/ok"] = page("Storage", "Each plan has a storage quota.")
    site.pages["/binary"] = Page(b"\x00\x01\x02" * 100, content_type="text/html")
    site.pages["/latin"] = Page(
        "<p>caf\xe9</p>".encode("latin-1"), content_type="text/html; charset=x-unknown"
    )
    site.pages["/loop"] = Page(b"", status=302, headers={"Location": "/loop"})
    site.pages["/big"] = Page(b"<p>" + b"a" * 3000 + b"</p>")
    site.pages["/sitemap.xml"] = sitemap(
        site,
        [
            ("/ok", ""),
            ("/binary", ""),
            ("/latin", ""),
            ("/loop", ""),
            ("/missing", ""),
            ("/big", ""),
        ],
    )
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml")
    )
    from django.test import override_settings

    with override_settings(KNOWLEDGE_FETCH_MAX_BYTES=2048):
        run = source_sync(source_id=source.pk)
    assert run is not None and run.status == SyncRun.Status.PARTIAL
    assert (run.added, run.failed) == (1, 5)
    errors = {error["item"].rsplit("/", 1)[-1]: error["error"] for error in run.errors}
    assert "binary" in errors["binary"]
    assert "encoding" in errors["latin"].lower()
    assert "redirect" in errors["loop"].lower()
    assert "404" in errors["missing"]
    assert "larger" in errors["big"]


def test_etag_makes_an_unchanged_page_cost_no_download(site: LoopbackSite) -> None:
    site.pages["/page"] = Page(
        page("Status", "See the status page.").body, headers={"ETag": '"v1"'}
    )
    source = Source.objects.create(name="One page", kind=Source.Kind.URL, url=site.url("/page"))
    assert source_sync(source_id=source.pk).added == 1  # type: ignore[union-attr]
    run = source_sync(source_id=source.pk)
    assert run is not None and run.unchanged == 1
    assert site.requests[-1][1].get("If-None-Match") == '"v1"'


def test_unreachable_sitemap_fails_the_run_but_keeps_existing_articles(site: LoopbackSite) -> None:
    source = Source.objects.create(name="Gone", kind=Source.Kind.SITEMAP, url=site.url("/nope.xml"))
    Article.objects.create(title_en="Kept", source=source, external_id="kept")
    run = source_sync(source_id=source.pk)
    assert run is not None and run.failed == 1 and "404" in run.errors[0]["error"]
    assert Article.objects.filter(external_id="kept").exists()


def test_a_sitemap_longer_than_the_limit_is_cut_and_reported(site: LoopbackSite, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KNOWLEDGE_SITEMAP_MAX_URLS = 2
    for name in "abc":
        site.pages[f"/{name}"] = page(name, f"Page {name}.")
    site.pages["/sitemap.xml"] = sitemap(site, [("/a", ""), ("/b", ""), ("/c", "")])
    source = Source.objects.create(
        name="Big", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml")
    )
    run = source_sync(source_id=source.pk)
    assert run is not None and run.added == 2
    assert "3" in run.errors[0]["error"] and "2" in run.errors[0]["error"]


def test_uploaded_markdown_file_becomes_an_article(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path
    source = Source(name="FAQ file", kind=Source.Kind.FILE, language="es")
    source.file.save(
        "faq.md",
        ContentFile(b"# Preguntas\n\n## Facturas\nLas facturas llegan por correo."),
    )
    run = source_sync(source_id=source.pk)
    assert run is not None and run.added == 1, run.errors
    article = Article.objects.get(source=source)
    assert article.title_es == "Preguntas"
    assert Chunk.objects.get(article=article).heading == "Facturas"


def test_a_second_sync_of_the_same_source_is_refused_while_one_holds_the_lock(
    site: LoopbackSite,
) -> None:
    source = Source.objects.create(name="Manual", kind=Source.Kind.MANUAL)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [0x6B62, source.pk])
        assert source_sync(source_id=source.pk) is None
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [0x6B62, source.pk])
        assert source_sync(source_id=source.pk) is not None
    finally:
        other.close()


def test_manual_source_reindexes_its_articles() -> None:
    source = Source.objects.create(name="Manual", kind=Source.Kind.MANUAL)
    Article.objects.create(title_en="Sharing", body_en="Share a folder by email.", source=source)
    run = source_sync(source_id=source.pk)
    assert run is not None and (run.updated, run.chunks_embedded) == (1, 1)


def test_due_sources_are_enqueued_by_the_beat_task(settings) -> None:  # type: ignore[no-untyped-def]
    from unittest import mock

    settings.BACKGROUND_IN_PROCESS = False
    due = Source.objects.create(name="Due", kind=Source.Kind.MANUAL, sync_interval_minutes=60)
    Source.objects.create(name="Unscheduled", kind=Source.Kind.MANUAL)
    with mock.patch("knowledge.tasks.sync_source.apply_async") as apply_async:
        assert sources_sync_due() == [due.pk]
    apply_async.assert_called_once_with(kwargs={"source_id": due.pk, "trigger": "schedule"})
    assert "knowledge.tasks.sync_due_sources" in {
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
