"""The audit trail of who exported, erased, purged or read a visitor's data (never the data)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        EXPORT = "export", _("Export")
        ERASE = "erase", _("Erasure")
        VIEW_CONVERSATION = "view_conversation", _("Conversation viewed")
        PURGE = "purge", _("Retention purge")

    class TargetKind(models.TextChoices):
        VISITOR = "visitor", _("Visitor")
        CONVERSATION = "conversation", _("Conversation")
        RETENTION = "retention", _("Retention policy")

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="privacy_audit_events",
        verbose_name=_("actor"),
    )
    # Who, kept when the user is deleted: a username, "command" or "retention".
    actor_label = models.CharField(_("actor"), max_length=150)
    action = models.CharField(_("action"), max_length=32, choices=Action.choices, db_index=True)
    target_kind = models.CharField(_("target kind"), max_length=32, choices=TargetKind.choices)
    # A visitor's uuid or a conversation's id: random ids that say nothing once erased.
    target_id = models.CharField(_("target"), max_length=64, blank=True, db_index=True)
    # Where it happened: "admin", "inbox", "command", "task".
    via = models.CharField(_("via"), max_length=32, blank=True)
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.target_kind} {self.target_id} by {self.actor_label}"
