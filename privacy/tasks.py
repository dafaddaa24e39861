"""Celery tasks of the privacy app: thin, the services do the work."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(
    name="privacy.tasks.retention_purge",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=4,
)
def retention_purge() -> dict[str, int]:
    """Delete what is past its retention; idempotent (a second run finds nothing old)."""
    from privacy import services

    return services.retention_purge()
