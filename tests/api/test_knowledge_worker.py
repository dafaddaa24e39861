"""POST /sources/{id}/sync through the Redis broker to a real Celery worker process; the run it
records is listed by GET /sources/{id}/sync-runs with its errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from autoglm_site.celery import app as celery_app
from knowledge.models import Article, Source
from tests.api.keys import api_client, api_key
from tests.knowledge.conftest import LoopbackSite, Page, site  # noqa: F401 - the fixture
from tests.knowledge.test_celery_worker import Celery, _until, celery  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def broker_app(celery: Celery, settings: Any) -> Iterator[None]:  # noqa: F811 - the fixture
    """This process's Celery app publishes to the test's Redis broker, not in process."""
    settings.BACKGROUND_IN_PROCESS = False
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = celery.broker_url
    celery_app._pool = None  # the connection pools follow the new URL
    celery_app.amqp._producer_pool = None
    yield
    celery_app.conf.broker_url = saved
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_a_sync_triggered_over_the_api_is_run_by_a_worker(
    celery: Celery,  # noqa: F811 - the fixture
    broker_app: None,
    site: LoopbackSite,  # noqa: F811 - the fixture
) -> None:
    site.pages["/ok"] = Page(b"<html><h1>Storage</h1><p>Each plan has a storage quota.</p></html>")
    urls = "".join(f"<url><loc>{site.url(p)}</loc></url>" for p in ("/ok", "/gone"))
    site.pages["/sitemap.xml"] = Page(
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode(),
        content_type="application/xml",
    )
    source = Source.objects.create(
        name="Help", kind=Source.Kind.SITEMAP, url=site.url("/sitemap.xml"), language="en"
    )
    _key, token = api_key("knowledge:read", "knowledge:write")
    client = api_client(token)
    worker = celery.worker("api", visibility_timeout=3600)

    queued = client.post(f"/api/v1/sources/{source.pk}/sync")
    assert queued.status_code == 202, queued.content

    def finished_run() -> dict[str, Any] | None:
        items = client.get(queued.json()["sync_runs"]).json()["items"]
        return items[0] if items and items[0]["status"] != "running" else None

    run = _until("the worker to record the sync run", finished_run, worker)
    assert (run["status"], run["trigger"]) == ("partial", "manual")
    assert (run["added"], run["failed"]) == (1, 1)
    assert run["errors"][0]["item"] == site.url("/gone")
    assert Article.objects.get(source=source).title_en == "Storage"
    assert "knowledge.tasks.sync_source" in worker.output()
