"""API keys (one per integration, scoped, stored hashed) and the log of every API call."""

from __future__ import annotations

import hashlib
import secrets
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# What a key may do: read or write, per resource; "assistant" is the OpenAI-compatible endpoint.
SCOPES: dict[str, str] = {
    "conversations:read": "Read conversations, messages and transcripts",
    "conversations:write": "Post messages, close, reopen, feedback and CSAT",
    "knowledge:read": "Read articles, categories, sources, sync runs; search",
    "knowledge:write": "Change articles, categories and sources; trigger a sync",
    "visitors:read": "Look visitors up; GDPR export",
    "visitors:write": "GDPR erasure",
    "webhooks:read": "Read subscriptions and the delivery log",
    "webhooks:write": "Change subscriptions; replay deliveries",
    "assistant": "The grounded assistant (OpenAI-compatible endpoint)",
}
KEY_PREFIX = "agk_"


def key_digest(secret: str) -> str:
    """SHA-256 of a key's secret: the secret is 32 random bytes, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(models.Model):
    name = models.CharField(_("name"), max_length=100)
    # The public part of the key (agk_<prefix>_<secret>): finds the row, shown in lists.
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(_("scopes"), default=list, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(_("requests per minute"), default=600)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_keys",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering: ClassVar[list[str]] = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({KEY_PREFIX}{self.prefix}_…)"

    @classmethod
    def issue(
        cls, name: str, scopes: list[str], *, created_by: object = None, rate_limit: int = 600
    ) -> tuple[ApiKey, str]:
        """A new key and its plaintext, which is shown once and never stored."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = cls.objects.create(
            name=name,
            prefix=prefix,
            digest=key_digest(secret),
            scopes=sorted(set(scopes)),
            rate_limit_per_minute=rate_limit,
            created_by=created_by,
        )
        return key, f"{KEY_PREFIX}{prefix}_{secret}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class ApiCall(models.Model):
    """One call to the API: who (key or staff user), what, and the status it got."""

    key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_calls",
    )
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    duration_ms = models.PositiveIntegerField(default=0)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("API call")
        verbose_name_plural = _("API calls")
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status}"
