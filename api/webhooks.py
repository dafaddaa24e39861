"""Webhooks over HTTP: subscriptions (the secret is in the answer to their creation only), the
delivery log, and replaying a delivery."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from api import errors
from api.auth import Access
from api.pagination import paginate
from api.schemas import In
from webhooks import selectors, services
from webhooks.models import Delivery, Subscription

router = Router(tags=["webhooks"])

READ = Access("webhooks:read")
WRITE = Access("webhooks:write")
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

READ_ERRORS: dict[int, Any] = {401: errors.ErrorBody, 403: errors.ErrorBody, 422: errors.ErrorBody}
ONE_ERRORS: dict[int, Any] = {**READ_ERRORS, 404: errors.ErrorBody}
# 400: a body that is not JSON at all; 422: JSON that is not a valid body.
BODY_ERRORS: dict[int, Any] = {400: errors.ErrorBody}

EventType = Literal[
    "conversation.created",
    "message.created",
    "handoff.requested",
    "conversation.assigned",
    "conversation.resolved",
    "feedback.created",
    "csat.created",
    "article.published",
    "sync.finished",
    "sync.failed",
]


class SubscriptionIn(In):
    name: str = Field(min_length=1, max_length=100)
    target_url: str = Field(min_length=1, max_length=2000, description="http(s); public hosts.")
    event_types: list[EventType] = Field(min_length=1)
    active: bool = True


class SubscriptionPatch(In):
    name: str | None = Field(None, min_length=1, max_length=100)
    target_url: str | None = Field(None, min_length=1, max_length=2000)
    event_types: list[EventType] | None = Field(None, min_length=1)
    active: bool | None = None


class SubscriptionOut(Schema):
    id: int
    name: str
    target_url: str
    event_types: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="The signing secret: shown in this answer only.")


class SubscriptionList(Schema):
    items: list[SubscriptionOut]
    next_cursor: str | None


class Page(Schema):
    cursor: str | None = Field(None, max_length=500)
    limit: int | None = Field(None, ge=1, le=200)


class DeliveryFilters(Page):
    status: Literal["pending", "succeeded", "failed"] | None = None
    event_type: EventType | None = None
    subscription_id: Id | None = None


class DeliveryOut(Schema):
    id: uuid.UUID = Field(description="The delivery's id: the X-AutoGLM-Delivery header.")
    event_id: uuid.UUID
    event_type: str
    subscription_id: int
    status: str
    attempts: int
    response_status: int | None
    response_ms: int | None
    last_error: str
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body POSTed (its JSON).")


class DeliveryList(Schema):
    items: list[DeliveryOut]
    next_cursor: str | None


def _subscription(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.pk,
        "name": subscription.name,
        "target_url": subscription.target_url,
        "event_types": list(subscription.event_types),
        "active": subscription.active,
        "created_at": subscription.created_at,
        "updated_at": subscription.updated_at,
    }


def _delivery(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.delivery_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "subscription_id": delivery.subscription_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_status": delivery.response_status,
        "response_ms": delivery.response_ms,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
        "payload": delivery.payload,
    }


def _invalid(exc: services.SubscriptionInvalid) -> errors.InvalidRequest:
    return errors.InvalidRequest([{"field": exc.field, "problem": exc.message}])


def _found_subscription(subscription_id: int) -> Subscription:
    subscription = (
        selectors.subscription_get(subscription_id=subscription_id)
        if 0 < subscription_id <= MAX_ID
        else None
    )
    if subscription is None:
        raise errors.NotFound()
    return subscription


# --- Subscriptions ---------------------------------------------------------------------------


@router.get(
    "/webhooks/subscriptions",
    response={200: SubscriptionList, **READ_ERRORS},
    auth=READ,
    summary="List webhook subscriptions",
)
def subscriptions_list(request: HttpRequest, page: Query[Page]) -> Any:
    """Newest first; their secrets are not shown (only the answer to their creation has it)."""
    rows, next_cursor = paginate(
        selectors.subscription_list(), cursor=page.cursor, limit=page.limit
    )
    return {"items": [_subscription(row) for row in rows], "next_cursor": next_cursor}


@router.post(
    "/webhooks/subscriptions",
    response={201: SubscriptionCreated, **READ_ERRORS, **BODY_ERRORS},
    auth=WRITE,
    summary="Create a webhook subscription",
)
def subscriptions_create(request: HttpRequest, body: SubscriptionIn) -> Any:
    """Events of EVENT_TYPES are POSTed to TARGET_URL, signed with the secret in this answer
    (keep it: it is not shown again). The target must be a public http(s) address."""
    try:
        subscription = services.subscription_create(**body.model_dump())
    except services.SubscriptionInvalid as exc:
        raise _invalid(exc) from exc
    return Status(201, {**_subscription(subscription), "secret": subscription.secret})


@router.get(
    "/webhooks/subscriptions/{subscription_id}",
    response={200: SubscriptionOut, **ONE_ERRORS},
    auth=READ,
    summary="Get a webhook subscription",
)
def subscriptions_get(request: HttpRequest, subscription_id: int) -> Any:
    return _subscription(_found_subscription(subscription_id))


@router.patch(
    "/webhooks/subscriptions/{subscription_id}",
    response={200: SubscriptionOut, **ONE_ERRORS, **BODY_ERRORS},
    auth=WRITE,
    summary="Change a webhook subscription",
)
def subscriptions_patch(request: HttpRequest, subscription_id: int, body: SubscriptionPatch) -> Any:
    """Only the fields given change (null: unchanged); the secret stays the same."""
    subscription = _found_subscription(subscription_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    try:
        subscription = services.subscription_update(subscription=subscription, **changes)
    except services.SubscriptionInvalid as exc:
        raise _invalid(exc) from exc
    return _subscription(subscription)


@router.delete(
    "/webhooks/subscriptions/{subscription_id}",
    response={204: None, **ONE_ERRORS},
    auth=WRITE,
    summary="Delete a webhook subscription",
)
def subscriptions_delete(request: HttpRequest, subscription_id: int) -> Any:
    """With its delivery log; nothing more is sent to it."""
    services.subscription_delete(subscription=_found_subscription(subscription_id))
    return Status(204, None)


# --- Deliveries ------------------------------------------------------------------------------


@router.get(
    "/webhooks/deliveries",
    response={200: DeliveryList, **READ_ERRORS},
    auth=READ,
    summary="List webhook deliveries",
)
def deliveries_list(request: HttpRequest, filters: Query[DeliveryFilters]) -> Any:
    """The delivery log, newest first; filter by status, event type and subscription."""
    rows, next_cursor = paginate(
        selectors.delivery_list(
            status=filters.status,
            event_type=filters.event_type,
            subscription_id=filters.subscription_id,
        ),
        cursor=filters.cursor,
        limit=filters.limit,
    )
    return {"items": [_delivery(row) for row in rows], "next_cursor": next_cursor}


@router.get(
    "/webhooks/deliveries/{delivery_id}",
    response={200: DeliveryOut, **ONE_ERRORS},
    auth=READ,
    summary="Get a webhook delivery",
)
def deliveries_get(request: HttpRequest, delivery_id: uuid.UUID) -> Any:
    delivery = selectors.delivery_get(delivery_id=delivery_id)
    if delivery is None:
        raise errors.NotFound()
    return _delivery(delivery)


@router.post(
    "/webhooks/deliveries/{delivery_id}/replay",
    response={202: DeliveryOut, **ONE_ERRORS},
    auth=WRITE,
    summary="Send a webhook delivery again",
)
def deliveries_replay(request: HttpRequest, delivery_id: uuid.UUID) -> HttpResponse | Any:
    """One more attempt, in the background: the same delivery id and payload, a new timestamp
    and signature. Not retried if it fails; its outcome shows in the delivery log."""
    delivery = selectors.delivery_get(delivery_id=delivery_id)
    if delivery is None:
        raise errors.NotFound()
    return Status(202, _delivery(services.delivery_replay(delivery=delivery)))
