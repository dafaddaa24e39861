"""Webhook subscriptions (where events go, signed with their secret) and the delivery log."""

from __future__ import annotations

import secrets
import uuid
from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

# The events services emit (webhooks/events.py builds their payloads; docs/webhooks.md).
EVENT_TYPES: dict[str, str] = {
    "conversation.created": "A visitor's first message opened a conversation",
    "message.created": "A visitor's or an agent's message was stored",
    "handoff.requested": "A conversation was handed to the human team",
    "conversation.assigned": "An agent took, was given or was transferred a conversation",
    "conversation.resolved": "An agent resolved a conversation",
    "feedback.created": "A visitor rated a reply (thumbs up or down)",
    "csat.created": "A visitor rated a conversation (1 to 5)",
    "article.published": "A knowledge article was published",
    "sync.finished": "A knowledge source sync finished (perhaps with per-page errors)",
    "sync.failed": "A knowledge source sync failed as a whole",
}
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of generated secrets, not one


def new_secret() -> str:
    return f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"


class Subscription(models.Model):
    name = models.CharField(_("name"), max_length=100)
    target_url = models.URLField(_("target URL"), max_length=2000)
    event_types = models.JSONField(_("events"), default=list, blank=True)
    # Kept in plain text, unlike API keys: every delivery is signed with it (HMAC needs it).
    secret = models.CharField(_("signing secret"), max_length=100, default=new_secret)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One event for one subscription: its payload, kept as sent, and how its sending went."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    subscription = models.ForeignKey(
        Subscription,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("subscription"),
    )
    event_type = models.CharField(_("event"), max_length=64, db_index=True)
    # The event's id is shared by its deliveries to every subscription; the delivery's id is
    # this one's own (the X-AutoGLM-Delivery header), the same on every attempt and replay.
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, db_index=True)
    delivery_id = models.UUIDField(_("delivery id"), default=uuid.uuid4, unique=True)
    payload = models.JSONField(_("payload"))
    # The conversation the event is about, if any: its deliveries (which quote it) are deleted
    # with it, by an erasure or the retention purge.
    conversation = models.ForeignKey(
        "chat.Conversation",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("conversation"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_ms = models.PositiveIntegerField(_("response time (ms)"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    # When the next attempt is due (pending deliveries), or until when the attempt in progress
    # holds it; None once it succeeded or failed for good.
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.subscription_id} ({self.status})"


class Attempt(models.Model):
    """One POST of a delivery: what the target answered, how fast, or why it failed."""

    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("delivery")
    )
    number = models.PositiveIntegerField(_("attempt"))
    started_at = models.DateTimeField(_("started"))
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_ms = models.PositiveIntegerField(_("response time (ms)"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    replay = models.BooleanField(_("replay"), default=False)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering: ClassVar[list[str]] = ["delivery", "number"]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"
