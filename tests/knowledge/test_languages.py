"""Knowledge content tagged pt-PT or zh-MO is indexed under pt-br and zh-hant."""

from __future__ import annotations

import json

import pytest

from knowledge.models import Article, Chunk, Source, SyncRun
from knowledge.services import articles_import, source_sync
from knowledge.text import detect_language, normalize_language
from tests.knowledge.conftest import LoopbackSite, Page

PORTUGUESE = ("Redefinir a senha", "Clique em Esqueci a senha na página de entrada da sua conta.")
CHINESE = ("重設密碼", "請在登入頁面點擊忘記密碼，然後查看您的電子郵件。")


@pytest.mark.django_db
def test_imported_pt_pt_and_zh_mo_articles_are_indexed_as_pt_br_and_zh_hant() -> None:
    lines = [
        json.dumps({"id": "pw", "lang": "pt-PT", "title": PORTUGUESE[0], "body": PORTUGUESE[1]}),
        json.dumps({"id": "pw", "lang": "zh_MO", "title": CHINESE[0], "body": CHINESE[1]}),
    ]

    result = articles_import(lines=lines)

    assert (result.failed, result.errors) == (0, [])
    article = Article.objects.get(external_id="pw")
    assert article.title_pt_br == PORTUGUESE[0]
    assert article.title_zh_hant == CHINESE[0]
    assert article.title_en is None
    assert set(Chunk.objects.values_list("language", flat=True)) == {"pt-br", "zh-hant"}


@pytest.mark.django_db
def test_an_import_line_in_an_unsupported_language_is_rejected() -> None:
    line = json.dumps({"id": "x", "lang": "fa-IR", "title": "راهنما", "body": "متن"})

    result = articles_import(lines=[line], index=False)

    assert result.failed == 1
    assert "fa-IR" in result.errors[0]["error"]


def _sitemap_source(site: LoopbackSite, *, language: str, title: str, text: str) -> Source:
    site.pages["/page"] = Page(
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>".encode()
    )
    urls = f"<url><loc>{site.url('/page')}</loc></url>"
    site.pages["/sitemap.xml"] = Page(
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode(),
        content_type="application/xml",
    )
    return Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml"), language=language
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("language", "content", "expected"),
    [("pt-PT", PORTUGUESE, "pt-br"), ("zh-MO", CHINESE, "zh-hant")],
)
def test_a_source_in_a_regional_language_syncs_under_the_product_code(
    site: LoopbackSite, language: str, content: tuple[str, str], expected: str
) -> None:
    source = _sitemap_source(site, language=language, title=content[0], text=content[1])

    run = source_sync(source_id=source.pk)

    assert run is not None and run.status == SyncRun.Status.SUCCEEDED, run and run.errors
    article = Article.objects.get(external_id=site.url("/page"))
    field = "title_" + expected.replace("-", "_")
    assert getattr(article, field) == content[0]
    assert article.title_en is None
    assert set(Chunk.objects.values_list("language", flat=True)) == {expected}


def test_normalize_language_gives_none_for_an_unsupported_code() -> None:
    # It used to hand back the folded code ("fa-ir"); callers detect or reject instead.
    assert normalize_language("fa-IR") is None
    assert normalize_language("") is None
    assert normalize_language("pt-PT") == "pt-br"


def test_detection_uses_the_shared_scripts_and_codes() -> None:
    assert detect_language("спасибо", default="en") == "ru"  # Cyrillic is only Russian here
    assert detect_language("ありがとう") == "ja"
    assert detect_language("Muito obrigado pela ajuda com a minha conta, foi ótimo.") == "pt-br"
