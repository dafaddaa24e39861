"""Celery task of the knowledge gaps: beat records and clusters the new gap questions."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analytics import gaps


@shared_task(
    name="analytics.gap_tasks.gaps_refresh",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=3,
)
def gaps_refresh() -> dict[str, int]:
    """Incremental: the gap questions since the stored watermark."""
    result = gaps.gaps_refresh_due()
    return {"questions": result.questions, "clusters_created": result.clusters_created}
