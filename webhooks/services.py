"""Writes of the webhooks: subscriptions, emitting an event, one delivery attempt, replay.

Services elsewhere call event_emit (through webhooks.events) inside their transaction: the
deliveries are rows of that transaction, and their sending is enqueued after it commits, so a
rolled-back change is never announced. Without a subscription to an event type the call costs
no query (the subscribed types are remembered a few seconds per process).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from autoglm_site.background import enqueue
from autoglm_site.memo import admin_tables_memo
from webhooks import signing
from webhooks.models import EVENT_TYPES, Attempt, Delivery, Subscription
from webhooks.transport import TargetRefused, client, target_check

logger = logging.getLogger(__name__)

Payload = dict[str, Any] | Callable[[], dict[str, Any]]
_RESPONSE_SNIPPET = 500


class SubscriptionInvalid(Exception):
    """A subscription's field is not valid; FIELD names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --- Subscriptions --------------------------------------------------------------------------
def _clean_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise SubscriptionInvalid(
            "event_types", _("Unknown event types: %(types)s.") % {"types": ", ".join(unknown)}
        )
    if not event_types:
        raise SubscriptionInvalid("event_types", _("Choose at least one event type."))
    return sorted(set(event_types))


def _clean_target(url: str) -> str:
    try:
        target_check(url, resolve=True)
    except TargetRefused as exc:
        raise SubscriptionInvalid("target_url", str(exc)) from exc
    return url


def subscription_create(
    *, name: str, target_url: str, event_types: list[str], active: bool = True
) -> Subscription:
    """A new subscription with a new secret (returned on it: shown to its creator)."""
    return Subscription.objects.create(
        name=name.strip()[:100],
        target_url=_clean_target(target_url),
        event_types=_clean_event_types(event_types),
        active=active,
    )


def subscription_update(*, subscription: Subscription, **changes: Any) -> Subscription:
    """Change NAME, TARGET_URL, EVENT_TYPES or ACTIVE (those given) of SUBSCRIPTION."""
    if "name" in changes:
        subscription.name = str(changes["name"]).strip()[:100]
    if "target_url" in changes:
        subscription.target_url = _clean_target(changes["target_url"])
    if "event_types" in changes:
        subscription.event_types = _clean_event_types(list(changes["event_types"]))
    if "active" in changes:
        subscription.active = bool(changes["active"])
    subscription.save()
    return subscription


def subscription_delete(*, subscription: Subscription) -> None:
    subscription.delete()  # its deliveries go with it


# --- Events ---------------------------------------------------------------------------------
@admin_tables_memo(Subscription)
def subscribed_event_types() -> frozenset[str]:
    """The event types some active subscription wants (remembered ADMIN_TABLES_MEMO_SECONDS)."""
    types: set[str] = set()
    for wanted in Subscription.objects.filter(active=True).values_list("event_types", flat=True):
        types.update(wanted or ())
    return frozenset(types)


def event_emit(
    *, event_type: str, payload: Payload, conversation_id: uuid.UUID | None = None
) -> list[Delivery]:
    """One delivery of the event per active subscription to EVENT_TYPE, sent after commit.

    PAYLOAD is the event's data, or a function returning it (called only when somebody is
    subscribed, so an unwatched event costs nothing to describe). CONVERSATION_ID: the
    conversation it is about, whose erasure erases these deliveries too.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if event_type not in subscribed_event_types():
        return []
    subscriptions = list(
        Subscription.objects.filter(active=True, event_types__contains=[event_type]).only("pk")
    )
    if not subscriptions:
        return []
    data = payload() if callable(payload) else payload
    now = timezone.now()
    event_id = uuid.uuid4()
    envelope = {
        "id": str(event_id),
        "type": event_type,
        "created_at": now.isoformat(),
        "data": json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
    }
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(
                subscription=subscription,
                event_type=event_type,
                event_id=event_id,
                payload=envelope,
                conversation_id=conversation_id,
                next_attempt_at=now,
            )
            for subscription in subscriptions
        ]
    )
    from webhooks.tasks import deliver

    for delivery in deliveries:
        enqueue(deliver, delivery_id=delivery.pk)
    return deliveries


# --- Delivery -------------------------------------------------------------------------------
def body_of(delivery: Delivery) -> bytes:
    """The bytes POSTed for DELIVERY: the same on every attempt and replay."""
    return json.dumps(
        delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def retry_delay(attempts: int) -> float:
    """Seconds before the retry that follows attempt number ATTEMPTS: base x 2^(n-1), +-20%."""
    base = settings.WEBHOOKS_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def _lease_seconds() -> float:
    # Longer than any POST can take: nobody else picks the delivery up meanwhile.
    return settings.WEBHOOKS_TIMEOUT_SECONDS * 3 + 30


def _post(delivery: Delivery) -> tuple[int | None, int | None, str]:
    """POST DELIVERY once: (response status or None, milliseconds or None, error or "")."""
    subscription = delivery.subscription
    body = body_of(delivery)
    headers = signing.sign(
        subscription.secret,
        body,
        delivery_id=str(delivery.delivery_id),
        event_type=delivery.event_type,
        timestamp=None,
    )
    headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        target_check(subscription.target_url, resolve=False)
        url = subscription.target_url
        with client() as http, http.stream("POST", url, content=body, headers=headers) as r:
            status = r.status_code
            snippet = b""
            if not 200 <= status < 300:
                for part in r.iter_bytes():
                    snippet += part
                    if len(snippet) >= _RESPONSE_SNIPPET:
                        break
    except TargetRefused as exc:
        return None, None, str(exc)
    except httpx.TimeoutException:
        elapsed = round((time.monotonic() - started) * 1000)
        return (
            None,
            elapsed,
            _("No answer within %(seconds)s seconds.")
            % {"seconds": settings.WEBHOOKS_TIMEOUT_SECONDS},
        )
    except httpx.HTTPError as exc:
        elapsed = round((time.monotonic() - started) * 1000)
        return None, elapsed, str(exc) or type(exc).__name__
    elapsed = round((time.monotonic() - started) * 1000)
    if 200 <= status < 300:
        return status, elapsed, ""
    text = snippet[:_RESPONSE_SNIPPET].decode("utf-8", errors="replace")
    return (
        status,
        elapsed,
        _("The target answered HTTP %(status)s: %(body)s")
        % {
            "status": status,
            "body": text,
        },
    )


def _retry_in_process(*, delivery_id: int, seconds: float) -> None:
    """Without a broker there is no beat to hand out retries: a timer of this process does
    (lost if the process stops; the delivery stays pending, for a replay or a later beat)."""
    from webhooks.tasks import deliver

    timer = threading.Timer(seconds, lambda: enqueue(deliver, delivery_id=delivery_id))
    timer.daemon = True
    timer.start()


def delivery_attempt(*, delivery_id: int, replay: bool = False) -> Delivery | None:
    """POST the delivery if it is due and nobody else is sending it; None when it was not.

    A 2xx answer is success. Anything else (another status, a network error, a timeout, a
    refused address) schedules the next attempt after retry_delay, until WEBHOOKS_MAX_ATTEMPTS
    attempts have been made: then the delivery has failed. A replay is one attempt, not retried.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription")
            .filter(pk=delivery_id, status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=_lease_seconds())
        delivery.save(update_fields=["attempts", "next_attempt_at"])
    active = delivery.subscription.active
    if active:
        status, elapsed, error = _post(delivery)
    else:
        status, elapsed, error = None, None, _("The subscription is not active.")
    finished = timezone.now()
    Attempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        started_at=now,
        response_status=status,
        response_ms=elapsed,
        error=error,
        replay=replay,
    )
    delivery.response_status, delivery.response_ms, delivery.last_error = status, elapsed, error
    if not error:
        delivery.status = Delivery.Status.SUCCEEDED
        delivery.delivered_at = finished
        delivery.next_attempt_at = None
    elif replay or not active or delivery.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS:
        delivery.status = Delivery.Status.FAILED
        delivery.next_attempt_at = None
    else:
        delay = retry_delay(delivery.attempts)
        delivery.next_attempt_at = finished + timedelta(seconds=delay)
        if settings.BACKGROUND_IN_PROCESS:
            _retry_in_process(delivery_id=delivery.pk, seconds=delay)
    delivery.save(
        update_fields=[
            "status",
            "response_status",
            "response_ms",
            "last_error",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    logger.info(
        "webhook delivery %s (%s) attempt %s: %s",
        delivery.delivery_id,
        delivery.event_type,
        delivery.attempts,
        error or status,
    )
    return delivery


def delivery_replay(*, delivery: Delivery) -> Delivery:
    """Send DELIVERY again (same delivery id, same payload, a new signature) after commit."""
    from webhooks.tasks import deliver

    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.PENDING, next_attempt_at=timezone.now()
        )
        enqueue(deliver, delivery_id=delivery.pk, replay=True)
    delivery.refresh_from_db()
    return delivery


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Beat: enqueue the pending deliveries whose next attempt is due; their ids."""
    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    from webhooks.tasks import deliver

    for delivery_id in due:
        enqueue(deliver, delivery_id=delivery_id)
    return due
