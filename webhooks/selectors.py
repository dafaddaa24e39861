"""Reads of the webhooks: subscriptions and the delivery log."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from webhooks.models import Delivery, Subscription


def subscription_list() -> QuerySet[Subscription]:
    return Subscription.objects.all()


def subscription_get(*, subscription_id: int) -> Subscription | None:
    return Subscription.objects.filter(pk=subscription_id).first()


def delivery_list(
    *,
    status: str | None = None,
    event_type: str | None = None,
    subscription_id: int | None = None,
) -> QuerySet[Delivery]:
    deliveries = Delivery.objects.all()
    if status:
        deliveries = deliveries.filter(status=status)
    if event_type:
        deliveries = deliveries.filter(event_type=event_type)
    if subscription_id is not None:
        deliveries = deliveries.filter(subscription_id=subscription_id)
    return deliveries


def delivery_get(*, delivery_id: uuid.UUID) -> Delivery | None:
    return Delivery.objects.filter(delivery_id=delivery_id).first()
