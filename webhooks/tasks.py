"""Celery tasks of the webhooks: ids in, services do the work.

A delivery's retries are not Celery retries: the next attempt's time is stored on the delivery
and the beat task hands out those that are due. Backoffs grow to an hour, longer than the
broker's visibility timeout would tolerate for a task held until its countdown
(autoglm_site/settings.py), and a stored time survives a worker's death. A task that comes
twice finds the delivery not due (or held by the other) and does nothing.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from webhooks import services

_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    name="webhooks.tasks.deliver",
    autoretry_for=_TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=4,
)
def deliver(*, delivery_id: int, replay: bool = False) -> str | None:
    """One attempt of a delivery; its status after it (None when it was not due)."""
    delivery = services.delivery_attempt(delivery_id=delivery_id, replay=replay)
    return None if delivery is None else str(delivery.status)


@shared_task(
    name="webhooks.tasks.deliver_due",
    autoretry_for=_TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=4,
)
def deliver_due() -> list[int]:
    """Beat: enqueue the deliveries whose next attempt is due."""
    return services.deliveries_due()
