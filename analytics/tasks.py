"""Celery tasks of analytics: beat refreshes the outcomes and roll-ups; services do the work."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analytics import services


@shared_task(
    name="analytics.tasks.refresh",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=3,
)
def refresh() -> dict[str, object]:
    """Incremental: the conversations with activity since the stored watermark."""
    result = services.outcomes_refresh()
    return {
        "conversations": result.conversations,
        "days": len(result.days),
        "skipped": result.skipped,
    }
