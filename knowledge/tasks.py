"""Celery tasks of the knowledge base: ids in, services do the work."""

from __future__ import annotations

from celery import shared_task

from knowledge import services
from knowledge.models import SyncRun


@shared_task(name="knowledge.tasks.index_article")
def index_article(*, article_id: int) -> int:
    """Re-chunk and re-embed what changed in one article; the number of chunks embedded."""
    return services.article_index(article_id=article_id).chunks_embedded


@shared_task(name="knowledge.tasks.sync_source")
def sync_source(*, source_id: int, trigger: str = SyncRun.Trigger.MANUAL) -> int | None:
    """Sync one source; the SyncRun id (None when another sync of it was running)."""
    run = services.source_sync(source_id=source_id, trigger=trigger)
    return run.pk if run else None


@shared_task(name="knowledge.tasks.sync_due_sources")
def sync_due_sources() -> list[int]:
    """Beat: enqueue the sources whose schedule has come round."""
    return services.sources_sync_due()
